use super::health;
use super::*;
use crate::model::{
    AlarmId, AlarmRow, DetectionId, DetectionState, Indicator, IndicatorType, Verdict,
};
use chrono::TimeZone;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, h, m, 0).unwrap()
}

fn row(id: i64, at: DateTime<Utc>) -> AlarmRow {
    AlarmRow {
        alarm_id: id.into(),
        rule_name: format!("Rule {id}"),
        status: 0,
        entity_name: "Global Entity".into(),
        date_inserted: at,
    }
}

fn ind(kind: IndicatorType, value: &str, verdict: Verdict) -> Indicator {
    Indicator {
        kind,
        value: value.into(),
        field: "originIP",
        verdict,
        source: Default::default(),
    }
}

fn accepted(id: i64, at: DateTime<Utc>, inds: Vec<Indicator>) -> AlarmRecord {
    AlarmRecord {
        row: row(id, at),
        rbp_max: Some(50),
        outcome: AlarmOutcome::Accepted {
            event_count: 1,
            indicators: inds,
            note: None,
        },
    }
}

fn slice(alarms: Vec<AlarmRecord>) -> SliceIngest {
    SliceIngest {
        run_id: None,
        slice_start: t(10, 0),
        covered_until: Some(t(11, 0)),
        saturated_at: vec![],
        listed_from: None,
        observations: Vec::new(),
        alarms,
    }
}

#[test]
fn pragmas_are_set_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let l = Writer::open(&dir.path().join("l.sqlite3")).unwrap();
    let get = |p: &str| -> String {
        l.conn
            .pragma_query_value(None, p, |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    assert_eq!(get("journal_mode"), "Text(\"wal\")");
    assert_eq!(get("synchronous"), "Integer(2)");
    assert_eq!(get("foreign_keys"), "Integer(1)");
    assert_eq!(get("busy_timeout"), "Integer(10000)");
    assert_eq!(get("application_id"), format!("Integer({APPLICATION_ID})"));
    assert_eq!(
        get("user_version"),
        format!("Integer({})", migrate::CURRENT_VERSION)
    );
}

#[cfg(unix)]
#[test]
fn new_ledger_and_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/l.sqlite3");
    Writer::open(&path).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[test]
fn empty_file_is_a_new_ledger_for_writers_and_an_error_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    std::fs::write(&path, b"").unwrap();
    let err = Ledger::open(&path).err().unwrap();
    assert!(matches!(err, Error::Empty { .. }), "{err}");
    assert_eq!(err.exit_code(), 66);
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    Writer::open(&path).unwrap();
    Ledger::open(&path).unwrap();
}

/// REGRESSION (kill -9 test in CI): a run killed while a new ledger was being
/// switched to WAL left a hot rollback journal that read-only opens refused
/// ("attempt to write a readonly database"). Creation is now build-then-rename.
#[test]
fn a_killed_creation_leaves_no_ledger_and_its_leftovers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    // What a creation killed half-way leaves behind.
    std::fs::write(dir.path().join(".l.sqlite3.new-99999"), b"half").unwrap();
    std::fs::write(dir.path().join(".l.sqlite3.new-99999-journal"), b"x").unwrap();
    assert!(matches!(
        Ledger::open(&path).err(),
        Some(Error::Open { .. })
    ));
    Writer::open(&path).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".l.sqlite3.new-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // A fresh ledger is whole at once: readable read-only, in WAL mode.
    let ro = Ledger::open(&path).unwrap();
    let mode: String = ro
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn newer_ledger_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    drop(Writer::open(&path).unwrap());
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", migrate::CURRENT_VERSION + 1)
            .unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Writer::open(&path).err().unwrap();
    assert!(matches!(err, Error::TooNew { .. }), "{err}");
    assert_eq!(err.exit_code(), 65);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn foreign_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("passwd");
    std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n".repeat(50)).unwrap();
    let err = Writer::open(&text).err().unwrap();
    assert_eq!(err.exit_code(), 65, "{err}");
    assert!(std::fs::read_to_string(&text).unwrap().starts_with("root:"));

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = Writer::open(&other).err().unwrap();
    assert!(matches!(err, Error::Foreign { .. }), "{err}");
}

#[test]
fn ingest_is_idempotent_and_counts_new_rows() {
    let mut l = Writer::open_in_memory().unwrap();
    let recs = vec![
        accepted(
            1,
            t(10, 5),
            vec![
                ind(IndicatorType::Ip, "8.8.8.8", Verdict::Send),
                ind(
                    IndicatorType::Ip,
                    "10.0.0.1",
                    Verdict::Exclude("private ip".into()),
                ),
            ],
        ),
        AlarmRecord {
            row: row(2, t(10, 6)),
            rbp_max: Some(3),
            outcome: AlarmOutcome::Filtered {
                reason: "rbp 3 < 40".into(),
            },
        },
    ];
    let c = l.ingest(&slice(recs.clone()), t(12, 0)).unwrap();
    assert_eq!(
        c,
        IngestCounts {
            new_alarms: 2,
            new_pending: 1,
            new_excluded: 1
        }
    );
    let c = l.ingest(&slice(recs), t(12, 0)).unwrap();
    assert_eq!(c.new_alarms, 0);
    assert_eq!(c.new_pending + c.new_excluded, 0);
    assert_eq!(l.state_counts().unwrap().pending, 1);
    let cov = l.coverage(t(0, 0), t(23, 0)).unwrap();
    assert_eq!(cov[&t(10, 0)].covered_until, t(11, 0));
}

#[test]
fn unavailable_fetches_never_use_up_an_alarms_attempts() {
    let mut l = Writer::open_in_memory().unwrap();
    let down = AlarmRecord {
        row: row(8, t(10, 2)),
        rbp_max: None,
        outcome: AlarmOutcome::Unavailable {
            error: "details: HTTP 503".into(),
        },
    };
    for _ in 0..5 {
        l.ingest(&slice(vec![down.clone()]), t(12, 0)).unwrap();
    }
    let known = l.known_alarms(&[8.into()]).unwrap();
    assert_eq!(known[&AlarmId::from(8)].decision.as_str(), "error");
    assert_eq!(known[&AlarmId::from(8)].fetch_attempts, 0);
    assert_eq!(l.alarms_to_retry(t(0, 0), t(23, 0)).unwrap().len(), 1);
}

#[test]
fn error_alarms_are_retried_then_accepted() {
    let mut l = Writer::open_in_memory().unwrap();
    let err = AlarmRecord {
        row: row(7, t(10, 1)),
        rbp_max: None,
        outcome: AlarmOutcome::Error {
            error: "events: 503".into(),
        },
    };
    l.ingest(&slice(vec![err.clone()]), t(12, 0)).unwrap();
    l.ingest(&slice(vec![err]), t(12, 0)).unwrap();
    let known = l.known_alarms(&[7.into()]).unwrap();
    assert_eq!(known[&AlarmId::from(7)].decision.as_str(), "error");
    assert_eq!(known[&AlarmId::from(7)].fetch_attempts, 2);
    assert_eq!(l.alarms_to_retry(t(0, 0), t(23, 0)).unwrap().len(), 1);
    assert_eq!(l.alarms_to_retry(t(0, 0), t(10, 1)).unwrap().len(), 0);
    l.ingest(
        &slice(vec![accepted(
            7,
            t(10, 1),
            vec![ind(IndicatorType::Ip, "1.1.1.1", Verdict::Send)],
        )]),
        t(12, 0),
    )
    .unwrap();
    assert_eq!(
        l.known_alarms(&[7.into()]).unwrap()[&AlarmId::from(7)]
            .decision
            .as_str(),
        "accepted"
    );
    assert_eq!(l.state_counts().unwrap().pending, 1);
}

#[test]
fn accepted_alarm_is_never_overwritten() {
    let mut l = Writer::open_in_memory().unwrap();
    l.ingest(&slice(vec![accepted(3, t(10, 1), vec![])]), t(12, 0))
        .unwrap();
    let err = AlarmRecord {
        row: row(3, t(10, 1)),
        rbp_max: None,
        outcome: AlarmOutcome::Error { error: "x".into() },
    };
    l.ingest(&slice(vec![err]), t(12, 0)).unwrap();
    assert_eq!(
        l.known_alarms(&[3.into()]).unwrap()[&AlarmId::from(3)]
            .decision
            .as_str(),
        "accepted"
    );
}

#[test]
fn sent_is_terminal_and_budget_counts_real_sends() {
    let mut l = Writer::open_in_memory().unwrap();
    l.ingest(
        &slice(vec![accepted(
            1,
            t(10, 5),
            vec![
                ind(IndicatorType::Ip, "8.8.8.8", Verdict::Send),
                ind(IndicatorType::Ip, "9.9.9.9", Verdict::Send),
            ],
        )]),
        t(12, 0),
    )
    .unwrap();
    let todo = l
        .detections_to_submit(
            &[DetectionState::Pending, DetectionState::Failed],
            DetectionId::from(0),
            10,
        )
        .unwrap();
    assert_eq!(todo.len(), 2);
    let sub = |debug| SubmissionRecord {
        run_id: None,
        at: t(12, 1),
        debug,
        http_status: Some(200),
        processed: None,
    };
    l.mark_sent(&[todo[0].id], &sub(false)).unwrap();
    l.mark_failed(&[todo[0].id, todo[1].id], &sub(false), "503")
        .unwrap();
    let c = l.state_counts().unwrap();
    assert_eq!((c.sent, c.failed), (1, 1));
    l.mark_rejected(todo[1].id, &sub(false), "bad value")
        .unwrap();
    assert_eq!(l.state_counts().unwrap().rejected, 1);
    let day = t(12, 0).date_naive();
    assert_eq!(l.budget_used(day).unwrap(), 1);
}

/// REGRESSION (overlap trials in CI): a loser that read the lock file in the
/// instant before the new holder wrote its pid named no holder, or a dead one.
#[cfg(target_os = "linux")]
#[test]
fn a_loser_waits_briefly_for_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("l.sqlite3");
    let held = RunLock::acquire(&ledger).unwrap();
    // As if the holder had not written yet: the previous, dead holder's pid.
    std::fs::write(held.path(), "999999999\n").unwrap();
    let lock_path = held.path().to_path_buf();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        std::fs::write(&lock_path, format!("{}\n", std::process::id())).unwrap();
    });
    let err = RunLock::acquire(&ledger).err().unwrap();
    writer.join().unwrap();
    match err {
        Error::Locked { holder, .. } => assert_eq!(holder, Some(std::process::id())),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn second_lock_is_refused_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("l.sqlite3");
    let first = RunLock::acquire(&ledger).unwrap();
    let err = RunLock::acquire(&ledger).err().unwrap();
    match &err {
        Error::Locked { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(err.exit_code(), 75);
    drop(first);
    RunLock::acquire(&ledger).unwrap();
}

#[cfg(unix)]
#[test]
fn every_name_of_one_ledger_shares_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("l.sqlite3");
    // A link made before the ledger exists (dangling), a relative link, and a
    // symlinked directory.
    let link = dir.path().join("link.sqlite3");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let rel = dir.path().join("rel.sqlite3");
    std::os::unix::fs::symlink("l.sqlite3", &rel).unwrap();
    let alias = dir.path().join("alias");
    std::os::unix::fs::symlink(dir.path(), &alias).unwrap();
    let names = [link.clone(), rel, alias.join("l.sqlite3")];
    for name in &names {
        assert_eq!(
            RunLock::path_for(name),
            RunLock::path_for(&real),
            "{name:?}"
        );
    }
    let held = RunLock::acquire(&link).unwrap();
    for name in names.iter().chain([&real]) {
        assert!(
            matches!(RunLock::acquire(name), Err(Error::Locked { .. })),
            "{name:?} was not locked out"
        );
    }
    drop(held);
    // The ledger is created through the dangling link, at its target.
    let l = Writer::open(&link).unwrap();
    drop(l);
    assert!(real.is_file() && link.is_symlink());
}

#[test]
fn a_stored_value_that_does_not_parse_is_error_65_never_skipped() {
    let mut l = Writer::open_in_memory().unwrap();
    let ip = ind(IndicatorType::Ip, "1.1.1.1", Verdict::Send);
    l.ingest(&slice(vec![accepted(1, t(10, 1), vec![ip])]), t(12, 0))
        .unwrap();
    // (statement that corrupts one value, read that must refuse it, named column)
    type Read = fn(&Writer) -> Result<()>;
    let cases: &[(&str, Read, &str)] = &[
        (
            "UPDATE detections SET state = 'sen'",
            |l| l.state_counts().map(drop),
            "detections.state: unknown state \"sen\"",
        ),
        (
            "UPDATE detections SET state = 'pending'; UPDATE alarms SET date_inserted = 'soon'",
            |l| {
                l.detections_to_submit(&[DetectionState::Pending], 0.into(), 10)
                    .map(drop)
            },
            "alarms.date_inserted: \"soon\" is not an RFC 3339 time",
        ),
        (
            "UPDATE alarms SET decision = 'maybe'",
            |l| l.known_alarms(&[1.into()]).map(drop),
            "alarms.decision: unknown decision \"maybe\"",
        ),
    ];
    for (corrupt, read, want) in cases {
        l.conn
            .execute_batch("PRAGMA ignore_check_constraints = ON")
            .unwrap();
        l.conn.execute_batch(corrupt).unwrap();
        let e = read(&l).unwrap_err();
        assert!(matches!(e, Error::BadValue { .. }), "{corrupt}: {e:?}");
        assert_eq!(e.exit_code(), 65, "{corrupt}");
        assert!(e.to_string().contains(want), "{corrupt}: {e}");
    }
}

// Issue 10: what the ledger learns of the organisation.

fn sighting(registered: &str, host: &str, witness: &str) -> crate::model::NameSighting {
    crate::model::NameSighting {
        registered: registered.into(),
        host: host.into(),
        witness: witness.into(),
        basis: "origin: logrhythm zone Internal".into(),
    }
}

fn observed(
    id: i64,
    names: Vec<crate::model::NameSighting>,
) -> (AlarmId, crate::model::Observations) {
    (
        id.into(),
        crate::model::Observations {
            networks: vec![],
            names,
        },
    )
}

/// Ingests one slice holding these alarms' observations.
fn learn(l: &mut Writer, obs: Vec<(AlarmId, crate::model::Observations)>) {
    let alarms = obs
        .iter()
        .map(|(id, _)| accepted(i64::from(*id), t(10, 5), vec![]))
        .collect();
    let mut batch = slice(alarms);
    batch.observations = obs;
    l.ingest(&batch, t(12, 0)).unwrap();
}

#[test]
fn a_domain_is_learned_from_three_witnesses_in_two_alarms_and_never_from_a_sinkhole() {
    let mut l = Writer::open_in_memory().unwrap();
    // A sinkhole: many names, many alarms, one address.
    learn(
        &mut l,
        (1..=6)
            .map(|i| {
                observed(
                    i,
                    vec![sighting(
                        "evil.net",
                        &format!("x{i}.evil.net"),
                        "ip:10.20.250.53",
                    )],
                )
            })
            .collect(),
    );
    // Three witnesses in one alarm: not yet.
    learn(
        &mut l,
        vec![observed(
            10,
            vec![
                sighting("acme.com", "a.acme.com", "ip:10.0.0.1"),
                sighting("acme.com", "b.acme.com", "ip:10.0.0.2"),
                sighting("acme.com", "c.acme.com", "name:c.acme.com"),
            ],
        )],
    );
    assert!(l.learned_domains().unwrap().is_empty());
    // The same witness again in another alarm: two alarms, three witnesses.
    learn(
        &mut l,
        vec![observed(
            11,
            vec![sighting("acme.com", "a.acme.com", "ip:10.0.0.1")],
        )],
    );
    assert_eq!(l.learned_domains().unwrap(), ["acme.com"]);
    let ev = l.domain_evidence().unwrap();
    let acme = ev.iter().find(|e| e.domain == "acme.com").unwrap();
    assert_eq!(
        (acme.witnesses, acme.alarms, acme.learned_at),
        (3, 2, Some(t(12, 0)))
    );
    assert_eq!(i64::from(acme.example_alarm_id), 10);
    let evil = ev.iter().find(|e| e.domain == "evil.net").unwrap();
    assert_eq!((evil.witnesses, evil.alarms, evil.learned_at), (1, 6, None));
    // Learning twice changes nothing.
    learn(
        &mut l,
        vec![observed(
            12,
            vec![sighting("acme.com", "d.acme.com", "ip:10.0.0.4")],
        )],
    );
    assert_eq!(l.learned_at("acme.com").unwrap(), Some(t(12, 0)));
}

#[test]
fn network_records_are_kept_once_and_excluding_due_detections_spares_sent_ones() {
    let mut l = Writer::open_in_memory().unwrap();
    let net = crate::model::NetworkRecord {
        begin: "62.60.128.0".parse().unwrap(),
        end: "62.60.128.63".parse().unwrap(),
        name: "DMZ public".into(),
        zone: "DMZ".into(),
    };
    for id in [1, 2] {
        let mut batch = slice(vec![accepted(
            id,
            t(10, 5),
            vec![ind(IndicatorType::Ip, "62.60.128.40", Verdict::Send)],
        )]);
        batch.observations = vec![(
            id.into(),
            crate::model::Observations {
                networks: vec![net.clone()],
                names: vec![],
            },
        )];
        l.ingest(&batch, t(12, 0)).unwrap();
    }
    let known = l.known_networks().unwrap();
    assert_eq!(known.len(), 1);
    assert_eq!(
        (known[0].sightings, i64::from(known[0].example_alarm_id)),
        (2, 1)
    );
    assert_eq!(known[0].record, net);
    let due = l.due_values(&[DetectionState::Pending]).unwrap();
    assert_eq!(due.len(), 2);
    let first = due[0].0;
    l.conn
        .execute(
            "UPDATE detections SET state = 'sent' WHERE id = ?1",
            [first],
        )
        .unwrap();
    let items: Vec<(DetectionId, String)> = due
        .iter()
        .map(|(id, _, _)| (*id, "now known".to_string()))
        .collect();
    assert_eq!(l.exclude_due(&items, t(12, 1)).unwrap(), 1);
    let states: Vec<String> = l
        .conn
        .prepare("SELECT state FROM detections ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(states, ["sent", "excluded"]);
}

// Issue 13: quick_check where it pays.

/// The recorded health of the ledger file at `path` (read-only).
fn health_of(path: &Path) -> Health {
    Ledger::open(path).unwrap().health().unwrap().unwrap()
}

#[test]
fn quick_check_runs_after_an_unclean_close_or_a_change_and_not_after_a_clean_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    // A new ledger: no check recorded, so the first writer runs one.
    let w = Writer::open(&path).unwrap();
    let h = w.health().unwrap().unwrap();
    assert_eq!(
        h.check_reason.as_deref(),
        Some(CheckReason::NoRecord.as_str())
    );
    assert_eq!(h.check_result.as_deref(), Some("ok"));
    assert_eq!(h.writer_pid, Some(i64::from(std::process::id())));
    assert!(h.writer_opened_at.is_some());
    let first = h.check_at.unwrap();
    drop(w);
    // A clean close: mark cleared, -wal gone, the file's time is the recorded second.
    let h = health_of(&path);
    assert_eq!((h.writer_pid, h.writer_opened_at.as_deref()), (None, None));
    let file = health::FileState::of(&path);
    assert_eq!(file.wal_bytes, 0);
    assert_eq!(file.mtime, h.closed_mtime);
    assert!(h.closed_mtime.is_some());
    // The next writer finds it as it was left and checks nothing.
    drop(Writer::open(&path).unwrap());
    let h = health_of(&path);
    assert_eq!(h.check_at, Some(first), "no check after a clean close");
    // Reading it changes nothing.
    drop(Ledger::open(&path).unwrap());
    drop(Writer::open(&path).unwrap());
    assert_eq!(health_of(&path).check_at, Some(first));

    // Changed by something else (a copy, a restore, an edit): checked.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "INSERT INTO runs (kind, started_at) VALUES ('sync', '2026-12-03T00:00:00.000Z')",
        )
        .unwrap();
    }
    drop(Writer::open(&path).unwrap());
    let h = health_of(&path);
    assert_eq!(
        h.check_reason.as_deref(),
        Some(CheckReason::Changed.as_str())
    );
    let second = h.check_at.unwrap();
    assert!(second >= first);

    // A writer that died with the ledger open (its mark is left): checked.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("UPDATE ledger_health SET writer_pid = 1, writer_opened_at = 'x'")
            .unwrap();
    }
    drop(Writer::open(&path).unwrap());
    let h = health_of(&path);
    assert_eq!(
        h.check_reason.as_deref(),
        Some(CheckReason::Unclean.as_str())
    );

    // A day after the last check: checked again.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("UPDATE ledger_health SET check_at = '2000-01-01T00:00:00.000Z'")
            .unwrap();
    }
    // (that edit also changed the file; a clean writer close makes it match again)
    drop(Writer::open(&path).unwrap());
    {
        let w = Writer::open(&path).unwrap();
        w.conn
            .execute_batch("UPDATE ledger_health SET check_at = '2000-01-01T00:00:00.000Z'")
            .unwrap();
    }
    drop(Writer::open(&path).unwrap());
    let h = health_of(&path);
    assert_eq!(h.check_reason.as_deref(), Some(CheckReason::Daily.as_str()));
    assert!(h.check_at.unwrap() >= second);
}

#[test]
fn a_ledger_damaged_after_a_clean_close_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    {
        let mut w = Writer::open(&path).unwrap();
        let alarms = (1..=300)
            .map(|i| {
                accepted(
                    i,
                    t(10, 5),
                    vec![ind(
                        IndicatorType::Domain,
                        &format!("h{i}.example.com"),
                        Verdict::Send,
                    )],
                )
            })
            .collect();
        w.ingest(&slice(alarms), t(12, 0)).unwrap();
    }
    // Checked just now and closed cleanly: the next open would not check.
    assert!(health::check_due(
        Some(&health_of(&path)),
        &health::FileState::of(&path),
        Utc::now()
    )
    .is_none());
    // A page overwritten in place (bit rot, a stray write), same length.
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / 4096;
    assert!(pages > 8, "{pages} pages");
    for b in &mut bytes[4096 * 3..4096 * 4] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = Writer::open(&path)
        .err()
        .expect("a damaged ledger must be refused");
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 65);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "refused untouched");
}

/// Saturated instants a later listing reached are replaced by what it found;
/// those before where it started are kept (issue 9 item 5).
#[test]
fn a_listing_replaces_the_saturated_instants_it_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(&dir.path().join("l.sqlite3")).unwrap();
    let cov = |w: &Writer| {
        w.coverage(t(10, 0), t(11, 0)).unwrap()[&t(10, 0)]
            .saturated_at
            .clone()
    };
    // (listed from, saturated found, recorded after)
    type Step = (
        Option<DateTime<Utc>>,
        Vec<DateTime<Utc>>,
        Vec<DateTime<Utc>>,
    );
    let steps: [Step; 4] = [
        (
            Some(t(10, 0)),
            vec![t(10, 20), t(10, 40)],
            vec![t(10, 20), t(10, 40)],
        ),
        // Listed from 10:30: 10:20 is kept, 10:40 got through.
        (Some(t(10, 30)), vec![], vec![t(10, 20)]),
        // Listed from 10:10, 10:20 still saturated, a new one at 10:50.
        (
            Some(t(10, 10)),
            vec![t(10, 20), t(10, 50)],
            vec![t(10, 20), t(10, 50)],
        ),
        // Listed from the start: nothing saturated any more.
        (Some(t(10, 0)), vec![], vec![]),
    ];
    for (i, (from, found, want)) in steps.into_iter().enumerate() {
        let mut batch = slice(vec![]);
        batch.listed_from = from;
        batch.saturated_at = found;
        w.ingest(&batch, t(12, 0)).unwrap();
        assert_eq!(cov(&w), want, "step {i}");
    }
}
