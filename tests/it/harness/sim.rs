//! The simulator side of the tests: an in-process simulator on 127.0.0.1 (on the
//! test's runtime or, for blocking tests, on its own), plain and admin requests to
//! it, and a trap listener that never answers.

use chrono::{DateTime, TimeZone, Utc};
use lrci::sim::{self, RunningSim, SimConfig};
use serde_json::Value;
use std::net::TcpListener;

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

/// `GET {url}{path}` with the default LogRhythm key: the response, or the
/// transport error (for fault tests that expect one).
pub async fn lr_send(sim: &TestSim, path: &str) -> reqwest::Result<reqwest::Response> {
    sim.http
        .get(format!("{}{path}", sim.url()))
        .bearer_auth(sim::DEFAULT_LR_KEY)
        .send()
        .await
}

/// `GET {url}{path}` with the default LogRhythm key; returns status and raw body.
pub async fn lr_get(sim: &TestSim, path: &str) -> (u16, Vec<u8>) {
    let r = lr_send(sim, path).await.unwrap();
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

/// `POST {sim}{path}` with a JSON body; returns the status and the JSON answer
/// (`null` when the body is not JSON), for tests of refused admin requests.
pub async fn admin_post_status(sim: &TestSim, path: &str, body: Value) -> (u16, Value) {
    let r = sim
        .http
        .post(format!("{}{path}", sim.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST {sim}{path}` with a JSON body; asserts success and returns the JSON answer.
pub async fn admin_post(sim: &TestSim, path: &str, body: Value) -> Value {
    let (status, v) = admin_post_status(sim, path, body).await;
    assert!((200..300).contains(&status), "POST {path}: {status}");
    v
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

/// A small simulator: 3 hours of 4 alarms with 2 events each, ending now.
pub fn small_config() -> SimConfig {
    SimConfig {
        hours: 3,
        alarms_per_hour: 4,
        events_per_alarm: 2,
        ..SimConfig::default()
    }
}

/// A simulator running in this test process on its own runtime, for tests that
/// are not async (they run `lrci` with `assert_cmd`).
pub struct SyncSim {
    rt: tokio::runtime::Runtime,
    sim: Option<RunningSim>,
}

impl SyncSim {
    pub fn start(cfg: SimConfig) -> SyncSim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt.block_on(sim::start(cfg)).unwrap();
        SyncSim { rt, sim: Some(sim) }
    }

    pub fn url(&self) -> String {
        self.sim.as_ref().unwrap().url()
    }

    /// Runs a future (a request to the simulator) on the simulator's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// `GET {url}{path}` as JSON (admin routes need no key).
    pub fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.url());
        self.block_on(async {
            reqwest::get(url)
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    /// The detections the simulated CI stored.
    pub fn received(&self) -> Vec<Value> {
        self.get("/_sim/received").as_array().unwrap().clone()
    }
}

impl Drop for SyncSim {
    fn drop(&mut self) {
        if let Some(s) = self.sim.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

/// A loopback listener that never answers; it counts who connected. Connections
/// wait in the kernel's backlog, so counting after the run sees all of them.
pub struct Trap {
    listener: TcpListener,
}

impl Trap {
    pub fn new() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Trap { listener }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// Connections made so far (each counted once).
    pub fn connections(&self) -> usize {
        let mut n = 0;
        loop {
            match self.listener.accept() {
                Ok(_) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return n,
                Err(e) => panic!("accept on the trap failed: {e}"),
            }
        }
    }
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
