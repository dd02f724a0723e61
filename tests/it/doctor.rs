//! `lrci doctor`: the real binary against the in-process simulator. Each failure
//! class has its exit code and a FAIL line naming what to fix; doctor never
//! submits a detection, never changes the ledger, makes no request with
//! `--offline`, and never prints a secret.

use crate::harness::*;
use lrci::sim::SimConfig;
use serde_json::Value;
use std::path::Path;

/// A token of the form Recorded Future issues, valid but without CI permission.
const NO_CI_TOKEN: &str = "feedfacefeedfacefeedfacefeedface";

fn sim_config() -> SimConfig {
    SimConfig {
        rf_no_ci_key: Some(NO_CI_TOKEN.into()),
        ..live_config(3, 20)
    }
}

/// The `--json` document of a doctor run, checked against the process exit code.
fn report(run: &LrciRun) -> Value {
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "doctor --json is not one JSON object ({e}):\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    });
    assert_eq!(
        doc["exit_code"].as_i64(),
        Some(i64::from(run.code)),
        "{doc}"
    );
    doc
}

/// The check called `name` (exactly one).
fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let found: Vec<&Value> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "check {name:?} in {doc:#}");
    found[0]
}

fn status<'a>(doc: &'a Value, name: &str) -> &'a str {
    check(doc, name)["status"].as_str().unwrap()
}

fn detail<'a>(doc: &'a Value, name: &str) -> &'a str {
    check(doc, name)["detail"].as_str().unwrap()
}

/// Names of the checks that did not pass.
fn not_ok(doc: &Value) -> Vec<String> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| format!("{} {}: {}", c["status"], c["name"], c["detail"]))
        .collect()
}

fn assert_no_secret(run: &LrciRun, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "secret {s:?} printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// Nothing reached CI's store and no submission was even attempted.
async fn assert_nothing_submitted(sim: &TestSim) {
    assert!(received(sim).await.is_empty(), "doctor stored detections");
    let stats = admin_get(sim, "/_sim/stats").await;
    assert_eq!(
        route_count(&stats, CI_ROUTE),
        0,
        "doctor posted detections: {stats}"
    );
}

/// A ledger written by a real sync; the simulator's counters reset afterwards.
async fn synced(sim: &TestSim, home: &Home) {
    lrci(sim, home, &["sync", "--json"]).await.expect_code(0);
    admin_post(sim, "/_sim/reset", serde_json::json!({})).await;
}

fn ledger_bytes(home: &Home) -> Vec<u8> {
    std::fs::read(home.ledger()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_checks_pass_against_the_sim() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    let before = ledger_bytes(&home);

    let run = lrci(&sim, &home, &["doctor", "--json"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 0, "{doc:#}");
    assert!(not_ok(&doc).is_empty(), "{:#?}", not_ok(&doc));
    for name in [
        "config: LOGRHYTHM_API_URL",
        "config: LOGRHYTHM_API_KEY",
        "config: RF_API_URL",
        "config: RF_API_KEY",
        "config: filter files",
        "ledger: path",
        "ledger: open",
        "ledger: integrity",
        "ledger: quick_check",
        "ledger: file mode",
        "ledger: lock",
        "ledger: WAL",
        "logs: directory",
        "logrhythm",
        "logrhythm: server profile",
        "logrhythm: time zone",
        "collective insights",
    ] {
        assert_eq!(status(&doc, name), "ok", "{name}");
    }
    assert!(detail(&doc, "ledger: integrity").contains("integrity_check"));
    // Issue 13: the quick_check the sync ran on its new ledger, and the next one.
    let quick = detail(&doc, "ledger: quick_check");
    assert!(
        quick.contains("last run")
            && quick.contains("no check recorded")
            && quick.contains(": ok; next"),
        "{quick}"
    );
    assert!(detail(&doc, "logrhythm").contains("ms"));
    // Issue 11: the probe the sync recorded, and the live time-zone self-check.
    let profile = detail(&doc, "logrhythm: server profile");
    assert!(
        profile.contains("page cap at least 60 rows") && profile.contains("offset ignored"),
        "{profile}"
    );
    let tz = detail(&doc, "logrhythm: time zone");
    assert!(
        tz.contains("read as UTC") && tz.contains("3 requests"),
        "{tz}"
    );

    // One cheap request to each API (plus the time-zone self-check's newest
    // alarm and two bounds around it), and no submission.
    let stats = admin_get(&sim, "/_sim/stats").await;
    assert_eq!(route_count(&stats, LIST_ROUTE), 1 + 3, "{stats}");
    assert_eq!(
        route_count(&stats, "POST /collective-insights/search"),
        1,
        "{stats}"
    );
    assert_nothing_submitted(&sim).await;
    assert_eq!(ledger_bytes(&home), before, "doctor changed the ledger");

    // People get one line per check and a closing count.
    let human = lrci(&sim, &home, &["doctor"])
        .await
        .expect_code(0)
        .stdout
        .clone();
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), doc["checks"].as_array().unwrap().len() + 1);
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.starts_with("ok ")),
        "{human}"
    );
    assert!(
        lines[lines.len() - 1].contains("0 FAIL; exit code 0"),
        "{human}"
    );

    let keys = Keys::of(&sim);
    assert_no_secret(&run, &[&keys.lr, &keys.rf]);
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ledger_is_a_warning_and_is_not_created() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    let run = lrci(&sim, &home, &["doctor", "--json"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 0, "{doc:#}");
    assert_eq!(status(&doc, "ledger: file"), "warn");
    assert!(detail(&doc, "ledger: file").contains("no run yet"));
    assert!(!home.ledger().exists(), "doctor created the ledger");
    assert!(!home.log_dir().exists(), "doctor created the log directory");
    assert!(
        !lrci::ledger::RunLock::path_for(&home.ledger()).exists(),
        "doctor created the lock file"
    );
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_logrhythm_key_fails_with_77() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    let keys = Keys {
        lr: "wrong-lr-secret-value".into(),
        ..Keys::of(&sim)
    };
    let run = lrci_with(&sim, &home, &keys, &["doctor", "--json"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 77, "{doc:#}");
    assert_eq!(status(&doc, "logrhythm"), "fail");
    assert!(detail(&doc, "logrhythm").contains("LOGRHYTHM_API_KEY"));
    // The other API is still checked, and passes.
    assert_eq!(status(&doc, "collective insights"), "ok");
    assert_no_secret(&run, &[&keys.lr, &keys.rf]);
    assert_nothing_submitted(&sim).await;

    let human = lrci_with(&sim, &home, &keys, &["doctor"]).await;
    human.expect_code(77);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("FAIL  logrhythm")),
        "{}",
        human.stdout
    );
    assert_no_secret(&human, &[&keys.lr, &keys.rf]);
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_ci_permission_fails_with_77() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    let keys = Keys {
        rf: NO_CI_TOKEN.into(),
        ..Keys::of(&sim)
    };
    let run = lrci_with(&sim, &home, &keys, &["doctor", "--json"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 77, "{doc:#}");
    assert_eq!(status(&doc, "config: RF_API_KEY"), "ok");
    assert_eq!(status(&doc, "collective insights"), "fail");
    let d = detail(&doc, "collective insights");
    assert!(d.contains("403") && d.contains("permission"), "{d}");
    assert_eq!(status(&doc, "logrhythm"), "ok");
    assert_no_secret(&run, &[&keys.lr, &keys.rf]);
    assert_nothing_submitted(&sim).await;
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_logrhythm_fails_with_69() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    // A loopback port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let keys = Keys::of(&sim);
    let mut cmd = lrci_command(&sim, &home, &keys, &["doctor", "--json"]);
    cmd.env("LOGRHYTHM_API_URL", format!("http://127.0.0.1:{closed}"));
    let run = finish(cmd.spawn().unwrap()).await;
    let doc = report(&run);
    assert_eq!(run.code, 69, "{doc:#}");
    assert_eq!(status(&doc, "logrhythm"), "fail");
    let d = detail(&doc, "logrhythm");
    assert!(
        d.contains("could not connect") && d.contains("LOGRHYTHM_API_URL"),
        "{d}"
    );
    assert_eq!(status(&doc, "collective insights"), "ok");
    assert_nothing_submitted(&sim).await;
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_outrank_unreachable_in_the_exit_code() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let keys = Keys {
        rf: "00000000000000000000000000000000".into(),
        ..Keys::of(&sim)
    };
    let mut cmd = lrci_command(&sim, &home, &keys, &["doctor", "--json"]);
    cmd.env("LOGRHYTHM_API_URL", format!("http://127.0.0.1:{closed}"));
    let run = finish(cmd.spawn().unwrap()).await;
    let doc = report(&run);
    assert_eq!(status(&doc, "logrhythm"), "fail");
    assert_eq!(status(&doc, "collective insights"), "fail");
    assert_eq!(run.code, 77, "{doc:#}");
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_ledger_fails_with_65_and_is_left_untouched() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    {
        let c = rusqlite::Connection::open(home.ledger()).unwrap();
        c.pragma_update(None, "application_id", lrci::ledger::APPLICATION_ID)
            .unwrap();
        c.pragma_update(None, "user_version", 9999).unwrap();
        c.execute_batch("CREATE TABLE future (x); INSERT INTO future VALUES (1);")
            .unwrap();
    }
    let before = ledger_bytes(&home);
    let run = lrci(&sim, &home, &["doctor", "--json", "--offline"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 65, "{doc:#}");
    assert_eq!(status(&doc, "ledger: open"), "fail");
    let d = detail(&doc, "ledger: open");
    assert!(d.contains("9999") && d.contains("upgrade lrci"), "{d}");
    assert_eq!(ledger_bytes(&home), before, "doctor changed a newer ledger");
    let names: Vec<String> = std::fs::read_dir(home.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["ledger.sqlite3"], "doctor left files beside it");
    sim.sim.shutdown().await;
}

/// Issue 12: `--max-age` fails (75) when the last successful sync is older, or
/// when there is none; a recent one passes and the check says when it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_fails_when_the_last_successful_sync_is_older() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    let run = lrci(
        &sim,
        &home,
        &["doctor", "--json", "--offline", "--max-age", "1h"],
    )
    .await;
    let doc = report(&run);
    assert_eq!(run.code, 0, "{doc:#}");
    assert_eq!(status(&doc, "ledger: freshness"), "ok", "{doc:#}");
    assert!(detail(&doc, "ledger: freshness").contains("last successful sync"));

    // The successful run is made three hours old; a later failed run does not count.
    let c = rusqlite::Connection::open(home.ledger()).unwrap();
    let old = (chrono::Utc::now() - chrono::Duration::hours(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    c.execute("UPDATE runs SET started_at = ?1", [&old])
        .unwrap();
    c.execute(
        "INSERT INTO runs (kind, started_at, finished_at, exit_code) VALUES ('sync', ?1, ?1, 69)",
        [chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
    )
    .unwrap();
    drop(c);
    let run = lrci(
        &sim,
        &home,
        &["doctor", "--json", "--offline", "--max-age", "2h"],
    )
    .await;
    let doc = report(&run);
    assert_eq!(run.code, 75, "{doc:#}");
    assert_eq!(status(&doc, "ledger: freshness"), "fail");
    let d = detail(&doc, "ledger: freshness");
    assert!(
        d.contains("older than --max-age 2h") && d.contains("exited 69"),
        "{d}"
    );
    let run = lrci(
        &sim,
        &home,
        &["doctor", "--json", "--offline", "--max-age", "4h"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);

    // No successful run at all.
    let c = rusqlite::Connection::open(home.ledger()).unwrap();
    c.execute("UPDATE runs SET exit_code = 69", []).unwrap();
    drop(c);
    let run = lrci(
        &sim,
        &home,
        &["doctor", "--json", "--offline", "--max-age", "4h"],
    )
    .await;
    assert_eq!(run.code, 75, "{}", run.stdout);
    // Without --max-age it is only a warning.
    let run = lrci(&sim, &home, &["doctor", "--json", "--offline"]).await;
    assert_eq!(status(&report(&run), "ledger: freshness"), "warn");
    assert_eq!(run.code, 0, "{}", run.stdout);

    // The same freshness is in `ledger status --json`.
    let st = lrci(&sim, &home, &["ledger", "status", "--json"]).await;
    let st: Value = serde_json::from_str(st.stdout.trim()).unwrap();
    assert_eq!(st["freshness"]["last_success_at"], Value::Null, "{st}");
    assert_eq!(st["freshness"]["last_run_exit_code"], 69, "{st}");
}

/// Overwrites part of page 2 of an SQLite file with garbage.
fn corrupt_page_two(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let page = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    assert!(
        bytes.len() >= 3 * page,
        "ledger too small to corrupt page 2"
    );
    for (i, b) in bytes[page..page + 64].iter_mut().enumerate() {
        *b = 0xA5 ^ (i as u8);
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_ledger_fails_with_65() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    corrupt_page_two(&home.ledger());
    let before = ledger_bytes(&home);
    let run = lrci(&sim, &home, &["doctor", "--json"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 65, "{doc:#}");
    let failed: Vec<&Value> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{doc:#}");
    // The header is intact, so it opens; the full check finds the damage.
    assert_eq!(status(&doc, "ledger: open"), "ok", "{doc:#}");
    assert_eq!(failed[0]["name"], "ledger: integrity", "{doc:#}");
    assert!(
        failed[0]["detail"].as_str().unwrap().contains("corrupt"),
        "{doc:#}"
    );
    assert_eq!(ledger_bytes(&home), before, "doctor changed the ledger");
    assert_nothing_submitted(&sim).await;
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_makes_no_request() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    let run = lrci(&sim, &home, &["doctor", "--offline", "--json"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 0, "{doc:#}");
    assert_eq!(status(&doc, "logrhythm"), "info");
    assert_eq!(status(&doc, "collective insights"), "info");
    let stats = admin_get(&sim, "/_sim/stats").await;
    let total: u64 = stats["requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 0, "--offline made requests: {stats}");
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_reported_with_its_pid_and_kept() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    let held = lrci::ledger::RunLock::acquire(&home.ledger()).unwrap();
    let run = lrci(&sim, &home, &["doctor", "--json", "--offline"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 0, "{doc:#}");
    assert_eq!(status(&doc, "ledger: lock"), "info");
    let d = detail(&doc, "ledger: lock");
    assert!(d.contains(&format!("pid {}", std::process::id())), "{d}");
    // Doctor did not take or break it.
    assert!(matches!(
        lrci::ledger::RunLock::acquire(&home.ledger()),
        Err(lrci::ledger::Error::Locked { .. })
    ));
    drop(held);
    let run = lrci(&sim, &home, &["doctor", "--json", "--offline"]).await;
    assert_eq!(status(&report(&run), "ledger: lock"), "ok");
    sim.sim.shutdown().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_modes_are_warnings() {
    use std::os::unix::fs::PermissionsExt;
    let sim = start(sim_config()).await;
    let home = Home::new();
    synced(&sim, &home).await;
    std::fs::set_permissions(home.ledger(), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = lrci(&sim, &home, &["doctor", "--json", "--offline"]).await;
    let doc = report(&run);
    assert_eq!(run.code, 0, "{doc:#}");
    assert_eq!(status(&doc, "ledger: file mode"), "warn");
    assert!(detail(&doc, "ledger: file mode").contains("chmod 600"));
    assert_eq!(status(&doc, "ledger: directory"), "warn");
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_problems_fail_with_78_and_skip_the_api() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    let keys = Keys::of(&sim);
    let mut cmd = lrci_command(&sim, &home, &keys, &["doctor", "--json"]);
    cmd.env_remove("LOGRHYTHM_API_URL")
        .env("RF_API_URL", "http://api.recordedfuture.com");
    let run = finish(cmd.spawn().unwrap()).await;
    let doc = report(&run);
    assert_eq!(run.code, 78, "{doc:#}");
    assert_eq!(status(&doc, "config: LOGRHYTHM_API_URL"), "fail");
    assert!(detail(&doc, "config: RF_API_URL").contains("https"));
    assert_eq!(status(&doc, "logrhythm"), "warn");
    assert_eq!(status(&doc, "collective insights"), "warn");
    let stats = admin_get(&sim, "/_sim/stats").await;
    assert_eq!(stats["requests"].as_object().unwrap().len(), 0, "{stats}");

    // A filter file that does not exist: the same exit code as sync gives it.
    let missing = home.dir.path().join("no-such-rules.txt");
    let run = lrci(
        &sim,
        &home,
        &[
            "doctor",
            "--json",
            "--offline",
            "-ef",
            missing.to_str().unwrap(),
        ],
    )
    .await;
    let doc = report(&run);
    assert_eq!(run.code, 66, "{doc:#}");
    assert_eq!(status(&doc, "config: filter files"), "fail");
    sim.sim.shutdown().await;
}

/// A CA and a leaf for 127.0.0.1 signed by it: (CA PEM, leaf).
fn test_ca_and_leaf() -> (String, lrci::sim::TlsPem) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let leaf = lrci::sim::TlsPem {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
    };
    (issuer.pem(), leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_logrhythm_certificate_fails_with_78_and_the_ca_flag() {
    let (ca_pem, leaf) = test_ca_and_leaf();
    let lr = lrci::sim::start(SimConfig {
        tls: Some(leaf),
        ..live_config(1, 1)
    })
    .await
    .unwrap();
    let rf = start(sim_config()).await;
    let home = Home::new();
    let doctor = |extra: &[&str]| {
        let mut args = vec!["doctor", "--json"];
        args.extend_from_slice(extra);
        let mut cmd = lrci_command(&rf, &home, &Keys::of(&rf), &args);
        cmd.env("LOGRHYTHM_API_URL", lr.url());
        cmd
    };
    let run = finish(doctor(&[]).spawn().unwrap()).await;
    let doc = report(&run);
    assert_eq!(run.code, 78, "{doc:#}");
    assert_eq!(status(&doc, "logrhythm"), "fail");
    assert!(
        detail(&doc, "logrhythm").contains("--lr-ca-cert"),
        "{doc:#}"
    );

    let ca_file = home.file("gateway-ca.pem", &ca_pem);
    let run = finish(doctor(&["--lr-ca-cert", &ca_file]).spawn().unwrap()).await;
    let doc = report(&run);
    assert_eq!(run.code, 0, "{doc:#}");
    assert_eq!(status(&doc, "config: LogRhythm TLS"), "ok");
    assert!(detail(&doc, "logrhythm").contains("TLS trusted"), "{doc:#}");
    lr.shutdown().await;
    rf.sim.shutdown().await;
}
