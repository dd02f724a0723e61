//! Whole-flow tests of `lrci reconcile` and `lrci ledger backup` against the
//! in-process simulator: a lost ledger rebuilt from what CI holds resends
//! nothing; posts CI swallowed (2xx, nothing stored) are found exactly and
//! replayed once; a backup taken while a sync runs is whole and restores; bad
//! destinations are refused with nothing written; `doctor --backup`.

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

fn sim_config(alarms_per_hour: u32) -> SimConfig {
    SimConfig {
        hours: 4,
        alarms_per_hour,
        end: Some(end()),
        daily_quota: 1_000_000,
        ..SimConfig::default()
    }
}

fn window() -> (String, String) {
    (ts(end() - Span::hours(4)), ts(end()))
}

async fn backfill(sim: &TestSim, home: &Home, extra: &[&str]) -> LrciRun {
    let (from, to) = window();
    let mut args = vec!["backfill", "--json", "--from", &from, "--to", &to];
    args.extend_from_slice(extra);
    lrci(sim, home, &args).await
}

async fn reconcile(sim: &TestSim, home: &Home) -> LrciRun {
    let (from, to) = window();
    lrci(
        sim,
        home,
        &["reconcile", "--json", "--from", &from, "--to", &to],
    )
    .await
}

fn counts(items: &[Value]) -> BTreeMap<Key, usize> {
    let mut out = BTreeMap::new();
    for item in items {
        *out.entry(received_key(item)).or_default() += 1;
    }
    out
}

fn keys_where(ledger: &Path, filter: &str) -> BTreeSet<Key> {
    let c = ledger_ro(ledger);
    let mut st = c
        .prepare(&format!(
            "SELECT alarm_id, ioc_type, value FROM detections WHERE {filter}"
        ))
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn remove_ledger(home: &Home) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = home.ledger().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// The host (and its ledger) is lost after a full sync: on a fresh ledger,
/// `reconcile` learns what CI holds, and the re-sync marks those detections
/// sent instead of posting them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_ledger_after_reconcile_resends_nothing() {
    let sim = start(sim_config(20)).await;
    let home = Home::new();
    backfill(&sim, &home, &[]).await.expect_code(0);
    let stored = received(&sim).await;
    let keys = unique_keys(&stored);
    assert!(keys.len() > 50, "{}", keys.len());

    remove_ledger(&home);
    let r = reconcile(&sim, &home).await;
    r.expect_code(0);
    let s = r.summary();
    assert_eq!(n(&s["ci_events"]), keys.len() as u64, "{s}");
    assert_eq!(n(&s["ci_only"]), keys.len() as u64, "{s}");
    assert_eq!((n(&s["requeued"]), n(&s["marked_sent"])), (0, 0), "{s}");

    let again = backfill(&sim, &home, &[]).await;
    again.expect_code(0);
    assert_eq!(received(&sim).await.len(), stored.len(), "nothing resent");
    assert_eq!(keys_where(&home.ledger(), "state = 'sent'"), keys);
    assert!(keys_where(&home.ledger(), "state IN ('pending', 'failed')").is_empty());
    // And a second reconcile confirms every one.
    let s = reconcile(&sim, &home).await.summary();
    assert_eq!(n(&s["confirmed"]), keys.len() as u64, "{s}");
    assert_eq!(n(&s["requeued"]), 0, "{s}");
}

/// For one backfill CI swallows about 5% of posts (answers 2xx with a result,
/// stores nothing). lrci cannot tell, and records them sent. `reconcile` finds
/// exactly the swallowed detections and queues them; `replay` sends each once;
/// in the end CI holds every detection exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_exactly_the_swallowed_posts_and_replay_sends_them_once() {
    let sim = start(sim_config(120)).await;
    let home = Home::new();
    admin_post(&sim, "/_sim/silent-drop", json!({"rate": 0.05})).await;
    backfill(&sim, &home, &["--batch-size", "5"])
        .await
        .expect_code(0);
    admin_post(&sim, "/_sim/silent-drop", json!({"rate": 0.0})).await;
    let dropped: Vec<Value> = admin_get(&sim, "/_sim/dropped")
        .await
        .as_array()
        .unwrap()
        .clone();
    let dropped_keys = unique_keys(&dropped);
    let stored_keys = unique_keys(&received(&sim).await);
    let sent = keys_where(&home.ledger(), "state = 'sent'");
    assert!(
        dropped.len() >= 15 && dropped.len() * 10 < sent.len(),
        "about 5% of posts swallowed: {} of {} items",
        dropped.len(),
        sent.len()
    );
    eprintln!(
        "figures: {} detections sent in posts of 5, {} items swallowed, {} stored",
        sent.len(),
        dropped.len(),
        stored_keys.len()
    );
    assert!(dropped_keys.is_disjoint(&stored_keys));
    assert_eq!(
        &dropped_keys | &stored_keys,
        sent,
        "the ledger believes all sent"
    );

    let r = reconcile(&sim, &home).await;
    r.expect_code(0);
    let s = r.summary();
    assert_eq!(n(&s["requeued"]), dropped_keys.len() as u64, "{s}");
    assert_eq!(n(&s["confirmed"]), stored_keys.len() as u64, "{s}");
    assert_eq!(n(&s["ci_only"]), 0, "{s}");
    assert_eq!(
        keys_where(&home.ledger(), "state = 'pending'"),
        dropped_keys,
        "exactly the swallowed detections are queued"
    );

    let before = received(&sim).await.len();
    let replay = lrci(&sim, &home, &["replay", "--json"]).await;
    replay.expect_code(0);
    let resent = received(&sim).await[before..].to_vec();
    assert_eq!(
        counts(&resent),
        dropped_keys.iter().map(|k| (k.clone(), 1)).collect(),
        "replay sends each swallowed detection once, nothing else"
    );
    assert_eq!(
        unique_keys(&received(&sim).await),
        sent,
        "CI holds all, once"
    );
    let s = reconcile(&sim, &home).await.summary();
    assert_eq!(
        (n(&s["confirmed"]), n(&s["requeued"])),
        (sent.len() as u64, 0),
        "{s}"
    );
}

/// Backups taken while a slow sync writes are each whole (integrity_check,
/// counts that only grow). Restoring the earliest, then `reconcile` and a sync,
/// ends where the lost ledger was, with nothing sent twice; the last restores
/// as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_during_a_sync_are_whole_and_restore() {
    let sim = start(SimConfig {
        lr_latency: Duration::from_millis(15),
        ..sim_config(60)
    })
    .await;
    let home = Home::new();
    let (from, to) = window();
    let first_hour = ts(end() - Span::hours(3));
    lrci(
        &sim,
        &home,
        &["backfill", "--from", &from, "--to", &first_hour],
    )
    .await
    .expect_code(0);
    let child = lrci_command(
        &sim,
        &home,
        &Keys::of(&sim),
        &[
            "backfill",
            "--from",
            &from,
            "--to",
            &to,
            "--concurrency",
            "1",
        ],
    )
    .spawn()
    .unwrap();
    let mut last = 0i64;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let file = home.dir.path().join(format!("b{i}.sqlite3"));
        let b = lrci(
            &sim,
            &home,
            &["ledger", "backup", "--json", file.to_str().unwrap()],
        )
        .await;
        b.expect_code(0);
        let s = b.summary();
        assert_eq!(s["integrity_check"], "ok");
        let c = ledger_ro(&file);
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let alarms: i64 = c
            .query_row("SELECT count(*) FROM alarms", [], |r| r.get(0))
            .unwrap();
        assert_eq!(alarms as u64, n(&s["alarms"]));
        assert!(
            alarms >= last,
            "a later backup holds less: {alarms} < {last}"
        );
        last = alarms;
        assert!(
            !home.dir.path().join(format!("b{i}.sqlite3-wal")).exists(),
            "one self-contained file"
        );
    }
    finish(child).await.expect_code(0);
    let final_backup = home.dir.path().join("final.sqlite3");
    lrci(
        &sim,
        &home,
        &["ledger", "backup", final_backup.to_str().unwrap()],
    )
    .await
    .expect_code(0);
    let sent_before = keys_where(&home.ledger(), "state = 'sent'");
    let stored = received(&sim).await.len();

    // The host is restored from the first backup, taken early in the sync: what
    // was sent after it is learned back from CI, then the sync fills the rest.
    let early = home.dir.path().join("b0.sqlite3");
    let doctor = lrci(
        &sim,
        &home,
        &["doctor", "--offline", "--backup", early.to_str().unwrap()],
    )
    .await;
    doctor.expect_code(0);
    assert!(
        doctor.stdout.contains("backup: integrity"),
        "{}",
        doctor.stdout
    );
    remove_ledger(&home);
    std::fs::copy(&early, home.ledger()).unwrap();
    assert!(keys_where(&home.ledger(), "state = 'sent'").len() < sent_before.len());
    reconcile(&sim, &home).await.expect_code(0);
    backfill(&sim, &home, &[]).await.expect_code(0);
    assert_eq!(
        received(&sim).await.len(),
        stored,
        "nothing resent after the restore"
    );
    assert_eq!(keys_where(&home.ledger(), "state = 'sent'"), sent_before);

    // The last backup restores as it is.
    remove_ledger(&home);
    std::fs::copy(&final_backup, home.ledger()).unwrap();
    assert_eq!(keys_where(&home.ledger(), "state = 'sent'"), sent_before);
    backfill(&sim, &home, &[]).await.expect_code(0);
    assert_eq!(received(&sim).await.len(), stored);
}

/// Bad destinations: nothing is written, an existing file is left as it was,
/// the error names the file, and the log file says it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_bad_destinations_and_leaves_them_untouched() {
    let sim = start(sim_config(5)).await;
    let home = Home::new();
    let missing = home.dir.path().join("nothing-yet.sqlite3");
    let out = lrci(
        &sim,
        &home,
        &["ledger", "backup", missing.to_str().unwrap()],
    )
    .await;
    out.expect_code(66);
    assert!(!missing.exists());

    backfill(&sim, &home, &[]).await.expect_code(0);
    let existing = home.file("keep.sqlite3", "not a ledger, but mine");
    let out = lrci(&sim, &home, &["ledger", "backup", &existing]).await;
    out.expect_code(73);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "not a ledger, but mine"
    );

    let ledger = home.ledger();
    let out = lrci(&sim, &home, &["ledger", "backup", ledger.to_str().unwrap()]).await;
    out.expect_code(2);
    assert!(out.stderr.contains("ledger itself"), "{}", out.stderr);

    let no_dir = home.dir.path().join("no/such/dir/b.sqlite3");
    let out = lrci(&sim, &home, &["ledger", "backup", no_dir.to_str().unwrap()]).await;
    out.expect_code(73);
    assert!(out.stderr.contains("create it first"), "{}", out.stderr);

    // None of the refusals left a temporary file behind.
    let stray: Vec<_> = std::fs::read_dir(home.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let log: String = std::fs::read_dir(home.log_dir())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        log.contains("ledger backup failed") && log.contains("give --force"),
        "the log file says why:\n{log}"
    );

    let replaced = lrci(&sim, &home, &["ledger", "backup", "--force", &existing]).await;
    replaced.expect_code(0);
    let c = ledger_ro(Path::new(&existing));
    let alarms: i64 = c
        .query_row("SELECT count(*) FROM alarms", [], |r| r.get(0))
        .unwrap();
    assert!(alarms > 0);
}

/// `doctor --backup` fails a damaged backup (65) and a missing one (66), and
/// warns about a plain copy with its WAL beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_a_backup() {
    let sim = start(sim_config(5)).await;
    let home = Home::new();
    backfill(&sim, &home, &[]).await.expect_code(0);
    let good = home.dir.path().join("good.sqlite3");
    lrci(&sim, &home, &["ledger", "backup", good.to_str().unwrap()])
        .await
        .expect_code(0);
    let doctor = |file: String| {
        let sim = &sim;
        let home = &home;
        async move {
            lrci(
                sim,
                home,
                &["doctor", "--offline", "--json", "--backup", &file],
            )
            .await
        }
    };
    let checks = |run: &LrciRun| -> BTreeMap<String, String> {
        run.summary()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with("backup"))
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let ok = doctor(good.to_str().unwrap().into()).await;
    ok.expect_code(0);
    let c = checks(&ok);
    for name in [
        "backup: file",
        "backup: open",
        "backup: integrity",
        "backup: contents",
    ] {
        assert_eq!(c.get(name).map(String::as_str), Some("ok"), "{c:?}");
    }

    let bytes = std::fs::read(&good).unwrap();
    let damaged = home.dir.path().join("damaged.sqlite3");
    std::fs::write(&damaged, &bytes[..bytes.len() / 3]).unwrap();
    let bad = doctor(damaged.to_str().unwrap().into()).await;
    bad.expect_code(65);
    assert!(
        checks(&bad).values().any(|s| s == "fail"),
        "{:?}",
        checks(&bad)
    );

    let missing = doctor(home.dir.path().join("nope").to_str().unwrap().into()).await;
    missing.expect_code(66);

    let plain = home.dir.path().join("plain.sqlite3");
    std::fs::copy(&good, &plain).unwrap();
    std::fs::write(home.dir.path().join("plain.sqlite3-wal"), b"wal frames").unwrap();
    let warned = doctor(plain.to_str().unwrap().into()).await;
    assert_eq!(
        checks(&warned)
            .get("backup: self-contained")
            .map(String::as_str),
        Some("warn")
    );
}

/// More than one search page (CI's limit is 1000 a page) and a 429 with
/// `Retry-After` on the search: reconcile waits, pages on, and sees every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_pages_past_1000_and_waits_out_a_429() {
    let sim = start(sim_config(150)).await;
    let home = Home::new();
    backfill(&sim, &home, &[]).await.expect_code(0);
    let keys = unique_keys(&received(&sim).await);
    assert!(keys.len() > 1000, "{}", keys.len());
    admin_post(
        &sim,
        "/_sim/faults",
        json!({"side": "rf", "kind": "429", "count": 1, "retry_after": 1, "route": "search"}),
    )
    .await;
    let started = std::time::Instant::now();
    let r = reconcile(&sim, &home).await;
    r.expect_code(0);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was waited out"
    );
    let s = r.summary();
    assert_eq!(n(&s["ci_events"]), keys.len() as u64, "{s}");
    assert_eq!(n(&s["confirmed"]), keys.len() as u64, "{s}");
    let stats = admin_get(&sim, "/_sim/stats").await;
    let searches = n(&stats["requests"]["POST /collective-insights/search"]);
    assert!(searches >= 3, "two pages and the refused one: {stats}");
}

fn exec(ledger: &Path, sql: &str) {
    rusqlite::Connection::open(ledger)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

/// Issue 9 case 7: a 2xx without a recognisable result makes its batch
/// `unconfirmed` (exit 75, never posted again blindly). When CI did store it,
/// the next run finds it in CI's search and marks it sent: 0 duplicates. When
/// CI did not, the next runs wait for the settle age, then post it once: every
/// detection reaches CI exactly once, at the cost of at most the one ambiguous
/// batch being looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_without_a_result_is_unconfirmed_and_settled_from_the_search() {
    for kind in ["no-result", "no-result-lost"] {
        let sim = start(sim_config(20)).await;
        let home = Home::new();
        admin_post(
            &sim,
            "/_sim/faults",
            json!({"side": "rf", "kind": kind, "count": 1, "route": "detections"}),
        )
        .await;
        let first = backfill(&sim, &home, &["--batch-size", "10"]).await;
        first.expect_code(75);
        let s = first.summary();
        assert_eq!(n(&s["detections"]["unconfirmed"]), 10, "{kind}: {s}");
        assert!(
            s["problems"].to_string().contains("unconfirmed"),
            "{kind}: {s}"
        );
        let unconfirmed = keys_where(&home.ledger(), "state = 'unconfirmed'");
        assert_eq!(unconfirmed.len(), 10);
        let stored_first = received(&sim).await.len();
        assert_eq!(
            stored_first,
            if kind == "no-result" { 10 } else { 0 },
            "{kind}"
        );

        let second = backfill(&sim, &home, &["--batch-size", "10"]).await;
        let s = second.summary();
        if kind == "no-result" {
            second.expect_code(0);
            assert_eq!(n(&s["detections"]["settled"]["found"]), 10, "{s}");
        } else {
            // Too young to call absent: left, and said so; the rest is sent.
            second.expect_code(75);
            assert_eq!(n(&s["detections"]["settled"]["waiting"]), 10, "{s}");
            assert_eq!(
                keys_where(&home.ledger(), "state = 'unconfirmed'"),
                unconfirmed
            );
            exec(
                &home.ledger(),
                "UPDATE detections SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-11 minutes')
                 WHERE state = 'unconfirmed'",
            );
            let third = backfill(&sim, &home, &["--batch-size", "10"]).await;
            third.expect_code(0);
            let s = third.summary();
            assert_eq!(n(&s["detections"]["settled"]["absent"]), 10, "{s}");
            assert_eq!(n(&s["detections"]["submitted"]), 10, "{s}");
        }
        let all = received(&sim).await;
        let keys = unique_keys(&all);
        assert_eq!(all.len(), keys.len(), "{kind}: no duplicate");
        assert_eq!(
            keys,
            keys_where(&home.ledger(), "state <> 'excluded'"),
            "{kind}"
        );
        assert!(keys_where(&home.ledger(), "state <> 'sent' AND state <> 'excluded'").is_empty());
    }
}
