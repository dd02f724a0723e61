//! `POST /collective-insights/search` for the simulator: parsing the request,
//! filtering stored events, and shaping them like the enriched events of spec §3.2.
//!
//! Pure code over a slice of [`Stored`] events; the caller holds the lock.
//! Honoured filters: `indicator_type`, `detection_type`, `submission_method`,
//! `organizations`, `detection_time.from/to` (inclusive). Other filter keys are
//! accepted and ignored, as spec §10.13 allows.

use super::validate::{echo_str, kind, parse_timestamp, Invalid};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// Largest `limit` the API accepts (psengine `SEARCH_MAX_LIMIT`).
const MAX_LIMIT: u64 = 1000;
/// `limit` when the request has none (psengine `SEARCH_PAGE_SIZE`).
const DEFAULT_LIMIT: u64 = 100;

/// A stored (non-debug) detection, with what search needs pulled out of it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub id: String,
    /// The item exactly as posted.
    pub raw: Value,
    pub organizations: Vec<String>,
    pub ioc_type: &'static str,
    pub ioc_value: String,
    pub ioc_field: Option<String>,
    pub detection_type: &'static str,
    /// The item's timestamp, or the arrival time when it had none.
    pub detection_time: DateTime<Utc>,
}

/// A list filter: a list of accepted values, or one of the sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    Present,
    Absent,
    AnyOf(Vec<String>),
}

impl Choice {
    fn matches<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> bool {
        match self {
            Choice::Present => values.next().is_some(),
            Choice::Absent => values.next().is_none(),
            Choice::AnyOf(wanted) => values.any(|v| wanted.iter().any(|w| w == v)),
        }
    }
}

/// A parsed search request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    indicator_type: Option<Choice>,
    detection_type: Option<Choice>,
    submission_method: Option<Choice>,
    organizations: Option<Choice>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: usize,
    offset: usize,
}

/// Parses a search body; malformed known parts are a 400.
pub(crate) fn parse_query(body: &[u8]) -> Result<Query, Invalid> {
    let doc: Value = serde_json::from_slice(body).map_err(Invalid::NotJson)?;
    let Value::Object(top) = doc else {
        return Err(Invalid::field(
            "body",
            format!("must be a JSON object, got {}", kind(&doc)),
        ));
    };
    let mut query = Query {
        limit: bounded_int(&top, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize,
        offset: bounded_int(&top, "offset", 0, u64::MAX)?.unwrap_or(0) as usize,
        ..Query::default()
    };
    let filters = match top.get("filters") {
        None | Some(Value::Null) => return Ok(query),
        Some(Value::Object(filters)) => filters,
        Some(other) => {
            return Err(Invalid::field(
                "filters",
                format!("must be an object, got {}", kind(other)),
            ))
        }
    };
    query.indicator_type = choice(filters, "indicator_type")?;
    query.detection_type = choice(filters, "detection_type")?;
    query.submission_method = choice(filters, "submission_method")?;
    query.organizations = choice(filters, "organizations")?;
    match filters.get("detection_time") {
        None | Some(Value::Null) => {}
        Some(Value::Object(range)) => {
            query.from = time_bound(range, "from")?;
            query.to = time_bound(range, "to")?;
        }
        Some(other) => {
            return Err(Invalid::field(
                "filters.detection_time",
                format!("must be an object, got {}", kind(other)),
            ))
        }
    }
    Ok(query)
}

/// Runs `query` over `stored` (in arrival order) and builds the response body.
pub(crate) fn run(query: &Query, stored: &[Stored]) -> Value {
    let matching: Vec<&Stored> = stored.iter().filter(|s| query.matches(s)).collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|s| event(s))
        .collect();
    json!({
        "data": page,
        "counts": {"returned": page.len(), "total": matching.len()},
    })
}

impl Query {
    fn matches(&self, s: &Stored) -> bool {
        let one = |choice: &Option<Choice>, value: &str| {
            choice
                .as_ref()
                .is_none_or(|c| c.matches(std::iter::once(value)))
        };
        one(&self.indicator_type, s.ioc_type)
            && one(&self.detection_type, s.detection_type)
            && one(&self.submission_method, "api")
            && self
                .organizations
                .as_ref()
                .is_none_or(|c| c.matches(s.organizations.iter().map(String::as_str)))
            && self.from.is_none_or(|from| s.detection_time >= from)
            && self.to.is_none_or(|to| s.detection_time <= to)
    }
}

/// One stored item as an enriched search event (spec §3.2).
fn event(s: &Stored) -> Value {
    let strings = |key: &str| -> Vec<String> {
        s.raw
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let malware: Vec<Value> = strings("malwares")
        .into_iter()
        .map(|name| {
            json!({"id": format!("sim:malware:{name}"), "type": "Malware",
                   "name": name, "displayName": name})
        })
        .collect();
    let mitre: Vec<Value> = strings("mitre_codes")
        .into_iter()
        .map(|code| {
            json!({"id": format!("mitre:{code}"), "type": "MitreAttackIdentifier",
                   "name": code, "displayName": code})
        })
        .collect();
    let incident = s.raw.get("incident").and_then(Value::as_object).map(|inc| {
        let mut out = Map::new();
        for key in ["id", "name", "type"] {
            if let Some(text) = inc.get(key).and_then(Value::as_str) {
                out.insert(key.to_owned(), Value::String(text.to_owned()));
            }
        }
        Value::Object(out)
    });
    json!({
        "id": s.id,
        "organizations": s.organizations,
        "submission_method": "api",
        "detection_type": s.detection_type,
        "detection_time": s.detection_time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "indicator": {
            "type": s.ioc_type,
            "value": s.ioc_value,
            "field": s.ioc_field,
            "risk": {"score": {"at_detection": risk_score(s.ioc_type, &s.ioc_value)}},
        },
        "incident": incident,
        "detection_rules": [],
        "associated_threats": {"threat_actors": [], "malware": malware, "mitre_codes": mitre},
        "context": {},
    })
}

/// A stable made-up risk score (0–99), so repeated searches agree with each other.
fn risk_score(ioc_type: &str, value: &str) -> u64 {
    // FNV-1a: tiny, stable across runs and platforms (unlike the std hasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in ioc_type.bytes().chain(value.to_lowercase().bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % 100
}

fn bounded_int(
    top: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, Invalid> {
    match top.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ if max == u64::MAX => Err(Invalid::field(
                key,
                format!("must be an integer >= {min}, got {}", kind(value)),
            )),
            _ => Err(Invalid::field(
                key,
                format!(
                    "must be an integer from {min} to {max}, got {}",
                    kind(value)
                ),
            )),
        },
    }
}

fn choice(filters: &Map<String, Value>, key: &str) -> Result<Option<Choice>, Invalid> {
    let path = format!("filters.{key}");
    match filters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "present" => Ok(Some(Choice::Present)),
        Some(Value::String(s)) if s == "absent" => Ok(Some(Choice::Absent)),
        Some(Value::String(s)) => Ok(Some(Choice::AnyOf(vec![s.clone()]))),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    Invalid::field(
                        format!("{path}[{i}]"),
                        format!("must be a string, got {}", kind(v)),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|wanted| Some(Choice::AnyOf(wanted))),
        Some(other) => Err(Invalid::field(
            path,
            format!(
                "must be a list of strings, \"present\" or \"absent\", got {}",
                kind(other)
            ),
        )),
    }
}

fn time_bound(range: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>, Invalid> {
    let path = format!("filters.detection_time.{key}");
    match range.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_timestamp(text, false).map(Some).ok_or_else(|| {
            Invalid::field(
                path,
                format!("cannot parse {} as a date-time", echo_str(text)),
            )
        }),
        Some(other) => Err(Invalid::field(
            path,
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_and_offset_bounds() {
        for (body, ok) in [
            (r#"{"limit": 1}"#, true),
            (r#"{"limit": 1000}"#, true),
            (r#"{"limit": 0}"#, false),
            (r#"{"limit": 1001}"#, false),
            (r#"{"limit": -1}"#, false),
            (r#"{"limit": 2.5}"#, false),
            (r#"{"limit": "10"}"#, false),
            (r#"{"limit": 5, "offset": 0}"#, true),
            (r#"{"limit": 5, "offset": -3}"#, false),
            (r#"{}"#, true),
        ] {
            assert_eq!(parse_query(body.as_bytes()).is_ok(), ok, "{body}");
        }
    }

    #[test]
    fn choice_sentinels() {
        assert!(Choice::Present.matches(["a"].into_iter()));
        assert!(!Choice::Present.matches(std::iter::empty()));
        assert!(Choice::Absent.matches(std::iter::empty()));
        assert!(Choice::AnyOf(vec!["b".into()]).matches(["a", "b"].into_iter()));
        assert!(!Choice::AnyOf(vec!["c".into()]).matches(["a", "b"].into_iter()));
    }

    #[test]
    fn risk_score_is_stable_and_bounded() {
        assert_eq!(risk_score("ip", "1.2.3.4"), risk_score("ip", "1.2.3.4"));
        assert_eq!(
            risk_score("domain", "A.example"),
            risk_score("domain", "a.example")
        );
        assert!(risk_score("url", "https://x.example/") < 100);
    }
}
