//! Layers of raw values (flag, environment, config file, default), each value with
//! the [`Origin`] it came from, and the one conversion of a raw value into a typed
//! one ([`typed`]) whose errors name that origin.

use super::spec::{self, Kind, Spec};
use crate::error::{code, Fatal};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (its long form).
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A line of the config file.
    File { path: PathBuf, line: usize },
    /// The declared default.
    Default,
    /// Computed from other settings (per-profile ledger and log directory).
    Derived(String),
}

impl Origin {
    /// Layer rank: flag 3 > environment 2 > file 1 > default 0.
    pub fn rank(&self) -> u8 {
        match self {
            Origin::Flag(_) => 3,
            Origin::Env(_) => 2,
            Origin::File { .. } => 1,
            Origin::Default | Origin::Derived(_) => 0,
        }
    }

    /// Whether the value was given rather than defaulted.
    pub fn is_given(&self) -> bool {
        self.rank() > 0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(s) | Origin::Env(s) => f.write_str(s),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Default => f.write_str("default"),
            Origin::Derived(s) => write!(f, "default ({s})"),
        }
    }
}

/// A resolved value that remembers its setting and origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Value<T> {
    pub value: T,
    pub name: &'static str,
    pub origin: Origin,
}

impl<T> Value<T> {
    /// How an error names this value: the flag or variable itself, else the key
    /// with its file line (or `default`).
    pub fn label(&self) -> String {
        label(self.name, &self.origin)
    }
}

/// See [`Value::label`].
pub fn label(name: &str, origin: &Origin) -> String {
    match origin {
        Origin::Flag(s) | Origin::Env(s) => s.to_string(),
        other => format!("{name} ({other})"),
    }
}

/// A value as a layer holds it, before its type is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

/// One layer: setting name → raw value and origin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    pub entries: BTreeMap<&'static str, (Raw, Origin)>,
}

impl Layer {
    /// Sets a value given by a flag; the origin is the setting's declared flag.
    pub fn flag(&mut self, name: &'static str, raw: Raw) {
        let flag = spec::spec(name).map_or(name, |s| s.flag);
        self.entries.insert(name, (raw, Origin::Flag(flag)));
    }

    /// The environment layer: every declared variable that is set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Layer {
        let mut layer = Layer::default();
        for s in spec::SETTINGS {
            if let Some(v) = env(s.env) {
                layer
                    .entries
                    .insert(s.name, (Raw::Str(v), Origin::Env(s.env)));
            }
        }
        layer
    }
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Int(u64),
    Bool(bool),
    Path(PathBuf),
    /// Checked when used ([`super::Settings::lr_url`]), so `doctor` can report
    /// each URL on its own line.
    Url(String),
    /// A word from a fixed set (a log level, a log format), canonical.
    Level(&'static str),
    List(Vec<String>),
}

/// The error for a value of `name` from `origin`: one line naming the origin.
pub fn bad(name: &str, origin: &Origin, problem: impl fmt::Display) -> Fatal {
    Fatal::msg(code::CONFIG, format!("{}: {problem}", label(name, origin)))
}

/// Checks a raw value against its declaration.
pub fn typed(s: &Spec, raw: &Raw, origin: &Origin) -> Result<Typed, Fatal> {
    let err = |p: String| bad(s.name, origin, p);
    match (s.kind, raw) {
        (Kind::Int { min, max }, _) => whole(raw, min, max, "", "not a whole number")
            .map(Typed::Int)
            .map_err(err),
        (Kind::IntOrAuto { .. }, Raw::Str(t)) if t.trim().eq_ignore_ascii_case("auto") => {
            Ok(Typed::Level("auto"))
        }
        (Kind::IntOrAuto { min, max }, _) => {
            whole(raw, min, max, "auto or ", "neither auto nor a whole number")
                .map(Typed::Int)
                .map_err(err)
        }
        (Kind::Bool, Raw::Bool(b)) => Ok(Typed::Bool(*b)),
        (Kind::Bool, Raw::Str(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Typed::Bool(true)),
            "false" | "0" | "no" | "off" | "" => Ok(Typed::Bool(false)),
            other => Err(err(format!("{other:?} is not true or false"))),
        },
        (Kind::Path, Raw::Str(t)) if t.is_empty() => Err(err("is empty".into())),
        (Kind::Path, Raw::Str(t)) => Ok(Typed::Path(PathBuf::from(t))),
        (Kind::Url, Raw::Str(t)) => Ok(Typed::Url(t.clone())),
        (Kind::Level, Raw::Str(t)) => level(t).map(Typed::Level).ok_or_else(|| {
            err(format!(
                "{:?} is not one of error, warn, info, debug, trace",
                t.trim()
            ))
        }),
        (Kind::DetectionType, Raw::Str(t)) => detection_type(t).map(Typed::Level).map_err(err),
        (Kind::LogFormat, Raw::Str(t)) => log_format(t)
            .map(Typed::Level)
            .ok_or_else(|| err(format!("{:?} is not one of text, json", t.trim()))),
        (Kind::Domains | Kind::Networks, Raw::Str(t)) => list(s, &split(t), origin),
        (Kind::Domains | Kind::Networks, Raw::List(items)) => list(s, items, origin),
        _ => Err(err(format!("expected {}", kind_text(s.kind)))),
    }
}

/// A whole number in `min..=max` from `raw`; the problem otherwise. `also`
/// prefixes the range in errors, `not` says what a word that is not a number is not.
fn whole(raw: &Raw, min: u64, max: u64, also: &str, not: &str) -> Result<u64, String> {
    let n = match raw {
        Raw::Int(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative"))?,
        Raw::Str(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{:?} is {not}", t.trim()))?,
        _ => return Err(format!("expected {also}a whole number")),
    };
    if n < min || n > max {
        let range = if max == u64::MAX {
            format!("at least {min}")
        } else {
            format!("{min}..={max}")
        };
        return Err(format!("{n} is out of range ({also}{range})"));
    }
    Ok(n)
}

fn split(t: &str) -> Vec<String> {
    t.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

fn list(s: &Spec, items: &[String], origin: &Origin) -> Result<Typed, Fatal> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let norm = match s.kind {
            Kind::Networks => item
                .trim()
                .parse::<ipnetwork::IpNetwork>()
                .map(|n| n.to_string())
                .map_err(|e| {
                    bad(
                        s.name,
                        origin,
                        format!("{:?} is not a CIDR network ({e})", item.trim()),
                    )
                })?,
            _ => crate::policy::parse_internal_domains(item)
                .ok()
                .and_then(|mut v| v.pop())
                .ok_or_else(|| {
                    bad(
                        s.name,
                        origin,
                        format!("{:?} is not a domain suffix", item.trim()),
                    )
                })?,
        };
        if !out.contains(&norm) {
            out.push(norm);
        }
    }
    Ok(Typed::List(out))
}

/// The canonical name of a log level (`warning` is `warn`), any case.
pub fn level(t: &str) -> Option<&'static str> {
    match t.trim().to_ascii_lowercase().as_str() {
        "error" => Some("error"),
        "warn" | "warning" => Some("warn"),
        "info" => Some("info"),
        "debug" => Some("debug"),
        "trace" => Some("trace"),
        _ => None,
    }
}

/// The canonical name of a log format (`text` or `json`), any case.
pub fn log_format(t: &str) -> Option<&'static str> {
    match t.trim().to_ascii_lowercase().as_str() {
        "text" => Some("text"),
        "json" => Some("json"),
        _ => None,
    }
}

/// The canonical name of a global `detection.type`, any case.
pub fn detection_type(t: &str) -> Result<&'static str, String> {
    match t.trim().to_ascii_lowercase().as_str() {
        "correlation" => Ok("correlation"),
        "playbook" => Ok("playbook"),
        "sandbox" => Ok("sandbox"),
        "detection_rule" => Err(
            "detection_rule needs a sub type and an id per rule: give it in detection_types_file (PATTERN = detection_rule:SUB_TYPE,ID)".into(),
        ),
        other => Err(format!("{other:?} is not one of correlation, playbook, sandbox")),
    }
}

/// What a kind expects, for errors and the README.
pub fn kind_text(k: Kind) -> &'static str {
    match k {
        Kind::Int { .. } => "a whole number",
        Kind::IntOrAuto { .. } => "auto or a whole number",
        Kind::Bool => "true or false",
        Kind::Path => "a path",
        Kind::Url => "a URL",
        Kind::Level => "a log level",
        Kind::LogFormat => "text or json",
        Kind::DetectionType => "correlation, playbook or sandbox",
        Kind::Domains => "a list of domain suffixes",
        Kind::Networks => "a list of CIDR networks",
    }
}
