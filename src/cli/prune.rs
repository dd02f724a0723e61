//! `ledger prune --before DATE`: removes the detail of alarms inserted before DATE
//! (the alarms, their detections, old submissions and runs) and keeps a tombstone
//! per pruned alarm plus every coverage row, so no pruned alarm is ever fetched,
//! recorded or sent again (see `schema.sql`, table `pruned_alarms`).
//!
//! Refuses, changing nothing, when a detection to be removed is still `pending` or
//! `failed` (it would never be sent): exit 65 (bad data: the ledger holds work that
//! pruning would lose) unless `--force`. Takes the run lock, like `sync`; `--dry-run`
//! only counts, reading the ledger read-only without the lock. DATE may not be later
//! than the start of the current UTC day, so today's CI budget stays exact.

pub use crate::cli::args::PruneArgs;
use crate::config::parse_time;
use crate::error::{code, Fatal};
use crate::ledger::{self, Ledger, PruneCounts, Writer};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What `prune` prints with `--json`.
#[derive(Debug, Serialize)]
pub struct PruneSummary {
    pub before: String,
    pub dry_run: bool,
    pub pruned: PruneCounts,
    pub vacuumed: bool,
    pub exit_code: u8,
}

/// `lrci ledger prune`.
pub async fn run(global: &crate::cli::args::GlobalArgs, args: &PruneArgs) -> Result<u8, Fatal> {
    let before = parse_time("--before", &args.before)?;
    let now = crate::clock::now();
    check_cut(before, now)?;
    let path = crate::cli::settings::ledger_path(global)?;
    let (pruned, vacuumed) = if args.dry_run {
        let counts = Ledger::open_or_empty(&path)?.prune_counts(before)?;
        (counts, false)
    } else {
        let mut ledger = Writer::open(&path)?;
        let (counts, done) = ledger.prune(before, now, args.force)?;
        if !done {
            return Err(Fatal::msg(
                code::DATA,
                format!(
                    "refusing to prune: {} detections of alarms inserted before {} are still pending or failed and would never be sent; run `lrci replay` first, or add --force to drop them (nothing was changed)",
                    counts.unsent,
                    ledger::ts(before)
                ),
            ));
        }
        tracing::info!(
            before = %ledger::ts(before),
            alarms = counts.alarms,
            detections = counts.detections,
            unsent = counts.unsent,
            "ledger pruned"
        );
        if args.vacuum {
            ledger.vacuum()?;
        }
        (counts, args.vacuum)
    };
    let summary = PruneSummary {
        before: ledger::ts(before),
        dry_run: args.dry_run,
        pruned,
        vacuumed,
        exit_code: code::OK,
    };
    print(&summary, args.json)?;
    Ok(code::OK)
}

/// The cut may not be later than today 00:00 UTC: today's submissions carry the
/// day's CI budget, and recent alarms may still be in flight.
fn check_cut(before: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Fatal> {
    let today = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    if before > today {
        return Err(Fatal::msg(
            code::USAGE,
            format!(
                "--before {} is later than today 00:00 UTC ({}); today's detail is needed for the CI budget",
                ledger::ts(before),
                ledger::ts(today)
            ),
        ));
    }
    Ok(())
}

fn print(s: &PruneSummary, json: bool) -> Result<(), Fatal> {
    let text = if json {
        format!("{}\n", serde_json::to_string(s).unwrap_or_default())
    } else {
        let verb = if s.dry_run { "would remove" } else { "removed" };
        let p = &s.pruned;
        let mut t = format!(
            "prune before {}: {verb} {} alarms (tombstones kept), {} detections ({} unsent), {} submissions, {} runs\n",
            s.before, p.alarms, p.detections, p.unsent, p.submissions, p.runs
        );
        if s.vacuumed {
            t.push_str("vacuumed\n");
        }
        t
    };
    super::output::print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cut_is_at_most_today_midnight() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 15, 0, 0).unwrap();
        assert!(check_cut(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap(), now).is_ok());
        assert!(check_cut(Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(), now).is_ok());
        let e = check_cut(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 1).unwrap(), now).unwrap_err();
        assert_eq!(e.code, code::USAGE);
    }
}
