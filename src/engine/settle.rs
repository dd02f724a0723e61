//! Settling `unconfirmed` detections (CI answered 2xx without a recognisable
//! result, so nobody knows whether it stored them): before a run submits, they
//! are looked up in Collective Insights' search. Found → `sent`; not found and
//! unconfirmed for longer than [`SETTLE_AGE`] → `pending`, posted again once;
//! younger → left for a later run (CI's search may not show a fresh post yet).
//! So an ambiguous answer costs at most one resend of its batch, and never a
//! resend every run. Pure decision here; the driver is `send::Sink::settle`.

use crate::ci::Held;
use crate::ledger::{Holding, UnconfirmedRow};
use crate::model::DetectionId;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;

/// How long an unconfirmed detection must be absent from CI's search before it
/// is posted again: CI's search indexing delay is not documented, and ten
/// minutes is two 5-minute scheduled runs.
pub const SETTLE_AGE: Duration = Duration::minutes(10);

/// Unconfirmed detections looked up per run at most (one search window).
pub const SETTLE_LIMIT: usize = 10_000;

/// What becomes of the unconfirmed detections.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    pub found: Vec<DetectionId>,
    pub absent: Vec<DetectionId>,
    pub waiting: usize,
}

/// The ledger key of an event CI holds, when it has an incident id (lrci sends
/// the alarm id there). Shared by this settlement and `lrci reconcile`.
pub fn holding(h: &Held) -> Option<Holding> {
    Some(Holding {
        incident_id: h.incident_id.clone()?,
        ioc_type: h.ioc_type.clone(),
        value: h.value.clone(),
        event_id: h.event_id.clone(),
        detection_time: h.detection_time.clone(),
    })
}

/// The search window that holds every row's timestamp: `[first, last]`
/// `dateInserted`, a second wider each side. `None` for no rows.
pub fn window(rows: &[UnconfirmedRow]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let first = rows.iter().map(|r| r.inserted).min()?;
    let last = rows.iter().map(|r| r.inserted).max()?;
    Some((first - Duration::seconds(1), last + Duration::seconds(1)))
}

/// Decides each row from what CI's search holds.
pub fn decide(rows: &[UnconfirmedRow], held: &[Holding], now: DateTime<Utc>) -> Settlement {
    let keys: HashSet<(&str, &str, &str)> = held
        .iter()
        .map(|h| {
            (
                h.incident_id.as_str(),
                h.ioc_type.as_str(),
                h.value.as_str(),
            )
        })
        .collect();
    let mut s = Settlement::default();
    for r in rows {
        let d = &r.detection;
        let incident = d.alarm_id.to_string();
        if keys.contains(&(incident.as_str(), d.kind.as_str(), d.value.as_str())) {
            s.found.push(d.id);
        } else if now - r.since >= SETTLE_AGE {
            s.absent.push(d.id);
        } else {
            s.waiting += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::WindowDetection;
    use crate::model::IndicatorType;
    use chrono::TimeZone;

    fn t(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, m, 0).unwrap()
    }

    fn row(id: i64, alarm: i64, value: &str, inserted: u32, since: u32) -> UnconfirmedRow {
        UnconfirmedRow {
            detection: WindowDetection {
                id: id.into(),
                alarm_id: alarm.into(),
                kind: IndicatorType::Ip,
                value: value.into(),
                state: "unconfirmed".into(),
            },
            inserted: t(inserted),
            since: t(since),
        }
    }

    fn held(alarm: &str, kind: &str, value: &str) -> Holding {
        Holding {
            incident_id: alarm.into(),
            ioc_type: kind.into(),
            value: value.into(),
            event_id: "e".into(),
            detection_time: None,
        }
    }

    #[test]
    fn found_absent_and_too_young_to_tell() {
        let rows = [
            row(1, 10, "1.1.1.1", 0, 5),  // found
            row(2, 10, "1.1.1.2", 0, 5),  // absent, unconfirmed 15 min
            row(3, 11, "1.1.1.3", 2, 19), // absent, unconfirmed 1 min: waits
            row(4, 11, "1.1.1.4", 2, 10), // absent, exactly 10 min: absent
            row(5, 12, "1.1.1.1", 3, 19), // same value, other alarm: not found
        ];
        let ci = [
            held("10", "ip", "1.1.1.1"),
            held("11", "domain", "1.1.1.3"), // other type
            held("99", "ip", "1.1.1.2"),     // other alarm
        ];
        let s = decide(&rows, &ci, t(20));
        let ids = |v: &[i64]| v.iter().map(|&i| DetectionId::from(i)).collect::<Vec<_>>();
        assert_eq!(s.found, ids(&[1]));
        assert_eq!(s.absent, ids(&[2, 4]));
        assert_eq!(s.waiting, 2);
        assert_eq!(decide(&[], &ci, t(20)), Settlement::default());
    }

    #[test]
    fn the_window_holds_every_timestamp() {
        let rows = [
            row(1, 1, "a", 7, 8),
            row(2, 2, "b", 3, 8),
            row(3, 3, "c", 5, 8),
        ];
        assert_eq!(
            window(&rows),
            Some((t(3) - Duration::seconds(1), t(7) + Duration::seconds(1)))
        );
        assert_eq!(window(&[]), None);
    }
}
