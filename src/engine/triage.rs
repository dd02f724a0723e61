//! Triage: the verdicts about alarms. Which listed alarms need work (the one
//! retry rule), the rule filters, `--min-rbp`, "no events yet" and the indicator
//! cap. Pure: the driver (`super`) fetches; this module only decides.

use crate::ledger::KnownAlarm;
use crate::model::{AlarmDecision, AlarmId, Indicator};

/// Fetch attempts for an alarm's details and events before it is left in `error`
/// for an operator (visible in the ledger; `backfill --refetch` tries again).
pub const MAX_FETCH_ATTEMPTS: i64 = 3;

/// Most indicators recorded for one alarm. A real alarm holds a handful; a field
/// stuffed with thousands of values is hostile or broken, and must not flood CI.
/// The alarm's reason in the ledger says when the cap cut it.
pub const MAX_INDICATORS_PER_ALARM: usize = 1000;

/// The retry rule, the only one: whether a listed alarm is fetched this run, and
/// with how many attempts already spent. New alarms are fetched; alarms left in
/// `error` are fetched again until [`MAX_FETCH_ATTEMPTS`]; decided and pruned
/// (tombstoned) alarms never. The ledger only selects candidates
/// (`Ledger::alarms_to_retry` returns alarms in error); this decides.
pub fn attempts_if_due(known: Option<&KnownAlarm>, pruned: bool) -> Option<i64> {
    if pruned {
        return None;
    }
    match known {
        None => Some(0),
        Some(k) => match k.decision {
            AlarmDecision::Error if k.fetch_attempts < MAX_FETCH_ATTEMPTS => Some(k.fetch_attempts),
            _ => None,
        },
    }
}

/// The rule filters, decided before any per-alarm request: the reason an alarm is
/// filtered out, or `None` to fetch it.
pub fn rule_filter(rule_name: &str, rf_only: bool, exclude_rules: &[String]) -> Option<String> {
    let name = rule_name.trim();
    if rf_only && !name.to_lowercase().contains("recorded future") {
        return Some("rule is not a Recorded Future rule (--rf-only)".into());
    }
    if exclude_rules.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Some("rule excluded (--exclude-rules)".into());
    }
    None
}

/// Whether an alarm's details (`GET /alarms/{id}`) are fetched: only when a
/// setting needs what they hold, `min_rbp` (its `rbpMax`) or `fetch_details`
/// (RBP recorded for the audit). Otherwise RBP is recorded as not fetched and
/// an alarm costs one request (its events).
pub fn needs_details(min_rbp: Option<i64>, fetch_details: bool) -> bool {
    min_rbp.is_some() || fetch_details
}

/// `--min-rbp`: the reason an alarm whose details say `rbp_max` is filtered out.
/// An alarm without a risk score counts as 0.
pub fn rbp_filter(min_rbp: Option<i64>, rbp_max: Option<i64>) -> Option<String> {
    let min = min_rbp?;
    let rbp = rbp_max.unwrap_or(0);
    (rbp < min).then(|| format!("rbpMax {rbp} below --min-rbp {min}"))
}

/// Events can be not ready for a while after an alarm fires (empty, 404, not
/// JSON, a redirect: the drill-down cache fills later). Readiness is judged by
/// age, not by attempts, so a one-minute schedule does not give up in minutes:
/// while the alarm is younger than `grace` the events are waited for (the
/// reason, for the ledger); after that the alarm is final without them.
pub fn events_not_ready(
    alarm_id: AlarmId,
    why: &str,
    age: chrono::Duration,
    grace: chrono::Duration,
) -> Option<String> {
    (age < grace).then(|| {
        format!(
            "events of alarm {alarm_id}: {why} (waited for until it is {}s old)",
            grace.num_seconds()
        )
    })
}

/// The indicator cap: keeps the first [`MAX_INDICATORS_PER_ALARM`] and returns the
/// note for the ledger and how many there were, when the cap cut.
pub fn cap_indicators(indicators: &mut Vec<Indicator>) -> Option<(String, usize)> {
    let found = indicators.len();
    if found <= MAX_INDICATORS_PER_ALARM {
        return None;
    }
    indicators.truncate(MAX_INDICATORS_PER_ALARM);
    Some((
        format!("indicators capped: kept the first {MAX_INDICATORS_PER_ALARM} of {found}"),
        found,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn details_only_when_a_setting_needs_them() {
        for (min_rbp, fetch_details, want) in [
            (None, false, false),
            (None, true, true),
            (Some(0), false, true),
            (Some(40), true, true),
        ] {
            assert_eq!(
                needs_details(min_rbp, fetch_details),
                want,
                "{min_rbp:?} {fetch_details}"
            );
        }
    }

    use super::*;
    use crate::model::{IndicatorType, Verdict};

    #[test]
    fn rule_filters() {
        let ex = vec!["Noisy Rule".to_string()];
        for (name, rf_only, filtered) in [
            ("Recorded Future: Risk List Match - IP", true, false),
            ("AIE: recorded future c2", true, false),
            ("AIE: Port Scan", true, true),
            ("AIE: Port Scan", false, false),
            ("noisy rule", false, true),
            ("  Noisy Rule ", false, true),
        ] {
            assert_eq!(
                rule_filter(name, rf_only, &ex).is_some(),
                filtered,
                "{name} rf_only={rf_only}"
            );
        }
    }

    #[test]
    fn the_retry_rule() {
        let k = |decision: &str, fetch_attempts| KnownAlarm {
            decision: decision.parse().unwrap(),
            fetch_attempts,
        };
        for (known, pruned, want) in [
            (None, false, Some(0)),
            (None, true, None),
            (Some(k("error", 0)), false, Some(0)),
            (Some(k("error", 2)), false, Some(2)),
            (Some(k("error", MAX_FETCH_ATTEMPTS)), false, None),
            (Some(k("error", 1)), true, None),
            (Some(k("accepted", 0)), false, None),
            (Some(k("filtered", 0)), false, None),
        ] {
            assert_eq!(
                attempts_if_due(known.as_ref(), pruned),
                want,
                "{known:?} {pruned}"
            );
        }
    }

    #[test]
    fn rbp_filter_rows() {
        for (min, rbp, filtered) in [
            (None, Some(10), false),
            (None, None, false),
            (Some(50), Some(49), true),
            (Some(50), Some(50), false),
            (Some(50), None, true),
            (Some(0), None, false),
        ] {
            assert_eq!(rbp_filter(min, rbp).is_some(), filtered, "{min:?} {rbp:?}");
        }
        assert_eq!(
            rbp_filter(Some(50), Some(7)).as_deref(),
            Some("rbpMax 7 below --min-rbp 50")
        );
    }

    #[test]
    fn events_not_ready_is_judged_by_age() {
        let s = chrono::Duration::seconds;
        // (alarm age, grace, still waited for)
        for (age, grace, wait) in [
            (s(0), s(86_400), true),
            (s(60), s(86_400), true),
            (s(86_399), s(86_400), true),
            (s(86_400), s(86_400), false),
            (s(90_000), s(86_400), false),
            (s(10), s(0), false),
            // A clock behind LogRhythm's makes a fresh alarm look young, not old.
            (s(-300), s(86_400), true),
        ] {
            let got = events_not_ready(AlarmId::from(9), "none yet", age, grace);
            assert_eq!(got.is_some(), wait, "age={age} grace={grace}");
            if let Some(reason) = got {
                assert!(
                    reason.contains("alarm 9") && reason.contains("none yet"),
                    "{reason}"
                );
            }
        }
    }

    #[test]
    fn the_indicator_cap() {
        let ind = |i: usize| Indicator {
            kind: IndicatorType::Ip,
            value: format!("10.0.{}.{}", i / 256, i % 256),
            field: "sip",
            verdict: Verdict::Send,
            source: Default::default(),
        };
        for (n, kept, capped) in [
            (0, 0, false),
            (MAX_INDICATORS_PER_ALARM, MAX_INDICATORS_PER_ALARM, false),
            (MAX_INDICATORS_PER_ALARM + 1, MAX_INDICATORS_PER_ALARM, true),
        ] {
            let mut v: Vec<Indicator> = (0..n).map(ind).collect();
            let note = cap_indicators(&mut v);
            assert_eq!(v.len(), kept, "{n}");
            assert_eq!(note.is_some(), capped, "{n}");
            if let Some((_, found)) = note {
                assert_eq!(found, n);
            }
        }
    }
}
