//! The command line: argument types in [`args`], one module per command, and
//! [`run`], which dispatches a parsed [`args::Cli`] to its command.

pub mod args;
pub mod demo;
pub mod doctor;
pub mod ledger;
pub mod outcome;
pub mod output;
pub mod prune;
pub mod replay;
pub mod sim;
pub mod sync;

use crate::error::Fatal;
use args::{Cli, Command};

/// Runs the parsed command line and returns the exit code.
pub async fn run(cli: Cli) -> Result<u8, Fatal> {
    match &cli.command {
        // normalize_argv inserts `sync` when no subcommand is named.
        None => Err(Fatal::msg(crate::error::code::USAGE, "no command given")),
        Some(Command::Sync(a)) => sync::sync(&cli.global, a).await,
        Some(Command::Backfill(a)) => sync::backfill(&cli.global, a).await,
        Some(Command::Sim(a)) => sim::run(a.clone())
            .await
            .map(|()| 0)
            .map_err(|e| Fatal::new(crate::error::code::CONFIG, e)),
        Some(Command::Demo(a)) => demo::run(a).await,
        Some(Command::Ledger(a)) => ledger::run(&cli.global, a).await,
        Some(Command::Replay(a)) => replay::run(&cli.global, a).await,
        Some(Command::Doctor(a)) => doctor::run(&cli.global, a).await,
    }
}

/// Whether a command writes the ledger (and so logs to the log directory too).
pub fn writes_ledger(cli: &Cli) -> bool {
    match &cli.command {
        None => false,
        Some(Command::Sync(a)) => !a.run.dry_run,
        Some(Command::Backfill(a)) => !a.run.dry_run,
        Some(Command::Ledger(a)) => ledger::writes(a),
        Some(Command::Replay(a)) => !a.dry_run,
        Some(Command::Sim(_) | Command::Demo(_) | Command::Doctor(_)) => false,
    }
}
