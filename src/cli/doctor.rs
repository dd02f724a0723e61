//! `lrci doctor`: checks the configuration, the ledger, the log directory and both
//! APIs, and prints one line per check (`ok`, `info`, `warn` or `FAIL`) saying what
//! was checked and, on failure, what to do. `--json` prints one object instead.
//!
//! Doctor only reads: it never takes the run lock (whether a run holds it is read
//! from `/proc/locks`), opens the ledger read-only, never writes it, and never
//! submits a detection (Collective Insights is probed with a one-result search).
//! `--offline` makes no request at all. Secrets are never shown: a key is only
//! said to be present and well-formed.
//!
//! Exit code: 0 when no check failed; else the code of the most important failure
//! class among the failed checks, in this order: 78 configuration (and an
//! untrusted TLS certificate), 66 input file, 65 ledger data (corrupt, newer,
//! foreign), 74 ledger I/O, 73 cannot create the ledger or logs, 77 credentials
//! rejected, 69 unreachable.

use crate::cli::args::{Cli, DoctorArgs};
use crate::cli::ledger::escape;
use crate::config::{self, KeySource, Settings, LR_KEY_VAR, RF_KEY_VAR};
use crate::engine::failure;
use crate::error::{code, Fatal};
use crate::http::HttpOptions;
use crate::ledger::{self, migrate, Ledger, RunLock};
use crate::{ci, logrhythm};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use url::Url;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Checked and fine.
    Ok,
    /// Worth knowing, not a problem (a run holds the lock; a check was skipped).
    Info,
    /// Works, but should be fixed.
    Warn,
    /// Will not work; the detail says what to do.
    Fail,
}

impl Status {
    /// The word printed for people.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One check: what was checked, how it went, and the detail (never a secret).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// The exit code this failure stands for (0 unless `status` is `Fail`).
    #[serde(skip)]
    pub code: u8,
}

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            status,
            detail: detail.into(),
            code: code::OK,
        }
    }

    fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Ok, detail)
    }

    fn info(name: &str, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Info, detail)
    }

    fn warn(name: &str, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Warn, detail)
    }

    fn fail(name: &str, code: u8, detail: impl Into<String>) -> Check {
        Check {
            code,
            ..Check::new(name, Status::Fail, detail)
        }
    }

    fn from_fatal(name: &str, f: &Fatal) -> Check {
        Check::fail(name, f.code, f.to_string())
    }
}

/// The importance of each failure class for the exit code, most important first.
const EXIT_PRIORITY: [u8; 7] = [
    code::CONFIG,
    code::NO_INPUT,
    code::DATA,
    code::IO,
    code::CANT_CREATE,
    code::NO_PERM,
    code::UNAVAILABLE,
];

/// 0 when nothing failed; else the code of the most important failed class
/// ([`EXIT_PRIORITY`]; a code not listed there ranks last).
pub fn exit_code(checks: &[Check]) -> u8 {
    checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.code)
        .min_by_key(|code| {
            EXIT_PRIORITY
                .iter()
                .position(|p| p == code)
                .unwrap_or(EXIT_PRIORITY.len())
        })
        .unwrap_or(code::OK)
}

/// `lrci doctor`: runs every check, prints them, returns the exit code.
pub async fn run(cli: &Cli, args: &DoctorArgs) -> Result<u8, Fatal> {
    let checks = checks(crate::cli::settings::resolve(cli), args.offline).await;
    let exit = exit_code(&checks);
    let text = if args.sync.mode.json {
        let doc = serde_json::json!({ "checks": checks, "exit_code": exit });
        format!("{doc}\n")
    } else {
        human(&checks, exit)
    };
    let mut out = std::io::stdout().lock();
    super::output::pipe_exit(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
        .map(|()| exit)
}

fn human(checks: &[Check], exit: u8) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut t = String::new();
    for c in checks {
        t.push_str(&format!(
            "{:<4}  {:<width$}  {}\n",
            c.status.label(),
            escape(&c.name),
            escape(&c.detail)
        ));
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    t.push_str(&format!(
        "{} ok, {} info, {} warn, {} FAIL; exit code {exit}\n",
        count(Status::Ok),
        count(Status::Info),
        count(Status::Warn),
        count(Status::Fail)
    ));
    t
}

/// Runs every check in order: configuration (through the one settings model),
/// ledger, log directory, LogRhythm, Collective Insights.
pub async fn checks(settings: Result<Settings, Fatal>, offline: bool) -> Vec<Check> {
    let mut out = Vec::new();
    let s = match settings {
        Ok(s) => s,
        Err(f) => {
            out.push(Check::from_fatal("config", &f));
            out.push(Check::warn(
                "ledger",
                "not checked: fix the configuration above first",
            ));
            return out;
        }
    };
    let apis = config_checks(&s, &mut out);
    ledger_checks(&s.ledger().value, &mut out);
    log_dir_check(&s, &mut out);
    if offline {
        out.push(Check::info("logrhythm", "not checked (--offline)"));
        out.push(Check::info(
            "collective insights",
            "not checked (--offline)",
        ));
        return out;
    }
    let opts = HttpOptions {
        // One attempt: doctor reports what happens; a run would retry.
        max_retries: 0,
        ..s.http().options(None)
    };
    out.push(match apis.lr {
        Some(lr) => lr_check(lr, opts.clone()).await,
        None => Check::warn(
            "logrhythm",
            "not checked: fix the LogRhythm settings above first",
        ),
    });
    out.push(match apis.rf {
        Some((url, key)) => ci_check(url, key, opts).await,
        None => Check::warn(
            "collective insights",
            "not checked: fix the Recorded Future settings above first",
        ),
    });
    out
}

// ---- configuration -----------------------------------------------------------

/// What the network checks need, when the configuration provides it.
struct Apis {
    lr: Option<LrSettings>,
    rf: Option<(Url, SecretString)>,
}

struct LrSettings {
    url: Url,
    key: SecretString,
    ca_pem: Option<Vec<u8>>,
    insecure: bool,
}

fn url_detail(url: &Url, secret_name: &str) -> (Status, String) {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    match url.scheme() {
        "https" => (Status::Ok, format!("{shown}")),
        _ if config::check::is_loopback(url) => {
            (Status::Ok, format!("{shown} (plain http on loopback)"))
        }
        _ => (
            Status::Warn,
            format!("{shown}: plain http, so {secret_name} travels in clear; use the https port"),
        ),
    }
}

/// One check per URL, key, CA bundle and the filters, each from the settings'
/// own validation (no second copy of the rules here).
fn config_checks(s: &Settings, out: &mut Vec<Check>) -> Apis {
    let lr = lr_config_checks(s, out);
    let rf = rf_config_checks(s, out);
    const FILTERS: &str = "config: filter files";
    match s.filters() {
        Ok(f) => out.push(Check::ok(FILTERS, filters_detail(s, f.exclude_rules.len()))),
        Err(f) => out.push(Check::from_fatal(FILTERS, &f)),
    }
    Apis { lr, rf }
}

fn url_check(
    name: &str,
    url: Result<config::Value<Url>, Fatal>,
    var: &str,
    out: &mut Vec<Check>,
) -> Option<Url> {
    match url {
        Ok(u) => {
            let (status, detail) = url_detail(&u.value, var);
            out.push(Check::new(name, status, detail));
            Some(u.value)
        }
        Err(f) => {
            out.push(Check::from_fatal(name, &f));
            None
        }
    }
}

fn lr_config_checks(s: &Settings, out: &mut Vec<Check>) -> Option<LrSettings> {
    let url = url_check("config: LOGRHYTHM_API_URL", s.lr_url(), LR_KEY_VAR, out);
    let key = key_check("config: LOGRHYTHM_API_KEY", s, LR_KEY_VAR, out);
    const LR_TLS: &str = "config: LogRhythm TLS";
    let insecure = s.flag("lr_insecure");
    let ca_pem = match s.ca_pem() {
        Ok(pem) => {
            if !insecure {
                let detail = match s.path("lr_ca_cert") {
                    Some(p) => format!(
                        "{} {}: a readable PEM CA bundle",
                        p.label(),
                        p.value.display()
                    ),
                    None => "the platform's trusted roots (no --lr-ca-cert)".to_string(),
                };
                out.push(Check::ok(LR_TLS, detail));
            }
            Some(pem)
        }
        Err(f) => {
            out.push(Check::from_fatal(LR_TLS, &f));
            None
        }
    };
    if insecure {
        out.push(Check::warn(
            LR_TLS,
            "--lr-insecure: LogRhythm's certificate is NOT verified; pass its CA with --lr-ca-cert instead",
        ));
    }
    match (url, key, ca_pem) {
        (Some(url), Some(key), Some(ca_pem)) => Some(LrSettings {
            url,
            key,
            ca_pem,
            insecure,
        }),
        _ => None,
    }
}

fn rf_config_checks(s: &Settings, out: &mut Vec<Check>) -> Option<(Url, SecretString)> {
    let url = url_check("config: RF_API_URL", s.rf_url(), RF_KEY_VAR, out);
    let key = key_check("config: RF_API_KEY", s, RF_KEY_VAR, out);
    if let Some(k) = &key {
        if !looks_like_rf_token(k.expose_secret()) {
            if let Some(last) = out.last_mut() {
                last.status = Status::Warn;
                last.detail.push_str(
                    "; but it is not 32 lowercase letters and digits, the form of Recorded Future API tokens (Recorded Future's own SDK refuses other tokens)",
                );
            }
        }
    }
    url.zip(key)
}

fn key_check(
    name: &str,
    s: &Settings,
    var: &'static str,
    out: &mut Vec<Check>,
) -> Option<SecretString> {
    match s.key(var) {
        Ok(key) => {
            let source = match s.key_source(var) {
                KeySource::File(f) => format!("{} {}", f.label(), f.value.display()),
                _ => var.to_string(),
            };
            out.push(Check::ok(
                name,
                format!("present and well-formed (from {source}; the value is never shown)"),
            ));
            Some(key)
        }
        Err(f) => {
            out.push(Check::from_fatal(name, &f));
            None
        }
    }
}

/// The form psengine insists on: `^[a-z0-9]{32}$`.
fn looks_like_rf_token(t: &str) -> bool {
    t.len() == 32
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn filters_detail(s: &Settings, rules: usize) -> String {
    let mut parts = Vec::new();
    for (name, extra) in [
        ("exclude_rules_file", format!(" ({rules} rules)")),
        ("internal_domains_file", String::new()),
        ("exclude_indicators_file", String::new()),
    ] {
        if let Some(p) = s.path(name) {
            parts.push(format!("{} {}{extra}", p.label(), p.value.display()));
        }
    }
    if parts.is_empty() {
        "none given".to_string()
    } else {
        format!("{}: readable and valid", parts.join(", "))
    }
}

// ---- ledger --------------------------------------------------------------------

/// A WAL file larger than this is worth a warning.
const LARGE_WAL: u64 = 256 * 1024 * 1024;

/// Checks the ledger; returns its path.
fn ledger_checks(path: &Path, out: &mut Vec<Check>) -> Option<PathBuf> {
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
    let mut after = vec![file_mode_check(&real, &meta)];
    #[cfg(target_os = "linux")]
    after.push(file_system_check(&real));
    after.push(lock_check(&path));
    after.push(wal_check(&real));

    open_checks(&path, out);
    out.extend(after);
    Some(path)
}

/// Opens the ledger read-only: schema version and `PRAGMA integrity_check`.
fn open_checks(path: &Path, out: &mut Vec<Check>) {
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
        }
        Err(ledger::Error::Empty { .. }) => out.push(Check::warn(
            OPEN,
            format!("{} is empty: no run has written it yet", path.display()),
        )),
        Err(e) => out.push(ledger_fail(OPEN, &e)),
    }
}

fn ledger_fail(name: &str, e: &ledger::Error) -> Check {
    Check::fail(name, e.exit_code(), chain(e))
}

#[cfg(unix)]
fn file_mode_check(path: &Path, meta: &std::fs::Metadata) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        Check::ok("ledger: file mode", format!("{mode:o}"))
    } else {
        Check::warn(
            "ledger: file mode",
            format!(
                "{mode:o}: other users can read the alarm data; run chmod 600 {}",
                path.display()
            ),
        )
    }
}

#[cfg(not(unix))]
fn file_mode_check(_path: &Path, _meta: &std::fs::Metadata) -> Check {
    Check::info("ledger: file mode", "not checked on this platform")
}

#[cfg(unix)]
fn dir_mode_check(dir: &Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    const NAME: &str = "ledger: directory";
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o022 == 0 {
                Check::ok(NAME, format!("{} mode {mode:o}", dir.display()))
            } else {
                Check::warn(
                    NAME,
                    format!(
                        "{} mode {mode:o}: other users can replace the ledger, its WAL or its lock; run chmod 700 on it",
                        dir.display()
                    ),
                )
            }
        }
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

#[cfg(not(unix))]
fn dir_mode_check(_dir: &Path) -> Check {
    Check::info("ledger: directory", "mode not checked on this platform")
}

fn wal_check(real: &Path) -> Check {
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
fn lock_check(ledger: &Path) -> Check {
    const NAME: &str = "ledger: lock";
    let lock = RunLock::path_for(ledger);
    let meta = match std::fs::metadata(&lock) {
        Ok(m) => m,
        Err(_) => return Check::ok(NAME, "free (no run has taken it yet)"),
    };
    lock_holder_check(NAME, &lock, &meta)
}

#[cfg(target_os = "linux")]
fn lock_holder_check(name: &str, lock: &Path, meta: &std::fs::Metadata) -> Check {
    use std::os::unix::fs::MetadataExt;
    let locks = match std::fs::read_to_string("/proc/locks") {
        Ok(s) => s,
        Err(e) => return Check::info(name, format!("not checked: cannot read /proc/locks: {e}")),
    };
    let recorded: Option<u32> = std::fs::read_to_string(lock)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match lock_holder(&locks, meta.dev(), meta.ino(), recorded) {
        Some(pid) => Check::info(
            name,
            format!(
                "held by a running lrci (pid {pid}): a sync, backfill or replay is running now"
            ),
        ),
        None => Check::ok(name, "free"),
    }
}

#[cfg(not(target_os = "linux"))]
fn lock_holder_check(name: &str, _lock: &Path, _meta: &std::fs::Metadata) -> Check {
    Check::info(name, "not checked on this platform")
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// glibc's `major()`/`minor()` of a Linux `dev_t`.
fn dev_major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major, minor)
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// The pid holding a lock on the file (`dev`, `ino`) by `/proc/locks` text, e.g.
/// `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF`. Waiters (`->`) are not
/// holders. On file systems whose lock entries carry another device number than
/// `stat` (overlay), an entry with the inode and the pid written in the lock file
/// also counts.
fn lock_holder(locks: &str, dev: u64, ino: u64, recorded: Option<u32>) -> Option<u32> {
    let (major, minor) = dev_major_minor(dev);
    let mut inode_only = None;
    for line in locks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) == Some(&"->") {
            continue;
        }
        let (Some(pid), Some(id)) = (f.get(4), f.get(5)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let mut parts = id.split(':');
        let (Some(ma), Some(mi), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if i.parse::<u64>().ok() != Some(ino) {
            continue;
        }
        let dev_matches = u64::from_str_radix(ma, 16).ok() == Some(major)
            && u64::from_str_radix(mi, 16).ok() == Some(minor);
        if dev_matches {
            return Some(pid);
        }
        if recorded == Some(pid) {
            inode_only = Some(pid);
        }
    }
    inode_only
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// File system types on which SQLite's locking and WAL are not dependable.
fn is_network_fs(fstype: &str) -> bool {
    fstype.starts_with("nfs")
        || fstype.starts_with("smb")
        || matches!(fstype, "cifs" | "ceph" | "glusterfs" | "fuse.sshfs" | "9p")
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// `/proc/mounts` octal escapes (`\040` for a space) undone.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b.get(i) == Some(&b'\\') && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.extend(b.get(i).copied());
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// The mount point and file system type `path` lives on, by `/proc/mounts` text:
/// the longest mount point containing it (the last one listed when stacked).
fn mount_of(mounts: &str, path: &Path) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(point), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let point = unescape_mount(point);
        if !path.starts_with(&point) {
            continue;
        }
        if best.as_ref().is_none_or(|(p, _)| point.len() >= p.len()) {
            best = Some((point, fstype.to_string()));
        }
    }
    best
}

#[cfg(target_os = "linux")]
fn file_system_check(real: &Path) -> Check {
    const NAME: &str = "ledger: file system";
    let mounts = match std::fs::read_to_string("/proc/mounts") {
        Ok(m) => m,
        Err(e) => return Check::info(NAME, format!("not checked: cannot read /proc/mounts: {e}")),
    };
    match mount_of(&mounts, real) {
        Some((point, fstype)) if is_network_fs(&fstype) => Check::warn(
            NAME,
            format!(
                "{fstype} on {point}: a network file system, where SQLite's locks and WAL are not dependable; keep the ledger on a local disk"
            ),
        ),
        Some((point, fstype)) => Check::ok(NAME, format!("{fstype} on {point} (local)")),
        None => Check::info(NAME, "not checked: no mount point found in /proc/mounts"),
    }
}

// ---- log directory -------------------------------------------------------------

fn log_dir_check(s: &Settings, out: &mut Vec<Check>) {
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

// ---- the two APIs --------------------------------------------------------------

/// Slower than this is worth a warning (a run makes thousands of requests).
const SLOW: Duration = Duration::from_secs(5);

fn latency(name: &str, took: Duration, detail: String) -> Check {
    let ms = took.as_millis();
    if took > SLOW {
        Check::warn(
            name,
            format!("{detail}; slow: answered in {ms} ms (consider a larger --timeout)"),
        )
    } else {
        Check::ok(name, format!("{detail}; answered in {ms} ms"))
    }
}

async fn lr_check(lr: LrSettings, opts: HttpOptions) -> Check {
    const NAME: &str = "logrhythm";
    let tls = match (lr.url.scheme(), lr.insecure) {
        ("https", false) => "TLS trusted",
        ("https", true) => "TLS NOT verified (--lr-insecure)",
        _ => "plain http",
    };
    let opts = HttpOptions {
        ca_cert_pem: lr.ca_pem,
        insecure: lr.insecure,
        ..opts
    };
    let client = match logrhythm::Client::new(lr.url, lr.key, opts) {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, code::CONFIG, chain(&e)),
    };
    let base = client.base().to_string();
    let started = Instant::now();
    match client.probe().await {
        Ok(_) => latency(
            NAME,
            started.elapsed(),
            format!("{base} reachable, {tls}, LOGRHYTHM_API_KEY accepted (alarm list read)"),
        ),
        Err(e) if failure::of_lr(&e) == failure::Class::Auth => {
            Check::fail(NAME, code::NO_PERM, e.to_string())
        }
        Err(e) => match e.tls_advice() {
            Some(advice) => Check::fail(NAME, code::CONFIG, advice),
            None => {
                let (code, hint) = lr_failure_class(&e);
                let what = match &e {
                    logrhythm::Error::Http(h) => describe_http(h),
                    other => chain(other),
                };
                Check::fail(NAME, code, format!("{base}: {what}; {hint}"))
            }
        },
    }
}

/// The exit code and advice for a LogRhythm probe failure other than auth or TLS.
fn lr_failure_class(e: &logrhythm::Error) -> (u8, &'static str) {
    const WRONG_URL: &str = "check that LOGRHYTHM_API_URL is the API gateway's address and port (e.g. https://platform-manager:8501)";
    match e {
        logrhythm::Error::Http(h) => match h.as_ref() {
            crate::http::Error::Redirect { .. } => (code::CONFIG, WRONG_URL),
            crate::http::Error::Status { status: 404, .. } => (code::CONFIG, WRONG_URL),
            _ => (
                code::UNAVAILABLE,
                "check LOGRHYTHM_API_URL, the network path to it and that the API gateway service runs",
            ),
        },
        logrhythm::Error::Parse { .. } | logrhythm::Error::Shape { .. } => (
            code::CONFIG,
            "the answer is not the LogRhythm Alarm API's: check LOGRHYTHM_API_URL",
        ),
        _ => (
            code::UNAVAILABLE,
            "LogRhythm answered but could not list alarms; try again, then check the Alarm API service",
        ),
    }
}

async fn ci_check(url: Url, key: SecretString, opts: HttpOptions) -> Check {
    const NAME: &str = "collective insights";
    let mut origin = url.clone();
    origin.set_query(None);
    origin.set_fragment(None);
    let client = match ci::Client::new(url, key, opts) {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, code::CONFIG, chain(&e)),
    };
    let started = Instant::now();
    match client.probe().await {
        Ok(()) => latency(
            NAME,
            started.elapsed(),
            format!(
                "{origin} reachable, RF_API_KEY accepted (a one-result search; nothing submitted)"
            ),
        ),
        Err(e) if failure::of_ci(&e) == failure::Class::Auth => {
            Check::fail(NAME, code::NO_PERM, e.to_string())
        }
        Err(e) => {
            let what = match &e {
                ci::Error::Http(h) => format!("{origin}: {}", describe_http(h)),
                other => chain(other),
            };
            if failure::of_ci(&e) == failure::Class::Tls {
                return Check::fail(
                    NAME,
                    code::CONFIG,
                    format!(
                        "{what}; check RF_API_URL and any proxy that intercepts TLS on the way"
                    ),
                );
            }
            let wrong_url = matches!(e.status(), Some(404 | 405 | 300..=399))
                || matches!(e, ci::Error::BadResponse { .. });
            if wrong_url {
                Check::fail(
                    NAME,
                    code::CONFIG,
                    format!(
                        "{what}; check that RF_API_URL is the Recorded Future API (https://api.recordedfuture.com)"
                    ),
                )
            } else {
                Check::fail(
                    NAME,
                    code::UNAVAILABLE,
                    format!(
                        "{what}; check RF_API_URL, outbound HTTPS from this machine and any proxy"
                    ),
                )
            }
        }
    }
}

/// An HTTP failure in a few words, without the request's path and query (the
/// check names the API already), ending with the root cause.
fn describe_http(h: &crate::http::Error) -> String {
    use crate::http::Error as H;
    match h {
        H::Connect { source, .. } => format!("could not connect: {}", root_cause(source)),
        H::Timeout { .. } => "timed out (see --connect-timeout and --timeout)".to_string(),
        H::Request { source, .. } => format!("request failed: {}", root_cause(source)),
        H::Body { source, .. } => {
            format!("could not read the response body: {}", root_cause(source))
        }
        H::Tls { failure, .. } => format!("TLS handshake failed: {failure}"),
        H::Status {
            status, snippet, ..
        } => format!("HTTP {status}: {snippet}"),
        H::Redirect {
            status,
            location_host,
            ..
        } => format!("HTTP {status} redirect to {location_host} (not followed)"),
        H::RetryAfterTooLong {
            status,
            retry_after,
            ..
        } => format!(
            "HTTP {status}, asked to wait {} s before trying again",
            retry_after.as_secs()
        ),
        other => chain(other),
    }
}

/// The innermost cause of an error.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

use super::output::error_chain as chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_takes_the_most_important_class() {
        let fail = |c| Check::fail("x", c, "d");
        assert_eq!(exit_code(&[Check::ok("a", ""), Check::warn("b", "")]), 0);
        assert_eq!(exit_code(&[fail(69), fail(77)]), 77);
        assert_eq!(exit_code(&[fail(77), fail(65)]), 65);
        assert_eq!(exit_code(&[fail(65), fail(78), fail(69)]), 78);
        assert_eq!(exit_code(&[Check::info("i", ""), fail(69)]), 69);
    }

    #[test]
    fn lock_holder_reads_proc_locks() {
        // dev 0xfd01 = major 0xfd, minor 0x01.
        let locks = "1: POSIX  ADVISORY  WRITE 77 fd:01:999 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1234567 0 EOF\n";
        assert_eq!(lock_holder(locks, 0xfd01, 1_234_567, None), Some(4242));
        assert_eq!(lock_holder(locks, 0xfd01, 7, None), None);
        // Another device: only with the recorded pid.
        assert_eq!(lock_holder(locks, 0x801, 1_234_567, None), None);
        assert_eq!(lock_holder(locks, 0x801, 1_234_567, Some(4242)), Some(4242));
        // A waiter is never the holder.
        let waiting = "2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1234567 0 EOF\n";
        assert_eq!(lock_holder(waiting, 0xfd01, 1_234_567, Some(5151)), None);
        assert_eq!(lock_holder("garbage\n\n1:\n", 0xfd01, 1, None), None);
    }

    #[test]
    fn dev_numbers_split_like_glibc() {
        assert_eq!(dev_major_minor(0xfd01), (0xfd, 0x01));
        assert_eq!(dev_major_minor(0x0803), (8, 3));
        // A large minor spills into the high bits.
        assert_eq!(dev_major_minor(0x0010_0103), (1, 0x103));
    }

    #[test]
    fn mounts_find_the_longest_containing_point() {
        let mounts = "/dev/sda1 / ext4 rw 0 0\n\
                      server:/export /srv/lrci nfs4 rw 0 0\n\
                      //nas/share /mnt/my\\040share cifs rw 0 0\n\
                      tmpfs /srv/lrci-other tmpfs rw 0 0\n";
        let m = |p: &str| mount_of(mounts, Path::new(p)).unwrap();
        assert_eq!(
            m("/srv/lrci/ledger.sqlite3"),
            ("/srv/lrci".into(), "nfs4".into())
        );
        assert_eq!(m("/srv/lrci-x/l"), ("/".into(), "ext4".into()));
        assert_eq!(
            m("/mnt/my share/l"),
            ("/mnt/my share".into(), "cifs".into())
        );
        assert!(is_network_fs("nfs4") && is_network_fs("cifs") && is_network_fs("smb3"));
        assert!(!is_network_fs("ext4") && !is_network_fs("tmpfs") && !is_network_fs("overlay"));
        assert_eq!(unescape_mount("a\\040b\\134c\\"), "a b\\c\\");
    }

    #[test]
    fn rf_token_form() {
        assert!(looks_like_rf_token("0123456789abcdef0123456789abcdef"));
        assert!(!looks_like_rf_token("0123456789ABCDEF0123456789abcdef"));
        assert!(!looks_like_rf_token("short"));
    }

    #[test]
    fn chain_skips_transparent_repeats() {
        let inner = std::io::Error::other("disk on fire");
        let e = ledger::Error::CreateDir {
            path: "/x".into(),
            source: inner,
        };
        let text = chain(&e);
        assert_eq!(text.matches("disk on fire").count(), 1, "{text}");
    }
}
