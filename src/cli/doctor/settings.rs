//! Doctor's configuration checks: the resolved settings, URLs, keys and filters.

use super::*;

/// What the network checks need, when the configuration provides it.
pub(super) struct Apis {
    pub(super) lr: Option<LrSettings>,
    pub(super) rf: Option<(Url, SecretString)>,
}

#[derive(Clone)]
pub(super) struct LrSettings {
    pub(super) url: Url,
    pub(super) key: SecretString,
    pub(super) ca_pem: Option<Vec<u8>>,
    pub(super) insecure: bool,
}

pub(super) fn url_detail(url: &Url, secret_name: &str) -> (Status, String) {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    match url.scheme() {
        "https" => (Status::Ok, format!("{shown}")),
        _ if config::check::is_loopback(url) => {
            (Status::Ok, format!("{shown} (plain http on loopback)"))
        }
        _ => (
            Status::Warn,
            format!("{shown}: plain http, so {secret_name} travels in clear; use the https port"),
        ),
    }
}

/// One check per URL, key, CA bundle and the filters, each from the settings'
/// own validation (no second copy of the rules here).
pub(super) fn config_checks(s: &Settings, out: &mut Vec<Check>) -> Apis {
    let lr = lr_config_checks(s, out);
    let rf = rf_config_checks(s, out);
    const FILTERS: &str = "config: filter files";
    match s.filters() {
        Ok(f) => out.push(Check::ok(FILTERS, filters_detail(s, f.exclude_rules.len()))),
        Err(f) => out.push(Check::from_fatal(FILTERS, &f)),
    }
    Apis { lr, rf }
}

pub(super) fn url_check(
    name: &str,
    url: Result<config::Value<Url>, Fatal>,
    var: &str,
    out: &mut Vec<Check>,
) -> Option<Url> {
    match url {
        Ok(u) => {
            let (status, detail) = url_detail(&u.value, var);
            out.push(Check::new(name, status, detail));
            Some(u.value)
        }
        Err(f) => {
            out.push(Check::from_fatal(name, &f));
            None
        }
    }
}

pub(super) fn lr_config_checks(s: &Settings, out: &mut Vec<Check>) -> Option<LrSettings> {
    let url = url_check("config: LOGRHYTHM_API_URL", s.lr_url(), LR_KEY_VAR, out);
    let key = key_check("config: LOGRHYTHM_API_KEY", s, LR_KEY_VAR, out);
    const LR_TLS: &str = "config: LogRhythm TLS";
    let insecure = s.flag("lr_insecure");
    let ca_pem = match s.ca_pem() {
        Ok(pem) => {
            if !insecure {
                let detail = match s.path("lr_ca_cert") {
                    Some(p) => format!(
                        "{} {}: a readable PEM CA bundle",
                        p.label(),
                        p.value.display()
                    ),
                    None => "the platform's trusted roots (no --lr-ca-cert)".to_string(),
                };
                out.push(Check::ok(LR_TLS, detail));
            }
            Some(pem)
        }
        Err(f) => {
            out.push(Check::from_fatal(LR_TLS, &f));
            None
        }
    };
    if insecure {
        out.push(Check::warn(
            LR_TLS,
            "--lr-insecure: LogRhythm's certificate is NOT verified; pass its CA with --lr-ca-cert instead",
        ));
    }
    match (url, key, ca_pem) {
        (Some(url), Some(key), Some(ca_pem)) => Some(LrSettings {
            url,
            key,
            ca_pem,
            insecure,
        }),
        _ => None,
    }
}

pub(super) fn rf_config_checks(s: &Settings, out: &mut Vec<Check>) -> Option<(Url, SecretString)> {
    let url = url_check("config: RF_API_URL", s.rf_url(), RF_KEY_VAR, out);
    let key = key_check("config: RF_API_KEY", s, RF_KEY_VAR, out);
    if let Some(k) = &key {
        if !looks_like_rf_token(k.expose_secret()) {
            if let Some(last) = out.last_mut() {
                last.status = Status::Warn;
                last.detail.push_str(
                    "; but it is not 32 lowercase letters and digits, the form of Recorded Future API tokens (Recorded Future's own SDK refuses other tokens)",
                );
            }
        }
    }
    url.zip(key)
}

pub(super) fn key_check(
    name: &str,
    s: &Settings,
    var: &'static str,
    out: &mut Vec<Check>,
) -> Option<SecretString> {
    match s.key(var) {
        Ok(key) => {
            let source = match s.key_source(var) {
                KeySource::File(f) => format!("{} {}", f.label(), f.value.display()),
                _ => var.to_string(),
            };
            out.push(Check::ok(
                name,
                format!("present and well-formed (from {source}; the value is never shown)"),
            ));
            Some(key)
        }
        Err(f) => {
            out.push(Check::from_fatal(name, &f));
            None
        }
    }
}

/// The form psengine insists on: `^[a-z0-9]{32}$`.
pub(super) fn looks_like_rf_token(t: &str) -> bool {
    t.len() == 32
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub(super) fn filters_detail(s: &Settings, rules: usize) -> String {
    let mut parts = Vec::new();
    for (name, extra) in [
        ("exclude_rules_file", format!(" ({rules} rules)")),
        ("internal_domains_file", String::new()),
        ("exclude_indicators_file", String::new()),
    ] {
        if let Some(p) = s.path(name) {
            parts.push(format!("{} {}{extra}", p.label(), p.value.display()));
        }
    }
    if parts.is_empty() {
        "none given".to_string()
    } else {
        format!("{}: readable and valid", parts.join(", "))
    }
}
