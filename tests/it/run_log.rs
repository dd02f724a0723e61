//! Issue 12, "logs that explain": under a scheduler stderr is lost, so the log
//! file alone must say that a run started, where its settings came from, how it
//! ended and why. One case per failure class (78, 77, 69, 75; 74 is in
//! `disk_full`), in both log formats, plus the connection and base-path errors a
//! new user trips on (host and cause named; a wrong base path is 78, not 69).

use crate::harness::*;
use lrci::sim::SimConfig;
use serde_json::Value;
use std::path::Path;

/// Every log file's text, concatenated.
fn log_text(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".log"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// How one failure class is provoked, and what its log must say.
struct Case {
    name: &'static str,
    code: i32,
    /// Extra environment (replacing the harness's).
    env: Vec<(&'static str, String)>,
    keys: fn(&TestSim) -> Keys,
    args: Vec<&'static str>,
    /// Every one of these is in the `reason` of the "run failed" line.
    reason: Vec<String>,
}

fn valid(sim: &TestSim) -> Keys {
    Keys::of(sim)
}

fn bad_lr_key(sim: &TestSim) -> Keys {
    Keys {
        lr: "not-the-key".into(),
        ..Keys::of(sim)
    }
}

fn cases(sim: &TestSim, home: &Home) -> Vec<Case> {
    let port = closed_port();
    let config = home.file("bad.toml", "lookback = 1\nno_such_key = 3\n");
    vec![
        Case {
            name: "unknown config key",
            code: 78,
            env: vec![("LRCI_CONFIG", config)],
            keys: valid,
            args: vec!["sync"],
            reason: vec!["no_such_key".into(), "bad.toml".into()],
        },
        Case {
            name: "wrong LogRhythm base path",
            code: 78,
            env: vec![("LOGRHYTHM_API_URL", format!("{}/siem/wrong", sim.url()))],
            keys: valid,
            args: vec!["sync"],
            reason: vec![
                "LOGRHYTHM_API_URL".into(),
                "404".into(),
                "/siem/wrong".into(),
            ],
        },
        Case {
            name: "wrong Collective Insights base path",
            code: 78,
            env: vec![("RF_API_URL", format!("{}/rf/v9", sim.url()))],
            keys: valid,
            args: vec!["sync"],
            reason: vec!["RF_API_URL".into(), "404".into(), "/rf/v9".into()],
        },
        Case {
            name: "rejected LogRhythm key",
            code: 77,
            env: vec![],
            keys: bad_lr_key,
            args: vec!["sync"],
            reason: vec!["LOGRHYTHM_API_KEY".into(), "401".into()],
        },
        Case {
            name: "LogRhythm refuses connections",
            code: 69,
            env: vec![("LOGRHYTHM_API_URL", format!("http://127.0.0.1:{port}"))],
            keys: valid,
            args: vec!["sync", "--max-retries", "0"],
            reason: vec![format!("127.0.0.1:{port}"), "connection refused".into()],
        },
        Case {
            name: "daily budget reached",
            code: 75,
            env: vec![],
            keys: valid,
            args: vec!["sync", "--daily-budget", "3"],
            reason: vec!["budget".into()],
        },
    ]
}

async fn run_case(sim: &TestSim, case: &Case, format: &str) -> (Home, LrciRun) {
    let home = Home::new();
    let mut cmd = lrci_command(sim, &home, &(case.keys)(sim), &case.args);
    cmd.env("LRCI_LOG_FORMAT", format);
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let run = finish(cmd.spawn().unwrap()).await;
    (home, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_log_says_why_each_failure_class_failed() {
    let sim = start(live_config(3, 20)).await;
    let scratch = Home::new();
    for case in cases(&sim, &scratch) {
        let (home, run) = run_case(&sim, &case, "text").await;
        assert_eq!(
            run.code, case.code,
            "{}: stderr:\n{}",
            case.name, run.stderr
        );
        let log = log_text(&home.log_dir());
        let ctx = format!("{}: log file:\n{log}", case.name);
        assert!(log.contains("run started"), "{ctx}");
        // Settings that did not resolve have no origin summary to give.
        if case.name != "unknown config key" {
            assert!(log.contains(" settings origin="), "{ctx}");
        }
        let failed: Vec<&str> = log.lines().filter(|l| l.contains("run failed")).collect();
        assert_eq!(failed.len(), 1, "{ctx}");
        let line = failed[0];
        assert!(line.contains(" ERROR "), "{ctx}");
        assert!(line.contains(&format!("exit_code={}", case.code)), "{ctx}");
        for want in &case.reason {
            assert!(
                line.contains(want.as_str()),
                "{}: {want:?} not in {line}",
                case.name
            );
        }
        // The message does not repeat the reason it carries as a field.
        let reason = line.split(" reason=").nth(1).unwrap_or_default();
        assert!(!reason.is_empty(), "{ctx}");
        assert_eq!(line.matches(reason).count(), 1, "doubled: {line}");
        // No secret in the log.
        let keys = Keys::of(&sim);
        assert!(!log.contains(&keys.lr) && !log.contains(&keys.rf), "{ctx}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_log_carries_the_same_with_stable_fields() {
    let sim = start(live_config(3, 20)).await;
    let scratch = Home::new();
    for case in cases(&sim, &scratch) {
        let (home, run) = run_case(&sim, &case, "json").await;
        assert_eq!(
            run.code, case.code,
            "{}: stderr:\n{}",
            case.name, run.stderr
        );
        let log = log_text(&home.log_dir());
        let lines: Vec<Value> = log
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", case.name))
            })
            .collect();
        for l in &lines {
            for key in [
                "timestamp",
                "level",
                "target",
                "message",
                "run_id",
                "command",
            ] {
                assert!(l.get(key).is_some(), "{}: no {key} in {l}", case.name);
            }
        }
        let started = lines
            .iter()
            .find(|l| l["message"] == "run started")
            .unwrap_or_else(|| panic!("{}: no start line in\n{log}", case.name));
        assert_eq!(started["command"], "sync");
        let failed: Vec<&Value> = lines
            .iter()
            .filter(|l| l["message"] == "run failed")
            .collect();
        assert_eq!(failed.len(), 1, "{}: {log}", case.name);
        let f = failed[0];
        assert_eq!(f["level"], "ERROR");
        assert_eq!(f["exit_code"], case.code);
        assert_eq!(f["run_id"], started["run_id"]);
        let reason = f["reason"].as_str().unwrap_or_default();
        for want in &case.reason {
            assert!(
                reason.contains(want.as_str()),
                "{}: {want:?} not in {reason}",
                case.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_run_logs_its_end_with_exit_code_0() {
    let sim = start(SimConfig {
        ..live_config(2, 10)
    })
    .await;
    let home = Home::new();
    lrci(&sim, &home, &["sync"]).await.expect_code(0);
    let log = log_text(&home.log_dir());
    let ended: Vec<&str> = log.lines().filter(|l| l.contains("run ended")).collect();
    assert_eq!(ended.len(), 1, "{log}");
    assert!(ended[0].contains("exit_code=0"), "{log}");
    assert!(!log.contains("run failed"), "{log}");
}
