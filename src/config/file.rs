//! The config file (TOML): top-level keys are defaults, each `[profile.NAME]` one
//! tenant. Parsed with spans so every value remembers its line and every error
//! names `FILE:LINE`. Unknown keys are errors (a typo must not be ignored), and so
//! is a key written inline (`logrhythm_api_key = "..."`): its value is never shown.

use super::layer::{kind_text, Layer, Origin, Raw};
use super::spec::{self, INLINE_KEYS};
use crate::error::{code, Fatal};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A parsed config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct File {
    pub path: PathBuf,
    /// The top-level keys: defaults for every profile.
    pub top: Layer,
    /// Each `[profile.NAME]`: its keys and the line of its header.
    pub profiles: BTreeMap<String, (Layer, usize)>,
}

/// Reads and parses `path`; a file that cannot be read is exit 66, one that
/// does not parse or holds a bad key is 78. `label` names where the path came
/// from (`--config`, `LRCI_CONFIG`).
pub fn load(path: &Path, label: &str) -> Result<File, Fatal> {
    let bytes = super::check::read_file(label, path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Fatal::msg(
            code::CONFIG,
            format!("{label} {}: not UTF-8 text", path.display()),
        )
    })?;
    parse(path, &text)
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

fn at(path: &Path, line: usize, msg: impl std::fmt::Display) -> Fatal {
    Fatal::msg(code::CONFIG, format!("{}:{line}: {msg}", path.display()))
}

/// Parses the text of a config file.
pub fn parse(path: &Path, text: &str) -> Result<File, Fatal> {
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        at(
            path,
            line,
            format!("not valid TOML: {}", e.message().trim()),
        )
    })?;
    let mut file = File {
        path: path.to_path_buf(),
        ..File::default()
    };
    for (key, value) in doc.get_ref().iter() {
        let line = line_of(text, key.span().start);
        if key.get_ref() == "profile" {
            let Some(table) = value.get_ref().as_table() else {
                return Err(at(
                    path,
                    line,
                    "profile must be a table of [profile.NAME] sections",
                ));
            };
            for (name, body) in table.iter() {
                let pline = line_of(text, name.span().start);
                let Some(body) = body.get_ref().as_table() else {
                    return Err(at(
                        path,
                        pline,
                        format!("profile.{} must be a table", name.get_ref()),
                    ));
                };
                check_profile_name(path, pline, name.get_ref())?;
                let layer = table_layer(path, text, body)?;
                file.profiles
                    .insert(name.get_ref().to_string(), (layer, pline));
            }
        } else {
            entry(path, text, &mut file.top, key, value)?;
        }
    }
    Ok(file)
}

/// Profile names become file names (derived ledger and log directory).
fn check_profile_name(path: &Path, line: usize, name: &str) -> Result<(), Fatal> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(at(
            path,
            line,
            format!("profile name {name:?}: use letters, digits, - and _ (at most 64)"),
        ))
    }
}

fn table_layer(path: &Path, text: &str, t: &DeTable<'_>) -> Result<Layer, Fatal> {
    let mut layer = Layer::default();
    for (key, value) in t.iter() {
        if key.get_ref() == "profile" {
            let line = line_of(text, key.span().start);
            return Err(at(path, line, "profiles do not nest"));
        }
        entry(path, text, &mut layer, key, value)?;
    }
    Ok(layer)
}

fn entry(
    path: &Path,
    text: &str,
    layer: &mut Layer,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
) -> Result<(), Fatal> {
    let line = line_of(text, key.span().start);
    let name = key.get_ref().as_ref();
    if let Some((_, file_key)) = INLINE_KEYS.iter().find(|(k, _)| *k == name) {
        return Err(at(path, line, format!(
            "{name}: keys are never written in the config file (the value is not shown); put it in a file readable only by lrci and set {file_key}, or use the environment variable"
        )));
    }
    let Some(s) = spec::spec(name) else {
        return Err(at(
            path,
            line,
            format!("unknown key {name:?} (see `lrci config show` for the keys)"),
        ));
    };
    let raw = raw(value.get_ref()).ok_or_else(|| {
        at(
            path,
            line,
            format!("{name}: expected {}", kind_text(s.kind)),
        )
    })?;
    let origin = Origin::File {
        path: path.to_path_buf(),
        line,
    };
    layer.entries.insert(s.name, (raw, origin));
    Ok(())
}

fn raw(v: &DeValue<'_>) -> Option<Raw> {
    match v {
        DeValue::String(s) => Some(Raw::Str(s.to_string())),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(Raw::Int),
        DeValue::Boolean(b) => Some(Raw::Bool(*b)),
        DeValue::Array(items) => items
            .iter()
            .map(|i| i.get_ref().as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .map(Raw::List),
        _ => None,
    }
}
