//! The declaration of every setting, once: its name (the config-file key), flag,
//! environment variable, type, default and meaning. Resolution, validation,
//! `config show`, the README table and `contrib/lrci.toml.example` all follow this
//! table; nothing else lists the settings.

/// The daily Collective Insights budget: detections per UTC day.
pub const DEFAULT_DAILY_BUDGET: u64 = 15_000;
/// Detections per Collective Insights request.
pub const DEFAULT_BATCH_SIZE: u64 = 500;
/// Rows asked for per LogRhythm list page (the server may return fewer).
pub const DEFAULT_PAGE_SIZE: u64 = 1000;
/// `concurrency`: adaptive (see `logrhythm::limit`); a number fixes it.
pub const DEFAULT_CONCURRENCY: &str = "auto";
/// Most LogRhythm requests in flight with `concurrency = "auto"`: 4 × the old
/// fixed default of 8. At LogRhythm's usual 20–100 ms per call that is 320–1600
/// calls a second, far more than a day of alarms needs, while a Platform
/// Manager's API gateway that is already busy is never asked for more than
/// this whatever its latency does. Raise it (up to 64) for a dedicated gateway.
pub const DEFAULT_CONCURRENCY_MAX: u64 = 32;
/// Largest fixed `concurrency` and `concurrency_max`.
pub const MAX_CONCURRENCY: u64 = 64;
/// Seconds alarms are left alone after they fire.
pub const DEFAULT_SETTLE_SECS: u64 = 120;
/// How long an alarm's events may be not ready (empty, 404, not JSON, a
/// redirect) before it is final without them: a day (DESIGN.md section 1, item 6).
pub const DEFAULT_EVENTS_GRACE_SECS: u64 = 86_400;
/// `relist_horizon`: how long after its time a slice is still listed again for
/// alarms that became listable late (AI Engine and ingestion backlogs of minutes,
/// sometimes an hour; two hours cost a few list pages a run).
pub const DEFAULT_RELIST_HORIZON_SECS: u64 = 7_200;
/// Seconds allowed for one HTTP request.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Seconds allowed to connect.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Retries of a transient failure per request.
pub const DEFAULT_MAX_RETRIES: u64 = 4;
/// The Recorded Future API.
pub const DEFAULT_RF_API_URL: &str = "https://api.recordedfuture.com";
/// Environment variable holding the LogRhythm API key.
pub const LR_KEY_VAR: &str = "LOGRHYTHM_API_KEY";
/// Environment variable holding the Recorded Future token.
pub const RF_KEY_VAR: &str = "RF_API_KEY";
/// Environment variable naming the config file.
pub const CONFIG_VAR: &str = "LRCI_CONFIG";
/// Environment variable naming the profile.
pub const PROFILE_VAR: &str = "LRCI_PROFILE";

/// What a setting holds, and the bounds it is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number in `min..=max`.
    Int { min: u64, max: u64 },
    /// `auto`, or a whole number in `min..=max`.
    IntOrAuto { min: u64, max: u64 },
    /// `true` or `false` (also `1`/`0`, `yes`/`no` in the environment).
    Bool,
    /// A file or directory path.
    Path,
    /// An http(s) URL with a host and no credentials.
    Url,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    Level,
    /// `text` or `json`.
    LogFormat,
    /// A `detection.type` that needs nothing else: `correlation`, `playbook`
    /// or `sandbox` (`detection_rule` needs a sub type and id per rule).
    DetectionType,
    /// Domain suffixes (a list in the file; comma-separated in the environment).
    Domains,
    /// CIDR networks (a list in the file; comma-separated in the environment).
    Networks,
}

/// The default of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// Unset unless given.
    None,
    Int(u64),
    Bool(bool),
    Str(&'static str),
    /// Computed from other settings; the text says how.
    Derived(&'static str),
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The config-file key, and the name errors use.
    pub name: &'static str,
    /// The long flag (vendor short forms are mapped to it).
    pub flag: &'static str,
    /// The environment variable.
    pub env: &'static str,
    pub kind: Kind,
    pub default: Default,
    /// One line for people (`--help`, README, `config show`).
    pub doc: &'static str,
}

const fn int(min: u64, max: u64) -> Kind {
    Kind::Int { min, max }
}

/// Every setting, in the order `config show` and the README list them.
pub const SETTINGS: &[Spec] = &[
    Spec { name: "ledger", flag: "--ledger", env: "LRCI_LEDGER", kind: Kind::Path,
        default: Default::Derived("ledger.sqlite3 in the platform data directory; with a profile, PROFILE.sqlite3 beside the top-level ledger"),
        doc: "The SQLite ledger file (its run lock sits next to it)" },
    Spec { name: "log_dir", flag: "--log-dir", env: "LRCI_LOG_DIR", kind: Kind::Path,
        default: Default::Derived("logs/ beside the ledger; with a profile, a PROFILE folder below the top-level log_dir or that logs/"),
        doc: "Directory for the daily-rotated log files (14 kept)" },
    Spec { name: "log_level", flag: "--log-level", env: "LRCI_LOG_LEVEL", kind: Kind::Level,
        default: Default::Str("info"), doc: "Log level for stderr and the log file (vendor flag -l); demo uses warn" },
    Spec { name: "log_format", flag: "--log-format", env: "LRCI_LOG_FORMAT", kind: Kind::LogFormat,
        default: Default::Str("text"), doc: "Log line format for stderr and the log file: text, or json (one object per line)" },
    Spec { name: "metrics_file", flag: "--metrics-file", env: "LRCI_METRICS_FILE", kind: Kind::Path,
        default: Default::None, doc: "Prometheus text file written at the end of every run (node_exporter textfile collector)" },
    Spec { name: "logrhythm_api_url", flag: "--lr-url", env: "LOGRHYTHM_API_URL", kind: Kind::Url,
        default: Default::None, doc: "LogRhythm API base URL, e.g. https://platform-manager:8501 (required by sync, backfill)" },
    Spec { name: "logrhythm_api_key_file", flag: "--lr-key-file", env: "LRCI_LOGRHYTHM_API_KEY_FILE", kind: Kind::Path,
        default: Default::None, doc: "File holding the LogRhythm API key (mode 600); else the key is read from LOGRHYTHM_API_KEY" },
    Spec { name: "lr_ca_cert", flag: "--lr-ca-cert", env: "LRCI_LR_CA_CERT", kind: Kind::Path,
        default: Default::None, doc: "PEM CA certificate to trust for the LogRhythm API (self-signed gateways)" },
    Spec { name: "lr_insecure", flag: "--lr-insecure", env: "LRCI_LR_INSECURE", kind: Kind::Bool,
        default: Default::Bool(false), doc: "Do not verify the LogRhythm API's TLS certificate (warns on every run)" },
    Spec { name: "rf_api_url", flag: "--rf-url", env: "RF_API_URL", kind: Kind::Url,
        default: Default::Str(DEFAULT_RF_API_URL), doc: "Recorded Future API base URL (https only; loopback may use http)" },
    Spec { name: "rf_api_key_file", flag: "--rf-key-file", env: "LRCI_RF_API_KEY_FILE", kind: Kind::Path,
        default: Default::None, doc: "File holding the Recorded Future token (mode 600); else the token is read from RF_API_KEY" },
    Spec { name: "timeout", flag: "--timeout", env: "LRCI_TIMEOUT", kind: int(1, 3600),
        default: Default::Int(DEFAULT_TIMEOUT_SECS), doc: "Seconds allowed for one HTTP request" },
    Spec { name: "connect_timeout", flag: "--connect-timeout", env: "LRCI_CONNECT_TIMEOUT", kind: int(1, 600),
        default: Default::Int(DEFAULT_CONNECT_TIMEOUT_SECS), doc: "Seconds allowed to connect" },
    Spec { name: "max_retries", flag: "--max-retries", env: "LRCI_MAX_RETRIES", kind: int(0, 20),
        default: Default::Int(DEFAULT_MAX_RETRIES), doc: "Retries of a transient failure (429, 5xx, timeout) per request" },
    Spec { name: "max_catchup", flag: "--max-catchup-days", env: "LRCI_MAX_CATCHUP", kind: int(1, 365),
        default: Default::Int(7), doc: "Days back a sync catches up from the oldest hour not yet listed completely (after an outage); anything older is named in a warning and left to backfill" },
    Spec { name: "lookback", flag: "--lookback-days", env: "LRCI_LOOKBACK", kind: int(1, 365),
        default: Default::Int(1), doc: "Days a fresh ledger's first sync looks back (vendor flag -lb)" },
    Spec { name: "settle", flag: "--settle", env: "LRCI_SETTLE", kind: int(0, 86_400),
        default: Default::Int(DEFAULT_SETTLE_SECS), doc: "Seconds to leave alarms alone after they fire (their data may not be ready)" },
    Spec { name: "relist_horizon", flag: "--relist-horizon", env: "LRCI_RELIST_HORIZON", kind: int(0, 604_800),
        default: Default::Int(DEFAULT_RELIST_HORIZON_SECS), doc: "Seconds during which listed time is provisional: every run lists it again for alarms that became visible late (new ids only); older time is final" },
    Spec { name: "events_grace", flag: "--events-grace", env: "LRCI_EVENTS_GRACE", kind: int(0, 604_800),
        default: Default::Int(DEFAULT_EVENTS_GRACE_SECS), doc: "Seconds an alarm's events may be not ready (empty, 404, not JSON) before it is final without them; until then later runs retry it" },
    Spec { name: "min_rbp", flag: "--min-rbp", env: "LRCI_MIN_RBP", kind: int(0, 100),
        default: Default::None, doc: "Only alarms whose Risk Based Priority (rbpMax) is at least N (vendor flag -rbp)" },
    Spec { name: "fetch_details", flag: "--fetch-details", env: "LRCI_FETCH_DETAILS", kind: Kind::Bool,
        default: Default::Bool(false), doc: "Fetch every alarm's details to record its RBP (one more request per alarm); min_rbp fetches them anyway, else RBP is recorded as not fetched" },
    Spec { name: "rf_only", flag: "--rf-only", env: "LRCI_RF_ONLY", kind: Kind::Bool,
        default: Default::Bool(false), doc: "Only alarms whose rule name contains \"Recorded Future\" (vendor flag -rf)" },
    Spec { name: "exclude_rules_file", flag: "--exclude-rules", env: "LRCI_EXCLUDE_RULES_FILE", kind: Kind::Path,
        default: Default::None, doc: "Skip alarms of the rules named in this file, one a line, # comments (vendor flag -ef)" },
    Spec { name: "internal_domains", flag: "--internal-domain", env: "LRCI_INTERNAL_DOMAINS", kind: Kind::Domains,
        default: Default::None, doc: "The organisation's domain suffixes: never sent (flag repeatable; env comma-separated)" },
    Spec { name: "internal_domains_file", flag: "--internal-domains", env: "LRCI_INTERNAL_DOMAINS_FILE", kind: Kind::Path,
        default: Default::None, doc: "More internal domain suffixes, one a line" },
    Spec { name: "own_networks", flag: "--own-network", env: "LRCI_OWN_NETWORKS", kind: Kind::Networks,
        default: Default::None, doc: "The organisation's public networks (CIDR): never sent (flag repeatable; env comma-separated)" },
    Spec { name: "allow_domains", flag: "--allow-domain", env: "LRCI_ALLOW_DOMAINS", kind: Kind::Domains,
        default: Default::None, doc: "Domain suffixes sent although LogRhythm's zones or learning mark them as the organisation's (flag repeatable; env comma-separated)" },
    Spec { name: "allow_networks", flag: "--allow-network", env: "LRCI_ALLOW_NETWORKS", kind: Kind::Networks,
        default: Default::None, doc: "Networks (CIDR) sent although LogRhythm's zones or network records mark them as the organisation's (flag repeatable; env comma-separated)" },
    Spec { name: "exclude_indicators_file", flag: "--exclude-indicators", env: "LRCI_EXCLUDE_INDICATORS_FILE", kind: Kind::Path,
        default: Default::None, doc: "Indicators never to send, one a line: IP, CIDR, domain suffix or URL" },
    Spec { name: "detection_types_file", flag: "--detection-types", env: "LRCI_DETECTION_TYPES_FILE", kind: Kind::Path,
        default: Default::None, doc: "detection.type by rule name: PATTERN = TYPE[:SUB_TYPE][,ID] a line, first match wins, * = TYPE as the global default (else correlation)" },
    Spec { name: "detection_type", flag: "--detection-type", env: "LRCI_DETECTION_TYPE", kind: Kind::DetectionType,
        default: Default::Str("correlation"), doc: "detection.type of every rule no detection_types_file line matches: correlation, playbook or sandbox" },
    Spec { name: "mitre_codes", flag: "--mitre-codes", env: "LRCI_MITRE_CODES", kind: Kind::Bool,
        default: Default::Bool(false), doc: "Send mitre_codes: ATT&CK technique ids (T1059, T1059.001) found in rule names" },
    Spec { name: "malwares", flag: "--malwares", env: "LRCI_MALWARES", kind: Kind::Bool,
        default: Default::Bool(false), doc: "Send malwares: the event's threatName" },
    Spec { name: "page_size", flag: "--page-size", env: "LRCI_PAGE_SIZE", kind: int(1, 100_000),
        default: Default::Int(DEFAULT_PAGE_SIZE), doc: "Rows asked for per LogRhythm list page (the server may return fewer)" },
    Spec { name: "concurrency", flag: "--concurrency", env: "LRCI_CONCURRENCY", kind: Kind::IntOrAuto { min: 1, max: MAX_CONCURRENCY },
        default: Default::Str(DEFAULT_CONCURRENCY), doc: "LogRhythm requests in flight (list pages, details, events): auto raises them while LogRhythm's latency stays flat and backs off on 429, 5xx or growing latency, up to concurrency_max; a number fixes them" },
    Spec { name: "concurrency_max", flag: "--concurrency-max", env: "LRCI_CONCURRENCY_MAX", kind: int(1, MAX_CONCURRENCY),
        default: Default::Int(DEFAULT_CONCURRENCY_MAX), doc: "Most LogRhythm requests in flight with concurrency = auto (ignored when concurrency is a number)" },
    Spec { name: "batch_size", flag: "--batch-size", env: "LRCI_BATCH_SIZE", kind: int(1, 10_000),
        default: Default::Int(DEFAULT_BATCH_SIZE), doc: "Detections per Collective Insights request" },
    Spec { name: "daily_budget", flag: "--daily-budget", env: "LRCI_DAILY_BUDGET", kind: int(1, u64::MAX),
        default: Default::Int(DEFAULT_DAILY_BUDGET), doc: "Detections sent per UTC day at most; the rest waits for the next day" },
    Spec { name: "max_runtime", flag: "--max-runtime", env: "LRCI_MAX_RUNTIME", kind: int(1, u64::MAX),
        default: Default::None, doc: "Stop starting new work after this many seconds; what is left waits for the next run" },
];

/// The declaration of `name`; every name used in code is in [`SETTINGS`] (a unit
/// test checks the ones the code asks for).
pub fn spec(name: &str) -> Option<&'static Spec> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Keys the config file refuses with a pointer to the right one: keys are never
/// written inline.
pub const INLINE_KEYS: [(&str, &str); 2] = [
    ("logrhythm_api_key", "logrhythm_api_key_file"),
    ("rf_api_key", "rf_api_key_file"),
];

/// The default as text, for `config show` and the README.
pub fn default_text(d: Default) -> String {
    match d {
        Default::None => "unset".to_string(),
        Default::Int(n) => n.to_string(),
        Default::Bool(b) => b.to_string(),
        Default::Str(s) => s.to_string(),
        Default::Derived(s) => s.to_string(),
    }
}
