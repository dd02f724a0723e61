//! Settings: every setting declared once ([`spec::SETTINGS`]), read from the
//! layers flag > environment > config file (`[profile.NAME]`, then its top-level
//! keys) > default, and resolved once into one [`Settings`] value in which each
//! value remembers its [`Origin`]. Every error about a setting names that origin
//! (`--min-rbp`, `LRCI_MIN_RBP`, `config.toml:12`, default) and exits 78 (66 for a
//! named file that cannot be read).
//!
//! Must not: import `cli` (the command line hands in a flag [`Layer`]), touch the
//! network or the ledger, or show a key anywhere (`Debug`, errors, `config show`).

pub mod check;
pub mod file;
pub mod layer;
pub mod show;
pub mod spec;
mod time;

pub use check::{ApiConfig, CiConfig, Filters, HttpSettings};
pub use layer::{Layer, Origin, Raw, Typed, Value};
pub use spec::{LR_KEY_VAR, RF_KEY_VAR};
pub use time::parse_time;

use crate::error::{code, Fatal};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the command line hands in: the flag layer and the two flags that choose
/// which file and profile are read.
pub struct Sources<'a> {
    pub flags: Layer,
    pub config: Option<PathBuf>,
    pub profile: Option<String>,
    /// Reads an environment variable (injected for tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Where a key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// A file named by a setting.
    File(Value<PathBuf>),
    /// The environment variable (`LOGRHYTHM_API_KEY`, `RF_API_KEY`).
    Env(&'static str),
    /// Neither.
    Missing,
}

/// The resolved settings of one profile (or of the top level).
pub struct Settings {
    /// The profile these settings are for.
    pub profile: Option<Value<String>>,
    /// The config file read, if any.
    pub config: Option<Value<PathBuf>>,
    values: BTreeMap<&'static str, Value<Typed>>,
    /// The key variables and proxy variables, read once.
    secrets: BTreeMap<&'static str, SecretString>,
    proxies: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("profile", &self.profile)
            .field("values", &self.values)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The config file chosen by `--config`, `LRCI_CONFIG` or the default place, read
/// and parsed. A missing default file is no file; a missing named one is exit 66.
pub fn load_file(src: &Sources<'_>) -> Result<Option<Loaded>, Fatal> {
    let named = match (&src.config, (src.env)(spec::CONFIG_VAR)) {
        (Some(p), _) => Some((p.clone(), Origin::Flag("--config"))),
        (None, Some(v)) if !v.is_empty() => Some((PathBuf::from(v), Origin::Env(spec::CONFIG_VAR))),
        _ => None,
    };
    if let Some((path, origin)) = named {
        let f = file::load(&path, &origin.to_string())?;
        return Ok(Some((
            f,
            Value {
                value: path,
                name: "config",
                origin,
            },
        )));
    }
    let Some(path) = default_config_path() else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let f = file::load(&path, "the default config file")?;
    Ok(Some((
        f,
        Value {
            value: path,
            name: "config",
            origin: Origin::Default,
        },
    )))
}

/// `config.toml` in the platform config directory.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "lrci").map(|d| d.config_dir().join("config.toml"))
}

/// The profile asked for by `--profile` or `LRCI_PROFILE`.
pub fn chosen_profile(src: &Sources<'_>) -> Option<Value<String>> {
    match (&src.profile, (src.env)(spec::PROFILE_VAR)) {
        (Some(p), _) => Some(Value {
            value: p.clone(),
            name: "profile",
            origin: Origin::Flag("--profile"),
        }),
        (None, Some(v)) if !v.is_empty() => Some(Value {
            value: v,
            name: "profile",
            origin: Origin::Env(spec::PROFILE_VAR),
        }),
        _ => None,
    }
}

/// Resolves the settings once: the profile from `--profile`/`LRCI_PROFILE`.
pub fn resolve(src: &Sources<'_>) -> Result<Settings, Fatal> {
    let file = load_file(src)?;
    resolve_with(src, file.as_ref(), chosen_profile(src))
}

/// The settings as far as they can be resolved when [`resolve`] failed: a config
/// file that cannot be read counts as absent, an unknown profile as none, and a
/// value that is not valid is left out. Only for finding where to log the
/// failure (log directory, format, metrics file); never for a run.
pub fn resolve_lenient(src: &Sources<'_>) -> Option<Settings> {
    let file = load_file(src).ok().flatten();
    let profile = chosen_profile(src).filter(|p| {
        file.as_ref()
            .is_some_and(|(f, _)| f.profiles.contains_key(&p.value))
    });
    resolve_values(src, file.as_ref(), profile, false).ok()
}

/// One profile's name and its settings (or the error that is that profile's alone).
pub type ProfileSettings = (String, Result<Settings, Fatal>);

/// A config file read, with where its path came from.
pub type Loaded = (file::File, Value<PathBuf>);

/// Every profile of the config file, each resolved on its own (for
/// `--all-profiles`); an error of one profile is that profile's alone.
pub fn resolve_all(src: &Sources<'_>) -> Result<Vec<ProfileSettings>, Fatal> {
    let file = load_file(src)?;
    let Some((f, path)) = &file else {
        return Err(Fatal::msg(code::CONFIG, "--all-profiles: no config file (give --config FILE or LRCI_CONFIG, or create the default config.toml)"));
    };
    if f.profiles.is_empty() {
        return Err(Fatal::msg(
            code::CONFIG,
            format!(
                "--all-profiles: {} has no [profile.NAME] section",
                path.value.display()
            ),
        ));
    }
    let env = Layer::from_env(src.env);
    for name in ["ledger", "log_dir"] {
        if let Some((_, origin)) = src
            .flags
            .entries
            .get(name)
            .or_else(|| env.entries.get(name))
        {
            return Err(layer::bad(name, origin, format!(
                "one {name} cannot serve every profile with --all-profiles: set {name} in each [profile.NAME], or leave it out for a per-profile default"
            )));
        }
    }
    Ok(f.profiles
        .keys()
        .map(|name| {
            let p = Value {
                value: name.clone(),
                name: "profile",
                origin: Origin::Flag("--all-profiles"),
            };
            (name.clone(), resolve_with(src, file.as_ref(), Some(p)))
        })
        .collect())
}

/// Resolves the settings of `profile` (or of the top level) from the layers.
pub fn resolve_with(
    src: &Sources<'_>,
    file: Option<&Loaded>,
    profile: Option<Value<String>>,
) -> Result<Settings, Fatal> {
    resolve_values(src, file, profile, true)
}

/// [`resolve_with`]; when not `strict`, a value that is not valid is left out
/// instead of failing.
fn resolve_values(
    src: &Sources<'_>,
    file: Option<&Loaded>,
    profile: Option<Value<String>>,
    strict: bool,
) -> Result<Settings, Fatal> {
    let empty = Layer::default();
    let top = file.map_or(&empty, |(f, _)| &f.top);
    let own = match (&profile, file) {
        (None, _) => &empty,
        (Some(p), Some((f, _))) => match f.profiles.get(&p.value) {
            Some((layer, _)) => layer,
            None => return Err(no_profile(p, Some(&f.path), f.profiles.keys())),
        },
        (Some(p), None) => return Err(no_profile(p, None, std::iter::empty())),
    };
    let env = Layer::from_env(src.env);
    let layers = [&src.flags, &env, own, top];
    let mut values = BTreeMap::new();
    for s in spec::SETTINGS {
        let found = layers.iter().find_map(|l| l.entries.get(s.name));
        let (raw, origin) = match found {
            Some((raw, origin)) => (raw.clone(), origin.clone()),
            None => match default_raw(s.default) {
                Some(raw) => (raw, Origin::Default),
                None => continue,
            },
        };
        let value = match layer::typed(s, &raw, &origin) {
            Ok(v) => v,
            Err(e) if strict => return Err(e),
            Err(_) => continue,
        };
        values.insert(
            s.name,
            Value {
                value,
                name: s.name,
                origin,
            },
        );
    }
    let profile_name = profile.as_ref().map(|p| p.value.as_str());
    derive_paths(&mut values, profile_name, own)?;
    if strict {
        if let Some(Value {
            value: Typed::Path(p),
            ..
        }) = values.get("metrics_file")
        {
            check::metrics_file(&values["metrics_file"].label(), p)?;
        }
    }
    let mut secrets = BTreeMap::new();
    for var in [spec::LR_KEY_VAR, spec::RF_KEY_VAR] {
        if let Some(v) = (src.env)(var) {
            secrets.insert(var, SecretString::from(v));
        }
    }
    let proxies = check::PROXY_VARS
        .iter()
        .filter_map(|v| (src.env)(v).map(|val| (*v, val)))
        .collect();
    Ok(Settings {
        profile,
        config: file.map(|(_, p)| p.clone()),
        values,
        secrets,
        proxies,
    })
}

fn no_profile<'a>(
    p: &Value<String>,
    path: Option<&Path>,
    known: impl Iterator<Item = &'a String>,
) -> Fatal {
    let known: Vec<&str> = known.map(String::as_str).collect();
    let place = match path {
        Some(f) => format!("no [profile.{}] in {}", p.value, f.display()),
        None => format!("no config file holds [profile.{}]", p.value),
    };
    let hint = if known.is_empty() {
        String::new()
    } else {
        format!(" (profiles: {})", known.join(", "))
    };
    layer::bad("profile", &p.origin, format!("{place}{hint}"))
}

fn default_raw(d: spec::Default) -> Option<Raw> {
    match d {
        spec::Default::Int(n) => Some(Raw::Int(i64::try_from(n).unwrap_or(i64::MAX))),
        spec::Default::Bool(b) => Some(Raw::Bool(b)),
        spec::Default::Str(s) => Some(Raw::Str(s.to_string())),
        spec::Default::None | spec::Default::Derived(_) => None,
    }
}

/// The ledger and log directory when not given: without a profile,
/// `ledger.sqlite3` in the platform data directory and `logs/` beside it; for a
/// profile that sets neither itself, `PROFILE.sqlite3` beside the top-level ledger
/// (or in the data directory) and a `PROFILE` folder below the top-level log
/// directory (or below `logs/` beside the ledger), so two profiles never share a
/// ledger, a lock or a log directory.
fn derive_paths(
    values: &mut BTreeMap<&'static str, Value<Typed>>,
    profile: Option<&str>,
    own: &Layer,
) -> Result<(), Fatal> {
    // A top-level file value is the profile's base, not the profile's own.
    let given = |v: &BTreeMap<&'static str, Value<Typed>>, name: &str| {
        v.get(name).is_some_and(|x| {
            x.origin.rank() >= 2
                || own.entries.contains_key(name)
                || (profile.is_none() && x.origin.is_given())
        })
    };
    let path_of = |v: &BTreeMap<&'static str, Value<Typed>>, name: &str| match v
        .get(name)
        .map(|x| &x.value)
    {
        Some(Typed::Path(p)) => Some(p.clone()),
        _ => None,
    };
    if !given(values, "ledger") {
        let (ledger, how) = match (profile, path_of(values, "ledger")) {
            (None, _) => (
                data_dir()?.join("ledger.sqlite3"),
                "the platform data directory".to_string(),
            ),
            (Some(p), Some(top)) => (
                top.parent()
                    .unwrap_or(Path::new("."))
                    .join(format!("{p}.sqlite3")),
                format!("profile {p}, beside the top-level ledger"),
            ),
            (Some(p), None) => (
                data_dir()?.join(format!("{p}.sqlite3")),
                format!("profile {p}, in the platform data directory"),
            ),
        };
        values.insert(
            "ledger",
            Value {
                value: Typed::Path(ledger),
                name: "ledger",
                origin: Origin::Derived(how),
            },
        );
    }
    if !given(values, "log_dir") {
        let ledger = path_of(values, "ledger").unwrap_or_default();
        let beside = ledger
            .parent()
            .map_or_else(|| PathBuf::from("logs"), |d| d.join("logs"));
        let (dir, how) = match (profile, path_of(values, "log_dir")) {
            (None, _) => (beside, "logs/ beside the ledger".to_string()),
            (Some(p), Some(top)) => (
                top.join(p),
                format!("profile {p}, below the top-level log_dir"),
            ),
            (Some(p), None) => (
                beside.join(p),
                format!("profile {p}, below logs/ beside the ledger"),
            ),
        };
        values.insert(
            "log_dir",
            Value {
                value: Typed::Path(dir),
                name: "log_dir",
                origin: Origin::Derived(how),
            },
        );
    }
    Ok(())
}

fn data_dir() -> Result<PathBuf, Fatal> {
    directories::ProjectDirs::from("", "", "lrci")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| Fatal::msg(code::CONFIG, "no home directory to put the ledger in: set LRCI_LEDGER (--ledger, or ledger in the config file)"))
}

impl Settings {
    /// The resolved value of a setting, when it has one.
    pub fn get(&self, name: &str) -> Option<&Value<Typed>> {
        self.values.get(name)
    }

    fn int(&self, name: &str) -> Option<Value<u64>> {
        self.values.get(name).and_then(|v| match v.value {
            Typed::Int(n) => Some(Value {
                value: n,
                name: v.name,
                origin: v.origin.clone(),
            }),
            _ => None,
        })
    }

    /// A whole-number setting, or 0 when unset (only settings with a default are
    /// read this way; a unit test checks each one).
    pub fn number(&self, name: &str) -> u64 {
        self.int(name).map_or(0, |v| v.value)
    }

    /// A whole-number setting that may be unset (`min_rbp`, `max_runtime`).
    pub fn optional(&self, name: &str) -> Option<Value<u64>> {
        self.int(name)
    }

    /// `concurrency` and `concurrency_max`: a fixed number, or auto up to the
    /// maximum (auto also when unset).
    pub fn concurrency(&self) -> crate::model::Concurrency {
        let max = u32::try_from(self.number("concurrency_max"))
            .unwrap_or(u32::MAX)
            .max(1);
        match self.values.get("concurrency").map(|v| &v.value) {
            Some(Typed::Int(n)) => {
                crate::model::Concurrency::Fixed(u32::try_from(*n).unwrap_or(u32::MAX))
            }
            _ => crate::model::Concurrency::Auto { max },
        }
    }

    /// A true/false setting (false when unset).
    pub fn flag(&self, name: &str) -> bool {
        matches!(
            self.values.get(name).map(|v| &v.value),
            Some(Typed::Bool(true))
        )
    }

    /// A path setting.
    pub fn path(&self, name: &str) -> Option<Value<PathBuf>> {
        self.values.get(name).and_then(|v| match &v.value {
            Typed::Path(p) => Some(Value {
                value: p.clone(),
                name: v.name,
                origin: v.origin.clone(),
            }),
            _ => None,
        })
    }

    /// A list setting (empty when unset).
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name).map(|v| &v.value) {
            Some(Typed::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    /// The ledger file (always resolved: given or derived).
    pub fn ledger(&self) -> Value<PathBuf> {
        self.path("ledger").unwrap_or_else(|| Value {
            value: PathBuf::from("ledger.sqlite3"),
            name: "ledger",
            origin: Origin::Default,
        })
    }

    /// The log directory (always resolved: given or derived).
    pub fn log_dir(&self) -> Value<PathBuf> {
        self.path("log_dir").unwrap_or_else(|| Value {
            value: PathBuf::from("logs"),
            name: "log_dir",
            origin: Origin::Default,
        })
    }

    /// The log level's canonical name, when one was given (else the command's default).
    pub fn log_level(&self) -> Option<&'static str> {
        self.values
            .get("log_level")
            .filter(|v| v.origin.is_given())
            .and_then(|v| match v.value {
                Typed::Level(l) => Some(l),
                _ => None,
            })
    }

    /// The log format's name (`text` unless `json` was given).
    pub fn log_format(&self) -> &'static str {
        match self.values.get("log_format").map(|v| &v.value) {
            Some(Typed::Level("json")) => "json",
            _ => "text",
        }
    }

    /// The metrics file, when one was given.
    pub fn metrics_file(&self) -> Option<PathBuf> {
        self.path("metrics_file").map(|v| v.value)
    }

    /// Where the settings came from, without any value: the config file and
    /// profile, and how many settings each layer gave (for the run's first log line).
    pub fn origin_summary(&self) -> String {
        let mut counts = [0usize; 4];
        for v in self.values.values() {
            counts[usize::from(v.origin.rank()).min(3)] += 1;
        }
        let file = self
            .config
            .as_ref()
            .map_or_else(|| "none".to_string(), |c| c.value.display().to_string());
        let profile = self.profile.as_ref().map_or("-", |p| p.value.as_str());
        format!(
            "config: {file} profile={profile}; {} from flags, {} from env, {} from the file, {} defaults",
            counts[3], counts[2], counts[1], counts[0]
        )
    }

    /// Where the key of `which` (`LR_KEY_VAR` or `RF_KEY_VAR`) comes from: a key
    /// file given by flag or environment first, then the key variable, then a key
    /// file from the config file.
    pub fn key_source(&self, var: &'static str) -> KeySource {
        let file_setting = if var == spec::LR_KEY_VAR {
            "logrhythm_api_key_file"
        } else {
            "rf_api_key_file"
        };
        let file = self.path(file_setting);
        match (file, self.secrets.contains_key(var)) {
            (Some(f), _) if f.origin.rank() >= 2 => KeySource::File(f),
            (_, true) => KeySource::Env(var),
            (Some(f), false) => KeySource::File(f),
            (None, false) => KeySource::Missing,
        }
    }

    /// The timeouts and retries of both clients.
    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            timeout: std::time::Duration::from_secs(self.number("timeout")),
            connect_timeout: std::time::Duration::from_secs(self.number("connect_timeout")),
            max_retries: u32::try_from(self.number("max_retries")).unwrap_or(u32::MAX),
        }
    }

    /// Every resolved value, in declaration order.
    pub fn values(&self) -> impl Iterator<Item = &Value<Typed>> {
        spec::SETTINGS
            .iter()
            .filter_map(|s| self.values.get(s.name))
    }
}

#[cfg(test)]
mod tests;
