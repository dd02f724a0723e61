//! The ledger file on disk: creating it whole (0600 in a 0700 directory),
//! checking an existing one read-only before a read-write open, and resolving
//! the path (symlinks) that the lock file is named after.

use super::health::{CheckRun, FileState};
use super::{migrate, Error, Ledger, Result};
use crate::platform;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// What the read-only look before a read-write open decided.
pub(super) enum Precheck {
    /// The identity is sound and `quick_check` ran (`Some`) or was not due.
    Decided(Option<CheckRun>),
    /// The read-only connection could not be used (an empty file, a `-shm`
    /// that needs recovery, which takes write access): the read-write open
    /// decides, from the files as they were found here.
    Undecided(FileState),
}

/// Before a read-write open of an existing ledger: the identity checks and,
/// when [`super::health::check_due`] says so, `PRAGMA quick_check` through a
/// read-only connection, so that a foreign, newer or corrupt ledger (including
/// one paired with another database's `-wal`) is refused with its files
/// byte-for-byte unchanged. A read-write connection would write the header
/// and, on close, checkpoint and delete the `-wal`.
pub(super) fn precheck(path: &Path, now: DateTime<Utc>) -> Result<Precheck> {
    let file = FileState::of(path);
    let non_empty = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
    if !non_empty {
        return Ok(Precheck::Undecided(file));
    }
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    let (wal, shm) = (side("-wal"), side("-shm"));
    let had = (wal.exists(), shm.exists());
    let verdict = probe_read_only(path, &file, now);
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

fn probe_read_only(path: &Path, file: &FileState, now: DateTime<Utc>) -> Result<Precheck> {
    let undecided = Ok(Precheck::Undecided(*file));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return undecided;
    };
    let probe = Ledger::new(conn, path.to_path_buf());
    let refused = |e: &Error| {
        matches!(
            e,
            Error::Foreign { .. } | Error::TooNew { .. } | Error::Corrupt { .. }
        )
    };
    match probe.check_identity() {
        Err(e) if refused(&e) => return Err(e),
        Err(_) => return undecided,
        Ok(_) => {}
    }
    match probe.check_if_due(file, now) {
        Err(e) if refused(&e) => Err(e),
        Err(_) => undecided,
        Ok(ran) => Ok(Precheck::Decided(ran)),
    }
}

/// An existing ledger (and its `-wal`/`-shm`, whose mode SQLite copies from
/// it) readable or writable by others is set to 0600, with a warning; when
/// that fails (another owner) the warning says so and the run goes on.
fn tighten_existing(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = resolve_ledger_path(path).into_os_string();
        p.push(suffix);
        let p = PathBuf::from(p);
        let Some(mode) = std::fs::metadata(&p).ok().and_then(|m| platform::mode(&m)) else {
            continue;
        };
        if mode & 0o077 == 0 {
            continue;
        }
        match platform::set_path_mode(&p, platform::PRIVATE_FILE) {
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

/// Makes sure a whole ledger exists at `path` (through a symlink, at its target).
///
/// A new ledger is built in a temporary file beside it — created 0600, switched to
/// WAL, migrated, closed and synced — and then renamed into place. A run killed
/// while creating it therefore leaves no ledger or a complete one, never a
/// half-made file whose hot rollback journal read-only commands cannot open. An
/// existing empty file (from an older lrci) is replaced the same way. Callers
/// hold the run lock, so leftovers of a killed creation can be removed here.
pub(super) fn prepare_file(path: &Path) -> Result<()> {
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
    platform::private_file(&mut opts)
        .open(&tmp)
        .map_err(create_err)?;
    let built = (|| -> Result<()> {
        let conn = Connection::open(&tmp).map_err(|source| Error::Open {
            path: tmp.clone(),
            source,
        })?;
        let mut ledger = Ledger::new(conn, tmp.clone());
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
        platform::sync_dir(&dir);
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
    platform::private_dir(std::fs::DirBuilder::new().recursive(true)).create(dir)
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
