//! The checks behind [`Settings`]: URLs, proxies, key files and CA bundles, the
//! filter files, and the validated bundles the commands take ([`ApiConfig`],
//! [`CiConfig`], [`Filters`], [`HttpSettings`]). Every error names where the bad
//! value came from (never a secret's value) and carries its documented exit code.

use super::layer::Value;
use super::spec::{LR_KEY_VAR, RF_KEY_VAR};
use super::{KeySource, Settings};
use crate::error::{code, Fatal};
use crate::http::HttpOptions;
use crate::platform;
use secrecy::SecretString;
use std::path::Path;
use std::time::Duration;
use url::Url;

/// Timeouts and retries, shared by both clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
}

impl HttpSettings {
    /// The one place [`HttpOptions`] are built from settings; `deadline` is the
    /// run's `--max-runtime` end.
    pub fn options(&self, deadline: Option<tokio::time::Instant>) -> HttpOptions {
        HttpOptions {
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            max_retries: self.max_retries,
            deadline,
            ..HttpOptions::default()
        }
    }
}

/// Where both APIs are and how to talk to them.
pub struct ApiConfig {
    pub lr_url: Url,
    pub lr_key: SecretString,
    pub lr_ca_pem: Option<Vec<u8>>,
    pub lr_insecure: bool,
    pub ci: CiConfig,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("lr_url", &self.lr_url.as_str())
            .field("lr_key", &"[REDACTED]")
            .field("lr_insecure", &self.lr_insecure)
            .field("ci", &self.ci)
            .finish_non_exhaustive()
    }
}

impl ApiConfig {
    /// The LogRhythm client's options: the shared ones plus its TLS trust.
    pub fn lr_options(&self, deadline: Option<tokio::time::Instant>) -> HttpOptions {
        HttpOptions {
            ca_cert_pem: self.lr_ca_pem.clone(),
            insecure: self.lr_insecure,
            ..self.ci.http.options(deadline)
        }
    }
}

/// The Collective Insights settings alone: `replay` talks to no LogRhythm.
pub struct CiConfig {
    pub rf_url: Url,
    pub rf_key: SecretString,
    pub http: HttpSettings,
    /// What detections carry beyond the indicator (`detection_types_file`,
    /// `mitre_codes`, `malwares`).
    pub fields: crate::ci::Fields,
}

impl std::fmt::Debug for CiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiConfig")
            .field("rf_url", &self.rf_url.as_str())
            .field("rf_key", &"[REDACTED]")
            .field("http", &self.http)
            .finish()
    }
}

impl Settings {
    /// Both APIs: URLs, keys, TLS trust, proxies. Reads the key and CA files.
    pub fn api(&self) -> Result<ApiConfig, Fatal> {
        let lr_url = self.lr_url()?;
        let ci = self.ci()?;
        let lr_key = self.key(LR_KEY_VAR)?;
        Ok(ApiConfig {
            lr_url: lr_url.value,
            lr_key,
            lr_ca_pem: self.ca_pem()?,
            lr_insecure: self.flag("lr_insecure"),
            ci,
        })
    }

    /// Collective Insights alone.
    pub fn ci(&self) -> Result<CiConfig, Fatal> {
        let rf_url = self.rf_url()?;
        self.check_proxies()?;
        Ok(CiConfig {
            rf_url: rf_url.value,
            rf_key: self.key(RF_KEY_VAR)?,
            http: self.http(),
            fields: self.ci_fields()?,
        })
    }

    /// `detection_types_file` (read and checked), `detection_type`, `mitre_codes`,
    /// `malwares`.
    pub fn ci_fields(&self) -> Result<crate::ci::Fields, Fatal> {
        let rules = match self.path("detection_types_file") {
            Some(p) => {
                let text = read_text(&p.label(), &p.value)?;
                crate::ci::fields::parse_type_rules(&text).map_err(|e| {
                    Fatal::msg(
                        code::DATA,
                        format!(
                            "{} {}:{}: {}",
                            p.label(),
                            p.value.display(),
                            e.line,
                            e.reason
                        ),
                    )
                })?
            }
            None => Vec::new(),
        };
        Ok(crate::ci::Fields {
            rules,
            mitre_codes: self.flag("mitre_codes"),
            malwares: self.flag("malwares"),
            default_type: match self.get("detection_type").map(|v| &v.value) {
                Some(super::Typed::Level(t)) => Some(*t),
                _ => None,
            },
        })
    }

    /// `logrhythm_api_url`: required.
    pub fn lr_url(&self) -> Result<Value<Url>, Fatal> {
        match self.get("logrhythm_api_url") {
            Some(Value { value: super::Typed::Url(u), name, origin }) => {
                let label = super::layer::label(name, origin);
                Ok(Value { value: parse_url(&label, u)?, name, origin: origin.clone() })
            }
            _ => Err(Fatal::msg(
                code::CONFIG,
                "LOGRHYTHM_API_URL is not set: set it (or --lr-url, or logrhythm_api_url in the config file) to the LogRhythm API, e.g. https://platform-manager:8501",
            )),
        }
    }

    /// `rf_api_url`: https unless loopback.
    pub fn rf_url(&self) -> Result<Value<Url>, Fatal> {
        let Some(Value {
            value: super::Typed::Url(u),
            name,
            origin,
        }) = self.get("rf_api_url")
        else {
            return Err(Fatal::msg(code::CONFIG, "RF_API_URL is not set"));
        };
        let label = super::layer::label(name, origin);
        let u = parse_url(&label, u)?;
        if u.scheme() != "https" && !is_loopback(&u) {
            return Err(Fatal::msg(
                code::CONFIG,
                format!(
                    "{label} must be https (the token must not travel in clear): {}",
                    redact_url(&u)
                ),
            ));
        }
        let v = Value {
            value: u,
            name,
            origin: origin.clone(),
        };
        Ok(v)
    }

    /// Reads the key of `var` from where [`Settings::key_source`] says.
    pub fn key(&self, var: &'static str) -> Result<SecretString, Fatal> {
        let file_flag = if var == LR_KEY_VAR {
            "--lr-key-file"
        } else {
            "--rf-key-file"
        };
        match self.key_source(var) {
            KeySource::File(f) => secret_from_file(&f.label(), &f.value),
            KeySource::Env(_) => {
                let raw = self
                    .secrets
                    .get(var)
                    .map(|s| secrecy::ExposeSecret::expose_secret(s).to_string())
                    .unwrap_or_default();
                check_key(var, &raw)
            }
            KeySource::Missing => Err(Fatal::msg(
                code::CONFIG,
                format!("{var} is not set (or give {file_flag} FILE)"),
            )),
        }
    }

    /// The LogRhythm CA bundle, read and checked.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, Fatal> {
        match self.path("lr_ca_cert") {
            Some(p) => ca_bundle(&p.label(), &p.value).map(Some),
            None => Ok(None),
        }
    }

    fn check_proxies(&self) -> Result<(), Fatal> {
        let proxies = self.proxies.clone();
        check_proxies(&|v| {
            proxies
                .iter()
                .find(|(k, _)| *k == v)
                .map(|(_, val)| val.clone())
        })
    }

    /// The alarm filters and the indicator policy; reads the filter files.
    pub fn filters(&self) -> Result<Filters, Fatal> {
        let exclude_rules = match self.path("exclude_rules_file") {
            Some(p) => crate::policy::parse_rule_list(&read_text(&p.label(), &p.value)?),
            None => Vec::new(),
        };
        let mut internal = self.list("internal_domains");
        if let Some(p) = self.path("internal_domains_file") {
            let text = read_text(&p.label(), &p.value)?;
            for d in crate::policy::parse_internal_domains(&text)
                .map_err(|e| line_error(&p.label(), &p.value, &e))?
            {
                if !internal.contains(&d) {
                    internal.push(d);
                }
            }
        }
        let exclusions = match self.path("exclude_indicators_file") {
            Some(p) => {
                let text = read_text(&p.label(), &p.value)?;
                crate::policy::parse_exclusions(&text)
                    .map_err(|e| line_error(&p.label(), &p.value, &e))?
            }
            None => crate::policy::Exclusions::default(),
        };
        let nets = |name: &str| -> Vec<ipnetwork::IpNetwork> {
            self.list(name)
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect()
        };
        let policy = crate::policy::Policy::new(internal, exclusions)
            .with_own_networks(nets("own_networks"))
            .with_allowed(self.list("allow_domains"), nets("allow_networks"));
        Ok(Filters {
            min_rbp: self
                .optional("min_rbp")
                .map(|v| i64::try_from(v.value).unwrap_or(100)),
            rf_only: self.flag("rf_only"),
            exclude_rules,
            policy,
        })
    }
}

/// The proxy variables reqwest reads. A value it cannot use would be skipped
/// silently (the requests would go direct, or fail as "could not connect"), so
/// each set one must parse with a scheme reqwest supports.
pub(crate) const PROXY_VARS: [&str; 6] = [
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

pub(crate) fn parse_url(name: &str, raw: &str) -> Result<Url, Fatal> {
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

pub(crate) fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.set_query(None);
    u.to_string()
}

/// Reads a key from the file `label` names. Surrounding white space (such as a
/// final newline) is trimmed; anything else that cannot go in an HTTP header is
/// refused, naming the source, never the value.
pub fn secret_from_file(label: &str, p: &Path) -> Result<SecretString, Fatal> {
    check_private(label, p)?;
    let bytes = read_file(label, p)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Fatal::msg(
            code::CONFIG,
            format!("{label} {}: the key is not UTF-8 text", p.display()),
        )
    })?;
    check_key(&format!("{label} {}", p.display()), &text)
}

/// Checks a key's text; `source` names where it came from.
pub fn check_key(source: &str, raw: &str) -> Result<SecretString, Fatal> {
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

/// A key file others can read is refused (where files have modes).
fn check_private(flag: &str, p: &Path) -> Result<(), Fatal> {
    let mode = std::fs::metadata(p).ok().and_then(|m| platform::mode(&m));
    match mode {
        Some(mode) if mode & 0o077 != 0 => Err(Fatal::msg(
            code::CONFIG,
            format!(
                "{flag} {}: readable by others (mode {mode:o}); run chmod 600 on it",
                p.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// The metrics file must be a file in an existing directory (the textfile
/// collector's): checked before the run, so a typo is not found only at its end.
pub fn metrics_file(label: &str, p: &Path) -> Result<(), Fatal> {
    let bad = |why: String| Fatal::msg(code::CONFIG, format!("{label} {}: {why}", p.display()));
    if p.is_dir() {
        return Err(bad(
            "is a directory; name the file, e.g. lrci.prom in the textfile collector's directory"
                .into(),
        ));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(bad(format!(
            "the directory {} does not exist",
            dir.display()
        )));
    }
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

pub fn read_text(flag: &str, p: &Path) -> Result<String, Fatal> {
    let bytes = read_file(flag, p)?;
    String::from_utf8(bytes).map_err(|_| {
        Fatal::msg(
            code::DATA,
            format!("{flag} {}: not UTF-8 text", p.display()),
        )
    })
}

/// The alarm filters and the indicator policy.
pub struct Filters {
    pub min_rbp: Option<i64>,
    pub rf_only: bool,
    /// Rule names to skip, compared case-insensitively after trimming.
    pub exclude_rules: Vec<String>,
    pub policy: crate::policy::Policy,
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

impl Settings {
    /// `max_runtime` shorter than `timeout` would let one request outlive the run:
    /// a usage error when both are flags of this command line, else 78.
    pub fn check_runtime(&self) -> Result<(), Fatal> {
        let Some(max) = self.optional("max_runtime") else {
            return Ok(());
        };
        let Some(timeout) = self.optional("timeout") else {
            return Ok(());
        };
        if max.value >= timeout.value {
            return Ok(());
        }
        let both_flags = matches!(max.origin, super::Origin::Flag(_))
            && matches!(
                timeout.origin,
                super::Origin::Flag(_) | super::Origin::Default
            );
        Err(Fatal::msg(
            if both_flags { code::USAGE } else { code::CONFIG },
            format!(
                "{} {} is shorter than --timeout {} (from {}): one request alone could outlive the run",
                max.label(),
                max.value,
                timeout.value,
                timeout.origin
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use secrecy::ExposeSecret;

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
            let e = ca_bundle("--lr-ca-cert", &p).unwrap_err();
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
                "HTTPS_PROXY" => Some(value.to_string()),
                _ => None,
            };
            match check_proxies(&env) {
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

    #[test]
    fn key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rf.key");
        std::fs::write(&p, "token-from-file\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = secret_from_file("--rf-key-file", &p).unwrap_err();
        assert_eq!(e.code, code::CONFIG);
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = secret_from_file("--rf-key-file", &p).unwrap();
        assert_eq!(k.expose_secret(), "token-from-file");
        let e = secret_from_file("--rf-key-file", &dir.path().join("missing")).unwrap_err();
        assert_eq!(e.code, code::NO_INPUT);
    }
}
