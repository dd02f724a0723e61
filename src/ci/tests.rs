//! wiremock tests of the Collective Insights client.

use super::*;
use crate::model::IndicatorType;
use chrono::{DateTime, Utc};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn opts() -> HttpOptions {
    HttpOptions::fast_for_tests(2)
}

fn client(server: &MockServer) -> Client {
    Client::new(
        Url::parse(&server.uri()).unwrap(),
        SecretString::from(TOKEN.to_string()),
        opts(),
    )
    .unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn detections() -> Vec<Detection> {
    vec![
        Detection {
            id: 1.into(),
            alarm_id: 48212.into(),
            rule_name: "AIE: Exploit Attempt Detected".into(),
            timestamp: at("2024-05-14T09:12:41.387Z"),
            kind: IndicatorType::Ip,
            value: "203.0.113.45".into(),
            field: "originIP".into(),
            source_type: Some("Syslog - Example NGFW".into()),
            threat_name: None,
        },
        Detection {
            id: 2.into(),
            alarm_id: 48211.into(),
            rule_name: "Recorded Future: C2".into(),
            timestamp: at("2024-05-14T09:12:00Z"),
            kind: IndicatorType::Vulnerability,
            value: "CVE-2024-1234".into(),
            field: "cve".into(),
            source_type: None,
            threat_name: None,
        },
    ]
}

fn ok_body(debug: bool) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"result": {"status": "ok", "debug": debug,
        "summary": {"processed": {"ip": 1, "domain": 0, "hash": 0, "vulnerability": 1, "url": 0}}}}))
}

#[tokio::test]
async fn posts_the_exact_body_with_headers() {
    for debug in [false, true] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/collective-insights/detections"))
            .and(header("x-rftoken", TOKEN))
            .and(header("content-type", "application/json"))
            .and(header(
                "user-agent",
                crate::http::default_user_agent().as_str(),
            ))
            .respond_with(ok_body(debug))
            .expect(1)
            .mount(&server)
            .await;
        let out = client(&server).submit(&detections(), debug).await.unwrap();
        assert_eq!(
            out,
            SubmitOutcome {
                debug,
                processed: Some(Processed {
                    ip: 1,
                    domain: 0,
                    hash: 0,
                    vulnerability: 1,
                    url: 0
                }),
                attempts: 1,
            }
        );
        let reqs = server.received_requests().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(
            body,
            json!({
                "options": {"debug": debug, "summary": true},
                "data": [
                    {
                        "timestamp": "2024-05-14T09:12:41.387Z",
                        "ioc": {"type": "ip", "value": "203.0.113.45", "source_type": "Syslog - Example NGFW", "field": "originIP"},
                        "incident": {"id": "48212", "name": "AIE: Exploit Attempt Detected", "type": "logrhythm-alarm"},
                        "detection": {"type": "correlation", "name": "AIE: Exploit Attempt Detected"}
                    },
                    {
                        "timestamp": "2024-05-14T09:12:00Z",
                        "ioc": {"type": "vulnerability", "value": "CVE-2024-1234", "source_type": "logrhythm", "field": "cve"},
                        "incident": {"id": "48211", "name": "Recorded Future: C2", "type": "logrhythm-alarm"},
                        "detection": {"type": "correlation", "name": "Recorded Future: C2"}
                    }
                ]
            })
        );
        // Sent explicitly, never omitted.
        let raw = String::from_utf8(reqs[0].body.clone()).unwrap();
        assert!(raw.contains(&format!("\"debug\":{debug}")), "{raw}");
        assert!(reqs[0].headers.get("authorization").is_none());
    }
}

#[tokio::test]
async fn success_without_summary_or_debug_echo() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": {"status": "ok"}, "extra": 1})),
        )
        .mount(&server)
        .await;
    let out = client(&server).submit(&detections(), false).await.unwrap();
    assert_eq!(
        out,
        SubmitOutcome {
            debug: false,
            processed: None,
            attempts: 1
        }
    );
}

#[tokio::test]
async fn a_200_without_result_status_is_a_transient_bad_response() {
    let bodies = [
        ResponseTemplate::new(200).set_body_string("<html><body>Sign in</body></html>"),
        ResponseTemplate::new(200).set_body_string(""),
        ResponseTemplate::new(200).set_body_json(json!({"data": []})),
        ResponseTemplate::new(200).set_body_json(json!({"result": {"debug": false}})),
        ResponseTemplate::new(200).set_body_json(json!({"result": {"status": 1}})),
    ];
    for body in bodies {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(body)
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server)
            .submit(&detections(), false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::BadResponse { status: 200, .. }),
            "{err:?}"
        );
        assert!(err.is_transient());
    }
}

#[tokio::test]
async fn rejected_400_carries_the_server_message_and_is_not_retried() {
    let cases = [
        (
            ResponseTemplate::new(400)
                .set_body_json(json!({"message": "ioc.type invalid", "status_code": 400})),
            "ioc.type invalid",
        ),
        (
            ResponseTemplate::new(400).set_body_json(
                json!({"error": {"message": "detection.type missing", "status": 400}}),
            ),
            "detection.type missing",
        ),
        (
            ResponseTemplate::new(400).set_body_string("plain\ntext reason"),
            "plain text reason",
        ),
    ];
    for (body, want) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(body)
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server)
            .submit(&detections(), false)
            .await
            .unwrap_err();
        match &err {
            Error::Rejected { message, .. } => assert_eq!(message, want),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn too_large_413_and_auth_failures() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(413))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .submit(&detections(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    assert!(!err.is_transient());

    for status in [401u16, 403] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(json!({"message": "Unauthorized"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server)
            .submit(&detections(), false)
            .await
            .unwrap_err();
        match &err {
            Error::Auth {
                status: s, hint, ..
            } => {
                assert_eq!(*s, status);
                assert!(hint.contains("Collective Insights permission"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!err.is_transient());
        let text = format!("{err} {err:?}");
        assert!(text.contains("Collective Insights permission"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok_body(false))
        .mount(&server)
        .await;
    let out = client(&server).submit(&detections(), false).await.unwrap();
    assert_eq!(out.attempts, 2);
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429))
        .expect(3)
        .mount(&server)
        .await;
    let err = client(&server)
        .submit(&detections(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http(_)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn redirect_is_not_followed_and_token_does_not_travel() {
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_body(false))
        .expect(0)
        .mount(&target)
        .await;
    let origin = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "Location",
            format!("{}/collective-insights/detections", target.uri()).as_str(),
        ))
        .expect(1)
        .mount(&origin)
        .await;
    let err = client(&origin)
        .submit(&detections(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Http(e) if matches!(**e, http::Error::Redirect { status: 307, .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert_eq!(target.received_requests().await.unwrap().len(), 0);
}

#[test]
fn only_https_or_loopback_http_is_accepted() {
    let token = || SecretString::from(TOKEN.to_string());
    for ok in [
        "https://api.recordedfuture.com",
        "https://api.recordedfuture.com/",
        "http://127.0.0.1:8080",
        "http://127.9.9.9",
        "http://[::1]:9000",
        "http://localhost:1234",
        "http://LOCALHOST",
    ] {
        let c = Client::new(Url::parse(ok).unwrap(), token(), HttpOptions::default())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(
            c.endpoint()
                .path()
                .ends_with("/collective-insights/detections"),
            "{ok}"
        );
        assert!(!c.endpoint().path().contains("//"), "{ok}");
    }
    for bad in [
        "http://api.recordedfuture.com",
        "http://10.0.0.1",
        "http://localhost.evil.com",
        "ftp://api.recordedfuture.com",
        "https://user:pw@api.recordedfuture.com",
    ] {
        let err =
            Client::new(Url::parse(bad).unwrap(), token(), HttpOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{bad}: {err:?}");
    }
}

#[test]
fn token_never_shows_in_debug_or_errors() {
    let c = Client::new(
        Url::parse("https://api.recordedfuture.com").unwrap(),
        SecretString::from(TOKEN.to_string()),
        HttpOptions::default(),
    )
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(TOKEN), "{dbg}");
    let bad = format!("{TOKEN}\r\n");
    let err = Client::new(
        Url::parse("https://api.recordedfuture.com").unwrap(),
        SecretString::from(bad),
        HttpOptions::default(),
    )
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("RF_API_KEY"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}
