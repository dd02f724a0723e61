//! Every clap type of the command line, and nothing else (completions and man pages
//! come from here). No crate imports but the simulator's and the ledger commands'
//! argument types, which still live beside their commands.
//!
//! Setting flags are all optional and carry no environment variable or default:
//! `cli::settings` turns what was given into the flag layer, and `config` adds the
//! environment, the config file and the defaults (flag > env > file > default).
//! Keys are never flag values: they come from the environment or from a file.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// `0.1.0 (commit abc1234, built 2026-01-01)`: the crate version with the git commit
/// and build date build.rs found (re-exported as `cli::version::LONG`).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LRCI_GIT_COMMIT"),
    ", built ",
    env!("LRCI_BUILD_DATE"),
    ")"
);

/// Sends LogRhythm alarms to Recorded Future Collective Insights, and keeps a
/// ledger of everything it saw and sent.
///
/// With no subcommand, runs `sync`. The vendor script's flags (-lb, -rbp, -rf, -ef,
/// -d, -l) are accepted unchanged.
#[derive(Debug, Parser)]
#[command(name = "lrci", version = LONG_VERSION, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Always present after [`normalize_argv`], which inserts `sync` when no
    /// subcommand is named.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Examples and the exit codes, after `lrci --help`.
pub const AFTER_HELP: &str = "Examples:
  lrci                                  sync the lookback window (the scheduled command)
  lrci -lb=3 -rbp=50 -d                 the vendor script's flags: 3 days, RBP >= 50, dry run
  lrci backfill --days 7                fill the last week's gaps
  lrci ledger status --json             what was seen and sent, and how fresh it is
  lrci doctor                           check settings, ledger, both APIs and keys
  lrci --metrics-file /var/lib/node_exporter/lrci.prom sync

Exit codes:
  0   success
  2   usage error (flags)
  65  ledger data error (corrupt, newer schema, foreign file)
  66  an input file is missing (config, key, filter file, ledger for audit commands)
  69  an API was unavailable (network, 5xx): the next run continues
  73  cannot create the ledger, the lock or the log directory
  74  local I/O error (disk full, write failure)
  75  partial run (budget, max runtime, interrupted): the next run continues
  77  a key was rejected (401/403)
  78  configuration error

The log file (--log-dir) tells every run's start, settings origins, outcome and reason.";

/// Flags every command understands.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// The config file (TOML; env LRCI_CONFIG) [default: config.toml in the platform config directory, if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The [profile.NAME] of the config file to use (env LRCI_PROFILE).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The ledger file (env LRCI_LEDGER) [default: the platform data directory, file ledger.sqlite3].
    #[arg(long, global = true, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Directory for the daily-rotated log files, 14 kept (env LRCI_LOG_DIR) [default: beside the ledger, logs/].
    #[arg(long, global = true, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Log level for stderr and the log file (vendor flag -l; env LRCI_LOG_LEVEL) [default: info; warn for demo].
    #[arg(short = 'l', long, global = true, value_enum, ignore_case = true)]
    pub log_level: Option<LogLevel>,
    /// Log line format for stderr and the log file: text, or json with one object per line (env LRCI_LOG_FORMAT) [default: text].
    #[arg(long, global = true, value_enum, ignore_case = true)]
    pub log_format: Option<LogFormat>,
    /// Write Prometheus metrics to FILE at the end of every run, atomically (env LRCI_METRICS_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    #[value(alias = "warning")]
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for tracing::Level {
    fn from(l: LogLevel) -> tracing::Level {
        match l {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

impl LogLevel {
    /// The level's name, as the config file and the environment write it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Incremental sync of the lookback window: fills gaps, retries what is unsent.
    Sync(SyncArgs),
    /// The same engine over an explicit window; only uncovered slices unless --refetch.
    Backfill(BackfillArgs),
    /// Serve a simulated LogRhythm Alarm API and Collective Insights API on loopback.
    Sim(SimArgs),
    /// Start the simulator in-process and run a real sync against it into a temporary ledger.
    Demo(DemoArgs),
    /// Audit the ledger, read only: status, alarms, indicators, show, runs, gaps, export.
    Ledger(LedgerArgs),
    /// Resubmit detections from the ledger: failed and pending by default.
    Replay(ReplayArgs),
    /// Compare the ledger with what Collective Insights holds (its search API): confirm sent, queue what CI lacks for replay.
    Reconcile(ReconcileArgs),
    /// Check configuration, ledger integrity, both APIs' reachability and credentials; changes nothing.
    Doctor(DoctorArgs),
    /// Show the effective settings with their origins, or check them (no network, no ledger).
    Config(ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout.
    Man,
}

/// Flags of `completions`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Where the two APIs are and how to reach them. Every value here is optional:
/// unset flags fall through to the environment, the config file and the default.
#[derive(Debug, Args, Clone, Default)]
pub struct ApiArgs {
    /// LogRhythm API base URL, e.g. https://platform-manager:8501 (env LOGRHYTHM_API_URL; the client adds /lr-alarm-api/).
    #[arg(long, value_name = "URL")]
    pub lr_url: Option<String>,
    /// Read the LogRhythm API key from this file instead of LOGRHYTHM_API_KEY.
    #[arg(long, value_name = "FILE")]
    pub lr_key_file: Option<PathBuf>,
    /// Trust this PEM CA certificate for the LogRhythm API (self-signed gateways).
    #[arg(long, value_name = "FILE")]
    pub lr_ca_cert: Option<PathBuf>,
    /// Do not verify the LogRhythm API's TLS certificate (warns on every run).
    #[arg(long)]
    pub lr_insecure: bool,
    #[command(flatten)]
    pub ci: CiApiArgs,
}

/// How to reach Collective Insights.
#[derive(Debug, Args, Clone, Default)]
pub struct CiApiArgs {
    /// Recorded Future API base URL, https only; loopback may use http (env RF_API_URL) [default: https://api.recordedfuture.com].
    #[arg(long, value_name = "URL")]
    pub rf_url: Option<String>,
    /// Read the Recorded Future token from this file instead of RF_API_KEY.
    #[arg(long, value_name = "FILE")]
    pub rf_key_file: Option<PathBuf>,
    /// Seconds allowed for one HTTP request [default: 60].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600), allow_negative_numbers = true)]
    pub timeout: Option<u64>,
    /// Seconds allowed to connect [default: 10].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=600), allow_negative_numbers = true)]
    pub connect_timeout: Option<u64>,
    /// Retries of a transient failure (429, 5xx, timeout) per request [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=20), allow_negative_numbers = true)]
    pub max_retries: Option<u32>,
}

/// Every setting's flag (`lrci config show` documents each with its environment
/// variable and config key).
#[derive(Debug, Args, Clone, Default)]
pub struct SettingArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Days a fresh ledger's first sync looks back (vendor flag -lb) [default: 1].
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=365), allow_negative_numbers = true)]
    pub lookback_days: Option<u32>,
    /// Days back a sync catches up from the oldest hour not yet listed completely (after an outage); older gaps are named in a warning for backfill [default: 7].
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=365), allow_negative_numbers = true)]
    pub max_catchup_days: Option<u32>,
}

/// Flags of `sync` (and of `lrci` alone).
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    #[command(flatten)]
    pub settings: SettingArgs,
    #[command(flatten)]
    pub mode: ModeArgs,
}

/// How a run runs: shared by `sync`, `backfill` and `replay`.
#[derive(Debug, Args, Clone, Default)]
pub struct ModeArgs {
    /// Fetch, filter, extract and post to CI with debug: true; the ledger is left unchanged (vendor flag -d).
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Print one JSON summary object on stdout at the end (one line per profile with --all-profiles).
    #[arg(long)]
    pub json: bool,
    /// Run every [profile.NAME] of the config file in turn, each under its own lock; exit with the most severe code.
    #[arg(long, conflicts_with = "profile")]
    pub all_profiles: bool,
}

/// The filter, policy and run-size flags.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Only alarms whose Risk Based Priority (rbpMax) is at least N, 0-100 (vendor flag -rbp).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100), allow_negative_numbers = true)]
    pub min_rbp: Option<u8>,
    /// Fetch every alarm's details to record its RBP (one more request per alarm; min_rbp fetches them anyway).
    #[arg(long)]
    pub fetch_details: bool,
    /// Only alarms whose rule name contains "Recorded Future" (vendor flag -rf).
    #[arg(long)]
    pub rf_only: bool,
    /// Skip alarms of the rules named in FILE, one a line; # comments (vendor flag -ef).
    #[arg(long, value_name = "FILE")]
    pub exclude_rules: Option<PathBuf>,
    /// An internal domain suffix, never sent (repeatable).
    #[arg(long = "internal-domain", value_name = "DOMAIN")]
    pub internal_domain: Vec<String>,
    /// Extra internal domain suffixes, one a line: never sent.
    #[arg(long, value_name = "FILE")]
    pub internal_domains: Option<PathBuf>,
    /// One of the organisation's networks (CIDR), never sent (repeatable).
    #[arg(long = "own-network", value_name = "CIDR")]
    pub own_network: Vec<String>,
    /// A domain suffix sent although LogRhythm's zones or learning mark it as the organisation's (repeatable).
    #[arg(long = "allow-domain", value_name = "DOMAIN")]
    pub allow_domain: Vec<String>,
    /// A network (CIDR) sent although LogRhythm's zones or network records mark it as the organisation's (repeatable).
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allow_network: Vec<String>,
    /// Indicators never to send, one a line: IP, CIDR, domain suffix or URL.
    #[arg(long, value_name = "FILE")]
    pub exclude_indicators: Option<PathBuf>,
    /// Seconds to leave alarms alone after they fire (their data may not be ready) [default: 120].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400), allow_negative_numbers = true)]
    pub settle: Option<u64>,
    /// Seconds during which listed time is provisional: every run lists it again for alarms that became visible late [default: 7200].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=604_800), allow_negative_numbers = true)]
    pub relist_horizon: Option<u64>,
    /// Seconds an alarm's events may be not ready (empty, 404, not JSON) before it is final without them [default: 86400].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=604_800), allow_negative_numbers = true)]
    pub events_grace: Option<u64>,
    /// LogRhythm requests in flight: auto (raised while LogRhythm's latency stays flat, lowered on 429, 5xx or growing latency, up to --concurrency-max), or a fixed number 1-64 [default: auto].
    #[arg(long, value_name = "auto|N", value_parser = parse_concurrency, allow_negative_numbers = true)]
    pub concurrency: Option<String>,
    /// Most LogRhythm requests in flight with --concurrency auto [default: 32].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64), allow_negative_numbers = true)]
    pub concurrency_max: Option<u16>,
    #[command(flatten)]
    pub submit: SubmitArgs,
    /// Rows asked for per LogRhythm list page (the server may return fewer) [default: 1000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), allow_negative_numbers = true)]
    pub page_size: Option<u32>,
    /// Stop starting new work after this many seconds; what is left waits for the next run.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub max_runtime: Option<u64>,
}

/// How detections are submitted: shared by the runs and `replay`.
#[derive(Debug, Args, Clone, Default)]
pub struct SubmitArgs {
    /// Detections per Collective Insights request [default: 500].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000), allow_negative_numbers = true)]
    pub batch_size: Option<u32>,
    /// Detections sent per UTC day at most; the rest waits for the next day [default: 15000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub daily_budget: Option<u64>,
    /// detection.type by rule name, PATTERN = TYPE[:SUB_TYPE][,ID] a line; first match wins, `* = TYPE` sets the default [default: correlation].
    #[arg(long, value_name = "FILE")]
    pub detection_types: Option<PathBuf>,
    /// detection.type of every rule no --detection-types line matches: correlation, playbook or sandbox [default: correlation].
    #[arg(long, value_name = "TYPE")]
    pub detection_type: Option<String>,
    /// Send mitre_codes: ATT&CK technique ids (T1059, T1059.001) found in rule names.
    #[arg(long)]
    pub mitre_codes: bool,
    /// Send malwares: the event's threatName.
    #[arg(long)]
    pub malwares: bool,
}

/// Flags of `backfill`.
#[derive(Debug, Args, Clone)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub settings: SettingArgs,
    #[command(flatten)]
    pub mode: ModeArgs,
    /// Start of the window (RFC 3339 or YYYY-MM-DD, UTC; rounded down to the hour).
    #[arg(long, value_name = "TIME", requires = "to", conflicts_with = "days")]
    pub from: Option<String>,
    /// End of the window (RFC 3339 or YYYY-MM-DD, UTC), exclusive.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,
    /// The last N days, up to now minus --settle.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650), allow_negative_numbers = true)]
    pub days: Option<u32>,
    /// List slices again even where the coverage map says they are done.
    #[arg(long)]
    pub refetch: bool,
}

/// Flags of `doctor`: the same flags as `sync` (so a scheduled command line can be
/// checked as it is), plus `--offline`.
#[derive(Debug, Args, Clone)]
#[command(
    mut_arg("json", |a| a.help("Print one JSON object with every check instead of lines")),
    after_help = "Accepts every flag of sync, so a scheduled command line can be checked as it is; flags that only shape a run are ignored. Never takes the run lock, never writes the ledger, never submits a detection.\n\nExit codes: 0 no check failed; otherwise the most important failed class: 78 configuration (or an untrusted TLS certificate), 66 input file, 65 ledger data (corrupt, newer, foreign), 74 ledger I/O, 73 cannot create the ledger or logs, 77 credentials rejected, 69 unreachable, 75 the last successful sync is older than --max-age.\n\nExample (monitoring): lrci doctor --offline --max-age 1h"
)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Skip the two network checks (LogRhythm, Collective Insights): no request is made.
    #[arg(long)]
    pub offline: bool,
    /// Fail (exit 75) when the last successful sync or backfill started longer
    /// ago than this: 90s, 30m, 2h, 1d, 1h30m (a bare number is seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<std::time::Duration>,
    /// Also check a backup of the ledger (from `lrci ledger backup`): readable,
    /// an lrci ledger this version can restore, PRAGMA integrity_check, one
    /// self-contained file, and how far it is behind the ledger.
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
}

/// `90s`, `30m`, `2h`, `1d`, `1h30m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let bad = || format!("{t:?} is not a duration (e.g. 90s, 30m, 2h, 1d, 1h30m)");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// `lrci config`.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand, Clone)]
pub enum ConfigCommand {
    /// The effective settings, each with its origin (flag, environment, FILE:LINE, default); keys are never shown.
    Show(ConfigShowArgs),
    /// Validate every setting, key file and filter file, with no network and no ledger: exit 78 naming the culprit, 0 when fine.
    Check(ConfigShowArgs),
}

/// Flags of `config show` and `config check`: every setting flag, so a command
/// line can be checked as it is.
#[derive(Debug, Args, Clone)]
pub struct ConfigShowArgs {
    #[command(flatten)]
    pub settings: SettingArgs,
    /// Print JSON (one object; one line per profile with --all-profiles).
    #[arg(long)]
    pub json: bool,
    /// Every [profile.NAME] of the config file.
    #[arg(long, conflicts_with = "profile")]
    pub all_profiles: bool,
}

/// A detection state, as `replay --state` and `ledger ... --state` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Pending,
    Failed,
    Rejected,
    Sent,
    /// CI answered 2xx without a recognisable result (replay posts them again
    /// only when asked by name; sync and `reconcile` settle them from CI's search).
    Unconfirmed,
    /// Accepted only to be refused with a clear reason: never replayed.
    Excluded,
}

/// Flags of `replay`.
///
/// `excluded` detections are never replayed: the indicator policy keeps them on site.
#[derive(Debug, Args, Clone)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub api: CiApiArgs,
    #[command(flatten)]
    pub submit: SubmitArgs,
    #[command(flatten)]
    pub mode: ModeArgs,
    /// Only detections of this alarm id (repeatable).
    #[arg(long = "alarm", value_name = "ID", value_parser = clap::value_parser!(i64).range(1..), allow_negative_numbers = true)]
    pub alarms: Vec<i64>,
    /// Only alarms inserted at or after TIME (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only alarms inserted before TIME (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Only detections in this state (repeatable) [default: failed and pending].
    #[arg(long = "state", value_name = "STATE", value_enum)]
    pub states: Vec<StateArg>,
    /// Also resend detections already `sent` (they stay `sent`; the new submission is recorded).
    #[arg(long)]
    pub resend: bool,
}

/// Flags of `reconcile`.
#[derive(Debug, Args, Clone, Default)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub api: CiApiArgs,
    /// Start of the window, by detection time (RFC 3339 or YYYY-MM-DD, UTC) [default: 7 days (or lookback) before --to].
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the window, inclusive [default: now].
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Search and compare, change nothing in the ledger.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Alarms per hour the simulator generates over the last 24 hours.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=2000), allow_negative_numbers = true)]
    pub alarms_per_hour: u32,
    /// Seed of the simulated alarms.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

/// Whether `name` names a subcommand, for [`normalize_argv`]: read from the
/// clap definition itself, so a new command cannot be forgotten here (a list
/// kept by hand once lacked `reconcile`, which then ran as `sync reconcile`).
fn is_subcommand(name: &str) -> bool {
    use clap::CommandFactory;
    name == "help"
        || Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == name || c.get_all_aliases().any(|a| a == name))
}

/// Global flags that take a value, for [`normalize_argv`].
const GLOBAL_WITH_VALUE: [&str; 8] = [
    "--log-format",
    "--metrics-file",
    "--ledger",
    "--log-dir",
    "--log-level",
    "-l",
    "--config",
    "--profile",
];

/// The vendor's `-lb=3` form as lrci's `--lookback-days=3` (also `-rbp=`,
/// `-ef=`, `-l=`).
fn vendor_eq(arg: &str) -> Option<String> {
    let (flag, value) = arg.split_once('=')?;
    let long = match flag {
        "-lb" => "--lookback-days",
        "-rbp" => "--min-rbp",
        "-ef" => "--exclude-rules",
        "-l" => "--log-level",
        _ => return None,
    };
    Some(format!("{long}={value}"))
}

/// Prepares argv for clap, so scheduled tasks migrate from the vendor script
/// without edits: the vendor's multi-letter short flags (`-lb`, `-rbp`, `-rf`,
/// `-ef`) become lrci's long ones (whole arguments only), and when no subcommand is
/// named — `lrci` alone, or `lrci -lb 2 -d` — `sync` is inserted after the
/// leading global flags. `--help` and `--version` alone are left as they are.
pub fn normalize_argv<I: IntoIterator<Item = std::ffi::OsString>>(
    args: I,
) -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> = args
        .into_iter()
        .map(|a| match a.to_str() {
            Some("-lb") => "--lookback-days".into(),
            Some("-rbp") => "--min-rbp".into(),
            Some("-rf") => "--rf-only".into(),
            Some("-ef") => "--exclude-rules".into(),
            Some(t) => vendor_eq(t).map_or(a, Into::into),
            None => a,
        })
        .collect();
    let mut i = 1;
    while let Some(arg) = argv.get(i).and_then(|a| a.to_str()) {
        if GLOBAL_WITH_VALUE.contains(&arg) {
            i += 2;
        } else if GLOBAL_WITH_VALUE
            .iter()
            .any(|g| g.starts_with("--") && arg.starts_with(&format!("{g}=")))
        {
            i += 1;
        } else {
            break;
        }
    }
    // Nothing left, or a non-UTF-8 argument (no subcommand name): it is sync.
    let named = argv
        .get(i)
        .and_then(|a| a.to_str())
        .is_some_and(|a| is_subcommand(a) || matches!(a, "-h" | "--help" | "-V" | "--version"));
    if !named {
        argv.insert(i.min(argv.len()), "sync".into());
    }
    argv
}

// ---- lrci ledger ---------------------------------------------------------------

/// Flags of `ledger`.
#[derive(Debug, Args, Clone)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: LedgerCommand,
}

/// The audit commands: all read only and lock-free, except `prune`.
#[derive(Debug, Subcommand, Clone)]
pub enum LedgerCommand {
    /// Alarms and detections by state, coverage of the last days, the last runs and today's CI budget.
    Status(StatusArgs),
    /// Alarms the ledger holds, newest first.
    Alarms(AlarmsArgs),
    /// Indicators (detections) the ledger holds, newest first.
    Indicators(IndicatorsArgs),
    /// One alarm: its filter decision, every indicator, whether and when it reached Recorded Future, and if not, why.
    Show(ShowArgs),
    /// The last sync, backfill and replay runs.
    Runs(RunsArgs),
    /// Hours the coverage map does not hold completely: uncovered, partial and saturated ranges.
    Gaps(GapsArgs),
    /// Every detection with its alarm's fields, streamed as JSON lines or CSV.
    Export(ExportArgs),
    /// What the policy knows of the organisation's domains: per registered domain, learned, configured, allowed or default, the evidence with an example alarm, and detections sent and excluded.
    Domains(KnowledgeArgs),
    /// The organisation's networks: records LogRhythm has shown, own_networks and allow_networks, with detections sent and excluded.
    Networks(KnowledgeArgs),
    /// Remove old detail but keep what is needed never to resend a pruned alarm (takes the run lock).
    Prune(PruneArgs),
    /// A consistent copy of the ledger in FILE (SQLite online backup), safe while a sync runs; checked before it is put in place. Restore: stop the scheduled runs, copy FILE over the ledger, remove the ledger's -wal and -shm files.
    Backup(BackupArgs),
}

/// Flags of `ledger status`.
#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// Coverage of the last N days (whole UTC hours before the current one) [default: the sync window, from the oldest hour ever listed].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650), allow_negative_numbers = true)]
    pub days: Option<u32>,
    /// The daily CI budget to compare today's use with (as given to sync).
    #[arg(long, value_name = "N", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub daily_budget: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An alarm decision, for `--decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DecisionArg {
    Accepted,
    Filtered,
    Error,
}

/// An indicator type, for `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    Ip,
    Domain,
    Url,
    Vulnerability,
    Hash,
}

/// Flags of `ledger alarms`.
#[derive(Debug, Args, Clone)]
pub struct AlarmsArgs {
    /// Alarms inserted at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Alarms inserted before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Rule names containing this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub rule: Option<String>,
    /// Only alarms with this decision.
    #[arg(long, value_enum)]
    pub decision: Option<DecisionArg>,
    /// At most N alarms.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub limit: u32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger indicators`.
#[derive(Debug, Args, Clone)]
pub struct IndicatorsArgs {
    /// Only indicators of this type.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<TypeArg>,
    /// Values containing this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub value: Option<String>,
    /// Only indicators in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only indicators of this alarm.
    #[arg(long, value_name = "ALARM_ID")]
    pub alarm: Option<i64>,
    /// At most N indicators.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub limit: u32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger domains` and `ledger networks`.
#[derive(Debug, Args, Clone)]
pub struct KnowledgeArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger show`.
#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// The LogRhythm alarm id. An id the ledger never saw is exit 2.
    #[arg(value_name = "ALARM_ID", allow_negative_numbers = true)]
    pub alarm_id: i64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger runs`.
#[derive(Debug, Args, Clone)]
pub struct RunsArgs {
    /// At most N runs, newest first.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub limit: u32,
    /// Print a JSON array (with each run's stored summary) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger gaps`.
#[derive(Debug, Args, Clone)]
pub struct GapsArgs {
    /// The last N days (whole UTC hours before the current one) [default: the sync window, from the oldest hour ever listed].
    #[arg(long, value_name = "N", conflicts_with = "from", value_parser = clap::value_parser!(u32).range(1..=3650), allow_negative_numbers = true)]
    pub days: Option<u32>,
    /// Start of the range (RFC 3339 or YYYY-MM-DD, UTC; rounded down to the hour).
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<String>,
    /// End of the range, exclusive.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object a line.
    Jsonl,
    /// CSV with a header line.
    Csv,
}

/// Flags of `ledger export`.
#[derive(Debug, Args, Clone)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only detections in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only detections of alarms inserted at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only detections of alarms inserted before this time.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

/// Flags of `ledger backup`.
#[derive(Debug, Args, Clone)]
pub struct BackupArgs {
    /// The copy to write: a new file in an existing directory (written under a
    /// temporary name, checked, then renamed into place).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace FILE when it exists.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger prune`.
#[derive(Debug, Args, Clone)]
pub struct PruneArgs {
    /// Remove alarms inserted before TIME (RFC 3339 or YYYY-MM-DD, UTC), their
    /// detections, and older submissions and runs; no later than today 00:00 UTC.
    #[arg(long, value_name = "TIME")]
    pub before: String,
    /// Count what would be removed; change nothing.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Also remove alarms whose detections are still pending or failed (they will never be sent).
    #[arg(long)]
    pub force: bool,
    /// Run VACUUM afterwards to give the space back to the file system.
    #[arg(long)]
    pub vacuum: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

// ---- lrci sim ------------------------------------------------------------------

/// Options of `lrci sim`. `Debug` (in `cli::sim`) shows the resolved configuration,
/// keys redacted.
#[derive(Clone, Args)]
pub struct SimArgs {
    /// Address to listen on; loopback only (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", value_parser = parse_loopback)]
    pub listen: SocketAddr,
    /// Seed for the generated alarms and the random faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Hours of alarms to generate, ending at --end.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Alarms generated per hour.
    #[arg(long, default_value_t = 50)]
    pub alarms_per_hour: u32,
    /// Events served per alarm by /events.
    #[arg(long, default_value_t = 1)]
    pub events_per_alarm: u32,
    /// End of the generated window (RFC 3339; truncated to the second). Default: now.
    #[arg(long, value_parser = parse_rfc3339)]
    pub end: Option<DateTime<Utc>>,
    /// Largest page GET /alarms returns (larger counts are silently truncated) [default: 100, 1000 with --server-profile realistic].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub page_cap: Option<u64>,
    /// How GET /alarms treats `offset` [default: ignored, records with --server-profile realistic].
    #[arg(long, value_enum)]
    pub offset_mode: Option<SimOffsetMode>,
    /// A bundle of list behaviours: harsh (page cap 100, offset ignored) or realistic (page cap 1000, offset counts records); --page-cap and --offset-mode override its parts.
    ///
    /// Named --server-profile because --profile picks the config file's [profile.NAME].
    #[arg(long, value_enum, default_value_t = SimServerProfile::Harsh)]
    pub server_profile: SimServerProfile,
    /// How stored dateInserted values compare with the parameter: millis (the rendered millisecond) or exact (the exact 1/300 s SQL datetime tick, compared as datetime2: a .007 parameter excludes the row shown as .007).
    #[arg(long, value_enum, default_value_t = SimTickSemantics::Millis)]
    pub tick_semantics: SimTickSemantics,
    /// dateInserted is an exclusive bound (>) instead of inclusive (>=).
    #[arg(long)]
    pub strict_bound: bool,
    /// The server reads the dateInserted parameter as its local time at UTC+N hours (-14 to 14; a zone designator is ignored) while returned dates stay UTC.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-14..=14))]
    pub server_tz_offset_hours: i32,
    /// List pages come back in a random (seeded) order.
    #[arg(long)]
    pub shuffle_rows: bool,
    /// Some rows of each list page come twice (alarm ids divisible by 5), within the page size.
    #[arg(long)]
    pub duplicate_rows: bool,
    /// Alarms sharing one dateInserted also share rule, status and entity, so the list filters cannot split them (a burst of one AI Engine rule).
    #[arg(long)]
    pub uniform_ties: bool,
    /// Fixed latency added to every LogRhythm request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub lr_latency_ms: u64,
    /// Fixed latency added to every Collective Insights request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub rf_latency_ms: u64,
    /// LogRhythm requests served at once: beyond N in flight each request waits lr-latency × in-flight / N (0 = unlimited).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub lr_capacity: usize,
    /// Answer 429 (no Retry-After) to a LogRhythm request arriving with more than N in flight (0 = never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub lr_reject_above: usize,
    /// Probability (0–1) that any API request gets a random fault.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// How long the "slow" fault holds an answer, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub slow_ms: u64,
    /// The valid LogRhythm bearer token.
    #[arg(long, default_value = SIM_LR_KEY)]
    pub lr_key: String,
    /// A LogRhythm token that is known but lacks permission (answers 403).
    #[arg(long)]
    pub lr_low_priv_key: Option<String>,
    /// The valid Collective Insights token (X-RFToken).
    #[arg(long, default_value = SIM_RF_KEY)]
    pub rf_key: String,
    /// A CI token that is valid but lacks the CI permission (answers 403).
    #[arg(long)]
    pub rf_no_ci_key: Option<String>,
    /// Named scenario.
    #[arg(long, value_enum, default_value_t = SimScenario::Default)]
    pub scenario: SimScenario,
    /// Wrapper key of the events response.
    #[arg(long, value_enum, default_value_t = SimEventsWrapper::AlarmEventsDetails)]
    pub events_wrapper: SimEventsWrapper,
    /// An empty alarm list as `null` or `[]`.
    #[arg(long, value_enum, default_value_t = SimEmptyList::Null)]
    pub empty_list: SimEmptyList,
    /// `alarmsCount` as rows in the page or total matches.
    #[arg(long, value_enum, default_value_t = SimAlarmsCount::Page)]
    pub alarms_count: SimAlarmsCount,
    /// Events and summary answer 404 for alarms younger than this many seconds.
    #[arg(long, default_value_t = 0)]
    pub not_ready_secs: u64,
    /// An alarm is listed only this many seconds after its dateInserted (ingestion
    /// and AI Engine lag; wall clock).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub visibility_lag_secs: u64,
    /// The server's clock minus the real one, in seconds (its Date header and the
    /// time new alarms get); negative makes the agent's clock look fast.
    #[arg(long, value_name = "SECS", default_value_t = 0, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-864_000..=864_000))]
    pub clock_offset_secs: i64,
    /// Up to this many seconds more visibility lag, a fixed share per alarm.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub visibility_jitter_secs: u64,
    /// Collective Insights daily detection quota.
    #[arg(long, default_value_t = 15_000)]
    pub daily_quota: u64,
    /// Collective Insights maximum items per request (413 above it).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Probability (0–1) that a Collective Insights post is silently swallowed:
    /// answered 2xx with a result, nothing stored (its items are listed by
    /// `GET /_sim/dropped`; `POST /_sim/silent-drop {"rate": P}` changes it).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub rf_silent_drop: f64,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A probability: a number from 0 to 1.
fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability from 0 to 1")),
    }
}

fn parse_loopback(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|e| format!("{s:?} is not an IP:PORT address: {e}"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address; the simulator only listens on 127.0.0.0/8 or [::1]"
        ))
    }
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// The simulator's default LogRhythm token (`sim::DEFAULT_LR_KEY`; a test in
/// `cli::sim` keeps the two equal).
pub const SIM_LR_KEY: &str = "sim-lr-key";
/// The simulator's default Collective Insights token (`sim::DEFAULT_RF_KEY`).
pub const SIM_RF_KEY: &str = "0123456789abcdef0123456789abcdef";

/// `lrci sim --scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimScenario {
    /// The realistic mix, spread evenly over the window.
    Default,
    /// The middle hour holds 350 alarms, 120 of them with one identical `dateInserted`.
    Burst,
    /// Every fifth alarm carries one item of the reliability bar's hostile corpus.
    Hostile,
}

/// `lrci sim --offset-mode`: how GET /alarms treats `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimOffsetMode {
    /// Ignored (what the vendor script documents): every call starts at row 0.
    Ignored,
    /// The number of rows to skip.
    Records,
    /// A 0-based page index (rows skipped = offset × page size).
    Pages,
}

/// `lrci sim --server-profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimServerProfile {
    /// Page cap 100, offset ignored (the default).
    Harsh,
    /// Page cap 1000, offset counts records.
    Realistic,
}

/// `lrci sim --tick-semantics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimTickSemantics {
    /// The rendered millisecond is compared.
    Millis,
    /// The exact 1/300 s tick is compared exactly.
    Exact,
}

/// `lrci sim --events-wrapper`: the events response's wrapper key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimEventsWrapper {
    /// `alarmEventsDetails` (what real systems send).
    #[value(name = "alarmEventsDetails")]
    AlarmEventsDetails,
    /// `alarmsEventDetails` (the OpenAPI file's spelling).
    #[value(name = "alarmsEventDetails")]
    AlarmsEventDetails,
}

/// `lrci sim --empty-list`: an empty alarm list as `null` or `[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimEmptyList {
    /// `alarmsSearchDetails: null`.
    Null,
    /// `alarmsSearchDetails: []`.
    Empty,
}

/// `lrci sim --alarms-count`: the meaning of `alarmsCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimAlarmsCount {
    /// Rows in this page.
    Page,
    /// All rows matching the filters.
    Total,
}

/// `--concurrency`: `auto` (any case) or a whole number 1-64, as given.
fn parse_concurrency(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok("auto".to_string());
    }
    match t.parse::<u16>() {
        Ok(n @ 1..=64) => Ok(n.to_string()),
        Ok(n) => Err(format!("{n} is out of range (auto or 1..=64)")),
        Err(_) => Err(format!("{t:?} is neither auto nor a whole number 1-64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let argv = normalize_argv(args.iter().map(|s| s.into()));
        Cli::try_parse_from(argv).unwrap()
    }

    #[test]
    fn durations_table() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        for (text, want) in [
            ("90", Some(90)),
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("2h", Some(7200)),
            ("1d", Some(86_400)),
            ("1w", Some(604_800)),
            ("1h30m", Some(5400)),
            (" 2H ", Some(7200)),
            ("", None),
            ("h", None),
            ("5x", None),
            ("1h30", None),
            ("-1h", None),
            ("99999999999999999999d", None),
        ] {
            assert_eq!(secs(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn sync_is_inserted_only_where_no_subcommand_is_named() {
        let norm = |args: &[&str]| -> Vec<String> {
            normalize_argv(args.iter().map(|s| s.into()))
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(norm(&["lrci"]), ["lrci", "sync"]);
        assert_eq!(norm(&["lrci", "-d"]), ["lrci", "sync", "-d"]);
        assert_eq!(
            norm(&["lrci", "-l", "DEBUG", "-lb", "2"]),
            ["lrci", "-l", "DEBUG", "sync", "--lookback-days", "2"]
        );
        assert_eq!(
            norm(&["lrci", "--ledger=/x", "--json"]),
            ["lrci", "--ledger=/x", "sync", "--json"]
        );
        assert_eq!(
            norm(&["lrci", "--ledger", "/x", "ledger", "status"]),
            ["lrci", "--ledger", "/x", "ledger", "status"]
        );
        assert_eq!(norm(&["lrci", "--help"]), ["lrci", "--help"]);
        assert_eq!(
            norm(&["lrci", "-lb=3", "-rbp=50", "-ef=r.txt", "-l=DEBUG", "-x=1"]),
            [
                "lrci",
                "sync",
                "--lookback-days=3",
                "--min-rbp=50",
                "--exclude-rules=r.txt",
                "--log-level=DEBUG",
                "-x=1"
            ]
        );
        assert_eq!(norm(&["lrci", "demo"]), ["lrci", "demo"]);
        // Every subcommand clap knows is left alone.
        use clap::CommandFactory;
        for c in Cli::command().get_subcommands() {
            let name = c.get_name();
            assert_eq!(norm(&["lrci", name]), ["lrci", name], "{name}");
        }
        assert_eq!(norm(&["lrci", "reconcile"]), ["lrci", "reconcile"]);
        assert_eq!(
            norm(&["lrci", "--ledger", "/x", "doctor", "--offline"]),
            ["lrci", "--ledger", "/x", "doctor", "--offline"]
        );
    }

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        for args in [
            &["lrci", "--ledger", "/x", "sync"][..],
            &["lrci", "sync", "--ledger", "/x"],
            &["lrci", "-l", "debug", "--ledger", "/x", "ledger", "status"],
        ] {
            let cli = Cli::try_parse_from(normalize_argv(args.iter().map(|s| s.into()))).unwrap();
            assert_eq!(
                cli.global.ledger.as_deref(),
                Some(std::path::Path::new("/x")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn vendor_flags_map_to_sync() {
        let cli = parse(&[
            "lrci",
            "-lb",
            "2",
            "-rbp",
            "40",
            "-rf",
            "-ef",
            "rules.txt",
            "-d",
            "-l",
            "DEBUG",
        ]);
        let Some(Command::Sync(sync)) = &cli.command else {
            panic!("not sync: {:?}", cli.command)
        };
        assert_eq!(sync.settings.lookback_days, Some(2));
        assert_eq!(sync.settings.run.min_rbp, Some(40));
        assert!(sync.settings.run.rf_only);
        assert!(sync.mode.dry_run);
        assert_eq!(
            sync.settings.run.exclude_rules.as_deref(),
            Some(std::path::Path::new("rules.txt"))
        );
        assert_eq!(cli.global.log_level, Some(LogLevel::Debug));
    }

    #[test]
    fn bad_numbers_are_usage_errors() {
        for args in [
            &["lrci", "sync", "--batch-size", "0"][..],
            &["lrci", "sync", "--batch-size", "abc"],
            &["lrci", "sync", "--batch-size", "99999999999999999999"],
            &["lrci", "sync", "--min-rbp", "101"],
            &["lrci", "sync", "--timeout", "0"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn negative_numbers_are_values_of_their_flag() {
        for (args, flag) in [
            (&["lrci", "sync", "--batch-size", "-1"][..], "--batch-size"),
            (&["lrci", "--batch-size", "-1"], "--batch-size"),
            (&["lrci", "sync", "--timeout", "-5"], "--timeout"),
            (&["lrci", "backfill", "--days", "-3"], "--days"),
        ] {
            let err =
                Cli::try_parse_from(normalize_argv(args.iter().map(|s| s.into()))).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(err.to_string().contains(flag), "{args:?}: {err}");
        }
    }
}
