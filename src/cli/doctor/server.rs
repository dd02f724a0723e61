//! Doctor's look at what the spec cannot say about the LogRhythm server (issue
//! 11): the server profile the last probe recorded in the ledger (page cap,
//! `offset`, time-zone shift, when), and a live time-zone self-check around the
//! newest alarm's `dateInserted`. Read-only: nothing is recorded here.

use super::*;
use crate::logrhythm::probe::{next_tz_step, TzStep, MAX_TZ_HOURS};

/// How far back the self-check looks for the newest alarm.
const NEWEST_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// The recorded server profile (ledger only; works offline).
pub(super) fn profile_check(path: &Path) -> Check {
    const NAME: &str = "logrhythm: server profile";
    let Ok(l) = Ledger::open(path) else {
        return Check::info(NAME, "no ledger yet: the first sync probes the server");
    };
    match l.server_profile() {
        Ok(None) => Check::info(NAME, "not probed yet: the next sync probes it"),
        Ok(Some(p)) => match &p.stale {
            Some(why) => Check::warn(
                NAME,
                format!(
                    "{} — out of date ({why}): the next sync probes again",
                    p.describe()
                ),
            ),
            None => Check::ok(NAME, p.describe()),
        },
        Err(e) => Check::info(NAME, format!("not readable: {}", chain(&e))),
    }
}

/// What the self-check concluded, for the check line.
pub(super) fn judge_tz(
    newest: &str,
    shift: Option<i32>,
    recorded: Option<i32>,
) -> (Status, String) {
    match (shift, recorded) {
        (Some(0), None | Some(0)) => (
            Status::Ok,
            format!("dateInserted read as UTC: the newest alarm ({newest}) is listed from 1 s before it and not from an hour after"),
        ),
        (Some(0), Some(r)) => (
            Status::Warn,
            format!("dateInserted read as UTC now, but the ledger records a shift of {r:+} h: the next sync after the record ages out probes again"),
        ),
        (Some(h), rec) => {
            let (direction, effect) = if h > 0 {
                ("earlier", "older alarms come back too (lrci bounds rows itself)")
            } else {
                ("later", "alarms of the hours in between would be missed")
            };
            let note = if rec == Some(h) {
                "lrci compensates with the recorded shift".to_string()
            } else {
                format!(
                    "the ledger records {}: the next sync that notices probes again",
                    rec.map_or("no shift".to_string(), |r| format!("{r:+} h"))
                )
            };
            (
                Status::Warn,
                format!("LogRhythm reads dateInserted as local time UTC{h:+} h, not UTC: a bound takes effect {} h {direction}, so {effect}; {note} (newest alarm {newest})", h.abs()),
            )
        }
        (None, _) => (
            Status::Warn,
            format!("the newest alarm ({newest}) is listed for every bound up to {} h after it: LogRhythm may not apply dateInserted at all", MAX_TZ_HOURS + 1),
        ),
    }
}

/// The live time-zone self-check: the newest alarm of the last week, then
/// bounds of `newest + k h − 1 s` until the answers stop (usually 3 requests).
pub(super) async fn tz_check(lr: LrSettings, opts: HttpOptions, ledger: &Path) -> Check {
    const NAME: &str = "logrhythm: time zone";
    let client = match lr_client(lr, opts) {
        Ok(c) => c,
        Err(e) => return Check::info(NAME, format!("not checked: {}", chain(&e))),
    };
    let since = crate::clock::now() - NEWEST_LOOKBACK;
    let newest = match client.list_page_dir(since, 1, 0, true).await {
        Ok(rows) => rows.into_iter().map(|r| r.date_inserted).max(),
        Err(e) => return Check::info(NAME, format!("not checked: {}", chain(&e))),
    };
    let Some(newest) = newest else {
        return Check::info(
            NAME,
            "not checked: no alarm in the last 7 days to check against",
        );
    };
    let mut answers = Vec::new();
    let shift = loop {
        match next_tz_step(&answers) {
            TzStep::Found(s) => break s,
            TzStep::Ask(k) => {
                let bound =
                    newest + chrono::TimeDelta::hours(i64::from(k)) - chrono::TimeDelta::seconds(1);
                match client.list_page(bound, 1, 0).await {
                    Ok(rows) => answers.push((k, !rows.is_empty())),
                    Err(e) => return Check::info(NAME, format!("not checked: {}", chain(&e))),
                }
            }
        }
    };
    let recorded = Ledger::open(ledger)
        .ok()
        .and_then(|l| l.server_profile().ok().flatten())
        .and_then(|p| p.tz_shift_hours);
    let shown = crate::logrhythm::format_lr_date(newest);
    let (status, detail) = judge_tz(&shown, shift, recorded);
    Check::new(
        NAME,
        status,
        format!("{detail}; {} requests", answers.len() + 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per case: measured, recorded, status.
    #[test]
    fn tz_judgement_table() {
        let cases = [
            (Some(0), None, Status::Ok),
            (Some(0), Some(0), Status::Ok),
            (Some(0), Some(2), Status::Warn),
            (Some(2), Some(2), Status::Warn),
            (Some(-5), None, Status::Warn),
            (None, Some(0), Status::Warn),
        ];
        for (shift, recorded, want) in cases {
            let (status, detail) = judge_tz("2024-05-14T09:00:00", shift, recorded);
            assert_eq!(status, want, "{shift:?} {recorded:?}: {detail}");
        }
        let (_, d) = judge_tz("t", Some(-5), None);
        assert!(d.contains("UTC-5 h") && d.contains("missed"), "{d}");
        let (_, d) = judge_tz("t", Some(3), Some(3));
        assert!(d.contains("UTC+3 h") && d.contains("compensates"), "{d}");
    }
}
