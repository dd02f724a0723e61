//! LogRhythm Alarm API bodies exactly as the server sends them, and their
//! conversion into `model` types. Private to `logrhythm`.
//!
//! Parsing is tolerant where the spec shows variation (null lists, both events
//! wrapper spellings, `rbpMax`/`rBPMax`, every date form) and strict where a
//! value is needed to be correct (an alarm row without a usable id or date is
//! dropped, never guessed).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::model::{AlarmDetails, AlarmId, AlarmRow};

/// The LR envelope fields present on every success body.
#[derive(Debug, Deserialize, Default)]
pub(super) struct Envelope {
    #[serde(rename = "statusCode", default)]
    pub status_code: Option<Value>,
    #[serde(rename = "responseMessage", default)]
    pub response_message: Option<Value>,
    #[serde(rename = "statusMessage", default)]
    pub status_message: Option<Value>,
}

impl Envelope {
    /// `Some((code, message))` when the envelope reports a non-2xx `statusCode`.
    pub fn failure(&self) -> Option<(i64, String)> {
        let code = self.status_code.as_ref()?.as_i64()?;
        if (200..300).contains(&code) {
            return None;
        }
        let message = [&self.response_message, &self.status_message]
            .into_iter()
            .flatten()
            .find_map(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Some((code, message))
    }
}

/// `GET /alarms` body.
#[derive(Debug, Deserialize)]
pub(super) struct AlarmList {
    /// `null`, missing or `[]` when nothing matched.
    #[serde(rename = "alarmsSearchDetails", default)]
    pub alarms: Option<Vec<Value>>,
    #[serde(flatten)]
    pub envelope: Envelope,
}

/// `GET /alarms/{id}` body.
#[derive(Debug, Deserialize)]
pub(super) struct DetailsBody {
    #[serde(rename = "alarmDetails", default)]
    pub details: Option<serde_json::Map<String, Value>>,
    #[serde(flatten)]
    pub envelope: Envelope,
}

/// `GET /alarms/{id}/events` body, under either wrapper spelling.
#[derive(Debug, Deserialize)]
pub(super) struct EventsBody {
    /// The spelling real servers use.
    #[serde(rename = "alarmEventsDetails", default)]
    pub events: Option<Vec<Value>>,
    /// The spelling of the vendor OpenAPI file.
    #[serde(rename = "alarmsEventDetails", default)]
    pub events_oas: Option<Vec<Value>>,
    #[serde(flatten)]
    pub envelope: Envelope,
}

/// Why a list row was skipped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RowProblem {
    NotAnObject,
    BadId,
    BadDate,
}

/// An integer from a JSON number or a numeric string.
fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string field; `null`, missing or non-strings become `""`.
fn str_of(obj: &serde_json::Map<String, Value>, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The `alarmId` of a raw row, if it has a usable one (for log messages).
pub(super) fn row_id(row: &Value) -> Option<AlarmId> {
    row.get("alarmId").and_then(int_of).map(AlarmId::from)
}

/// Converts one raw `alarmsSearchDetails` element.
pub(super) fn to_row(row: &Value) -> Result<AlarmRow, RowProblem> {
    let obj = row.as_object().ok_or(RowProblem::NotAnObject)?;
    let alarm_id = obj
        .get("alarmId")
        .and_then(int_of)
        .filter(|id| *id > 0)
        .ok_or(RowProblem::BadId)?;
    let date_inserted = obj
        .get("dateInserted")
        .and_then(Value::as_str)
        .and_then(parse_lr_date)
        .ok_or(RowProblem::BadDate)?;
    Ok(AlarmRow {
        alarm_id: alarm_id.into(),
        rule_name: str_of(obj, "alarmRuleName"),
        status: obj.get("alarmStatus").and_then(int_of).unwrap_or(-1),
        entity_name: str_of(obj, "entityName"),
        date_inserted,
    })
}

/// `associatedCases` with the leading-space quirk removed (spec §10 item 6).
/// lrci's `AlarmRow` does not carry cases yet; kept here so the quirk is handled
/// in one place when it does.
#[allow(dead_code)]
pub(super) fn associated_cases(row: &Value) -> Vec<String> {
    row.get("associatedCases")
        .and_then(Value::as_array)
        .map(|cases| {
            cases
                .iter()
                .filter_map(Value::as_str)
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Converts `alarmDetails` (`rbpMax`, falling back to the OpenAPI `rBPMax`).
pub(super) fn to_details(obj: &serde_json::Map<String, Value>) -> AlarmDetails {
    let int = |a: &str, b: &str| {
        obj.get(a)
            .and_then(int_of)
            .or_else(|| obj.get(b).and_then(int_of))
    };
    AlarmDetails {
        rbp_max: int("rbpMax", "rBPMax"),
        rbp_avg: int("rbpAvg", "rBPAvg"),
        event_count: obj.get("eventCount").and_then(int_of),
    }
}

/// Parses every date form LogRhythm uses, as UTC: `YYYY-MM-DDTHH:MM:SS` with
/// 0–9 fraction digits (the API sends 0–3, the Case API 7), an optional `Z`
/// or `+00:00`-style offset, or a bare `YYYY-MM-DD` (midnight).
pub fn parse_lr_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    if let Ok(dt) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(dt.and_utc());
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(dt.and_utc());
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

/// Formats a `dateInserted` query value: UTC, millisecond precision, **no `Z`**.
///
/// Why no `Z`: it is the form the API itself returns and that the SIEM and
/// Splunk clients send; whether the .NET server honours a `Z` or converts it to
/// server-local time is unknown (spec §4.2), while a zone-less value is read as
/// the UTC the database stores.
pub fn format_lr_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_lr_date_form_parses_as_utc() {
        let cases = [
            ("2021-10-13T09:13:20.103", "2021-10-13T09:13:20.103Z"),
            ("2021-08-17T13:36:38.19", "2021-08-17T13:36:38.190Z"),
            ("2021-08-17T13:36:08.6", "2021-08-17T13:36:08.600Z"),
            ("2021-08-23T15:19:00", "2021-08-23T15:19:00Z"),
            ("2021-08-23T15:19:00Z", "2021-08-23T15:19:00Z"),
            ("2021-08-23T15:19:00.103Z", "2021-08-23T15:19:00.103Z"),
            (
                "2021-08-11T09:02:17.0066667Z",
                "2021-08-11T09:02:17.0066667Z",
            ),
            (
                "2021-08-11T09:02:17.0066667",
                "2021-08-11T09:02:17.0066667Z",
            ),
            ("2021-08-11T11:02:17+02:00", "2021-08-11T09:02:17Z"),
            ("2020-04-20", "2020-04-20T00:00:00Z"),
            (" 2020-04-20T01:02:03.4 ", "2020-04-20T01:02:03.4Z"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_lr_date(input), Some(at(want)), "{input}");
        }
        assert_eq!(
            parse_lr_date("0001-01-01T00:00:00"),
            Some(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap())
        );
        for bad in [
            "",
            "yesterday",
            "2021-13-01",
            "2021-10-13T25:00:00",
            "1634116400",
        ] {
            assert_eq!(parse_lr_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_date_is_millisecond_utc_without_zone() {
        assert_eq!(
            format_lr_date(at("2024-05-14T09:12:00Z")),
            "2024-05-14T09:12:00.000"
        );
        assert_eq!(
            format_lr_date(at("2024-05-14T09:12:41.387Z")),
            "2024-05-14T09:12:41.387"
        );
    }

    #[test]
    fn rows_parse_tolerantly_and_skip_unusable_ones() {
        let good = json!({"alarmId": 48212, "alarmRuleName": "AIE: X", "alarmStatus": 1,
            "associatedCases": ["A", " B"], "entityName": "Primary Site",
            "dateInserted": "2024-05-14T09:12:41.387"});
        let row = to_row(&good).unwrap();
        assert_eq!(row.alarm_id, 48212);
        assert_eq!(row.rule_name, "AIE: X");
        assert_eq!(row.status, 1);
        assert_eq!(row.date_inserted, at("2024-05-14T09:12:41.387Z"));
        assert_eq!(
            associated_cases(&good),
            vec!["A".to_string(), "B".to_string()]
        );

        let nulls = json!({"alarmId": "7", "alarmRuleName": null, "alarmStatus": null,
            "entityName": 5, "dateInserted": "2024-05-14"});
        let row = to_row(&nulls).unwrap();
        assert_eq!(
            (row.alarm_id.get(), row.rule_name.as_str(), row.status),
            (7, "", -1)
        );

        assert_eq!(to_row(&json!(3)), Err(RowProblem::NotAnObject));
        assert_eq!(
            to_row(&json!({"dateInserted": "2024-05-14"})),
            Err(RowProblem::BadId)
        );
        assert_eq!(
            to_row(&json!({"alarmId": -1, "dateInserted": "2024-05-14"})),
            Err(RowProblem::BadId)
        );
        assert_eq!(
            to_row(&json!({"alarmId": 1, "dateInserted": "soon"})),
            Err(RowProblem::BadDate)
        );
        assert_eq!(
            to_row(&json!({"alarmId": 1, "dateInserted": null})),
            Err(RowProblem::BadDate)
        );
        assert_eq!(
            row_id(&json!({"alarmId": 9, "dateInserted": "soon"})),
            Some(AlarmId::from(9))
        );
    }

    #[test]
    fn details_read_rbp_in_both_casings() {
        let d = json!({"rbpMax": 39, "rbpAvg": 30, "eventCount": 2});
        assert_eq!(
            to_details(d.as_object().unwrap()),
            AlarmDetails {
                rbp_max: Some(39),
                rbp_avg: Some(30),
                event_count: Some(2)
            }
        );
        let oas = json!({"rBPMax": 80, "rBPAvg": 70});
        assert_eq!(to_details(oas.as_object().unwrap()).rbp_max, Some(80));
        assert_eq!(
            to_details(json!({}).as_object().unwrap()),
            AlarmDetails::default()
        );
    }

    #[test]
    fn envelope_failure_is_detected() {
        let ok: Envelope = serde_json::from_value(json!({"statusCode": 200})).unwrap();
        assert_eq!(ok.failure(), None);
        let bad: Envelope =
            serde_json::from_value(json!({"statusCode": 500, "responseMessage": "db down"}))
                .unwrap();
        assert_eq!(bad.failure(), Some((500, "db down".to_string())));
        let missing: Envelope = serde_json::from_value(json!({})).unwrap();
        assert_eq!(missing.failure(), None);
    }
}
