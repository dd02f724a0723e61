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
mod server;
mod slice;
mod state;

pub use ids::{AlarmId, DetectionId};
pub use server::{OffsetMode, PageCap, ServerProfile};
pub use slice::Slice;
pub use state::{AlarmDecision, DetectionState, UnknownValue};

/// How many LogRhythm requests may be in flight at once (`concurrency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// At most this many, always.
    Fixed(u32),
    /// Adapted to LogRhythm's latency and errors, from 1 to `max`.
    Auto { max: u32 },
}

impl Concurrency {
    /// The most requests ever in flight: the number of concurrent tasks the
    /// engine starts (with `Auto` the limiter then admits fewer).
    pub fn ceiling(self) -> u32 {
        match self {
            Concurrency::Fixed(n) | Concurrency::Auto { max: n } => n.max(1),
        }
    }
}

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

/// The side of an event an indicator field belongs to: `impacted*` fields are
/// [`Side::Impacted`], `origin*` fields are [`Side::Origin`]; `domain`, `url`
/// and `cve` belong to no side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Impacted,
    Origin,
}

impl Side {
    /// `impacted` or `origin`, as the event's field names begin.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Impacted => "impacted",
            Side::Origin => "origin",
        }
    }
}

/// A LogRhythm zone that makes an event side the organisation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgZone {
    Internal,
    Dmz,
}

impl OrgZone {
    /// LogRhythm's spelling: `Internal`, `DMZ`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgZone::Internal => "Internal",
            OrgZone::Dmz => "DMZ",
        }
    }
}

/// A network record LogRhythm attached to an event side (`impactedNetwork`,
/// `originNetwork`) that lrci accepts as the organisation's: an active record
/// whose `hostZone` is not `External`, with a sane `beginIPRange`–`endIPRange`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkRecord {
    pub begin: std::net::IpAddr,
    pub end: std::net::IpAddr,
    /// The record's `name`, made safe to store and show (may be empty).
    pub name: String,
    /// The record's `hostZone` (`Internal`, `DMZ`, `Unknown`, …).
    pub zone: String,
}

impl NetworkRecord {
    /// Whether `ip` lies in `begin..=end` (same address family only).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.begin, self.end, ip) {
            (IpAddr::V4(b), IpAddr::V4(e), IpAddr::V4(x)) => (b..=e).contains(&x),
            (IpAddr::V6(b), IpAddr::V6(e), IpAddr::V6(x)) => (b..=e).contains(&x),
            _ => false,
        }
    }

    /// `name (begin-end)`, or `begin-end` for a record without a name.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{}-{}", self.begin, self.end)
        } else {
            format!("{} ({}-{})", self.name, self.begin, self.end)
        }
    }
}

/// What LogRhythm says about one side of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideFacts {
    /// The side's zone when it is `Internal` or `DMZ`.
    pub zone: Option<OrgZone>,
    /// The network record attached to the side, when lrci accepts it.
    pub network: Option<NetworkRecord>,
    /// The side's zone is `External`: nothing on it is learned from.
    pub external: bool,
    /// The side's address (`…IP`, else `…NATIP`), normalised, when it has one.
    pub address: Option<std::net::IpAddr>,
    /// Network records attached anywhere in the same alarm's events: an address
    /// inside one is the organisation's whichever field or side holds it.
    pub alarm_networks: Vec<NetworkRecord>,
}

/// One sighting of a host name on an event side that LogRhythm classifies as the
/// organisation's: evidence that its registered domain is the organisation's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameSighting {
    /// The registered domain (Public Suffix List) of `host`.
    pub registered: String,
    /// The normalised host name.
    pub host: String,
    /// What makes this sighting distinct from others: the address on the same
    /// side (`ip:10.1.2.3`), or the host name itself when the side has none
    /// (`name:ws-1.hq.example.com`). A sinkhole answering many names from one
    /// address is therefore one witness, however many names it answers.
    pub witness: String,
    /// Why the side is the organisation's: `originZone Internal`, `network DMZ (…)`.
    pub basis: String,
}

/// What the events of one alarm taught about the organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Network records accepted as the organisation's, de-duplicated.
    pub networks: Vec<NetworkRecord>,
    /// Host names seen on the organisation's sides, de-duplicated.
    pub names: Vec<NameSighting>,
}

/// Distinct witnesses (addresses, or names seen without one) a registered domain
/// needs on the organisation's event sides before it is learned as the
/// organisation's. A DNS sinkhole answers every name from one address, so it
/// is one witness however many names it answers; an organisation's domain names
/// many hosts.
pub const LEARN_MIN_WITNESSES: i64 = 3;

/// Distinct alarms those witnesses must come from: one event, or one alarm, never
/// teaches a domain.
pub const LEARN_MIN_ALARMS: i64 = 2;
