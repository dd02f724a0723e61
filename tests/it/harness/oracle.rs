//! The oracle: what a correct agent sends for an alarm, computed from the ground
//! truth (`GET /_sim/alarms`) without any of lrci's code (no `lrci::` import here:
//! extraction, policy and time parsing are written again, deliberately simply). It
//! only has to be right for what the generator produces (see src/sim/gen.rs).

use super::sim::TestSim;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The ground truth from `/_sim/alarms`.
pub async fn truth(sim: &TestSim) -> Vec<Value> {
    let b = sim
        .http
        .get(format!("{}/_sim/alarms", sim.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

/// `(incident.id, ioc.type, ioc.value)` of a received item.
pub fn received_key(item: &Value) -> (i64, String, String) {
    (
        item["incident"]["id"].as_str().unwrap().parse().unwrap(),
        item["ioc"]["type"].as_str().unwrap().to_string(),
        item["ioc"]["value"].as_str().unwrap().to_string(),
    )
}

/// Asserts that `received` holds no duplicate key and returns its key set.
pub fn unique_keys(received: &[Value]) -> BTreeSet<(i64, String, String)> {
    let mut counts: BTreeMap<(i64, String, String), usize> = BTreeMap::new();
    for item in received {
        *counts.entry(received_key(item)).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(dups.is_empty(), "CI received duplicates: {dups:?}");
    counts.into_keys().collect()
}

/// Parses an RFC 3339 instant, or a LogRhythm `dateInserted` (no zone, UTC) with `Z` added.
pub fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_rfc3339(&format!("{s}Z")))
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .with_timezone(&Utc)
}

/// An alarm's `dateInserted` as an instant.
pub fn inserted(alarm: &Value) -> DateTime<Utc> {
    instant(alarm["dateInserted"].as_str().unwrap())
}

/// The alarms of the ground truth inside the summary's `[window.from, window.to)`.
pub fn in_window<'a>(truth: &'a [Value], summary: &Value) -> Vec<&'a Value> {
    let from = instant(summary["window"]["from"].as_str().unwrap());
    let to = instant(summary["window"]["to"].as_str().unwrap());
    truth
        .iter()
        .filter(|a| (from..to).contains(&inserted(a)))
        .collect()
}

/// The structured event fields lrci reads, with the indicator type of each.
pub const IOC_FIELDS: [(&str, &str); 11] = [
    ("impactedIP", "ip"),
    ("originIP", "ip"),
    ("impactedNATIP", "ip"),
    ("originNATIP", "ip"),
    ("impactedHostName", "domain"),
    ("originHostName", "domain"),
    ("impactedName", "domain"),
    ("originName", "domain"),
    ("domain", "domain"),
    ("url", "url"),
    ("cve", "vulnerability"),
];

/// Name suffixes that are internal by the design's fixed list.
pub const INTERNAL_SUFFIXES: [&str; 5] = ["local", "internal", "lan", "home.arpa", "localhost"];

/// True when an IP is globally routable, by this test's own range table.
pub fn oracle_global_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => oracle_global_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => oracle_global_v4(v4),
            None => oracle_global_v6(v6),
        },
    }
}

fn oracle_global_v4(ip: Ipv4Addr) -> bool {
    const NON_GLOBAL: [([u8; 4], u32); 14] = [
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    let a = u32::from(ip);
    !NON_GLOBAL.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - len);
        a & mask == u32::from_be_bytes(*net)
    })
}

fn oracle_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Global unicast 2000::/3, minus documentation 2001:db8::/32 and 3fff::/20,
    // and the IETF protocol block 2001::/23.
    s[0] & 0xe000 == 0x2000
        && !(s[0] == 0x2001 && s[1] == 0x0db8)
        && !(s[0] == 0x3fff && s[1] < 0x1000)
        && !(s[0] == 0x2001 && s[1] < 0x0200)
}

/// True when a host name is internal: one label, or under a built-in internal
/// suffix or one of `extra` (the run's `--internal-domains`).
pub fn oracle_internal_name(name: &str, extra: &[&str]) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    !n.contains('.')
        || INTERNAL_SUFFIXES
            .iter()
            .chain(extra)
            .any(|s| n == *s || n.ends_with(&format!(".{s}")))
}

fn oracle_name(raw: &str, extra: &[&str]) -> Option<String> {
    let n = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !oracle_internal_name(&n, extra);
    ok.then_some(n)
}

/// The host of a URL as written (userinfo and port removed, brackets kept off).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    Some(host.to_ascii_lowercase())
}

fn oracle_url(raw: &str, extra: &[&str]) -> Option<String> {
    let raw = raw.trim();
    let (scheme, rest) = raw.split_once("://")?;
    if !["http", "https"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return None;
    }
    let host = url_host(raw)?;
    let public = match host.parse::<IpAddr>() {
        Ok(ip) => oracle_global_ip(ip),
        Err(_) => oracle_name(&host, extra).is_some(),
    };
    if !public {
        return None;
    }
    // Drop userinfo: everything in the authority up to the last '@'.
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let authority = authority.rsplit('@').next()?;
    let path = if path.is_empty() { "/" } else { path };
    Some(format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase(),
        path
    ))
}

fn oracle_cves(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| {
            let parts: Vec<&str> = c.split('-').collect();
            parts.len() == 3
                && parts[0] == "CVE"
                && parts[1].len() == 4
                && parts[2].len() >= 4
                && parts[1..]
                    .iter()
                    .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

/// A marked value (`{"type", "value"}` of `organisationValues` / `heldBack`) as
/// this oracle normalises it, or `None` when it would never be sent anyway.
fn oracle_mark(kind: &str, raw: &str) -> Option<(String, String)> {
    let v = match kind {
        "ip" => {
            let ip = raw.trim().parse::<IpAddr>().ok()?;
            match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            }
            .to_string()
        }
        "domain" => raw.trim().trim_end_matches('.').to_ascii_lowercase(),
        "url" => oracle_url(raw, &[])?,
        _ => raw.trim().to_string(),
    };
    Some((kind.to_string(), v))
}

/// The marked values of one alarm under `key` (`organisationValues` or `heldBack`).
pub fn marked(alarm: &Value, key: &str) -> BTreeSet<(String, String)> {
    alarm[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| oracle_mark(m["type"].as_str()?, m["value"].as_str()?))
        .collect()
}

/// Every value the ground truth marks as the organisation's, in any alarm.
pub fn organisation_values(truth: &[Value]) -> BTreeSet<(String, String)> {
    truth
        .iter()
        .flat_map(|a| marked(a, "organisationValues"))
        .collect()
}

/// The public indicators of one ground-truth alarm, as `(type, value)`, less
/// the values the simulator marks as the organisation's or as held back (an
/// attacker's name LogRhythm placed on an organisation's side).
pub fn oracle_indicators(alarm: &Value, extra_internal: &[&str]) -> BTreeSet<(String, String)> {
    let all = oracle_all_public(alarm, extra_internal);
    let org = marked(alarm, "organisationValues");
    let held = marked(alarm, "heldBack");
    all.into_iter()
        .filter(|k| !org.contains(k) && !held.contains(k))
        .collect()
}

/// The public indicators of one ground-truth alarm by the fixed rules alone
/// (non-global addresses and internal names removed), marks not applied.
pub fn oracle_all_public(alarm: &Value, extra_internal: &[&str]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let Some(events) = alarm["events"].as_array() else {
        return out;
    };
    for ev in events {
        for (field, kind) in IOC_FIELDS {
            let Some(raw) = ev.get(field).and_then(Value::as_str) else {
                continue;
            };
            match kind {
                "ip" => {
                    if let Ok(ip) = raw.trim().parse::<IpAddr>() {
                        if oracle_global_ip(ip) {
                            let v = match ip {
                                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                                v4 => v4,
                            };
                            out.insert((kind.to_string(), v.to_string()));
                        }
                    }
                }
                "domain" => {
                    if let Some(n) = oracle_name(raw, extra_internal) {
                        out.insert((kind.to_string(), n));
                    }
                }
                "url" => {
                    if let Some(u) = oracle_url(raw, extra_internal) {
                        out.insert((kind.to_string(), u));
                    }
                }
                _ => {
                    for c in oracle_cves(raw) {
                        out.insert((kind.to_string(), c));
                    }
                }
            }
        }
    }
    out
}

/// True when `value` (an ioc value of type `kind`) names something internal by
/// this test's rules: a non-global address, an internal name, or a URL whose host
/// is one of those.
pub fn leaks_internal(kind: &str, value: &str, extra_internal: &[&str]) -> bool {
    let host_internal = |h: &str| match h.parse::<IpAddr>() {
        Ok(ip) => !oracle_global_ip(ip),
        Err(_) => oracle_internal_name(h, extra_internal),
    };
    match kind {
        "ip" => value
            .parse::<IpAddr>()
            .map_or(true, |ip| !oracle_global_ip(ip)),
        "domain" => oracle_internal_name(value, extra_internal),
        "url" => url_host(value).is_none_or(|h| host_internal(&h)),
        _ => false,
    }
}
