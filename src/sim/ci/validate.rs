//! Validation of a `POST /collective-insights/detections` body, as the simulated
//! Collective Insights server performs it (spec §2.1, §10.4, §10.5).
//!
//! Pure code: no I/O, no clock, no shared state. It turns request bytes into a
//! [`Submission`] or an [`Invalid`] that names what is wrong and where
//! (`data[3].ioc.type: unknown type "ipv4"`). The simulator deliberately keeps its
//! own lists of allowed values instead of reusing the agent's model types, so a
//! bug in the agent's enums cannot hide behind the same bug here.
//!
//! Throughout, an optional field that is JSON `null` is treated as absent.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::net::IpAddr;

/// `ioc.type` values the server accepts (spec §2.1).
pub(crate) const IOC_TYPES: [&str; 5] = ["ip", "domain", "hash", "vulnerability", "url"];
/// `detection.type` values the server accepts (spec §2.1).
const DETECTION_TYPES: [&str; 4] = ["correlation", "playbook", "detection_rule", "sandbox"];
/// `detection.sub_type` values: the knowledge-base three plus psengine's two extra.
const SUB_TYPES: [&str; 5] = ["sigma", "yara", "snort", "suricata", "nuclei"];
/// How much of an offending value is echoed back in an error message.
const ECHO_CHARS: usize = 64;

/// Why a submission (or search) body was rejected with 400.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Invalid {
    /// The body is not a JSON document at all.
    #[error("request body is not valid JSON")]
    NotJson(#[source] serde_json::Error),
    /// A field is missing, has the wrong type or an unacceptable value.
    #[error("{path}: {problem}")]
    Field {
        /// Where, e.g. `data[3].ioc.type`.
        path: String,
        /// What, e.g. `unknown type "ipv4"`.
        problem: String,
    },
}

impl Invalid {
    pub(crate) fn field(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Invalid::Field {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// The request-level part of a submission, before the items are checked.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// `options.debug` when the client sent it.
    pub debug: Option<bool>,
    /// `options.summary`, default true.
    pub summary: bool,
    /// `organization_ids`, empty when absent.
    pub organization_ids: Vec<String>,
    /// The raw `data` items, not yet checked.
    pub data: Vec<Value>,
}

/// One detection item that passed validation, with the fields the simulator uses.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The item exactly as posted.
    pub raw: Value,
    pub ioc_type: &'static str,
    pub ioc_value: String,
    pub ioc_field: Option<String>,
    pub detection_type: &'static str,
    /// The parsed `timestamp`, `None` when the client sent none.
    pub timestamp: Option<DateTime<Utc>>,
}

/// Unique indicators per type in one request: the response's `summary.processed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Processed {
    pub ip: u64,
    pub domain: u64,
    pub hash: u64,
    pub vulnerability: u64,
    pub url: u64,
}

impl Processed {
    /// Counts unique (type, lower-cased value) pairs over `items`.
    pub(crate) fn count(items: &[Item]) -> Self {
        let mut seen = HashSet::new();
        let mut out = Processed::default();
        for item in items {
            if !seen.insert((item.ioc_type, item.ioc_value.to_lowercase())) {
                continue;
            }
            match item.ioc_type {
                "ip" => out.ip += 1,
                "domain" => out.domain += 1,
                "hash" => out.hash += 1,
                "vulnerability" => out.vulnerability += 1,
                _ => out.url += 1,
            }
        }
        out
    }
}

/// Parses the body and checks everything outside `data[]`'s items.
pub(crate) fn parse_envelope(body: &[u8]) -> Result<Envelope, Invalid> {
    let doc: Value = serde_json::from_slice(body).map_err(Invalid::NotJson)?;
    let Value::Object(mut top) = doc else {
        return Err(Invalid::field(
            "body",
            format!("must be a JSON object, got {}", kind(&doc)),
        ));
    };

    let (debug, summary) = match present(top.get("options")) {
        None => (None, true),
        Some(Value::Object(options)) => (
            opt_bool(options, "options", "debug")?,
            opt_bool(options, "options", "summary")?.unwrap_or(true),
        ),
        Some(other) => {
            return Err(Invalid::field(
                "options",
                format!("must be an object, got {}", kind(other)),
            ))
        }
    };
    let organization_ids = opt_strings(&top, "", "organization_ids")?.unwrap_or_default();

    let data = match top.remove("data") {
        None | Some(Value::Null) => return Err(Invalid::field("data", "missing")),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(Invalid::field("data", "must not be empty"))
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Invalid::field(
                "data",
                format!("must be a list, got {}", kind(&other)),
            ))
        }
    };
    Ok(Envelope {
        debug,
        summary,
        organization_ids,
        data,
    })
}

/// Checks every item; the first bad one rejects the whole request.
pub(crate) fn validate_items(
    data: Vec<Value>,
    strict_timestamps: bool,
) -> Result<Vec<Item>, Invalid> {
    data.into_iter()
        .enumerate()
        .map(|(index, raw)| validate_item(index, raw, strict_timestamps))
        .collect()
}

/// Validates item `index` of `data`, checking its parts in document order.
fn validate_item(index: usize, raw: Value, strict_timestamps: bool) -> Result<Item, Invalid> {
    let at = format!("data[{index}]");
    let Value::Object(obj) = &raw else {
        return Err(Invalid::field(
            at,
            format!("must be an object, got {}", kind(&raw)),
        ));
    };
    let timestamp = item_timestamp(obj, &at, strict_timestamps)?;
    let (ioc_type, ioc_value, ioc_field) = validate_ioc(obj, &at)?;
    if let Some(incident) = present(obj.get("incident")) {
        if !incident.is_object() {
            return Err(Invalid::field(
                format!("{at}.incident"),
                format!("must be an object, got {}", kind(incident)),
            ));
        }
    }
    opt_strings(obj, &at, "mitre_codes")?;
    opt_strings(obj, &at, "malwares")?;
    let detection_type = validate_detection(obj, &at)?;
    Ok(Item {
        raw,
        ioc_type,
        ioc_value,
        ioc_field,
        detection_type,
        timestamp,
    })
}

/// The item's optional `timestamp` (`at` is the item's path, `data[i]`).
fn item_timestamp(
    obj: &Map<String, Value>,
    at: &str,
    strict_timestamps: bool,
) -> Result<Option<DateTime<Utc>>, Invalid> {
    match present(obj.get("timestamp")) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(
            parse_timestamp(text, strict_timestamps).ok_or_else(|| {
                Invalid::field(
                    format!("{at}.timestamp"),
                    format!("cannot parse {} as a date-time", echo_str(text)),
                )
            })?,
        )),
        Some(other) => Err(Invalid::field(
            format!("{at}.timestamp"),
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

/// The item's `ioc`: its type, its (non-empty, well-formed) value and its field.
fn validate_ioc(
    obj: &Map<String, Value>,
    at: &str,
) -> Result<(&'static str, String, Option<String>), Invalid> {
    let ioc = required_object(obj, at, "ioc")?;
    let ioc_at = format!("{at}.ioc");
    let ioc_type = required_enum(ioc, &ioc_at, "type", &IOC_TYPES)?;
    let ioc_value = required_string(ioc, &ioc_at, "value")?;
    if ioc_value.is_empty() {
        return Err(Invalid::field(
            format!("{ioc_at}.value"),
            "must not be empty",
        ));
    }
    check_ioc_value(ioc_type, ioc_value)
        .map_err(|problem| Invalid::field(format!("{ioc_at}.value"), problem))?;
    opt_string(ioc, &ioc_at, "source_type")?;
    let ioc_field = opt_string(ioc, &ioc_at, "field")?.map(str::to_owned);
    Ok((ioc_type, ioc_value.to_owned(), ioc_field))
}

/// The item's `detection` type; a `detection_rule` also needs `sub_type` and `id`.
fn validate_detection(obj: &Map<String, Value>, at: &str) -> Result<&'static str, Invalid> {
    let detection = required_object(obj, at, "detection")?;
    let det_at = format!("{at}.detection");
    let detection_type = required_enum(detection, &det_at, "type", &DETECTION_TYPES)?;
    let sub_type = match present(detection.get("sub_type")) {
        None => None,
        Some(_) => Some(required_enum(detection, &det_at, "sub_type", &SUB_TYPES)?),
    };
    let detection_id = opt_string(detection, &det_at, "id")?;
    opt_string(detection, &det_at, "name")?;
    if detection_type == "detection_rule" {
        if sub_type.is_none() {
            return Err(Invalid::field(
                format!("{det_at}.sub_type"),
                "required when type is \"detection_rule\"",
            ));
        }
        if detection_id.is_none_or(str::is_empty) {
            return Err(Invalid::field(
                format!("{det_at}.id"),
                "required when type is \"detection_rule\"",
            ));
        }
    }
    Ok(detection_type)
}

/// Parses a detection timestamp: RFC 3339 with `Z` or an offset, with or without
/// fractional seconds; also zone-less (read as UTC) unless `strict`.
pub(crate) fn parse_timestamp(text: &str, strict: bool) -> Option<DateTime<Utc>> {
    if let Ok(with_zone) = DateTime::parse_from_rfc3339(text) {
        return Some(with_zone.to_utc());
    }
    if strict {
        return None;
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// The cheap, certain per-type checks of `ioc.value`.
fn check_ioc_value(ioc_type: &str, value: &str) -> Result<(), String> {
    match ioc_type {
        "ip" if value.parse::<IpAddr>().is_err() => {
            Err(format!("{} is not an IP address", echo_str(value)))
        }
        "vulnerability" if !is_cve(value) => Err(format!(
            "{} is not a CVE id (CVE-YYYY-NNNN)",
            echo_str(value)
        )),
        _ => Ok(()),
    }
}

/// `CVE-\d{4}-\d{4,}`; the `CVE` prefix is accepted in any case, since nothing says
/// the server is case-sensitive there.
fn is_cve(value: &str) -> bool {
    let mut parts = value.splitn(3, '-');
    let (Some(prefix), Some(year), Some(number)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    prefix.eq_ignore_ascii_case("cve")
        && year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && number.len() >= 4
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// `Some` unless the value is absent or JSON `null`.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn required_object<'a>(
    obj: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<&'a Map<String, Value>, Invalid> {
    match present(obj.get(key)) {
        None => Err(Invalid::field(join(at, key), "missing")),
        Some(Value::Object(inner)) => Ok(inner),
        Some(other) => Err(Invalid::field(
            join(at, key),
            format!("must be an object, got {}", kind(other)),
        )),
    }
}

fn required_string<'a>(
    obj: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<&'a str, Invalid> {
    match present(obj.get(key)) {
        None => Err(Invalid::field(join(at, key), "missing")),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(Invalid::field(
            join(at, key),
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

fn required_enum(
    obj: &Map<String, Value>,
    at: &str,
    key: &str,
    allowed: &[&'static str],
) -> Result<&'static str, Invalid> {
    let text = required_string(obj, at, key)?;
    allowed
        .iter()
        .copied()
        .find(|candidate| *candidate == text)
        .ok_or_else(|| {
            Invalid::field(
                join(at, key),
                format!(
                    "unknown {key} {}; expected one of {}",
                    echo_str(text),
                    allowed.join(", ")
                ),
            )
        })
}

fn opt_string<'a>(
    obj: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<&'a str>, Invalid> {
    match present(obj.get(key)) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(Invalid::field(
            join(at, key),
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

fn opt_bool(obj: &Map<String, Value>, at: &str, key: &str) -> Result<Option<bool>, Invalid> {
    match present(obj.get(key)) {
        None => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(other) => Err(Invalid::field(
            join(at, key),
            format!("must be a boolean, got {}", kind(other)),
        )),
    }
}

fn opt_strings(
    obj: &Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<Vec<String>>, Invalid> {
    match present(obj.get(key)) {
        None => Ok(None),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, entry)| match entry {
                Value::String(text) => Ok(text.clone()),
                other => Err(Invalid::field(
                    format!("{}[{i}]", join(at, key)),
                    format!("must be a string, got {}", kind(other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(Invalid::field(
            join(at, key),
            format!("must be a list of strings, got {}", kind(other)),
        )),
    }
}

/// A short description of a JSON value for error messages.
pub(crate) fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Number(n) => format!("the number {}", echo(&n.to_string())),
        Value::String(s) => format!("the string {}", echo_str(s)),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A string as a quoted JSON literal, cut short so a 1 MiB value is not echoed back.
pub(crate) fn echo_str(text: &str) -> String {
    echo(&Value::String(text.to_owned()).to_string())
}

fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(ioc_type: &str, value: &str) -> Value {
        json!({"ioc": {"type": ioc_type, "value": value}, "detection": {"type": "playbook"}})
    }

    fn error_of(item: Value, strict: bool) -> String {
        match validate_items(vec![item], strict) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn timestamps_table() {
        let cases = [
            ("2024-05-21T10:42:30Z", false, true),
            ("2024-05-21T10:42:30.123Z", false, true),
            ("2024-05-21T10:42:30.123000+02:00", false, true),
            ("2024-05-21T10:42:30", false, true),
            ("2024-05-21T10:42:30.5", false, true),
            ("2024-05-21T10:42:30", true, false),
            ("2024-05-21T10:42:30Z", true, true),
            ("2024-05-21", false, false),
            ("2021-13-45T99:99:99", false, false),
            ("", false, false),
            ("yesterday", false, false),
        ];
        for (text, strict, ok) in cases {
            assert_eq!(
                parse_timestamp(text, strict).is_some(),
                ok,
                "{text} strict={strict}"
            );
        }
        assert_eq!(
            parse_timestamp("2024-05-21T12:42:30+02:00", false).map(|t| t.to_rfc3339()),
            Some("2024-05-21T10:42:30+00:00".to_owned())
        );
    }

    #[test]
    fn ioc_values_table() {
        let cases = [
            ("ip", "203.0.113.5", true),
            ("ip", "2001:db8::1", true),
            ("ip", "1.2.3.256", false),
            ("ip", "1.2.3.4:8080", false),
            ("ip", "example.com", false),
            ("vulnerability", "CVE-2021-44228", true),
            ("vulnerability", "cve-2021-1234", true),
            ("vulnerability", "CVE-21-1", false),
            ("vulnerability", "CVE-2021-123", false),
            ("vulnerability", "CVE-2021-44228 CVE-2022-22965", false),
            ("domain", "anything.example", true),
            ("hash", "not-even-hex", true),
        ];
        for (t, v, ok) in cases {
            assert_eq!(error_of(item(t, v), false) == "accepted", ok, "{t} {v}");
        }
    }

    #[test]
    fn processed_counts_unique_case_insensitively() {
        let items = validate_items(
            vec![
                item("domain", "Evil.Example"),
                item("domain", "evil.example"),
                item("ip", "203.0.113.5"),
                item("url", "https://x.example/"),
                item("url", "https://x.example/"),
            ],
            false,
        )
        .unwrap();
        let p = Processed::count(&items);
        assert_eq!(
            (p.ip, p.domain, p.hash, p.vulnerability, p.url),
            (1, 1, 0, 0, 1)
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let huge = "x".repeat(1 << 20);
        let message = error_of(item(&huge, "203.0.113.5"), false);
        assert!(
            message.starts_with("data[0].ioc.type: unknown type \"xxx"),
            "{message}"
        );
        assert!(message.len() < 300, "{}", message.len());
    }

    #[test]
    fn hostile_json_is_a_400_not_a_crash() {
        // Reliability bar §7: depth 10,000, a lone surrogate, 1e99999, a bare number.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for body in [
            deep.as_str(),
            r#"{"data": ["\ud800"]}"#,
            r#"{"data": [1e99999]}"#,
            "",
        ] {
            assert!(
                matches!(parse_envelope(body.as_bytes()), Err(Invalid::NotJson(_))),
                "{}",
                &body[..body.len().min(40)]
            );
        }
        assert!(matches!(
            parse_envelope(b"42"),
            Err(Invalid::Field { ref path, .. }) if path == "body"
        ));
    }

    #[test]
    fn envelope_defaults() {
        let env = parse_envelope(br#"{"data": [1]}"#).unwrap();
        assert_eq!(env.debug, None);
        assert!(env.summary);
        assert!(env.organization_ids.is_empty());
        assert_eq!(env.data, vec![json!(1)]);
    }
}
