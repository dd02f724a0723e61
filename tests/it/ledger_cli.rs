//! The audit commands (`lrci ledger ...`) run as the built binary against a ledger
//! made by a real `sync` against the in-process simulator, plus one alarm written
//! through the ledger API with a rejected, a failed and a pending indicator.
//!
//! Each command's table and JSON are checked against the ledger and against what
//! the simulator's CI stored; also the filters, `show` for sent, excluded, rejected,
//! filtered and unknown alarms, a closed pipe (quiet exit 0), stdout on /dev/full
//! (74), a missing ledger (66, nothing created), reading while another process holds
//! the run lock and a write transaction, and escaping of hostile values.

use crate::harness::*;
use assert_cmd::Command;
use chrono::{Duration as Span, DurationRound, Utc};
use lrci::ledger::{AlarmOutcome, AlarmRecord, RunLock, SliceIngest, SubmissionRecord, Writer};
use lrci::model::{AlarmRow, DetectionState, Indicator, IndicatorType, Verdict};
use lrci::sim::gen::Scenario;
use lrci::sim::SimConfig;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

/// The alarm written through the ledger API.
const SYNTHETIC: i64 = 900_000_001;
/// Its rule name carries a bidi override and an escape sequence.
const SYNTHETIC_RULE: &str = "Recorded Future: \u{202e}gpj.exe \u{1b}[2J test";

/// One ledger shared by the read-only tests.
struct Fixture {
    home: Home,
    summary: Value,
    received: Vec<Value>,
}

impl Fixture {
    fn ledger(&self) -> PathBuf {
        self.home.ledger()
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build_fixture)
}

/// A home under cargo's per-test scratch directory (kept: the fixture is static).
fn scratch_home() -> Home {
    Home {
        dir: tempfile::Builder::new()
            .prefix("ledger_cli")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap(),
    }
}

fn build_fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let home = scratch_home();
    let (summary, received) = rt.block_on(async {
        let sim = start(live_config(12, 40)).await;
        let run = lrci(&sim, &home, &["sync", "--json", "--min-rbp", "30"]).await;
        run.expect_code(0);
        (run.summary(), received(&sim).await)
    });
    add_synthetic_alarm(&home.ledger());
    Fixture {
        home,
        summary,
        received,
    }
}

/// Writes alarm [`SYNTHETIC`] through the ledger API: one indicator rejected by
/// CI, one failed, one left pending, one excluded by policy.
fn add_synthetic_alarm(path: &Path) {
    let now = Utc::now();
    let at = now.duration_trunc(Span::hours(1)).unwrap() - Span::hours(3);
    let ind = |kind, value: &str, verdict| Indicator {
        kind,
        value: value.into(),
        field: "domain",
        verdict,
        source: Default::default(),
    };
    let mut l = Writer::open(path).unwrap();
    l.ingest(
        &SliceIngest {
            run_id: None,
            slice_start: at,
            covered_until: None,
            saturated_at: vec![],
            listed_from: None,
            observations: Vec::new(),
            alarms: vec![AlarmRecord {
                row: AlarmRow {
                    alarm_id: SYNTHETIC.into(),
                    rule_name: SYNTHETIC_RULE.into(),
                    status: 1,
                    entity_name: "Test Entity".into(),
                    date_inserted: at + Span::minutes(7),
                },
                rbp_max: Some(77),
                outcome: AlarmOutcome::Accepted {
                    event_count: 1,
                    indicators: vec![
                        ind(IndicatorType::Domain, "rejected.example", Verdict::Send),
                        ind(IndicatorType::Domain, "failed.example", Verdict::Send),
                        ind(IndicatorType::Domain, "pending.example", Verdict::Send),
                        ind(
                            IndicatorType::Domain,
                            "host.local",
                            Verdict::Exclude("internal domain suffix .local".into()),
                        ),
                    ],
                    note: None,
                },
            }],
        },
        now,
    )
    .unwrap();
    let todo = l
        .detections_to_submit(&[DetectionState::Pending], 0.into(), 1_000_000)
        .unwrap();
    let id = |v: &str| {
        todo.iter()
            .find(|d| d.alarm_id == SYNTHETIC && d.value == v)
            .unwrap()
            .id
    };
    let sub = |status| SubmissionRecord {
        run_id: None,
        at: now,
        debug: false,
        http_status: Some(status),
        processed: None,
    };
    l.mark_rejected(id("rejected.example"), &sub(400), "invalid ioc.value")
        .unwrap();
    l.mark_failed(&[id("failed.example")], &sub(503), "HTTP 503 from CI")
        .unwrap();
}

/// `lrci ARGS` with a clean environment and the ledger at `ledger`.
fn cmd(ledger: &Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("lrci").unwrap();
    c.env_clear()
        .env("LRCI_LEDGER", ledger)
        .args(args)
        .timeout(std::time::Duration::from_secs(60));
    c
}

fn run(ledger: &Path, args: &[&str]) -> Output {
    cmd(ledger, args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and expects exit 0 with nothing on stderr; returns stdout.
fn ok(ledger: &Path, args: &[&str]) -> String {
    let o = run(ledger, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: stderr:\n{}",
        stderr(&o)
    );
    assert!(o.stderr.is_empty(), "{args:?}: stderr:\n{}", stderr(&o));
    stdout(&o)
}

fn json(ledger: &Path, args: &[&str]) -> Value {
    let text = ok(ledger, args);
    assert_eq!(text.lines().count(), 1, "one JSON document a line: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Asserts a refusal: `code`, exactly one `error:` line naming each of `names`,
/// nothing on stdout.
fn assert_error(o: &Output, code: i32, names: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr:\n{err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for name in names {
        assert!(lines[0].contains(name), "{name:?} not in {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn sqlite_count(ledger: &Path, sql: &str) -> i64 {
    ledger_ro(ledger).query_row(sql, [], |r| r.get(0)).unwrap()
}

// ---------------------------------------------------------------------------

#[test]
fn status_json_and_table_match_the_ledger() {
    let f = fixture();
    let l = f.ledger();
    let s = json(&l, &["ledger", "status", "--json", "--days", "1"]);

    let states = ledger_states(&l);
    for state in ["pending", "sent", "failed", "rejected", "excluded"] {
        let want = states.get(state).copied().unwrap_or(0);
        assert_eq!(n(&s["detections"][state]), want, "{state}: {s}");
    }
    assert_eq!(n(&s["detections"]["rejected"]), 1);
    assert_eq!(n(&s["detections"]["failed"]), 1);
    assert_eq!(n(&s["detections"]["pending"]), 1);
    assert_eq!(
        n(&s["alarms"]["total"]),
        i64::try_from(ledger_alarm_ids(&l).len()).unwrap()
    );
    assert_eq!(
        n(&s["alarms"]["filtered"]),
        sqlite_count(
            &l,
            "SELECT count(*) FROM alarms WHERE decision = 'filtered'"
        )
    );
    assert!(
        n(&s["alarms"]["filtered"]) > 0,
        "--min-rbp 30 filters some: {s}"
    );

    // The sync covered every whole hour of the last day; the hour just before the
    // current one may still be partial in the first minutes of an hour (settle).
    let c = &s["coverage"];
    assert_eq!(n(&c["hours"]), 24, "{c}");
    assert_eq!(n(&c["covered_hours"]) + n(&c["partial_hours"]), 24, "{c}");
    assert!(n(&c["partial_hours"]) <= 1, "{c}");
    assert_eq!(n(&c["uncovered_hours"]), 0, "{c}");

    let last = &s["last_run"];
    assert_eq!(last["kind"], "sync");
    assert_eq!(last["exit_code"], f.summary["exit_code"]);
    assert_eq!(last["sent"], f.summary["detections"]["submitted"]);
    assert_eq!(last["id"], f.summary["run_id"]);
    assert_eq!(s["runs"].as_array().unwrap().len(), 1);
    // Freshness: the one sync succeeded, its window is the sync window.
    let fr = &s["freshness"];
    assert_eq!(fr["last_run_kind"], "sync", "{fr}");
    if f.summary["exit_code"] == 0 {
        assert_eq!(fr["last_success_at"], last["started_at"], "{fr}");
        assert!(
            fr["last_success_age_seconds"].as_f64().unwrap() >= 0.0,
            "{fr}"
        );
    }
    assert_eq!(fr["window_start"], f.summary["window"]["from"], "{fr}");
    assert!(fr["coverage_lag_seconds"].as_f64().unwrap() >= 0.0, "{fr}");
    // Alarms of the last day were first seen after they were inserted.
    assert!(
        fr["visibility_lag_seconds"].as_f64().unwrap() >= 0.0,
        "{fr}"
    );
    assert_eq!(s["budget"]["used"], f.summary["budget"]["used"]);
    assert_eq!(n(&s["budget"]["limit"]), 15_000);

    // Two days: the day before the sync's window is one uncovered range.
    let s2 = json(&l, &["ledger", "status", "--json", "--days", "2"]);
    let gaps = s2["coverage"]["gaps"].as_array().unwrap();
    assert_eq!(gaps[0]["kind"], "uncovered", "{gaps:?}");
    assert_eq!(n(&gaps[0]["hours"]), 24, "{gaps:?}");
    assert_eq!(n(&s2["coverage"]["uncovered_hours"]), 24);

    let table = ok(&l, &["ledger", "status", "--daily-budget", "5000"]);
    let sent = states["sent"];
    assert!(
        table.contains(&format!("{sent} sent")),
        "sent count in: {table}"
    );
    assert!(table.contains("sync window"), "{table}");
    assert!(table.contains("last success "), "{table}");
    assert!(table.contains(" of 5000 detections sent today"), "{table}");
    assert!(table.contains("sync"), "{table}");
}

#[test]
fn alarms_filters_and_output() {
    let f = fixture();
    let l = f.ledger();
    let all = json(&l, &["ledger", "alarms", "--json", "--limit", "100000"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), ledger_alarm_ids(&l).len());
    let times: Vec<&str> = all
        .iter()
        .map(|a| a["date_inserted"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let filtered = json(
        &l,
        &[
            "ledger",
            "alarms",
            "--json",
            "--decision",
            "filtered",
            "--limit",
            "100000",
        ],
    );
    let filtered = filtered.as_array().unwrap();
    assert_eq!(
        i64::try_from(filtered.len()).unwrap(),
        sqlite_count(
            &l,
            "SELECT count(*) FROM alarms WHERE decision = 'filtered'"
        )
    );
    assert!(filtered
        .iter()
        .all(|a| a["decision"] == "filtered" && a["reason"].is_string()));

    let rf = json(
        &l,
        &[
            "ledger",
            "alarms",
            "--json",
            "--rule",
            "recorded future",
            "--limit",
            "100000",
        ],
    );
    let rf = rf.as_array().unwrap();
    let want = all
        .iter()
        .filter(|a| {
            a["rule_name"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("recorded future")
        })
        .count();
    assert!(want > 0);
    assert_eq!(rf.len(), want);

    // A window: [from, to) on dateInserted.
    let mid = times[times.len() / 2];
    let later = json(
        &l,
        &[
            "ledger", "alarms", "--json", "--from", mid, "--limit", "100000",
        ],
    );
    let earlier = json(
        &l,
        &[
            "ledger", "alarms", "--json", "--to", mid, "--limit", "100000",
        ],
    );
    let (later, earlier) = (later.as_array().unwrap(), earlier.as_array().unwrap());
    assert_eq!(later.len() + earlier.len(), all.len());
    assert!(later
        .iter()
        .all(|a| a["date_inserted"].as_str().unwrap() >= mid));
    assert!(earlier
        .iter()
        .all(|a| a["date_inserted"].as_str().unwrap() < mid));

    let three = json(&l, &["ledger", "alarms", "--json", "--limit", "3"]);
    assert_eq!(three.as_array().unwrap().len(), 3);

    let table = ok(&l, &["ledger", "alarms", "--limit", "5"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("alarm") && lines[0].contains("decision"),
        "{table}"
    );
    assert!(lines[1].starts_with('─'), "{table}");
    assert_eq!(lines.len(), 2 + 5 + 1, "{table}");
    let newest = all[0]["alarm_id"].as_i64().unwrap().to_string();
    assert!(lines[2].trim_start().starts_with(&newest), "{table}");
    assert!(table.contains("5 alarms shown"));

    let bad = run(&l, &["ledger", "alarms", "--from", "yesterday"]);
    assert_error(&bad, 2, &["--from"]);
}

#[test]
fn indicators_filters() {
    let f = fixture();
    let l = f.ledger();
    let all = json(
        &l,
        &["ledger", "indicators", "--json", "--limit", "1000000"],
    );
    let all = all.as_array().unwrap();
    let total: i64 = ledger_states(&l).values().sum();
    assert_eq!(i64::try_from(all.len()).unwrap(), total);

    let ips = json(
        &l,
        &[
            "ledger",
            "indicators",
            "--json",
            "--type",
            "ip",
            "--limit",
            "1000000",
        ],
    );
    let ips = ips.as_array().unwrap();
    assert!(!ips.is_empty());
    assert!(ips.iter().all(|i| i["type"] == "ip"));
    assert_eq!(ips.len(), all.iter().filter(|i| i["type"] == "ip").count());

    let excluded = json(
        &l,
        &[
            "ledger",
            "indicators",
            "--json",
            "--state",
            "excluded",
            "--limit",
            "1000000",
        ],
    );
    let excluded = excluded.as_array().unwrap();
    assert_eq!(
        i64::try_from(excluded.len()).unwrap(),
        ledger_states(&l)["excluded"]
    );
    assert!(excluded.iter().all(|i| i["reason"].is_string()));

    let by_value = json(
        &l,
        &[
            "ledger",
            "indicators",
            "--json",
            "--value",
            "EXAMPLE",
            "--alarm",
            "900000001",
        ],
    );
    let values: BTreeSet<&str> = by_value
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        BTreeSet::from(["rejected.example", "failed.example", "pending.example"])
    );

    let rejected = json(
        &l,
        &["ledger", "indicators", "--json", "--state", "rejected"],
    );
    assert_eq!(rejected[0]["value"], "rejected.example");
    assert_eq!(rejected[0]["reason"], "invalid ioc.value");

    let table = ok(&l, &["ledger", "indicators", "--state", "failed"]);
    assert!(table.contains("failed.example"), "{table}");
    assert!(table.contains("HTTP 503 from CI"), "{table}");
    assert!(table.contains("1 indicators shown"), "{table}");
}

/// The audit question of issue 4: did alarm X reach Recorded Future, which
/// indicators, when, and if not, why? Answered from `show --json` alone and checked
/// against what the simulator's CI stored.
#[test]
fn show_answers_the_audit_question() {
    let f = fixture();
    let l = f.ledger();
    let mut by_alarm: BTreeMap<i64, BTreeSet<(String, String)>> = BTreeMap::new();
    for item in &f.received {
        let (id, t, v) = received_key(item);
        by_alarm.entry(id).or_default().insert((t, v));
    }
    // The alarm with the most indicators received, and one with an exclusion.
    let (&x, sent_to_ci) = by_alarm.iter().max_by_key(|(_, s)| s.len()).unwrap();
    let s = json(&l, &["ledger", "show", &x.to_string(), "--json"]);
    assert_eq!(s["alarm"]["alarm_id"], x);
    assert_eq!(s["reached_rf"], true);
    assert_eq!(s["alarm"]["decision"], "accepted");
    let inds = s["indicators"].as_array().unwrap();
    let sent: BTreeSet<(String, String)> = inds
        .iter()
        .filter(|i| i["state"] == "sent")
        .map(|i| {
            (
                i["type"].as_str().unwrap().to_string(),
                i["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(&sent, sent_to_ci, "sent per the ledger = stored by CI");
    assert_eq!(n(&s["sent"]), i64::try_from(sent.len()).unwrap());
    for i in inds.iter().filter(|i| i["state"] == "sent") {
        assert!(i["sent_at"].is_string(), "{i}");
        assert!(i["field"].is_string(), "{i}");
        assert_eq!(i["submission"]["outcome"], "ok", "{i}");
        assert_eq!(i["submission"]["http_status"], 200, "{i}");
        assert_eq!(i["submission"]["debug"], false, "{i}");
        assert_eq!(i["submission"]["run_id"], f.summary["run_id"], "{i}");
    }
    assert!(s["verdict"].as_str().unwrap().starts_with("yes"), "{s}");

    // Excluded: not sent, with the policy's reason, and no submission.
    let excluded = json(
        &l,
        &["ledger", "indicators", "--json", "--state", "excluded"],
    );
    let ex = &excluded[0];
    let ex_alarm = ex["alarm_id"].as_i64().unwrap();
    let s = json(&l, &["ledger", "show", &ex_alarm.to_string(), "--json"]);
    let shown = s["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["value"] == ex["value"])
        .unwrap();
    assert_eq!(shown["state"], "excluded");
    assert_eq!(shown["reason"], ex["reason"]);
    assert!(shown["submission"].is_null());
    assert!(shown["sent_at"].is_null());

    // Filtered: never reached RF, and the reason says why.
    let filtered = json(
        &l,
        &["ledger", "alarms", "--json", "--decision", "filtered"],
    );
    let fid = filtered[0]["alarm_id"].as_i64().unwrap();
    assert!(!by_alarm.contains_key(&fid));
    let s = json(&l, &["ledger", "show", &fid.to_string(), "--json"]);
    assert_eq!(s["reached_rf"], false);
    assert_eq!(s["indicators"].as_array().unwrap().len(), 0);
    let verdict = s["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("filtered") && verdict.contains("rbp"),
        "{verdict}"
    );
}

#[test]
fn show_rejected_failed_pending_as_json_and_text() {
    let f = fixture();
    let l = f.ledger();
    let s = json(&l, &["ledger", "show", "900000001", "--json"]);
    assert_eq!(s["reached_rf"], false);
    assert_eq!(s["alarm"]["rule_name"], SYNTHETIC_RULE);
    let by = |v: &str| {
        s["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["value"] == v)
            .unwrap()
            .clone()
    };
    let rejected = by("rejected.example");
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(rejected["reason"], "invalid ioc.value");
    assert_eq!(rejected["submission"]["outcome"], "rejected");
    assert_eq!(rejected["submission"]["http_status"], 400);
    let failed = by("failed.example");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["last_error"], "HTTP 503 from CI");
    assert_eq!(failed["submission"]["http_status"], 503);
    assert_eq!(by("pending.example")["state"], "pending");
    let verdict = s["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("1 excluded by policy, 1 rejected by CI, 1 failed, 1 pending"),
        "{verdict}"
    );

    let text = ok(&l, &["ledger", "show", "900000001"]);
    assert!(text.contains("rejected.example"), "{text}");
    assert!(text.contains("rejected http 400"), "{text}");
    assert!(text.contains("invalid ioc.value"), "{text}");
    assert!(text.contains("decision     accepted"), "{text}");
    // The hostile rule name is shown escaped, never raw.
    assert!(text.contains("\\u{202e}gpj.exe \\u{1b}[2J"), "{text}");
    assert!(
        !text.contains('\u{202e}') && !text.contains('\u{1b}'),
        "{text}"
    );
    // JSON carries the same name, with the bidi override escaped in the bytes.
    let raw = ok(&l, &["ledger", "show", "900000001", "--json"]);
    assert!(raw.contains("\\u202e"), "{raw}");
    assert!(!raw.contains('\u{202e}') && !raw.contains('\u{1b}'));
}

#[test]
fn show_unknown_alarm_is_exit_2_with_one_line() {
    let f = fixture();
    let o = run(&f.ledger(), &["ledger", "show", "4711"]);
    assert_error(&o, 2, &["4711", "not in the ledger"]);
    let o = run(&f.ledger(), &["ledger", "show", "4711", "--json"]);
    assert_error(&o, 2, &["4711"]);
}

#[test]
fn runs_lists_each_run_with_its_summary() {
    let f = fixture();
    let l = f.ledger();
    let runs = json(&l, &["ledger", "runs", "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r["kind"], "sync");
    assert_eq!(
        r["summary"], f.summary,
        "the stored summary is the printed one"
    );
    assert_eq!(r["sent"], f.summary["detections"]["submitted"]);
    assert!(r["duration_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(r["window_from"], f.summary["window"]["from"]);
    let table = ok(&l, &["ledger", "runs"]);
    let row = table.lines().nth(2).unwrap();
    assert!(row.contains("sync"), "{table}");
    assert!(
        row.contains(&f.summary["detections"]["submitted"].to_string()),
        "{table}"
    );
}

#[test]
fn gaps_merge_uncovered_hours_and_take_a_window() {
    let f = fixture();
    let l = f.ledger();
    let g = json(&l, &["ledger", "gaps", "--days", "3", "--json"]);
    let gaps = g["gaps"].as_array().unwrap();
    // Two days before the sync's one-day window, merged into one range.
    assert_eq!(gaps[0]["kind"], "uncovered", "{g}");
    assert_eq!(n(&gaps[0]["hours"]), 48, "{g}");
    assert_eq!(gaps[0]["from"], g["from"]);
    assert_eq!(gaps[0]["to"], f.summary["window"]["from"], "{g}");
    assert_eq!(n(&g["coverage"]["hours"]), 72);

    // A window inside what the sync covered has no uncovered hours.
    let from = f.summary["window"]["from"].as_str().unwrap();
    let to = (lrci::engine::floor_hour(instant(from)) + Span::hours(5)).to_rfc3339();
    let g = json(
        &l,
        &["ledger", "gaps", "--from", from, "--to", &to, "--json"],
    );
    assert_eq!(g["gaps"].as_array().unwrap().len(), 0, "{g}");
    assert_eq!(n(&g["coverage"]["covered_hours"]), 5, "{g}");
    let text = ok(&l, &["ledger", "gaps", "--from", from, "--to", &to]);
    assert!(text.contains("5 of 5 hours covered"), "{text}");
    assert!(text.contains("no gaps"), "{text}");

    let text = ok(&l, &["ledger", "gaps", "--days", "3"]);
    assert!(
        text.contains("uncovered") && text.contains("never listed"),
        "{text}"
    );

    // By default the window is the sync's own (a one-day first sync does not
    // look broken): from the oldest hour it listed, nothing uncovered.
    let g = json(&l, &["ledger", "gaps", "--json"]);
    assert_eq!(g["from"], f.summary["window"]["from"], "{g}");
    assert_eq!(n(&g["coverage"]["uncovered_hours"]), 0, "{g}");
    assert!(n(&g["coverage"]["partial_hours"]) <= 1, "{g}");
    let text = ok(&l, &["ledger", "gaps"]);
    assert!(!text.contains("never listed"), "{text}");

    let o = run(&l, &["ledger", "gaps", "--from", &to, "--to", from]);
    assert_error(&o, 2, &["--from"]);
    let o = run(
        &l,
        &["ledger", "gaps", "--days", "2", "--from", from, "--to", &to],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn export_jsonl_and_csv_hold_every_detection() {
    let f = fixture();
    let l = f.ledger();
    let total: i64 = ledger_states(&l).values().sum();

    let jsonl = ok(&l, &["ledger", "export", "--format", "jsonl"]);
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(i64::try_from(rows.len()).unwrap(), total);
    let ids: Vec<i64> = rows.iter().map(|r| n(&r["detection_id"])).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let synthetic = rows
        .iter()
        .find(|r| r["value"] == "rejected.example")
        .unwrap();
    assert_eq!(synthetic["rule_name"], SYNTHETIC_RULE);
    assert_eq!(synthetic["alarm_id"], SYNTHETIC);
    assert_eq!(synthetic["rbp_max"], 77);
    assert!(!jsonl.contains('\u{202e}'), "bidi escaped in JSON lines");

    let csv_text = ok(&l, &["ledger", "export", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, lrci::cli::ledger::EXPORT_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(i64::try_from(records.len()).unwrap(), total);
    assert!(records.iter().all(|r| r.len() == header.len()));

    let sent = ok(
        &l,
        &["ledger", "export", "--format", "jsonl", "--state", "sent"],
    );
    assert_eq!(
        i64::try_from(sent.lines().count()).unwrap(),
        ledger_states(&l)["sent"]
    );
    assert_eq!(
        sent.lines().count(),
        f.received.len(),
        "sent rows = items CI stored"
    );

    let none = ok(
        &l,
        &[
            "ledger",
            "export",
            "--format",
            "csv",
            "--from",
            "2000-01-01",
            "--to",
            "2000-01-02",
        ],
    );
    assert_eq!(none.lines().count(), 1, "header only: {none}");

    let o = run(&l, &["ledger", "export"]);
    assert_eq!(o.status.code(), Some(2), "--format is required");
}

/// `lrci ledger ... | head`: the reader closes the pipe after one line.
#[test]
fn closed_pipe_is_a_quiet_exit_0() {
    let f = fixture();
    for args in [
        &["ledger", "export", "--format", "jsonl"][..],
        &["ledger", "export", "--format", "csv"],
        &["ledger", "indicators", "--limit", "1000000"],
    ] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"))
            .env_clear()
            .env("LRCI_LEDGER", f.ledger())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        drop(reader);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
    // The output is larger than a pipe's buffer, so the writer did meet the close.
    let size = ok(&f.ledger(), &["ledger", "export", "--format", "csv"]).len();
    assert!(size > 256 * 1024, "export is only {size} bytes");
}

#[test]
fn stdout_on_a_full_disk_exits_74() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let f = fixture();
    for args in [
        &["ledger", "status"][..],
        &["ledger", "export", "--format", "jsonl"],
        &["ledger", "export", "--format", "csv"],
        &["ledger", "show", "900000001", "--json"],
    ] {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"))
            .env_clear()
            .env("LRCI_LEDGER", f.ledger())
            .args(args)
            .stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap())
            .output()
            .unwrap();
        assert_error(&out, 74, &["stdout"]);
    }
}

#[test]
fn missing_ledger_exits_66_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("nope").join("ledger.sqlite3");
    for args in [
        &["ledger", "status"][..],
        &["ledger", "show", "1"],
        &["ledger", "export", "--format", "csv"],
    ] {
        let o = run(&ledger, args);
        assert_error(&o, 66, &[&ledger.display().to_string()]);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let o = run(&dir.path().join("l.sqlite3"), &["ledger", "runs"]);
    assert_error(&o, 66, &["does not exist"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Reads work while another process holds the run lock and a write transaction
/// is open (WAL): they neither wait for it nor take the lock.
#[test]
fn reads_work_while_a_run_holds_the_lock_and_writes() {
    let f = fixture();
    let l = f.ledger();
    let lock = RunLock::acquire(&l).unwrap();
    let writer = rusqlite::Connection::open(&l).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer
        .execute(
            "UPDATE runs SET summary = summary WHERE id = (SELECT max(id) FROM runs)",
            [],
        )
        .unwrap();
    let started = std::time::Instant::now();
    let s = json(&l, &["ledger", "status", "--json"]);
    assert_eq!(s["last_run"]["kind"], "sync");
    ok(&l, &["ledger", "show", "900000001"]);
    ok(
        &l,
        &["ledger", "export", "--format", "csv", "--state", "sent"],
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "reads waited for the writer: {:?}",
        started.elapsed()
    );
    writer.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // And the lock is still free for the next run: no reader took it.
    drop(RunLock::acquire(&l).unwrap());
}

/// Values from LogRhythm with terminal controls are escaped in every table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_escaped_in_tables() {
    let sim = start(SimConfig {
        scenario: Scenario::Hostile,
        ..live_config(6, 30)
    })
    .await;
    let home = Home::new();
    let run = lrci(&sim, &home, &["sync", "--json"]).await;
    assert!([0, 75].contains(&run.code), "{}", run.stderr);
    let l = home.ledger();
    let raw_rules: Vec<String> = {
        let c = ledger_ro(&l);
        let mut st = c.prepare("SELECT rule_name FROM alarms").unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(
        raw_rules
            .iter()
            .any(|r| r.chars().any(|c| c.is_control() || c == '\u{202e}')),
        "the hostile scenario put control characters in rule names"
    );
    for args in [
        &["ledger", "alarms", "--limit", "100000"][..],
        &["ledger", "indicators", "--limit", "100000"],
        &["ledger", "alarms", "--decision", "error"],
        &["ledger", "status"],
        &["ledger", "runs"],
    ] {
        let out = ok(&l, args);
        for c in out.chars() {
            assert!(
                c == '\n' || !(c.is_control() || ('\u{2028}'..='\u{202e}').contains(&c)),
                "{args:?}: raw {c:?} in output"
            );
        }
    }
    let json_out = ok(&l, &["ledger", "alarms", "--json", "--limit", "100000"]);
    assert!(!json_out.contains('\u{202e}') && !json_out.contains('\u{1b}'));
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    let names: BTreeSet<String> = parsed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        raw_rules.into_iter().collect(),
        "JSON round-trips exactly"
    );
}

/// `ledger show` of an alarm `ledger prune` removed says so (exit 2), and
/// `ledger prune` is reachable under `ledger`.
#[test]
fn show_of_a_pruned_alarm_names_the_prune() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("ledger.sqlite3");
    drop(Writer::open(&l).unwrap());
    rusqlite::Connection::open(&l)
        .unwrap()
        .execute(
            "INSERT INTO pruned_alarms (alarm_id, date_inserted, decision, detections, sent,
                unsent, pruned_at)
             VALUES (4711, '2026-10-01T08:00:00.000Z', 'accepted', 5, 4, 0,
                     '2026-11-20T10:00:00.000Z')",
            [],
        )
        .unwrap();
    let o = run(&l, &["ledger", "show", "4711"]);
    assert_error(
        &o,
        2,
        &[
            "4711",
            "was pruned",
            "2026-11-20 10:00:00",
            "4 of 5 indicators sent",
        ],
    );
    let o = run(
        &l,
        &["ledger", "prune", "--before", "2000-01-01", "--dry-run"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Issue 12: tables fit the terminal width (`COLUMNS`, or the terminal's), each
/// row still one line; piped without `COLUMNS` rows are whole, and `--json`
/// always has every value whole.
#[test]
fn tables_fit_the_terminal_width() {
    let f = fixture();
    let l = f.ledger();
    let alarm: i64 = ledger_ro(&l)
        .query_row("SELECT max(alarm_id) FROM detections", [], |r| r.get(0))
        .unwrap();
    let alarm = alarm.to_string();
    for args in [
        vec!["ledger", "alarms"],
        vec!["ledger", "indicators"],
        vec!["ledger", "runs"],
        vec!["ledger", "show", alarm.as_str()],
    ] {
        let whole = ok(&l, &args);
        let widest = whole
            .lines()
            .skip_while(|x| !x.starts_with('─'))
            .map(|x| x.chars().count())
            .max()
            .unwrap_or_else(|| panic!("{args:?}: no table in\n{whole}"));
        for width in [60usize, 80, 100] {
            let o = cmd(&l, &args)
                .env("COLUMNS", width.to_string())
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(0), "{args:?}");
            let text = stdout(&o);
            // The table: from the header (the line above the rule) on.
            let lines: Vec<&str> = text.lines().collect();
            let rule = lines.iter().position(|x| x.starts_with('─')).unwrap();
            for line in &lines[rule.saturating_sub(1)..] {
                assert!(
                    line.chars().count() <= width,
                    "{args:?} at {width}: {line:?}"
                );
            }
            // As many lines as the whole output: nothing wrapped, nothing dropped.
            assert_eq!(
                text.lines().count(),
                whole.lines().count(),
                "{args:?} at {width}"
            );
            if widest > width {
                assert!(text.contains('…'), "{args:?} at {width}: nothing was cut");
            } else {
                assert_eq!(text, whole, "{args:?} at {width}: cut although it fit");
            }
        }
    }
}

/// Issue 9 item 9: a ledger on a read-only mount (a snapshot, a forensic copy)
/// can be audited: `ledger status`, `show` and `export` read it (SQLite cannot
/// create the `-shm` WAL readers need there). Needs `unshare -m` (root); SKIPPED
/// elsewhere.
#[test]
fn a_ledger_on_a_read_only_mount_can_be_audited() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    std::fs::create_dir(&snap).unwrap();
    std::fs::copy(f.ledger(), snap.join("ledger.sqlite3")).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = r#"
set -u
mount --bind "$SNAP" "$SNAP" && mount -o remount,bind,ro "$SNAP" || exit 90
touch "$SNAP/probe" 2>/dev/null && exit 91
"$LRCI" ledger status --json --ledger "$SNAP/ledger.sqlite3" >"$OUT/status.json" 2>"$OUT/status.err"; echo $? >"$OUT/status.code"
"$LRCI" ledger export --format csv --ledger "$SNAP/ledger.sqlite3" >"$OUT/export.csv" 2>"$OUT/export.err"; echo $? >"$OUT/export.code"
"#;
    let status = std::process::Command::new("unshare")
        .args(["-m", "--fork", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LRCI", assert_cmd::cargo::cargo_bin("lrci"))
        .env("SNAP", &snap)
        .env("OUT", &out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            println!("SKIPPED: no private read-only bind mount here ({other:?})");
            return;
        }
    }
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
    assert_eq!(read("status.code").trim(), "0", "{}", read("status.err"));
    let s: Value = serde_json::from_str(read("status.json").trim()).unwrap();
    let want = json(&f.ledger(), &["ledger", "status", "--json"]);
    assert_eq!(s["detections"], want["detections"]);
    assert_eq!(s["alarms"], want["alarms"]);
    assert_eq!(read("export.code").trim(), "0", "{}", read("export.err"));
    assert!(read("export.csv").lines().count() > 1);
}
