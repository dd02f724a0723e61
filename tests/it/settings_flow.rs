//! The settings model end to end through the binary: an error names its origin
//! (flag, environment, config file line, default); `config show` never prints a
//! key; `config check` exits 78 naming the culprit; two profiles against two
//! simulators with `sync --all-profiles`.

#![allow(clippy::type_complexity)]

use std::process::Command;

fn lrci(dir: &std::path::Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("lrci"));
    c.env_clear().env("HOME", dir).current_dir(dir);
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_origin_is_named_by_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "log_level = \"info\"\n\nmin_rbp = 140\n").unwrap();
    let cfg_s = cfg.display().to_string();
    let ok_cfg = dir.path().join("ok.toml");
    std::fs::write(&ok_cfg, "log_level = \"info\"\n").unwrap();
    let ok_s = ok_cfg.display().to_string();
    let rows: [(&[&str], &[(&str, &str)], i32, String); 4] = [
        // Flag (clap checks the range: a usage error naming the flag).
        (
            &["--config", &ok_s, "config", "check", "--min-rbp", "140"],
            &[],
            2,
            "--min-rbp".into(),
        ),
        (
            &["--config", &ok_s, "config", "check"],
            &[("LRCI_MIN_RBP", "140")],
            78,
            "LRCI_MIN_RBP".into(),
        ),
        (
            &["--config", &cfg_s, "config", "check"],
            &[],
            78,
            format!("min_rbp ({cfg_s}:3)"),
        ),
        // Default: no LogRhythm URL anywhere.
        (
            &["--config", &ok_s, "config", "check"],
            &[("RF_API_KEY", "k"), ("LOGRHYTHM_API_KEY", "k")],
            78,
            "LOGRHYTHM_API_URL is not set".into(),
        ),
    ];
    for (args, env, code, want) in rows {
        let (got, _, err) = run(lrci(dir.path()).args(args).envs(env.iter().copied()));
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}: {err}");
    }
}

#[test]
fn config_show_never_prints_a_key_and_check_names_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rf.key");
    std::fs::write(&key, "canaryfilesecret0123456789abcdef\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "logrhythm_api_url = \"https://pm.example:8501\"\nrf_api_key_file = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let c = cfg.display().to_string();
    for json in [false, true] {
        let mut cmd = lrci(dir.path());
        cmd.args(["--config", &c, "config", "show"])
            .env("LOGRHYTHM_API_KEY", "canaryenvsecret");
        if json {
            cmd.arg("--json");
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{err}");
        assert!(
            !out.contains("canary") && !err.contains("canary"),
            "{out}{err}"
        );
        assert!(
            out.contains("LOGRHYTHM_API_KEY") && out.contains("rf.key"),
            "{out}"
        );
    }
    let (code, out, err) = run(lrci(dir.path())
        .args(["--config", &c, "config", "check"])
        .env("LOGRHYTHM_API_KEY", "canaryenvsecret"));
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(
        &cfg,
        "logrhythm_api_url = \"https://pm.example\"\nrf_api_key = \"canaryinline\"\n",
    )
    .unwrap();
    let (code, _, err) = run(lrci(dir.path()).args(["--config", &c, "config", "check"]));
    assert_eq!(code, 78);
    assert!(
        err.contains(&format!("{c}:2: rf_api_key")) && !err.contains("canaryinline"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_profiles_two_simulators_all_profiles() {
    let a = crate::harness::start(crate::harness::live_config(3, 10)).await;
    let b = crate::harness::start(lrci::sim::SimConfig {
        seed: 2,
        ..crate::harness::live_config(3, 10)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write_key = |name: &str, k: &str| {
        let p = d.join(name);
        std::fs::write(&p, k).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        p.display().to_string()
    };
    let profile = |name: &str, url: &str, lr: &str, rf: &str| {
        format!(
            "[profile.{name}]\nlogrhythm_api_url = \"{url}\"\nrf_api_url = \"{url}\"\nlogrhythm_api_key_file = \"{}\"\nrf_api_key_file = \"{}\"\n",
            write_key(&format!("{name}-lr.key"), lr),
            write_key(&format!("{name}-rf.key"), rf)
        )
    };
    let cfg = d.join("config.toml");
    let text = format!(
        "settle = 0\nledger = \"{}\"\n{}{}",
        d.join("lrci.sqlite3").display(),
        profile(
            "alpha",
            &a.url(),
            lrci::sim::DEFAULT_LR_KEY,
            lrci::sim::DEFAULT_RF_KEY
        ),
        profile(
            "beta",
            &b.url(),
            lrci::sim::DEFAULT_LR_KEY,
            lrci::sim::DEFAULT_RF_KEY
        )
    );
    std::fs::write(&cfg, &text).unwrap();
    let c = cfg.display().to_string();
    let sync = |c: String| {
        let d = d.to_path_buf();
        tokio::task::spawn_blocking(move || {
            run(lrci(&d).args(["--config", &c, "sync", "--all-profiles"]))
        })
    };
    let (code, out, err) = sync(c.clone()).await.unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    for (name, sim) in [("alpha", &a), ("beta", &b)] {
        let truth: std::collections::BTreeSet<i64> = crate::harness::truth(sim)
            .await
            .iter()
            .map(|t| t["alarmId"].as_i64().unwrap())
            .collect();
        let got = crate::harness::ledger_alarm_ids(&d.join(format!("{name}.sqlite3")));
        assert_eq!(got, truth, "{name} holds exactly its own tenant's alarms");
        let logs = d.join("logs").join(name);
        let files: Vec<_> = std::fs::read_dir(&logs).unwrap().collect();
        assert!(
            !files.is_empty(),
            "{name}: no log file in {}",
            logs.display()
        );
    }
    // A wrong key for beta: beta exits 77, alpha still completes, overall 77.
    write_key("beta-lr.key", "wrong-logrhythm-key");
    let (code, out, err) = sync(c).await.unwrap();
    assert_eq!(code, 77, "{out}\n{err}");
    assert!(err.contains("profile alpha: exit code 0"), "{err}");
    assert!(err.contains("profile beta: exit code 77"), "{err}");
}
