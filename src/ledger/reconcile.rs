//! Queries of `lrci reconcile` and `lrci ledger backup`: the detections of a
//! window with their state, CI's holdings (`ci_holdings`), settling states from
//! what CI holds, and an online backup of the ledger file.

use super::{ts, Error, Ledger, Result, Writer};
use crate::model::{AlarmId, DetectionId, DetectionState, IndicatorType};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// How many 50 ms waits a backup makes for a busy ledger (30 s in all).
const BACKUP_WAITS: u32 = 600;

/// A detection of the window, as reconcile compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowDetection {
    pub id: DetectionId,
    pub alarm_id: AlarmId,
    pub kind: IndicatorType,
    pub value: String,
    /// The stored state text (`unconfirmed` included, whatever this build's enum holds).
    pub state: String,
}

/// One event CI holds, keyed like a detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub incident_id: String,
    pub ioc_type: String,
    pub value: String,
    pub event_id: String,
    pub detection_time: Option<String>,
}

/// An `unconfirmed` detection, with its alarm's `dateInserted` (what CI files
/// it under: lrci sends it as the timestamp) and when it became unconfirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnconfirmedRow {
    pub detection: WindowDetection,
    pub inserted: DateTime<Utc>,
    pub since: DateTime<Utc>,
}

impl Ledger {
    /// Every `unconfirmed` detection, oldest alarm first (at most `limit`).
    pub fn unconfirmed(&self, limit: usize) -> Result<Vec<UnconfirmedRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.id, d.alarm_id, d.ioc_type, d.value, d.state, a.date_inserted, d.updated_at
                 FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
                 WHERE d.state = 'unconfirmed'
                 ORDER BY a.date_inserted, d.id LIMIT ?1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(UnconfirmedRow {
                    detection: WindowDetection {
                        id: super::sql::get(r, 0, "detections.id")?,
                        alarm_id: super::sql::get(r, 1, "detections.alarm_id")?,
                        kind: super::sql::get(r, 2, "detections.ioc_type")?,
                        value: super::sql::get(r, 3, "detections.value")?,
                        state: super::sql::get(r, 4, "detections.state")?,
                    },
                    inserted: super::sql::time(r, 5, "alarms.date_inserted")?,
                    since: super::sql::time(r, 6, "detections.updated_at")?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// Non-excluded detections whose alarm was inserted in `[from, to]`.
    pub fn window_detections(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<WindowDetection>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.id, d.alarm_id, d.ioc_type, d.value, d.state
                 FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
                 WHERE d.state <> 'excluded' AND a.date_inserted >= ?1 AND a.date_inserted <= ?2
                 ORDER BY d.id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![ts(from), ts(to)], |r| {
                Ok(WindowDetection {
                    id: super::sql::get(r, 0, "detections.id")?,
                    alarm_id: super::sql::get(r, 1, "detections.alarm_id")?,
                    kind: super::sql::get(r, 2, "detections.ioc_type")?,
                    value: super::sql::get(r, 3, "detections.value")?,
                    state: super::sql::get(r, 4, "detections.state")?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// A consistent copy of the ledger at `dest` (SQLite online backup, all
    /// pages in one step, so a sync writing meanwhile is either wholly in the
    /// copy or not at all). `dest` must be new or empty; the caller places it.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let mut out = Connection::open_with_flags(
            dest,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|source| Error::Open {
            path: dest.to_path_buf(),
            source,
        })?;
        // Failures name the copy: reading the ledger under WAL does not fail
        // where writing the copy (a full disk, a read-only target) does.
        let sql = |source| Error::Sql {
            path: dest.to_path_buf(),
            source,
        };
        {
            use rusqlite::backup::{Backup, StepResult};
            let backup = Backup::new(&self.conn, &mut out).map_err(sql)?;
            // Every page in one step (-1): one read transaction, so one
            // snapshot. A step made in pieces restarts whenever a sync commits
            // in between, and might never finish beside a busy sync.
            let mut waits = 0;
            loop {
                match backup.step(-1).map_err(sql)? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    _ if waits < BACKUP_WAITS => {
                        waits += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        return Err(sql(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some("the ledger stayed busy for 30 s".into()),
                        )))
                    }
                }
            }
        }
        // One self-contained file: fold the copy's WAL back in.
        out.pragma_update(None, "journal_mode", "DELETE")
            .map_err(sql)?;
        out.close().map_err(|(_, e)| sql(e))
    }
}

impl Writer {
    /// Records what CI holds (replacing earlier sightings of the same key), so
    /// ingest marks a matching new detection `sent` instead of sending it.
    pub fn record_holdings(&mut self, held: &[Holding], now: DateTime<Utc>) -> Result<u64> {
        let now = ts(now);
        self.write(|tx| {
            let mut n = 0;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ci_holdings (incident_id, ioc_type, value, event_id, detection_time, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (incident_id, ioc_type, value) DO UPDATE SET
                    event_id = excluded.event_id, detection_time = excluded.detection_time,
                    seen_at = excluded.seen_at",
            )?;
            for h in held {
                n += stmt.execute(params![
                    h.incident_id,
                    h.ioc_type,
                    h.value,
                    h.event_id,
                    h.detection_time,
                    now
                ])? as u64;
            }
            Ok(n)
        })
    }

    /// Marks `ids` sent (CI holds them); `sent_at` is kept when already set.
    pub fn confirm_sent(&mut self, ids: &[DetectionId], now: DateTime<Utc>) -> Result<()> {
        let now = ts(now);
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE detections SET state = 'sent', sent_at = coalesce(sent_at, ?2),
                    last_error = NULL, updated_at = ?2
                 WHERE id = ?1 AND state <> 'excluded'",
            )?;
            for id in ids {
                stmt.execute(params![id, now])?;
            }
            Ok(())
        })
    }

    /// Queues `ids` for replay: state `pending`, `reason` kept in `last_error`.
    pub fn requeue(&mut self, ids: &[DetectionId], reason: &str, now: DateTime<Utc>) -> Result<()> {
        let now = ts(now);
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE detections SET state = ?2, last_error = ?3, updated_at = ?4
                 WHERE id = ?1 AND state <> 'excluded'",
            )?;
            for id in ids {
                stmt.execute(params![id, DetectionState::Pending, reason, now])?;
            }
            Ok(())
        })
    }
}
