//! Schema migrations, in the style of cargo's `util/sqlite.rs`.
//!
//! Rules: the index of a step in [`MIGRATIONS`] plus one is the `user_version` it
//! leaves behind. Never edit, reorder or remove a step that has shipped; append a
//! new one. Steps run together in one IMMEDIATE transaction at open, so a ledger is
//! either wholly at the old version or wholly at the new one. Pragmas are set by the
//! opener, never here.

use rusqlite::{Connection, TransactionBehavior};

/// Every migration, oldest first. Step 1 is `schema.sql`.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../../schema.sql"),
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_UNCONFIRMED,
    MIGRATION_6,
    MIGRATION_7,
];

/// Migration 2 (issue 11): what each detection's event said about its source
/// (`ioc.source_type`, `malwares`), and `ci_holdings`, what `lrci reconcile`
/// found Collective Insights holding, keyed like a detection (incident id =
/// alarm id as text), so ingest marks a matching new detection `sent` instead
/// of sending it again.
const MIGRATION_2: &str = "
ALTER TABLE detections ADD COLUMN source_type TEXT;
ALTER TABLE detections ADD COLUMN threat_name TEXT;
CREATE TABLE ci_holdings (
    incident_id    TEXT NOT NULL,
    ioc_type       TEXT NOT NULL,
    value          TEXT NOT NULL,
    event_id       TEXT,
    detection_time TEXT,
    seen_at        TEXT NOT NULL,
    PRIMARY KEY (incident_id, ioc_type, value)
);
";

/// Migration 3 (issue 10): what LogRhythm has shown about the organisation.
/// `org_networks`: network records accepted from events (one row per range);
/// `org_sightings`: host names seen on the organisation's event sides, one row
/// per (registered domain, witness, alarm), kept until the domain is learned;
/// `org_domains`: registered domains learned as the organisation's, with when
/// and from which alarm.
const MIGRATION_3: &str = "
CREATE TABLE org_networks (
    begin_ip         TEXT    NOT NULL,
    end_ip           TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    host_zone        TEXT    NOT NULL,
    first_seen       TEXT    NOT NULL,
    last_seen        TEXT    NOT NULL,
    example_alarm_id INTEGER NOT NULL,
    sightings        INTEGER NOT NULL,
    PRIMARY KEY (begin_ip, end_ip)
);
CREATE TABLE org_sightings (
    registered  TEXT    NOT NULL,
    witness     TEXT    NOT NULL,
    alarm_id    INTEGER NOT NULL,
    host        TEXT    NOT NULL,
    basis       TEXT    NOT NULL,
    seen_at     TEXT    NOT NULL,
    PRIMARY KEY (registered, witness, alarm_id)
);
CREATE TABLE org_domains (
    domain           TEXT    PRIMARY KEY,
    learned_at       TEXT    NOT NULL,
    run_id           INTEGER REFERENCES runs (id),
    example_alarm_id INTEGER NOT NULL,
    example_host     TEXT    NOT NULL,
    basis            TEXT    NOT NULL,
    witnesses        INTEGER NOT NULL,
    alarms           INTEGER NOT NULL
);
";

/// Migration 4 (issue 11): `server_profile`, what lrci probed of the LogRhythm
/// server's list behaviour, one row (id 1). `page_cap` is the rows of the
/// largest page (`page_cap_exact` 1: the server cut a page there; 0: every row
/// fitted, so the cap is at least that; NULL: too few alarms); `offset_mode`
/// as `logrhythm` names it; `tz_shift_hours` the hours the server's reading of
/// `dateInserted` is ahead of UTC (NULL: no alarm to measure by); `requests`
/// the probe's request count; `stale_reason` set when a listing contradicted
/// the record, so the next run probes again.
const MIGRATION_4: &str = "
CREATE TABLE server_profile (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    page_cap       INTEGER,
    page_cap_exact INTEGER NOT NULL CHECK (page_cap_exact IN (0, 1)),
    offset_mode    TEXT    NOT NULL
                   CHECK (offset_mode IN ('unknown', 'records', 'pages', 'ignored')),
    tz_shift_hours INTEGER,
    requests       INTEGER NOT NULL,
    probed_at      TEXT    NOT NULL,
    stale_reason   TEXT
);
";

/// Migration 5 (issue 9 item 7): detection state `unconfirmed` (CI answered 2xx
/// without a recognisable result). SQLite cannot change a CHECK constraint in
/// place, so `detections` is rebuilt; nothing references it, so dropping the
/// old table is safe with foreign keys on. Columns are copied by name.
const MIGRATION_UNCONFIRMED: &str = "
CREATE TABLE detections_v5 (
    id             INTEGER PRIMARY KEY,
    alarm_id       INTEGER NOT NULL REFERENCES alarms (alarm_id),
    ioc_type       TEXT    NOT NULL CHECK (ioc_type IN ('ip', 'domain', 'url', 'vulnerability', 'hash')),
    value          TEXT    NOT NULL,
    field          TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'rejected', 'unconfirmed', 'excluded')),
    reason         TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    sent_at        TEXT,
    submission_id  INTEGER REFERENCES submissions (id),
    source_type    TEXT,
    threat_name    TEXT,
    UNIQUE (alarm_id, ioc_type, value)
);
INSERT INTO detections_v5 (id, alarm_id, ioc_type, value, field, state, reason, attempts,
        last_error, created_at, updated_at, sent_at, submission_id, source_type, threat_name)
    SELECT id, alarm_id, ioc_type, value, field, state, reason, attempts,
        last_error, created_at, updated_at, sent_at, submission_id, source_type, threat_name
    FROM detections;
DROP TABLE detections;
ALTER TABLE detections_v5 RENAME TO detections;
CREATE INDEX detections_by_state ON detections (state);
CREATE INDEX detections_by_value ON detections (value);
";

/// Migration 6 (issue 13): an index for substring search of indicator values,
/// and the record of the ledger's integrity checks.
///
/// `detections_value_fts` is an FTS5 table with the `trigram` tokenizer over
/// `detections.value`, as external content (the text stays in `detections`
/// only; the index holds trigrams and row ids). Triggers keep it in step with
/// every insert, delete (`ledger prune`) and change of a value; the `rebuild`
/// indexes what an older ledger already holds. `ledger indicators --value`
/// uses it for values of three characters or more.
///
/// `ledger_health` (one row, id 1, written by `Writer`): `writer_pid` and
/// `writer_opened_at` are set while a writer has the ledger open and cleared
/// at a clean close, whose time is `closed_at`; `closed_mtime` is the
/// modification time (Unix seconds) lrci gave the file at that close, so a
/// file changed since by anything else is noticed. `check_*`: the last
/// `PRAGMA quick_check` (when, why, how long, and its result).
const MIGRATION_6: &str = "
CREATE VIRTUAL TABLE detections_value_fts USING fts5(
    value, content = 'detections', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO detections_value_fts (detections_value_fts) VALUES ('rebuild');
CREATE TRIGGER detections_value_fts_insert AFTER INSERT ON detections BEGIN
    INSERT INTO detections_value_fts (rowid, value) VALUES (new.id, new.value);
END;
CREATE TRIGGER detections_value_fts_delete AFTER DELETE ON detections BEGIN
    INSERT INTO detections_value_fts (detections_value_fts, rowid, value)
        VALUES ('delete', old.id, old.value);
END;
CREATE TRIGGER detections_value_fts_update AFTER UPDATE OF id, value ON detections BEGIN
    INSERT INTO detections_value_fts (detections_value_fts, rowid, value)
        VALUES ('delete', old.id, old.value);
    INSERT INTO detections_value_fts (rowid, value) VALUES (new.id, new.value);
END;
CREATE TABLE ledger_health (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    writer_pid       INTEGER,
    writer_opened_at TEXT,
    closed_at        TEXT,
    closed_mtime     INTEGER,
    check_at         TEXT,
    check_reason     TEXT,
    check_ms         INTEGER,
    check_result     TEXT
);
";

/// Migration 7 (issue 13): new detections are indexed by `Writer::ingest`, one
/// statement per transaction, instead of by a trigger per row. FTS5 flushes its
/// pending terms to disk at every statement savepoint, so the trigger wrote one
/// segment per inserted detection and merged them again: half of a slice's
/// ingest CPU, during which no LogRhythm request was started. Deletes and
/// value changes keep their triggers (a prune is one statement).
const MIGRATION_7: &str = "
DROP TRIGGER detections_value_fts_insert;
";

/// The `user_version` this build writes and understands.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`CURRENT_VERSION`]. The caller has checked that the
/// ledger is not newer than this build.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < CURRENT_VERSION {
        for step in MIGRATIONS
            .iter()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            tx.execute_batch(step)?;
        }
        tx.pragma_update(None, "user_version", CURRENT_VERSION)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn fresh_database_migrates_to_current() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
        assert_eq!(
            tables(&conn),
            [
                "alarms",
                "ci_holdings",
                "coverage",
                "detections",
                "detections_value_fts",
                "detections_value_fts_config",
                "detections_value_fts_data",
                "detections_value_fts_docsize",
                "detections_value_fts_idx",
                "ledger_health",
                "org_domains",
                "org_networks",
                "org_sightings",
                "pruned_alarms",
                "runs",
                "server_profile",
                "submissions"
            ]
        );
    }

    #[test]
    fn a_ledger_at_version_3_picks_up_the_later_steps() {
        let mut conn = Connection::open_in_memory().unwrap();
        for step in &MIGRATIONS[..3] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        assert!(!tables(&conn).contains(&"server_profile".to_string()));
        migrate(&mut conn).unwrap();
        assert!(tables(&conn).contains(&"server_profile".to_string()));
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
    }

    #[test]
    fn migration_5_keeps_every_detection_and_allows_unconfirmed() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        for step in &MIGRATIONS[..3] {
            tx.execute_batch(step).unwrap();
        }
        tx.pragma_update(None, "user_version", 3).unwrap();
        tx.execute_batch(
            "INSERT INTO alarms (alarm_id, rule_name, status, entity_name, date_inserted, decision,
                 first_seen_at, updated_at)
             VALUES (7, 'r', 0, 'e', '2026-12-01T00:00:00.000Z', 'accepted', 'x', 'x');
             INSERT INTO detections (id, alarm_id, ioc_type, value, field, state, created_at,
                 updated_at, source_type, threat_name)
             VALUES (41, 7, 'ip', '8.8.8.8', 'originIP', 'failed', 'c', 'u', 'fw', 'Emotet');",
        )
        .unwrap();
        tx.commit().unwrap();
        assert!(conn
            .execute("UPDATE detections SET state = 'unconfirmed'", [])
            .is_err());
        migrate(&mut conn).unwrap();
        let row: (i64, String, String, String) = conn
            .query_row(
                "SELECT id, state, source_type, threat_name FROM detections",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (41, "failed".into(), "fw".into(), "Emotet".into()));
        conn.execute("UPDATE detections SET state = 'unconfirmed'", [])
            .unwrap();
        assert!(conn
            .execute("UPDATE detections SET state = 'bogus'", [])
            .is_err());
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'detections'
                 AND name IN ('detections_by_state', 'detections_by_value')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2);
    }

    #[test]
    fn migration_6_indexes_the_values_an_older_ledger_holds() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        for step in &MIGRATIONS[..5] {
            tx.execute_batch(step).unwrap();
        }
        tx.pragma_update(None, "user_version", 5).unwrap();
        tx.execute_batch(
            "INSERT INTO alarms (alarm_id, rule_name, status, entity_name, date_inserted, decision,
                 first_seen_at, updated_at)
             VALUES (7, 'r', 0, 'e', '2026-12-01T00:00:00.000Z', 'accepted', 'x', 'x');
             INSERT INTO detections (id, alarm_id, ioc_type, value, field, state, created_at, updated_at)
             VALUES (41, 7, 'domain', 'old.example', 'domain', 'sent', 'c', 'u'),
                    (42, 7, 'ip', '8.8.4.4', 'originIP', 'sent', 'c', 'u');",
        )
        .unwrap();
        tx.commit().unwrap();
        migrate(&mut conn).unwrap();
        let found = |conn: &Connection, phrase: &str| -> Vec<i64> {
            let mut st = conn
                .prepare("SELECT rowid FROM detections_value_fts WHERE detections_value_fts MATCH ?1 ORDER BY rowid")
                .unwrap();
            st.query_map([phrase], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(found(&conn, "\"d.exa\""), [41]);
        assert_eq!(found(&conn, "\"8.4\""), [42]);
        // From migration 7 on, a plain insert is not indexed by a trigger:
        // `Writer::ingest` indexes what it inserts (see the ledger's tests).
        conn.execute_batch(
            "INSERT INTO detections (id, alarm_id, ioc_type, value, field, state, created_at, updated_at)
             VALUES (43, 7, 'domain', 'new.example', 'domain', 'pending', 'c', 'u')",
        )
        .unwrap();
        assert_eq!(found(&conn, "\"example\""), [41]);
        // Deletes still go through their trigger.
        conn.execute_batch("DELETE FROM detections WHERE id = 41")
            .unwrap();
        assert_eq!(found(&conn, "\"example\""), Vec::<i64>::new());
        let health: i64 = conn
            .query_row("SELECT count(*) FROM ledger_health", [], |r| r.get(0))
            .unwrap();
        assert_eq!(health, 0, "no check is recorded until a writer runs one");
    }

    #[test]
    fn a_failing_step_leaves_the_old_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE runs (x)").unwrap();
        assert!(migrate(&mut conn).is_err());
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
        assert_eq!(tables(&conn), ["runs"]);
    }
}
