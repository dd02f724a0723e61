//! File permissions (reliability-bar.md §5 T16) checked as an unprivileged
//! user even when the tests run as root: `lrci` is started through `setpriv
//! --reuid=65534 --regid=65534 --clear-groups` on a temporary directory owned by
//! 65534, under umask 000 and 022. The ledger, its `-wal` and `-shm` and the log
//! files must be 0600, the directories lrci creates 0700; an existing 0644
//! ledger is tightened to 0600; a read-only ledger directory or file is a clear
//! error (73 or 74) with no request. Not root: the same runs as the current user.

use crate::harness::*;
use lrci::sim::{self, SimConfig};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// A temporary directory the unprivileged user owns.
fn home() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if running_as_root() {
        std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    dir
}

/// `lrci ARGS` under `umask`, as uid 65534 when root, with a clean environment.
fn lrci(umask: &str, env: &[(&str, &Path)], url: &str, args: &[&str]) -> Command {
    let bin = assert_cmd::cargo::cargo_bin("lrci");
    let mut c = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh"]);
        c
    } else {
        Command::new("sh")
    };
    c.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(bin)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LOGRHYTHM_API_URL", url)
        .env("RF_API_URL", url)
        .env("LOGRHYTHM_API_KEY", sim::DEFAULT_LR_KEY)
        .env("RF_API_KEY", sim::DEFAULT_RF_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn side(ledger: &Path, suffix: &str) -> PathBuf {
    let mut p = ledger.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Waits for `child`, recording the mode of each of `watch` whenever it exists.
fn watch_modes(mut child: Child, watch: &[PathBuf]) -> (Output, BTreeMap<PathBuf, u32>) {
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for p in watch {
            if let Ok(m) = std::fs::metadata(p) {
                let bits = m.permissions().mode() & 0o777;
                // Keep the loosest mode ever seen.
                let e = seen.entry(p.clone()).or_insert(bits);
                *e |= bits;
            }
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), seen)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn files_are_private_whatever_the_umask() {
    let s = SyncSim::start(SimConfig {
        lr_latency: Duration::from_millis(150),
        ..small_config()
    });
    for umask in ["000", "022"] {
        let dir = home();
        let data = dir.path().join("data/deeper");
        let ledger = data.join("ledger.sqlite3");
        let logs = dir.path().join("logs/lrci");
        let child = lrci(
            umask,
            &[("LRCI_LEDGER", &ledger), ("LRCI_LOG_DIR", &logs)],
            &s.url(),
            &["sync"],
        )
        .spawn()
        .unwrap();
        let watch = [ledger.clone(), side(&ledger, "-wal"), side(&ledger, "-shm")];
        let (out, seen) = watch_modes(child, &watch);
        assert_eq!(
            out.status.code(),
            Some(0),
            "umask {umask}: {}",
            text(&out.stderr)
        );
        for p in &watch {
            let m = seen
                .get(p)
                .unwrap_or_else(|| panic!("umask {umask}: {} never seen", p.display()));
            assert_eq!(*m, 0o600, "umask {umask}: {} was {m:o}", p.display());
        }
        assert_eq!(mode(&ledger), 0o600, "umask {umask}: ledger");
        for d in [
            dir.path().join("data"),
            data.clone(),
            dir.path().join("logs"),
            logs.clone(),
        ] {
            assert_eq!(mode(&d), 0o700, "umask {umask}: {} directory", d.display());
        }
        let files: Vec<PathBuf> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(mode(&files[0]), 0o600, "umask {umask}: log file");
        let lock = side(&ledger, ".lock");
        if lock.exists() {
            assert_eq!(mode(&lock) & 0o077, 0, "umask {umask}: lock file");
        }
    }
}

#[test]
fn an_existing_0644_ledger_and_log_file_are_tightened_to_0600() {
    let s = SyncSim::start(small_config());
    let dir = home();
    let ledger = dir.path().join("ledger.sqlite3");
    let logs = dir.path().join("logs");
    let env = [
        ("LRCI_LEDGER", ledger.as_path()),
        ("LRCI_LOG_DIR", logs.as_path()),
    ];
    let out = lrci("022", &env, &s.url(), &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for p in [&ledger, &log] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = lrci("022", &env, &s.url(), &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(mode(&ledger), 0o600, "ledger not tightened");
    assert_eq!(mode(&log), 0o600, "log file not tightened");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("0600"),
        "no warning about the loose ledger:\n{stderr}"
    );
}

#[test]
fn read_only_ledger_directory_or_file_is_a_clear_error() {
    let s = SyncSim::start(small_config());
    let t = Trap::new();
    let url = t.url();
    // A ledger made by a normal run, then its directory or itself made read-only.
    for case in ["directory", "file"] {
        let dir = home();
        let data = dir.path().join("data");
        let ledger = data.join("ledger.sqlite3");
        let logs = dir.path().join("logs");
        let env = [
            ("LRCI_LEDGER", ledger.as_path()),
            ("LRCI_LOG_DIR", logs.as_path()),
        ];
        let out = lrci("022", &env, &s.url(), &["sync"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let before = std::fs::read(&ledger).unwrap();
        let target = if case == "directory" { &data } else { &ledger };
        let ro = if case == "directory" { 0o500 } else { 0o400 };
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(ro)).unwrap();
        let out = lrci("022", &env, &url, &["sync"]).output().unwrap();
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stderr = text(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        assert!(
            code == 73 || code == 74,
            "read-only {case}: exit {code}\n{stderr}"
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].chars().count() <= 300, "{}", errors[0]);
        assert!(
            errors[0].contains(data.to_str().unwrap()),
            "read-only {case}: the error does not name the path: {}",
            errors[0]
        );
        assert!(
            errors[0].contains("hint:") && errors[0].contains("write access"),
            "read-only {case}: no hint: {}",
            errors[0]
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(t.connections(), 0, "read-only {case}: requests were made");
        assert_eq!(
            std::fs::read(&ledger).unwrap(),
            before,
            "read-only {case}: ledger changed"
        );
    }
}
