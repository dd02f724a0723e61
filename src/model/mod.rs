//! Domain types shared by every module: alarms as lrci understands them,
//! indicators, detections and their states; the id newtypes ([`AlarmId`],
//! [`DetectionId`]), the state enums ([`DetectionState`], [`AlarmDecision`]) and
//! the hour [`Slice`] that the engine and `ledger gaps` share.
//!
//! No I/O here and no knowledge of either API's wire format: the client modules
//! convert their wire structs into these types at the edge.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

mod ids;
mod slice;
mod state;

pub use ids::{AlarmId, DetectionId};
pub use slice::Slice;
pub use state::{AlarmDecision, DetectionState, UnknownValue};

/// One row of `GET /alarms`, with its insertion time parsed as UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRow {
    pub alarm_id: AlarmId,
    pub rule_name: String,
    /// `alarmStatus`, 0–9.
    pub status: i64,
    pub entity_name: String,
    pub date_inserted: DateTime<Utc>,
}

/// The parts of `GET /alarms/{id}` that lrci uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AlarmDetails {
    /// `rbpMax` (or `rBPMax`), 0–100; `None` when the API sent none.
    pub rbp_max: Option<i64>,
    pub rbp_avg: Option<i64>,
    pub event_count: Option<i64>,
}

/// The five indicator types Collective Insights accepts (`ioc.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorType {
    Ip,
    Domain,
    Url,
    Vulnerability,
    Hash,
}

impl IndicatorType {
    pub const ALL: [IndicatorType; 5] = [
        IndicatorType::Ip,
        IndicatorType::Domain,
        IndicatorType::Url,
        IndicatorType::Vulnerability,
        IndicatorType::Hash,
    ];

    /// The wire and ledger spelling: `ip`, `domain`, `url`, `vulnerability`, `hash`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorType::Ip => "ip",
            IndicatorType::Domain => "domain",
            IndicatorType::Url => "url",
            IndicatorType::Vulnerability => "vulnerability",
            IndicatorType::Hash => "hash",
        }
    }
}

impl fmt::Display for IndicatorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IndicatorType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IndicatorType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown indicator type {s:?} (expected ip, domain, url, vulnerability or hash)"))
    }
}

/// A value found in an event field, before the indicator policy has looked at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub kind: IndicatorType,
    /// The LogRhythm event field it came from, e.g. `originIP`.
    pub field: &'static str,
    /// The text exactly as the event held it (one item of a multi-valued field).
    pub raw: String,
}

/// What the indicator policy decided for one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Global and not excluded: send it.
    Send,
    /// Not sent; the reason is short, stable text for audits (e.g. `private ip (rfc1918)`).
    Exclude(String),
}

/// A candidate after normalisation and policy: what the ledger records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub kind: IndicatorType,
    /// Normalised value (lower-cased A-label domains, RFC 5952 IPv6, upper-case CVE ids,
    /// URLs without userinfo). For values that could not be normalised, the raw text
    /// made safe for storage.
    pub value: String,
    pub field: &'static str,
    pub verdict: Verdict,
    /// Where the event that held it came from (`logSourceTypeName`, `threatName`).
    pub source: EventSource,
}

/// What an event says about its origin, carried by each indicator found in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventSource {
    /// The event's `logSourceTypeName` (sent as `ioc.source_type`), `None` when
    /// missing or a sentinel.
    pub source_type: Option<String>,
    /// The event's `threatName` (sent in `malwares` when enabled).
    pub threat_name: Option<String>,
}

/// One detection ready to be posted to Collective Insights: one per
/// (alarm, indicator type, normalised value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// Ledger row id; lets the submitter report outcomes per item.
    pub id: DetectionId,
    pub alarm_id: AlarmId,
    pub rule_name: String,
    /// The alarm's `dateInserted`, sent as `timestamp`.
    pub timestamp: DateTime<Utc>,
    pub kind: IndicatorType,
    pub value: String,
    pub field: String,
    /// `ioc.source_type`: the event's `logSourceTypeName`, `None` when unknown.
    pub source_type: Option<String>,
    /// The event's `threatName`, when it had one.
    pub threat_name: Option<String>,
}
