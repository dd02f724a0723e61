//! Whole-flow tests of the fetch pipeline (issue 13): the LogRhythm requests a
//! run makes per alarm, counted by the simulator (`/_sim/stats`), with and
//! without a setting that needs the alarm's details; RBP recorded as "not
//! fetched" in `ledger show` and `ledger export` otherwise; and the pipelined
//! walk, at a budget of one request and of many, recording every alarm of the
//! window once with coverage complete.

use crate::harness::*;
use chrono::{DateTime, Duration as Span, Utc};
use lrci::sim::SimConfig;
use serde_json::Value;

const HOURS: u32 = 6;

fn sim_config() -> SimConfig {
    SimConfig {
        hours: HOURS,
        alarms_per_hour: 15,
        end: Some(end()),
        daily_quota: 1_000_000,
        ..SimConfig::default()
    }
}

fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    (end() - Span::hours(i64::from(HOURS)), end())
}

/// A backfill of [`window`] with `extra` arguments; its summary.
async fn backfill(sim: &TestSim, home: &Home, extra: &[&str]) -> Value {
    let (from, to) = window();
    let (from, to) = (ts(from), ts(to));
    let mut args = vec!["backfill", "--json", "--from", &from, "--to", &to];
    args.extend_from_slice(&["--daily-budget", "1000000"]);
    args.extend_from_slice(extra);
    let run = lrci(sim, home, &args).await;
    run.expect_code(0);
    run.summary()
}

/// LogRhythm requests of the run: (list pages, details, events).
async fn requests(sim: &TestSim) -> (u64, u64, u64) {
    let s = admin_get(sim, "/_sim/stats").await;
    (
        route_count(&s, LIST_ROUTE),
        route_count(&s, DETAILS_ROUTE),
        route_count(&s, EVENTS_ROUTE),
    )
}

/// The ground truth's alarms inserted in [`window`].
async fn alarms_in_window(sim: &TestSim) -> u64 {
    let (from, to) = window();
    truth(sim)
        .await
        .iter()
        .filter(|a| (from..to).contains(&inserted(a)))
        .count() as u64
}

fn null_rbp_rows(home: &Home) -> (i64, i64) {
    let c = ledger_ro(&home.ledger());
    c.query_row("SELECT count(*), count(rbp_max) FROM alarms", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

/// Without `min_rbp` or `fetch_details` an alarm costs one request, its events
/// (plus its share of the list pages); RBP is "not fetched" wherever shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_per_alarm_without_an_rbp_filter() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    let s = backfill(&sim, &home, &[]).await;
    let alarms = alarms_in_window(&sim).await;
    assert!(alarms > 50, "the window holds alarms: {alarms}");
    assert_eq!(s["alarms"]["seen"].as_u64(), Some(alarms), "{s}");
    let (lists, details, events) = requests(&sim).await;
    assert_eq!(details, 0, "no details without a setting that needs them");
    assert_eq!(events, alarms, "one events request per alarm");
    // The probe's few pages, then one or two pages per hour-slice.
    assert!(lists <= 12 + 2 * u64::from(HOURS), "{lists} list pages");
    let (rows, with_rbp) = null_rbp_rows(&home);
    assert_eq!((rows as u64, with_rbp), (alarms, 0));

    let id: i64 = ledger_ro(&home.ledger())
        .query_row("SELECT min(alarm_id) FROM alarms", [], |r| r.get(0))
        .unwrap();
    let show = lrci(&sim, &home, &["ledger", "show", &id.to_string()]).await;
    show.expect_code(0);
    let line = show
        .stdout
        .lines()
        .find(|l| l.starts_with("rbp max"))
        .unwrap_or_else(|| panic!("no rbp line:\n{}", show.stdout));
    assert!(line.ends_with("not fetched"), "{line}");
    let csv = lrci(&sim, &home, &["ledger", "export", "--format", "csv"]).await;
    csv.expect_code(0);
    let mut lines = csv.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "rbp_max").unwrap();
    let first = lines.next().expect("detections are exported");
    assert_eq!(first.split(',').nth(col), Some("not fetched"), "{first}");
}

/// `--min-rbp` and `--fetch-details` (or `LRCI_FETCH_DETAILS`) need the details:
/// two requests per alarm, and RBP recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_per_alarm_when_a_setting_needs_the_details() {
    for extra in [&["--min-rbp", "0"][..], &["--fetch-details"][..]] {
        let sim = start(sim_config()).await;
        let home = Home::new();
        backfill(&sim, &home, extra).await;
        let alarms = alarms_in_window(&sim).await;
        let (_, details, events) = requests(&sim).await;
        assert_eq!((details, events), (alarms, alarms), "{extra:?}");
        let (rows, with_rbp) = null_rbp_rows(&home);
        assert_eq!(
            (rows as u64, with_rbp as u64),
            (alarms, alarms),
            "{extra:?}"
        );
    }
    // The same from the environment.
    let sim = start(sim_config()).await;
    let home = Home::new();
    let (from, to) = window();
    let mut c = lrci_command(
        &sim,
        &home,
        &Keys::of(&sim),
        &["backfill", "--json", "--from", &ts(from), "--to", &ts(to)],
    );
    c.env("LRCI_FETCH_DETAILS", "true");
    finish(c.spawn().unwrap()).await.expect_code(0);
    let alarms = alarms_in_window(&sim).await;
    let (_, details, _) = requests(&sim).await;
    assert_eq!(details, alarms, "LRCI_FETCH_DETAILS=true");
}

/// The pipelined walk records every alarm of the window once and covers every
/// slice, at a budget of one request in flight (listing and fetching take
/// turns) and of many (listing runs ahead of fetching).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_walk_is_complete_at_any_budget() {
    for concurrency in ["1", "3", "32"] {
        let sim = start(SimConfig {
            lr_latency: std::time::Duration::from_millis(2),
            ..sim_config()
        })
        .await;
        let home = Home::new();
        let s = backfill(&sim, &home, &["--concurrency", concurrency]).await;
        assert_eq!(
            s["slices"]["fetched"].as_u64(),
            Some(u64::from(HOURS)),
            "{s}"
        );
        let (from, to) = window();
        let want: std::collections::BTreeSet<i64> = truth(&sim)
            .await
            .iter()
            .filter(|a| (from..to).contains(&inserted(a)))
            .map(|a| a["alarmId"].as_i64().unwrap())
            .collect();
        assert_eq!(
            ledger_alarm_ids(&home.ledger()),
            want,
            "concurrency {concurrency}"
        );
        let covered: i64 = ledger_ro(&home.ledger())
            .query_row("SELECT count(*) FROM coverage", [], |r| r.get(0))
            .unwrap();
        assert_eq!(covered, i64::from(HOURS), "concurrency {concurrency}");
        let (_, _, events) = requests(&sim).await;
        assert_eq!(events, want.len() as u64, "each alarm fetched once");
    }
}
