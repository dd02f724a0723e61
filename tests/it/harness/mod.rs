//! Helpers shared by the simulator and whole-flow integration tests: start an
//! in-process simulator on 127.0.0.1, make authenticated and admin requests, run
//! the real `lrci` binary against it with a clean environment, read the ledger
//! read-only, and the independent oracle of what a correct agent sends.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use lrci::sim::{self, RunningSim, SimConfig};
use serde_json::Value;

/// The fixed end of the generated window used by the tests.
pub fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 14, 12, 0, 0).unwrap()
}

/// A small, fixed configuration: 4 hours × 60 alarms ending at [`end`].
pub fn config() -> SimConfig {
    SimConfig {
        hours: 4,
        alarms_per_hour: 60,
        end: Some(end()),
        lr_low_priv_key: Some("low-priv-key".into()),
        ..SimConfig::default()
    }
}

/// A running simulator plus one HTTP client for it (building a reqwest client is
/// slow in debug builds, so tests reuse this one).
pub struct TestSim {
    pub sim: RunningSim,
    pub http: reqwest::Client,
}

impl std::ops::Deref for TestSim {
    type Target = RunningSim;
    fn deref(&self) -> &RunningSim {
        &self.sim
    }
}

pub async fn start(cfg: SimConfig) -> TestSim {
    TestSim {
        sim: sim::start(cfg).await.expect("simulator starts"),
        http: client(),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `GET {url}{path}` with the default LogRhythm key; returns status and raw body.
pub async fn lr_get(sim: &TestSim, path: &str) -> (u16, Vec<u8>) {
    let r = sim
        .http
        .get(format!("{}{path}", sim.url()))
        .bearer_auth(sim::DEFAULT_LR_KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

/// Like [`lr_get`] but parses the body as JSON.
pub async fn lr_json(sim: &TestSim, path: &str) -> (u16, Value) {
    let (s, b) = lr_get(sim, path).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// The rows of a list page (`[]` for a null list).
pub fn rows(v: &Value) -> Vec<Value> {
    v["alarmsSearchDetails"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The `alarmId`s of a list page.
pub fn ids(v: &Value) -> Vec<i64> {
    rows(v)
        .iter()
        .map(|r| r["alarmId"].as_i64().unwrap())
        .collect()
}

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

/// Keys of a JSON object in document order, read from the raw text (serde_json's
/// `Value` sorts keys, so order must be checked on the bytes).
pub fn keys_in_order(raw: &[u8], object_path: &[&str]) -> Vec<String> {
    let text = std::str::from_utf8(raw).unwrap();
    let mut de = serde_json::Deserializer::from_str(text);
    let v: OrderedValue = serde::Deserialize::deserialize(&mut de).unwrap();
    let mut cur = &v;
    for p in object_path {
        cur = match cur {
            OrderedValue::Obj(pairs) => &pairs.iter().find(|(k, _)| k == p).unwrap().1,
            OrderedValue::Arr(items) => &items[p.parse::<usize>().unwrap()],
            OrderedValue::Other => panic!("no {p}"),
        };
    }
    match cur {
        OrderedValue::Obj(pairs) => pairs.iter().map(|(k, _)| k.clone()).collect(),
        _ => panic!("not an object"),
    }
}

/// A JSON value that keeps object key order.
#[derive(Debug)]
pub enum OrderedValue {
    Obj(Vec<(String, OrderedValue)>),
    Arr(Vec<OrderedValue>),
    Other,
}

impl<'de> serde::Deserialize<'de> for OrderedValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("json")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<OrderedValue, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, OrderedValue>()? {
                    out.push((k, v));
                }
                Ok(OrderedValue::Obj(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<OrderedValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<OrderedValue>()? {
                    out.push(v);
                }
                Ok(OrderedValue::Arr(out))
            }
            fn visit_bool<E>(self, _: bool) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_unit<E>(self) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------
// Whole-flow helpers: run the real `lrci` binary against an in-process simulator.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// A simulator over the last `hours` hours ending now (the binary's window is
/// relative to the wall clock), with the other knobs at their defaults.
pub fn live_config(hours: u32, alarms_per_hour: u32) -> SimConfig {
    SimConfig {
        hours,
        alarms_per_hour,
        end: None,
        ..SimConfig::default()
    }
}

/// Where one whole-flow test keeps its ledger, logs and input files.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The ledger file (`LRCI_LEDGER`).
    pub fn ledger(&self) -> PathBuf {
        self.dir.path().join("ledger.sqlite3")
    }

    /// The log directory (`LRCI_LOG_DIR`).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Writes `contents` to `name` in the home and returns its path as text.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Every byte of every file under the home (ledger, WAL, logs, lock), for
    /// secret scans.
    pub fn all_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    let b = std::fs::read(&p).unwrap();
                    out.push((p, b));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

/// The credentials a run is given.
#[derive(Clone)]
pub struct Keys {
    pub lr: String,
    pub rf: String,
}

impl Keys {
    /// The simulator's valid keys.
    pub fn of(sim: &TestSim) -> Keys {
        Keys {
            lr: sim.state().config().lr_key.clone(),
            rf: sim.state().config().rf_key.clone(),
        }
    }
}

/// What one `lrci` process did.
#[derive(Debug)]
pub struct LrciRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl LrciRun {
    /// The `--json` summary: the last non-empty stdout line, parsed.
    pub fn summary(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no stdout; stderr:\n{}", self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "summary is not JSON ({e}): {line}\nstderr:\n{}",
                self.stderr
            )
        })
    }

    /// Panics with the output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &LrciRun {
        assert_eq!(
            self.code,
            code,
            "exit code; stdout:\n{}\nstderr (tail):\n{}",
            self.stdout,
            tail(&self.stderr, 40)
        );
        self
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The `lrci` binary with a clean environment pointing both APIs at the simulator,
/// the ledger and logs into `home`, and `args`.
pub fn lrci_command(
    sim: &TestSim,
    home: &Home,
    keys: &Keys,
    args: &[&str],
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"));
    c.env_clear()
        .env("LOGRHYTHM_API_URL", sim.url())
        .env("RF_API_URL", sim.url())
        .env("LOGRHYTHM_API_KEY", &keys.lr)
        .env("RF_API_KEY", &keys.rf)
        .env("LRCI_LEDGER", home.ledger())
        .env("LRCI_LOG_DIR", home.log_dir())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Waits for a spawned `lrci` (at most two minutes).
pub async fn finish(child: tokio::process::Child) -> LrciRun {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("lrci finishes within two minutes")
    .unwrap();
    LrciRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `lrci ARGS` with the simulator's valid keys and waits for it.
pub async fn lrci(sim: &TestSim, home: &Home, args: &[&str]) -> LrciRun {
    lrci_with(sim, home, &Keys::of(sim), args).await
}

/// Runs `lrci ARGS` with the given keys and waits for it.
pub async fn lrci_with(sim: &TestSim, home: &Home, keys: &Keys, args: &[&str]) -> LrciRun {
    finish(lrci_command(sim, home, keys, args).spawn().unwrap()).await
}

/// `GET {sim}{path}` as JSON (admin routes need no key).
pub async fn admin_get(sim: &TestSim, path: &str) -> Value {
    let r = sim
        .http
        .get(format!("{}{path}", sim.url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

/// `POST {sim}{path}` with a JSON body; returns the JSON answer.
pub async fn admin_post(sim: &TestSim, path: &str, body: Value) -> Value {
    let r = sim
        .http
        .post(format!("{}{path}", sim.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

/// `DELETE {sim}/_sim/faults`.
pub async fn clear_faults(sim: &TestSim) {
    let r = sim
        .http
        .delete(format!("{}/_sim/faults", sim.url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Every detection item CI stored.
pub async fn received(sim: &TestSim) -> Vec<Value> {
    admin_get(sim, "/_sim/received")
        .await
        .as_array()
        .cloned()
        .unwrap()
}

/// Request count of one route (`"GET /lr-alarm-api/alarms/{id}/events"`) in `stats`.
pub fn route_count(stats: &Value, route: &str) -> u64 {
    stats["requests"][route].as_u64().unwrap_or(0)
}

/// The list, details and events routes, as `/_sim/stats` names them.
pub const LIST_ROUTE: &str = "GET /lr-alarm-api/alarms";
pub const DETAILS_ROUTE: &str = "GET /lr-alarm-api/alarms/{id}";
pub const EVENTS_ROUTE: &str = "GET /lr-alarm-api/alarms/{id}/events";
pub const CI_ROUTE: &str = "POST /collective-insights/detections";

/// `(incident.id, ioc.type, ioc.value)` of a received item.
pub fn received_key(item: &Value) -> (i64, String, String) {
    (
        item["incident"]["id"].as_str().unwrap().parse().unwrap(),
        item["ioc"]["type"].as_str().unwrap().to_string(),
        item["ioc"]["value"].as_str().unwrap().to_string(),
    )
}

/// Opens the ledger read-only (never creates, never migrates).
pub fn ledger_ro(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Alarm ids in the ledger.
pub fn ledger_alarm_ids(path: &Path) -> BTreeSet<i64> {
    let c = ledger_ro(path);
    let mut st = c.prepare("SELECT alarm_id FROM alarms").unwrap();
    st.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Detection count per state in the ledger.
pub fn ledger_states(path: &Path) -> std::collections::BTreeMap<String, i64> {
    let c = ledger_ro(path);
    let mut st = c
        .prepare("SELECT state, count(*) FROM detections GROUP BY state")
        .unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
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

/// If the wall clock is within `margin` of the next UTC hour, sleeps past it, so a
/// test that runs several syncs within `margin` sees one open hour throughout.
pub async fn avoid_hour_boundary(margin: std::time::Duration) {
    use chrono::Timelike;
    let now = Utc::now();
    let into_hour = std::time::Duration::from_millis(
        u64::from(now.minute()) * 60_000
            + u64::from(now.second()) * 1000
            + u64::from(now.timestamp_subsec_millis()),
    );
    let hour = std::time::Duration::from_secs(3600);
    if into_hour + margin >= hour {
        tokio::time::sleep(hour - into_hour + std::time::Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------------------------
// The oracle: what a correct agent sends for an alarm, computed from the ground
// truth without lrci's extraction or policy code. Deliberately simple: it only has
// to be right for what the generator produces (see src/sim/gen.rs).

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

/// The public indicators of one ground-truth alarm, as `(type, value)`.
pub fn oracle_indicators(alarm: &Value, extra_internal: &[&str]) -> BTreeSet<(String, String)> {
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
