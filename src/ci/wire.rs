//! Collective Insights bodies exactly as the API expects and answers them.
//! Private to `ci`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Detection;

/// `incident.type` of every lrci detection.
pub(super) const INCIDENT_TYPE: &str = "logrhythm-alarm";
/// `ioc.source_type` of every lrci detection.
pub(super) const SOURCE_TYPE: &str = "logrhythm";
/// `detection.type` of every lrci detection (an AIE/correlation alarm).
pub(super) const DETECTION_TYPE: &str = "correlation";

/// The request body.
#[derive(Debug, Serialize)]
pub(super) struct SubmitBody<'a> {
    pub options: Options,
    pub data: Vec<Item<'a>>,
}

/// `options`; both flags are always sent explicitly (the server's default for
/// `debug` is disputed).
#[derive(Debug, Serialize)]
pub(super) struct Options {
    pub debug: bool,
    pub summary: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct Item<'a> {
    pub timestamp: String,
    pub ioc: Ioc<'a>,
    pub incident: Incident,
    pub detection: DetectionPart<'a>,
}

#[derive(Debug, Serialize)]
pub(super) struct Ioc<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: &'a str,
    pub source_type: &'static str,
    pub field: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct Incident {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub(super) struct DetectionPart<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
}

/// RFC 3339 UTC with `Z`; milliseconds only when non-zero.
pub(super) fn timestamp(t: DateTime<Utc>) -> String {
    let format = if t.timestamp_subsec_millis() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    t.to_rfc3339_opts(format, true)
}

impl<'a> Item<'a> {
    pub(super) fn from_detection(d: &'a Detection) -> Item<'a> {
        Item {
            timestamp: timestamp(d.timestamp),
            ioc: Ioc {
                kind: d.kind.as_str(),
                value: &d.value,
                source_type: SOURCE_TYPE,
                field: &d.field,
            },
            incident: Incident {
                id: d.alarm_id.to_string(),
                name: format!("{}: {}", d.alarm_id, d.rule_name),
                kind: INCIDENT_TYPE,
            },
            detection: DetectionPart {
                kind: DETECTION_TYPE,
                name: &d.rule_name,
            },
        }
    }
}

/// The 200 body. `result.status` is required: without it the answer is not
/// a CI success (an HTML login page, an empty body, another API's JSON).
#[derive(Debug, Deserialize)]
pub(super) struct SubmitResponse {
    pub result: ResultPart,
}

#[derive(Debug, Deserialize)]
pub(super) struct ResultPart {
    pub status: String,
    #[serde(default)]
    pub debug: Option<bool>,
    #[serde(default)]
    pub summary: Option<Summary>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Summary {
    #[serde(default)]
    pub processed: Option<ProcessedWire>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ProcessedWire {
    #[serde(default)]
    pub ip: u64,
    #[serde(default)]
    pub domain: u64,
    #[serde(default)]
    pub hash: u64,
    #[serde(default)]
    pub vulnerability: u64,
    #[serde(default)]
    pub url: u64,
}

/// The server's message from an error body: `message`, `error.message`, or
/// (when neither) `None` so the caller falls back to the raw text.
pub(crate) fn error_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("message")
        .and_then(|m| m.as_str())
        .or_else(|| {
            v.get("error")
                .and_then(|e| e.get("message"))
                .and_then(|m| m.as_str())
        })
        .or_else(|| v.get("error").and_then(|e| e.as_str()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_z_with_millis_only_when_non_zero() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(timestamp(t("2024-05-14T09:12:00Z")), "2024-05-14T09:12:00Z");
        assert_eq!(
            timestamp(t("2024-05-14T09:12:41.387Z")),
            "2024-05-14T09:12:41.387Z"
        );
        assert_eq!(
            timestamp(t("2024-05-14T11:12:41.2+02:00")),
            "2024-05-14T09:12:41.200Z"
        );
    }

    #[test]
    fn error_message_forms() {
        assert_eq!(
            error_message(r#"{"message":"bad ioc"}"#).as_deref(),
            Some("bad ioc")
        );
        assert_eq!(
            error_message(r#"{"error":{"message":"nope","status":400}}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(error_message("<html>bad</html>"), None);
        assert_eq!(error_message(r#"{"other":1}"#), None);
    }
}
