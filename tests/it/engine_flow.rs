//! In-process tests of the engine: `lrci::engine::run` called directly, with
//! clients pointed at the in-process simulator on 127.0.0.1, against a fixed
//! window (no wall clock involved in what is fetched). What a correct run sent is
//! computed from the simulator's ground truth (`/_sim/alarms`) by the oracle in
//! `harness`, which shares no code with lrci's extraction or policy.

use crate::harness::*;
use chrono::{DateTime, Duration as Span, Utc};
use lrci::cli::outcome::exit_code;
use lrci::engine::{self, RunKind, RunOptions, Summary};
use lrci::error::code;
use lrci::ledger::{StateCounts, Writer};
use lrci::sim::{self, FaultKind, Side, SimConfig};
use lrci::{ci, http, logrhythm, policy};
use secrecy::SecretString;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const SITE_DOMAIN: &str = "corp.example";

type Key = (i64, String, String);

/// 4 hours × 40 alarms ending at the fixed [`end`], with room in CI's quota.
fn sim_config() -> SimConfig {
    SimConfig {
        hours: 4,
        alarms_per_hour: 40,
        daily_quota: 1_000_000,
        ..config()
    }
}

fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    (end() - Span::hours(4), end())
}

/// Both clients for the simulator: no HTTP retries, so one scripted fault is one
/// failed call.
fn clients(sim: &TestSim) -> (logrhythm::Client, ci::Client) {
    let opts = http::HttpOptions {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(20),
        max_retries: 0,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        ..http::HttpOptions::default()
    };
    let url = sim.url().parse().unwrap();
    let lr =
        logrhythm::Client::new(url, SecretString::from(sim::DEFAULT_LR_KEY), opts.clone()).unwrap();
    let url = sim.url().parse().unwrap();
    let ci = ci::Client::new(url, SecretString::from(sim::DEFAULT_RF_KEY), opts).unwrap();
    (lr, ci)
}

fn options(window: (DateTime<Utc>, DateTime<Utc>), dry_run: bool) -> RunOptions {
    RunOptions {
        kind: RunKind::Backfill,
        window,
        refetch: false,
        dry_run,
        min_rbp: None,
        fetch_details: false,
        rf_only: false,
        exclude_rules: Vec::new(),
        policy: policy::Policy::new(vec![SITE_DOMAIN.to_string()], policy::Exclusions::default()),
        page_size: 100,
        concurrency: 4,
        batch_size: 50,
        daily_budget: 1_000_000,
        events_grace: chrono::Duration::days(1),
        relist_horizon: chrono::Duration::hours(2),
        deadline: None,
        interrupt: None,
        progress: None,
    }
}

async fn run(sim: &TestSim, ledger: &mut Writer, opts: &RunOptions) -> Summary {
    let (lr, ci) = clients(sim);
    engine::run(ledger, &lr, &ci, opts, Utc::now)
        .await
        .expect("the run is not stopped by a fatal error")
}

/// The oracle's `(alarm id, type, value)` set for the ground truth in `window`.
async fn oracle(sim: &TestSim, window: (DateTime<Utc>, DateTime<Utc>)) -> BTreeSet<Key> {
    let truth = truth(sim).await;
    truth
        .iter()
        .filter(|a| (window.0..window.1).contains(&inserted(a)))
        .flat_map(|a| {
            let id = a["alarmId"].as_i64().unwrap();
            oracle_indicators(a, &[SITE_DOMAIN])
                .into_iter()
                .map(move |(t, v)| (id, t, v))
        })
        .collect()
}

/// What CI stored, asserting no key arrived twice.
async fn received_once(sim: &TestSim) -> BTreeSet<Key> {
    let got: Vec<Value> = received(sim).await;
    let keys: BTreeSet<Key> = got.iter().map(received_key).collect();
    assert_eq!(keys.len(), got.len(), "CI received duplicates");
    keys
}

async fn ci_posts(sim: &TestSim) -> u64 {
    route_count(&admin_get(sim, "/_sim/stats").await, CI_ROUTE)
}

fn file_ledger(dir: &Path) -> Writer {
    Writer::open(&dir.join("ledger.sqlite3")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_sends_what_the_oracle_says_and_a_second_run_posts_nothing() {
    let sim = start(sim_config()).await;
    let mut ledger = Writer::open_in_memory().unwrap();
    let opts = options(window(), false);

    let first = run(&sim, &mut ledger, &opts).await;
    assert_eq!(exit_code(&first.outcome), code::OK, "{:?}", first.problems);
    assert_eq!(first.exit_code, code::OK);
    assert_eq!(first.slices.total, 4);
    assert_eq!(first.slices.fetched, 4);
    let want = oracle(&sim, window()).await;
    assert!(
        want.len() > 50,
        "the oracle holds only {} items",
        want.len()
    );
    assert_eq!(received_once(&sim).await, want);
    assert_eq!(first.detections.submitted, want.len() as u64);
    assert_eq!(first.detections.new, want.len() as u64);

    let posts = ci_posts(&sim).await;
    let second = run(&sim, &mut ledger, &opts).await;
    assert_eq!(
        exit_code(&second.outcome),
        code::OK,
        "{:?}",
        second.problems
    );
    assert_eq!(second.slices.covered, 4, "{second:?}");
    assert_eq!(second.slices.fetched, 0);
    assert_eq!(second.detections.new, 0);
    assert_eq!(second.detections.submitted, 0);
    assert_eq!(ci_posts(&sim).await, posts, "the second run posted to CI");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_takes_the_same_path_and_leaves_the_ledger_file_unchanged() {
    let sim = start(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    // A real run over the first half, so the dry run meets an existing ledger.
    let half = (window().0, window().0 + Span::hours(2));
    run(&sim, &mut file_ledger(dir.path()), &options(half, false)).await;
    let stored = received_once(&sim).await;
    let before = std::fs::read(&path).unwrap();
    let posts = ci_posts(&sim).await;

    // The CLI gives a dry run an in-memory copy of the file.
    let mut ro = Writer::scratch_copy(&path).unwrap();
    let dry = run(&sim, &mut ro, &options(window(), true)).await;
    drop(ro);
    assert_eq!(exit_code(&dry.outcome), code::OK, "{:?}", dry.problems);
    assert!(dry.dry_run);
    assert_eq!(dry.run_id, None);
    assert_eq!(dry.slices.covered, 2);
    assert_eq!(dry.slices.fetched, 2);
    assert!(dry.detections.new > 0);
    assert_eq!(dry.detections.submitted, dry.detections.new);
    assert!(ci_posts(&sim).await > posts, "the dry run posted nothing");
    assert_eq!(received_once(&sim).await, stored, "CI stored dry-run items");
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the dry run changed the ledger file"
    );

    // The real run then does exactly what the dry run said it would.
    let real = run(
        &sim,
        &mut file_ledger(dir.path()),
        &options(window(), false),
    )
    .await;
    assert_eq!(real.slices.fetched, dry.slices.fetched);
    assert_eq!(real.alarms.new, dry.alarms.new);
    assert_eq!(real.detections.new, dry.detections.new);
    assert_eq!(real.detections.excluded, dry.detections.excluded);
    assert_eq!(real.detections.submitted, dry.detections.submitted);
    assert_eq!(received_once(&sim).await, oracle(&sim, window()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_503_leaves_detections_failed_and_the_next_run_sends_them_once() {
    let sim = start(sim_config()).await;
    let mut ledger = Writer::open_in_memory().unwrap();
    let opts = options(window(), false);
    sim.state()
        .queue_faults(Side::Rf, FaultKind::Unavailable, 1, 0);

    let down = run(&sim, &mut ledger, &opts).await;
    assert_eq!(
        exit_code(&down.outcome),
        code::UNAVAILABLE,
        "{:?}",
        down.problems
    );
    assert_eq!(down.detections.submitted, 0);
    assert_eq!(
        down.detections.failed, 50,
        "the first batch is marked failed"
    );
    assert!(received(&sim).await.is_empty());
    let states = ledger.state_counts().unwrap();
    assert_eq!(states.failed, 50, "{states:?}");
    assert_eq!(states.sent, 0, "{states:?}");
    assert_eq!(states.pending, down.detections.new - 50, "{states:?}");

    let up = run(&sim, &mut ledger, &opts).await;
    assert_eq!(exit_code(&up.outcome), code::OK, "{:?}", up.problems);
    assert_eq!(up.detections.new, 0, "nothing is fetched again");
    assert_eq!(up.detections.submitted, down.detections.new);
    let want = oracle(&sim, window()).await;
    assert_eq!(received_once(&sim).await, want);
    let states = ledger.state_counts().unwrap();
    assert_eq!(
        states,
        StateCounts {
            sent: want.len() as u64,
            excluded: states.excluded,
            ..StateCounts::default()
        }
    );
}
