//! The ledger's health record (`ledger_health`, migration 6) and when a
//! writing open runs `PRAGMA quick_check`.
//!
//! `quick_check` reads every page, so on a large ledger it was most of a quiet
//! sync (issue 13: 89 % of 1.7 s at 1 M detections). A writer now runs it only
//! when there is a reason to doubt the file ([`check_due`]):
//! - no check is recorded (a new ledger, or one from before migration 6);
//! - the last writer did not close it cleanly: `writer_opened_at` is set when a
//!   [`Writer`] opens the file and cleared when it is dropped, so a run that was
//!   killed, lost power or crashed leaves it set. A flag of the writer, rather
//!   than a run left unfinished in `runs`, because every writer sets it (`ledger
//!   prune` and `reconcile` write without a run of their own) and nothing else
//!   ever clears it;
//! - the last writer left a non-empty `-wal` (a clean close checkpoints it away);
//! - the file changed since lrci last closed it: at a clean close the file's
//!   modification time is set to the whole second recorded as `closed_mtime`,
//!   so a copy, a restore, a truncation or a page overwritten by anything else
//!   (which all set their own time) no longer matches;
//! - the last check is a day old ([`CHECK_INTERVAL`]).
//!
//! Otherwise the file is exactly as a writer that checked it within the day left
//! it. A failed check refuses the ledger untouched (nothing is recorded: the file
//! is left as found). `lrci doctor` runs the full `integrity_check` and shows
//! what is recorded here.

use super::{ts, Ledger, Result, Writer};
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use rusqlite::{params, OptionalExtension};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How old the last `quick_check` may be before a clean ledger is checked again.
pub const CHECK_INTERVAL: Span = Span::hours(24);

/// The schema version that has `ledger_health`.
const HEALTH_VERSION: i64 = 6;

/// What `ledger_health` holds (all `None` before the first writer of migration 6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The pid of the writer that has the ledger open, or had it when it died.
    pub writer_pid: Option<i64>,
    /// When that writer opened it; `None` after a clean close.
    pub writer_opened_at: Option<String>,
    /// The last clean close.
    pub closed_at: Option<String>,
    /// The modification time (Unix seconds) lrci gave the file at that close.
    pub closed_mtime: Option<i64>,
    /// The last `PRAGMA quick_check`: when, why, how long, and its result.
    pub check_at: Option<DateTime<Utc>>,
    pub check_reason: Option<String>,
    pub check_ms: Option<i64>,
    pub check_result: Option<String>,
}

/// The ledger's files as a writer finds them, before it opens them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileState {
    /// The database file's modification time, when it is a whole second.
    pub mtime: Option<i64>,
    /// The size of the `-wal` beside it (0 when there is none).
    pub wal_bytes: u64,
}

impl FileState {
    /// Reads the state of the ledger at `path`.
    pub fn of(path: &Path) -> FileState {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        FileState {
            mtime: std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(whole_second),
            wal_bytes: std::fs::metadata(std::path::PathBuf::from(wal)).map_or(0, |m| m.len()),
        }
    }
}

/// `t` as Unix seconds when it has no fraction (a time lrci set), else `None`.
fn whole_second(t: SystemTime) -> Option<i64> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    (d.subsec_nanos() == 0).then(|| i64::try_from(d.as_secs()).ok())?
}

/// Why a writer runs `quick_check` before it touches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckReason {
    NoRecord,
    Unclean,
    WalLeft,
    Changed,
    Daily,
}

impl CheckReason {
    /// The reason as it is recorded and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckReason::NoRecord => "no check recorded",
            CheckReason::Unclean => "the last writer did not close the ledger cleanly",
            CheckReason::WalLeft => "the last writer left its -wal",
            CheckReason::Changed => "the file changed since lrci last closed it",
            CheckReason::Daily => "the last check is a day old",
        }
    }
}

/// Whether a writer must run `quick_check` on a ledger with `health` whose files
/// look like `file`, at `now`, and why; `None`: the file is as a writer that
/// checked it within [`CHECK_INTERVAL`] closed it.
pub fn check_due(
    health: Option<&Health>,
    file: &FileState,
    now: DateTime<Utc>,
) -> Option<CheckReason> {
    let Some(h) = health.filter(|h| h.check_at.is_some()) else {
        return Some(CheckReason::NoRecord);
    };
    if h.writer_opened_at.is_some() {
        return Some(CheckReason::Unclean);
    }
    if file.wal_bytes > 0 {
        return Some(CheckReason::WalLeft);
    }
    if h.closed_mtime.is_none() || h.closed_mtime != file.mtime {
        return Some(CheckReason::Changed);
    }
    match h.check_at {
        Some(at) if now - at < CHECK_INTERVAL && at <= now => None,
        _ => Some(CheckReason::Daily),
    }
}

/// A `quick_check` that ran and passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRun {
    pub at: DateTime<Utc>,
    pub reason: CheckReason,
    pub ms: u64,
}

impl Ledger {
    /// The health record, `None` on a ledger from before migration 6.
    pub fn health(&self) -> Result<Option<Health>> {
        if self.schema_version()? < HEALTH_VERSION {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT writer_pid, writer_opened_at, closed_at, closed_mtime, check_at,
                        check_reason, check_ms, check_result
                 FROM ledger_health WHERE id = 1",
                [],
                |r| {
                    Ok(Health {
                        writer_pid: r.get(0)?,
                        writer_opened_at: r.get(1)?,
                        closed_at: r.get(2)?,
                        closed_mtime: r.get(3)?,
                        check_at: r
                            .get::<_, Option<String>>(4)?
                            .as_deref()
                            .and_then(super::parse_ts),
                        check_reason: r.get(5)?,
                        check_ms: r.get(6)?,
                        check_result: r.get(7)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(Some(row.unwrap_or_default()))
    }

    /// Runs `quick_check` when [`check_due`] says so, on this connection.
    pub(super) fn check_if_due(
        &self,
        file: &FileState,
        now: DateTime<Utc>,
    ) -> Result<Option<CheckRun>> {
        let health = self.health()?;
        let Some(reason) = check_due(health.as_ref(), file, now) else {
            return Ok(None);
        };
        let started = Instant::now();
        self.quick_check()?;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(reason = reason.as_str(), ms, "PRAGMA quick_check: ok");
        Ok(Some(CheckRun {
            at: now,
            reason,
            ms,
        }))
    }
}

impl Writer {
    /// Marks the ledger open by this process and records `check` when one ran.
    pub(super) fn record_open(
        &mut self,
        check: Option<CheckRun>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let pid = i64::from(std::process::id());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO ledger_health (id, writer_pid, writer_opened_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET writer_pid = ?1, writer_opened_at = ?2",
                params![pid, ts(now)],
            )?;
            if let Some(c) = check {
                tx.execute(
                    "UPDATE ledger_health SET check_at = ?1, check_reason = ?2, check_ms = ?3,
                        check_result = 'ok' WHERE id = 1",
                    params![
                        ts(c.at),
                        c.reason.as_str(),
                        i64::try_from(c.ms).unwrap_or(i64::MAX)
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The clean close of a ledger file: clears the writer mark, records the
    /// close, closes the connection (which checkpoints the `-wal` into the file
    /// and removes it) and sets the file's modification time to the recorded
    /// second. Anything that fails is only logged: the next writer then finds
    /// the mark or a different time and runs `quick_check`, the safe side.
    pub(super) fn close_cleanly(&mut self) {
        let now = Utc::now();
        let secs = now.timestamp();
        let at = Utc.timestamp_opt(secs, 0).single().unwrap_or(now);
        let marked = self.write(|tx| {
            tx.execute(
                "UPDATE ledger_health SET writer_pid = NULL, writer_opened_at = NULL,
                    closed_at = ?1, closed_mtime = ?2 WHERE id = 1",
                params![ts(at), secs],
            )
        });
        if let Err(e) = marked {
            tracing::warn!(error = %e, "could not record the ledger's clean close; the next run checks it");
            return;
        }
        let conn = match rusqlite::Connection::open_in_memory() {
            Ok(spare) => std::mem::replace(&mut self.ledger.conn, spare),
            Err(_) => return,
        };
        if let Err((_, e)) = conn.close() {
            tracing::warn!(error = %e, "could not close the ledger cleanly; the next run checks it");
            return;
        }
        let time = UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        let set = std::fs::File::open(&self.ledger.path).and_then(|f| f.set_modified(time));
        if let Err(e) = set {
            tracing::debug!(error = %e, "could not set the ledger's modification time; the next run checks it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, h, 0, 0).unwrap()
    }

    /// (name, health recorded, files found, now, the check expected)
    type Case<'a> = (
        &'a str,
        Option<&'a Health>,
        FileState,
        DateTime<Utc>,
        Option<CheckReason>,
    );

    #[test]
    fn when_a_writer_checks_the_ledger() {
        let clean = Health {
            closed_at: Some("2026-12-03T08:00:00.000Z".into()),
            closed_mtime: Some(1_000),
            check_at: Some(t(8)),
            check_reason: Some("daily".into()),
            check_ms: Some(5),
            check_result: Some("ok".into()),
            ..Health::default()
        };
        let unclean = Health {
            writer_pid: Some(42),
            writer_opened_at: Some("2026-12-03T09:00:00.000Z".into()),
            ..clean.clone()
        };
        let never = Health {
            check_at: None,
            ..clean.clone()
        };
        let not_closed = Health {
            closed_mtime: None,
            ..clean.clone()
        };
        let future = Health {
            check_at: Some(t(20)),
            ..clean.clone()
        };
        let same = FileState {
            mtime: Some(1_000),
            wal_bytes: 0,
        };
        let touched = FileState {
            mtime: None,
            ..same
        };
        let other = FileState {
            mtime: Some(1_001),
            ..same
        };
        let wal = FileState {
            wal_bytes: 4096,
            ..same
        };
        let day = Span::hours(24);
        use CheckReason::*;
        let cases: &[Case<'_>] = &[
            ("before migration 6", None, same, t(9), Some(NoRecord)),
            (
                "a row but no check yet",
                Some(&never),
                same,
                t(9),
                Some(NoRecord),
            ),
            ("clean, checked an hour ago", Some(&clean), same, t(9), None),
            (
                "clean, checked 23 h 59 ago",
                Some(&clean),
                same,
                t(8) + day - Span::minutes(1),
                None,
            ),
            (
                "clean, checked a day ago",
                Some(&clean),
                same,
                t(8) + day,
                Some(Daily),
            ),
            (
                "a check in the future (clock set back)",
                Some(&future),
                same,
                t(9),
                Some(Daily),
            ),
            ("killed writer", Some(&unclean), same, t(9), Some(Unclean)),
            (
                "killed writer, -wal left",
                Some(&unclean),
                wal,
                t(9),
                Some(Unclean),
            ),
            ("-wal left", Some(&clean), wal, t(9), Some(WalLeft)),
            (
                "modified since (fractional time)",
                Some(&clean),
                touched,
                t(9),
                Some(Changed),
            ),
            ("another second", Some(&clean), other, t(9), Some(Changed)),
            (
                "close not recorded",
                Some(&not_closed),
                same,
                t(9),
                Some(Changed),
            ),
        ];
        for (name, health, file, now, want) in cases {
            assert_eq!(check_due(*health, file, *now), *want, "{name}");
        }
    }

    #[test]
    fn whole_seconds_only() {
        let s = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(whole_second(s), Some(1_700_000_000));
        assert_eq!(whole_second(s + std::time::Duration::from_nanos(1)), None);
    }
}
