//! Whole-flow tests of `lrci replay`: the real binary against the in-process
//! simulator. Replay after a CI outage; `--alarm`, `--state`, `--from/--to`
//! select exactly those rows; `--resend`; `--dry-run` changes nothing; the run lock;
//! a 400 during replay is bisected to the one bad detection.

use crate::harness::*;
use chrono::Duration as Span;
use lrci::sim::SimConfig;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

type Key = (i64, String, String);

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn sim_config() -> SimConfig {
    SimConfig {
        hours: 4,
        alarms_per_hour: 20,
        end: Some(end()),
        daily_quota: 1_000_000,
        ..SimConfig::default()
    }
}

/// `backfill` of the simulator's whole window.
async fn backfill(sim: &TestSim, home: &Home, extra: &[&str]) -> LrciRun {
    let from = ts(end() - Span::hours(4));
    let to = ts(end());
    let mut args = vec!["backfill", "--json", "--from", &from, "--to", &to];
    args.extend_from_slice(extra);
    lrci(sim, home, &args).await
}

fn keys_where(ledger: &Path, filter: &str) -> BTreeSet<Key> {
    let c = ledger_ro(ledger);
    let mut st = c
        .prepare(&format!(
            "SELECT d.alarm_id, d.ioc_type, d.value FROM detections d
             JOIN alarms a ON a.alarm_id = d.alarm_id WHERE {filter}"
        ))
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn exec(ledger: &Path, sql: &str) {
    rusqlite::Connection::open(ledger)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

/// Received items from index `from` on, as keys (with repeats counted).
async fn received_since(sim: &TestSim, from: usize) -> BTreeMap<Key, usize> {
    let mut out = BTreeMap::new();
    for item in received(sim).await.iter().skip(from) {
        *out.entry(received_key(item)).or_default() += 1;
    }
    out
}

fn once(keys: &BTreeSet<Key>) -> BTreeMap<Key, usize> {
    keys.iter().map(|k| (k.clone(), 1)).collect()
}

/// Alarms with at least `min` detections that can be sent, in id order.
fn alarms_with_detections(ledger: &Path, min: i64) -> Vec<i64> {
    let c = ledger_ro(ledger);
    let mut st = c
        .prepare(
            "SELECT alarm_id FROM detections WHERE state <> 'excluded'
             GROUP BY alarm_id HAVING count(*) >= ?1 ORDER BY alarm_id",
        )
        .unwrap();
    st.query_map([min], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A CI outage during the backfill leaves `failed` (and `pending`) rows; replay
/// sends each of them once, records a `replay` run, and a second replay has nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_ci_outage_sends_what_failed_once() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    admin_post(
        &sim,
        "/_sim/faults",
        json!({"side": "rf", "kind": "503", "count": 1}),
    )
    .await;
    let first = backfill(&sim, &home, &["--max-retries", "0", "--batch-size", "40"]).await;
    first.expect_code(69);
    assert!(received(&sim).await.is_empty());
    let states = ledger_states(&home.ledger());
    assert_eq!(states.get("failed"), Some(&40), "{states:?}");
    let unsent = keys_where(&home.ledger(), "d.state IN ('failed', 'pending')");
    assert!(unsent.len() > 40, "{}", unsent.len());

    let replay = lrci(&sim, &home, &["replay", "--json", "--batch-size", "40"]).await;
    replay.expect_code(0);
    let s = replay.summary();
    assert_eq!(n(&s["detections"]["selected"]), unsent.len() as u64, "{s}");
    assert_eq!(n(&s["detections"]["submitted"]), unsent.len() as u64, "{s}");
    assert_eq!(n(&s["detections"]["failed"]), 0);
    assert_eq!(s["dry_run"], false);
    assert_eq!(s["exit_code"], 0);
    assert_eq!(
        received_since(&sim, 0).await,
        once(&unsent),
        "each sent once"
    );
    let states = ledger_states(&home.ledger());
    assert!(!states.contains_key("failed") && !states.contains_key("pending"));
    let c = ledger_ro(&home.ledger());
    let (kind, code, id): (String, i64, i64) = c
        .query_row(
            "SELECT kind, exit_code, id FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), code), ("replay", 0));
    assert_eq!(s["run_id"], id);
    drop(c);

    let nothing = lrci(&sim, &home, &["replay"]).await;
    nothing.expect_code(0);
    assert!(
        nothing.stdout.contains("0 detections to replay"),
        "{}",
        nothing.stdout
    );
    assert_eq!(received(&sim).await.len(), unsent.len());
}

/// `--alarm`, `--state` and `--from/--to` pick exactly those rows; `--state sent`
/// needs `--resend`, which sends sent rows again and keeps them `sent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selections_pick_exactly_those_rows() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    backfill(&sim, &home, &[]).await.expect_code(0);
    let l = home.ledger();
    let alarms = alarms_with_detections(&l, 2);
    assert!(alarms.len() > 10);
    // Alarms a, b: failed; c: pending; d: rejected; all in different hours from e's.
    let (a, b, c, d) = (alarms[0], alarms[1], alarms[2], alarms[3]);
    let e = *alarms.last().unwrap();
    exec(
        &l,
        &format!(
            "UPDATE detections SET state = 'failed' WHERE alarm_id IN ({a}, {b}) AND state = 'sent';
             UPDATE detections SET state = 'pending' WHERE alarm_id = {e} AND state = 'sent';
             UPDATE detections SET state = 'rejected', reason = 'x' WHERE alarm_id = {d} AND state = 'sent';"
        ),
    );
    let mut sent_so_far = received(&sim).await.len();

    // --alarm a: only a's failed rows.
    let r = lrci(
        &sim,
        &home,
        &["replay", "--json", "--alarm", &a.to_string()],
    )
    .await;
    r.expect_code(0);
    let want = keys_where(&l, &format!("d.alarm_id = {a} AND d.state <> 'excluded'"));
    assert_eq!(n(&r.summary()["detections"]["selected"]), want.len() as u64);
    assert_eq!(received_since(&sim, sent_so_far).await, once(&want));
    sent_so_far = received(&sim).await.len();

    // --state rejected: only d's rows.
    let r = lrci(&sim, &home, &["replay", "--json", "--state", "rejected"]).await;
    r.expect_code(0);
    let want = keys_where(&l, &format!("d.alarm_id = {d} AND d.state <> 'excluded'"));
    assert_eq!(received_since(&sim, sent_so_far).await, once(&want));
    sent_so_far = received(&sim).await.len();

    // --from/--to around e's insertion time: only e's pending rows, not b's failed.
    let at: String = ledger_ro(&l)
        .query_row(
            "SELECT date_inserted FROM alarms WHERE alarm_id = ?1",
            [e],
            |r| r.get(0),
        )
        .unwrap();
    let at = instant(&at);
    let (from, to) = (
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        (at + Span::milliseconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let want = keys_where(&l, &format!("d.alarm_id = {e} AND d.state = 'pending'"));
    assert!(!want.is_empty());
    let r = lrci(
        &sim,
        &home,
        &["replay", "--json", "--from", &from, "--to", &to],
    )
    .await;
    r.expect_code(0);
    assert_eq!(n(&r.summary()["detections"]["selected"]), want.len() as u64);
    assert_eq!(received_since(&sim, sent_so_far).await, once(&want));
    sent_so_far = received(&sim).await.len();
    let states = ledger_states(&l);
    let b_failed = keys_where(&l, &format!("d.alarm_id = {b} AND d.state <> 'excluded'"));
    assert_eq!(
        states.get("failed"),
        Some(&(b_failed.len() as i64)),
        "{states:?}"
    );

    // --state sent without --resend is a usage error naming --resend.
    let r = lrci(&sim, &home, &["replay", "--state", "sent"]).await;
    r.expect_code(2);
    assert!(r.stderr.contains("--resend"), "{}", r.stderr);
    let r = lrci(&sim, &home, &["replay", "--state", "excluded"]).await;
    r.expect_code(2);
    assert!(r.stderr.contains("never replayed"), "{}", r.stderr);
    assert_eq!(received(&sim).await.len(), sent_so_far);

    // --resend --alarm c: c's sent rows go again (received grows by exactly that
    // many) and stay `sent`, each with a new submission.
    let want = keys_where(&l, &format!("d.alarm_id = {c} AND d.state = 'sent'"));
    let old_subs: BTreeSet<i64> = {
        let conn = ledger_ro(&l);
        let mut st = conn
            .prepare("SELECT submission_id FROM detections WHERE alarm_id = ?1 AND state = 'sent'")
            .unwrap();
        st.query_map([c], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let r = lrci(
        &sim,
        &home,
        &[
            "replay",
            "--json",
            "--resend",
            "--state",
            "sent",
            "--alarm",
            &c.to_string(),
        ],
    )
    .await;
    r.expect_code(0);
    assert_eq!(
        n(&r.summary()["detections"]["submitted"]),
        want.len() as u64
    );
    assert_eq!(received_since(&sim, sent_so_far).await, once(&want));
    assert_eq!(
        keys_where(&l, &format!("d.alarm_id = {c} AND d.state = 'sent'")),
        want
    );
    let conn = ledger_ro(&l);
    let new_subs: BTreeSet<i64> = {
        let mut st = conn
            .prepare("SELECT submission_id FROM detections WHERE alarm_id = ?1 AND state = 'sent'")
            .unwrap();
        st.query_map([c], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(old_subs.is_disjoint(&new_subs), "{old_subs:?} {new_subs:?}");
}

/// `--dry-run` posts with debug: true, so CI stores nothing, and leaves every
/// ledger byte as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    backfill(&sim, &home, &[]).await.expect_code(0);
    exec(
        &home.ledger(),
        "UPDATE detections SET state = 'failed' WHERE id IN
            (SELECT id FROM detections WHERE state = 'sent' LIMIT 25);
         PRAGMA wal_checkpoint(TRUNCATE);",
    );
    let before = ledger_bytes(&home);
    let sent = received(&sim).await.len();
    let posts = route_count(&admin_get(&sim, "/_sim/stats").await, CI_ROUTE);

    let r = lrci(
        &sim,
        &home,
        &["replay", "--dry-run", "--json", "--batch-size", "10"],
    )
    .await;
    r.expect_code(0);
    let s = r.summary();
    assert_eq!(s["dry_run"], true);
    assert_eq!(s["run_id"], Value::Null);
    assert_eq!(n(&s["detections"]["selected"]), 25);
    assert_eq!(n(&s["detections"]["submitted"]), 25);
    assert_eq!(
        route_count(&admin_get(&sim, "/_sim/stats").await, CI_ROUTE),
        posts + 3,
        "25 items in batches of 10"
    );
    assert_eq!(received(&sim).await.len(), sent, "CI stored nothing");
    let after = ledger_bytes(&home);
    assert!(after.0 == before.0, "the dry run changed the ledger file");
    // A read-only SQLite connection to a WAL database may leave an empty `-wal`
    // file where there was none: no content, so the database is unchanged.
    let empty_wal_appeared = before.1.is_none() && after.1.as_deref() == Some(&[][..]);
    assert!(
        after.1 == before.1 || empty_wal_appeared,
        "the dry run changed the WAL ({:?} -> {:?} bytes)",
        before.1.as_ref().map(Vec::len),
        after.1.as_ref().map(Vec::len)
    );
    assert_eq!(ledger_states(&home.ledger()).get("failed"), Some(&25));
}

/// Issue 12: `replay --resend` cut short by the daily budget is partial (75), says
/// so, and leaves every row as it was (resent or not, still `sent`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_cut_by_the_budget_exits_75() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    let first = backfill(&sim, &home, &[]).await;
    first.expect_code(0);
    let used = n(&first.summary()["budget"]["used"]);
    let sent = ledger_states(&home.ledger())["sent"];
    assert!(sent > 10, "too few detections to test with: {sent}");
    let before = received(&sim).await.len();
    let budget = (used + 7).to_string();
    let r = lrci(
        &sim,
        &home,
        &[
            "replay",
            "--resend",
            "--json",
            "--batch-size",
            "5",
            "--daily-budget",
            &budget,
        ],
    )
    .await;
    r.expect_code(75);
    let s = r.summary();
    assert_eq!(
        n(&s["detections"]["selected"]),
        u64::try_from(sent).unwrap()
    );
    assert_eq!(n(&s["detections"]["submitted"]), 7, "{s}");
    assert_eq!(s["exit_code"], 75);
    let problems = s["problems"].to_string();
    assert!(problems.contains("budget"), "{s}");
    assert_eq!(received(&sim).await.len(), before + 7);
    assert_eq!(
        ledger_states(&home.ledger())["sent"],
        sent,
        "rows stay sent"
    );
}

/// Another run holding the lock: replay exits 75 at once, sending nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_held_exits_75() {
    let sim = start(sim_config()).await;
    let home = Home::new();
    backfill(&sim, &home, &[]).await.expect_code(0);
    exec(
        &home.ledger(),
        "UPDATE detections SET state = 'failed' WHERE state = 'sent'",
    );
    let posts = route_count(&admin_get(&sim, "/_sim/stats").await, CI_ROUTE);
    let _lock = lrci::ledger::RunLock::acquire(&home.ledger()).unwrap();
    let r = lrci(&sim, &home, &["replay"]).await;
    r.expect_code(75);
    assert!(r.stderr.contains("lock"), "{}", r.stderr);
    assert_eq!(
        route_count(&admin_get(&sim, "/_sim/stats").await, CI_ROUTE),
        posts
    );
}

/// A 400 for one item during replay is narrowed to it by splitting the batch: that
/// item becomes `rejected` with CI's reason, every other one is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_item_is_bisected_and_rejected() {
    let sim = start(SimConfig {
        rf_latency: Duration::from_millis(0),
        ..sim_config()
    })
    .await;
    let home = Home::new();
    backfill(&sim, &home, &[]).await.expect_code(0);
    let l = home.ledger();
    exec(
        &l,
        "UPDATE detections SET state = 'failed' WHERE id IN
            (SELECT id FROM detections WHERE state = 'sent' ORDER BY id LIMIT 30);
         UPDATE detections SET value = 'not-an-ip' WHERE id =
            (SELECT id FROM detections WHERE state = 'failed' AND ioc_type = 'ip' ORDER BY id LIMIT 1 OFFSET 1);",
    );
    let good = keys_where(&l, "d.state = 'failed' AND d.value <> 'not-an-ip'");
    assert_eq!(good.len(), 29);
    let sent = received(&sim).await.len();
    let r = lrci(&sim, &home, &["replay", "--json", "--batch-size", "30"]).await;
    // Issue 9 item 8: a rejection is not silent: partial, and said why.
    r.expect_code(75);
    let s = r.summary();
    assert!(
        s["problems"]
            .to_string()
            .contains("rejected by Collective Insights"),
        "{s}"
    );
    assert_eq!(n(&s["detections"]["rejected"]), 1, "{s}");
    assert_eq!(n(&s["detections"]["submitted"]), 29, "{s}");
    assert_eq!(received_since(&sim, sent).await, once(&good));
    let (state, reason): (String, String) = ledger_ro(&l)
        .query_row(
            "SELECT state, reason FROM detections WHERE value = 'not-an-ip'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "rejected");
    assert!(reason.contains("not an IP"), "{reason}");
}
