//! [`Writer`]: the only way to change a ledger. It holds the run lock, so a
//! write without the lock does not compile.

use super::{ts, Error, Ledger, Result, RunLock, MEMORY};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// A ledger opened for writing, holding the run lock for as long as it lives.
///
/// Every method that changes the ledger (ingest, the `mark_*` outcomes, runs,
/// prune) is on `Writer`; reads come through `Deref` to [`Ledger`]. The only
/// ways to get one are [`Writer::open`] (lock, read-write open, `quick_check`
/// when due: the one path of every writing command) and the in-memory
/// constructors, which touch no file. So a write to a ledger file without its
/// lock does not compile. Dropping a file's `Writer` is its clean close
/// (`health.rs`).
pub struct Writer {
    pub(super) ledger: Ledger,
    /// `None` only for in-memory ledgers, which no other process can see.
    lock: Option<RunLock>,
}

impl Drop for Writer {
    /// The clean close of a ledger file (in-memory ledgers have nothing to
    /// close). After SQLite reported corruption the writer mark is left set, so
    /// the next writer checks the ledger.
    fn drop(&mut self) {
        if self.lock.is_none() {
            return;
        }
        if self.ledger.damaged.get() {
            tracing::warn!(ledger = %self.ledger.path.display(), "SQLite reported damage in the ledger: the next run checks it");
            return;
        }
        self.close_cleanly();
    }
}

impl std::ops::Deref for Writer {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        &self.ledger
    }
}

impl Writer {
    /// Takes the run lock of the ledger at `path` (failing at once with
    /// [`Error::Locked`] when another run holds it), creates or migrates the
    /// ledger, runs `PRAGMA quick_check` when one is due (after an unclean
    /// shutdown, a change by something else, or daily: see `health.rs`) and
    /// marks the ledger open: what every writing command does before it
    /// touches the network.
    pub fn open(path: &Path) -> Result<Writer> {
        let lock = RunLock::acquire(path)?;
        let now = Utc::now();
        let (ledger, check) = Ledger::open_read_write(path, now)?;
        let mut writer = Writer {
            ledger,
            lock: Some(lock),
        };
        writer.record_open(check, now)?;
        Ok(writer)
    }

    /// A fresh in-memory ledger (tests, and `--dry-run` without a ledger file).
    pub fn open_in_memory() -> Result<Writer> {
        Ok(Writer {
            ledger: Ledger::open_in_memory()?,
            lock: None,
        })
    }

    /// For `--dry-run`: an in-memory copy of the ledger at `path` (read through a
    /// read-only connection), or an empty in-memory ledger when the file is
    /// missing or empty. The run can then take its ordinary path; nothing it
    /// writes reaches the file, and no lock is taken.
    pub fn scratch_copy(path: &Path) -> Result<Writer> {
        let source = match Ledger::open_or_empty(path)? {
            l if l.path() == Path::new(MEMORY) => {
                return Ok(Writer {
                    ledger: l,
                    lock: None,
                })
            }
            l => l,
        };
        let mut copy = Connection::open_in_memory().map_err(|e| source.sql(e))?;
        {
            let backup = rusqlite::backup::Backup::new(&source.conn, &mut copy)
                .map_err(|e| source.sql(e))?;
            backup
                .run_to_completion(1024, Duration::ZERO, None)
                .map_err(|e| source.sql(e))?;
        }
        // A copy of an older ledger reads like a current one.
        super::migrate::migrate(&mut copy).map_err(|e| source.sql(e))?;
        let ledger = Ledger::new(copy, source.path.clone());
        ledger
            .conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| ledger.sql(e))?;
        Ok(Writer { ledger, lock: None })
    }

    /// The run lock held, `None` for an in-memory ledger.
    pub fn lock(&self) -> Option<&RunLock> {
        self.lock.as_ref()
    }
    /// Runs `f` in one IMMEDIATE transaction (never `SQLITE_BUSY_SNAPSHOT` half-way),
    /// committed when `f` succeeds and rolled back otherwise.
    pub(super) fn write<T>(
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
        run(&mut self.ledger.conn).map_err(sql)
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
}
