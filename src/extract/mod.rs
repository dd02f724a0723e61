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
//! # LogRhythm's own classification
//!
//! Each field belongs to an event side ([`side_of`]): `impacted*` to the
//! impacted side, `origin*` to the origin side; `domain`, `url` and `cve` to none.
//! A side's facts ([`side_facts`]) are its zone (`impactedZone`/`originZone`:
//! `Internal` or `DMZ` make the side the organisation's), its network record
//! (`impactedNetwork`/`originNetwork`, accepted by [`network_record`]) and its
//! address. Every candidate is judged with its side's facts
//! ([`policy::classify_on`]). [`observations`] collects what an alarm teaches:
//! the accepted network records and the host names seen on the organisation's
//! sides (never on an `External` one), which the ledger keeps as evidence.
//!
//! No I/O, no clock.

use crate::model::{
    Candidate, EventSource, Indicator, IndicatorType, NameSighting, NetworkRecord, Observations,
    OrgZone, Side, SideFacts, Verdict,
};
use crate::policy::{self, Policy};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Host-name fields whose values teach a registered domain (not `domain`: a logon
/// domain is typed by whoever logs on, attackers included).
const NAME_FIELDS: [(&str, Side); 4] = [
    ("impactedHostName", Side::Impacted),
    ("impactedName", Side::Impacted),
    ("originHostName", Side::Origin),
    ("originName", Side::Origin),
];

/// Widest network record accepted: an IPv4 /8 or an IPv6 /32. A wider "network"
/// is a catch-all (the whole Internet as one record), not the organisation's.
const MAX_V4_RANGE: u128 = 1 << 24;
const MAX_V6_RANGE: u128 = 1 << 96;

/// Longest network record name kept.
const MAX_NETWORK_NAME: usize = 100;

/// The event side a field belongs to. `domain` belongs to none: although the
/// spec calls it the impacted domain, mail events carry the sender's domain there
/// (the spec's events fixture), so the impacted side's zone says nothing about
/// it; the organisation's logon domain is excluded by learning or configuration.
pub fn side_of(field: &str) -> Option<Side> {
    if field.starts_with("impacted") {
        Some(Side::Impacted)
    } else if field.starts_with("origin") {
        Some(Side::Origin)
    } else {
        None
    }
}

fn side_key(side: Side, suffix: &str) -> String {
    format!("{}{suffix}", side.as_str())
}

/// A `beginIPRange`/`endIPRange` value: `{"value": "…"}`, or a plain string (older builds).
fn range_end(v: Option<&Value>) -> Option<IpAddr> {
    let text = match v? {
        Value::Object(o) => o.get("value")?.as_str()?,
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    policy::normalize_ip(text)
}

fn range_size(begin: IpAddr, end: IpAddr) -> Option<u128> {
    match (begin, end) {
        (IpAddr::V4(b), IpAddr::V4(e)) if b <= e => {
            Some(u128::from(u32::from(e) - u32::from(b)) + 1)
        }
        (IpAddr::V6(b), IpAddr::V6(e)) if b <= e => {
            Some((u128::from(e) - u128::from(b)).saturating_add(1))
        }
        _ => None,
    }
}

/// The network record of `{"beginIPRange", "endIPRange", "hostZone", "name",
/// "recordStatus", …}` when it is accepted as the organisation's: not `Deleted`
/// or `Retired`, `hostZone` not `External`, both ends addresses of one family in
/// order, at most an IPv4 /8 or IPv6 /32 wide.
pub fn network_record(v: &Value) -> Option<NetworkRecord> {
    let o = v.as_object()?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::trim);
    if text("recordStatus")
        .is_some_and(|s| s.eq_ignore_ascii_case("deleted") || s.eq_ignore_ascii_case("retired"))
    {
        return None;
    }
    let zone = text("hostZone").unwrap_or("Unknown");
    if zone.eq_ignore_ascii_case("external") {
        return None;
    }
    let begin = range_end(o.get("beginIPRange"))?;
    let end = range_end(o.get("endIPRange"))?;
    let size = range_size(begin, end)?;
    let max = if begin.is_ipv4() {
        MAX_V4_RANGE
    } else {
        MAX_V6_RANGE
    };
    if size > max {
        return None;
    }
    // Names are shown in tables and reasons: unsafe characters escaped, plain
    // spaces kept.
    let clean = |s: &str| -> String {
        s.trim()
            .chars()
            .take(MAX_NETWORK_NAME)
            .flat_map(|c| {
                let unsafe_char = crate::text::is_unsafe(c) || (c.is_whitespace() && c != ' ');
                let shown: Vec<char> = if unsafe_char || c == '\\' {
                    c.escape_unicode().collect()
                } else {
                    vec![c]
                };
                shown
            })
            .collect()
    };
    Some(NetworkRecord {
        begin,
        end,
        name: clean(text("name").unwrap_or_default()),
        zone: clean(zone),
    })
}

/// What the event says about one of its sides.
pub fn side_facts(event: &Value, side: Side) -> SideFacts {
    let zone_text = event
        .get(side_key(side, "Zone"))
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let zone = if zone_text.eq_ignore_ascii_case("internal") {
        Some(OrgZone::Internal)
    } else if zone_text.eq_ignore_ascii_case("dmz") {
        Some(OrgZone::Dmz)
    } else {
        None
    };
    let address = ["IP", "NATIP"].iter().find_map(|f| {
        event
            .get(side_key(side, f))
            .and_then(field_text)
            .and_then(|t| policy::normalize_ip(&t))
    });
    SideFacts {
        zone,
        network: event
            .get(side_key(side, "Network"))
            .and_then(network_record),
        external: zone_text.eq_ignore_ascii_case("external"),
        address,
        alarm_networks: Vec::new(),
    }
}

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
/// order, normalised and judged by `policy` with their side's facts,
/// de-duplicated by (type, normalised value) keeping the first occurrence (and so
/// its field) — except that an exclusion found on any occurrence wins over a
/// "send" (an address LogRhythm puts in the DMZ in one event is the
/// organisation's in the others too).
pub fn indicators(events: &[Value], policy: &Policy) -> Vec<Indicator> {
    let mut seen: HashMap<(IndicatorType, String), usize> = HashMap::new();
    let mut out: Vec<Indicator> = Vec::new();
    let alarm_networks = observations_networks(events);
    let none = SideFacts {
        alarm_networks: alarm_networks.clone(),
        ..SideFacts::default()
    };
    for event in events {
        let source = event_source(event);
        let mut impacted = side_facts(event, Side::Impacted);
        let mut origin = side_facts(event, Side::Origin);
        impacted.alarm_networks.clone_from(&alarm_networks);
        origin.alarm_networks.clone_from(&alarm_networks);
        for c in candidates(event) {
            let facts = match side_of(c.field) {
                Some(Side::Impacted) => &impacted,
                Some(Side::Origin) => &origin,
                None => &none,
            };
            let mut ind = policy::classify_on(&c, policy, facts);
            ind.source = source.clone();
            match seen.get(&(ind.kind, ind.value.clone())) {
                None => {
                    seen.insert((ind.kind, ind.value.clone()), out.len());
                    out.push(ind);
                }
                Some(&i) => {
                    if let (Some(first), Verdict::Exclude(_)) = (out.get_mut(i), &ind.verdict) {
                        if first.verdict == Verdict::Send {
                            first.verdict = ind.verdict;
                        }
                    }
                }
            }
        }
    }
    out
}

/// The network records accepted from any side of any of these events, de-duplicated.
fn observations_networks(events: &[Value]) -> Vec<NetworkRecord> {
    let mut out: Vec<NetworkRecord> = Vec::new();
    for event in events {
        for side in [Side::Impacted, Side::Origin] {
            if let Some(n) = event
                .get(side_key(side, "Network"))
                .and_then(network_record)
            {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// What a set of events teaches about the organisation: the network records
/// accepted ([`network_record`]), and each host name on a side LogRhythm
/// classifies as the organisation's ([`policy::org_side_basis`]) with its
/// registered domain and witness. Names excluded by the built-in rules alone, IP
/// literals and names without a registered domain teach nothing.
pub fn observations(events: &[Value], policy: &Policy) -> Observations {
    let mut obs = Observations::default();
    let mut nets = HashSet::new();
    let mut names = HashSet::new();
    for event in events {
        for side in [Side::Impacted, Side::Origin] {
            let facts = side_facts(event, side);
            if let Some(n) = &facts.network {
                if nets.insert(n.clone()) {
                    obs.networks.push(n.clone());
                }
            }
            let Some(basis) = policy::org_side_basis(&facts, policy) else {
                continue;
            };
            for (field, _) in NAME_FIELDS.iter().filter(|(_, s)| *s == side) {
                let Some(text) = event.get(*field).and_then(field_text) else {
                    continue;
                };
                if policy::normalize_ip(&text).is_some() {
                    continue;
                }
                let Some(host) = policy::normalize_domain(&text) else {
                    continue;
                };
                if policy::is_builtin_internal(&host) {
                    continue;
                }
                let Some(registered) = policy::registered_domain(&host) else {
                    continue;
                };
                let witness = match facts.address {
                    Some(ip) => format!("ip:{ip}"),
                    None => format!("name:{host}"),
                };
                let s = NameSighting {
                    registered,
                    host,
                    witness,
                    basis: format!("{}: {basis}", side_key(side, "")),
                };
                if names.insert((s.registered.clone(), s.witness.clone())) {
                    obs.names.push(s);
                }
            }
        }
    }
    obs
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
