//! Whole-flow tests of `lrci backfill`: a backfill killed (SIGKILL) or interrupted
//! (SIGINT) part-way and started again ends with every alarm of the window in the
//! ledger once, coverage complete and nothing sent twice, the restart fetching only
//! what the coverage map lacked; `--refetch`; `--from/--to` exactness; and
//! `ledger prune` followed by `backfill --refetch` re-sending nothing. The real
//! binary runs against the in-process simulator over a fixed past window.

use crate::harness::*;
use chrono::{DateTime, Duration as Span, Utc};
use lrci::sim::SimConfig;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

type Key = (i64, String, String);

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// A fixed past window of `hours` hours ending at `harness::end()`.
fn sim_config(hours: u32, per_hour: u32, lr_latency_ms: u64) -> SimConfig {
    SimConfig {
        hours,
        alarms_per_hour: per_hour,
        end: Some(end()),
        lr_latency: Duration::from_millis(lr_latency_ms),
        daily_quota: 1_000_000,
        ..SimConfig::default()
    }
}

fn backfill_args(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    vec![
        "backfill".into(),
        "--json".into(),
        "--from".into(),
        ts(from),
        "--to".into(),
        ts(to),
        "--daily-budget".into(),
        "1000000".into(),
    ]
}

async fn run(sim: &TestSim, home: &Home, args: &[String]) -> LrciRun {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    lrci(sim, home, &a).await
}

/// Rows of the coverage map, or 0 while the ledger does not exist yet.
fn coverage_rows(ledger: &Path) -> i64 {
    if !ledger.exists() {
        return 0;
    }
    rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM coverage", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Coverage map: slice start -> covered until.
fn coverage(ledger: &Path) -> BTreeMap<String, String> {
    let c = ledger_ro(ledger);
    let mut st = c
        .prepare("SELECT slice_start, covered_until FROM coverage")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `(alarm, type, value)` of the ledger's detections in `state`.
fn ledger_keys(ledger: &Path, state: &str) -> BTreeSet<Key> {
    let c = ledger_ro(ledger);
    let mut st = c
        .prepare("SELECT alarm_id, ioc_type, value FROM detections WHERE state = ?1")
        .unwrap();
    st.query_map([state], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn truth_ids(truth: &[Value], from: DateTime<Utc>, to: DateTime<Utc>) -> BTreeSet<i64> {
    truth
        .iter()
        .filter(|a| (from..to).contains(&inserted(a)))
        .map(|a| a["alarmId"].as_i64().unwrap())
        .collect()
}

/// Everything a finished backfill of `[from, to)` must have left: every alarm of the
/// window in the ledger (once: it is the primary key), each hour covered to its end,
/// nothing unsent, and CI holding exactly the ledger's `sent` rows, each once.
async fn assert_complete(sim: &TestSim, home: &Home, from: DateTime<Utc>, to: DateTime<Utc>) {
    let truth = truth(sim).await;
    assert_eq!(
        ledger_alarm_ids(&home.ledger()),
        truth_ids(&truth, from, to),
        "ledger alarms vs the window's ground truth"
    );
    let cov = coverage(&home.ledger());
    let hours = (to - from).num_hours();
    assert_eq!(cov.len() as i64, hours, "{cov:?}");
    for (start, until) in &cov {
        assert_eq!(
            instant(until) - instant(start),
            Span::hours(1),
            "slice {start} covered to {until}"
        );
    }
    let states = ledger_states(&home.ledger());
    assert!(
        !states.contains_key("pending") && !states.contains_key("failed"),
        "{states:?}"
    );
    let got = unique_keys(&received(sim).await);
    assert_eq!(
        got,
        ledger_keys(&home.ledger(), "sent"),
        "CI vs ledger sent"
    );
    assert!(!got.is_empty());
}

/// Starts a backfill, waits until `slices` slices are committed, then stops it with
/// `signal` (`KILL` or `INT`) and returns what it did.
async fn stop_part_way(
    sim: &TestSim,
    home: &Home,
    args: &[String],
    slices: i64,
    signal: &str,
) -> LrciRun {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = lrci_command(sim, home, &Keys::of(sim), &a).spawn().unwrap();
    let pid = child.id().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while coverage_rows(&home.ledger()) < slices {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress in a minute"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    finish(child).await
}

const HOURS: u32 = 24;

fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    (end() - Span::hours(i64::from(HOURS)), end())
}

/// A backfill killed with SIGKILL part-way loses nothing: the restart fetches only
/// the slices the coverage map lacks and ends complete, nothing sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backfill_resumes_where_it_stopped() {
    let sim = start(sim_config(HOURS, 12, 25)).await;
    let home = Home::new();
    let (from, to) = window();
    let args = backfill_args(from, to);

    let killed = stop_part_way(&sim, &home, &args, 4, "KILL").await;
    assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
    let covered = coverage_rows(&home.ledger());
    assert!(
        (4..i64::from(HOURS)).contains(&covered),
        "killed part-way: {covered} slices covered"
    );
    // Submission comes after the slices: nothing was posted yet, nothing is lost.
    assert!(received(&sim).await.is_empty());
    let lists_before = route_count(&admin_get(&sim, "/_sim/stats").await, LIST_ROUTE);

    let again = run(&sim, &home, &args).await;
    again.expect_code(0);
    let s = again.summary();
    assert_eq!(n(&s["slices"]["total"]), u64::from(HOURS));
    assert_eq!(
        n(&s["slices"]["covered"]),
        covered as u64,
        "the restart skips what the coverage map holds: {s}"
    );
    assert_eq!(
        n(&s["slices"]["fetched"]),
        u64::from(HOURS) - covered as u64
    );
    let lists = route_count(&admin_get(&sim, "/_sim/stats").await, LIST_ROUTE) - lists_before;
    assert!(
        lists >= n(&s["slices"]["fetched"]) && lists < 2 * n(&s["slices"]["fetched"]) + 2,
        "{lists} list calls for {} slices",
        s["slices"]["fetched"]
    );
    assert!(
        again.stderr.contains("backfill progress"),
        "plain progress lines on a non-terminal stderr:\n{}",
        again.stderr
    );
    assert_complete(&sim, &home, from, to).await;
}

/// SIGINT stops a backfill gracefully: it commits, records the run, exits 75 with
/// "interrupted"; started again, it continues and ends complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_backfill_exits_75_and_resumes() {
    let sim = start(sim_config(HOURS, 12, 25)).await;
    let home = Home::new();
    let (from, to) = window();
    let args = backfill_args(from, to);

    let stopped = stop_part_way(&sim, &home, &args, 3, "INT").await;
    stopped.expect_code(75);
    let s = stopped.summary();
    assert_eq!(s["exit_code"], 75);
    let problems = s["problems"].to_string();
    assert!(problems.contains("interrupted"), "{s}");
    let covered = coverage_rows(&home.ledger());
    assert!(covered < i64::from(HOURS), "stopped part-way: {covered}");
    assert_eq!(
        n(&s["slices"]["fetched"]) + n(&s["slices"]["covered"]),
        covered as u64,
        "what the summary says was fetched is what was committed: {s}"
    );
    // The run is recorded with its exit code.
    let c = ledger_ro(&home.ledger());
    let (kind, code): (String, i64) = c
        .query_row(
            "SELECT kind, exit_code FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), code), ("backfill", 75));
    drop(c);
    assert!(
        received(&sim).await.is_empty(),
        "no batch started after the interrupt"
    );

    let again = run(&sim, &home, &args).await;
    again.expect_code(0);
    let s = again.summary();
    assert_eq!(n(&s["slices"]["covered"]), covered as u64, "{s}");
    assert_complete(&sim, &home, from, to).await;
}

/// Without --refetch a covered window lists nothing; with it every slice is listed
/// again, yet nothing new is recorded or sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetch_lists_again_and_sends_nothing_twice() {
    let sim = start(sim_config(4, 20, 0)).await;
    let home = Home::new();
    let from = end() - Span::hours(4);
    let args = backfill_args(from, end());
    run(&sim, &home, &args).await.expect_code(0);
    let sent = received(&sim).await.len();
    let stats = admin_get(&sim, "/_sim/stats").await;

    let again = run(&sim, &home, &args).await;
    again.expect_code(0);
    let s = again.summary();
    assert_eq!(
        (n(&s["slices"]["covered"]), n(&s["slices"]["fetched"])),
        (4, 0)
    );
    let stats2 = admin_get(&sim, "/_sim/stats").await;
    assert_eq!(
        route_count(&stats2, LIST_ROUTE),
        route_count(&stats, LIST_ROUTE)
    );

    let mut refetch = args.clone();
    refetch.push("--refetch".into());
    let re = run(&sim, &home, &refetch).await;
    re.expect_code(0);
    let s = re.summary();
    assert_eq!(n(&s["slices"]["fetched"]), 4, "{s}");
    assert_eq!(n(&s["alarms"]["new"]), 0, "{s}");
    assert_eq!(n(&s["detections"]["new"]), 0, "{s}");
    let stats3 = admin_get(&sim, "/_sim/stats").await;
    assert!(route_count(&stats3, LIST_ROUTE) >= route_count(&stats2, LIST_ROUTE) + 4);
    assert_eq!(
        route_count(&stats3, EVENTS_ROUTE),
        route_count(&stats2, EVENTS_ROUTE),
        "known alarms are not fetched again"
    );
    assert_eq!(received(&sim).await.len(), sent);
    assert_complete(&sim, &home, from, end()).await;
}

/// `--from/--to` take exactly the alarms inserted in `[from, to)`, `to` not on the
/// hour included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_to_window_is_exact() {
    let sim = start(sim_config(6, 30, 0)).await;
    let home = Home::new();
    let from = end() - Span::hours(5);
    let to = end() - Span::minutes(90);
    let r = run(&sim, &home, &backfill_args(from, to)).await;
    r.expect_code(0);
    let s = r.summary();
    assert_eq!(instant(s["window"]["from"].as_str().unwrap()), from);
    assert_eq!(instant(s["window"]["to"].as_str().unwrap()), to);
    assert_eq!(n(&s["slices"]["total"]), 4);
    let truth = truth(&sim).await;
    let want = truth_ids(&truth, from, to);
    assert!(want.len() > 80, "{}", want.len());
    assert_eq!(ledger_alarm_ids(&home.ledger()), want);
    for a in &truth {
        let id = a["alarmId"].as_i64().unwrap();
        if !want.contains(&id) {
            assert!(!ledger_alarm_ids(&home.ledger()).contains(&id));
        }
    }
    // The last, partial slice is covered up to `to` only.
    let cov = coverage(&home.ledger());
    let last = cov.values().map(|u| instant(u)).max().unwrap();
    assert_eq!(last, to);
}

/// `prune` refuses to lose unsent detections, then replaces old alarms by
/// tombstones; a later `backfill --refetch` over the pruned window lists the
/// alarms again but records and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_then_refetch_resends_nothing() {
    let sim = start(sim_config(4, 20, 0)).await;
    let home = Home::new();
    let from = end() - Span::hours(4);
    let args = backfill_args(from, end());
    run(&sim, &home, &args).await.expect_code(0);
    let sent = received(&sim).await.len();
    let cut = end() - Span::hours(2);
    let truth = truth(&sim).await;
    let old = truth_ids(&truth, from, cut);
    let cut_arg = ts(cut);

    // One unsent detection of an old alarm blocks the prune; nothing changes.
    let old_id = *old.iter().next().unwrap();
    {
        let c = rusqlite::Connection::open(home.ledger()).unwrap();
        c.execute(
            "UPDATE detections SET state = 'pending' WHERE id = (SELECT min(id) FROM detections
             WHERE alarm_id >= ?1 AND state = 'sent')",
            [old_id],
        )
        .unwrap();
    }
    let refused = lrci(&sim, &home, &["ledger", "prune", "--before", &cut_arg]).await;
    refused.expect_code(65);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(ledger_alarm_ids(&home.ledger()).len(), truth.len());
    // Sent again by a replay, it no longer blocks.
    let replay = lrci(&sim, &home, &["replay", "--json"]).await;
    replay.expect_code(0);
    assert_eq!(n(&replay.summary()["detections"]["submitted"]), 1);

    let dry = lrci(
        &sim,
        &home,
        &[
            "ledger",
            "prune",
            "--before",
            &cut_arg,
            "--dry-run",
            "--json",
        ],
    )
    .await;
    dry.expect_code(0);
    assert_eq!(n(&dry.summary()["pruned"]["alarms"]), old.len() as u64);
    assert_eq!(ledger_alarm_ids(&home.ledger()).len(), truth.len());

    let pruned = lrci(
        &sim,
        &home,
        &[
            "ledger", "prune", "--before", &cut_arg, "--json", "--vacuum",
        ],
    )
    .await;
    pruned.expect_code(0);
    let p = pruned.summary();
    assert_eq!(n(&p["pruned"]["alarms"]), old.len() as u64, "{p}");
    assert!(n(&p["pruned"]["detections"]) > 0);
    assert_eq!(p["vacuumed"], true);
    assert_eq!(
        ledger_alarm_ids(&home.ledger()),
        truth_ids(&truth, cut, end())
    );
    let c = ledger_ro(&home.ledger());
    let tombstones: i64 = c
        .query_row("SELECT count(*) FROM pruned_alarms", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tombstones as usize, old.len());
    drop(c);
    assert_eq!(coverage(&home.ledger()).len(), 4, "coverage rows are kept");

    let mut refetch = args.clone();
    refetch.push("--refetch".into());
    let re = run(&sim, &home, &refetch).await;
    re.expect_code(0);
    let s = re.summary();
    assert_eq!(n(&s["slices"]["fetched"]), 4);
    assert_eq!(n(&s["alarms"]["new"]), 0, "{s}");
    assert_eq!(n(&s["detections"]["new"]), 0, "{s}");
    assert_eq!(n(&s["detections"]["submitted"]), 0, "{s}");
    assert_eq!(
        received(&sim).await.len(),
        sent + 1,
        "only the replayed one"
    );
    assert_eq!(
        ledger_alarm_ids(&home.ledger()),
        truth_ids(&truth, cut, end())
    );
}
