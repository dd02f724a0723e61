//! What `config show` prints: each setting's effective value and origin, keys
//! only as "set" with their source (never their value); and the settings table of
//! the README, generated from the declaration.

use super::layer::{kind_text, Typed};
use super::spec::{self, LR_KEY_VAR, RF_KEY_VAR};
use super::{KeySource, Settings};
use serde_json::{json, Value as Json};

/// One line of `config show`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: &'static str,
    /// The value as shown (a key is never shown).
    pub shown: String,
    pub json: Json,
    pub origin: String,
}

fn shown(t: &Typed) -> (String, Json) {
    match t {
        Typed::Int(n) => (n.to_string(), json!(n)),
        Typed::Bool(b) => (b.to_string(), json!(b)),
        Typed::Path(p) => (p.display().to_string(), json!(p.display().to_string())),
        // Never the raw text: it could hold credentials.
        Typed::Url(u) => match url::Url::parse(u.trim()) {
            Ok(u) => {
                let r = super::check::redact_url(&u);
                (r.clone(), json!(r))
            }
            Err(_) => ("(not a URL; see `lrci config check`)".into(), Json::Null),
        },
        Typed::Level(l) => ((*l).to_string(), json!(l)),
        Typed::List(l) => (l.join(", "), json!(l)),
    }
}

fn key_row(s: &Settings, name: &'static str, var: &'static str) -> Row {
    let (text, origin) = match s.key_source(var) {
        KeySource::File(f) => (
            format!("set, read from {} (not shown)", f.value.display()),
            f.origin.to_string(),
        ),
        KeySource::Env(v) => ("set (not shown)".to_string(), v.to_string()),
        KeySource::Missing => ("not set".to_string(), "-".to_string()),
    };
    Row {
        name,
        json: json!(text),
        shown: text,
        origin,
    }
}

/// Every setting of `s` in declaration order, with the two keys redacted.
pub fn rows(s: &Settings) -> Vec<Row> {
    let mut out = Vec::new();
    for sp in spec::SETTINGS {
        let row = match s.get(sp.name) {
            Some(v) => {
                let (shown, json) = shown(&v.value);
                Row {
                    name: sp.name,
                    shown,
                    json,
                    origin: v.origin.to_string(),
                }
            }
            None => Row {
                name: sp.name,
                shown: "unset".into(),
                json: Json::Null,
                origin: "default".into(),
            },
        };
        out.push(row);
        match sp.name {
            "logrhythm_api_key_file" => out.push(key_row(s, "logrhythm_api_key", LR_KEY_VAR)),
            "rf_api_key_file" => out.push(key_row(s, "rf_api_key", RF_KEY_VAR)),
            _ => {}
        }
    }
    out
}

/// `config show` for people: a header, then `name = value   (origin)`.
pub fn text(s: &Settings) -> String {
    let rows = rows(s);
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut t = header(s);
    for r in rows {
        t.push_str(&format!(
            "{:<width$} = {}  ({})\n",
            r.name, r.shown, r.origin
        ));
    }
    t
}

fn header(s: &Settings) -> String {
    let profile = s
        .profile
        .as_ref()
        .map_or("(none: top-level settings)".to_string(), |p| {
            format!("{} (from {})", p.value, p.origin)
        });
    let file = s.config.as_ref().map_or("none".to_string(), |c| {
        format!("{} ({})", c.value.display(), c.origin)
    });
    format!("profile: {profile}\nconfig file: {file}\n")
}

/// `config show --json`: one object.
pub fn json(s: &Settings) -> Json {
    let settings: Vec<Json> = rows(s)
        .into_iter()
        .map(|r| json!({"name": r.name, "value": r.json, "origin": r.origin}))
        .collect();
    json!({
        "profile": s.profile.as_ref().map(|p| p.value.clone()),
        "config_file": s.config.as_ref().map(|c| c.value.display().to_string()),
        "settings": settings,
    })
}

/// The README's settings table (Markdown), from the declaration.
pub fn markdown_table() -> String {
    let mut t =
        String::from("| key | flag | environment | default | meaning |\n|---|---|---|---|---|\n");
    for s in spec::SETTINGS {
        t.push_str(&format!(
            "| `{}` | `{}` | `{}` | {} | {} ({}) |\n",
            s.name,
            s.flag,
            s.env,
            spec::default_text(s.default),
            s.doc,
            kind_text(s.kind)
        ));
        if s.name == "logrhythm_api_key_file" {
            t.push_str("| — | — | `LOGRHYTHM_API_KEY` | unset | The LogRhythm API key itself (environment only; never a flag or a config key) |\n");
        }
        if s.name == "rf_api_key_file" {
            t.push_str("| — | — | `RF_API_KEY` | unset | The Recorded Future token itself (environment only; never a flag or a config key) |\n");
        }
    }
    t
}
