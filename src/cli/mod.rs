//! The command line: argument types in [`args`], the flag layer in [`settings`],
//! one module per command, and [`run`], which resolves the settings once, sets up
//! logging and the runtime, and dispatches a parsed [`args::Cli`] to its command.

pub mod args;
pub mod completions;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod ledger;
pub mod metrics;
pub mod outcome;
pub mod output;
pub mod profiles;
pub mod prune;
pub mod reconcile;
pub mod replay;
pub mod runlog;
pub mod settings;
pub mod sim;
pub mod sync;
pub mod version;

use crate::error::{code, Fatal};
use args::{Cli, Command, LogLevel};
use std::ffi::OsString;

/// Runs the parsed command line (`argv` is what it was parsed from, for
/// `--all-profiles`) and returns the exit code; only `main` prints the error.
pub fn run(cli: Cli, argv: Vec<OsString>) -> Result<u8, Fatal> {
    // chrono's `Utc::now` panics on a clock before 1970; no timestamp lrci
    // writes could be right then anyway.
    if std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .is_err()
    {
        return Err(Fatal::msg(
            code::CONFIG,
            "the system clock is set before 1970-01-01: fix the clock (NTP) and run again",
        ));
    }
    if profiles::all_profiles(&cli) {
        let _guard = crate::logging::init(level(&cli, None).into(), None).0;
        return profiles::run_each(&cli, &argv);
    }
    match &cli.command {
        Some(Command::Completions(a)) => return completions::completions(a),
        Some(Command::Man) => return completions::man(),
        _ => {}
    }
    // A bad LRCI_TEST_CLOCK is refused like a bad setting (and logged).
    let clock = crate::clock::init().map_err(|m| Fatal::msg(code::CONFIG, m));
    let started = (std::time::Instant::now(), crate::clock::now());
    let resolved = match &cli.command {
        Some(Command::Sim(_) | Command::Demo(_) | Command::Doctor(_)) | None => None,
        Some(_) => Some(settings::resolve(&cli)),
    };
    let (settings, early) = match resolved {
        Some(Ok(s)) => (Some(s), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let (early, clock_set) = match clock {
        Err(e) => (early.or(Some(e)), None),
        Ok(set) => (early, set),
    };
    // A configuration error is logged where the log directory would have been.
    let lenient = match &early {
        Some(_) => crate::config::resolve_lenient(&settings::sources(&cli)),
        None => None,
    };
    let known = settings.as_ref().or(lenient.as_ref());
    let _guard = match init_logging(&cli, known) {
        Ok(g) => g,
        Err(f) if early.is_none() => return Err(f),
        Err(_) => crate::logging::init(level(&cli, known).into(), None).0,
    };
    if let Some(t) = clock_set {
        tracing::info!(clock = %crate::ledger::ts(t), "this run's clock is set by {}", crate::clock::VAR);
    }
    let ctx = context(&cli, known);
    let is_run = is_run(&cli);
    if is_run {
        runlog::started(
            &ctx,
            settings.as_ref().map(|s| s.origin_summary()).as_deref(),
        );
    }
    let result = match early {
        Some(e) => Err(e),
        None => run_command(&cli, settings.as_ref()),
    };
    if is_run {
        let secs = started.0.elapsed().as_secs_f64();
        finish(&ctx, known, started.1, secs, &result);
    }
    result
}

/// Starts the runtime and runs the command.
fn run_command(cli: &Cli, s: Option<&crate::config::Settings>) -> Result<u8, Fatal> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Fatal::new(
                code::IO,
                anyhow::Error::new(e).context("cannot start the async runtime"),
            )
        })?;
    runtime.block_on(dispatch(cli, s))
}

/// Whether the command is a run (sync, backfill, replay): those log their start
/// and end and update the metrics file.
pub fn is_run(cli: &Cli) -> bool {
    matches!(
        cli.command,
        Some(Command::Sync(_) | Command::Backfill(_) | Command::Replay(_) | Command::Reconcile(_))
    )
}

fn command_name(cli: &Cli) -> &'static str {
    match &cli.command {
        None => "",
        Some(Command::Sync(_)) => "sync",
        Some(Command::Backfill(_)) => "backfill",
        Some(Command::Sim(_)) => "sim",
        Some(Command::Demo(_)) => "demo",
        Some(Command::Ledger(_)) => "ledger",
        Some(Command::Replay(_)) => "replay",
        Some(Command::Reconcile(_)) => "reconcile",
        Some(Command::Doctor(_)) => "doctor",
        Some(Command::Config(_)) => "config",
        Some(Command::Completions(_)) => "completions",
        Some(Command::Man) => "man",
    }
}

/// The run context of the log lines (also set for the JSON format).
fn context(cli: &Cli, s: Option<&crate::config::Settings>) -> crate::logging::RunContext {
    let profile = s
        .and_then(|s| s.profile.as_ref().map(|p| p.value.clone()))
        .or_else(|| cli.global.profile.clone())
        .unwrap_or_default();
    let ctx = crate::logging::RunContext {
        run_id: runlog::new_run_id(),
        profile,
        command: command_name(cli).to_string(),
    };
    crate::logging::set_context(ctx.clone());
    ctx
}

/// The finish line and the metrics file.
fn finish(
    ctx: &crate::logging::RunContext,
    s: Option<&crate::config::Settings>,
    at: chrono::DateTime<chrono::Utc>,
    secs: f64,
    result: &Result<u8, Fatal>,
) {
    let exit = match result {
        Ok(c) => *c,
        Err(f) => f.code,
    };
    runlog::finished(ctx, exit, runlog::reason(result).as_deref(), secs);
    let Some(file) = s.and_then(|s| s.metrics_file()) else {
        return;
    };
    let run = metrics::RunFacts {
        command: ctx.command.clone(),
        profile: ctx.profile.clone(),
        started: at,
        duration_secs: secs,
        exit_code: exit,
    };
    let lookback = s.map_or(1, |s| i64::try_from(s.number("lookback")).unwrap_or(1));
    let ledger = s
        .and_then(|s| metrics::ledger_facts(&s.ledger().value, lookback, s.number("daily_budget")));
    metrics::update(&file, &run, ledger.as_ref());
}

async fn dispatch(cli: &Cli, s: Option<&crate::config::Settings>) -> Result<u8, Fatal> {
    let need = || s.ok_or_else(|| Fatal::msg(code::CONFIG, "settings were not resolved"));
    match &cli.command {
        // normalize_argv inserts `sync` when no subcommand is named.
        None => Err(Fatal::msg(code::USAGE, "no command given")),
        Some(Command::Sync(a)) => sync::sync(need()?, a).await,
        Some(Command::Backfill(a)) => sync::backfill(need()?, a).await,
        Some(Command::Sim(a)) => sim::run(a.clone())
            .await
            .map(|()| 0)
            .map_err(|e| Fatal::new(code::CONFIG, e)),
        Some(Command::Demo(a)) => demo::run(a).await,
        Some(Command::Ledger(a)) => ledger::run(&cli.global, a).await,
        Some(Command::Replay(a)) => replay::run(need()?, a).await,
        Some(Command::Reconcile(a)) => reconcile::run(need()?, a).await,
        Some(Command::Doctor(a)) => doctor::run(cli, a).await,
        Some(Command::Config(a)) => config::run(need()?, a),
        Some(Command::Completions(_) | Command::Man) => Ok(code::OK),
    }
}

/// The log level: the resolved setting, else `-l`, else the command's default
/// (warn for the demo, whose own account would drown in request logs).
fn level(cli: &Cli, s: Option<&crate::config::Settings>) -> LogLevel {
    let named = s
        .and_then(|s| s.log_level())
        .map(String::from)
        .or_else(|| cli.global.log_level.map(|l| l.name().to_string()));
    let by_name = named.and_then(|n| <LogLevel as clap::ValueEnum>::from_str(&n, true).ok());
    by_name.unwrap_or(match cli.command {
        Some(Command::Demo(_)) => LogLevel::Warn,
        _ => LogLevel::Info,
    })
}

/// stderr logging, plus the log directory's file for the commands that change the
/// ledger. A log directory given explicitly that cannot be used is exit 73; a
/// default one only warns.
fn init_logging(
    cli: &Cli,
    s: Option<&crate::config::Settings>,
) -> Result<crate::logging::Guard, Fatal> {
    let dir = s.filter(|_| writes_ledger(cli)).map(|s| s.log_dir());
    let format = crate::logging::Format::named(s.map_or("text", |s| s.log_format()));
    let (guard, file_error) = crate::logging::init_with(
        level(cli, s).into(),
        format,
        dir.as_ref().map(|d| d.value.as_path()),
    );
    if let (Some(e), Some(d)) = (file_error, &dir) {
        if d.origin.is_given() {
            return Err(Fatal::msg(
                code::CANT_CREATE,
                format!(
                    "cannot use the log directory {} ({}): {e}",
                    d.value.display(),
                    d.origin
                ),
            ));
        }
        tracing::warn!(dir = %d.value.display(), error = %e, "cannot write log files; logging to stderr only");
    }
    Ok(guard)
}

/// Whether a command writes the ledger or its backup (and so logs to the log
/// directory too).
pub fn writes_ledger(cli: &Cli) -> bool {
    match &cli.command {
        None => false,
        Some(Command::Sync(a)) => !a.mode.dry_run,
        Some(Command::Backfill(a)) => !a.mode.dry_run,
        Some(Command::Ledger(a)) => ledger::writes(a),
        Some(Command::Replay(a)) => !a.mode.dry_run,
        Some(Command::Reconcile(a)) => !a.dry_run,
        Some(
            Command::Sim(_)
            | Command::Demo(_)
            | Command::Doctor(_)
            | Command::Config(_)
            | Command::Completions(_)
            | Command::Man,
        ) => false,
    }
}

/// The most severe of two exit codes, for runs over several profiles: usage and
/// configuration, credential and local data problems first (2, 78, 77, 66, 65, 73,
/// 74), then an unavailable API (69), then a partial run (75), then success.
pub fn most_severe(a: u8, b: u8) -> u8 {
    const ORDER: [u8; 10] = [
        code::USAGE,
        code::CONFIG,
        code::NO_PERM,
        code::NO_INPUT,
        code::DATA,
        code::CANT_CREATE,
        code::IO,
        code::UNAVAILABLE,
        code::PARTIAL,
        code::OK,
    ];
    let rank = |c: u8| ORDER.iter().position(|o| *o == c).unwrap_or(0);
    if rank(a) <= rank(b) {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_severe_follows_the_documented_order() {
        for (a, b, want) in [
            (0, 0, 0),
            (0, 75, 75),
            (75, 69, 69),
            (69, 77, 77),
            (77, 78, 78),
            (65, 66, 66),
            (74, 73, 73),
            (0, 77, 77),
            (2, 78, 2),
            // An unknown code ranks first: never hide a failure.
            (1, 78, 1),
        ] {
            assert_eq!(most_severe(a, b), want, "{a} {b}");
            assert_eq!(most_severe(b, a), want, "{b} {a}");
        }
    }
}
