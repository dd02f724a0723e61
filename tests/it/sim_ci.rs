//! The simulated Collective Insights API over real HTTP on 127.0.0.1: one test per
//! behaviour of spec `collective-insights-api.md` §10 that `lrci::sim::ci` promises.

use chrono::{DateTime, TimeZone, Utc};
use lrci::sim::ci::{CiOptions, CiSim, DEFAULT_TOKEN};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const NO_CI_TOKEN: &str = "ffffffffffffffffffffffffffffffff";

struct Sim {
    base: String,
    sim: Arc<CiSim>,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn start(opts: CiOptions) -> Sim {
    let sim = Arc::new(CiSim::new(opts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Arc::clone(&sim).router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Sim {
        base: format!("http://{addr}"),
        sim,
        http: reqwest::Client::new(),
    }
}

async fn start_default() -> Sim {
    start(CiOptions {
        no_ci_tokens: vec![NO_CI_TOKEN.to_owned()],
        ..CiOptions::default()
    })
    .await
}

impl Sim {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.header("X-RFToken", token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        assert_eq!(
            headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{status} {path}: {text}"
        );
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn submit(&self, body: &Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            "/collective-insights/detections",
            Some(DEFAULT_TOKEN),
            &body.to_string(),
        )
        .await
    }

    async fn search(&self, body: &Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            "/collective-insights/search",
            Some(DEFAULT_TOKEN),
            &body.to_string(),
        )
        .await
    }
}

fn detection(ioc_type: &str, value: &str) -> Value {
    json!({
        "timestamp": "2025-03-14T09:26:53Z",
        "ioc": {"type": ioc_type, "value": value, "field": "originIP", "source_type": "LogRhythm"},
        "incident": {"id": "104233", "name": "AIE: risky IP", "type": "logrhythm-alarm"},
        "detection": {"type": "correlation", "name": "AIE: risky IP"}
    })
}

fn batch(items: Vec<Value>, debug: bool) -> Value {
    json!({"options": {"debug": debug, "summary": true}, "data": items})
}

fn ips(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| detection("ip", &format!("203.0.113.{i}")))
        .collect()
}

fn assert_error_body(reply: &Reply, status: u16) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(reply.body["status_code"], json!(status), "{}", reply.body);
    assert!(reply.body["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let trace = reply.body["trace_id"].as_str().unwrap();
    let groups: Vec<usize> = trace.split('-').map(str::len).collect();
    assert_eq!(groups, vec![8, 4, 4, 4, 12], "{trace}");
}

/// A clock the test can move; the sim reads it through `set_clock`.
fn settable_clock(sim: &CiSim, start: DateTime<Utc>) -> Arc<Mutex<DateTime<Utc>>> {
    let now = Arc::new(Mutex::new(start));
    let read = Arc::clone(&now);
    sim.set_clock(move || *read.lock().unwrap());
    now
}

#[tokio::test]
async fn missing_empty_or_unknown_token_is_401() {
    let s = start_default().await;
    let body = batch(ips(1), false).to_string();
    for token in [None, Some(""), Some("00000000000000000000000000000000")] {
        let reply = s
            .send(
                reqwest::Method::POST,
                "/collective-insights/detections",
                token,
                &body,
            )
            .await;
        assert_error_body(&reply, 401);
    }
    assert!(s.sim.received().is_empty());
}

#[tokio::test]
async fn token_without_ci_permission_is_403() {
    let s = start_default().await;
    let reply = s
        .send(
            reqwest::Method::POST,
            "/collective-insights/detections",
            Some(NO_CI_TOKEN),
            &batch(ips(1), false).to_string(),
        )
        .await;
    assert_error_body(&reply, 403);
    let search = s
        .send(
            reqwest::Method::POST,
            "/collective-insights/search",
            Some(NO_CI_TOKEN),
            "{}",
        )
        .await;
    assert_error_body(&search, 403);
    assert!(s.sim.received().is_empty());
}

#[tokio::test]
async fn auth_is_checked_before_body_validation() {
    let s = start_default().await;
    let path = "/collective-insights/detections";
    let garbage = "this is not json";
    let unknown = s
        .send(reqwest::Method::POST, path, Some("nope"), garbage)
        .await;
    assert_error_body(&unknown, 401);
    let no_ci = s
        .send(reqwest::Method::POST, path, Some(NO_CI_TOKEN), garbage)
        .await;
    assert_error_body(&no_ci, 403);
    let valid = s
        .send(reqwest::Method::POST, path, Some(DEFAULT_TOKEN), garbage)
        .await;
    assert_error_body(&valid, 400);
}

#[tokio::test]
async fn each_validation_rule_gives_400_naming_the_problem() {
    let s = start_default().await;
    let ok = detection("ip", "203.0.113.5");
    let with = |patch: &dyn Fn(&mut Value)| {
        let mut item = ok.clone();
        patch(&mut item);
        json!({"options": {"debug": false}, "data": [ok.clone(), item]})
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "body: must be a JSON object"),
        (json!({"options": {}}), "data: missing"),
        (json!({"data": []}), "data: must not be empty"),
        (json!({"data": {"ioc": {}}}), "data: must be a list"),
        (
            json!({"data": [ok.clone(), "x"]}),
            "data[1]: must be an object",
        ),
        (
            with(&|i| drop(i.as_object_mut().unwrap().remove("ioc"))),
            "data[1].ioc: missing",
        ),
        (
            with(&|i| drop(i["ioc"].as_object_mut().unwrap().remove("type"))),
            "data[1].ioc.type: missing",
        ),
        (
            with(&|i| drop(i["ioc"].as_object_mut().unwrap().remove("value"))),
            "data[1].ioc.value: missing",
        ),
        (
            with(&|i| i["ioc"]["value"] = json!("")),
            "data[1].ioc.value: must not be empty",
        ),
        (
            with(&|i| i["ioc"]["value"] = json!(167772161)),
            "data[1].ioc.value: must be a string",
        ),
        (
            with(&|i| i["ioc"]["type"] = json!("ipv4")),
            "data[1].ioc.type: unknown type \"ipv4\"",
        ),
        (
            with(&|i| i["ioc"]["value"] = json!("1.2.3.256")),
            "data[1].ioc.value: \"1.2.3.256\" is not an IP address",
        ),
        (
            with(&|i| i["ioc"] = json!({"type": "vulnerability", "value": "CVE-21-1"})),
            "data[1].ioc.value: \"CVE-21-1\" is not a CVE id",
        ),
        (
            with(&|i| drop(i.as_object_mut().unwrap().remove("detection"))),
            "data[1].detection: missing",
        ),
        (
            with(&|i| drop(i["detection"].as_object_mut().unwrap().remove("type"))),
            "data[1].detection.type: missing",
        ),
        (
            with(&|i| i["detection"]["type"] = json!("threat_hunt")),
            "data[1].detection.type: unknown type \"threat_hunt\"",
        ),
        (
            with(&|i| i["detection"] = json!({"type": "detection_rule", "id": "doc:x"})),
            "data[1].detection.sub_type: required when type is \"detection_rule\"",
        ),
        (
            with(&|i| i["detection"] = json!({"type": "detection_rule", "sub_type": "sigma"})),
            "data[1].detection.id: required when type is \"detection_rule\"",
        ),
        (
            with(&|i| {
                i["detection"] =
                    json!({"type": "detection_rule", "sub_type": "clamav", "id": "doc:x"})
            }),
            "data[1].detection.sub_type: unknown sub_type \"clamav\"",
        ),
        (
            with(&|i| i["timestamp"] = json!("2021-13-45T99:99:99")),
            "data[1].timestamp: cannot parse",
        ),
        (
            with(&|i| i["timestamp"] = json!(1710408413)),
            "data[1].timestamp: must be a string",
        ),
        (
            with(&|i| i["mitre_codes"] = json!("T1071")),
            "data[1].mitre_codes: must be a list of strings",
        ),
        (
            with(&|i| i["malwares"] = json!(["Emotet", 7])),
            "data[1].malwares[1]: must be a string",
        ),
        (
            with(&|i| i["incident"] = json!("INC-1")),
            "data[1].incident: must be an object",
        ),
        (
            json!({"organization_ids": "uhash:abc", "data": [ok.clone()]}),
            "organization_ids: must be a list of strings",
        ),
        (
            json!({"options": {"debug": "false"}, "data": [ok.clone()]}),
            "options.debug: must be a boolean",
        ),
        (
            json!({"options": {"summary": 1}, "data": [ok.clone()]}),
            "options.summary: must be a boolean",
        ),
        (
            json!({"options": [], "data": [ok.clone()]}),
            "options: must be an object",
        ),
    ];
    for (body, expected) in cases {
        let reply = s.submit(&body).await;
        assert_error_body(&reply, 400);
        let message = reply.body["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
    let not_json = s
        .send(
            reqwest::Method::POST,
            "/collective-insights/detections",
            Some(DEFAULT_TOKEN),
            "{\"data\": [",
        )
        .await;
    assert_error_body(&not_json, 400);
    assert!(not_json.body["message"]
        .as_str()
        .unwrap()
        .starts_with("request body is not valid JSON: "));
    assert!(
        s.sim.received().is_empty(),
        "a rejected request stored something"
    );
}

#[tokio::test]
async fn validation_applies_to_debug_submissions_too() {
    let s = start_default().await;
    let mut bad = detection("ip", "203.0.113.5");
    bad["ioc"]["type"] = json!("ipv4");
    let reply = s.submit(&batch(vec![bad], true)).await;
    assert_error_body(&reply, 400);
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("data[0].ioc.type"));
}

#[tokio::test]
async fn timestamps_accepted_forms_and_strict_mode() {
    let s = start_default().await;
    let forms = [
        "2025-03-14T09:26:53Z",
        "2025-03-14T09:26:53.123Z",
        "2025-03-14T09:26:53.123000Z",
        "2025-03-14T11:26:53+02:00",
        "2025-03-14T09:26:53",
    ];
    for form in forms {
        let mut item = detection("ip", "203.0.113.5");
        item["timestamp"] = json!(form);
        assert_eq!(
            s.submit(&batch(vec![item], false)).await.status,
            200,
            "{form}"
        );
    }
    let mut no_timestamp = detection("ip", "203.0.113.5");
    no_timestamp.as_object_mut().unwrap().remove("timestamp");
    assert_eq!(
        s.submit(&batch(vec![no_timestamp], false)).await.status,
        200
    );

    let strict = start(CiOptions {
        strict_timestamps: true,
        ..CiOptions::default()
    })
    .await;
    let mut zoneless = detection("ip", "203.0.113.5");
    zoneless["timestamp"] = json!("2025-03-14T09:26:53");
    let reply = strict.submit(&batch(vec![zoneless], false)).await;
    assert_error_body(&reply, 400);
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("data[0].timestamp"));
    let mut zoned = detection("ip", "203.0.113.5");
    zoned["timestamp"] = json!("2025-03-14T09:26:53Z");
    assert_eq!(strict.submit(&batch(vec![zoned], false)).await.status, 200);
}

#[tokio::test]
async fn success_body_has_status_debug_and_all_five_counters() {
    let s = start_default().await;
    let reply = s
        .submit(&batch(vec![detection("domain", "evil.example")], false))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({"result": {"status": "ok", "debug": false, "summary": {"processed":
            {"ip": 0, "domain": 1, "hash": 0, "vulnerability": 0, "url": 0}}}})
    );
    let all = vec![
        detection("ip", "203.0.113.45"),
        detection("ip", "2001:db8::1"),
        detection("domain", "login-portal.example.com"),
        detection(
            "hash",
            "9f2b5c0e1d4a7b3c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
        ),
        detection("url", "https://downloads.example.com/invoice-0314.zip"),
        detection("vulnerability", "CVE-2099-12345"),
    ];
    let reply = s.submit(&batch(all, true)).await;
    assert_eq!(
        reply.body,
        json!({"result": {"status": "ok", "debug": true, "summary": {"processed":
            {"ip": 2, "domain": 1, "hash": 1, "vulnerability": 1, "url": 1}}}})
    );
}

#[tokio::test]
async fn debug_defaults_to_false_when_omitted() {
    let s = start_default().await;
    let reply = s
        .submit(&json!({"data": [detection("ip", "203.0.113.9")]}))
        .await;
    assert_eq!(reply.body["result"]["debug"], json!(false));
    assert_eq!(reply.body["result"]["summary"]["processed"]["ip"], json!(1));
    assert_eq!(s.sim.received().len(), 1);
}

#[tokio::test]
async fn processed_counts_unique_type_and_lowercased_value_per_request() {
    let s = start_default().await;
    let items = vec![
        detection("domain", "Evil.Example"),
        detection("domain", "evil.example"),
        detection("domain", "EVIL.EXAMPLE"),
        detection("ip", "203.0.113.7"),
        detection("ip", "203.0.113.7"),
        detection("url", "https://evil.example/a"),
        detection("url", "https://evil.example/A"),
        detection("url", "https://evil.example/b"),
    ];
    let reply = s.submit(&batch(items, false)).await;
    assert_eq!(
        reply.body["result"]["summary"]["processed"],
        json!({"ip": 1, "domain": 1, "hash": 0, "vulnerability": 0, "url": 2})
    );
    // Counting is per request; every posted item is still stored as posted.
    assert_eq!(s.sim.received().len(), 8);
    let again = s
        .submit(&batch(vec![detection("ip", "203.0.113.7")], false))
        .await;
    assert_eq!(again.body["result"]["summary"]["processed"]["ip"], json!(1));
}

#[tokio::test]
async fn summary_is_omitted_when_not_wanted() {
    let s = start_default().await;
    let body = json!({"options": {"debug": false, "summary": false}, "data": ips(2)});
    let reply = s.submit(&body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({"result": {"status": "ok", "debug": false}})
    );
}

#[tokio::test]
async fn debug_submissions_are_not_stored_searchable_or_counted_against_quota() {
    let s = start(CiOptions {
        daily_quota: 3,
        ..CiOptions::default()
    })
    .await;
    for _ in 0..5 {
        let reply = s.submit(&batch(ips(3), true)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["result"]["summary"]["processed"]["ip"], json!(3));
    }
    assert!(s.sim.received().is_empty());
    assert_eq!(s.sim.quota_used(), 0);
    let found = s.search(&json!({"limit": 10})).await;
    assert_eq!(found.body["counts"], json!({"returned": 0, "total": 0}));
    // The full quota is still there for live data.
    assert_eq!(s.submit(&batch(ips(3), false)).await.status, 200);
    assert_eq!(s.sim.received().len(), 3);
}

#[tokio::test]
async fn quota_overflow_is_429_with_retry_after_and_stores_nothing() {
    let s = start(CiOptions {
        daily_quota: 5,
        ..CiOptions::default()
    })
    .await;
    settable_clock(&s.sim, Utc.with_ymd_and_hms(2025, 3, 14, 23, 0, 0).unwrap());
    assert_eq!(s.submit(&batch(ips(3), false)).await.status, 200);
    let reply = s.submit(&batch(ips(3), false)).await;
    assert_error_body(&reply, 429);
    assert_eq!(
        reply.headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
        Some("3600")
    );
    assert!(reply.body["message"].as_str().unwrap().contains("quota"));
    assert_eq!(
        s.sim.received().len(),
        3,
        "part of a rejected request was stored"
    );
    assert_eq!(s.sim.quota_used(), 3);
    // What still fits is accepted.
    assert_eq!(s.submit(&batch(ips(2), false)).await.status, 200);
    assert_eq!(s.submit(&batch(ips(1), false)).await.status, 429);
    assert_eq!(s.sim.received().len(), 5);
}

#[tokio::test]
async fn quota_resets_at_the_utc_day_boundary() {
    let s = start(CiOptions {
        daily_quota: 4,
        ..CiOptions::default()
    })
    .await;
    let clock = settable_clock(
        &s.sim,
        Utc.with_ymd_and_hms(2025, 3, 14, 23, 59, 58).unwrap(),
    );
    assert_eq!(s.submit(&batch(ips(4), false)).await.status, 200);
    let refused = s.submit(&batch(ips(1), false)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    *clock.lock().unwrap() = Utc.with_ymd_and_hms(2025, 3, 15, 0, 0, 0).unwrap();
    assert_eq!(s.sim.quota_used(), 0);
    assert_eq!(s.submit(&batch(ips(4), false)).await.status, 200);
    assert_eq!(s.submit(&batch(ips(1), false)).await.status, 429);
    assert_eq!(s.sim.received().len(), 8);
}

#[tokio::test]
async fn more_items_than_max_batch_is_413() {
    let s = start(CiOptions {
        max_batch: Some(2),
        ..CiOptions::default()
    })
    .await;
    let reply = s.submit(&batch(ips(3), false)).await;
    assert_error_body(&reply, 413);
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("at most 2"));
    assert!(s.sim.received().is_empty());
    assert_eq!(s.submit(&batch(ips(2), false)).await.status, 200);
    // Debug requests are subject to the same limit.
    assert_eq!(s.submit(&batch(ips(3), true)).await.status, 413);
}

#[tokio::test]
async fn double_slash_paths_are_served() {
    let s = start_default().await;
    let reply = s
        .send(
            reqwest::Method::POST,
            "//collective-insights/detections",
            Some(DEFAULT_TOKEN),
            &batch(ips(2), false).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(s.sim.received().len(), 2);
    let found = s
        .send(
            reqwest::Method::POST,
            "//collective-insights/search",
            Some(DEFAULT_TOKEN),
            r#"{"limit": 5}"#,
        )
        .await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["counts"]["total"], json!(2));
}

#[tokio::test]
async fn other_paths_are_404_json_and_other_methods_405_json() {
    let s = start_default().await;
    for path in [
        "/collective-insights",
        "/collective-insights/detection",
        "/collective-insights/detections/extra",
        "//collective-insights/nope",
    ] {
        let reply = s
            .send(reqwest::Method::POST, path, Some(DEFAULT_TOKEN), "{}")
            .await;
        assert_error_body(&reply, 404);
        assert!(reply.body["message"].as_str().unwrap().contains(path));
    }
    let reply = s
        .send(
            reqwest::Method::GET,
            "/collective-insights/detections",
            Some(DEFAULT_TOKEN),
            "",
        )
        .await;
    assert_error_body(&reply, 405);
    assert_eq!(reply.headers.get("allow").unwrap(), "POST");
}

fn search_fixture() -> Value {
    let mut rule = detection(
        "hash",
        "9f2b5c0e1d4a7b3c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
    );
    rule["detection"] = json!({"type": "detection_rule", "sub_type": "yara", "id": "doc:x"});
    rule["timestamp"] = json!("2025-03-14T10:00:00Z");
    let mut sandbox = detection("url", "https://evil.example/a");
    sandbox["detection"] = json!({"type": "sandbox"});
    sandbox["timestamp"] = json!("2025-03-14T11:00:00.5Z");
    sandbox["malwares"] = json!(["Emotet"]);
    sandbox["mitre_codes"] = json!(["T1071"]);
    let mut early = detection("ip", "203.0.113.1");
    early["timestamp"] = json!("2025-03-14T08:00:00Z");
    let mut domain = detection("domain", "evil.example");
    domain["timestamp"] = json!("2025-03-14T12:00:00+01:00");
    json!([early, rule, sandbox, domain, detection("ip", "203.0.113.2")])
}

async fn ids(s: &Sim, body: Value) -> (Vec<String>, Value) {
    let reply = s.search(&body).await;
    assert_eq!(reply.status, 200, "{body} -> {}", reply.body);
    let values = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["indicator"]["value"].as_str().unwrap().to_owned())
        .collect();
    (values, reply.body["counts"].clone())
}

#[tokio::test]
async fn search_filters_limit_offset_and_counts() {
    let s = start_default().await;
    let items = search_fixture().as_array().unwrap().clone();
    let body = json!({"options": {"debug": false}, "organization_ids": ["uhash:Ex4mpl3"], "data": items[..3]});
    assert_eq!(s.submit(&body).await.status, 200);
    assert_eq!(
        s.submit(&batch(items[3..].to_vec(), false)).await.status,
        200
    );
    assert_eq!(
        s.submit(&batch(vec![detection("ip", "198.51.100.1")], true))
            .await
            .status,
        200
    );

    let (all, counts) = ids(&s, json!({"limit": 100})).await;
    assert_eq!(
        all,
        [
            "203.0.113.1",
            "9f2b5c0e1d4a7b3c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
            "https://evil.example/a",
            "evil.example",
            "203.0.113.2"
        ]
    );
    assert_eq!(counts, json!({"returned": 5, "total": 5}));

    let (page, counts) = ids(&s, json!({"limit": 2, "offset": 1})).await;
    assert_eq!(page.len(), 2);
    assert_eq!(page, all[1..3]);
    assert_eq!(counts, json!({"returned": 2, "total": 5}));
    let (past, counts) = ids(&s, json!({"limit": 2, "offset": 9})).await;
    assert!(past.is_empty());
    assert_eq!(counts, json!({"returned": 0, "total": 5}));

    let (by_type, _) = ids(
        &s,
        json!({"filters": {"indicator_type": ["ip", "url"]}, "limit": 10}),
    )
    .await;
    assert_eq!(
        by_type,
        ["203.0.113.1", "https://evil.example/a", "203.0.113.2"]
    );
    let (by_detection, _) = ids(
        &s,
        json!({"filters": {"detection_type": ["sandbox", "detection_rule"]}, "limit": 10}),
    )
    .await;
    assert_eq!(by_detection, all[1..3]);
    let (api, _) = ids(
        &s,
        json!({"filters": {"submission_method": ["api"]}, "limit": 10}),
    )
    .await;
    assert_eq!(api.len(), 5);
    let (integration, counts) = ids(
        &s,
        json!({"filters": {"submission_method": ["integration"]}, "limit": 10}),
    )
    .await;
    assert!(integration.is_empty());
    assert_eq!(counts["total"], json!(0));
    let (orgs, _) = ids(
        &s,
        json!({"filters": {"organizations": ["uhash:Ex4mpl3"]}, "limit": 10}),
    )
    .await;
    assert_eq!(orgs, all[..3]);
    let (no_orgs, _) = ids(
        &s,
        json!({"filters": {"organizations": "absent"}, "limit": 10}),
    )
    .await;
    assert_eq!(no_orgs, all[3..]);
    // Inclusive bounds: 10:00:00Z and 11:00:00Z (= 12:00+01:00) are both in.
    let (window, _) = ids(
        &s,
        json!({"filters": {"detection_time": {"from": "2025-03-14T10:00:00Z", "to": "2025-03-14T11:00:00.5Z"}}, "limit": 10}),
    )
    .await;
    assert_eq!(
        window,
        [
            "9f2b5c0e1d4a7b3c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
            "https://evil.example/a",
            "evil.example"
        ]
    );
    let (unknown_keys, _) = ids(
        &s,
        json!({"filters": {"indicator_type": ["ip"], "associated_threats": {"malware": {"id": "present"}}, "made_up": 1}, "limit": 10}),
    )
    .await;
    assert_eq!(unknown_keys, ["203.0.113.1", "203.0.113.2"]);

    for bad in [
        json!({"limit": 0}),
        json!({"limit": 1001}),
        json!({"limit": 10, "offset": -1}),
        json!({"limit": 10, "filters": {"indicator_type": 5}}),
        json!({"limit": 10, "filters": {"detection_time": {"from": "soon"}}}),
    ] {
        let reply = s.search(&bad).await;
        assert_error_body(&reply, 400);
    }
    assert_eq!(s.search(&json!({"limit": 1000})).await.status, 200);
}

#[tokio::test]
async fn search_events_are_shaped_like_enriched_events() {
    let s = start_default().await;
    let clock_now = Utc.with_ymd_and_hms(2025, 3, 14, 7, 30, 0).unwrap();
    settable_clock(&s.sim, clock_now);
    let items = search_fixture();
    let mut untimed = detection("ip", "203.0.113.77");
    untimed.as_object_mut().unwrap().remove("timestamp");
    untimed.as_object_mut().unwrap().remove("incident");
    let body = json!({"organization_ids": ["uhash:Ex4mpl3"], "data": [items[2].clone(), untimed]});
    assert_eq!(s.submit(&body).await.status, 200);
    let reply = s.search(&json!({"limit": 10})).await;
    let data = reply.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let first = &data[0];
    let score = first["indicator"]["risk"]["score"]["at_detection"]
        .as_u64()
        .unwrap();
    assert!(score < 100);
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        first,
        &json!({
            "id": id,
            "organizations": ["uhash:Ex4mpl3"],
            "submission_method": "api",
            "detection_type": "sandbox",
            "detection_time": "2025-03-14T11:00:00.500Z",
            "indicator": {"type": "url", "value": "https://evil.example/a", "field": "originIP",
                          "risk": {"score": {"at_detection": score}}},
            "incident": {"id": "104233", "name": "AIE: risky IP", "type": "logrhythm-alarm"},
            "detection_rules": [],
            "associated_threats": {
                "threat_actors": [],
                "malware": [{"id": "sim:malware:Emotet", "type": "Malware", "name": "Emotet", "displayName": "Emotet"}],
                "mitre_codes": [{"id": "mitre:T1071", "type": "MitreAttackIdentifier", "name": "T1071", "displayName": "T1071"}]
            },
            "context": {}
        })
    );
    let second = &data[1];
    assert_ne!(second["id"], first["id"]);
    assert_eq!(
        second["detection_time"],
        json!("2025-03-14T07:30:00Z"),
        "arrival time stands in"
    );
    assert_eq!(second["incident"], Value::Null);
}

#[tokio::test]
async fn received_returns_items_in_arrival_order_exactly_as_posted() {
    let s = start_default().await;
    let mut odd = detection("domain", "xn--80ak6aa92e.com");
    odd["incident"] =
        json!({"id": "1", "extra": {"nested": [1, 2.5, null]}, "name": "пример \u{202e} é"});
    odd["vendor_key"] = json!("kept as-is");
    odd["mitre_codes"] = json!([]);
    let first = vec![
        detection("ip", "203.0.113.1"),
        odd,
        detection("ip", "203.0.113.1"),
    ];
    let second = vec![detection("url", "https://evil.example/?q=1&x=%20")];
    assert_eq!(s.submit(&batch(first.clone(), false)).await.status, 200);
    assert_eq!(
        s.submit(&batch(vec![detection("ip", "198.51.100.1")], true))
            .await
            .status,
        200
    );
    assert_eq!(s.submit(&batch(second.clone(), false)).await.status, 200);
    let expected: Vec<Value> = first.into_iter().chain(second).collect();
    assert_eq!(s.sim.received(), expected);
}

#[tokio::test]
async fn reset_clears_items_and_quota() {
    let s = start(CiOptions {
        daily_quota: 3,
        ..CiOptions::default()
    })
    .await;
    assert_eq!(s.submit(&batch(ips(3), false)).await.status, 200);
    assert_eq!(s.submit(&batch(ips(1), false)).await.status, 429);
    s.sim.reset();
    assert!(s.sim.received().is_empty());
    assert_eq!(s.sim.quota_used(), 0);
    assert_eq!(
        s.search(&json!({"limit": 10})).await.body["counts"]["total"],
        json!(0)
    );
    assert_eq!(s.submit(&batch(ips(3), false)).await.status, 200);
    assert_eq!(s.sim.received().len(), 3);
}
