//! TLS to LogRhythm, proven against a real HTTPS listener (reliability bar T14):
//! rcgen makes a CA and leaves (good, wrong name, expired, CN-only); the in-process
//! simulator serves LogRhythm over HTTPS with one of them, a second plain-HTTP
//! simulator on loopback plays Recorded Future, and the real `lrci sync` binary
//! runs against both. Every failing case must exit 78 with one `error:` line and
//! leave the HTTPS simulator with zero completed LogRhythm requests.

use crate::harness::*;
use lrci::sim::{self, SimConfig, TlsPem};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;

/// A test CA and its PEM certificate.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "lrci test gateway CA");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let pem = issuer.pem();
    Ca { issuer, pem }
}

/// A leaf signed by `ca` with the given subjectAltNames and CN; `expired` puts
/// its validity in 2000.
fn leaf(ca: &Ca, sans: &[&str], cn: &str, expired: bool) -> TlsPem {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if expired {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    TlsPem {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
    }
}

fn good_leaf(ca: &Ca) -> TlsPem {
    leaf(ca, &["127.0.0.1", "localhost"], "127.0.0.1", false)
}

/// The HTTPS LogRhythm simulator (its admin client skips verification: it only
/// reads `/_sim/stats`) and the plain-HTTP Recorded Future one.
struct Pair {
    lr: TestSim,
    rf: TestSim,
}

async fn pair(tls: TlsPem) -> Pair {
    let lr_sim = sim::start(SimConfig {
        tls: Some(tls),
        ..live_config(2, 5)
    })
    .await
    .unwrap();
    assert!(
        lr_sim.url().starts_with("https://127.0.0.1:"),
        "{}",
        lr_sim.url()
    );
    let lr = TestSim {
        sim: lr_sim,
        http: reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap(),
    };
    let rf = start(live_config(1, 1)).await;
    Pair { lr, rf }
}

/// Requests the simulator counted on one side (`lr-alarm-api` or
/// `collective-insights` routes).
async fn api_requests(sim: &TestSim, prefix: &str) -> u64 {
    let stats = admin_get(sim, "/_sim/stats").await;
    stats["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| route.contains(prefix))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

/// `lrci sync --json ARGS` with LogRhythm at `lr_url` and RF at the plain sim.
async fn sync(p: &Pair, home: &Home, lr_url: &str, args: &[&str]) -> LrciRun {
    let mut all = vec!["sync", "--json", "--lookback-days", "1"];
    all.extend_from_slice(args);
    let mut cmd = lrci_command(&p.rf, home, &Keys::of(&p.rf), &all);
    cmd.env("LOGRHYTHM_API_URL", lr_url);
    finish(cmd.spawn().unwrap()).await
}

/// The one `error:` line of a failed run, checked for the bar's shape.
fn error_line(run: &LrciRun) -> String {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "stderr:\n{}", run.stderr);
    let line = lines[0].to_string();
    assert!(line.chars().count() <= 300, "{} chars: {line}", line.len());
    assert!(!line.contains("panicked"), "{line}");
    line
}

/// Asserts a refused handshake: 78, one line containing `wants`, no LR request
/// completed, nothing sent to RF, and no alarm in the ledger.
async fn assert_refused(p: &Pair, home: &Home, run: &LrciRun, wants: &[&str]) -> String {
    run.expect_code(78);
    let line = error_line(run);
    for w in wants {
        assert!(line.contains(w), "missing {w:?} in: {line}");
    }
    assert_eq!(api_requests(&p.lr, "lr-alarm-api").await, 0);
    assert_eq!(api_requests(&p.rf, "collective-insights").await, 0);
    if home.ledger().exists() {
        assert!(ledger_alarm_ids(&home.ledger()).is_empty());
    }
    line
}

#[tokio::test]
async fn untrusted_certificate_exits_78_naming_the_ca_flag_with_zero_requests() {
    let ca = ca();
    let p = pair(good_leaf(&ca)).await;
    let home = Home::new();
    let started = std::time::Instant::now();
    let run = sync(&p, &home, &p.lr.url(), &[]).await;
    assert_refused(
        &p,
        &home,
        &run,
        &[
            "not trusted",
            "UnknownIssuer",
            "--lr-ca-cert",
            "--lr-insecure",
        ],
    )
    .await;
    // Not treated as transient: no retries with backoff.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test]
async fn truly_self_signed_leaf_is_refused_too() {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let p = pair(TlsPem {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
    })
    .await;
    let home = Home::new();
    let run = sync(&p, &home, &p.lr.url(), &[]).await;
    assert_refused(&p, &home, &run, &["--lr-ca-cert"]).await;
}

#[tokio::test]
async fn with_the_ca_the_sync_succeeds_by_ip_and_by_localhost() {
    let ca = ca();
    let p = pair(good_leaf(&ca)).await;
    let home = Home::new();
    let ca_file = home.file("gateway-ca.pem", &ca.pem);
    let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &ca_file]).await;
    run.expect_code(0);
    let seen = run.summary()["alarms"]["seen"].as_u64().unwrap();
    assert!(seen > 0, "{}", run.stdout);
    let ids = ledger_alarm_ids(&home.ledger());
    assert_eq!(ids.len() as u64, seen);
    assert!(api_requests(&p.lr, "lr-alarm-api").await > 0);
    assert!(!run.stderr.contains("NOT verified"), "{}", run.stderr);

    // The leaf's other SAN: the same gateway by name.
    let by_name = p.lr.url().replace("127.0.0.1", "localhost");
    let home2 = Home::new();
    let ca_file = home2.file("gateway-ca.pem", &ca.pem);
    let run = sync(&p, &home2, &by_name, &["--lr-ca-cert", &ca_file]).await;
    run.expect_code(0);
    assert_eq!(ledger_alarm_ids(&home2.ledger()), ids);
}

#[tokio::test]
async fn wrong_hostname_fails_even_with_the_ca() {
    let ca = ca();
    let p = pair(leaf(&ca, &["lr.example.com"], "lr.example.com", false)).await;
    let home = Home::new();
    let ca_file = home.file("ca.pem", &ca.pem);
    let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &ca_file]).await;
    let line = assert_refused(&p, &home, &run, &["NotValidForName", "lr.example.com"]).await;
    assert!(!line.contains("CN"), "not a CN-only case: {line}");
}

#[tokio::test]
async fn expired_certificate_fails_even_with_the_ca() {
    let ca = ca();
    let p = pair(leaf(&ca, &["127.0.0.1", "localhost"], "127.0.0.1", true)).await;
    let home = Home::new();
    let ca_file = home.file("ca.pem", &ca.pem);
    let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &ca_file]).await;
    assert_refused(&p, &home, &run, &["Expired", "renew"]).await;
}

#[tokio::test]
async fn cn_only_certificate_fails_with_a_san_hint() {
    let ca = ca();
    let p = pair(leaf(&ca, &[], "127.0.0.1", false)).await;
    let home = Home::new();
    let ca_file = home.file("ca.pem", &ca.pem);
    let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &ca_file]).await;
    assert_refused(
        &p,
        &home,
        &run,
        &[
            "NotValidForName",
            "no subjectAltName",
            "hint:",
            "ignores the CN",
        ],
    )
    .await;
}

#[tokio::test]
async fn unusable_ca_files_are_refused_before_any_connection() {
    let ca = ca();
    let leaf = good_leaf(&ca);
    let key_pem = String::from_utf8(leaf.key.clone()).unwrap();
    let p = pair(leaf).await;
    let home = Home::new();
    let missing = home.dir.path().join("missing.pem");
    let cases = [
        (
            "missing",
            missing.to_str().unwrap().to_string(),
            "cannot read",
        ),
        ("empty", home.file("empty.pem", ""), "no PEM certificate"),
        (
            "garbage",
            home.file("garbage.pem", "this is not a certificate\n"),
            "no PEM certificate",
        ),
        ("key-only", home.file("key.pem", &key_pem), "private key"),
        (
            "bad-der",
            home.file(
                "bad.pem",
                "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
            ),
            "cannot be decoded",
        ),
    ];
    for (name, path, want) in cases {
        let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &path]).await;
        run.expect_code(78);
        let line = error_line(&run);
        assert!(line.contains("--lr-ca-cert"), "{name}: {line}");
        assert!(line.contains(&path), "{name}: {line}");
        assert!(line.contains(want), "{name}: {line}");
        assert!(!home.ledger().exists(), "{name}: a ledger was created");
    }
    // Checked before connecting: not even a handshake reached the listener.
    assert_eq!(api_requests(&p.lr, "lr-alarm-api").await, 0);
    assert_eq!(api_requests(&p.rf, "collective-insights").await, 0);
}

#[tokio::test]
async fn insecure_works_and_warns_on_every_run() {
    let ca = ca();
    let p = pair(leaf(&ca, &["lr.example.com"], "lr.example.com", true)).await;
    let home = Home::new();
    for _ in 0..2 {
        let run = sync(&p, &home, &p.lr.url(), &["--lr-insecure"]).await;
        run.expect_code(0);
        assert!(
            run.stderr.contains("--lr-insecure")
                && run.stderr.contains("NOT verified")
                && run.stderr.contains("WARN"),
            "stderr:\n{}",
            run.stderr
        );
    }
    assert!(!ledger_alarm_ids(&home.ledger()).is_empty());
    assert!(api_requests(&p.lr, "lr-alarm-api").await > 0);
}

#[tokio::test]
async fn the_lr_ca_is_never_trusted_for_recorded_future() {
    let ca = ca();
    let p = pair(good_leaf(&ca)).await;
    // Recorded Future behind the same CA, over HTTPS.
    let rf_tls = sim::start(SimConfig {
        tls: Some(good_leaf(&ca)),
        ..live_config(1, 1)
    })
    .await
    .unwrap();
    let rf_tls = TestSim {
        sim: rf_tls,
        http: p.lr.http.clone(),
    };
    let home = Home::new();
    let ca_file = home.file("ca.pem", &ca.pem);
    let mut cmd = lrci_command(
        &p.rf,
        &home,
        &Keys::of(&p.rf),
        &[
            "sync",
            "--json",
            "--lookback-days",
            "1",
            "--lr-ca-cert",
            &ca_file,
        ],
    );
    cmd.env("LOGRHYTHM_API_URL", p.lr.url())
        .env("RF_API_URL", rf_tls.url());
    let run = finish(cmd.spawn().unwrap()).await;
    run.expect_code(78);
    let line = error_line(&run);
    assert!(
        line.contains("Recorded Future") && line.contains("UnknownIssuer"),
        "{line}"
    );
    // LogRhythm was read with the CA; RF's handshake failed, so nothing reached it.
    assert!(api_requests(&p.lr, "lr-alarm-api").await > 0);
    assert_eq!(api_requests(&rf_tls, "collective-insights").await, 0);
    let states = ledger_states(&home.ledger());
    // Recorded but not sent: all still pending for the next run.
    assert!(!states.contains_key("sent"), "{states:?}");
    assert!(
        states.get("pending").copied().unwrap_or(0) > 0,
        "{states:?}"
    );
}

#[tokio::test]
async fn sim_binary_serves_https_with_given_cert_and_key() {
    use tokio::io::AsyncBufReadExt;
    let ca = ca();
    let leaf = good_leaf(&ca);
    let home = Home::new();
    let cert = home.file("leaf.pem", std::str::from_utf8(&leaf.cert).unwrap());
    let key = home.file("leaf.key", std::str::from_utf8(&leaf.key).unwrap());
    let mut child = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"))
        .args([
            "sim",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--hours",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("lrci-sim listening on ")
        .unwrap_or_else(|| panic!("{first}"));
    assert!(url.starts_with("https://127.0.0.1:"), "{first}");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let stats: Value = client
        .get(format!("{url}/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["requests"].is_object(), "{stats}");
    // Plain HTTP on the same port is not served.
    let plain = url.replace("https://", "http://");
    let r = reqwest::Client::new()
        .get(format!("{plain}/_sim/stats"))
        .send()
        .await;
    assert!(r.map(|r| !r.status().is_success()).unwrap_or(true));
    child.kill().await.unwrap();
}

/// A self-signed certificate with the CA flag, serving as the gateway's own (what
/// `openssl req -x509` makes): valid from `from_year` to `to_year`.
fn ca_flagged_self_signed(sans: &[&str], from_year: i32, to_year: i32) -> TlsPem {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, sans[0]);
    p.not_before = rcgen::date_time_ymd(from_year, 1, 1);
    p.not_after = rcgen::date_time_ymd(to_year, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    TlsPem {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
    }
}

/// Issue 12: the CA-flagged self-signed certificate given with `--lr-ca-cert`
/// is accepted as the gateway's own (exactly that certificate, valid, naming
/// the host); webpki alone refuses it as `CaUsedAsEndEntity`.
#[tokio::test]
async fn a_ca_flagged_self_signed_certificate_given_with_lr_ca_cert_works() {
    let tls = ca_flagged_self_signed(&["127.0.0.1", "localhost"], 2020, 2090);
    let pem = String::from_utf8(tls.cert.clone()).unwrap();
    let p = pair(tls).await;
    let home = Home::new();
    let file = home.file("gateway.pem", &pem);
    let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &file]).await;
    run.expect_code(0);
    assert!(run.summary()["alarms"]["seen"].as_u64().unwrap() > 0);
    let by_name = p.lr.url().replace("127.0.0.1", "localhost");
    let home2 = Home::new();
    let file = home2.file("gateway.pem", &pem);
    sync(&p, &home2, &by_name, &["--lr-ca-cert", &file])
        .await
        .expect_code(0);
}

#[tokio::test]
async fn another_ca_flagged_certificate_is_refused_with_advice_that_fits() {
    let p = pair(ca_flagged_self_signed(&["127.0.0.1"], 2020, 2090)).await;
    let other = ca_flagged_self_signed(&["127.0.0.1"], 2020, 2090);
    let home = Home::new();
    let file = home.file("other.pem", std::str::from_utf8(&other.cert).unwrap());
    let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &file]).await;
    let line = assert_refused(
        &p,
        &home,
        &run,
        &[
            "self-signed CA certificate",
            "exact certificate",
            "--lr-insecure",
        ],
    )
    .await;
    assert!(
        !line.contains("pass its CA"),
        "advice to do what was just done: {line}"
    );
}

#[tokio::test]
async fn a_pinned_certificate_is_still_checked_for_name_and_validity() {
    // Expired.
    let tls = ca_flagged_self_signed(&["127.0.0.1"], 2000, 2001);
    let pem = String::from_utf8(tls.cert.clone()).unwrap();
    let p = pair(tls).await;
    let home = Home::new();
    let file = home.file("gateway.pem", &pem);
    let run = sync(&p, &home, &p.lr.url(), &["--lr-ca-cert", &file]).await;
    assert_refused(&p, &home, &run, &["Expired"]).await;
    // Not for this name.
    let tls = ca_flagged_self_signed(&["127.0.0.1"], 2020, 2090);
    let pem = String::from_utf8(tls.cert.clone()).unwrap();
    let p = pair(tls).await;
    let home = Home::new();
    let file = home.file("gateway.pem", &pem);
    let by_name = p.lr.url().replace("127.0.0.1", "localhost");
    let run = sync(&p, &home, &by_name, &["--lr-ca-cert", &file]).await;
    assert_refused(&p, &home, &run, &["NotValidForName"]).await;
}
