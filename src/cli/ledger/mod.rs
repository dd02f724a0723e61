//! `lrci ledger ...`: the read-only audit commands (`status`, `alarms`,
//! `indicators`, `show`, `runs`, `gaps`, `export`, `domains`, `networks`), the
//! online copy `backup`, and their clap types.
//!
//! Every command here opens the ledger with [`Mode::ReadOnly`] and never takes the
//! run lock, so it works while a sync runs and never blocks it (WAL). The one
//! writing subcommand, `prune`, lives in [`crate::cli::prune`] and is only
//! dispatched from here. A missing ledger is
//! exit 66 and nothing is created. Output goes to stdout only: tables for people
//! (times in UTC, long values cut with an ellipsis, control, bidi and zero-width
//! characters escaped so ledger values that came from LogRhythm cannot drive the
//! terminal), or `--json` for machines (the same characters escaped as `\uXXXX`).
//! A closed pipe (`| head`) ends the command quietly with exit 0; any other write
//! error is exit 74. All SQL is in [`crate::ledger::audit`].

use crate::cli::args::GlobalArgs;
pub use crate::cli::args::{
    AlarmsArgs, DecisionArg, ExportArgs, ExportFormat, GapsArgs, IndicatorsArgs, LedgerArgs,
    LedgerCommand, RunsArgs, ShowArgs, StateArg, StatusArgs, TypeArg,
};
use crate::config::parse_time;
use crate::error::{code, Fatal};
use crate::ledger::audit::{
    self, AlarmDetail, AlarmFilter, AlarmIndicator, ExportError, ExportFilter, ExportRow, GapRange,
    IndicatorFilter, RunRow,
};
use crate::ledger::{self, Ledger};
use crate::model::{AlarmDecision, AlarmId, DetectionState, IndicatorType};
use chrono::{DateTime, Duration as Span, Utc};
use comfy_table::Table;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{self, BufWriter, Write};
use std::path::Path;

mod backup;
mod export;
mod format;
mod gaps;
mod knowledge;
mod list;
mod runs;
mod show;
mod status;
#[cfg(test)]
mod tests;

use backup::*;
pub use export::EXPORT_COLUMNS;
use export::*;
use format::*;
pub use format::{cell, escape, human_age, when};
use gaps::*;
use knowledge::*;
use list::*;
use runs::*;
use show::*;
use status::*;

impl DecisionArg {
    fn decision(self) -> AlarmDecision {
        match self {
            DecisionArg::Accepted => AlarmDecision::Accepted,
            DecisionArg::Filtered => AlarmDecision::Filtered,
            DecisionArg::Error => AlarmDecision::Error,
        }
    }
}

impl From<StateArg> for DetectionState {
    fn from(s: StateArg) -> DetectionState {
        match s {
            StateArg::Pending => DetectionState::Pending,
            StateArg::Sent => DetectionState::Sent,
            StateArg::Failed => DetectionState::Failed,
            StateArg::Rejected => DetectionState::Rejected,
            StateArg::Unconfirmed => DetectionState::Unconfirmed,
            StateArg::Excluded => DetectionState::Excluded,
        }
    }
}

impl From<TypeArg> for IndicatorType {
    fn from(t: TypeArg) -> IndicatorType {
        match t {
            TypeArg::Ip => IndicatorType::Ip,
            TypeArg::Domain => IndicatorType::Domain,
            TypeArg::Url => IndicatorType::Url,
            TypeArg::Vulnerability => IndicatorType::Vulnerability,
            TypeArg::Hash => IndicatorType::Hash,
        }
    }
}

/// Why a command stopped: writing stdout failed, or anything else.
enum Failure {
    Write(io::Error),
    Fatal(Fatal),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Write(e)
    }
}

impl From<Fatal> for Failure {
    fn from(f: Fatal) -> Failure {
        Failure::Fatal(f)
    }
}

impl From<ledger::Error> for Failure {
    fn from(e: ledger::Error) -> Failure {
        Failure::Fatal(e.into())
    }
}

impl From<ExportError> for Failure {
    fn from(e: ExportError) -> Failure {
        match e {
            ExportError::Ledger(e) => e.into(),
            ExportError::Sink(e) => Failure::Write(e),
        }
    }
}

type Outcome = Result<(), Failure>;

/// Whether this `ledger` subcommand writes (and so logs to the log file, as
/// scheduled work): `prune` without `--dry-run`, which writes the ledger, and
/// `backup`, which writes its copy.
pub fn writes(args: &LedgerArgs) -> bool {
    matches!(&args.command, LedgerCommand::Prune(p) if !p.dry_run)
        || matches!(&args.command, LedgerCommand::Backup(_))
}

/// Runs one `lrci ledger ...` command and returns its exit code.
pub async fn run(global: &GlobalArgs, args: &LedgerArgs) -> Result<u8, Fatal> {
    if let LedgerCommand::Prune(p) = &args.command {
        return crate::cli::prune::run(global, p).await;
    }
    let path = crate::cli::settings::ledger_path(global)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let now = crate::clock::now();
    let result = match &args.command {
        LedgerCommand::Status(a) => status(&path, a, now, &mut out),
        LedgerCommand::Alarms(a) => alarms(&path, a, &mut out),
        LedgerCommand::Indicators(a) => indicators(&path, a, &mut out),
        LedgerCommand::Show(a) => {
            // What is configured only refines the note on values sent before it
            // was known; a configuration that does not resolve leaves the note to
            // what the ledger learned.
            let p = crate::cli::settings::policy_for(global).unwrap_or_default();
            show(&path, a, &p, &mut out)
        }
        LedgerCommand::Domains(a) => {
            let p = crate::cli::settings::policy_for(global)?;
            domains(&path, &p, a.json, &mut out)
        }
        LedgerCommand::Networks(a) => {
            let p = crate::cli::settings::policy_for(global)?;
            networks(&path, &p, a.json, &mut out)
        }
        LedgerCommand::Runs(a) => runs(&path, a, &mut out),
        LedgerCommand::Gaps(a) => gaps(&path, a, now, &mut out),
        LedgerCommand::Export(a) => export(&path, a, &mut out),
        LedgerCommand::Backup(a) => backup(&path, a, &mut out),
        // Dispatched above.
        LedgerCommand::Prune(_) => Ok(()),
    }
    .and_then(|()| out.flush().map_err(Failure::Write));
    match result {
        Ok(()) => Ok(code::OK),
        // `lrci ledger ... | head`: the reader has what it wanted.
        Err(Failure::Write(e)) => super::output::pipe_exit(Err(e)).map(|()| code::OK),
        Err(Failure::Fatal(f)) => Err(f),
    }
}

/// Opens an existing ledger read-only; a missing one is exit 66 and is not created.
fn open(path: &Path) -> Result<Ledger, Fatal> {
    match path.try_exists() {
        Ok(true) => Ok(Ledger::open(path)?),
        Ok(false) => Err(Fatal::msg(
            code::NO_INPUT,
            format!(
                "the ledger {} does not exist: run `lrci sync` first, or point LRCI_LEDGER (--ledger) at the ledger",
                path.display()
            ),
        )),
        Err(e) => Err(Fatal::new(
            code::NO_INPUT,
            anyhow::Error::new(e).context(format!("cannot read the ledger {}", path.display())),
        )),
    }
}

fn parse_opt(flag: &str, raw: Option<&String>) -> Result<Option<DateTime<Utc>>, Fatal> {
    raw.map(|s| parse_time(flag, s)).transpose()
}

/// Hour slicing is the engine plan's (one definition for sync and `ledger gaps`).
fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    crate::engine::plan::floor_hour(t)
}

/// The hours `ledger status` and `ledger gaps` judge: the last `days` when
/// given, else the sync window (from the oldest hour ever listed to the current
/// hour), else, before any listing, the last day. The text names it for people.
fn window(
    l: &Ledger,
    days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, String), ledger::Error> {
    if let Some(d) = days {
        let (from, to) = last_days(now, d);
        return Ok((from, to, format!("last {d} days")));
    }
    Ok(match l.first_slice()? {
        Some(first) => {
            let from = floor_hour(first);
            let to = floor_hour(now).max(from + Span::hours(1));
            (from, to, "sync window".to_string())
        }
        None => {
            let (from, to) = last_days(now, 1);
            (from, to, "last day (nothing listed yet)".to_string())
        }
    })
}

/// The last `days` whole UTC hours before the current one: `[from, to)`.
fn last_days(now: DateTime<Utc>, days: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let to = floor_hour(now);
    (to - Span::days(i64::from(days)), to)
}
