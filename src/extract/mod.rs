//! Indicator extraction: LogRhythm alarm events (as JSON values) → candidate
//! indicators, and candidates → normalised, policy-judged, de-duplicated
//! [`Indicator`]s.
//!
//! Extraction reads the **structured event fields only** — the ones the
//! vendor's LogRhythm script reads — and never scans free text (`logMessage`,
//! `objectName`, `vendorInfo`, …) with patterns. That is deliberate: the
//! structured fields are what LogRhythm parsed and what the existing
//! integration sends, and a free-text scan would send whatever an attacker
//! writes into a log line.
//!
//! Fields, in this order: `impactedIP`, `originIP`, `impactedNATIP`,
//! `originNATIP` (ip); `impactedHostName`, `originHostName`, `impactedName`,
//! `originName`, `domain` (domain; a value that is an IP literal becomes an
//! **ip** candidate, keeping the host field's name); `url` (url); `cve`
//! (vulnerability; every `CVE-\d{4}-\d{4,12}` id in the field, case-insensitive,
//! whatever separates them; a non-sentinel field with no id at all gives one
//! candidate holding the whole text, which the policy then excludes as
//! `invalid vulnerability`, so an audit can see it).
//!
//! Tolerance: a field that is missing, `null`, a bool, an object or an array
//! gives nothing. A number gives a candidate holding its JSON text (so
//! `impactedIP: 167772161` is recorded and excluded as `invalid ip`), except
//! `-1`, a sentinel. Sentinels give nothing: after trimming, `""`, `-1`, `-`,
//! `0001-01-01T00:00:00`, and (case-insensitively) `Unknown`, `NULL`, `null`,
//! `N/A`.
//!
//! No I/O, no clock.

use crate::model::{Candidate, EventSource, Indicator, IndicatorType};
use crate::policy::{self, Policy};
use serde_json::Value;
use std::collections::HashSet;

/// The event fields read, in output order, with the indicator type each holds.
pub const FIELDS: [(&str, IndicatorType); 11] = [
    ("impactedIP", IndicatorType::Ip),
    ("originIP", IndicatorType::Ip),
    ("impactedNATIP", IndicatorType::Ip),
    ("originNATIP", IndicatorType::Ip),
    ("impactedHostName", IndicatorType::Domain),
    ("originHostName", IndicatorType::Domain),
    ("impactedName", IndicatorType::Domain),
    ("originName", IndicatorType::Domain),
    ("domain", IndicatorType::Domain),
    ("url", IndicatorType::Url),
    ("cve", IndicatorType::Vulnerability),
];

/// Whether a trimmed field value is one of LogRhythm's "no value" placeholders.
pub fn is_sentinel(s: &str) -> bool {
    let s = s.trim();
    matches!(s, "" | "-1" | "-" | "0001-01-01T00:00:00")
        || ["unknown", "null", "n/a"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
}

/// The text of a field value that may hold an indicator, or `None`.
fn field_text(v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => return None,
    };
    (!is_sentinel(&text)).then_some(text)
}

/// Every CVE id in `s` (as written), in order of appearance.
pub fn split_cves(s: &str) -> Vec<&str> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // CVE ids are ASCII, so a match always starts and ends on char boundaries.
        match bytes.get(i..).and_then(policy::cve_len_at) {
            Some(len) => {
                if let Some(id) = s.get(i..i + len) {
                    out.push(id);
                }
                i += len;
            }
            None => i += 1,
        }
    }
    out
}

/// The candidate indicators of one event, in [`FIELDS`] order.
pub fn candidates(event: &Value) -> Vec<Candidate> {
    let mut out = Vec::new();
    let Some(obj) = event.as_object() else {
        return out;
    };
    for (field, kind) in FIELDS {
        let Some(text) = obj.get(field).and_then(field_text) else {
            continue;
        };
        match kind {
            IndicatorType::Vulnerability => {
                let ids = split_cves(&text);
                if ids.is_empty() {
                    out.push(Candidate {
                        kind,
                        field,
                        raw: text,
                    });
                } else {
                    out.extend(ids.into_iter().map(|id| Candidate {
                        kind,
                        field,
                        raw: id.to_string(),
                    }));
                }
            }
            IndicatorType::Domain if policy::normalize_ip(&text).is_some() => {
                out.push(Candidate {
                    kind: IndicatorType::Ip,
                    field,
                    raw: text,
                });
            }
            _ => out.push(Candidate {
                kind,
                field,
                raw: text,
            }),
        }
    }
    out
}

/// All indicators of a set of events: candidates in event order, then field
/// order, normalised and judged by `policy`, de-duplicated by (type,
/// normalised value) keeping the first occurrence (and so its field).
pub fn indicators(events: &[Value], policy: &Policy) -> Vec<Indicator> {
    let mut seen: HashSet<(IndicatorType, String)> = HashSet::new();
    let mut out = Vec::new();
    for event in events {
        let source = event_source(event);
        for c in candidates(event) {
            let mut ind = policy::classify(&c, policy);
            ind.source = source.clone();
            if seen.insert((ind.kind, ind.value.clone())) {
                out.push(ind);
            }
        }
    }
    out
}

/// The event's `logSourceTypeName` and `threatName` (text fields; sentinels and
/// other JSON types give `None`; control characters make the value unusable).
pub fn event_source(event: &Value) -> EventSource {
    let text = |key: &str| {
        event
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !is_sentinel(s) && !s.chars().any(char::is_control) && s.len() <= 200)
            .map(str::to_string)
    };
    EventSource {
        source_type: text("logSourceTypeName"),
        threat_name: text("threatName"),
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
