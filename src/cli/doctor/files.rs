//! Doctor's checks of the ledger and log directory: path, modes, file system,
//! lock, WAL, schema and integrity (read-only, never taking the run lock).

use super::*;

/// A WAL file larger than this is worth a warning.
pub(super) const LARGE_WAL: u64 = 256 * 1024 * 1024;

/// Checks the ledger; returns its path.
pub(super) fn ledger_checks(path: &Path, out: &mut Vec<Check>) -> Option<PathBuf> {
    let path = path.to_path_buf();
    let real = ledger::resolve_ledger_path(&path);
    if real == path {
        out.push(Check::ok("ledger: path", path.display().to_string()));
    } else {
        out.push(Check::ok(
            "ledger: path",
            format!("{} (resolves to {})", path.display(), real.display()),
        ));
    }
    if let Some(dir) = real.parent() {
        out.push(dir_mode_check(dir));
    }
    const FILE: &str = "ledger: file";
    let meta = match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => {
            out.push(Check::fail(
                FILE,
                code::CANT_CREATE,
                format!(
                    "{} is a directory: point LRCI_LEDGER (--ledger) at a file",
                    real.display()
                ),
            ));
            return Some(path);
        }
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push(Check::warn(
                FILE,
                format!(
                    "{} does not exist: no run yet (the first sync creates it)",
                    path.display()
                ),
            ));
            out.push(lock_check(&path));
            return Some(path);
        }
        Err(e) => {
            out.push(Check::fail(
                FILE,
                code::NO_INPUT,
                format!("cannot read {}: {e}", real.display()),
            ));
            return Some(path);
        }
    };
    // Before opening: what the files look like as the last run left them.
    let after = [
        file_mode_check(&real, &meta),
        file_system_check(&real),
        lock_check(&path),
        wal_check(&real),
    ];

    open_checks(&path, out);
    out.extend(after);
    Some(path)
}

/// Opens the ledger read-only: schema version and `PRAGMA integrity_check`.
pub(super) fn open_checks(path: &Path, out: &mut Vec<Check>) {
    const OPEN: &str = "ledger: open";
    const INTEGRITY: &str = "ledger: integrity";
    match Ledger::open(path) {
        Ok(l) => {
            match l.schema_version() {
                Ok(v) => out.push(Check::ok(
                    OPEN,
                    format!(
                        "an lrci ledger, schema version {v} (this lrci writes {}), opened read-only",
                        migrate::CURRENT_VERSION
                    ),
                )),
                Err(e) => out.push(ledger_fail(OPEN, &e)),
            }
            let started = Instant::now();
            match l.integrity_check() {
                Ok(()) => out.push(Check::ok(
                    INTEGRITY,
                    format!(
                        "PRAGMA integrity_check: ok ({} ms)",
                        started.elapsed().as_millis()
                    ),
                )),
                Err(e) => out.push(ledger_fail(INTEGRITY, &e)),
            }
            out.push(quick_check_record(&l));
        }
        Err(ledger::Error::Empty { .. }) => out.push(Check::warn(
            OPEN,
            format!("{} is empty: no run has written it yet", path.display()),
        )),
        Err(e) => out.push(ledger_fail(OPEN, &e)),
    }
}

/// What the ledger records of the `quick_check` writing runs do (issue 13):
/// when it last ran, why and its result, and when the next one is due.
fn quick_check_record(l: &Ledger) -> Check {
    const NAME: &str = "ledger: quick_check";
    let h = match l.health() {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Check::ok(
                NAME,
                "none recorded (a ledger from an older lrci): the next writing run checks it",
            )
        }
        Err(e) => return ledger_fail(NAME, &e),
    };
    let Some(at) = h.check_at else {
        return Check::ok(NAME, "none recorded yet: the next writing run checks it");
    };
    let last = format!(
        "last run {} ({}; {} ms): {}",
        ledger::ts(at),
        h.check_reason.as_deref().unwrap_or("no reason recorded"),
        h.check_ms.unwrap_or(0),
        h.check_result.as_deref().unwrap_or("no result recorded"),
    );
    let next = match (&h.writer_opened_at, h.writer_pid) {
        (Some(opened), pid) => format!(
            "; a writer (pid {}) opened the ledger at {opened} and has not closed it: a run now, or one that was killed (then the next run checks it)",
            pid.map_or_else(|| "?".into(), |p| p.to_string())
        ),
        (None, _) => format!(
            "; next after an unclean shutdown, a change by another program, or from {}",
            ledger::ts(at + ledger::CHECK_INTERVAL)
        ),
    };
    Check::ok(NAME, format!("{last}{next}"))
}

/// Checks a backup (`doctor --backup FILE`): the file, that it opens as an lrci
/// ledger this version can restore, `PRAGMA integrity_check`, that it is one
/// self-contained file, and how far it is behind the ledger at `ledger`.
pub(super) fn backup_checks(path: &Path, ledger: &Path, out: &mut Vec<Check>) {
    const FILE: &str = "backup: file";
    const OPEN: &str = "backup: open";
    const INTEGRITY: &str = "backup: integrity";
    const CONTENTS: &str = "backup: contents";
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            out.push(Check::fail(
                FILE,
                code::NO_INPUT,
                format!("{shown} is a directory: --backup names the backup file"),
            ));
            return;
        }
        Ok(m) => m,
        Err(e) => {
            out.push(Check::fail(
                FILE,
                code::NO_INPUT,
                format!("cannot read {shown}: {e}"),
            ));
            return;
        }
    };
    let mode = match platform::mode(&meta) {
        Some(m) if m & 0o077 != 0 => Some(format!(
            "; mode {m:o}: other users can read the alarm data, run chmod 600 {shown}"
        )),
        _ => None,
    };
    let size = format!("{shown}, {} bytes", meta.len());
    out.push(match mode {
        Some(warning) => Check::warn(FILE, format!("{size}{warning}")),
        None => Check::ok(FILE, size),
    });
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(PathBuf::from(&wal)).is_ok_and(|m| m.len() > 0) {
        out.push(Check::warn(
            "backup: self-contained",
            format!(
                "{} is beside it: the copy is only whole together with that file (a plain copy of a live ledger?); make backups with `lrci ledger backup`",
                PathBuf::from(&wal).display()
            ),
        ));
    }
    let copy = match Ledger::open(path) {
        Ok(l) => l,
        Err(ledger::Error::Empty { .. }) => {
            out.push(Check::fail(
                OPEN,
                code::DATA,
                format!("{shown} is empty: it holds no ledger"),
            ));
            return;
        }
        Err(ledger::Error::Corrupt { detail, .. }) => {
            out.push(Check::fail(
                OPEN,
                code::DATA,
                format!("{shown} is damaged ({detail}): it cannot restore the ledger; make a new backup with `lrci ledger backup`"),
            ));
            return;
        }
        Err(e) => {
            out.push(ledger_fail(OPEN, &e));
            return;
        }
    };
    match copy.schema_version() {
        Ok(v) => out.push(Check::ok(
            OPEN,
            format!(
                "an lrci ledger, schema version {v}: this lrci ({}) can restore it",
                migrate::CURRENT_VERSION
            ),
        )),
        Err(e) => {
            out.push(ledger_fail(OPEN, &e));
            return;
        }
    }
    let started = Instant::now();
    match copy.integrity_check() {
        Ok(()) => out.push(Check::ok(
            INTEGRITY,
            format!(
                "PRAGMA integrity_check: ok ({} ms)",
                started.elapsed().as_millis()
            ),
        )),
        Err(e) => {
            out.push(ledger_fail(INTEGRITY, &e));
            return;
        }
    }
    out.push(match backup_contents(&copy, ledger) {
        Ok(c) => c,
        Err(e) => ledger_fail(CONTENTS, &e),
    });
}

/// What the backup holds, against the ledger when it can be read.
fn backup_contents(copy: &Ledger, ledger: &Path) -> ledger::Result<Check> {
    const CONTENTS: &str = "backup: contents";
    let alarms = copy.alarm_count()?;
    let newest = copy.recent_runs(1)?.into_iter().next();
    let mut text = format!(
        "{alarms} alarms, newest run {}",
        newest
            .as_ref()
            .map(|r| format!("{} {} at {}", r.kind, r.id, r.started_at))
            .unwrap_or_else(|| "none".into())
    );
    let Ok(live) = Ledger::open(ledger) else {
        return Ok(Check::ok(CONTENTS, text));
    };
    let live_alarms = live.alarm_count()?;
    let live_newest = live.recent_runs(1)?.into_iter().next();
    let (copy_id, live_id) = (newest.map_or(0, |r| r.id), live_newest.map_or(0, |r| r.id));
    if copy_id > live_id {
        text.push_str(&format!(
            "; it is newer than the ledger {} (newest run {live_id}): was the ledger replaced?",
            ledger.display()
        ));
        return Ok(Check::warn(CONTENTS, text));
    }
    text.push_str(&format!(
        "; the ledger {} has {} more runs and {} more alarms",
        ledger.display(),
        live_id - copy_id,
        live_alarms.saturating_sub(alarms)
    ));
    Ok(Check::ok(CONTENTS, text))
}

/// When the last successful sync or backfill started, against `--max-age`
/// (exit 75 when older, or when there is none). `None` when the ledger cannot
/// be opened: the checks above already say why.
pub(super) fn freshness_check(
    path: &Path,
    max_age: Option<Duration>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Check> {
    const NAME: &str = "ledger: freshness";
    let l = Ledger::open(path).ok()?;
    let f = match l.freshness(now) {
        Ok(f) => f,
        Err(e) => return Some(ledger_fail(NAME, &e)),
    };
    let limit = max_age.map(|d| d.as_secs_f64());
    let last_run = match (&f.last_run_kind, &f.last_run_at, f.last_run_exit_code) {
        (Some(k), Some(at), Some(c)) if c != 0 => {
            format!(
                "; the last run ({k} at {at}) exited {c}: see `lrci ledger runs` and the log file"
            )
        }
        _ => String::new(),
    };
    let max_text = max_age.map(|d| crate::cli::ledger::human_age(d.as_secs_f64()));
    Some(
        match (f.last_success_at.as_deref(), f.last_success_age_seconds) {
            (Some(at), Some(age)) => {
                let ago = crate::cli::ledger::human_age(age);
                let lag = f
                    .coverage_lag_seconds
                    .map(|l| {
                        format!(
                            ", alarms listed up to {} ago",
                            crate::cli::ledger::human_age(l)
                        )
                    })
                    .unwrap_or_default();
                match (limit, max_text) {
                (Some(max), Some(mt)) if age > max => Check::fail(
                    NAME,
                    code::PARTIAL,
                    format!("the last successful sync started at {at}, {ago} ago: older than --max-age {mt}{last_run}"),
                ),
                _ => Check::ok(NAME, format!("last successful sync {at} ({ago} ago){lag}{last_run}")),
            }
            }
            _ => match max_text {
                Some(mt) => Check::fail(
                    NAME,
                    code::PARTIAL,
                    format!("no sync has finished with exit code 0 yet (--max-age {mt}){last_run}"),
                ),
                None => Check::warn(
                    NAME,
                    format!("no sync has finished with exit code 0 yet{last_run}"),
                ),
            },
        },
    )
}

pub(super) fn ledger_fail(name: &str, e: &ledger::Error) -> Check {
    Check::fail(name, e.exit_code(), chain(e))
}

pub(super) fn file_mode_check(path: &Path, meta: &std::fs::Metadata) -> Check {
    const NAME: &str = "ledger: file mode";
    match platform::mode(meta) {
        None => Check::info(NAME, "not checked on this platform"),
        Some(mode) if mode & 0o077 == 0 => Check::ok(NAME, format!("{mode:o}")),
        Some(mode) => Check::warn(
            NAME,
            format!(
                "{mode:o}: other users can read the alarm data; run chmod 600 {}",
                path.display()
            ),
        ),
    }
}

pub(super) fn dir_mode_check(dir: &Path) -> Check {
    const NAME: &str = "ledger: directory";
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => match platform::mode(&m) {
            None => Check::info(NAME, "mode not checked on this platform"),
            Some(mode) if mode & 0o022 == 0 => {
                Check::ok(NAME, format!("{} mode {mode:o}", dir.display()))
            }
            Some(mode) => Check::warn(
                NAME,
                format!(
                    "{} mode {mode:o}: other users can replace the ledger, its WAL or its lock; run chmod 700 on it",
                    dir.display()
                ),
            ),
        },
        Ok(_) => Check::fail(
            NAME,
            code::CANT_CREATE,
            format!("{} is not a directory", dir.display()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::ok(
            NAME,
            format!(
                "{} does not exist yet (the first sync creates it, mode 700)",
                dir.display()
            ),
        ),
        Err(e) => Check::warn(NAME, format!("cannot read {}: {e}", dir.display())),
    }
}

pub(super) fn wal_check(real: &Path) -> Check {
    const NAME: &str = "ledger: WAL";
    let mut wal = real.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::metadata(PathBuf::from(wal)) {
        Ok(m) if m.len() > LARGE_WAL => Check::warn(
            NAME,
            format!(
                "{} MiB: unusually large; a long-lived reader may be keeping SQLite from checkpointing",
                m.len() / (1024 * 1024)
            ),
        ),
        Ok(m) => Check::ok(NAME, format!("{} KiB", m.len().div_ceil(1024))),
        Err(_) => Check::ok(NAME, "no WAL file (the last run closed the ledger cleanly)"),
    }
}

/// Whether a run holds the lock, read from `/proc/locks` without taking it.
pub(super) fn lock_check(ledger: &Path) -> Check {
    const NAME: &str = "ledger: lock";
    let lock = RunLock::path_for(ledger);
    let meta = match std::fs::metadata(&lock) {
        Ok(m) => m,
        Err(_) => return Check::ok(NAME, "free (no run has taken it yet)"),
    };
    lock_holder_check(NAME, &lock, &meta)
}

pub(super) fn lock_holder_check(name: &str, lock: &Path, meta: &std::fs::Metadata) -> Check {
    let recorded: Option<u32> = std::fs::read_to_string(lock)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match platform::lock_holder(lock, meta, recorded) {
        platform::LockHolder::Held(pid) => Check::info(
            name,
            format!(
                "held by a running lrci (pid {pid}): a sync, backfill or replay is running now"
            ),
        ),
        platform::LockHolder::Free => Check::ok(name, "free"),
        platform::LockHolder::Unknown(why) => Check::info(name, format!("not checked: {why}")),
    }
}

pub(super) fn file_system_check(real: &Path) -> Check {
    const NAME: &str = "ledger: file system";
    match platform::file_system(real) {
        platform::FileSystem::Mounted { point, fstype } if platform::is_network_fs(&fstype) => {
            Check::warn(
                NAME,
                format!(
                    "{fstype} on {}: a network file system, where SQLite's locks and WAL are not dependable; keep the ledger on a local disk",
                    point.display()
                ),
            )
        }
        platform::FileSystem::Mounted { point, fstype } => {
            Check::ok(NAME, format!("{fstype} on {} (local)", point.display()))
        }
        platform::FileSystem::Unknown(why) => Check::info(NAME, format!("not checked: {why}")),
    }
}

pub(super) fn log_dir_check(s: &Settings, out: &mut Vec<Check>) {
    const NAME: &str = "logs: directory";
    let d = s.log_dir();
    let (dir, explicit) = (d.value, d.origin.is_given());
    let problem = |detail: String| {
        if explicit {
            Check::fail(NAME, code::CANT_CREATE, detail)
        } else {
            Check::warn(
                NAME,
                format!("{detail}; runs will log to stderr only (or set LRCI_LOG_DIR)"),
            )
        }
    };
    let check = if dir.is_dir() {
        // An unnamed temporary file: nothing is left behind.
        match tempfile::tempfile_in(&dir) {
            Ok(_) => Check::ok(NAME, format!("{} is writable", dir.display())),
            Err(e) => problem(format!("{} is not writable: {e}", dir.display())),
        }
    } else if dir.exists() {
        problem(format!("{} is not a directory", dir.display()))
    } else {
        let parent = dir.ancestors().skip(1).find(|a| a.is_dir());
        match parent {
            Some(p) if tempfile::tempfile_in(p).is_ok() => Check::ok(
                NAME,
                format!(
                    "{} does not exist yet; the first run creates it",
                    dir.display()
                ),
            ),
            Some(p) => problem(format!(
                "{} does not exist and {} is not writable",
                dir.display(),
                p.display()
            )),
            None => problem(format!("{} cannot be created", dir.display())),
        }
    };
    out.push(check);
}
