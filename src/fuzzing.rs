//! Entry points for the cargo-fuzz targets in `fuzz/` (reliability-bar.md §5
//! T11): thin wrappers that feed arbitrary bytes to the parsers of untrusted
//! input and check the invariants that must hold whatever the input. A panic
//! here is a finding. Not part of lrci's API; hidden from the docs.

use crate::model::{IndicatorType, Verdict};
use crate::policy::{self, Policy};
use chrono::{TimeZone, Utc};
use serde_json::Value;

/// A LogRhythm `GET /alarms` page body: never panics; every row kept has a
/// positive id.
pub fn lr_list_page(data: &[u8]) {
    let since = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    if let Ok(rows) = crate::logrhythm::parse_list_page(data, since) {
        for r in rows {
            assert!(r.alarm_id.get() > 0, "row with id {}", r.alarm_id);
        }
    }
}

/// A LogRhythm details or events body: never panics; every event kept is an
/// object; the dates parser never panics on any text in it.
pub fn lr_events(data: &[u8]) {
    let _ = crate::logrhythm::parse_details(data, 1.into());
    if let Ok(events) = crate::logrhythm::parse_events(data, 1.into()) {
        assert!(events.iter().all(Value::is_object));
    }
    let _ = crate::logrhythm::parse_lr_date(&String::from_utf8_lossy(data));
}

/// Extraction and policy on arbitrary JSON (an event, or an array of events):
/// never panics, and what would be sent is clean and canonical.
pub fn extract(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let events = match v {
        Value::Array(a) => a,
        other => vec![other],
    };
    let internal = vec!["corp.example".to_string()];
    let p = Policy::new(internal, policy::Exclusions::default());
    for ind in crate::extract::indicators(&events, &p) {
        assert!(
            !ind.value.chars().any(policy::is_forbidden_char),
            "forbidden character kept in {:?}",
            ind.value
        );
        if ind.verdict != Verdict::Send {
            continue;
        }
        assert!(!ind.value.is_empty());
        assert!(
            !ind.value.chars().any(char::is_whitespace),
            "{:?}",
            ind.value
        );
        match ind.kind {
            IndicatorType::Ip => {
                let ip: std::net::IpAddr = ind.value.parse().unwrap_or_else(|_| {
                    panic!("sent ip {:?} does not parse", ind.value);
                });
                assert!(policy::non_global_reason(ip).is_none(), "sent {ip}");
                assert_eq!(ip.to_string(), ind.value, "not canonical");
            }
            IndicatorType::Domain => {
                assert!(ind.value.is_ascii(), "sent domain {:?}", ind.value);
                assert!(ind.value.contains('.'), "single label {:?}", ind.value);
                assert_eq!(ind.value, ind.value.to_ascii_lowercase());
                assert!(ind.value.len() <= 253);
                assert!(!ind.value.ends_with(".corp.example"));
            }
            IndicatorType::Url => {
                let rest = ind
                    .value
                    .split_once("://")
                    .map(|(_, r)| r)
                    .unwrap_or_else(|| panic!("sent url {:?} has no scheme", ind.value));
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                assert!(!authority.contains('@'), "userinfo in {:?}", ind.value);
            }
            IndicatorType::Vulnerability | IndicatorType::Hash => {
                assert!(ind.value.is_ascii(), "{:?}", ind.value);
            }
        }
    }
}

/// A Collective Insights answer body: never panics.
pub fn ci_response(data: &[u8]) {
    let _ = crate::ci::parse_response(200, data);
    let _ = crate::ci::error_message(&String::from_utf8_lossy(data));
}

/// The exclusions, internal-domains and rule-list files: never panic; a line
/// error names a line that exists.
pub fn lists(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count();
    match policy::parse_exclusions(&text) {
        Ok(x) => {
            let _ = Policy::new(Vec::new(), x);
        }
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line),
    }
    if let Err(e) = policy::parse_internal_domains(&text) {
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
    }
    for rule in policy::parse_rule_list(&text) {
        assert!(!rule.trim().is_empty());
    }
}
