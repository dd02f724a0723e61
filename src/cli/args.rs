//! Every clap type of the command line, and nothing else: no crate imports here
//! except the simulator's, the ledger commands' and doctor's argument types, which
//! live beside their commands.
//!
//! Settings resolve flag > environment > default; each environment variable is
//! declared on its flag so `--help` shows it. Keys are never flag values: they come
//! from the environment or from a file named by a flag.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Sends LogRhythm alarms to Recorded Future Collective Insights, and keeps a
/// ledger of everything it saw and sent.
///
/// With no subcommand, runs `sync`. The vendor script's flags (-lb, -rbp, -rf, -ef,
/// -d, -l) are accepted unchanged.
#[derive(Debug, Parser)]
#[command(name = "lrci", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Always present after [`normalize_argv`], which inserts `sync` when no
    /// subcommand is named.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command understands.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// The ledger file [default: the platform data directory, file ledger.sqlite3].
    #[arg(long, env = "LRCI_LEDGER", global = true, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Directory for the daily-rotated log files (14 kept) [default: beside the ledger, logs/].
    #[arg(long, env = "LRCI_LOG_DIR", global = true, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Log level for stderr and the log file (vendor flag -l) [default: info; warn for demo].
    #[arg(
        short = 'l',
        long,
        env = "LRCI_LOG_LEVEL",
        global = true,
        value_enum,
        ignore_case = true
    )]
    pub log_level: Option<LogLevel>,
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Incremental sync of the lookback window: fills gaps, retries what is unsent.
    Sync(SyncArgs),
    /// The same engine over an explicit window; only uncovered slices unless --refetch.
    Backfill(BackfillArgs),
    /// Serve a simulated LogRhythm Alarm API and Collective Insights API on loopback.
    Sim(crate::cli::sim::SimArgs),
    /// Start the simulator in-process and run a real sync against it into a temporary ledger.
    Demo(DemoArgs),
    /// Audit the ledger, read only: status, alarms, indicators, show, runs, gaps, export.
    Ledger(crate::cli::ledger::LedgerArgs),
    /// Resubmit detections from the ledger: failed and pending by default.
    Replay(ReplayArgs),
    /// Check configuration, ledger integrity, both APIs' reachability and credentials; changes nothing.
    Doctor(crate::cli::doctor::DoctorArgs),
}

/// Where the two APIs are and how to reach them.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// LogRhythm API base URL, e.g. https://platform-manager:8501 (the client adds /lr-alarm-api/).
    #[arg(long, env = "LOGRHYTHM_API_URL", value_name = "URL")]
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
    /// Recorded Future API base URL (https only; loopback may use http).
    #[arg(
        long,
        env = "RF_API_URL",
        value_name = "URL",
        default_value = "https://api.recordedfuture.com"
    )]
    pub rf_url: String,
    /// Read the Recorded Future token from this file instead of RF_API_KEY.
    #[arg(long, value_name = "FILE")]
    pub rf_key_file: Option<PathBuf>,
    /// Seconds allowed for one HTTP request.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600), allow_negative_numbers = true)]
    pub timeout: u64,
    /// Seconds allowed to connect.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600), allow_negative_numbers = true)]
    pub connect_timeout: u64,
    /// Retries of a transient failure (429, 5xx, timeout) per request.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=20), allow_negative_numbers = true)]
    pub max_retries: u32,
}

/// Flags of `sync` (and of `lrci` alone).
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Days to look back (vendor flag -lb).
    #[arg(long, value_name = "DAYS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=365), allow_negative_numbers = true)]
    pub lookback_days: u32,
}

/// Flags shared by `sync` and `backfill`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Only alarms whose Risk Based Priority (rbpMax) is at least N, 0-100 (vendor flag -rbp).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100), allow_negative_numbers = true)]
    pub min_rbp: Option<u8>,
    /// Only alarms whose rule name contains "Recorded Future" (vendor flag -rf).
    #[arg(long)]
    pub rf_only: bool,
    /// Skip alarms of the rules named in FILE, one a line; # comments (vendor flag -ef).
    #[arg(long, value_name = "FILE")]
    pub exclude_rules: Option<PathBuf>,
    /// Extra internal domain suffixes, one a line: never sent.
    #[arg(long, value_name = "FILE")]
    pub internal_domains: Option<PathBuf>,
    /// Indicators never to send, one a line: IP, CIDR, domain suffix or URL.
    #[arg(long, value_name = "FILE")]
    pub exclude_indicators: Option<PathBuf>,
    /// Fetch, filter, extract and post to CI with debug: true; the ledger is left unchanged (vendor flag -d).
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Print one JSON summary object on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Seconds to leave alarms alone after they fire (their data may not be ready).
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400), allow_negative_numbers = true)]
    pub settle: u64,
    /// Parallel per-alarm requests (details, events) to LogRhythm.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64), allow_negative_numbers = true)]
    pub concurrency: u16,
    /// Detections per Collective Insights request.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000), allow_negative_numbers = true)]
    pub batch_size: u32,
    /// Rows asked for per LogRhythm list page (the server may return fewer).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), allow_negative_numbers = true)]
    pub page_size: u32,
    /// Detections sent per UTC day at most; the rest waits for the next day.
    #[arg(long, value_name = "N", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub daily_budget: u64,
    /// Stop starting new work after this many seconds; what is left waits for the next run.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub max_runtime: Option<u64>,
}

/// Flags of `backfill`.
#[derive(Debug, Args, Clone)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub run: RunArgs,
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

/// How to reach Collective Insights alone (`replay`).
#[derive(Debug, Args, Clone)]
pub struct CiApiArgs {
    /// Recorded Future API base URL (https only; loopback may use http).
    #[arg(
        long,
        env = "RF_API_URL",
        value_name = "URL",
        default_value = "https://api.recordedfuture.com"
    )]
    pub rf_url: String,
    /// Read the Recorded Future token from this file instead of RF_API_KEY.
    #[arg(long, value_name = "FILE")]
    pub rf_key_file: Option<PathBuf>,
    /// Seconds allowed for one HTTP request.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600), allow_negative_numbers = true)]
    pub timeout: u64,
    /// Seconds allowed to connect.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600), allow_negative_numbers = true)]
    pub connect_timeout: u64,
    /// Retries of a transient failure (429, 5xx, timeout) per request.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=20), allow_negative_numbers = true)]
    pub max_retries: u32,
}

/// A detection state, as `replay --state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Pending,
    Failed,
    Rejected,
    Sent,
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
    /// Post with debug: true (validated by CI, not stored); the ledger is left unchanged.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Print one JSON summary object on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Detections per Collective Insights request.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000), allow_negative_numbers = true)]
    pub batch_size: u32,
    /// Detections sent per UTC day at most; the rest waits for the next day.
    #[arg(long, value_name = "N", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub daily_budget: u64,
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

/// The subcommand names, for [`normalize_argv`].
const SUBCOMMANDS: [&str; 8] = [
    "sync", "backfill", "sim", "demo", "ledger", "replay", "doctor", "help",
];

/// Global flags that take a value, for [`normalize_argv`].
const GLOBAL_WITH_VALUE: [&str; 4] = ["--ledger", "--log-dir", "--log-level", "-l"];

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
            _ => a,
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
    let named = argv.get(i).and_then(|a| a.to_str()).is_some_and(|a| {
        SUBCOMMANDS.contains(&a) || matches!(a, "-h" | "--help" | "-V" | "--version")
    });
    if !named {
        argv.insert(i.min(argv.len()), "sync".into());
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let argv = normalize_argv(args.iter().map(|s| s.into()));
        Cli::try_parse_from(argv).unwrap()
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
        assert_eq!(norm(&["lrci", "demo"]), ["lrci", "demo"]);
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
        assert_eq!(sync.lookback_days, 2);
        assert_eq!(sync.run.min_rbp, Some(40));
        assert!(sync.run.rf_only);
        assert!(sync.run.dry_run);
        assert_eq!(
            sync.run.exclude_rules.as_deref(),
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
