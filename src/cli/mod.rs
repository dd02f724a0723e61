//! The command line: argument types in [`args`], the flag layer in [`settings`],
//! one module per command, and [`run`], which resolves the settings once, sets up
//! logging and the runtime, and dispatches a parsed [`args::Cli`] to its command.

pub mod args;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod ledger;
pub mod outcome;
pub mod output;
pub mod profiles;
pub mod prune;
pub mod reconcile;
pub mod replay;
pub mod settings;
pub mod sim;
pub mod sync;

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
        let _guard = crate::logging::init(level(&cli, None), None).0;
        return profiles::run_each(&cli, &argv);
    }
    let settings = match &cli.command {
        Some(Command::Sim(_) | Command::Demo(_) | Command::Doctor(_)) | None => None,
        Some(_) => Some(settings::resolve(&cli)?),
    };
    let _guard = init_logging(&cli, settings.as_ref())?;
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
    runtime.block_on(dispatch(&cli, settings.as_ref()))
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
    let (guard, file_error) =
        crate::logging::init(level(cli, s), dir.as_ref().map(|d| d.value.as_path()));
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

/// Whether a command writes the ledger (and so logs to the log directory too).
pub fn writes_ledger(cli: &Cli) -> bool {
    match &cli.command {
        None => false,
        Some(Command::Sync(a)) => !a.mode.dry_run,
        Some(Command::Backfill(a)) => !a.mode.dry_run,
        Some(Command::Ledger(a)) => ledger::writes(a),
        Some(Command::Replay(a)) => !a.mode.dry_run,
        Some(Command::Reconcile(a)) => !a.dry_run,
        Some(Command::Sim(_) | Command::Demo(_) | Command::Doctor(_) | Command::Config(_)) => false,
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
