//! `lrci ledger backup FILE`: a consistent copy of the ledger, safe while a sync
//! runs. SQLite's online backup copies every page under one read transaction
//! (WAL), so a sync committing meanwhile is either wholly in the copy or not at
//! all. The copy is written under a temporary name beside FILE, checked
//! (`PRAGMA integrity_check`, schema version), made durable, and only then
//! renamed to FILE: a failed or interrupted backup never leaves a half-written
//! FILE, and never touches an existing one it was not told to replace.
//!
//! The copy is one self-contained file (no `-wal`), with the ledger's private
//! mode: it holds everything the ledger does. Restoring is copying it over the
//! ledger while no run is going on (README "Backup and restore").

use super::*;
use crate::cli::args::BackupArgs;
use crate::platform;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::time::Instant;

/// What a finished backup holds, as printed.
#[derive(Debug, Serialize)]
struct Summary {
    ledger: String,
    backup: String,
    bytes: u64,
    schema_version: i64,
    alarms: u64,
    detections: u64,
    newest_run: Option<String>,
    integrity_check: &'static str,
    millis: u128,
}

/// Where the copy is written before it is checked and renamed into place.
fn temporary_name(dest: &Path) -> Option<PathBuf> {
    let name = dest.file_name()?.to_string_lossy().into_owned();
    Some(dest.with_file_name(format!(".{name}.partial-{}", std::process::id())))
}

fn cannot(code: u8, dest: &Path, why: impl std::fmt::Display) -> Fatal {
    Fatal::msg(code, format!("cannot back up to {}: {why}", dest.display()))
}

/// The checks made before anything is written: FILE is not the ledger (or one
/// of its side files), not a directory, does not exist unless `--force`, and
/// its directory exists.
fn check_destination(ledger: &Path, a: &BackupArgs) -> Result<PathBuf, Fatal> {
    let dest = &a.file;
    if dest.as_os_str().is_empty() {
        return Err(Fatal::msg(code::USAGE, "ledger backup: FILE is empty"));
    }
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(cannot(
                code::CANT_CREATE,
                dest,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Err(e) => {
            return Err(cannot(
                code::CANT_CREATE,
                dest,
                format!(
                    "its directory {} cannot be used ({e}); create it first",
                    dir.display()
                ),
            ))
        }
    }
    let real_ledger = std::fs::canonicalize(ledger).unwrap_or_else(|_| ledger.to_path_buf());
    let real_dest = std::fs::canonicalize(&dir)
        .map(|d| d.join(dest.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| dest.to_path_buf());
    let side = |suffix: &str| {
        let mut s = real_ledger.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    if [
        real_ledger.clone(),
        side("-wal"),
        side("-shm"),
        side(".lock"),
    ]
    .contains(&real_dest)
    {
        return Err(Fatal::msg(
            code::USAGE,
            format!(
                "ledger backup: {} is the ledger itself or one of its files; give another FILE",
                dest.display()
            ),
        ));
    }
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => Err(cannot(
            code::CANT_CREATE,
            dest,
            "it is a directory; give a file name, e.g. DIR/ledger-backup.sqlite3",
        )),
        Ok(_) if !a.force => Err(cannot(
            code::CANT_CREATE,
            dest,
            "it exists; give --force to replace it",
        )),
        Ok(_) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(dir),
        Err(e) => Err(cannot(code::CANT_CREATE, dest, e)),
    }
}

/// Writes, checks and places the copy; on any failure the temporary file is
/// removed and FILE is as it was. The outcome also reaches the log file: a
/// backup usually runs from a scheduler, which discards stderr.
pub(super) fn backup(path: &Path, a: &BackupArgs, out: &mut dyn Write) -> Outcome {
    let result = place(path, a, out);
    let dest = a.file.display().to_string();
    match &result {
        Ok(()) => tracing::info!(ledger = %path.display(), backup = %dest, "ledger backed up"),
        Err(Failure::Fatal(f)) => {
            tracing::error!(backup = %dest, exit_code = f.code, reason = %f, "ledger backup failed")
        }
        Err(Failure::Write(_)) => {}
    }
    result
}

fn place(path: &Path, a: &BackupArgs, out: &mut dyn Write) -> Outcome {
    let started = Instant::now();
    let l = open(path)?;
    let dir = check_destination(path, a)?;
    let dest = &a.file;
    let tmp = temporary_name(dest)
        .ok_or_else(|| Fatal::msg(code::USAGE, "ledger backup: FILE has no file name"))?;
    let result = write_checked(&l, dest, &tmp);
    let summary = match result {
        Ok(s) => s,
        Err(f) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(f.into());
        }
    };
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(cannot(
            code::IO,
            dest,
            format!("renaming the checked copy into place failed: {e}"),
        )
        .into());
    }
    platform::sync_dir(&dir);
    let summary = Summary {
        ledger: path.display().to_string(),
        backup: dest.display().to_string(),
        millis: started.elapsed().as_millis(),
        ..summary
    };
    if a.json {
        let v = serde_json::to_value(&summary).map_err(io::Error::other)?;
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "backed up {} to {}: {} alarms, {} detections, schema version {}, {} bytes, newest run {}; integrity_check ok ({} ms)",
            escape(&summary.ledger),
            escape(&summary.backup),
            summary.alarms,
            summary.detections,
            summary.schema_version,
            summary.bytes,
            summary.newest_run.as_deref().unwrap_or("none"),
            summary.millis
        )?;
        writeln!(
            out,
            "restore: stop the scheduled runs, copy {} over {}, and remove {}-wal and {}-shm if present",
            escape(&summary.backup),
            escape(&summary.ledger),
            escape(&summary.ledger),
            escape(&summary.ledger)
        )?;
    }
    Ok(())
}

/// Copies the ledger into `tmp` (created new, private), checks the copy and
/// makes it durable. `dest` only names the backup in messages.
fn write_checked(l: &Ledger, dest: &Path, tmp: &Path) -> Result<Summary, Fatal> {
    let _ = std::fs::remove_file(tmp);
    platform::private_file(OpenOptions::new().write(true).create_new(true))
        .open(tmp)
        .map_err(|e| {
            cannot(
                code::CANT_CREATE,
                dest,
                format!("creating {} failed: {e}", tmp.display()),
            )
        })?;
    l.backup_to(tmp)
        .map_err(|e| cannot(e.exit_code(), dest, cause(&e)))?;
    let copy = Ledger::open(tmp).map_err(|e| {
        cannot(
            code::IO,
            dest,
            format!("the copy cannot be read back: {}", cause(&e)),
        )
    })?;
    copy.integrity_check().map_err(|e| {
        cannot(
            code::DATA,
            dest,
            format!(
                "the copy fails PRAGMA integrity_check ({}); the ledger itself may be damaged: run `lrci doctor`",
                cause(&e)
            ),
        )
    })?;
    let schema_version = copy
        .schema_version()
        .map_err(|e| cannot(code::DATA, dest, e))?;
    let alarms = copy
        .alarm_count()
        .map_err(|e| cannot(code::DATA, dest, e))?;
    let d = copy
        .state_counts()
        .map_err(|e| cannot(code::DATA, dest, e))?;
    let newest_run = copy
        .recent_runs(1)
        .map_err(|e| cannot(code::DATA, dest, e))?
        .into_iter()
        .next()
        .map(|r| format!("{} {} at {}", r.kind, r.id, r.started_at));
    drop(copy);
    let f = std::fs::File::open(tmp).map_err(|e| cannot(code::IO, dest, e))?;
    f.sync_all().map_err(|e| cannot(code::IO, dest, e))?;
    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Summary {
        ledger: String::new(),
        backup: String::new(),
        bytes,
        schema_version,
        alarms,
        detections: d.total(),
        newest_run,
        integrity_check: "ok",
        millis: 0,
    })
}

/// The SQLite cause alone where the error would name a path the message
/// already gives.
fn cause(e: &ledger::Error) -> String {
    match e {
        ledger::Error::Sql { source, .. } | ledger::Error::Open { source, .. } => {
            source.to_string()
        }
        other => crate::error::one_line(other),
    }
}
