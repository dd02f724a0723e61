//! Table tests of layering, origins, the config file and validation.
#![allow(clippy::type_complexity)]

use super::*;
use secrecy::ExposeSecret;

/// An environment made of `pairs`.
fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |var| owned.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Resolves with `flags`, `env` and, when given, a config file holding `toml`.
    fn resolve(
        &self,
        flags: Layer,
        env: &[(&str, &str)],
        toml: Option<&str>,
        profile: Option<&str>,
    ) -> Result<Settings, Fatal> {
        let env = env_of(env);
        let src = Sources {
            flags,
            config: toml.map(|t| self.file("config.toml", t)),
            profile: profile.map(String::from),
            env: &env,
        };
        resolve(&src)
    }

    fn config_path(&self) -> String {
        self.dir.path().join("config.toml").display().to_string()
    }
}

fn flags(pairs: &[(&'static str, Raw)]) -> Layer {
    let mut l = Layer::default();
    for (name, raw) in pairs {
        l.flag(name, raw.clone());
    }
    l
}

#[test]
fn layers_resolve_flag_over_env_over_profile_over_file_over_default() {
    let case = Case::new();
    let toml = "min_rbp = 10\nsettle = 30\n[profile.acme]\nmin_rbp = 20\n";
    let path = case.config_path();
    let file_line = |line: usize| format!("{path}:{line}");

    let rows: [(Layer, &[(&str, &str)], Option<&str>, Option<u64>, String); 6] = [
        (
            flags(&[("min_rbp", Raw::Int(40))]),
            &[("LRCI_MIN_RBP", "30")],
            Some("acme"),
            Some(40),
            "--min-rbp".into(),
        ),
        (
            Layer::default(),
            &[("LRCI_MIN_RBP", "30")],
            Some("acme"),
            Some(30),
            "LRCI_MIN_RBP".into(),
        ),
        (Layer::default(), &[], Some("acme"), Some(20), file_line(4)),
        (Layer::default(), &[], None, Some(10), file_line(1)),
        (
            Layer::default(),
            &[("LRCI_PROFILE", "acme")],
            None,
            Some(20),
            file_line(4),
        ),
        (
            Layer::default(),
            &[("LRCI_PROFILE", "")],
            None,
            Some(10),
            file_line(1),
        ),
    ];
    for (flags, env, profile, want, origin) in rows {
        let s = case.resolve(flags, env, Some(toml), profile).unwrap();
        let got = s.optional("min_rbp");
        assert_eq!(got.as_ref().map(|v| v.value), want, "{origin}");
        assert_eq!(got.unwrap().origin.to_string(), origin);
    }
    // The default, and a top-level value seen through a profile.
    let s = case.resolve(Layer::default(), &[], None, None).unwrap();
    assert_eq!(s.optional("min_rbp"), None);
    assert_eq!(s.optional("batch_size").unwrap().origin, Origin::Default);
    assert_eq!(s.number("daily_budget"), spec::DEFAULT_DAILY_BUDGET);
    let s = case
        .resolve(Layer::default(), &[], Some(toml), Some("acme"))
        .unwrap();
    assert_eq!(
        s.optional("settle").unwrap().origin.to_string(),
        file_line(2)
    );
}

#[test]
fn every_bad_value_names_its_origin() {
    let case = Case::new();
    let path = case.config_path();
    let rows: [(Layer, &[(&str, &str)], Option<&str>, &str, String); 14] = [
        (
            Layer::default(),
            &[],
            Some("\nconcurrency = \"fast\"\n"),
            "concurrency",
            format!("{path}:2): \"fast\" is neither auto nor a whole number"),
        ),
        (
            Layer::default(),
            &[],
            Some("concurrency = 0\n"),
            "concurrency",
            "0 is out of range (auto or 1..=64)".into(),
        ),
        (
            Layer::default(),
            &[("LRCI_CONCURRENCY", "65")],
            None,
            "LRCI_CONCURRENCY",
            "auto or 1..=64".into(),
        ),
        (
            Layer::default(),
            &[("LRCI_CONCURRENCY_MAX", "0")],
            None,
            "LRCI_CONCURRENCY_MAX",
            "out of range (1..=64)".into(),
        ),
        (
            Layer::default(),
            &[],
            Some("concurrency_max = \"auto\"\n"),
            "concurrency_max",
            "not a whole number".into(),
        ),
        (
            flags(&[("min_rbp", Raw::Int(140))]),
            &[],
            None,
            "--min-rbp",
            "out of range".into(),
        ),
        (
            Layer::default(),
            &[("LRCI_MIN_RBP", "140")],
            None,
            "LRCI_MIN_RBP",
            "0..=100".into(),
        ),
        (
            Layer::default(),
            &[("LRCI_MIN_RBP", "forty")],
            None,
            "LRCI_MIN_RBP",
            "not a whole number".into(),
        ),
        (
            Layer::default(),
            &[],
            Some("\n\nmin_rbp = 140\n"),
            "min_rbp",
            format!("{path}:3"),
        ),
        (
            Layer::default(),
            &[],
            Some("min_rbp = \"high\"\n"),
            "min_rbp",
            format!("{path}:1"),
        ),
        (
            Layer::default(),
            &[("LRCI_RF_ONLY", "maybe")],
            None,
            "LRCI_RF_ONLY",
            "true or false".into(),
        ),
        (
            Layer::default(),
            &[("LRCI_LOG_LEVEL", "loud")],
            None,
            "LRCI_LOG_LEVEL",
            "error, warn".into(),
        ),
        (
            Layer::default(),
            &[],
            Some("own_networks = [\"10.0.0.0/33\"]"),
            "own_networks",
            format!("{path}:1"),
        ),
        (
            Layer::default(),
            &[("LRCI_LEDGER", "")],
            None,
            "LRCI_LEDGER",
            "empty".into(),
        ),
    ];
    for (flags, env, toml, name, detail) in rows {
        let e = case.resolve(flags, env, toml, None).unwrap_err();
        assert_eq!(e.code, code::CONFIG, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains(&detail), "{name}: {msg}");
    }
}

#[test]
fn the_config_file_refuses_typos_inline_keys_and_bad_toml_by_line() {
    let case = Case::new();
    let path = case.config_path();
    for (toml, want) in [
        (
            "log_level = \"info\"\nmin_rpb = 40\n",
            format!("{path}:2: unknown key \"min_rpb\""),
        ),
        (
            "[profile.a]\nlogrhythm_api_key = \"canary-secret\"\n",
            format!("{path}:2: logrhythm_api_key: keys are never written"),
        ),
        (
            "rf_api_key = \"canary-secret\"\n",
            format!("{path}:1: rf_api_key"),
        ),
        ("min_rbp = \n", format!("{path}:1: not valid TOML")),
        (
            "[profile.a]\n[profile.a.profile.b]\n",
            format!("{path}:2: profiles do not nest"),
        ),
        ("[profile.\"a b\"]\n", format!("{path}:1: profile name")),
        (
            "profile = 3\n",
            format!("{path}:1: profile must be a table"),
        ),
    ] {
        let e = case
            .resolve(Layer::default(), &[], Some(toml), None)
            .unwrap_err();
        assert_eq!(e.code, code::CONFIG, "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with(&want), "{msg}\nwanted {want}");
        assert!(!msg.contains("canary-secret"), "{msg}");
    }
}

#[test]
fn missing_files_and_profiles_name_their_origin() {
    let case = Case::new();
    let env = env_of(&[("LRCI_CONFIG", "/nonexistent/lrci.toml")]);
    let src = Sources {
        flags: Layer::default(),
        config: None,
        profile: None,
        env: &env,
    };
    let e = resolve(&src).unwrap_err();
    assert_eq!(e.code, code::NO_INPUT);
    assert!(
        e.to_string()
            .starts_with("LRCI_CONFIG /nonexistent/lrci.toml"),
        "{e}"
    );
    let src = Sources {
        config: Some("/nonexistent/x.toml".into()),
        ..src
    };
    assert!(resolve(&src)
        .unwrap_err()
        .to_string()
        .starts_with("--config"));
    let e = case
        .resolve(
            Layer::default(),
            &[],
            Some("[profile.acme]\n"),
            Some("acmee"),
        )
        .unwrap_err();
    assert_eq!(e.code, code::CONFIG);
    let msg = e.to_string();
    assert!(
        msg.starts_with("--profile: no [profile.acmee]") && msg.contains("profiles: acme"),
        "{msg}"
    );
    let e = case
        .resolve(Layer::default(), &[("LRCI_PROFILE", "x")], None, None)
        .unwrap_err();
    assert!(e.to_string().starts_with("LRCI_PROFILE"), "{e}");
}

#[test]
fn profiles_never_share_a_ledger_or_log_directory() {
    let case = Case::new();
    let toml = "ledger = \"/srv/lrci/main.sqlite3\"\n[profile.a]\n[profile.b]\nlog_dir = \"/var/log/b\"\n[profile.c]\nledger = \"/data/c.db\"\n";
    let get = |p: Option<&str>| {
        let s = case.resolve(Layer::default(), &[], Some(toml), p).unwrap();
        (s.ledger().value, s.log_dir().value)
    };
    let rows = [
        (None, "/srv/lrci/main.sqlite3", "/srv/lrci/logs"),
        (Some("a"), "/srv/lrci/a.sqlite3", "/srv/lrci/logs/a"),
        (Some("b"), "/srv/lrci/b.sqlite3", "/var/log/b"),
        (Some("c"), "/data/c.db", "/data/logs/c"),
    ];
    for (p, ledger, logs) in rows {
        assert_eq!(
            get(p),
            (PathBuf::from(ledger), PathBuf::from(logs)),
            "{p:?}"
        );
    }
    // A flag still wins for one profile.
    let s = case
        .resolve(
            flags(&[("ledger", Raw::Str("/x.db".into()))]),
            &[],
            Some(toml),
            Some("a"),
        )
        .unwrap();
    assert_eq!(s.ledger().value, PathBuf::from("/x.db"));
    assert_eq!(s.ledger().origin, Origin::Flag("--ledger"));
    // ... but cannot serve every profile.
    let env = env_of(&[("LRCI_LEDGER", "/shared.db")]);
    let src = Sources {
        flags: Layer::default(),
        config: Some(case.file("config.toml", toml)),
        profile: None,
        env: &env,
    };
    let e = resolve_all(&src).err().unwrap();
    assert!(
        e.to_string()
            .starts_with("LRCI_LEDGER: one ledger cannot serve every profile"),
        "{e}"
    );
    let src = Sources {
        env: &|_| None,
        ..src
    };
    let names: Vec<String> = resolve_all(&src)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn key_sources_follow_the_layers_and_keys_are_never_shown() {
    let case = Case::new();
    let key = case.file("rf.key", "canary-from-file\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let k = key.display().to_string();
    let toml = format!("rf_api_key_file = \"{k}\"\n");
    let file_flag = flags(&[("rf_api_key_file", Raw::Str(k.clone()))]);
    let rows: [(Layer, &[(&str, &str)], Option<&str>, &str); 4] = [
        (
            file_flag,
            &[("RF_API_KEY", "canary-env")],
            None,
            "canary-from-file",
        ),
        (
            Layer::default(),
            &[("RF_API_KEY", "canary-env\r\n")],
            Some(&toml),
            "canary-env",
        ),
        (Layer::default(), &[], Some(&toml), "canary-from-file"),
        (
            Layer::default(),
            &[("RF_API_KEY", " canary-env ")],
            None,
            "canary-env",
        ),
    ];
    for (flags, env, toml, want) in rows {
        let s = case.resolve(flags, env, toml, None).unwrap();
        assert_eq!(s.key(RF_KEY_VAR).unwrap().expose_secret(), want);
        let shown = format!("{s:?}{}{}", show::text(&s), show::json(&s));
        assert!(!shown.contains("canary"), "{shown}");
    }
    let s = case.resolve(Layer::default(), &[], None, None).unwrap();
    let e = s.key(LR_KEY_VAR).unwrap_err();
    assert!(
        e.to_string().contains("LOGRHYTHM_API_KEY is not set"),
        "{e}"
    );
    for bad in ["", "  ", "a\nb-hidden", "naïve-hidden"] {
        let s = case
            .resolve(Layer::default(), &[("RF_API_KEY", bad)], None, None)
            .unwrap();
        let e = s.key(RF_KEY_VAR).unwrap_err();
        assert_eq!(e.code, code::CONFIG);
        assert!(
            e.to_string().contains("RF_API_KEY") && !e.to_string().contains("hidden"),
            "{e}"
        );
    }
}

#[test]
fn urls_are_checked_when_used_and_name_their_origin() {
    let case = Case::new();
    for (env, toml, want) in [
        (
            &[("LOGRHYTHM_API_URL", "pm.example:8501")][..],
            None,
            "LOGRHYTHM_API_URL",
        ),
        (
            &[("LOGRHYTHM_API_URL", "https://user:hunter2pw@pm.example")],
            None,
            "credentials",
        ),
        (
            &[],
            Some("logrhythm_api_url = \"ftp://pm\"\n"),
            "logrhythm_api_url (",
        ),
        (&[], None, "LOGRHYTHM_API_URL is not set"),
    ] {
        let s = case.resolve(Layer::default(), env, toml, None).unwrap();
        let msg = s.lr_url().unwrap_err().to_string();
        assert!(msg.contains(want) && !msg.contains("hunter2pw"), "{msg}");
        assert!(!show::text(&s).contains("hunter2pw"));
    }
    let s = case
        .resolve(
            Layer::default(),
            &[("RF_API_URL", "http://api.recordedfuture.com")],
            None,
            None,
        )
        .unwrap();
    assert!(s
        .rf_url()
        .unwrap_err()
        .to_string()
        .starts_with("RF_API_URL must be https"));
    let s = case
        .resolve(
            Layer::default(),
            &[("RF_API_URL", "http://127.0.0.1:9")],
            None,
            None,
        )
        .unwrap();
    assert!(s.rf_url().is_ok());
}

#[test]
fn filters_merge_lists_files_and_networks() {
    let case = Case::new();
    let domains = case.file("domains.txt", "corp.example\n");
    let toml = format!(
        "internal_domains = [\"acme.example\", \"ACME.example\"]\ninternal_domains_file = \"{}\"\nown_networks = [\"198.51.100.0/24\"]\nmin_rbp = 40\nrf_only = true\n",
        domains.display()
    );
    let s = case
        .resolve(Layer::default(), &[], Some(&toml), None)
        .unwrap();
    assert_eq!(s.list("internal_domains"), ["acme.example"]);
    let f = s.filters().unwrap();
    assert_eq!((f.min_rbp, f.rf_only), (Some(40), true));
    let s = case
        .resolve(
            Layer::default(),
            &[("LRCI_EXCLUDE_RULES_FILE", "/nonexistent/rules")],
            None,
            None,
        )
        .unwrap();
    let e = s.filters().err().unwrap();
    assert_eq!(e.code, code::NO_INPUT);
    assert!(
        e.to_string()
            .starts_with("LRCI_EXCLUDE_RULES_FILE /nonexistent/rules"),
        "{e}"
    );
}

#[test]
fn max_runtime_shorter_than_timeout_is_refused() {
    let case = Case::new();
    for (flags, env, want) in [
        (
            flags(&[("max_runtime", Raw::Int(5))]),
            &[][..],
            Some(code::USAGE),
        ),
        (
            Layer::default(),
            &[("LRCI_MAX_RUNTIME", "5")],
            Some(code::CONFIG),
        ),
        (Layer::default(), &[("LRCI_MAX_RUNTIME", "60")], None),
    ] {
        let s = case.resolve(flags, env, None, None).unwrap();
        assert_eq!(s.check_runtime().err().map(|e| e.code), want);
    }
}

#[test]
fn every_setting_has_a_unique_name_flag_and_variable() {
    let mut seen = std::collections::HashSet::new();
    for s in spec::SETTINGS {
        assert!(
            seen.insert(s.name) && seen.insert(s.flag) && seen.insert(s.env),
            "{}",
            s.name
        );
        assert!(s.flag.starts_with("--"));
        let vendor = ["LOGRHYTHM_API_URL", "RF_API_URL"].contains(&s.env);
        assert!(
            vendor || s.env == format!("LRCI_{}", s.name.to_uppercase()),
            "{}",
            s.env
        );
    }
    // Every name the code reads is declared.
    for name in [
        "timeout",
        "connect_timeout",
        "max_retries",
        "lookback",
        "settle",
        "page_size",
        "concurrency",
        "concurrency_max",
        "batch_size",
        "daily_budget",
        "max_runtime",
        "min_rbp",
        "rf_only",
        "lr_insecure",
        "lr_ca_cert",
        "internal_domains",
        "own_networks",
        "exclude_rules_file",
        "internal_domains_file",
        "exclude_indicators_file",
        "logrhythm_api_key_file",
        "rf_api_key_file",
        "ledger",
        "log_dir",
        "log_level",
        "logrhythm_api_url",
        "rf_api_url",
    ] {
        assert!(spec::spec(name).is_some(), "{name}");
    }
}

#[test]
fn concurrency_is_auto_by_default_or_a_fixed_number() {
    use crate::model::Concurrency;
    let case = Case::new();
    let rows: [(&[(&str, &str)], Option<&str>, Concurrency); 6] = [
        (&[], None, Concurrency::Auto { max: 32 }),
        (&[], Some("concurrency = 12\n"), Concurrency::Fixed(12)),
        (
            &[],
            Some("concurrency = \"auto\"\nconcurrency_max = 48\n"),
            Concurrency::Auto { max: 48 },
        ),
        (
            &[("LRCI_CONCURRENCY", " Auto ")],
            Some("concurrency = 4\n"),
            Concurrency::Auto { max: 32 },
        ),
        (
            &[("LRCI_CONCURRENCY", "3"), ("LRCI_CONCURRENCY_MAX", "2")],
            None,
            Concurrency::Fixed(3),
        ),
        (
            &[("LRCI_CONCURRENCY_MAX", "1")],
            None,
            Concurrency::Auto { max: 1 },
        ),
    ];
    for (env, toml, want) in rows {
        let s = case.resolve(Layer::default(), env, toml, None).unwrap();
        assert_eq!(s.concurrency(), want, "{env:?} {toml:?}");
    }
}

#[test]
fn readme_and_example_follow_the_declaration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&show::markdown_table()),
        "README.md's settings table is out of date; paste this:\n{}",
        show::markdown_table()
    );
    let example = root.join("contrib/lrci.toml.example");
    let f = file::load(&example, "example").unwrap();
    for s in spec::SETTINGS {
        let anywhere = f.top.entries.contains_key(s.name)
            || f.profiles
                .values()
                .any(|(l, _)| l.entries.contains_key(s.name));
        assert!(anywhere, "contrib/lrci.toml.example lacks {}", s.name);
    }
    let text = std::fs::read_to_string(&example).unwrap();
    assert!(
        readme.contains(text.trim()),
        "README.md must hold contrib/lrci.toml.example verbatim"
    );
}
