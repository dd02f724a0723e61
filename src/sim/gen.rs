//! Deterministic scenario generator for the simulator: which alarms exist, and the
//! exact bodies (`alarmDetails`, events, summary, list rows) served for each.
//!
//! Everything is a pure function of the generator parameters (seed, scenario, hours,
//! alarms per hour, end, events per alarm) and, per alarm, of `(seed, alarmId)`:
//! alarm metadata is generated up front (cheap), event bodies lazily on request.
//! No clock and no I/O here.
//!
//! Public addresses come from globally routable space (never the documentation
//! ranges); private ones cover RFC 1918, CGNAT, loopback, link-local and ULA.
//!
//! Hostile scenario: alarms with `id % 5 == 2` carry corpus item
//! `(id / 5) % 63` ([`hostile_item`]), so any 63 consecutive hostile alarms cover the
//! whole corpus once. Most items replace one field of the alarm's first event; four
//! go into the alarm's rule or entity name; five change the whole events response
//! (wrapper spelled `alarmsEventDetails`, `null` list, an HTML page with status 200,
//! valid JSON as `text/plain`). The lone surrogate, invalid UTF-8, 10 000-deep
//! nesting and `1e99999` are spliced in as raw bytes, so those events bodies are not
//! parseable by serde_json (see `SimState::ground_truth` for how the ground truth
//! shows them). Not served, because they would break the simulator's own routing
//! and paging rather than test a client: odd `alarmId`s (2^64, −1, `"12"`), bad
//! `dateInserted` values in list rows (they go into event `logDate` instead), and
//! gzip garbage.

use crate::sim::json::Node;
use crate::sim::time::{from_second_and_tick, render_lr, snap_to_tick};
use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The id of the first generated alarm; later ones count up from here.
pub const FIRST_ALARM_ID: i64 = 1001;

/// Alarms in the burst scenario's busy hour.
pub const BURST_ALARMS: usize = 350;
/// Alarms of the busy hour that share one identical `dateInserted`.
pub const BURST_SAME_INSTANT: usize = 120;

/// In the hostile scenario, alarms whose id is `2 (mod HOSTILE_EVERY)` carry one
/// item of the hostile corpus; all others are normal.
pub const HOSTILE_EVERY: i64 = 5;

/// A named scenario (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Scenario {
    /// The realistic mix, spread evenly over the window.
    #[default]
    Default,
    /// Like default, but the middle hour of the window ([`burst_hour_start`]) holds
    /// 350 alarms, 120 of them with one identical `dateInserted`.
    Burst,
    /// Like default, but every fifth alarm carries one item of the reliability bar's
    /// hostile corpus (§7) in an event or alarm field, or as a broken events body.
    Hostile,
}

/// Inputs that fully determine the generated alarm set.
#[derive(Debug, Clone)]
pub struct GenParams {
    /// RNG seed.
    pub seed: u64,
    /// Scenario.
    pub scenario: Scenario,
    /// Window length in hours: alarms fall in `[end - hours, end)`.
    pub hours: u32,
    /// Alarms per hour (except the burst hour).
    pub alarms_per_hour: u32,
    /// Window end, whole seconds.
    pub end: DateTime<Utc>,
    /// Events served per alarm by `/events`.
    pub events_per_alarm: u32,
}

/// One generated alarm: everything list rows and details need; events are derived
/// lazily from `(seed, id)`.
#[derive(Debug, Clone)]
pub struct AlarmMeta {
    /// `alarmId`.
    pub id: i64,
    /// `alarmRuleName`.
    pub rule_name: String,
    /// `alarmRuleID`.
    pub rule_id: i64,
    /// `alarmStatus`, 0–9.
    pub status: i64,
    /// `entityId`.
    pub entity_id: i64,
    /// `entityName`.
    pub entity_name: String,
    /// `dateInserted`, on a SQL `datetime` tick.
    pub date_inserted: DateTime<Utc>,
    /// `alarmDataCached` is `"Y"`.
    pub data_cached: bool,
    /// `associatedCases` as served (leading space on all but the first).
    pub cases: Vec<String>,
    /// `rbpMax`.
    pub rbp_max: i64,
    /// `rbpAvg`.
    pub rbp_avg: i64,
    /// `eventCount` in details (may exceed the events served, as on real systems).
    pub event_count: i64,
    /// Events served by `/events`.
    pub events_served: u32,
    /// Seed for the lazily generated bodies.
    pub seed: u64,
    /// Index into the hostile corpus, for hostile alarms.
    pub hostile: Option<usize>,
}

const RULES: [(&str, i64); 14] = [
    ("Recorded Future: Risk List Match - IP", 1000000201),
    ("Recorded Future: Risk List Match - Domain", 1000000202),
    ("Recorded Future: Risk List Match - URL", 1000000203),
    ("Recorded Future: Vulnerability Exploited", 1000000204),
    ("AIE: Suspicious Outbound Connection", 1000000101),
    ("AIE: Exploit Attempt Detected", 1000000142),
    ("AIE: Phishing Email With Link", 1000000150),
    ("AIE: MAC Address Observed", 98),
    ("AIE: Brute Force Authentication - T1110", 1000000111),
    ("LogRhythm Agent Heartbeat Missed", 21),
    ("AIE: Malware Beacon Detected [T1071.001]", 1000000163),
    ("AIE: Data Exfiltration Suspected", 1000000170),
    ("Threat Intel: Known Bad Host Contacted", 1000000180),
    (
        "AIE: Lateral Movement via SMB (T1021.002, T1570)",
        1000000190,
    ),
];

/// What the firewall sensor names in `threatName` for a malware event (sent
/// as `malwares` when that is enabled).
const THREAT_NAMES: [&str; 4] = ["Emotet", "Cobalt Strike", "QakBot", "AsyncRAT"];

const ENTITIES: [(&str, i64); 3] = [
    ("Global Entity", -100),
    ("Primary Site", 1),
    ("Branch Office", 2),
];

const STATUS_NAMES: [&str; 10] = [
    "New",
    "Opened",
    "Working",
    "Escalated",
    "Closed",
    "Closed: False Alarm",
    "Closed: Resolved",
    "Closed: Unresolved",
    "Closed: Reported",
    "Closed: Monitor",
];

/// Display name of an alarm status (spec §8).
pub fn status_name(status: i64) -> &'static str {
    usize::try_from(status)
        .ok()
        .and_then(|i| STATUS_NAMES.get(i))
        .copied()
        .unwrap_or("Unknown")
}

/// Parses an `alarmStatus` filter value: an integer 0–9 or a PATCH/display name
/// (case-insensitive).
pub fn parse_status(s: &str) -> Option<i64> {
    if let Ok(n) = s.trim().parse::<i64>() {
        return (0..=9).contains(&n).then_some(n);
    }
    const PATCH: [&str; 10] = [
        "new",
        "opened",
        "working",
        "escalated",
        "closed",
        "closed_falsealarm",
        "closed_resolved",
        "closed_unresolved",
        "closed_reported",
        "closed_monitor",
    ];
    let l = s.trim().to_ascii_lowercase();
    (0..10i64).find(|&i| {
        let i = i as usize;
        PATCH.get(i).is_some_and(|p| *p == l)
            || STATUS_NAMES
                .get(i)
                .is_some_and(|d| d.to_ascii_lowercase() == l)
    })
}

/// Start of the burst scenario's busy hour: hour `hours / 2` of the window.
pub fn burst_hour_start(p: &GenParams) -> DateTime<Utc> {
    window_start(p) + Duration::hours(i64::from(p.hours / 2))
}

fn window_start(p: &GenParams) -> DateTime<Utc> {
    p.end - Duration::hours(i64::from(p.hours))
}

fn mix(seed: u64, a: i64, b: u64) -> u64 {
    // SplitMix64-style mixing so nearby ids give unrelated streams.
    let mut z = seed
        ^ (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates the initial alarm set: ids ascending with time from [`FIRST_ALARM_ID`],
/// sorted by (`dateInserted`, id), all inside `[end - hours, end)`.
pub fn generate(p: &GenParams) -> Vec<AlarmMeta> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(p.seed, p.scenario as i64, 0));
    let start = window_start(p).timestamp();
    let ticks_per_hour: i64 = 3600 * 300;
    let burst_hour = (p.scenario == Scenario::Burst).then_some(i64::from(p.hours / 2));
    let mut times: Vec<DateTime<Utc>> = Vec::new();
    for h in 0..i64::from(p.hours) {
        let hour_start = start + h * 3600;
        if Some(h) == burst_hour {
            // The shared instant: half past, tick 101 (.337).
            let shared_tick = 1800 * 300 + 101;
            for _ in 0..BURST_SAME_INSTANT {
                times.push(from_second_and_tick(hour_start, shared_tick));
            }
            let mut n = 0;
            while n < BURST_ALARMS - BURST_SAME_INSTANT {
                let t = rng.random_range(0..ticks_per_hour);
                if t != shared_tick {
                    times.push(from_second_and_tick(hour_start, t));
                    n += 1;
                }
            }
        } else {
            for _ in 0..p.alarms_per_hour {
                let t = rng.random_range(0..ticks_per_hour);
                times.push(from_second_and_tick(hour_start, t));
            }
        }
    }
    times.sort();
    times
        .into_iter()
        .zip(FIRST_ALARM_ID..)
        .map(|(t, id)| make_alarm(p.seed, p.scenario, id, t, p.events_per_alarm))
        .collect()
}

/// Gives alarms sharing one `dateInserted` the rule, status and entity of the
/// first of them (`alarms` sorted by time), so no list filter splits an instant.
pub fn uniform_ties(alarms: &mut [AlarmMeta]) {
    for group in alarms.chunk_by_mut(|a, b| a.date_inserted == b.date_inserted) {
        let Some((first, rest)) = group.split_first_mut() else {
            continue;
        };
        for a in rest {
            a.rule_name.clone_from(&first.rule_name);
            a.rule_id = first.rule_id;
            a.status = first.status;
            a.entity_name.clone_from(&first.entity_name);
            a.entity_id = first.entity_id;
        }
    }
}

/// Generates `count` more alarms with ids from `first_id`, the i-th at `at` (snapped
/// to a tick) plus `10 ms × i`, deterministically for `(seed, first_id)`.
pub fn generate_more(
    seed: u64,
    scenario: Scenario,
    first_id: i64,
    count: usize,
    at: DateTime<Utc>,
    events_per_alarm: u32,
) -> Vec<AlarmMeta> {
    let at = snap_to_tick(at);
    (0..count)
        .zip(first_id..)
        .map(|(i, id)| {
            let t = at + Duration::milliseconds(10 * i as i64);
            make_alarm(seed, scenario, id, t, events_per_alarm)
        })
        .collect()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    // Callers pass non-empty constant tables.
    &items[rng.random_range(0..items.len())]
}

fn make_alarm(seed: u64, scenario: Scenario, id: i64, t: DateTime<Utc>, events: u32) -> AlarmMeta {
    let aseed = mix(seed, id, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(aseed);
    let (rule, rule_id) = *pick(&mut rng, &RULES);
    let (entity, entity_id) = *pick(&mut rng, &ENTITIES);
    let status = match rng.random_range(0..100) {
        0..60 => 0,
        60..75 => 1,
        n => i64::from(2 + (n - 75) % 8),
    };
    let ncases = match rng.random_range(0..10) {
        0..7 => 0,
        7..9 => 1,
        _ => 2,
    };
    let cases = (0..ncases)
        .map(|i| {
            let g = guid(&mut rng);
            if i == 0 {
                g
            } else {
                format!(" {g}")
            }
        })
        .collect();
    let rbp_max = rng.random_range(0..=100);
    let rbp_avg = rng.random_range(0..=rbp_max);
    let event_count = i64::from(events.max(rng.random_range(1..=5)));
    let hostile = (scenario == Scenario::Hostile && id.rem_euclid(HOSTILE_EVERY) == 2)
        .then(|| (id / HOSTILE_EVERY).rem_euclid(hostile_len() as i64) as usize);
    let mut a = AlarmMeta {
        id,
        rule_name: rule.to_string(),
        rule_id,
        status,
        entity_id,
        entity_name: entity.to_string(),
        date_inserted: t,
        data_cached: rng.random_bool(0.7),
        cases,
        rbp_max,
        rbp_avg,
        event_count,
        events_served: events,
        seed: aseed,
        hostile,
    };
    // Only a few corpus items are alarm-level; don't build the big ones here.
    match hostile
        .filter(|i| HOSTILE_ALARM_LEVEL.contains(&(i % HOSTILE_LEN)))
        .map(|i| hostile_item(i).1)
    {
        Some(Place::RuleName(s)) => a.rule_name = s,
        Some(Place::EntityName(s)) => a.entity_name = s,
        _ => {}
    }
    a
}

fn guid(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------------------------
// Indicator-shaped values

const PUBLIC_V4_FIRST_OCTETS: [u8; 14] =
    [8, 23, 31, 45, 52, 64, 77, 91, 104, 142, 151, 185, 193, 212];
const PUBLIC_V6_PREFIXES: [[u16; 2]; 4] = [
    [0x2001, 0x4860],
    [0x2606, 0x4700],
    [0x2a00, 0x1450],
    [0x2400, 0xcb00],
];

/// A globally routable IPv4 address (never documentation, private or reserved space).
pub fn public_v4(rng: &mut ChaCha8Rng) -> String {
    let a = *pick(rng, &PUBLIC_V4_FIRST_OCTETS);
    Ipv4Addr::new(
        a,
        rng.random_range(1..=254),
        rng.random(),
        rng.random_range(1..=254),
    )
    .to_string()
}

/// A globally routable IPv6 address, RFC 5952 text.
pub fn public_v6(rng: &mut ChaCha8Rng) -> String {
    let p = *pick(rng, &PUBLIC_V6_PREFIXES);
    let tail = if rng.random_bool(0.5) {
        0
    } else {
        rng.random()
    };
    Ipv6Addr::new(
        p[0],
        p[1],
        rng.random_range(1..0xfff),
        0,
        0,
        tail,
        rng.random(),
        rng.random_range(1..0xffff),
    )
    .to_string()
}

/// A non-global address: RFC 1918, CGNAT, loopback, link-local or IPv6 ULA/link-local.
pub fn private_ip(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..9) {
        0 | 1 => {
            // 10.20/16 and 10.30/16 are the simulated organisation's LAN and DMZ
            // inside addresses (its network records); random traffic stays out.
            let b: u8 = rng.random();
            let b = if matches!(b, 20 | 30) { b + 1 } else { b };
            Ipv4Addr::new(10, b, rng.random(), rng.random_range(1..=254)).to_string()
        }
        2 => Ipv4Addr::new(
            172,
            rng.random_range(16..=31),
            rng.random(),
            rng.random_range(1..=254),
        )
        .to_string(),
        3 | 4 => Ipv4Addr::new(192, 168, rng.random(), rng.random_range(1..=254)).to_string(),
        5 => Ipv4Addr::new(
            100,
            rng.random_range(64..=127),
            rng.random(),
            rng.random_range(1..=254),
        )
        .to_string(),
        6 => Ipv4Addr::new(127, 0, 0, 1).to_string(),
        7 => Ipv4Addr::new(169, 254, rng.random(), rng.random_range(1..=254)).to_string(),
        _ => {
            if rng.random_bool(0.5) {
                Ipv6Addr::new(
                    0xfd12,
                    0x3456,
                    0x789a,
                    1,
                    0,
                    0,
                    0,
                    rng.random_range(1..0xffff),
                )
                .to_string()
            } else {
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0211, 0x22ff, 0xfe33, rng.random()).to_string()
            }
        }
    }
}

const INTERNAL_HOSTS: [&str; 10] = [
    "fileserver",
    "dc01.local",
    "build.internal",
    "printer3.lan",
    "app01.corp.example",
    "web01.corp.example",
    "sql02.corp.example",
    "nas.home.arpa",
    "intranet",
    "jenkins.internal",
];

const EXTERNAL_HOSTS: [&str; 12] = [
    "login-verify-account.com",
    "cdn.fastupdate-service.net",
    "files.darkshare.io",
    "paste.evilbin.org",
    "secure-payments-check.co",
    "api.telemetry-sync.com",
    "mail.phishbait.info",
    "download.cracked-apps.biz",
    "c2.beaconhub.xyz",
    "update.windows-patch.support",
    "static.adtrack-metrics.com",
    "www.github-release.download",
];

const CVES: [&str; 8] = [
    "CVE-2021-44228",
    "CVE-2023-4966",
    "CVE-2024-3400",
    "CVE-2022-22965",
    "CVE-2021-26855",
    "CVE-2023-34362",
    "CVE-2019-19781",
    "CVE-2024-21762",
];

const SENTINELS: [&str; 4] = ["", "-1", "Unknown", "NULL"];

fn str_or_sentinel(rng: &mut ChaCha8Rng, v: String, p_value: f64) -> Node {
    if rng.random_bool(p_value) {
        Node::Str(v)
    } else {
        Node::s(*pick(rng, &SENTINELS))
    }
}

// ---------------------------------------------------------------------------------
// Bodies

/// The seven list-row fields, in the order LogRhythm returns them.
pub fn list_row(a: &AlarmMeta) -> Node {
    Node::obj([
        ("alarmId", Node::Int(a.id)),
        ("alarmRuleName", Node::s(a.rule_name.clone())),
        ("alarmStatus", Node::Int(a.status)),
        (
            "alarmDataCached",
            Node::s(if a.data_cached { "Y" } else { "N" }),
        ),
        (
            "associatedCases",
            Node::Arr(a.cases.iter().cloned().map(Node::Str).collect()),
        ),
        ("entityName", Node::s(a.entity_name.clone())),
        ("dateInserted", Node::s(render_lr(a.date_inserted))),
    ])
}

fn ms_before(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    snap_to_tick(t - Duration::milliseconds(ms))
}

/// The `alarmDetails` object (spec §6.2 order, casing and nulls).
pub fn details(a: &AlarmMeta) -> Node {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(a.seed, a.id, 2));
    let alarm_date = ms_before(a.date_inserted, rng.random_range(3..60));
    let updated = a.date_inserted + Duration::milliseconds(rng.random_range(0..600_000));
    let first = ms_before(a.date_inserted, rng.random_range(20_000..120_000));
    let last = ms_before(a.date_inserted, rng.random_range(1_000..20_000));
    let (upd_id, upd_name) = if a.status == 0 {
        (-100, "LogRhythm Administrator")
    } else {
        (7, "Analyst, Example")
    };
    Node::obj([
        ("alarmRuleID", Node::Int(a.rule_id)),
        ("alarmId", Node::Int(a.id)),
        ("personId", Node::Int(-100)),
        ("alarmDate", Node::s(render_lr(alarm_date))),
        ("alarmStatus", Node::Int(a.status)),
        ("alarmStatusName", Node::s(status_name(a.status))),
        ("entityId", Node::Int(a.entity_id)),
        ("entityName", Node::s(a.entity_name.clone())),
        ("alarmRuleName", Node::s(a.rule_name.clone())),
        ("lastUpdatedID", Node::Int(upd_id)),
        ("lastUpdatedName", Node::s(upd_name)),
        ("dateInserted", Node::s(render_lr(a.date_inserted))),
        ("dateUpdated", Node::s(render_lr(snap_to_tick(updated)))),
        (
            "associatedCases",
            Node::Arr(a.cases.iter().cloned().map(Node::Str).collect()),
        ),
        ("lastPersonID", Node::Null),
        ("eventCount", Node::Int(a.event_count)),
        ("eventDateFirst", Node::s(render_lr(first))),
        ("eventDateLast", Node::s(render_lr(last))),
        ("rbpMax", Node::Int(a.rbp_max)),
        ("rbpAvg", Node::Int(a.rbp_avg)),
        ("smartResponseActions", Node::Null),
        (
            "alarmDataCached",
            Node::s(if a.data_cached { "Y" } else { "N" }),
        ),
    ])
}

fn location() -> Node {
    Node::obj([
        ("countryCode", Node::s("")),
        ("name", Node::s("")),
        ("latitude", Node::Int(0)),
        ("locationId", Node::Int(0)),
        ("locationKey", Node::s("")),
        ("longitude", Node::Int(0)),
        ("parentLocationId", Node::Int(0)),
        ("recordStatus", Node::s("Deleted")),
        ("regionCode", Node::s("")),
        ("type", Node::s("NULL")),
        ("dateUpdated", Node::s("0001-01-01T00:00:00")),
    ])
}

fn network() -> Node {
    Node::obj([
        ("beginIPRange", Node::obj([("value", Node::s(""))])),
        ("dateUpdated", Node::s("0001-01-01T00:00:00")),
        ("riskThreshold", Node::s("")),
        ("endIPRange", Node::obj([("value", Node::s(""))])),
        ("entityId", Node::Int(0)),
        ("hostZone", Node::s("Unknown")),
        ("locationId", Node::Int(0)),
        ("longDesc", Node::s("")),
        ("name", Node::s("")),
        ("networkId", Node::Int(0)),
        ("recordStatus", Node::s("Deleted")),
        ("shortDesc", Node::s("")),
    ])
}

/// Every top-level event field of spec §6.3 in server order, with the empty value
/// LogRhythm uses for it.
pub const EVENT_FIELDS: [&str; 103] = [
    "account",
    "action",
    "amount",
    "bytesIn",
    "bytesOut",
    "classificationId",
    "classificationName",
    "classificationTypeName",
    "command",
    "commonEventId",
    "cve",
    "commonEventName",
    "count",
    "directionId",
    "directionName",
    "domain",
    "duration",
    "entityId",
    "entityName",
    "group",
    "impactedEntityId",
    "impactedEntityName",
    "impactedHostId",
    "impactedHostName",
    "impactedInterface",
    "impactedIP",
    "impactedLocation",
    "impactedMAC",
    "impactedName",
    "impactedNATIP",
    "impactedNATPort",
    "impactedNetwork",
    "impactedPort",
    "impactedZone",
    "itemsPacketsIn",
    "itemsPacketsOut",
    "logDate",
    "login",
    "logMessage",
    "logSourceHostId",
    "logSourceHostName",
    "logSourceName",
    "logSourceTypeName",
    "messageId",
    "mpeRuleId",
    "mpeRuleName",
    "normalDateMax",
    "objectName",
    "objectType",
    "originEntityId",
    "originEntityName",
    "originHostId",
    "originHostName",
    "originInterface",
    "originIP",
    "originLocation",
    "originMAC",
    "originName",
    "originNATIP",
    "originNATPort",
    "originNetwork",
    "originPort",
    "originZone",
    "parentProcessId",
    "parentProcessName",
    "parentProcessPath",
    "policy",
    "priority",
    "process",
    "processId",
    "protocolId",
    "protocolName",
    "quantity",
    "rate",
    "reason",
    "recipient",
    "result",
    "responseCode",
    "sender",
    "session",
    "sessionType",
    "serialNumber",
    "serviceId",
    "serviceName",
    "severity",
    "status",
    "size",
    "subject",
    "threatId",
    "threatName",
    "url",
    "userAgent",
    "vendorInfo",
    "vendorMsgId",
    "version",
    "originUserIdentityName",
    "impactedUserIdentityName",
    "originUserIdentityId",
    "impactedUserIdentityId",
    "senderIdentityId",
    "senderIdentityName",
    "recipientIdentityId",
    "recipientIdentityName",
];

fn empty_value(field: &str) -> Node {
    match field {
        "amount"
        | "bytesIn"
        | "bytesOut"
        | "impactedIP"
        | "originIP"
        | "impactedNATPort"
        | "originNATPort"
        | "logSourceHostId"
        | "originUserIdentityId"
        | "impactedUserIdentityId"
        | "senderIdentityId"
        | "recipientIdentityId" => Node::Null,
        "impactedHostId" | "originHostId" | "impactedPort" | "originPort" | "mpeRuleId"
        | "processId" | "protocolId" | "serviceId" => Node::Int(-1),
        "classificationId" | "commonEventId" | "count" | "directionId" | "duration"
        | "entityId" | "impactedEntityId" | "originEntityId" | "itemsPacketsIn"
        | "itemsPacketsOut" | "messageId" | "priority" | "quantity" | "rate" | "size" => {
            Node::Int(0)
        }
        "directionName" | "impactedZone" | "originZone" => Node::s("Unknown"),
        "normalDateMax" => Node::s("0001-01-01T00:00:00"),
        "impactedLocation" | "originLocation" => location(),
        "impactedNetwork" | "originNetwork" => network(),
        _ => Node::s(""),
    }
}

/// Event `index` of an alarm, drawn from its own seed (so an event never depends on
/// how many others are served).
fn event(a: &AlarmMeta, index: u32) -> Node {
    event_marked(a, index).0
}

/// Whether an alarm's events name only the organisation's hosts: the first
/// alarm of every window, so a fresh install's first run meets one before it
/// has learned anything.
fn internal_only(a: &AlarmMeta) -> bool {
    a.id == FIRST_ALARM_ID
}

/// Event `index` of an alarm with what the generator knows of its values.
fn event_marked(a: &AlarmMeta, index: u32) -> (Node, Marks) {
    let mut marks = Marks::default();
    let mut rng = ChaCha8Rng::seed_from_u64(mix(a.seed, a.id, 100 + u64::from(index)));
    let mut e = Node::Obj(
        EVENT_FIELDS
            .iter()
            .map(|f| (f.to_string(), empty_value(f)))
            .collect(),
    );
    let log_date = ms_before(a.date_inserted, rng.random_range(1_000..120_000));
    let aie = index == 0 && a.rule_name.starts_with("AIE:");
    let class_name = set_classification(&mut e, &mut rng, a, index, aie);
    set_direction_and_entities(&mut e, &mut rng, a, index, aie, log_date);
    // A hostile corpus item replaces a field of the first event: that event comes
    // from an older source (no zones, no network records), so the item is judged
    // by the fixed rules alone, as the corpus means it to be.
    let legacy = index == 0 && a.hostile.is_some();
    let ind = set_indicators(&mut e, &mut rng, (internal_only(a), legacy), &mut marks);
    set_mail_and_port(&mut e, &mut rng, &ind.external);
    e.set(
        "logMessage",
        Node::Str(log_message(a, aie, log_date, class_name, &ind)),
    );
    set_log_source(&mut e, &mut rng, aie);
    if class_name == "Malware" && !aie {
        // Chosen from the ids, not drawn: every other value stays as it was.
        let pick = usize::try_from(a.id.unsigned_abs() + u64::from(index)).unwrap_or(0);
        e.set(
            "threatName",
            Node::s(THREAT_NAMES[pick % THREAT_NAMES.len()]),
        );
    }
    e.set("impactedIP", ind.impacted_ip);
    e.set("originIP", ind.origin_ip);
    (e, marks)
}

/// What the generator knows of an alarm's served values: the organisation's,
/// and attackers' values placed on an organisation's side (see [`Marks`]).
pub fn marks(a: &AlarmMeta) -> Marks {
    let mut all = Marks::default();
    for i in 0..a.events_served {
        let m = event_marked(a, i).1;
        all.org.extend(m.org);
        all.held_back.extend(m.held_back);
    }
    all
}

/// The indicator values of one event that later fields (the log message) repeat.
struct Indicators {
    impacted_ip: Node,
    origin_ip: Node,
    external: String,
    url: String,
    cve: String,
}

/// Sets the classification and common-event fields; returns the classification name.
fn set_classification(
    e: &mut Node,
    rng: &mut ChaCha8Rng,
    a: &AlarmMeta,
    index: u32,
    aie: bool,
) -> &'static str {
    let (class_id, class_name) = *pick(
        rng,
        &[
            (1040, "Attack"),
            (2200, "Suspicious"),
            (3200, "Error"),
            (1020, "Malware"),
        ],
    );
    e.set("classificationId", Node::Int(class_id));
    e.set("classificationName", Node::s(class_name));
    e.set(
        "classificationTypeName",
        Node::s(if class_id == 3200 {
            "Operations"
        } else {
            "Security"
        }),
    );
    e.set(
        "commonEventId",
        Node::Int(if aie {
            a.rule_id
        } else {
            rng.random_range(1_000_000..1_100_000)
        }),
    );
    e.set(
        "commonEventName",
        Node::s(if index == 0 {
            a.rule_name.clone()
        } else {
            format!("{class_name} Activity")
        }),
    );
    class_name
}

/// Sets the count, direction, entity, log date, message id and priority fields.
fn set_direction_and_entities(
    e: &mut Node,
    rng: &mut ChaCha8Rng,
    a: &AlarmMeta,
    index: u32,
    aie: bool,
    log_date: DateTime<Utc>,
) {
    e.set("count", Node::Int(1));
    let (dir_id, dir) = *pick(
        rng,
        &[
            (0, "Unknown"),
            (1, "Internal"),
            (3, "External"),
            (4, "Outbound"),
        ],
    );
    e.set("directionId", Node::Int(dir_id));
    e.set("directionName", Node::s(dir));
    e.set(
        "entityId",
        Node::Int(if aie { -1000001 } else { a.entity_id }),
    );
    e.set(
        "entityName",
        Node::s(if aie {
            String::new()
        } else {
            a.entity_name.clone()
        }),
    );
    e.set("impactedEntityId", Node::Int(a.entity_id));
    e.set("impactedEntityName", Node::s(a.entity_name.clone()));
    e.set("originEntityId", Node::Int(-100));
    e.set("originEntityName", Node::s("Global Entity"));
    e.set("logDate", Node::s(render_lr(log_date)));
    e.set("messageId", Node::Int(rng.random_range(100_000..9_000_000)));
    e.set(
        "priority",
        Node::Int(if index == 0 {
            a.rbp_max
        } else {
            rng.random_range(0..=100)
        }),
    );
}

// ---------------------------------------------------------------------------------
// The simulated organisation (DESIGN.md section 4): Kestrel Logistics.

/// The organisation's registered domain (under the public suffix `co.uk`).
pub const ORG_DOMAIN: &str = "kestrel-logistics.co.uk";
/// Its internal hosts' zone: `hq.` + [`ORG_DOMAIN`], on `10.20.0.0/16`.
const ORG_HQ: &str = "hq.kestrel-logistics.co.uk";
/// The AD logon domain as events write it in `domain`.
const ORG_AD_DOMAINS: [&str; 3] = [
    "HQ.KESTREL-LOGISTICS.CO.UK",
    "hq.kestrel-logistics.co.uk",
    "KESTREL",
];
/// DMZ hosts on the organisation's public range (in [`ORG_DMZ_RANGE`]).
const ORG_DMZ_HOSTS: [(&str, &str); 4] = [
    ("www.kestrel-logistics.co.uk", "62.60.128.10"),
    ("mail.kestrel-logistics.co.uk", "62.60.128.11"),
    ("vpn.kestrel-logistics.co.uk", "62.60.128.12"),
    ("sftp.kestrel-logistics.co.uk", "62.60.128.13"),
];
/// The organisation's public range, a LogRhythm network record in the DMZ zone.
pub const ORG_DMZ_RANGE: (&str, &str) = ("62.60.128.0", "62.60.128.63");
/// The address the organisation's outbound traffic is translated to.
const ORG_EGRESS: &str = "62.60.128.40";
/// The organisation's LAN, a LogRhythm network record in the Internal zone.
pub const ORG_LAN_RANGE: (&str, &str) = ("10.20.0.0", "10.20.255.255");
/// Internal servers (under [`ORG_HQ`]).
const ORG_SERVERS: [&str; 7] = [
    "dc01", "dc02", "fs02", "sql01", "build", "print01", "exch01",
];
/// The internal DNS sinkhole: answers attackers' names with this address.
const ORG_SINKHOLE: &str = "10.20.250.53";

/// What the generator knows about the values it placed in one event: the
/// organisation's (never to be sent), and attackers' values that LogRhythm put
/// on an organisation's side (a sinkhole answer), which an agent excludes there
/// and must not learn from.
#[derive(Debug, Default)]
pub struct Marks {
    /// `(type, raw value)` of the organisation's values.
    pub org: Vec<(&'static str, String)>,
    /// `(type, raw value)` of attackers' values placed on an organisation's side.
    pub held_back: Vec<(&'static str, String)>,
}

/// A workstation: `ws-NNNN.hq…` and its fixed address.
fn org_workstation(rng: &mut ChaCha8Rng) -> (String, String) {
    let n: u32 = rng.random_range(100..1000);
    (
        format!("ws-{n:04}.{ORG_HQ}"),
        format!("10.20.{}.{}", 10 + n / 200, 1 + n % 200),
    )
}

/// A server: `NAME.hq…` and its fixed address.
fn org_server(rng: &mut ChaCha8Rng) -> (String, String) {
    let i = rng.random_range(0..ORG_SERVERS.len());
    (
        format!("{}.{ORG_HQ}", ORG_SERVERS[i]),
        format!("10.20.1.{}", 10 + i),
    )
}

fn filled_network(name: &str, (begin, end): (&str, &str), zone: &str, id: i64) -> Node {
    Node::obj([
        ("beginIPRange", Node::obj([("value", Node::s(begin))])),
        ("dateUpdated", Node::s("2024-03-11T09:12:44.21Z")),
        ("riskThreshold", Node::s("")),
        ("endIPRange", Node::obj([("value", Node::s(end))])),
        ("entityId", Node::Int(1)),
        ("hostZone", Node::s(zone)),
        ("locationId", Node::Int(0)),
        ("longDesc", Node::s("")),
        ("name", Node::s(name)),
        ("networkId", Node::Int(id)),
        ("recordStatus", Node::s("Active")),
        ("shortDesc", Node::s("")),
    ])
}

fn lan_record() -> Node {
    filled_network("HQ LAN", ORG_LAN_RANGE, "Internal", 3)
}

fn dmz_record() -> Node {
    filled_network("DMZ public", ORG_DMZ_RANGE, "DMZ", 7)
}

/// One side of an event: address, host name, zone, network record.
struct SideSpec {
    ip: Node,
    host: Option<String>,
    zone: &'static str,
    network: Option<Node>,
}

impl SideSpec {
    fn external(rng: &mut ChaCha8Rng, host: Option<String>) -> SideSpec {
        let ip = match rng.random_range(0..10) {
            0..7 => Node::Str(public_v4(rng)),
            7..9 => Node::Str(public_v6(rng)),
            _ => Node::Null,
        };
        let zone = if rng.random_bool(0.8) {
            "External"
        } else {
            "Unknown"
        };
        SideSpec {
            ip,
            host,
            zone,
            network: None,
        }
    }

    fn internal(rng: &mut ChaCha8Rng, (host, ip): (String, String), m: &mut Marks) -> SideSpec {
        m.org.push(("domain", host.clone()));
        SideSpec {
            ip: Node::Str(ip),
            host: Some(host),
            zone: "Internal",
            network: rng.random_bool(0.6).then(lan_record),
        }
    }

    fn dmz(rng: &mut ChaCha8Rng, m: &mut Marks) -> SideSpec {
        let (host, ip) = *pick(rng, &ORG_DMZ_HOSTS);
        m.org.push(("domain", host.to_string()));
        m.org.push(("ip", ip.to_string()));
        SideSpec {
            ip: Node::s(ip),
            host: rng.random_bool(0.8).then(|| host.to_string()),
            zone: "DMZ",
            network: Some(dmz_record()),
        }
    }
}

fn set_side(e: &mut Node, side: &str, spec: SideSpec, host_field: &str) -> Node {
    if let Some(h) = spec.host {
        e.set(&format!("{side}{host_field}"), Node::Str(h));
    }
    e.set(&format!("{side}Zone"), Node::s(spec.zone));
    if let Some(n) = spec.network {
        e.set(&format!("{side}Network"), n);
    }
    spec.ip
}

fn host_field(rng: &mut ChaCha8Rng) -> &'static str {
    if rng.random_bool(0.8) {
        "HostName"
    } else {
        "Name"
    }
}

/// Draws the indicator fields of a realistic organisation's event (see
/// [`ORG_DOMAIN`]): sets the sides' zones, networks, NAT, host name, name,
/// domain, URL and CVE fields, and returns the two addresses (set last) with
/// what the message repeats. `internal_only` makes an event that names only the
/// organisation's hosts; `legacy` one from an older source without zones.
fn set_indicators(
    e: &mut Node,
    rng: &mut ChaCha8Rng,
    (internal_only, legacy): (bool, bool),
    m: &mut Marks,
) -> Indicators {
    let external = pick(rng, &EXTERNAL_HOSTS).to_string();
    let attacker_host = |rng: &mut ChaCha8Rng| rng.random_bool(0.5).then(|| external.clone());
    let kind = if internal_only {
        rng.random_range(60..80)
    } else if legacy {
        rng.random_range(86..100)
    } else {
        rng.random_range(0..100)
    };
    let mut url = String::new();
    let (impacted_ip, origin_ip) = match kind {
        // Inbound to the DMZ: an attacker against a public server.
        0..28 => {
            let o = {
                let h = attacker_host(rng);
                SideSpec::external(rng, h)
            };
            let i = SideSpec::dmz(rng, m);
            if rng.random_bool(0.3) {
                let nat = format!("10.30.0.{}", rng.random_range(2..60));
                m.org.push(("ip", nat.clone()));
                e.set("impactedNATIP", Node::Str(nat));
            }
            if rng.random_bool(0.3) {
                url = format!(
                    "https://www.{ORG_DOMAIN}/login?next={}",
                    rng.random_range(1..999)
                );
                m.org.push(("url", url.clone()));
            }
            let f = host_field(rng);
            (
                set_side(e, "impacted", i, "HostName"),
                set_side(e, "origin", o, f),
            )
        }
        // Outbound: a workstation reaching an attacker, translated to the egress address.
        28..58 => {
            let ws = org_workstation(rng);
            let o = SideSpec::internal(rng, ws, m);
            if rng.random_bool(0.7) {
                m.org.push(("ip", ORG_EGRESS.to_string()));
                e.set("originNATIP", Node::s(ORG_EGRESS));
            }
            let i = {
                let h = attacker_host(rng);
                SideSpec::external(rng, h)
            };
            url = match rng.random_range(0..10) {
                0..5 => format!(
                    "https://{external}/{}?id={}",
                    pick(rng, &["login", "invoice.php", "dl/payload.bin", "a/b/c"]),
                    rng.random_range(1..99999)
                ),
                5..7 => format!("http://admin:hunter2@{external}/panel"),
                7 => format!("http://{}:8080/x.sh", public_v4(rng)),
                _ => String::new(),
            };
            let f = host_field(rng);
            (
                set_side(e, "impacted", i, f),
                set_side(e, "origin", o, "HostName"),
            )
        }
        // A sinkhole answer: the DNS server answered an attacker's name with the sinkhole.
        58..60 => {
            let ws = org_workstation(rng);
            let o = SideSpec::internal(rng, ws, m);
            m.held_back.push(("domain", external.clone()));
            let i = SideSpec {
                ip: Node::s(ORG_SINKHOLE),
                host: Some(external.clone()),
                zone: "Internal",
                network: rng.random_bool(0.5).then(lan_record),
            };
            (
                set_side(e, "impacted", i, "HostName"),
                set_side(e, "origin", o, "HostName"),
            )
        }
        // Lateral movement between internal hosts.
        60..72 => {
            let ws = org_workstation(rng);
            let o = SideSpec::internal(rng, ws, m);
            let srv = org_server(rng);
            let i = SideSpec::internal(rng, srv.clone(), m);
            if rng.random_bool(0.3) {
                url = format!("https://{}/admin/", srv.0);
                m.org.push(("url", url.clone()));
            }
            (
                set_side(e, "impacted", i, "HostName"),
                set_side(e, "origin", o, "HostName"),
            )
        }
        // Name only: an internal host named without address or zone.
        72..80 => {
            let (host, _) = if rng.random_bool(0.5) {
                org_workstation(rng)
            } else {
                org_server(rng)
            };
            m.org.push(("domain", host.clone()));
            let f = host_field(rng);
            e.set(&format!("impacted{f}"), Node::Str(host));
            (Node::Null, Node::Null)
        }
        // The organisation's public address with no zone and no network record.
        80..86 => {
            let (host, ip) = *pick(rng, &ORG_DMZ_HOSTS);
            let ip = if rng.random_bool(0.5) { ORG_EGRESS } else { ip };
            m.org.push(("ip", ip.to_string()));
            if rng.random_bool(0.5) {
                m.org.push(("domain", host.to_string()));
                e.set("impactedName", Node::s(host));
            }
            let o = {
                let h = attacker_host(rng);
                SideSpec::external(rng, h)
            };
            let f = host_field(rng);
            (Node::s(ip), set_side(e, "origin", o, f))
        }
        // Older sources: private addresses, local names, sentinels, no zones.
        _ => {
            let i = Node::Str(private_ip(rng));
            if rng.random_bool(0.5) {
                let h = pick(rng, &INTERNAL_HOSTS).to_string();
                e.set("impactedHostName", str_or_sentinel(rng, h, 0.85));
            }
            match rng.random_range(0..3) {
                0 => e.set("originHostName", Node::s(external.clone())),
                1 => e.set("originHostName", Node::s(*pick(rng, &SENTINELS))),
                _ => {}
            }
            if rng.random_bool(0.3) {
                e.set("originName", Node::s(*pick(rng, &EXTERNAL_HOSTS)));
            }
            let o = match rng.random_range(0..3) {
                0 => Node::Str(public_v4(rng)),
                1 => Node::Str(private_ip(rng)),
                _ => Node::Null,
            };
            (i, o)
        }
    };
    match rng.random_range(0..10) {
        0..5 => {
            let d = *pick(rng, &ORG_AD_DOMAINS);
            m.org.push(("domain", d.to_string()));
            e.set("domain", Node::s(d));
        }
        5 => e.set("domain", Node::s(*pick(rng, &SENTINELS))),
        _ => {}
    }
    e.set("url", Node::s(url.clone()));
    let cve = match (internal_only, rng.random_range(0..10)) {
        (true, _) => String::new(),
        (false, 0 | 1) => pick(rng, &CVES).to_string(),
        (false, 2) => format!("{}, {}", pick(rng, &CVES), pick(rng, &CVES)),
        _ => String::new(),
    };
    e.set("cve", Node::s(cve.clone()));
    Indicators {
        impacted_ip,
        origin_ip,
        external,
        url,
        cve,
    }
}

/// Sometimes sets the mail fields (sender at `external`) and the port and protocol.
fn set_mail_and_port(e: &mut Node, rng: &mut ChaCha8Rng, external: &str) {
    if rng.random_bool(0.1) {
        e.set("sender", Node::s(format!("billing@{external}")));
        e.set("recipient", Node::s(format!("alice@{ORG_DOMAIN}")));
        e.set("subject", Node::s("Invoice overdue"));
    }
    if rng.random_bool(0.4) {
        e.set(
            "impactedPort",
            Node::Int(*pick(rng, &[22, 53, 80, 443, 445, 3389, 8443])),
        );
        e.set("protocolId", Node::Int(6));
        e.set("protocolName", Node::s("TCP"));
    }
}

/// The raw log line: an AI Engine XML record or a firewall syslog line.
fn log_message(
    a: &AlarmMeta,
    aie: bool,
    log_date: DateTime<Utc>,
    class_name: &str,
    ind: &Indicators,
) -> String {
    let ip_text = |n: &Node| match n {
        Node::Str(s) => s.clone(),
        _ => "-".to_string(),
    };
    let (url, cve) = (&ind.url, &ind.cve);
    if aie {
        format!(
            "<aie v=\"1\"><_0 FactCount=\"1\" NormalMsgDate=\"{}\" RuleBlockType=\"1\" SIP=\"{}\" DIP=\"{}\" /><_ AIERuleID=\"{}\" /></aie>",
            log_date.format("%Y-%m-%d %H:%M:%S"),
            ip_text(&ind.origin_ip),
            ip_text(&ind.impacted_ip),
            a.rule_id
        )
    } else {
        format!(
            "{} sensor01 {class_name} src={} dst={} url={url} cve={cve}",
            log_date.format("%Y-%m-%dT%H:%M:%SZ"),
            ip_text(&ind.origin_ip),
            ip_text(&ind.impacted_ip)
        )
    }
}

/// Sets the log source fields: the AI Engine, or the firewall sensor.
fn set_log_source(e: &mut Node, rng: &mut ChaCha8Rng, aie: bool) {
    if aie {
        e.set("logSourceHostId", Node::Int(-1000001));
        e.set("logSourceHostName", Node::s("AI Engine Server"));
        e.set("logSourceName", Node::s("AI Engine"));
        e.set("logSourceTypeName", Node::s("LogRhythm AI Engine"));
    } else {
        e.set("logSourceHostId", Node::Int(rng.random_range(1..100)));
        e.set("logSourceHostName", Node::s("sensor01.corp.example"));
        e.set("logSourceName", Node::s("sensor01 threat log"));
        e.set("logSourceTypeName", Node::s("Syslog - Example NGFW"));
        e.set(
            "mpeRuleId",
            Node::Int(rng.random_range(1_000_000..1_100_000)),
        );
        e.set("mpeRuleName", Node::s("EXAMPLE-NGFW: Threat"));
    }
}

/// The events of an alarm as structured nodes (before any hostile body surgery).
pub fn events(a: &AlarmMeta) -> Vec<Node> {
    let mut evs: Vec<Node> = (0..a.events_served).map(|i| event(a, i)).collect();
    if let (Some(first), Some((_, Place::Event(field, value)))) =
        (evs.first_mut(), a.hostile.map(hostile_item))
    {
        if field == "__duplicate__" {
            if let Node::Obj(pairs) = first {
                pairs.push(("originIP".to_string(), value));
            }
        } else {
            first.set(field, value);
        }
    }
    evs
}

/// How the events endpoint answers for an alarm.
#[derive(Debug, Clone)]
pub struct EventsBody {
    /// The events array exactly as it appears in the body (possibly not valid JSON
    /// or not UTF-8 in the hostile scenario).
    pub array: Vec<u8>,
    /// Wrapper key override (`alarmsEventDetails`) or `None` for the configured one.
    pub wrapper: Option<&'static str>,
    /// Send `null` instead of the array.
    pub null_list: bool,
    /// Replace the whole body with this (content type, bytes).
    pub replace: Option<(&'static str, Vec<u8>)>,
    /// Content type when not replaced.
    pub content_type: &'static str,
}

/// The events body parts for an alarm.
pub fn events_body(a: &AlarmMeta) -> EventsBody {
    let arr = Node::Arr(events(a)).to_bytes();
    let mut b = EventsBody {
        array: arr,
        wrapper: None,
        null_list: false,
        replace: None,
        content_type: "application/json; charset=utf-8",
    };
    if let Some((_, Place::Body(kind))) = a.hostile.map(hostile_item) {
        match kind {
            BodyKind::MisspelledWrapper => b.wrapper = Some("alarmsEventDetails"),
            BodyKind::NullList => b.null_list = true,
            BodyKind::Html200 => {
                b.replace = Some((
                    "text/html; charset=utf-8",
                    b"<!DOCTYPE html><html><head><title>LogRhythm</title></head><body><h1>Service Temporarily Unavailable</h1></body></html>".to_vec(),
                ))
            }
            BodyKind::TextPlainJson => b.content_type = "text/plain; charset=utf-8",
        }
    }
    b
}

/// The `alarmSummaryDetails` object (spec §6.4).
pub fn summary(a: &AlarmMeta) -> Node {
    let evs: Vec<Node> = (0..a.events_served).map(|i| event(a, i)).collect();
    let get = |e: &Node, k: &str| e.get(k).cloned().unwrap_or(Node::Null);
    let per_event = evs
        .iter()
        .map(|e| {
            Node::obj([
                ("msgClassId", get(e, "classificationId")),
                ("msgClassName", get(e, "classificationName")),
                ("commonEventId", get(e, "commonEventId")),
                ("commonEventName", get(e, "commonEventName")),
                ("originHostId", get(e, "originHostId")),
                ("impactedHostId", get(e, "impactedHostId")),
                ("originUser", Node::s("")),
                ("impactedUser", get(e, "recipient")),
                ("originUserIdentityId", Node::Null),
                ("impactedUserIdentityId", Node::Null),
                ("originUserIdentityName", Node::s("")),
                ("impactedUserIdentityName", Node::s("")),
                ("originEntityName", get(e, "originEntityName")),
                ("impactedEntityName", get(e, "impactedEntityName")),
            ])
        })
        .collect();
    Node::obj([
        ("dateInserted", Node::s(render_lr(a.date_inserted))),
        ("rbpMax", Node::Int(a.rbp_max)),
        ("rbpAvg", Node::Int(a.rbp_avg)),
        ("alarmRuleId", Node::Int(a.rule_id)),
        (
            "alarmRuleGroup",
            Node::s(if a.rule_name.starts_with("Recorded Future") {
                "Threat Intelligence"
            } else {
                "Security"
            }),
        ),
        (
            "briefDescription",
            Node::s(format!("{} fired for {}.", a.rule_name, a.entity_name)),
        ),
        (
            "additionalDetails",
            Node::s(
                "Action:\r\n1.  Review the impacted host.\r\n2.  Block the origin if confirmed.",
            ),
        ),
        ("alarmEventSummary", Node::Arr(per_event)),
    ])
}

// ---------------------------------------------------------------------------------
// Hostile corpus (reliability-bar §7)

/// Where one hostile corpus item goes.
#[derive(Debug, Clone)]
pub enum Place {
    /// Into this field of the alarm's first event (`__duplicate__`: a second
    /// `originIP` key is appended).
    Event(&'static str, Node),
    /// As the alarm's `alarmRuleName` (list row, details).
    RuleName(String),
    /// As the alarm's `entityName` (list row, details).
    EntityName(String),
    /// As a property of the whole events response.
    Body(BodyKind),
}

/// Whole-body hostile variants of the events response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Wrapper key spelled `alarmsEventDetails`.
    MisspelledWrapper,
    /// `alarmEventsDetails: null`.
    NullList,
    /// An HTML page with status 200.
    Html200,
    /// Valid JSON sent as `text/plain`.
    TextPlainJson,
}

const HOSTILE_LEN: usize = 63;

/// Corpus items placed in alarm fields (rule or entity name) rather than events.
const HOSTILE_ALARM_LEVEL: [usize; 4] = [15, 17, 21, 23];

/// Number of items in the hostile corpus.
pub fn hostile_len() -> usize {
    HOSTILE_LEN
}

fn raw_str(bytes: &[u8]) -> Node {
    let mut v = vec![b'"'];
    v.extend_from_slice(bytes);
    v.push(b'"');
    Node::Raw(v)
}

/// Item `i` of the hostile corpus: a short stable name and where it goes.
pub fn hostile_item(i: usize) -> (&'static str, Place) {
    use Place::{Event as E, RuleName as R};
    let s = Node::s;
    match i % HOSTILE_LEN {
        0 => ("empty-string", E("originHostName", s(""))),
        1 => ("sentinel-dash", E("originHostName", s("-"))),
        2 => ("sentinel-na", E("domain", s("N/A"))),
        3 => ("sentinel-unknown", E("impactedHostName", s("Unknown"))),
        4 => ("sentinel-null-text", E("originName", s("NULL"))),
        5 => ("sentinel-minus-one", E("impactedNATIP", s("-1"))),
        6 => ("sentinel-min-date", E("domain", s("0001-01-01T00:00:00"))),
        7 => ("null-for-string", E("domain", Node::Null)),
        8 => ("number-for-string", E("impactedIP", Node::Int(167772161))),
        9 => ("one-mib-string", E("logMessage", Node::Str("A".repeat(1 << 20)))),
        10 => ("ten-thousand-ips", E("originIP", Node::Str(ten_thousand_ips()))),
        11 => ("newline", E("domain", s("evil-newline.com\nX-Injected: 1"))),
        12 => ("crlf", E("originHostName", s("crlf-host.com\r\nfake log line"))),
        13 => ("u2028", E("url", s("https://line\u{2028}sep.com/"))),
        14 => ("nel", E("domain", s("nel\u{85}host.com"))),
        15 => ("ansi-escape", R("AIE: \u{1b}[2J\u{1b}]0;pwned\u{7} Terminal Rule".into())),
        16 => ("nul", E("originHostName", s("nul\u{0}byte.com"))),
        17 => ("bidi-override", R("Recorded Future: \u{202e}txt.exe Risk List Match".into())),
        18 => ("zero-width-space", E("domain", s("exa\u{200b}mple-zw.com"))),
        19 => ("lone-surrogate", E("originHostName", raw_str(b"lone\\ud800surrogate.com"))),
        20 => ("invalid-utf8", E("domain", raw_str(b"bad\xff\xfe\xc3\x28utf8.com"))),
        21 => ("sql-injection", R("'); DROP TABLE indicators;--".into())),
        22 => ("like-injection", E("domain", s("%' OR 1=1 --"))),
        23 => ("format-string", Place::EntityName("%s%n{}{0}".into())),
        24 => ("path-traversal", E("url", s("../../etc/passwd"))),
        25 => ("ip-with-port", E("originIP", s("1.2.3.4:8080"))),
        26 => ("ipv6-bracket-port", E("originIP", s("[2001:db8::1]:443"))),
        27 => ("ipv6-zone", E("impactedIP", s("fe80::1%eth0"))),
        28 => ("ipv4-mapped-private", E("originIP", s("::ffff:10.0.0.1"))),
        29 => ("octal-ip", E("originIP", s("010.0.0.1"))),
        30 => ("hex-ip", E("originIP", s("0x7f.0.0.1"))),
        31 => ("short-ip", E("originIP", s("127.1"))),
        32 => ("integer-ip", E("originIP", s("2130706433"))),
        33 => ("fullwidth-ip", E("originIP", s("１.２.３.４"))),
        34 => ("octet-256", E("originIP", s("1.2.3.256"))),
        35 => ("unspecified", E("originIP", s("0.0.0.0"))),
        36 => ("broadcast", E("originIP", s("255.255.255.255"))),
        37 => ("ipv6-loopback", E("originIP", s("::1"))),
        38 => ("multicast", E("originIP", s("224.0.0.251"))),
        39 => ("upper-trailing-dot", E("domain", s("EXAMPLE-UPPER.COM."))),
        40 => ("a-label", E("domain", s("xn--80ak6aa92e.com"))),
        41 => ("unicode-domain", E("domain", s("пример.испытание"))),
        42 => ("bad-punycode", E("domain", s("xn--zz"))),
        43 => ("mixed-script", E("domain", s("pаypal.com"))),
        44 => ("label-64", E("domain", Node::Str(format!("{}.com", "a".repeat(64))))),
        45 => ("name-254", E("domain", Node::Str(format!("{}.com", vec!["abcdefghi"; 25].join("."))))),
        46 => ("single-label", E("originHostName", s("localhost"))),
        47 => ("url-no-scheme", E("url", s("evil-noscheme.com/path?q=1"))),
        48 => ("url-defanged", E("url", s("hxxp://evil-defanged[.]com"))),
        49 => ("url-userinfo", E("url", s("https://user:pass@evil-userinfo.com/"))),
        50 => ("url-100k-query", E("url", Node::Str(format!("https://longquery.com/?q={}", "x".repeat(100 * 1024))))),
        51 => ("url-javascript", E("url", s("javascript:alert(1)"))),
        52 => ("url-file", E("url", s("file:///etc/passwd"))),
        53 => ("upper-md5", E("logMessage", s("dropped file md5=D41D8CD98F00B204E9800998ECF8427E sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))),
        54 => ("two-cves-and-short", E("cve", s("CVE-2021-44228 CVE-2022-22965 CVE-21-1"))),
        55 => ("deep-nesting", E("vendorInfo", Node::Raw(deep_nesting()))),
        56 => ("huge-number", E("bytesIn", Node::Raw(b"1e99999".to_vec()))),
        57 => ("duplicate-keys", E("__duplicate__", s("8.8.4.4"))),
        58 => ("bad-dates", E("logDate", s("2021-13-45T99:99:99"))),
        59 => ("misspelled-wrapper", Place::Body(BodyKind::MisspelledWrapper)),
        60 => ("null-events", Place::Body(BodyKind::NullList)),
        61 => ("html-200", Place::Body(BodyKind::Html200)),
        _ => ("text-plain-json", Place::Body(BodyKind::TextPlainJson)),
    }
}

fn ten_thousand_ips() -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(10_000);
    (0..10_000)
        .map(|_| public_v4(&mut rng))
        .collect::<Vec<_>>()
        .join(",")
}

fn deep_nesting() -> Vec<u8> {
    let mut v = vec![b'['; 10_000];
    v.extend(std::iter::repeat_n(b']', 10_000));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn params(scenario: Scenario) -> GenParams {
        GenParams {
            seed: 7,
            scenario,
            hours: 4,
            alarms_per_hour: 30,
            end: Utc.with_ymd_and_hms(2024, 5, 14, 12, 0, 0).unwrap(),
            events_per_alarm: 1,
        }
    }

    #[test]
    fn ids_ascend_with_time_inside_window() {
        let p = params(Scenario::Default);
        let a = generate(&p);
        assert_eq!(a.len(), 120);
        for w in a.windows(2) {
            assert!(w[0].date_inserted <= w[1].date_inserted && w[0].id < w[1].id);
        }
        assert!(a
            .iter()
            .all(|x| x.date_inserted >= window_start(&p) && x.date_inserted < p.end));
    }

    #[test]
    fn every_event_has_all_103_fields_in_order() {
        let a = generate(&params(Scenario::Default));
        for e in events(&a[0]) {
            let Node::Obj(pairs) = e else {
                panic!("not an object")
            };
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, EVENT_FIELDS.to_vec());
        }
    }

    #[test]
    fn public_addresses_are_global_and_not_documentation() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2000 {
            let v4: Ipv4Addr = public_v4(&mut rng).parse().unwrap();
            let o = v4.octets();
            assert!(
                !v4.is_private()
                    && !v4.is_loopback()
                    && !v4.is_link_local()
                    && !v4.is_documentation()
            );
            assert!(!(o[0] == 100 && (64..128).contains(&o[1])) && o[0] < 224 && o[0] != 0);
            let v6: Ipv6Addr = public_v6(&mut rng).parse().unwrap();
            assert!(
                v6.segments()[0] & 0xe000 == 0x2000,
                "{v6} is global unicast"
            );
            assert!(!(v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8));
        }
    }

    #[test]
    fn hostile_items_all_have_distinct_names() {
        let names: std::collections::BTreeSet<&str> =
            (0..hostile_len()).map(|i| hostile_item(i).0).collect();
        assert_eq!(names.len(), hostile_len());
        for i in 0..hostile_len() {
            let alarm_level =
                matches!(hostile_item(i).1, Place::RuleName(_) | Place::EntityName(_));
            assert_eq!(alarm_level, HOSTILE_ALARM_LEVEL.contains(&i), "item {i}");
        }
    }
}
