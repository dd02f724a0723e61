//! Collective Insights bodies exactly as the API expects and answers them.
//! Private to `ci`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::fields::{mitre_codes, Fields};
use crate::model::Detection;

/// `incident.type` of every lrci detection.
pub(super) const INCIDENT_TYPE: &str = "logrhythm-alarm";
/// `ioc.source_type` when the event named no log source type.
pub(super) const SOURCE_TYPE: &str = "logrhythm";

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

/// One detection; keys in psengine's order, empty parts omitted.
#[derive(Debug, Serialize)]
pub(super) struct Item<'a> {
    pub timestamp: String,
    pub ioc: Ioc<'a>,
    pub incident: Incident<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mitre_codes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub malwares: Vec<&'a str>,
    pub detection: DetectionPart<'a>,
}

#[derive(Debug, Serialize)]
pub(super) struct Ioc<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: &'a str,
    pub source_type: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub field: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct Incident<'a> {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub(super) struct DetectionPart<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
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

/// `Some(text)` unless blank.
fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

impl<'a> Item<'a> {
    pub(super) fn from_detection(d: &'a Detection, fields: &'a Fields) -> Item<'a> {
        let chosen = fields.detection(&d.rule_name);
        let name = non_empty(&d.rule_name);
        Item {
            timestamp: timestamp(d.timestamp),
            ioc: Ioc {
                kind: d.kind.as_str(),
                value: &d.value,
                source_type: d
                    .source_type
                    .as_deref()
                    .and_then(non_empty)
                    .unwrap_or(SOURCE_TYPE),
                field: &d.field,
            },
            incident: Incident {
                id: d.alarm_id.to_string(),
                name,
                kind: INCIDENT_TYPE,
            },
            mitre_codes: if fields.mitre_codes {
                mitre_codes(&d.rule_name)
            } else {
                Vec::new()
            },
            malwares: match (
                fields.malwares,
                d.threat_name.as_deref().and_then(non_empty),
            ) {
                (true, Some(t)) => vec![t],
                _ => Vec::new(),
            },
            detection: DetectionPart {
                kind: chosen.kind,
                sub_type: chosen.sub_type,
                id: chosen.id,
                name,
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
