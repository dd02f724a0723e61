//! The ledger: an SQLite file holding every alarm lrci has seen, every indicator it
//! found, what was sent, and the coverage map of fetched time slices.
//!
//! All SQL lives in this module (and `schema.sql`). Values are always bound, never
//! formatted into SQL. The ledger knows nothing about HTTP.
//!
//! # Opening
//! A ledger is checked before anything is written to it: a file that is not
//! SQLite, an SQLite file of another application (`application_id`) or a ledger
//! from a newer lrci (`user_version`) is refused untouched. Then the pragmas are
//! set (WAL, `synchronous=FULL`, `busy_timeout`, `foreign_keys`) and migrations run.
//! A new ledger file is created `0600` in a directory created `0700`.
//!
//! # Locking
//! One writer at a time: `sync`, `backfill` and `replay` hold [`RunLock`], an
//! exclusive `flock`-style lock on `<ledger>.lock` that the kernel drops when the
//! process dies, so a killed run never blocks the next. Read-only commands take no
//! lock; WAL lets them read while a run writes.
//!
//! # Transactions
//! Every write transaction is IMMEDIATE, so it never fails half-way with
//! `SQLITE_BUSY_SNAPSHOT`. No transaction is ever held across an `.await`: the
//! methods here are synchronous and short.

pub mod migrate;
pub mod query;
pub mod select;

use crate::model::{AlarmId, AlarmRow, Detection, DetectionState, Indicator, Verdict};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `PRAGMA application_id` of every lrci ledger ("LRCI" in ASCII).
pub const APPLICATION_ID: i32 = 0x4c52_4349;

/// How long a writer waits for another connection's short transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ledger errors. Each names the ledger path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the ledger directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the ledger {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the ledger {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path} is not an lrci ledger ({what}); it was left untouched")]
    Foreign { path: PathBuf, what: String },
    #[error(
        "the ledger {path} has schema version {found}, newer than this lrci understands ({supported}); it was left untouched: upgrade lrci"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "the ledger {path} is corrupt ({detail}); restore it from a backup (see `lrci doctor`)"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("ledger {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the ledger {path} cannot be written; hint: lrci needs write access to the ledger file and to its directory (for the -wal and -shm files)"
    )]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the ledger {path} is empty: no run has written it yet (run `lrci sync`)")]
    Empty { path: PathBuf },
    #[error("another lrci run holds the lock {path}{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The documented exit code for this error (DESIGN.md section 2).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CreateDir { .. } | Error::Create { .. } => 73,
            Error::Foreign { .. } | Error::TooNew { .. } | Error::Corrupt { .. } => 65,
            Error::Locked { .. } => 75,
            Error::ReadOnly { .. } => 74,
            Error::Empty { .. } => 66,
            Error::Lock { .. } => 73,
            Error::Open { source, .. } => match sqlite_code(source) {
                Some(rusqlite::ErrorCode::NotADatabase) => 65,
                Some(rusqlite::ErrorCode::DatabaseCorrupt) => 65,
                Some(rusqlite::ErrorCode::CannotOpen)
                | Some(rusqlite::ErrorCode::PermissionDenied)
                | Some(rusqlite::ErrorCode::ReadOnly) => 73,
                _ => 74,
            },
            Error::Sql { source, .. } => match sqlite_code(source) {
                Some(rusqlite::ErrorCode::NotADatabase)
                | Some(rusqlite::ErrorCode::DatabaseCorrupt) => 65,
                _ => 74,
            },
        }
    }
}

fn sqlite_code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to open a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create if missing, migrate, write.
    ReadWrite,
    /// Never create, never migrate, never write (audit commands, `--dry-run`).
    ReadOnly,
}

/// Formats a time the way the ledger stores it.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An open ledger. Owns its connection; not `Sync`.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

/// Coverage of one UTC hour slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub covered_until: DateTime<Utc>,
    pub saturated_at: Vec<DateTime<Utc>>,
}

/// What the ledger knows about an alarm already listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAlarm {
    pub decision: String,
    pub fetch_attempts: i64,
}

/// What a run decided about one alarm, ready to be recorded.
#[derive(Debug, Clone)]
pub struct AlarmRecord {
    pub row: AlarmRow,
    pub rbp_max: Option<i64>,
    pub outcome: AlarmOutcome,
}

/// The decision for one alarm.
#[derive(Debug, Clone)]
pub enum AlarmOutcome {
    /// Details and events fetched; these indicators came out of them.
    Accepted {
        event_count: usize,
        indicators: Vec<Indicator>,
        /// Something an audit should know, e.g. that the indicators were capped.
        note: Option<String>,
    },
    /// A rule filter or `--min-rbp` said no.
    Filtered { reason: String },
    /// Details or events could not be fetched or parsed; retried by later runs.
    Error { error: String },
    /// Details or events could not be fetched because the API failed transiently
    /// (5xx, 429, timeout, connection). Recorded like [`AlarmOutcome::Error`] but not
    /// counted against the alarm's fetch attempts: an outage is not the alarm's
    /// fault, so it never gets the alarm abandoned.
    Unavailable { error: String },
}

/// One slice's worth of work, written in one transaction.
#[derive(Debug, Clone)]
pub struct SliceIngest {
    pub run_id: Option<i64>,
    pub slice_start: DateTime<Utc>,
    /// `None` leaves the coverage map as it is (the listing did not complete).
    pub covered_until: Option<DateTime<Utc>>,
    pub saturated_at: Vec<DateTime<Utc>>,
    pub alarms: Vec<AlarmRecord>,
}

/// What an ingest added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    pub new_alarms: u64,
    pub new_pending: u64,
    pub new_excluded: u64,
}

/// One POST's result, for the submissions table.
#[derive(Debug, Clone)]
pub struct SubmissionRecord {
    pub run_id: Option<i64>,
    pub at: DateTime<Utc>,
    pub debug: bool,
    pub http_status: Option<u16>,
    pub processed: Option<String>,
}

/// Counts for `ledger status` and the demo.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    pub rejected: u64,
    pub excluded: u64,
}

impl Ledger {
    /// Opens (and in [`Mode::ReadWrite`], creates and migrates) the ledger at `path`.
    pub fn open(path: &Path, mode: Mode) -> Result<Ledger> {
        let path = path.to_path_buf();
        if mode == Mode::ReadWrite {
            prepare_file(&path)?;
            precheck(&path)?;
        }
        let flags = match mode {
            Mode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        };
        let conn = Connection::open_with_flags(&path, flags).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let mut ledger = Ledger { conn, path };
        let version = ledger.check_identity()?;
        ledger
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| ledger.sql(e))?;
        if mode == Mode::ReadOnly && version == 0 {
            // An empty file: created by a run that stopped before its first write.
            return Err(Error::Empty { path: ledger.path });
        }
        if mode == Mode::ReadWrite {
            ledger.set_pragmas()?;
            migrate::migrate(&mut ledger.conn).map_err(|e| ledger.sql(e))?;
        }
        Ok(ledger)
    }

    /// For `--dry-run`: the ledger opened read-only, or an empty in-memory one when
    /// the file is missing or empty. Nothing is ever created or written.
    pub fn open_or_empty(path: &Path) -> Result<Ledger> {
        if !path.exists() {
            return Ledger::open_in_memory();
        }
        match Ledger::open(path, Mode::ReadOnly) {
            Err(Error::Empty { .. }) => Ledger::open_in_memory(),
            other => other,
        }
    }

    /// A fresh in-memory ledger (tests, and `--dry-run` without a ledger file).
    pub fn open_in_memory() -> Result<Ledger> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let mut ledger = Ledger { conn, path };
        ledger.set_pragmas()?;
        migrate::migrate(&mut ledger.conn).map_err(|e| ledger.sql(e))?;
        Ok(ledger)
    }

    /// An in-memory copy of this ledger (SQLite's backup API), migrated to the
    /// current schema. `--dry-run` runs the real code path against the copy, so
    /// the file stays byte-identical.
    pub fn copy_to_memory(&self) -> Result<Ledger> {
        let path = PathBuf::from(":memory:");
        let mut conn = Connection::open_in_memory().map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        rusqlite::backup::Backup::new(&self.conn, &mut conn)
            .and_then(|b| b.run_to_completion(1024, Duration::ZERO, None))
            .map_err(|e| self.sql(e))?;
        let mut ledger = Ledger { conn, path };
        ledger.set_pragmas()?;
        migrate::migrate(&mut ledger.conn).map_err(|e| ledger.sql(e))?;
        Ok(ledger)
    }

    /// The path this ledger was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> Error {
        if let Some(rusqlite::ErrorCode::DatabaseCorrupt) = sqlite_code(&source) {
            return Error::Corrupt {
                path: self.path.clone(),
                detail: source.to_string(),
            };
        }
        if let Some(rusqlite::ErrorCode::ReadOnly) = sqlite_code(&source) {
            return Error::ReadOnly {
                path: self.path.clone(),
                source,
            };
        }
        Error::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` in one IMMEDIATE transaction (never `SQLITE_BUSY_SNAPSHOT` half-way),
    /// committed when `f` succeeds and rolled back otherwise.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let path = self.path.clone();
        let sql = |source| Error::Sql { path, source };
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run(&mut self.conn).map_err(sql)
    }

    /// Refuses foreign and newer files before anything is written; returns the
    /// schema version found (0 for an empty file).
    fn check_identity(&self) -> Result<i64> {
        let read = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|source| match sqlite_code(&source) {
                    Some(rusqlite::ErrorCode::NotADatabase) => Error::Foreign {
                        path: self.path.clone(),
                        what: "not an SQLite database".into(),
                    },
                    _ => self.sql(source),
                })
        };
        let app_id = read("PRAGMA application_id")?;
        let version = read("PRAGMA user_version")?;
        if app_id == 0 && version == 0 {
            let objects: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| self.sql(e))?;
            if objects > 0 {
                return Err(Error::Foreign {
                    path: self.path.clone(),
                    what: "an SQLite database of another application".into(),
                });
            }
            return Ok(0);
        }
        if app_id != i64::from(APPLICATION_ID) {
            return Err(Error::Foreign {
                path: self.path.clone(),
                what: format!("SQLite application_id {app_id:#x}"),
            });
        }
        if version > migrate::CURRENT_VERSION {
            return Err(Error::TooNew {
                path: self.path.clone(),
                found: version,
                supported: migrate::CURRENT_VERSION,
            });
        }
        Ok(version)
    }

    fn set_pragmas(&self) -> Result<()> {
        let c = &self.conn;
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if !mode.eq_ignore_ascii_case("wal") && self.path != Path::new(":memory:") {
            tracing::warn!(journal_mode = %mode, "the ledger could not switch to WAL mode");
        }
        c.pragma_update(None, "synchronous", "FULL")
            .and_then(|_| c.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|_| c.pragma_update(None, "application_id", APPLICATION_ID))
            .map_err(|e| self.sql(e))
    }

    /// `PRAGMA quick_check`: run before a writing command touches the network.
    pub fn quick_check(&self) -> Result<()> {
        let result: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(Error::Corrupt {
                path: self.path.clone(),
                detail: result,
            })
        }
    }

    /// `PRAGMA integrity_check`, the full check (every page, index and constraint;
    /// slower than [`Ledger::quick_check`]), for `lrci doctor`. The first problems
    /// SQLite names (at most ten) are the [`Error::Corrupt`] detail.
    pub fn integrity_check(&self) -> Result<()> {
        let problems = (|| -> rusqlite::Result<Vec<String>> {
            let mut st = self.conn.prepare("PRAGMA integrity_check(10)")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })()
        .map_err(|e| self.sql(e))?;
        if problems.len() == 1 && problems.first().is_some_and(|p| p == "ok") {
            Ok(())
        } else {
            Err(Error::Corrupt {
                path: self.path.clone(),
                detail: problems.join("; "),
            })
        }
    }

    /// The ledger's schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    // ---- runs --------------------------------------------------------------

    /// Records the start of a run and returns its id.
    pub fn begin_run(
        &self,
        kind: &str,
        started_at: DateTime<Utc>,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (kind, started_at, window_from, window_to) VALUES (?1, ?2, ?3, ?4)",
                params![
                    kind,
                    ts(started_at),
                    window.map(|w| ts(w.0)),
                    window.map(|w| ts(w.1))
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how a run ended.
    pub fn finish_run(
        &self,
        run_id: i64,
        finished_at: DateTime<Utc>,
        exit_code: u8,
        summary: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = ?2, exit_code = ?3, summary = ?4 WHERE id = ?1",
                params![run_id, ts(finished_at), exit_code, summary],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    // ---- coverage ----------------------------------------------------------

    /// Coverage of the slices starting in `[from, to)`, keyed by slice start.
    pub fn coverage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<DateTime<Utc>, Coverage>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT slice_start, covered_until, saturated_at FROM coverage
                 WHERE slice_start >= ?1 AND slice_start < ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![ts(from), ts(to)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (start, until, sat) = row.map_err(|e| self.sql(e))?;
            let (Some(start), Some(until)) = (parse_ts(&start), parse_ts(&until)) else {
                continue;
            };
            let saturated_at = sat
                .and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok())
                .unwrap_or_default()
                .iter()
                .filter_map(|s| parse_ts(s))
                .collect();
            out.insert(
                start,
                Coverage {
                    covered_until: until,
                    saturated_at,
                },
            );
        }
        Ok(out)
    }

    // ---- alarms ------------------------------------------------------------

    /// What the ledger already knows about these alarms.
    pub fn known_alarms(&self, ids: &[AlarmId]) -> Result<HashMap<AlarmId, KnownAlarm>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT decision, fetch_attempts FROM alarms WHERE alarm_id = ?1")
            .map_err(|e| self.sql(e))?;
        let mut out = HashMap::new();
        for &id in ids {
            let known = stmt
                .query_row([id], |r| {
                    Ok(KnownAlarm {
                        decision: r.get(0)?,
                        fetch_attempts: r.get(1)?,
                    })
                })
                .optional()
                .map_err(|e| self.sql(e))?;
            if let Some(k) = known {
                out.insert(id, k);
            }
        }
        Ok(out)
    }

    /// Alarms left in `error` whose insertion time lies in `[from, to)`: the
    /// candidates for a retry. Whether one is due is the engine's retry rule
    /// (`engine::triage::attempts_if_due`), not decided here.
    pub fn alarms_to_retry(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<AlarmRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT alarm_id, rule_name, status, entity_name, date_inserted FROM alarms
                 WHERE decision = 'error'
                   AND date_inserted >= ?1 AND date_inserted < ?2
                 ORDER BY date_inserted, alarm_id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![ts(from), ts(to)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (alarm_id, rule_name, status, entity, date) = row.map_err(|e| self.sql(e))?;
            if let Some(date_inserted) = parse_ts(&date) {
                out.push(AlarmRow {
                    alarm_id,
                    rule_name,
                    status: status.unwrap_or(0),
                    entity_name: entity.unwrap_or_default(),
                    date_inserted,
                });
            }
        }
        Ok(out)
    }

    /// Writes one slice's alarms, their indicators and the slice's coverage in one
    /// transaction. Detections already present are left as they are.
    pub fn ingest(&mut self, batch: &SliceIngest, now: DateTime<Utc>) -> Result<IngestCounts> {
        let now_s = ts(now);
        self.write(|tx| {
        let mut counts = IngestCounts::default();
        {
            let mut exists = tx
                .prepare_cached("SELECT 1 FROM alarms WHERE alarm_id = ?1")
                ?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO alarms (alarm_id, rule_name, status, entity_name, date_inserted,
                        rbp_max, decision, reason, event_count, fetch_attempts, last_error,
                        first_run_id, first_seen_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
                     ON CONFLICT (alarm_id) DO UPDATE SET
                        rule_name = excluded.rule_name, status = excluded.status,
                        entity_name = excluded.entity_name, rbp_max = excluded.rbp_max,
                        decision = excluded.decision, reason = excluded.reason,
                        event_count = excluded.event_count,
                        fetch_attempts = alarms.fetch_attempts + excluded.fetch_attempts,
                        last_error = excluded.last_error, updated_at = excluded.updated_at
                     WHERE alarms.decision = 'error'",
                )
                ?;
            let mut insert_det = tx
                .prepare_cached(
                    "INSERT INTO detections (alarm_id, ioc_type, value, field, state, reason,
                        created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                     ON CONFLICT (alarm_id, ioc_type, value) DO NOTHING",
                )
                ?;
            for rec in &batch.alarms {
                let row = &rec.row;
                let is_new = exists
                    .query_row([row.alarm_id], |_| Ok(()))
                    .optional()
                    ?
                    .is_none();
                if is_new {
                    counts.new_alarms += 1;
                }
                let (decision, reason, event_count, attempts, error) = match &rec.outcome {
                    AlarmOutcome::Accepted {
                        event_count, note, ..
                    } => (
                        "accepted",
                        note.as_deref(),
                        Some(i64::try_from(*event_count).unwrap_or(i64::MAX)),
                        1,
                        None,
                    ),
                    AlarmOutcome::Filtered { reason } => {
                        ("filtered", Some(reason.as_str()), None, 0, None)
                    }
                    AlarmOutcome::Error { error } => ("error", None, None, 1, Some(error.as_str())),
                    AlarmOutcome::Unavailable { error } => {
                        ("error", None, None, 0, Some(error.as_str()))
                    }
                };
                upsert
                    .execute(params![
                        row.alarm_id,
                        row.rule_name,
                        row.status,
                        row.entity_name,
                        ts(row.date_inserted),
                        rec.rbp_max,
                        decision,
                        reason,
                        event_count,
                        attempts,
                        error,
                        batch.run_id,
                        now_s,
                    ])
                    ?;
                if let AlarmOutcome::Accepted { indicators, .. } = &rec.outcome {
                    for ind in indicators {
                        let (state, reason) = match &ind.verdict {
                            Verdict::Send => (DetectionState::Pending, None),
                            Verdict::Exclude(r) => (DetectionState::Excluded, Some(r.as_str())),
                        };
                        let added = insert_det
                            .execute(params![
                                row.alarm_id,
                                ind.kind.as_str(),
                                ind.value,
                                ind.field,
                                state.as_str(),
                                reason,
                                now_s,
                            ])
                            ?;
                        if added > 0 {
                            match state {
                                DetectionState::Excluded => counts.new_excluded += 1,
                                _ => counts.new_pending += 1,
                            }
                        }
                    }
                }
            }
            if let Some(until) = batch.covered_until {
                let saturated = if batch.saturated_at.is_empty() {
                    None
                } else {
                    let list: Vec<String> = batch.saturated_at.iter().map(|t| ts(*t)).collect();
                    serde_json::to_string(&list).ok()
                };
                tx.execute(
                    "INSERT INTO coverage (slice_start, covered_until, saturated_at, updated_at, run_id)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (slice_start) DO UPDATE SET
                        covered_until = max(coverage.covered_until, excluded.covered_until),
                        saturated_at = coalesce(excluded.saturated_at, coverage.saturated_at),
                        updated_at = excluded.updated_at, run_id = excluded.run_id",
                    params![ts(batch.slice_start), ts(until), saturated, now_s, batch.run_id],
                )
                ?;
            }
        }
            Ok(counts)
        })
    }

    // ---- detections and submissions ----------------------------------------

    /// Up to `limit` detections in one of `states`, oldest first, with ids above
    /// `after_id`, joined with their alarm for the CI payload.
    pub fn detections_to_submit(
        &self,
        states: &[DetectionState],
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Detection>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.id, d.alarm_id, a.rule_name, a.date_inserted, d.ioc_type, d.value, d.field
                 FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
                 WHERE d.id > ?1 AND d.state IN (?2, ?3, ?4, ?5, ?6)
                 ORDER BY d.id LIMIT ?7",
            )
            .map_err(|e| self.sql(e))?;
        // Five slots, padded with a repeat of the first state: one cached statement
        // serves every subset.
        let mut slots = [""; 5];
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = states
                .get(i)
                .or(states.first())
                .map_or("none", |s| s.as_str());
        }
        let mut rows = stmt
            .query(params![
                after_id,
                slots[0],
                slots[1],
                slots[2],
                slots[3],
                slots[4],
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            let date: String = r.get(3).map_err(|e| self.sql(e))?;
            let kind: String = r.get(4).map_err(|e| self.sql(e))?;
            let (Some(timestamp), Ok(kind)) = (parse_ts(&date), kind.parse()) else {
                continue;
            };
            out.push(Detection {
                id: r.get(0).map_err(|e| self.sql(e))?,
                alarm_id: r.get(1).map_err(|e| self.sql(e))?,
                rule_name: r.get(2).map_err(|e| self.sql(e))?,
                timestamp,
                kind,
                value: r.get(5).map_err(|e| self.sql(e))?,
                field: r.get(6).map_err(|e| self.sql(e))?,
            });
        }
        Ok(out)
    }

    fn insert_submission(
        tx: &rusqlite::Transaction<'_>,
        sub: &SubmissionRecord,
        items: usize,
        outcome: &str,
    ) -> rusqlite::Result<i64> {
        tx.execute(
            "INSERT INTO submissions (run_id, at, items, debug, outcome, http_status, processed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                sub.run_id,
                ts(sub.at),
                i64::try_from(items).unwrap_or(i64::MAX),
                sub.debug,
                outcome,
                sub.http_status,
                sub.processed
            ],
        )?;
        Ok(tx.last_insert_rowid())
    }

    /// CI answered 2xx for these detections: mark them `sent`, in one transaction.
    pub fn mark_sent(&mut self, ids: &[i64], sub: &SubmissionRecord) -> Result<()> {
        self.write(|tx| {
            let sub_id = Self::insert_submission(tx, sub, ids.len(), "ok")?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE detections SET state = 'sent', sent_at = ?2, submission_id = ?3,
                        attempts = attempts + 1, last_error = NULL, updated_at = ?2
                     WHERE id = ?1",
                )?;
                for id in ids {
                    stmt.execute(params![id, ts(sub.at), sub_id])?;
                }
            }
            Ok(())
        })
    }

    /// A transient failure (after retries): these stay retryable as `failed`.
    /// Already-sent rows are never downgraded.
    pub fn mark_failed(&mut self, ids: &[i64], sub: &SubmissionRecord, error: &str) -> Result<()> {
        self.write(|tx| {
            let sub_id = Self::insert_submission(tx, sub, ids.len(), "failed")?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE detections SET state = 'failed', attempts = attempts + 1,
                        last_error = ?2, submission_id = ?3, updated_at = ?4
                     WHERE id = ?1 AND state <> 'sent'",
                )?;
                for id in ids {
                    stmt.execute(params![id, error, sub_id, ts(sub.at)])?;
                }
            }
            Ok(())
        })
    }

    /// CI answered 400 for this one detection: `rejected`, with CI's reason.
    pub fn mark_rejected(&mut self, id: i64, sub: &SubmissionRecord, reason: &str) -> Result<()> {
        self.write(|tx| {
            let sub_id = Self::insert_submission(tx, sub, 1, "rejected")?;
            tx.execute(
                "UPDATE detections SET state = 'rejected', reason = ?2, attempts = attempts + 1,
                last_error = ?2, submission_id = ?3, updated_at = ?4
             WHERE id = ?1 AND state <> 'sent'",
                params![id, reason, sub_id, ts(sub.at)],
            )?;
            Ok(())
        })
    }

    /// Detections posted for real (non-debug, 2xx) on a UTC day: the CI budget used.
    pub fn budget_used(&self, day: NaiveDate) -> Result<u64> {
        let from = format!("{}T00:00:00.000Z", day.format("%Y-%m-%d"));
        let to = day
            .succ_opt()
            .map(|d| format!("{}T00:00:00.000Z", d.format("%Y-%m-%d")))
            .unwrap_or_else(|| "9999".into());
        let used: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(sum(items), 0) FROM submissions
                 WHERE outcome = 'ok' AND debug = 0 AND at >= ?1 AND at < ?2",
                params![from, to],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// Detections by state.
    pub fn state_counts(&self) -> Result<StateCounts> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM detections GROUP BY state")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.sql(e))?;
        let mut c = StateCounts::default();
        for row in rows {
            let (state, n) = row.map_err(|e| self.sql(e))?;
            let n = u64::try_from(n).unwrap_or(0);
            match state.parse::<DetectionState>() {
                Ok(DetectionState::Pending) => c.pending = n,
                Ok(DetectionState::Sent) => c.sent = n,
                Ok(DetectionState::Failed) => c.failed = n,
                Ok(DetectionState::Rejected) => c.rejected = n,
                Ok(DetectionState::Excluded) => c.excluded = n,
                Err(_) => {}
            }
        }
        Ok(c)
    }

    /// The most frequent exclusion reasons, most frequent first.
    pub fn top_exclusion_reasons(&self, limit: usize) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT coalesce(reason, '?'), count(*) AS n FROM detections
                 WHERE state = 'excluded' GROUP BY 1 ORDER BY n DESC, 1 LIMIT ?1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(|e| self.sql(e))?;
        rows.map(|r| {
            r.map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
                .map_err(|e| self.sql(e))
        })
        .collect()
    }

    /// Number of alarms in the ledger.
    pub fn alarm_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM alarms", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether a detection with this key exists, and its state (for `--dry-run`).
    pub fn detection_state(
        &self,
        alarm_id: AlarmId,
        kind: crate::model::IndicatorType,
        value: &str,
    ) -> Result<Option<DetectionState>> {
        let s: Option<String> = self
            .conn
            .query_row(
                "SELECT state FROM detections WHERE alarm_id = ?1 AND ioc_type = ?2 AND value = ?3",
                params![alarm_id, kind.as_str(), value],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(s.and_then(|s| s.parse().ok()))
    }
}

/// Before a read-write open of an existing ledger: the identity checks and
/// `PRAGMA quick_check` through a read-only connection, so that a foreign,
/// newer or corrupt ledger (including one paired with another database's
/// `-wal`) is refused with its files byte-for-byte unchanged. A read-write
/// connection would write the header and, on close, checkpoint and delete the
/// `-wal`. When the read-only connection cannot be used at all (e.g. a `-shm`
/// that needs recovery, which takes write access), the read-write open decides.
fn precheck(path: &Path) -> Result<()> {
    let non_empty = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
    if !non_empty {
        return Ok(());
    }
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    let (wal, shm) = (side("-wal"), side("-shm"));
    let had = (wal.exists(), shm.exists());
    let verdict = probe_read_only(path);
    // A refused ledger is left as found: remove the empty -wal and the -shm the
    // probe itself created (the run lock keeps other lrci runs away).
    if verdict.is_err() && !had.0 && std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(&wal);
        if !had.1 {
            let _ = std::fs::remove_file(&shm);
        }
    }
    verdict
}

fn probe_read_only(path: &Path) -> Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return Ok(());
    };
    let probe = Ledger {
        conn,
        path: path.to_path_buf(),
    };
    let refused = |e: &Error| {
        matches!(
            e,
            Error::Foreign { .. } | Error::TooNew { .. } | Error::Corrupt { .. }
        )
    };
    match probe.check_identity() {
        Err(e) if refused(&e) => return Err(e),
        Err(_) => return Ok(()),
        Ok(_) => {}
    }
    match probe.quick_check() {
        Err(e) if refused(&e) => Err(e),
        _ => Ok(()),
    }
}

/// An existing ledger (and its `-wal`/`-shm`, whose mode SQLite copies from
/// it) readable or writable by others is set to 0600, with a warning; when
/// that fails (another owner) the warning says so and the run goes on.
fn tighten_existing(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = resolve_ledger_path(path).into_os_string();
            p.push(suffix);
            let p = PathBuf::from(p);
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                continue;
            }
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => tracing::warn!(
                    file = %p.display(),
                    was = %format!("{mode:o}"),
                    "the ledger was open to other users; its mode is now 0600"
                ),
                Err(e) => tracing::warn!(
                    file = %p.display(),
                    mode = %format!("{mode:o}"),
                    error = %e,
                    "the ledger is open to other users and could not be set to 0600"
                ),
            }
        }
    }
}

/// Makes sure a whole ledger exists at `path` (through a symlink, at its target).
///
/// A new ledger is built in a temporary file beside it — created 0600, switched to
/// WAL, migrated, closed and synced — and then renamed into place. A run killed
/// while creating it therefore leaves no ledger or a complete one, never a
/// half-made file whose hot rollback journal read-only commands cannot open. An
/// existing empty file (from an older lrci) is replaced the same way. Callers
/// hold the run lock, so leftovers of a killed creation can be removed here.
fn prepare_file(path: &Path) -> Result<()> {
    let create_err = |source| Error::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            create_private_dir(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    if path.is_dir() {
        return Err(create_err(std::io::Error::other("it is a directory")));
    }
    let target = resolve_ledger_path(path);
    match std::fs::metadata(&target) {
        Ok(meta) if meta.len() > 0 => {
            tighten_existing(path);
            return Ok(());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(create_err(e)),
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ledger".into());
    let prefix = format!(".{name}.new-");
    remove_leftovers(&dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&tmp).map_err(create_err)?;
    let built = (|| -> Result<()> {
        let conn = Connection::open(&tmp).map_err(|source| Error::Open {
            path: tmp.clone(),
            source,
        })?;
        let mut ledger = Ledger {
            conn,
            path: tmp.clone(),
        };
        ledger.set_pragmas()?;
        migrate::migrate(&mut ledger.conn).map_err(|e| ledger.sql(e))?;
        // Closing the last connection checkpoints the WAL into the file.
        ledger.conn.close().map_err(|(_, source)| Error::Sql {
            path: tmp.clone(),
            source,
        })?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(create_err)?;
        std::fs::rename(&tmp, &target).map_err(create_err)?;
        #[cfg(unix)]
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if built.is_err() {
        remove_leftovers(&dir, &prefix);
    }
    built
}

/// Removes the temporary files of ledger creations that did not finish.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates a directory and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// The ledger path with symlinks resolved: the canonical path when the ledger
/// exists; a dangling symlink's target (followed up to 40 links) resolved through
/// its directory when it does not; the path as given when even the directory
/// cannot be resolved (it does not exist yet).
pub fn resolve_ledger_path(ledger: &Path) -> PathBuf {
    let mut p = ledger.to_path_buf();
    for _ in 0..40 {
        if let Ok(real) = std::fs::canonicalize(&p) {
            return real;
        }
        match std::fs::read_link(&p) {
            // A relative target is relative to the link's directory.
            Ok(target) => p = p.parent().map_or(target.clone(), |d| d.join(&target)),
            Err(_) => break,
        }
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir).map_or(p.clone(), |d| d.join(name))
        }
        _ => p,
    }
}

/// The pid of the run holding the lock at `path`, for the error message. The
/// holder writes its pid just after it takes the lock, so for a moment the file can
/// be empty or still name the previous holder: read again for up to 250 ms until
/// it names a live process (checked through /proc on Linux).
fn read_holder(path: &Path) -> Option<u32> {
    let mut last = None;
    for _ in 0..25 {
        last = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = last {
            let alive = !cfg!(target_os = "linux") || Path::new(&format!("/proc/{pid}")).exists();
            if alive {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    last
}

/// The single-writer lock held by `sync`, `backfill` and `replay` for their whole run.
/// Dropped (or the process killed), the kernel releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// The lock file used for a ledger: `<ledger>.lock` next to the ledger's real
    /// path, with symlinks resolved (see [`resolve_ledger_path`]), so that every
    /// name of one ledger (a symlink to it, a symlinked directory, a relative path
    /// from another directory) shares one lock file.
    pub fn path_for(ledger: &Path) -> PathBuf {
        let mut s = resolve_ledger_path(ledger).into_os_string();
        s.push(".lock");
        PathBuf::from(s)
    }

    /// Takes the lock at once or fails with [`Error::Locked`] naming the holder.
    /// Creates the ledger's directory (0700) when it is missing.
    pub fn acquire(ledger: &Path) -> Result<RunLock> {
        // The directory first, so the path resolves the same way in every run.
        if let Some(dir) = ledger.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                create_private_dir(dir).map_err(|source| Error::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
        }
        let path = Self::path_for(ledger);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(|source| Error::Lock {
            path: path.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(&path);
                return Err(Error::Locked { path, holder });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Lock { path, source });
            }
        }
        // Best effort: the pid helps a person find the holder; the lock itself is
        // the kernel's, not the file's content.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(RunLock { _file: file, path })
    }

    /// Where the lock lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IndicatorType;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, h, m, 0).unwrap()
    }

    fn row(id: i64, at: DateTime<Utc>) -> AlarmRow {
        AlarmRow {
            alarm_id: id,
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
            alarms,
        }
    }

    #[test]
    fn pragmas_are_set_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite3"), Mode::ReadWrite).unwrap();
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
        Ledger::open(&path, Mode::ReadWrite).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn empty_file_is_a_new_ledger_for_writers_and_an_error_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        std::fs::write(&path, b"").unwrap();
        let err = Ledger::open(&path, Mode::ReadOnly).err().unwrap();
        assert!(matches!(err, Error::Empty { .. }), "{err}");
        assert_eq!(err.exit_code(), 66);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        Ledger::open(&path, Mode::ReadWrite).unwrap();
        Ledger::open(&path, Mode::ReadOnly).unwrap();
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
            Ledger::open(&path, Mode::ReadOnly).err(),
            Some(Error::Open { .. })
        ));
        Ledger::open(&path, Mode::ReadWrite).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".l.sqlite3.new-"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        // A fresh ledger is whole at once: readable read-only, in WAL mode.
        let ro = Ledger::open(&path, Mode::ReadOnly).unwrap();
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
        drop(Ledger::open(&path, Mode::ReadWrite).unwrap());
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", migrate::CURRENT_VERSION + 1)
                .unwrap();
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = Ledger::open(&path, Mode::ReadWrite).err().unwrap();
        assert!(matches!(err, Error::TooNew { .. }), "{err}");
        assert_eq!(err.exit_code(), 65);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn foreign_files_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("passwd");
        std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n".repeat(50)).unwrap();
        let err = Ledger::open(&text, Mode::ReadWrite).err().unwrap();
        assert_eq!(err.exit_code(), 65, "{err}");
        assert!(std::fs::read_to_string(&text).unwrap().starts_with("root:"));

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = Ledger::open(&other, Mode::ReadWrite).err().unwrap();
        assert!(matches!(err, Error::Foreign { .. }), "{err}");
    }

    #[test]
    fn ingest_is_idempotent_and_counts_new_rows() {
        let mut l = Ledger::open_in_memory().unwrap();
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
    fn a_memory_copy_holds_the_rows_and_writes_to_it_stay_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite3");
        let mut file = Ledger::open(&path, Mode::ReadWrite).unwrap();
        let err = |id| AlarmRecord {
            row: row(id, t(10, 1)),
            rbp_max: None,
            outcome: AlarmOutcome::Error { error: "x".into() },
        };
        file.ingest(&slice(vec![err(1)]), t(12, 0)).unwrap();
        drop(file);
        let before = std::fs::read(&path).unwrap();
        let ro = Ledger::open(&path, Mode::ReadOnly).unwrap();
        let mut copy = ro.copy_to_memory().unwrap();
        assert_eq!(copy.alarm_count().unwrap(), 1);
        copy.ingest(&slice(vec![err(2)]), t(12, 0)).unwrap();
        assert_eq!(copy.alarm_count().unwrap(), 2);
        assert_eq!(ro.alarm_count().unwrap(), 1);
        drop((ro, copy));
        assert!(std::fs::read(&path).unwrap() == before, "the file changed");
    }

    #[test]
    fn unavailable_fetches_never_use_up_an_alarms_attempts() {
        let mut l = Ledger::open_in_memory().unwrap();
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
        let known = l.known_alarms(&[8]).unwrap();
        assert_eq!(known[&8].decision, "error");
        assert_eq!(known[&8].fetch_attempts, 0);
        assert_eq!(l.alarms_to_retry(t(0, 0), t(23, 0)).unwrap().len(), 1);
    }

    #[test]
    fn error_alarms_are_retried_then_accepted() {
        let mut l = Ledger::open_in_memory().unwrap();
        let err = AlarmRecord {
            row: row(7, t(10, 1)),
            rbp_max: None,
            outcome: AlarmOutcome::Error {
                error: "events: 503".into(),
            },
        };
        l.ingest(&slice(vec![err.clone()]), t(12, 0)).unwrap();
        l.ingest(&slice(vec![err]), t(12, 0)).unwrap();
        let known = l.known_alarms(&[7]).unwrap();
        assert_eq!(known[&7].decision, "error");
        assert_eq!(known[&7].fetch_attempts, 2);
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
        assert_eq!(l.known_alarms(&[7]).unwrap()[&7].decision, "accepted");
        assert_eq!(l.state_counts().unwrap().pending, 1);
    }

    #[test]
    fn accepted_alarm_is_never_overwritten() {
        let mut l = Ledger::open_in_memory().unwrap();
        l.ingest(&slice(vec![accepted(3, t(10, 1), vec![])]), t(12, 0))
            .unwrap();
        let err = AlarmRecord {
            row: row(3, t(10, 1)),
            rbp_max: None,
            outcome: AlarmOutcome::Error { error: "x".into() },
        };
        l.ingest(&slice(vec![err]), t(12, 0)).unwrap();
        assert_eq!(l.known_alarms(&[3]).unwrap()[&3].decision, "accepted");
    }

    #[test]
    fn sent_is_terminal_and_budget_counts_real_sends() {
        let mut l = Ledger::open_in_memory().unwrap();
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
            .detections_to_submit(&[DetectionState::Pending, DetectionState::Failed], 0, 10)
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
        let l = Ledger::open(&link, Mode::ReadWrite).unwrap();
        drop(l);
        assert!(real.is_file() && link.is_symlink());
    }
}
