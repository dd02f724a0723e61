//! The ledger: an SQLite file holding every alarm lrci has seen, every indicator it
//! found, what was sent, and the coverage map of fetched time slices.
//!
//! All SQL lives in this module (and `schema.sql`). Values are always bound, never
//! formatted into SQL. The ledger knows nothing about HTTP.
//!
//! # Opening
//! A ledger is checked before anything is written to it: a file that is not
//! SQLite, an SQLite file of another application (`application_id`) or a ledger
//! from a newer lrci (`user_version`) is refused untouched, and so is a damaged
//! one, by `PRAGMA quick_check` whenever one is due (`health.rs`). Then the pragmas are
//! set (WAL, `synchronous=FULL`, `busy_timeout`, `foreign_keys`) and migrations run.
//! A new ledger file is created `0600` in a directory created `0700`.
//!
//! # Locking
//! One writer at a time: every writing command opens a [`Writer`], which holds
//! [`RunLock`], an
//! exclusive `flock`-style lock on `<ledger>.lock` that the kernel drops when the
//! process dies, so a killed run never blocks the next. Read-only commands take no
//! lock; WAL lets them read while a run writes.
//!
//! # Transactions
//! Every write transaction is IMMEDIATE, so it never fails half-way with
//! `SQLITE_BUSY_SNAPSHOT`. No transaction is ever held across an `.await`: the
//! methods here are synchronous and short.

//!
//! # Layout
//! - [`Ledger`] (here): opening, identity checks, pragmas; every read.
//! - [`Writer`] (`writer.rs`): the run lock + a read-write, checked ledger; every write.
//! - `ingest.rs`: recording a slice; `queue.rs`: submission selection and
//!   outcomes; [`audit`]: the audit commands' queries; `prune.rs`: `ledger prune`;
//!   [`migrate`]: schema steps; `sql.rs`: `ToSql`/`FromSql` of the model types;
//!   `file.rs`: the file on disk; `lock.rs`: [`RunLock`]; `health.rs`: when a
//!   writer runs `quick_check`, and the clean close that lets it skip one.

pub mod audit;
mod file;
mod health;
mod ingest;
mod knowledge;
mod lock;
pub mod migrate;
mod prune;
mod queue;
mod reconcile;
mod server;
mod sql;
mod writer;

pub use file::{create_private_dir, resolve_ledger_path};
pub use health::{CheckReason, Health, CHECK_INTERVAL};
pub use ingest::{AlarmOutcome, AlarmRecord, IngestCounts, KnownAlarm, SliceIngest};
pub use knowledge::{DomainEvidence, KnownNetwork, ValueCount};
pub use lock::RunLock;
pub use prune::PruneCounts;
pub use queue::{Selection, SubmissionRecord};
pub use reconcile::{Holding, UnconfirmedRow, WindowDetection};
pub use writer::Writer;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `PRAGMA application_id` of every lrci ledger ("LRCI" in ASCII).
pub const APPLICATION_ID: i32 = 0x4c52_4349;

/// The path of an in-memory ledger.
const MEMORY: &str = ":memory:";

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
    #[error("the ledger {path} is a directory: --ledger and LRCI_LEDGER name the ledger file, e.g. {path}/ledger.sqlite3")]
    IsDirectory { path: PathBuf },
    #[error("another lrci run holds the lock {path}{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("the ledger {path} holds a value this lrci cannot read: {detail}; restore it from a backup (see `lrci doctor`)")]
    BadValue { path: PathBuf, detail: String },
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
            Error::Foreign { .. }
            | Error::TooNew { .. }
            | Error::Corrupt { .. }
            | Error::BadValue { .. } => 65,
            Error::Locked { .. } => 75,
            Error::ReadOnly { .. } => 74,
            Error::Empty { .. } | Error::IsDirectory { .. } => 66,
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

/// SQLite could not open the file (on a read-only directory: the `-shm` file).
fn cannot_open(e: &Error) -> bool {
    match e {
        Error::Open { source, .. } | Error::Sql { source, .. } => {
            sqlite_code(source) == Some(rusqlite::ErrorCode::CannotOpen)
        }
        _ => false,
    }
}

fn sqlite_code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// SQLite reported corruption through this connection: a writer then does
    /// not mark its close clean, so the next one runs `quick_check`.
    damaged: std::cell::Cell<bool>,
}

/// Coverage of one UTC hour slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub covered_until: DateTime<Utc>,
    pub saturated_at: Vec<DateTime<Utc>>,
}

/// Counts for `ledger status` and the demo (see [`StateCounts::total`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    pub rejected: u64,
    /// CI answered 2xx without a recognisable result; settled by CI's search.
    pub unconfirmed: u64,
    pub excluded: u64,
}

impl StateCounts {
    /// Every detection, whatever its state.
    pub fn total(&self) -> u64 {
        self.pending + self.sent + self.failed + self.rejected + self.unconfirmed + self.excluded
    }
}

impl Ledger {
    fn new(conn: Connection, path: PathBuf) -> Ledger {
        // The query planner stability guarantee: plans never depend on bound
        // values. Without it SQLite reads a bound `LIMIT ?` while planning, so
        // every new binding expired the statement and the submission queries
        // were parsed and planned again at each batch (5 % of a replay's CPU,
        // issue 13). Nothing here relies on value-dependent plans: the ledger
        // has no `sqlite_stat4` and binds no LIKE patterns.
        if let Err(e) = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true) {
            tracing::debug!(error = %e, "the ledger connection kept value-dependent query plans");
        }
        Ledger {
            conn,
            path,
            damaged: std::cell::Cell::new(false),
        }
    }

    /// Opens the ledger at `path` read-only: never created, migrated or written
    /// (audit commands, `--dry-run`). Writing commands use [`Writer::open`].
    pub fn open(path: &Path) -> Result<Ledger> {
        if path.is_dir() {
            return Err(Error::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        let ledger = match Ledger::connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|l| l.check_identity().map(|_| l))
        {
            Err(e) if cannot_open(&e) && path.is_file() => Ledger::open_immutable(path)?,
            other => other?,
        };
        if ledger.check_identity()? == 0 {
            // An empty file: created by a run that stopped before its first write.
            return Err(Error::Empty { path: ledger.path });
        }
        Ok(ledger)
    }

    /// Creates (whole), checks and migrates the ledger at `path` and opens it
    /// read-write, running `quick_check` when one is due (see `health.rs`).
    /// Only [`Writer::open`] calls this, with the run lock held; it records
    /// the check returned.
    fn open_read_write(
        path: &Path,
        now: DateTime<Utc>,
    ) -> Result<(Ledger, Option<health::CheckRun>)> {
        file::prepare_file(path)?;
        let pre = file::precheck(path, now)?;
        let mut ledger = Ledger::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        ledger.check_identity()?;
        ledger.set_pragmas()?;
        migrate::migrate(&mut ledger.conn).map_err(|e| ledger.sql(e))?;
        let check = match pre {
            file::Precheck::Decided(check) => check,
            file::Precheck::Undecided(found) => ledger.check_if_due(&found, now)?,
        };
        Ok((ledger, check))
    }

    /// A ledger on a read-only mount (a snapshot, a forensic copy): SQLite cannot
    /// create the `-shm` file WAL readers need, so the file is opened as
    /// immutable (no locks, no `-shm`). Nothing can write it there anyway; a
    /// `-wal` beside it is not read, which is said.
    fn open_immutable(path: &Path) -> Result<Ledger> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let uri = url::Url::from_file_path(&abs).map_err(|()| Error::IsDirectory {
            path: path.to_path_buf(),
        })?;
        let uri = format!("{uri}?immutable=1");
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&uri, flags).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            tracing::warn!(ledger = %path.display(), "the ledger's directory is read-only: its -wal file cannot be read, so the newest writes of the last run may be missing from this view");
        } else {
            tracing::debug!(ledger = %path.display(), "the ledger's directory is read-only: opened as immutable");
        }
        Ok(Ledger::new(conn, path.to_path_buf()))
    }

    /// One connection with the busy timeout set; no checks yet.
    fn connect(path: &Path, flags: OpenFlags) -> Result<Ledger> {
        let path = path.to_path_buf();
        let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let ledger = Ledger::new(conn, path);
        ledger
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| ledger.sql(e))?;
        Ok(ledger)
    }

    /// For `--dry-run`: the ledger opened read-only, or an empty in-memory one when
    /// the file is missing or empty. Nothing is ever created or written.
    pub fn open_or_empty(path: &Path) -> Result<Ledger> {
        if !path.exists() {
            return Ledger::open_in_memory();
        }
        match Ledger::open(path) {
            Err(Error::Empty { .. }) => Ledger::open_in_memory(),
            other => other,
        }
    }

    /// A fresh in-memory ledger (tests, and `--dry-run` without a ledger file).
    pub fn open_in_memory() -> Result<Ledger> {
        let path = PathBuf::from(MEMORY);
        let conn = Connection::open_in_memory().map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let mut ledger = Ledger::new(conn, path);
        ledger.set_pragmas()?;
        migrate::migrate(&mut ledger.conn).map_err(|e| ledger.sql(e))?;
        Ok(ledger)
    }

    /// The path this ledger was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> Error {
        if let Some(detail) = sql::bad_value(&source) {
            return Error::BadValue {
                path: self.path.clone(),
                detail,
            };
        }
        if let Some(rusqlite::ErrorCode::DatabaseCorrupt) = sqlite_code(&source) {
            self.damaged.set(true);
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
        if !mode.eq_ignore_ascii_case("wal") && self.path != Path::new(MEMORY) {
            tracing::warn!(journal_mode = %mode, "the ledger could not switch to WAL mode");
        }
        c.pragma_update(None, "synchronous", "FULL")
            .and_then(|_| c.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|_| c.pragma_update(None, "application_id", APPLICATION_ID))
            .map_err(|e| self.sql(e))
    }

    /// `PRAGMA quick_check`: run before a writing command touches the network
    /// when one is due (`health.rs`).
    pub fn quick_check(&self) -> Result<()> {
        let result: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if result == "ok" {
            Ok(())
        } else {
            self.damaged.set(true);
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
}

#[cfg(test)]
mod tests;
