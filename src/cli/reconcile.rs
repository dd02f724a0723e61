//! `lrci reconcile`: page through Collective Insights' search for a window and
//! compare with the ledger. Found → `sent` (confirms `sent`, settles
//! `unconfirmed`, and `pending`/`failed` CI already holds); `sent` or
//! `unconfirmed` that CI lacks → `pending` with the reason, for `replay`; what CI
//! holds is recorded in `ci_holdings`, so on a fresh ledger a later sync marks
//! those detections `sent` instead of sending them again.

use crate::ci;
use crate::cli::args::ReconcileArgs;
use crate::cli::output::print;
use crate::config::{parse_time, Settings};
use crate::error::{code, Fatal, WithCode};
use crate::ledger::{Holding, WindowDetection, Writer};
use crate::model::DetectionId;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;

/// Examples shown per list.
const EXAMPLES: usize = 5;
/// Days reconciled by default (at least the sync's catch-up horizon).
const DEFAULT_DAYS: i64 = 7;

/// What reconcile will change, decided from the ledger's window and CI's events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Not `sent` in the ledger but held by CI → `sent`.
    pub confirm: Vec<DetectionId>,
    /// `sent` or `unconfirmed` but not held by CI → `pending`.
    pub requeue: Vec<DetectionId>,
    /// `sent` and held: nothing to do.
    pub confirmed: u64,
    /// `unconfirmed` found (part of `confirm`) and absent (part of `requeue`).
    pub unconfirmed_found: u64,
    pub unconfirmed_absent: u64,
    /// CI events with no detection in this ledger (recorded in `ci_holdings`).
    pub ci_only: Vec<Holding>,
}

/// The pure decision.
pub fn plan(ledger: &[WindowDetection], held: &[Holding]) -> Plan {
    let key = |h: &Holding| (h.incident_id.clone(), h.ioc_type.clone(), h.value.clone());
    let ci: HashSet<_> = held.iter().map(key).collect();
    let mut mine = HashSet::new();
    let mut p = Plan::default();
    for d in ledger {
        let k = (
            d.alarm_id.to_string(),
            d.kind.as_str().to_string(),
            d.value.clone(),
        );
        let found = ci.contains(&k);
        mine.insert(k);
        match (d.state.as_str(), found) {
            ("sent", true) => p.confirmed += 1,
            ("sent", false) => p.requeue.push(d.id),
            ("unconfirmed", true) => {
                p.unconfirmed_found += 1;
                p.confirm.push(d.id);
            }
            ("unconfirmed", false) => {
                p.unconfirmed_absent += 1;
                p.requeue.push(d.id);
            }
            (_, true) => p.confirm.push(d.id),
            (_, false) => {}
        }
    }
    p.ci_only = held
        .iter()
        .filter(|h| !mine.contains(&key(h)))
        .cloned()
        .collect();
    p
}

/// The window: `--from`/`--to`, else the last [`DEFAULT_DAYS`] (or `lookback`) days.
fn window(s: &Settings, args: &ReconcileArgs) -> Result<(DateTime<Utc>, DateTime<Utc>), Fatal> {
    let to = match &args.to {
        Some(t) => parse_time("--to", t)?,
        None => crate::clock::now(),
    };
    let days = DEFAULT_DAYS.max(i64::try_from(s.number("lookback")).unwrap_or(DEFAULT_DAYS));
    let from = match &args.from {
        Some(f) => parse_time("--from", f)?,
        None => to - Duration::days(days),
    };
    if from >= to {
        return Err(Fatal::msg(code::USAGE, "--from must be before --to"));
    }
    Ok((from, to))
}

/// `lrci reconcile`.
pub async fn run(s: &Settings, args: &ReconcileArgs) -> Result<u8, Fatal> {
    let (from, to) = window(s, args)?;
    let api = s.ci()?;
    let client = ci::Client::new(
        api.rf_url.clone(),
        api.rf_key.clone(),
        api.http.options(None),
    )
    .code(code::CONFIG)?;
    let path = s.ledger().value;
    let mut ledger = if args.dry_run {
        Writer::scratch_copy(&path)?
    } else {
        Writer::open(&path)?
    };
    let held = client
        .search_window(from, to, ci::MAX_PAGE)
        .await
        .map_err(ci_fatal)?;
    let holdings: Vec<Holding> = held
        .iter()
        .filter_map(crate::engine::settle::holding)
        .collect();
    let p = plan(&ledger.window_detections(from, to)?, &holdings);
    let now = crate::clock::now();
    ledger.record_holdings(&holdings, now)?;
    ledger.confirm_sent(&p.confirm, now)?;
    let reason = format!(
        "reconcile {}: not held by Collective Insights",
        crate::ledger::ts(now)
    );
    ledger.requeue(&p.requeue, &reason, now)?;
    print(&report(&p, (from, to), held.len(), args))?;
    Ok(code::OK)
}

fn ci_fatal(e: ci::Error) -> Fatal {
    let code = if e.is_auth() {
        code::NO_PERM
    } else if e.tls_failure().is_some() {
        code::CONFIG
    } else {
        code::UNAVAILABLE
    };
    Fatal::new(
        code,
        anyhow::Error::new(e).context("could not search Collective Insights"),
    )
}

/// The summary: JSON with `--json`, else a few lines for people.
fn report(
    p: &Plan,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    events: usize,
    args: &ReconcileArgs,
) -> String {
    let examples: Vec<String> = p
        .ci_only
        .iter()
        .take(EXAMPLES)
        .map(|h| {
            format!(
                "{} {} {}",
                h.incident_id,
                h.ioc_type,
                crate::http::sanitize(&h.value, 200)
            )
        })
        .collect();
    let requeued: Vec<i64> = p.requeue.iter().take(EXAMPLES).map(|d| d.get()).collect();
    let v = serde_json::json!({
        "window": {"from": crate::ledger::ts(from), "to": crate::ledger::ts(to)},
        "ci_events": events,
        "confirmed": p.confirmed,
        "marked_sent": p.confirm.len(),
        "unconfirmed": {"found": p.unconfirmed_found, "absent": p.unconfirmed_absent},
        "requeued": p.requeue.len(),
        "ci_only": p.ci_only.len(),
        "examples": {"requeued_detection_ids": requeued, "ci_only": examples},
        "dry_run": args.dry_run,
    });
    if args.json {
        return format!("{v}\n");
    }
    format!(
        "window {} .. {}: {events} events in Collective Insights\n{} sent confirmed, {} marked sent, {} queued for replay (unconfirmed: {} found, {} absent), {} held by CI only{}\n",
        v["window"]["from"].as_str().unwrap_or(""),
        v["window"]["to"].as_str().unwrap_or(""),
        p.confirmed,
        p.confirm.len(),
        p.requeue.len(),
        p.unconfirmed_found,
        p.unconfirmed_absent,
        p.ci_only.len(),
        if args.dry_run { " (dry run: ledger unchanged)" } else { "" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IndicatorType;

    fn det(id: i64, alarm: i64, value: &str, state: &str) -> WindowDetection {
        WindowDetection {
            id: id.into(),
            alarm_id: alarm.into(),
            kind: IndicatorType::Ip,
            value: value.into(),
            state: state.into(),
        }
    }

    fn held(alarm: &str, value: &str) -> Holding {
        Holding {
            incident_id: alarm.into(),
            ioc_type: "ip".into(),
            value: value.into(),
            event_id: "e".into(),
            detection_time: None,
        }
    }

    #[test]
    fn plan_table() {
        let ledger = [
            det(1, 10, "1.1.1.1", "sent"),
            det(2, 10, "1.1.1.2", "sent"),
            det(3, 11, "1.1.1.3", "unconfirmed"),
            det(4, 11, "1.1.1.4", "unconfirmed"),
            det(5, 12, "1.1.1.5", "pending"),
            det(6, 12, "1.1.1.6", "failed"),
            det(7, 12, "1.1.1.7", "pending"),
        ];
        let ci = [
            held("10", "1.1.1.1"),
            held("11", "1.1.1.3"),
            held("12", "1.1.1.5"),
            held("12", "1.1.1.6"),
            held("13", "9.9.9.9"),
            held("10", "1.1.1.3"),
        ];
        let p = plan(&ledger, &ci);
        assert_eq!(p.confirmed, 1);
        let ids = |v: &[i64]| v.iter().map(|&i| DetectionId::from(i)).collect::<Vec<_>>();
        assert_eq!(p.confirm, ids(&[3, 5, 6]));
        assert_eq!(p.requeue, ids(&[2, 4]));
        assert_eq!((p.unconfirmed_found, p.unconfirmed_absent), (1, 1));
        assert_eq!(
            p.ci_only,
            vec![held("13", "9.9.9.9"), held("10", "1.1.1.3")]
        );
        assert_eq!(plan(&[], &[]), Plan::default());
    }
}
