//! The simulator's admin routes, fault injection, latency, and the real `lrci sim`
//! binary (first stdout line, clean SIGTERM exit, loopback-only listen).

use crate::harness::*;
use lrci::sim::{self, SimConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIST: &str = "/lr-alarm-api/alarms";

fn detection(value: &str) -> Value {
    json!({
        "timestamp": "2024-05-14T11:00:00Z",
        "ioc": {"type": "ip", "value": value, "source_type": "logrhythm", "field": "originIP"},
        "incident": {"id": "1001", "name": "1001: Recorded Future: Risk List Match - IP", "type": "logrhythm-alarm"},
        "detection": {"name": "Recorded Future: Risk List Match - IP", "type": "correlation"}
    })
}

async fn post_detections(sim: &TestSim, items: Vec<Value>) -> reqwest::Result<reqwest::Response> {
    sim.http
        .post(format!("{}/collective-insights/detections", sim.url()))
        .header("X-RFToken", sim::DEFAULT_RF_KEY)
        .json(&json!({"data": items, "options": {"debug": false, "summary": true}}))
        .send()
        .await
}

async fn queue(sim: &TestSim, side: &str, kind: &str, count: usize) {
    let (s, _) = admin_post_status(
        sim,
        "/_sim/faults",
        json!({"side": side, "kind": kind, "count": count, "retry_after": 7}),
    )
    .await;
    assert_eq!(s, 200);
}

// ---- admin ---------------------------------------------------------------------------

#[tokio::test]
async fn stats_count_requests_per_route_pattern() {
    let sim = start(config()).await;
    lr_get(&sim, &format!("{LIST}?count=1")).await;
    lr_get(&sim, &format!("{LIST}?count=2")).await;
    lr_get(&sim, "/lr-alarm-api/alarms/1001/events").await;
    lr_get(&sim, "/lr-alarm-api/alarms/1002/events").await;
    lr_get(&sim, "/lr-alarm-api/alarms/1003").await;
    post_detections(&sim, vec![detection("8.8.8.8")])
        .await
        .unwrap();
    admin_get(&sim, "/_sim/alarms").await;
    let s = admin_get(&sim, "/_sim/stats").await;
    assert_eq!(s["requests"]["GET /lr-alarm-api/alarms"], 2);
    assert_eq!(s["requests"]["GET /lr-alarm-api/alarms/{id}/events"], 2);
    assert_eq!(s["requests"]["GET /lr-alarm-api/alarms/{id}"], 1);
    assert_eq!(s["requests"]["POST /collective-insights/detections"], 1);
    assert_eq!(
        s["requests"].as_object().unwrap().len(),
        4,
        "admin routes are not counted: {s}"
    );
    assert_eq!(s["faults"], json!({}));
}

#[tokio::test]
async fn received_lists_stored_items_exactly_as_posted() {
    let sim = start(config()).await;
    let items = vec![detection("8.8.8.8"), detection("1.1.1.1")];
    let r = post_detections(&sim, items.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let got = admin_get(&sim, "/_sim/received").await;
    assert_eq!(got, Value::Array(items));
}

#[tokio::test]
async fn reset_clears_received_and_stats() {
    let sim = start(config()).await;
    post_detections(&sim, vec![detection("8.8.8.8")])
        .await
        .unwrap();
    lr_get(&sim, LIST).await;
    let (s, _) = admin_post_status(&sim, "/_sim/reset", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(admin_get(&sim, "/_sim/received").await, json!([]));
    assert_eq!(
        admin_get(&sim, "/_sim/stats").await,
        json!({"requests": {}, "faults": {}, "lr_in_flight": {"peak": 0, "arrivals": {}}})
    );
    // Alarms are not touched by a reset.
    assert_eq!(truth(&sim).await.len(), 240);
}

#[tokio::test]
async fn ground_truth_has_the_five_fields_and_the_marks() {
    let sim = start(config()).await;
    let t = truth(&sim).await;
    for a in &t {
        let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "alarmId",
                "alarmRuleName",
                "dateInserted",
                "details",
                "events",
                "heldBack",
                "organisationValues"
            ]
        );
        assert_eq!(a["details"]["alarmId"], a["alarmId"]);
    }
    let ids: Vec<i64> = t.iter().map(|a| a["alarmId"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1001..=1240).collect::<Vec<_>>());
}

#[tokio::test]
async fn generate_adds_alarms_with_continuing_ids_at_the_end() {
    let sim = start(config()).await;
    let (s, v) = admin_post_status(
        &sim,
        "/_sim/generate",
        json!({"count": 3, "at": "2024-05-14T12:30:00Z"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["alarmIds"], json!([1241, 1242, 1243]));
    let (_, page) = lr_json(
        &sim,
        &format!("{LIST}?dateInserted=2024-05-14T12:30:00&orderby=DateInserted&dir=ascending"),
    )
    .await;
    assert_eq!(ids(&page), vec![1241, 1242, 1243]);
    assert_eq!(rows(&page)[0]["dateInserted"], "2024-05-14T12:30:00");
    assert_eq!(rows(&page)[1]["dateInserted"], "2024-05-14T12:30:00.01");
    // Deterministic: another simulator with the same seed generates the same alarms.
    let other = start(config()).await;
    admin_post_status(
        &other,
        "/_sim/generate",
        json!({"count": 3, "at": "2024-05-14T12:30:00Z"}),
    )
    .await;
    let (_, a) = lr_get(&sim, "/lr-alarm-api/alarms/1242/events").await;
    let (_, b) = lr_get(&other, "/lr-alarm-api/alarms/1242/events").await;
    assert_eq!(a, b);
    let (s, _) = admin_post_status(
        &sim,
        "/_sim/generate",
        json!({"count": 1, "at": "not a time"}),
    )
    .await;
    assert_eq!(s, 400);
}

// ---- queued faults -------------------------------------------------------------------

#[tokio::test]
async fn queued_lr_faults_hit_the_next_requests_then_stop() {
    let sim = start(config()).await;
    queue(&sim, "lr", "503", 2).await;
    assert_eq!(lr_get(&sim, LIST).await.0, 503);
    assert_eq!(lr_get(&sim, "/lr-alarm-api/alarms/1001").await.0, 503);
    assert_eq!(lr_get(&sim, LIST).await.0, 200);
    let s = admin_get(&sim, "/_sim/stats").await;
    assert_eq!(s["faults"]["503"], 2);
}

#[tokio::test]
async fn queued_429_carries_retry_after() {
    let sim = start(config()).await;
    queue(&sim, "lr", "429", 1).await;
    let r = lr_send(&sim, LIST).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
}

#[tokio::test]
async fn queued_html_fault_is_a_502_page() {
    let sim = start(config()).await;
    queue(&sim, "lr", "html", 1).await;
    let r = lr_send(&sim, LIST).await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<html>"));
}

#[tokio::test]
async fn queued_faults_apply_only_after_auth() {
    let sim = start(config()).await;
    queue(&sim, "lr", "500", 1).await;
    let r = sim
        .http
        .get(format!("{}{LIST}", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "an unauthenticated request does not take the fault"
    );
    assert_eq!(lr_get(&sim, LIST).await.0, 500);
}

#[tokio::test]
async fn queued_drop_breaks_the_connection() {
    let sim = start(config()).await;
    queue(&sim, "lr", "drop", 1).await;
    let r = lr_send(&sim, LIST).await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the client must not get a complete response");
    assert_eq!(
        lr_get(&sim, LIST).await.0,
        200,
        "the next request is served"
    );
}

#[tokio::test]
async fn queued_slow_fault_answers_late() {
    let sim = start(SimConfig {
        slow: Duration::from_millis(600),
        ..config()
    })
    .await;
    queue(&sim, "lr", "slow", 1).await;
    let t = Instant::now();
    let (s, _) = lr_get(&sim, LIST).await;
    assert_eq!(s, 200);
    assert!(t.elapsed() >= Duration::from_millis(600));
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    queue(&sim, "lr", "slow", 1).await;
    let r = quick
        .get(format!("{}{LIST}", sim.url()))
        .bearer_auth(sim::DEFAULT_LR_KEY)
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
}

#[tokio::test]
async fn store_then_drop_stores_but_the_client_sees_a_failure() {
    let sim = start(config()).await;
    queue(&sim, "rf", "store-then-drop", 1).await;
    let r = post_detections(&sim, vec![detection("9.9.9.9")]).await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed);
    assert_eq!(
        admin_get(&sim, "/_sim/received").await,
        json!([detection("9.9.9.9")])
    );
    assert_eq!(
        admin_get(&sim, "/_sim/stats").await["faults"]["store-then-drop"],
        1
    );
}

#[tokio::test]
async fn store_then_drop_is_refused_on_the_lr_side() {
    let sim = start(config()).await;
    let (s, _) = admin_post_status(
        &sim,
        "/_sim/faults",
        json!({"side": "lr", "kind": "store-then-drop", "count": 1}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = admin_post_status(
        &sim,
        "/_sim/faults",
        json!({"side": "lr", "kind": "teapot", "count": 1}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn delete_faults_clears_the_queue() {
    let sim = start(config()).await;
    queue(&sim, "lr", "500", 5).await;
    queue(&sim, "rf", "503", 5).await;
    let r = sim
        .http
        .delete(format!("{}/_sim/faults", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(lr_get(&sim, LIST).await.0, 200);
    assert_eq!(
        post_detections(&sim, vec![detection("8.8.8.8")])
            .await
            .unwrap()
            .status(),
        200
    );
}

// ---- random faults and latency ---------------------------------------------------------

async fn faulty_run(seed: u64) -> (Value, usize) {
    let sim = start(SimConfig {
        seed,
        fault_rate: 0.3,
        slow: Duration::from_millis(1),
        ..config()
    })
    .await;
    let mut failures = 0;
    for _ in 0..120 {
        let r = lr_send(&sim, &format!("{LIST}?count=1")).await;
        let ok = match r {
            Ok(resp) => resp.status() == 200 && resp.bytes().await.is_ok(),
            Err(_) => false,
        };
        if !ok {
            failures += 1;
        }
    }
    (
        admin_get(&sim, "/_sim/stats").await["faults"].clone(),
        failures,
    )
}

#[tokio::test]
async fn fault_rate_is_seeded_and_counted() {
    let (a, fa) = faulty_run(11).await;
    let (b, fb) = faulty_run(11).await;
    let (c, _) = faulty_run(12).await;
    assert_eq!(a, b, "same seed, same faults");
    assert_eq!(fa, fb);
    assert_ne!(a, c, "another seed, other faults");
    let total: u64 = a
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let slow = a["slow"].as_u64().unwrap_or(0);
    assert!((15..=60).contains(&total), "about 30% of 120: {a}");
    assert_eq!(
        fa as u64,
        total - slow,
        "every fault but slow is a failed request: {a}"
    );
    assert!(a.as_object().unwrap().len() >= 5, "several kinds: {a}");
}

#[tokio::test]
async fn lr_latency_is_added_to_each_request() {
    let sim = start(SimConfig {
        lr_latency: Duration::from_millis(300),
        ..config()
    })
    .await;
    let t = Instant::now();
    assert_eq!(lr_get(&sim, LIST).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    admin_get(&sim, "/_sim/stats").await;
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "admin routes have no latency"
    );
}

// ---- library and binary ---------------------------------------------------------------

#[tokio::test]
async fn start_refuses_a_non_loopback_address() {
    let cfg = SimConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..config()
    };
    let err = sim::start(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[test]
fn binary_refuses_a_non_loopback_listen() {
    let out = Command::new(assert_cmd::cargo::cargo_bin("lrci"))
        .args(["sim", "--listen", "0.0.0.0:8080"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn binary_prints_its_url_first_and_exits_cleanly_on_sigterm() {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("lrci"))
        .args([
            "sim",
            "--hours",
            "2",
            "--alarms-per-hour",
            "10",
            "--seed",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a first line");
    let url = line
        .strip_prefix("lrci-sim listening on ")
        .and_then(|u| u.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with('/'));
    // It serves.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        client()
            .get(format!("{url}{LIST}"))
            .bearer_auth(sim::DEFAULT_LR_KEY)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
}

/// `/_sim/silent-drop`: a swallowed post answers 2xx with a result like a stored
/// one, stores nothing, and is listed by `/_sim/dropped`; a rate outside 0–1 is
/// refused; reset forgets what was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_drop_answers_like_a_store_and_keeps_nothing() {
    let sim = start(config()).await;
    for bad in [
        json!({"rate": 1.5}),
        json!({"rate": -0.1}),
        json!({"rate": "x"}),
    ] {
        let (status, _) = admin_post_status(&sim, "/_sim/silent-drop", bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
    }
    admin_post(&sim, "/_sim/silent-drop", json!({"rate": 1.0})).await;
    let r = post_detections(&sim, vec![detection("8.8.8.8"), detection("8.8.4.4")])
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["status"], "ok", "{body}");
    assert_eq!(body["result"]["summary"]["processed"]["ip"], 2, "{body}");
    assert!(received(&sim).await.is_empty());
    let dropped = admin_get(&sim, "/_sim/dropped").await;
    assert_eq!(dropped.as_array().unwrap().len(), 2, "{dropped}");
    assert_eq!(dropped[0]["ioc"]["value"], "8.8.8.8");

    admin_post(&sim, "/_sim/silent-drop", json!({"rate": 0.0})).await;
    post_detections(&sim, vec![detection("1.1.1.1")])
        .await
        .unwrap();
    assert_eq!(received(&sim).await.len(), 1);
    admin_post(&sim, "/_sim/reset", json!({})).await;
    assert_eq!(admin_get(&sim, "/_sim/dropped").await, json!([]));
}
