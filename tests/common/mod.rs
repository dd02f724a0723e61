//! Helpers shared by the simulator integration tests: start an in-process
//! simulator on 127.0.0.1 with a fixed window, and make authenticated requests.
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
