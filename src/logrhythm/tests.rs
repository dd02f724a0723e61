//! wiremock tests of the LogRhythm client, including a small paging simulator
//! (page cap, offset modes) for the slice listing.

use super::*;
use chrono::TimeDelta;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "lr-Secret-Key-0123456789";

fn opts() -> HttpOptions {
    HttpOptions::fast_for_tests(2)
}

fn client(server: &MockServer) -> Client {
    Client::new(
        Url::parse(&server.uri()).unwrap(),
        SecretString::from(KEY.to_string()),
        opts(),
    )
    .unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn list_body(rows: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "alarmsSearchDetails": rows, "alarmsCount": 0,
        "statusCode": 200, "statusMessage": "OK", "responseMessage": "Success"
    }))
}

#[test]
fn base_url_gets_the_api_prefix_once() {
    let cases = [
        ("https://pm:8501", "https://pm:8501/lr-alarm-api/"),
        ("https://pm:8501/", "https://pm:8501/lr-alarm-api/"),
        (
            "https://pm:8501/lr-alarm-api",
            "https://pm:8501/lr-alarm-api/",
        ),
        (
            "https://pm:8501/lr-alarm-api/",
            "https://pm:8501/lr-alarm-api/",
        ),
        ("http://gw/prefix?x=1", "http://gw/prefix/lr-alarm-api/"),
    ];
    for (input, want) in cases {
        assert_eq!(
            api_base(&Url::parse(input).unwrap()).unwrap().as_str(),
            want,
            "{input}"
        );
    }
    for bad in ["ftp://pm/", "https://user:pw@pm:8501/"] {
        assert!(api_base(&Url::parse(bad).unwrap()).is_err(), "{bad}");
    }
}

#[test]
fn key_never_shows_in_debug_or_errors() {
    let c = Client::new(
        Url::parse("https://pm:8501").unwrap(),
        SecretString::from(KEY.to_string()),
        HttpOptions::default(),
    )
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(KEY), "{dbg}");
    let bad = "abc\r\ndef";
    let err = Client::new(
        Url::parse("https://pm:8501").unwrap(),
        SecretString::from(bad.to_string()),
        HttpOptions::default(),
    )
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("LOGRHYTHM_API_KEY"), "{text}");
    assert!(!text.contains("abc"), "{text}");
}

#[tokio::test]
async fn list_page_sends_the_documented_query_and_headers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header(
            "user-agent",
            crate::http::default_user_agent().as_str(),
        ))
        .and(query_param("dateInserted", "2024-05-14T09:00:00.250"))
        .and(query_param("orderby", "DateInserted"))
        .and(query_param("dir", "ascending"))
        .and(query_param("count", "100"))
        .and(query_param("offset", "7"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(include_str!("testdata/alarms-list.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let rows = client(&server)
        .list_page(at("2024-05-14T09:00:00.25Z"), 100, 7)
        .await
        .unwrap();
    let ids: Vec<_> = rows.iter().map(|r| r.alarm_id).collect();
    assert_eq!(ids, vec![48211, 48212, 48215]);
    assert_eq!(rows[0].date_inserted, at("2024-05-14T09:12:00Z"));
    assert_eq!(rows[2].date_inserted, at("2024-05-14T09:13:05.2Z"));
    assert_eq!(rows[1].rule_name, "AIE: Exploit Attempt Detected");
    assert_eq!(rows[1].status, 1);
}

#[tokio::test]
async fn null_missing_and_empty_lists_are_empty_pages() {
    for body in [
        json!({"alarmsSearchDetails": null, "alarmsCount": 0, "statusCode": 200}),
        json!({"alarmsCount": 0}),
        json!({"alarmsSearchDetails": []}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let rows = client(&server)
            .list_page(at("2024-01-01T00:00:00Z"), 100, 0)
            .await
            .unwrap();
        assert!(rows.is_empty(), "{body}");
    }
}

#[tokio::test]
async fn unusable_rows_are_skipped_and_bad_pages_fail() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(list_body(json!([
            {"alarmId": 1, "alarmRuleName": "a", "dateInserted": "2024-01-01T00:00:01"},
            {"alarmId": 2, "alarmRuleName": "b", "dateInserted": "not a date"},
            {"alarmRuleName": "c", "dateInserted": "2024-01-01T00:00:02"},
            "garbage",
            {"alarmId": 5, "alarmRuleName": "e", "dateInserted": "2024-01-01T00:00:03.1234567Z"}
        ])))
        .mount(&server)
        .await;
    let rows = client(&server)
        .list_page(at("2024-01-01T00:00:00Z"), 100, 0)
        .await
        .unwrap();
    let ids: Vec<_> = rows.iter().map(|r| r.alarm_id).collect();
    assert_eq!(ids, vec![1, 5]);

    for (body, want_envelope) in [
        (
            ResponseTemplate::new(200).set_body_string("<html>login</html>"),
            false,
        ),
        (ResponseTemplate::new(200).set_body_string(""), false),
        (
            ResponseTemplate::new(200).set_body_json(json!({"alarmsSearchDetails": "x"})),
            false,
        ),
        (
            ResponseTemplate::new(200).set_body_json(
                json!({"alarmsSearchDetails": null, "statusCode": 500, "responseMessage": "db"}),
            ),
            true,
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(body)
            .mount(&server)
            .await;
        let err = client(&server)
            .list_page(at("2024-01-01T00:00:00Z"), 100, 0)
            .await
            .unwrap_err();
        if want_envelope {
            assert!(matches!(err, Error::Envelope { code: 500, .. }), "{err:?}");
            assert!(err.is_transient());
        } else if matches!(err, Error::NotJson { .. }) {
            // A login page: the gateway's, so transient.
            assert!(err.is_transient(), "{err:?}");
        } else {
            assert!(matches!(err, Error::Parse { .. }), "{err:?}");
            assert!(!err.is_transient(), "{err:?}");
        }
    }
}

#[tokio::test]
async fn auth_failures_map_to_auth_without_retry() {
    for status in [401u16, 403] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(json!({"statusCode": status})),
            )
            .expect(2) // two calls below, one request each: no retry
            .mount(&server)
            .await;
        let c = client(&server);
        let err = c
            .list_page(at("2024-01-01T00:00:00Z"), 100, 0)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Auth { status: s, .. } if s == status),
            "{err:?}"
        );
        assert!(!err.is_transient());
        let text = format!("{err} {err:?}");
        assert!(!text.contains(KEY), "{text}");
        let err = c.events(4.into()).await.unwrap_err();
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_transient() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    let err = client(&server).details(1.into()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn details_read_rbp_and_404_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms/48212"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(include_str!("testdata/alarm-details.json")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"alarmDetails": {"rBPMax": 88, "rBPAvg": 40}, "statusCode": 200}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms/8"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"alarmDetails": null})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms/9"))
        .respond_with(ResponseTemplate::new(404).set_body_string("Alarm ID: 9 not found."))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("testdata/alarm-details.json")).unwrap();
    let want_rbp = fixture["alarmDetails"]["rbpMax"].as_i64();
    assert!(want_rbp.is_some());
    assert_eq!(c.details(48212.into()).await.unwrap().rbp_max, want_rbp);
    assert_eq!(c.details(7.into()).await.unwrap().rbp_max, Some(88));
    assert!(matches!(
        c.details(8.into()).await.unwrap_err(),
        Error::Shape { .. }
    ));
    let err = c.details(9.into()).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { id, .. } if id == 9),
        "{err:?}"
    );
}

#[tokio::test]
async fn events_accept_both_wrappers_and_null() {
    let server = MockServer::start().await;
    let event = json!({"originIP": "203.0.113.9", "impactedIP": null});
    let bodies = [
        (
            1,
            json!({"alarmEventsDetails": [event.clone()], "statusCode": 200}),
        ),
        (
            2,
            json!({"alarmsEventDetails": [event.clone(), event.clone()]}),
        ),
        (3, json!({"alarmEventsDetails": null})),
        (4, json!({"statusCode": 200})),
        (5, json!({"alarmEventsDetails": [null, event.clone()]})),
        (6, json!({"alarmEventsDetails": [1]})),
    ];
    for (id, body) in &bodies {
        Mock::given(method("GET"))
            .and(path(format!("/lr-alarm-api/alarms/{id}/events")))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
    }
    let c = client(&server);
    assert_eq!(c.events(1.into()).await.unwrap(), vec![event.clone()]);
    assert_eq!(c.events(2.into()).await.unwrap().len(), 2);
    assert!(c.events(3.into()).await.unwrap().is_empty());
    assert!(c.events(4.into()).await.unwrap().is_empty());
    assert_eq!(c.events(5.into()).await.unwrap(), vec![event.clone()]);
    assert!(matches!(
        c.events(6.into()).await.unwrap_err(),
        Error::Shape { .. }
    ));

    // The spec fixture.
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms/48212/events"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(include_str!("testdata/alarm-events.json")),
        )
        .mount(&server)
        .await;
    let events = c.events(48212.into()).await.unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.is_object()));
}

#[tokio::test]
async fn invalid_json_events_fail_for_that_alarm_only() {
    let server = MockServer::start().await;
    let deep = format!(
        "{{\"alarmEventsDetails\": [{{\"x\": {}1{}}}]}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let mut invalid_utf8 = br#"{"alarmEventsDetails": [{"originHostName": "a"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}]}"#);
    let bad: [(i64, Vec<u8>); 4] = [
        (
            1,
            br#"{"alarmEventsDetails": [{"originHostName": "\ud800"}]}"#.to_vec(),
        ),
        (2, invalid_utf8),
        (3, deep.into_bytes()),
        (4, b"<html>gateway</html>".to_vec()),
    ];
    for (id, body) in &bad {
        Mock::given(method("GET"))
            .and(path(format!("/lr-alarm-api/alarms/{id}/events")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body.clone()))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms/5/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"alarmEventsDetails": [{"url": "https://x.example/"}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms/6/events"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    for (id, _) in &bad {
        let err = c.events((*id).into()).await.unwrap_err();
        if *id == 4 {
            assert!(matches!(err, Error::NotJson { .. }), "alarm {id}: {err:?}");
        } else {
            assert!(matches!(err, Error::Parse { .. }), "alarm {id}: {err:?}");
        }
        assert!(err.to_string().contains(&format!("alarm {id}")), "{err}");
    }
    assert_eq!(c.events(5.into()).await.unwrap().len(), 1);
    assert!(matches!(
        c.events(6.into()).await.unwrap_err(),
        Error::NotFound { id, .. } if id == 6
    ));
}

/// A paging Alarm API: rows sorted by (t, id), `dateInserted` as inclusive
/// lower bound, a silent page cap, and an offset mode.
struct PagingSim {
    alarms: Vec<(i64, DateTime<Utc>)>,
    cap: usize,
    mode: OffsetMode,
    /// Swap two rows of every page to break the ordering.
    unordered: bool,
}

impl PagingSim {
    fn new(mut alarms: Vec<(i64, DateTime<Utc>)>, cap: usize, mode: OffsetMode) -> Self {
        alarms.sort_by_key(|&(id, t)| (t, id));
        PagingSim {
            alarms,
            cap,
            mode,
            unordered: false,
        }
    }
}

impl Respond for PagingSim {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().into_owned().collect();
        let since = q
            .get("dateInserted")
            .and_then(|s| parse_lr_date(s))
            .unwrap();
        let count = q
            .get("count")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap()
            .min(self.cap);
        let offset = q
            .get("offset")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        let skip = match self.mode {
            OffsetMode::Records => offset,
            OffsetMode::Pages => offset * count,
            OffsetMode::Ignored | OffsetMode::Unknown => 0,
        };
        let mut rows: Vec<serde_json::Value> = self
            .alarms
            .iter()
            .filter(|(_, t)| *t >= since)
            .skip(skip)
            .take(count)
            .map(|(id, t)| {
                json!({"alarmId": id, "alarmRuleName": format!("rule {id}"), "alarmStatus": 0,
                       "alarmDataCached": "N", "associatedCases": [], "entityName": "Global Entity",
                       "dateInserted": t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()})
            })
            .collect();
        if self.unordered && rows.len() > 2 {
            rows.swap(0, 2);
        }
        let body = if rows.is_empty() {
            json!(null)
        } else {
            json!(rows)
        };
        list_body(body)
    }
}

async fn sim_server(sim: PagingSim) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms"))
        .respond_with(sim)
        .mount(&server)
        .await;
    server
}

fn hour() -> (DateTime<Utc>, DateTime<Utc>) {
    let from = at("2024-05-14T09:00:00Z");
    (from, from + TimeDelta::hours(1))
}

#[tokio::test]
async fn capped_server_ignoring_offset_yields_all_250_alarms_of_an_hour() {
    let (from, to) = hour();
    // 250 alarms, 14.4 s apart, some pairs sharing a timestamp; plus
    // alarms just outside the slice on both sides.
    let mut alarms: Vec<_> = (0..250)
        .map(|i| {
            (
                1000 + i,
                from + TimeDelta::milliseconds((i / 2) * 28_800 + 3),
            )
        })
        .collect();
    alarms.push((1, from - TimeDelta::milliseconds(1)));
    alarms.push((9999, to));
    alarms.push((9998, to + TimeDelta::minutes(5)));
    let server = sim_server(PagingSim::new(alarms, 100, OffsetMode::Ignored)).await;
    let out = client(&server)
        .list_slice(from, to, &Paging::new(500))
        .await
        .unwrap();
    let ids: Vec<_> = out.alarms.iter().map(|a| a.alarm_id).collect();
    assert_eq!(ids, (1000..1250).collect::<Vec<_>>());
    assert!(out.saturated_at.is_empty());
    assert!(out
        .alarms
        .windows(2)
        .all(|w| (w[0].date_inserted, w[0].alarm_id) < (w[1].date_inserted, w[1].alarm_id)));
    assert!(out
        .alarms
        .iter()
        .all(|a| a.date_inserted >= from && a.date_inserted < to));
    let requests = server.received_requests().await.unwrap().len();
    assert_eq!(requests as u32, out.pages);
    assert!(requests <= 5, "{requests} requests");
}

/// 30 alarms before T, 150 sharing T, 40 after: the ties exceed the page cap.
fn ties_workload(from: DateTime<Utc>) -> (Vec<(i64, DateTime<Utc>)>, DateTime<Utc>) {
    let tie = from + TimeDelta::minutes(30);
    let mut alarms = Vec::new();
    for i in 0..30 {
        alarms.push((100 + i, from + TimeDelta::seconds(i)));
    }
    for i in 0..150 {
        alarms.push((500 + i, tie));
    }
    for i in 0..40 {
        alarms.push((900 + i, tie + TimeDelta::seconds(1 + i)));
    }
    (alarms, tie)
}

#[tokio::test]
async fn ties_across_pages_with_record_offset_are_all_fetched() {
    let (from, to) = hour();
    let (alarms, _) = ties_workload(from);
    let server = sim_server(PagingSim::new(alarms, 100, OffsetMode::Records)).await;
    let out = client(&server)
        .list_slice(from, to, &Paging::new(100))
        .await
        .unwrap();
    assert_eq!(out.alarms.len(), 220);
    assert_eq!(out.offset_mode, OffsetMode::Records);
    assert!(out.saturated_at.is_empty());
}

#[tokio::test]
async fn ties_across_pages_with_page_index_offset_are_all_fetched() {
    let (from, to) = hour();
    let (alarms, _) = ties_workload(from);
    // The server caps at 100 although 500 are asked for.
    let server = sim_server(PagingSim::new(alarms, 100, OffsetMode::Pages)).await;
    let out = client(&server)
        .list_slice(from, to, &Paging::new(500))
        .await
        .unwrap();
    assert_eq!(out.alarms.len(), 220);
    assert_eq!(out.offset_mode, OffsetMode::Pages);
    assert!(out.saturated_at.is_empty());
}

#[tokio::test]
async fn full_page_of_one_timestamp_with_offset_ignored_is_saturated_then_continues() {
    let (from, to) = hour();
    let (alarms, tie) = ties_workload(from);
    let server = sim_server(PagingSim::new(alarms, 100, OffsetMode::Ignored)).await;
    let out = client(&server)
        .list_slice(from, to, &Paging::new(100))
        .await
        .unwrap();
    assert_eq!(out.saturated_at, vec![tie]);
    assert_eq!(out.offset_mode, OffsetMode::Ignored);
    // Everything but the 50 unreachable ties: the rest of the slice was fetched.
    assert_eq!(out.alarms.len(), 30 + 100 + 40);
    assert_eq!(
        out.alarms
            .iter()
            .filter(|a| a.alarm_id.get() >= 900)
            .count(),
        40
    );
}

/// lrci sorts each page itself: a server that returns rows out of order
/// loses nothing (DESIGN.md §1.3, "don't trust server order").
#[tokio::test]
async fn unordered_pages_are_sorted_here() {
    let (from, to) = hour();
    let alarms = (0..10)
        .map(|i| (i + 1, from + TimeDelta::seconds(i)))
        .collect();
    let mut sim = PagingSim::new(alarms, 4, OffsetMode::Records);
    sim.unordered = true;
    let server = sim_server(sim).await;
    let out = client(&server)
        .list_slice(from, to, &Paging::new(4))
        .await
        .unwrap();
    let ids: Vec<i64> = out.alarms.iter().map(|a| a.alarm_id.get()).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
}

/// The recorded time-zone shift is added to every bound sent.
#[tokio::test]
async fn the_time_zone_shift_is_added_to_the_bound_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/lr-alarm-api/alarms"))
        .and(query_param("dateInserted", "2024-05-14T11:59:59.996"))
        .respond_with(list_body(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    let (from, to) = hour();
    let paging = Paging {
        tz_shift: TimeDelta::hours(3),
        ..Paging::new(100)
    };
    let out = client(&server).list_slice(from, to, &paging).await.unwrap();
    assert!(out.alarms.is_empty());
}

#[tokio::test]
async fn slice_end_is_exclusive_and_stops_paging() {
    let (from, to) = hour();
    // 100 alarms in the slice, then 1000 after it: the page that crosses the
    // end stops the listing; nothing at or past `to` is returned.
    let mut alarms: Vec<_> = (0..100)
        .map(|i| (i + 1, from + TimeDelta::seconds(30 * i)))
        .collect();
    alarms.extend((0..1000).map(|i| (5000 + i, to + TimeDelta::milliseconds(i))));
    let server = sim_server(PagingSim::new(alarms, 60, OffsetMode::Ignored)).await;
    let out = client(&server)
        .list_slice(from, to, &Paging::new(60))
        .await
        .unwrap();
    assert_eq!(out.alarms.len(), 100);
    assert!(out.alarms.iter().all(|a| a.date_inserted < to));
    assert_eq!(out.pages, 2);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn empty_slice_makes_no_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(list_body(json!(null)))
        .expect(0)
        .mount(&server)
        .await;
    let t = at("2024-05-14T09:00:00Z");
    let out = client(&server)
        .list_slice(t, t, &Paging::new(100))
        .await
        .unwrap();
    assert_eq!(out.pages, 0);
    assert!(out.alarms.is_empty());
}
