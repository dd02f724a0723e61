//! Turns raw command-line arguments and environment into validated values, before
//! any network call or ledger write. Every error names the flag, variable or file
//! it is about (never a secret's value) and carries its documented exit code.

use crate::cli::args::{ApiArgs, CiApiArgs, GlobalArgs, RunArgs};
use crate::error::{code, Fatal};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Environment variable holding the LogRhythm API key.
pub const LR_KEY_VAR: &str = "LOGRHYTHM_API_KEY";
/// Environment variable holding the Recorded Future token.
pub const RF_KEY_VAR: &str = "RF_API_KEY";

/// Where both APIs are and how to talk to them.
pub struct ApiConfig {
    pub lr_url: Url,
    pub lr_key: SecretString,
    pub lr_ca_pem: Option<Vec<u8>>,
    pub lr_insecure: bool,
    pub rf_url: Url,
    pub rf_key: SecretString,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("lr_url", &self.lr_url.as_str())
            .field("lr_key", &"[REDACTED]")
            .field("lr_insecure", &self.lr_insecure)
            .field("rf_url", &self.rf_url.as_str())
            .field("rf_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Resolves the API settings. `env` reads a variable (injected for tests).
pub fn api(args: &ApiArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<ApiConfig, Fatal> {
    let lr_url = lr_url(args.lr_url.as_deref())?;
    let rf_url = rf_url(&args.rf_url)?;
    check_proxies(env)?;
    let lr_key = secret(
        LR_KEY_VAR,
        "--lr-key-file",
        args.lr_key_file.as_deref(),
        env,
    )?;
    let rf_key = secret(
        RF_KEY_VAR,
        "--rf-key-file",
        args.rf_key_file.as_deref(),
        env,
    )?;
    let lr_ca_pem = match &args.lr_ca_cert {
        Some(p) => Some(ca_bundle("--lr-ca-cert", p)?),
        None => None,
    };
    Ok(ApiConfig {
        lr_url,
        lr_key,
        lr_ca_pem,
        lr_insecure: args.lr_insecure,
        rf_url,
        rf_key,
        timeout: Duration::from_secs(args.timeout),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        max_retries: args.max_retries,
    })
}

/// The Collective Insights settings alone: `replay` talks to no LogRhythm.
pub struct CiConfig {
    pub rf_url: Url,
    pub rf_key: SecretString,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
}

impl std::fmt::Debug for CiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiConfig")
            .field("rf_url", &self.rf_url.as_str())
            .field("rf_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Resolves the Collective Insights settings, with the same rules as [`api`].
pub fn ci(args: &CiApiArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<CiConfig, Fatal> {
    let rf_url = rf_url(&args.rf_url)?;
    check_proxies(env)?;
    let rf_key = secret(
        RF_KEY_VAR,
        "--rf-key-file",
        args.rf_key_file.as_deref(),
        env,
    )?;
    Ok(CiConfig {
        rf_url,
        rf_key,
        timeout: Duration::from_secs(args.timeout),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        max_retries: args.max_retries,
    })
}

/// Checks `LOGRHYTHM_API_URL` (`--lr-url`): set, an http(s) URL with a host and
/// no credentials.
pub fn lr_url(raw: Option<&str>) -> Result<Url, Fatal> {
    match raw {
        Some(u) => parse_url("LOGRHYTHM_API_URL (--lr-url)", u),
        None => Err(Fatal::msg(
            code::CONFIG,
            "LOGRHYTHM_API_URL is not set: set it (or --lr-url) to the LogRhythm API, e.g. https://platform-manager:8501",
        )),
    }
}

/// The proxy variables reqwest reads. A value it cannot use would be skipped
/// silently (the requests would go direct, or fail as "could not connect"), so
/// each set one must parse with a scheme reqwest supports.
const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Refuses an unusable proxy setting before any request, naming the variable and
/// showing the URL without its credentials.
pub fn check_proxies(env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fatal> {
    for var in PROXY_VARS {
        let Some(raw) = env(var) else { continue };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        // reqwest reads a value without a scheme as http://.
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("http://{raw}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| {
            Fatal::msg(
                code::CONFIG,
                format!("{var}: not a proxy URL ({e}); expected e.g. http://proxy.example:3128"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Fatal::msg(
                code::CONFIG,
                format!(
                    "{var}: proxy scheme {:?} is not supported (use http:// or https://): {}",
                    url.scheme(),
                    redact_url(&url)
                ),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Fatal::msg(
                code::CONFIG,
                format!("{var}: no proxy host in {}", redact_url(&url)),
            ));
        }
    }
    Ok(())
}

/// Checks `RF_API_URL` (`--rf-url`): like [`lr_url`], and https unless loopback.
pub fn rf_url(raw: &str) -> Result<Url, Fatal> {
    let rf_url = parse_url("RF_API_URL (--rf-url)", raw)?;
    if rf_url.scheme() != "https" && !is_loopback(&rf_url) {
        return Err(Fatal::msg(
            code::CONFIG,
            format!(
                "RF_API_URL (--rf-url) must be https (the token must not travel in clear): {}",
                redact_url(&rf_url)
            ),
        ));
    }
    Ok(rf_url)
}

/// Reads and checks a PEM CA bundle named by `flag`. Every problem — missing,
/// unreadable, a directory, empty, not PEM, only a private key, a certificate
/// that does not decode — is a configuration error (exit 78), found before any
/// connection is made.
pub fn ca_bundle(flag: &str, p: &Path) -> Result<Vec<u8>, Fatal> {
    let pem = read_file(flag, p).map_err(|f| Fatal {
        code: code::CONFIG,
        ..f
    })?;
    crate::http::parse_ca_bundle(&pem).map_err(|e| {
        Fatal::new(
            code::CONFIG,
            anyhow::Error::new(e).context(format!("{flag} {}", p.display())),
        )
    })?;
    Ok(pem)
}

fn parse_url(name: &str, raw: &str) -> Result<Url, Fatal> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        Fatal::msg(
            code::CONFIG,
            format!("{name}: not a URL ({e}); expected e.g. https://host:8501"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Fatal::msg(
            code::CONFIG,
            format!("{name}: scheme {:?} is not http or https", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Fatal::msg(code::CONFIG, format!("{name}: no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Fatal::msg(
            code::CONFIG,
            format!("{name}: credentials in the URL are not allowed; use the key variables"),
        ));
    }
    Ok(url)
}

/// Whether a URL points at this machine (where plain http is acceptable).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.set_query(None);
    u.to_string()
}

/// Reads a key from its file (when given) or its environment variable. Surrounding
/// white space (such as the newline of `$(cat file)`) is trimmed; anything else that
/// cannot go in an HTTP header is refused, naming the source, never the value.
pub fn secret(
    var: &str,
    file_flag: &str,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, Fatal> {
    let (raw, source) = match file {
        Some(p) => {
            check_private(file_flag, p)?;
            let bytes = read_file(file_flag, p)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Fatal::msg(
                    code::CONFIG,
                    format!("{file_flag} {}: the key is not UTF-8 text", p.display()),
                )
            })?;
            (text, format!("{file_flag} {}", p.display()))
        }
        None => match env(var) {
            Some(v) => (v, var.to_string()),
            None => {
                return Err(Fatal::msg(
                    code::CONFIG,
                    format!("{var} is not set (or give {file_flag} FILE)"),
                ))
            }
        },
    };
    let key = raw.trim();
    if key.is_empty() {
        return Err(Fatal::msg(code::CONFIG, format!("{source} is empty")));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Fatal::msg(
            code::CONFIG,
            format!("{source} holds characters that cannot be sent in a header (spaces, control or non-ASCII characters)"),
        ));
    }
    Ok(SecretString::from(key.to_string()))
}

#[cfg(unix)]
fn check_private(flag: &str, p: &Path) -> Result<(), Fatal> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(p) {
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Fatal::msg(
                code::CONFIG,
                format!(
                    "{flag} {}: readable by others (mode {:o}); run chmod 600 on it",
                    p.display(),
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_flag: &str, _p: &Path) -> Result<(), Fatal> {
    Ok(())
}

/// Reads an input file named by a flag; a missing or unreadable file is exit 66.
pub fn read_file(flag: &str, p: &Path) -> Result<Vec<u8>, Fatal> {
    if p.is_dir() {
        return Err(Fatal::msg(
            code::NO_INPUT,
            format!("{flag} {}: is a directory", p.display()),
        ));
    }
    std::fs::read(p).map_err(|e| {
        Fatal::msg(
            code::NO_INPUT,
            format!("{flag} {}: cannot read it: {e}", p.display()),
        )
    })
}

fn read_text(flag: &str, p: &Path) -> Result<String, Fatal> {
    let bytes = read_file(flag, p)?;
    String::from_utf8(bytes).map_err(|_| {
        Fatal::msg(
            code::DATA,
            format!("{flag} {}: not UTF-8 text", p.display()),
        )
    })
}

/// The alarm filters and the indicator policy, from the run flags.
pub struct Filters {
    pub min_rbp: Option<i64>,
    pub rf_only: bool,
    /// Rule names to skip, compared case-insensitively after trimming.
    pub exclude_rules: Vec<String>,
    pub policy: crate::policy::Policy,
}

/// Reads and validates the filter files named by the run flags.
pub fn filters(run: &RunArgs) -> Result<Filters, Fatal> {
    let exclude_rules = match &run.exclude_rules {
        Some(p) => crate::policy::parse_rule_list(&read_text("--exclude-rules", p)?),
        None => Vec::new(),
    };
    let internal = match &run.internal_domains {
        Some(p) => {
            let text = read_text("--internal-domains", p)?;
            crate::policy::parse_internal_domains(&text)
                .map_err(|e| line_error("--internal-domains", p, &e))?
        }
        None => Vec::new(),
    };
    let exclusions = match &run.exclude_indicators {
        Some(p) => {
            let text = read_text("--exclude-indicators", p)?;
            crate::policy::parse_exclusions(&text)
                .map_err(|e| line_error("--exclude-indicators", p, &e))?
        }
        None => crate::policy::Exclusions::default(),
    };
    let policy = crate::policy::Policy::new(internal, exclusions);
    Ok(Filters {
        min_rbp: run.min_rbp.map(i64::from),
        rf_only: run.rf_only,
        exclude_rules,
        policy,
    })
}

fn line_error(flag: &str, p: &Path, e: &crate::policy::LineError) -> Fatal {
    Fatal::msg(
        code::DATA,
        format!(
            "{flag} {}:{}: {}: {:?}",
            p.display(),
            e.line,
            e.kind,
            e.text
        ),
    )
}

/// The ledger path: `--ledger`/`LRCI_LEDGER`, else the platform data directory.
pub fn ledger_path(global: &GlobalArgs) -> Result<PathBuf, Fatal> {
    if let Some(p) = &global.ledger {
        if p.as_os_str().is_empty() {
            return Err(Fatal::msg(code::CONFIG, "LRCI_LEDGER (--ledger) is empty"));
        }
        return Ok(p.clone());
    }
    directories::ProjectDirs::from("", "", "lrci")
        .map(|d| d.data_dir().join("ledger.sqlite3"))
        .ok_or_else(|| {
            Fatal::msg(
                code::CONFIG,
                "no home directory to put the ledger in: set LRCI_LEDGER (--ledger)",
            )
        })
}

/// The log directory: `--log-dir`/`LRCI_LOG_DIR`, else `logs/` beside the ledger.
/// The flag says whether it was given explicitly.
pub fn log_dir(global: &GlobalArgs, ledger: &Path) -> (PathBuf, bool) {
    match &global.log_dir {
        Some(d) => (d.clone(), true),
        None => (
            ledger
                .parent()
                .map_or_else(|| PathBuf::from("logs"), |p| p.join("logs")),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn args() -> ApiArgs {
        ApiArgs {
            lr_url: Some("https://pm.example:8501".into()),
            lr_key_file: None,
            lr_ca_cert: None,
            lr_insecure: false,
            rf_url: "https://api.recordedfuture.com".into(),
            rf_key_file: None,
            timeout: 60,
            connect_timeout: 10,
            max_retries: 4,
        }
    }

    fn env_with(
        lr: Option<&'static str>,
        rf: Option<&'static str>,
    ) -> impl Fn(&str) -> Option<String> {
        move |v| match v {
            LR_KEY_VAR => lr.map(String::from),
            RF_KEY_VAR => rf.map(String::from),
            _ => None,
        }
    }

    fn err(a: &ApiArgs, lr: Option<&'static str>, rf: Option<&'static str>) -> Fatal {
        api(a, &env_with(lr, rf)).err().unwrap()
    }

    #[test]
    fn keys_are_trimmed_and_never_shown() {
        let c = api(
            &args(),
            &env_with(Some("lr-secret-key\n"), Some("rf0123\r\n")),
        )
        .unwrap();
        assert_eq!(c.lr_key.expose_secret(), "lr-secret-key");
        assert_eq!(c.rf_key.expose_secret(), "rf0123");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("lr-secret-key") && !dbg.contains("rf0123"),
            "{dbg}"
        );
    }

    #[test]
    fn missing_or_bad_keys_name_the_variable() {
        for (lr, rf, var) in [
            (None, Some("x"), LR_KEY_VAR),
            (Some("  "), Some("x"), LR_KEY_VAR),
            (Some("x"), None, RF_KEY_VAR),
            (Some("x"), Some("a\nb-hidden"), RF_KEY_VAR),
            (Some("x"), Some("naïve-hidden"), RF_KEY_VAR),
        ] {
            let e = err(&args(), lr, rf);
            assert_eq!(e.code, code::CONFIG);
            let msg = e.to_string();
            assert!(msg.contains(var), "{msg}");
            assert!(!msg.contains("hidden"), "{msg}");
        }
    }

    #[test]
    fn urls_are_checked() {
        for (lr, rf) in [
            ("pm.example:8501", "https://api.recordedfuture.com"),
            ("ftp://pm.example", "https://api.recordedfuture.com"),
            ("https://pm.example:99999", "https://api.recordedfuture.com"),
            (
                "https://user:pw@pm.example",
                "https://api.recordedfuture.com",
            ),
            ("https://pm.example", "http://api.recordedfuture.com"),
        ] {
            let mut a = args();
            a.lr_url = Some(lr.into());
            a.rf_url = rf.into();
            assert_eq!(
                err(&a, Some("k"), Some("k")).code,
                code::CONFIG,
                "{lr} {rf}"
            );
        }
        let mut a = args();
        a.rf_url = "http://127.0.0.1:8080".into();
        assert!(api(&a, &env_with(Some("k"), Some("k"))).is_ok());
        a.lr_url = None;
        assert!(err(&a, Some("k"), Some("k"))
            .to_string()
            .contains("LOGRHYTHM_API_URL"));
    }

    #[test]
    fn ca_bundle_problems_are_config_errors_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let key_only = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBBrOJeYSTwvJ0DTY4ou2TZnbfgyI7dDQzY5sc5QxgL1\n-----END PRIVATE KEY-----\n";
        let bad_base64 =
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        // Valid base64, but not a DER certificate.
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let cases: [(&str, Option<&str>, &str); 7] = [
            ("missing", None, "cannot read"),
            ("empty", Some(""), "no PEM certificate"),
            (
                "garbage",
                Some("garbage\x00\x01 not pem"),
                "no PEM certificate",
            ),
            ("key-only", Some(key_only), "private key"),
            ("bad-base64", Some(bad_base64), "not a valid PEM"),
            ("not-der", Some(not_der), "cannot be decoded"),
            ("dir", None, "directory"),
        ];
        for (name, contents, want) in cases {
            let p = dir.path().join(name);
            if let Some(c) = contents {
                std::fs::write(&p, c).unwrap();
            }
            if name == "dir" {
                std::fs::create_dir(&p).unwrap();
            }
            let mut a = args();
            a.lr_ca_cert = Some(p.clone());
            let e = err(&a, Some("k"), Some("k"));
            assert_eq!(e.code, code::CONFIG, "{name}: {e}");
            let msg = e.to_string();
            assert!(msg.starts_with("--lr-ca-cert "), "{name}: {msg}");
            assert!(msg.contains(want), "{name}: {msg}");
            assert!(msg.contains(name), "{name}: {msg}");
            assert!(!msg.contains('\n'), "{name}: {msg}");
        }
    }

    #[test]
    fn unusable_proxies_are_refused_without_their_credentials() {
        for (value, ok) in [
            ("::::", false),
            ("ftp://user:proxy-secret@proxy:21", false),
            ("socks5://user:proxy-secret@proxy:1080", false),
            ("http://", false),
            ("http://user:proxy-secret@proxy.example:3128", true),
            ("proxy.example:3128", true),
            ("", true),
        ] {
            let env = |v: &str| match v {
                LR_KEY_VAR | RF_KEY_VAR => Some("k".to_string()),
                "HTTPS_PROXY" => Some(value.to_string()),
                _ => None,
            };
            match api(&args(), &env) {
                Ok(_) => assert!(ok, "{value} accepted"),
                Err(e) => {
                    assert!(!ok, "{value} refused: {e}");
                    assert_eq!(e.code, code::CONFIG);
                    let msg = e.to_string();
                    assert!(msg.starts_with("HTTPS_PROXY"), "{msg}");
                    assert!(!msg.contains("proxy-secret"), "{msg}");
                }
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rf.key");
        std::fs::write(&p, "token-from-file\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut a = args();
        a.rf_key_file = Some(p.clone());
        assert_eq!(err(&a, Some("k"), None).code, code::CONFIG);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = api(&a, &env_with(Some("k"), None)).unwrap();
        assert_eq!(c.rf_key.expose_secret(), "token-from-file");
        a.rf_key_file = Some(dir.path().join("missing"));
        assert_eq!(err(&a, Some("k"), None).code, code::NO_INPUT);
    }
}
