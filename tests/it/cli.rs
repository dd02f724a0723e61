//! End-to-end tests of the `lrci` binary: exit codes, refusal of bad flags,
//! environment, files and ledgers before any request, secrets never shown, the log
//! file, the run lock, `sim` and `demo` (DESIGN.md §2, reliability-bar.md §6).
//!
//! Every refusal is checked against the "clear error" rule: the documented exit
//! code, exactly one `error:` line on stderr naming the flag, variable or path, no
//! panic or Debug dump, zero connections to a loopback trap listener standing in
//! for both APIs, and no ledger file created (or the existing one byte-for-byte
//! unchanged).

use crate::harness::*;
use assert_cmd::Command;
use lrci::sim::{self, SimConfig};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// How long any one `lrci` run may take before the test kills it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// One test's world: a temporary directory for the ledger, logs and home, and a
/// trap listener that both API URLs point at by default.
struct Case {
    dir: tempfile::TempDir,
    trap: Trap,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Case {
            dir,
            trap: Trap::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The ledger `LRCI_LEDGER` names (its directory does not exist yet).
    fn ledger(&self) -> PathBuf {
        self.path("data/ledger.sqlite3")
    }

    fn log_dir(&self) -> PathBuf {
        self.path("logs")
    }

    /// `lrci` with a clean environment: valid keys, both URLs at the trap, the
    /// ledger and the log directory inside the temporary directory.
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("lrci").unwrap();
        c.env_clear().envs(self.env()).timeout(RUN_TIMEOUT);
        c
    }

    /// The environment [`Case::cmd`] starts from.
    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("HOME", self.path("home").into()),
            ("TMPDIR", self.path("tmp").into()),
            ("LOGRHYTHM_API_URL", self.trap.url().into()),
            ("RF_API_URL", self.trap.url().into()),
            ("LOGRHYTHM_API_KEY", sim::DEFAULT_LR_KEY.into()),
            ("RF_API_KEY", sim::DEFAULT_RF_KEY.into()),
            ("LRCI_LEDGER", self.ledger().into()),
            ("LRCI_LOG_DIR", self.log_dir().into()),
        ]
    }

    /// Like [`Case::cmd`] with both URLs and keys set for a running simulator.
    fn cmd_for(&self, s: &Sim) -> Command {
        let mut c = self.cmd();
        c.env("LOGRHYTHM_API_URL", s.url())
            .env("RF_API_URL", s.url())
            .env("LOGRHYTHM_API_KEY", &s.lr_key)
            .env("RF_API_KEY", &s.rf_key);
        c
    }

    /// A sync refused before any request: nothing connected, no ledger created.
    fn assert_untouched(&self) {
        assert_eq!(self.trap.connections(), 0, "a refused run made requests");
        assert!(!self.ledger().exists(), "a refused run created the ledger");
    }

    /// Writes a file with the given mode.
    fn file(&self, rel: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

/// A small simulator (see [`small_config`]) with the keys a run is given.
struct Sim {
    sim: SyncSim,
    lr_key: String,
    rf_key: String,
}

impl Sim {
    /// A small simulator with these keys: 3 hours of 4 alarms each, ending now.
    fn start_with_keys(lr_key: &str, rf_key: &str) -> Sim {
        let sim = SyncSim::start(SimConfig {
            lr_key: lr_key.to_string(),
            rf_key: rf_key.to_string(),
            ..small_config()
        });
        Sim {
            sim,
            lr_key: lr_key.to_string(),
            rf_key: rf_key.to_string(),
        }
    }

    fn start() -> Sim {
        Sim::start_with_keys(sim::DEFAULT_LR_KEY, sim::DEFAULT_RF_KEY)
    }
}

impl std::ops::Deref for Sim {
    type Target = SyncSim;
    fn deref(&self) -> &SyncSim {
        &self.sim
    }
}

/// A run that ended well: exit 0, no error line, no panic.
fn assert_ok(out: &Output) {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{stderr}\nstdout:\n{}",
        text(&out.stdout)
    );
    assert!(!stderr.lines().any(|l| l.starts_with("error:")), "{stderr}");
    assert!(!stderr.contains("panicked at"), "{stderr}");
}

/// The trap is what "zero requests" rests on: it must see a connection.
#[test]
fn trap_counts_connections() {
    let trap = Trap::new();
    assert_eq!(trap.connections(), 0);
    let _a = std::net::TcpStream::connect(("127.0.0.1", trap.port())).unwrap();
    let _b = std::net::TcpStream::connect(("127.0.0.1", trap.port())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = 0;
    while seen < 2 && Instant::now() < deadline {
        seen += trap.connections();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(seen, 2);
}

// ---------------------------------------------------------------------------
// Usage (exit 0 and 2)
// ---------------------------------------------------------------------------

#[test]
fn help_and_version_exit_0() {
    let case = Case::new();
    for args in [&["--help"][..], &["--version"], &["sync", "--help"]] {
        let out = case.cmd().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert!(!stdout.is_empty(), "{args:?} printed nothing");
        if args == ["--version"] {
            assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
        } else {
            assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
        }
    }
    let out = case.cmd().args(["sync", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    assert!(help.contains("--batch-size") && help.contains("LOGRHYTHM_API_URL"));
    case.assert_untouched();
}

#[test]
fn unknown_subcommand_or_flag_exits_2() {
    let case = Case::new();
    for (args, name) in [
        (&["frobnicate"][..], "frobnicate"),
        (&["--frobnicate"], "--frobnicate"),
        (&["sync", "--frobnicate"], "--frobnicate"),
    ] {
        let out = case.cmd().args(args).output().unwrap();
        let line = assert_clear_error(&out, 2, &[name], &[]);
        assert!(
            text(&out.stderr).contains("Usage:") || text(&out.stderr).contains("--help"),
            "{line}"
        );
    }
    case.assert_untouched();
}

#[test]
fn bad_batch_size_exits_2_naming_the_flag() {
    let case = Case::new();
    for v in ["0", "-1", "abc", "1e9", "99999999999999999999"] {
        let out = case
            .cmd()
            .args(["sync", "--batch-size", v])
            .output()
            .unwrap();
        assert_clear_error(&out, 2, &["--batch-size", v], &[]);
        // The form without a subcommand (lrci alone is sync) too.
        let out = case.cmd().args(["--batch-size", v]).output().unwrap();
        assert_clear_error(&out, 2, &["--batch-size"], &[]);
    }
    // Out of range names the allowed range.
    let out = case
        .cmd()
        .args(["sync", "--batch-size", "0"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["1..=10000"], &[]);
    case.assert_untouched();
}

#[test]
fn bad_min_rbp_and_timeout_exit_2() {
    let case = Case::new();
    for (args, name) in [
        (&["sync", "--min-rbp", "101"][..], "--min-rbp"),
        (&["-rbp", "101"], "--min-rbp"),
        (&["sync", "--timeout", "0"], "--timeout"),
        (&["sync", "--timeout", "-5"], "--timeout"),
        (&["sync", "--timeout", "5x"], "--timeout"),
    ] {
        let out = case.cmd().args(args).output().unwrap();
        assert_clear_error(&out, 2, &[name], &[]);
    }
    case.assert_untouched();
}

/// Reliability bar section 6 row 3: a run deadline shorter than one request.
#[test]
fn max_runtime_shorter_than_the_timeout_exits_2() {
    let case = Case::new();
    let out = case
        .cmd()
        .args(["sync", "--max-runtime", "5", "--timeout", "30"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["--max-runtime", "--timeout"], &[]);
    case.assert_untouched();
}

/// Reliability bar section 6 row 23: replaying an alarm the ledger never listed.
#[test]
fn replay_of_an_unknown_alarm_exits_2_naming_it() {
    let case = Case::new();
    lrci::ledger::Writer::open(&case.ledger()).unwrap();
    let before = std::fs::read(case.ledger()).unwrap();
    let out = case
        .cmd()
        .args(["replay", "--alarm", "987654321"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["--alarm", "987654321"], &[]);
    assert_eq!(std::fs::read(case.ledger()).unwrap(), before);
    // Nothing to replay is not an error.
    let out = case.cmd().arg("replay").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 detections to replay"));
}

#[test]
fn bad_backfill_window_exits_2_naming_the_flag() {
    let case = Case::new();
    let out = case
        .cmd()
        .args(["backfill", "--from", "2021-13-45", "--to", "2021-12-31"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["--from", "2021-13-45"], &[]);
    let out = case
        .cmd()
        .args(["backfill", "--from", "2021-01-01", "--to", "yesterday"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["--to"], &[]);
    let out = case.cmd().arg("backfill").output().unwrap();
    assert_clear_error(&out, 2, &["--days", "--from"], &[]);
    // clap puts the missing flag on the line after `error:`.
    let out = case
        .cmd()
        .args(["backfill", "--from", "2021-01-01"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["required"], &[]);
    assert!(
        text(&out.stderr).contains("--to <TIME>"),
        "{}",
        text(&out.stderr)
    );
    case.assert_untouched();
}

// ---------------------------------------------------------------------------
// Environment (exit 78)
// ---------------------------------------------------------------------------

#[test]
fn missing_or_bad_keys_exit_78_naming_the_variable_never_the_value() {
    for var in ["LOGRHYTHM_API_KEY", "RF_API_KEY"] {
        let case = Case::new();
        let out = case.cmd().env_remove(var).output().unwrap();
        assert_clear_error(&out, 78, &[var], &[]);
        for (value, shown) in [
            ("", None),
            ("   \t ", None),
            ("canaryAAAA\r\ncanaryBBBB", Some("canary")),
            ("canaryCCCC\ncanaryDDDD", Some("canary")),
            ("canaryEEEE\rX", Some("canary")),
        ] {
            let out = case.cmd().env(var, value).output().unwrap();
            let hidden: Vec<&str> = shown.into_iter().collect();
            assert_clear_error(&out, 78, &[var], &hidden);
        }
        case.assert_untouched();
    }
}

#[test]
fn key_with_trailing_newline_is_trimmed_and_used() {
    let case = Case::new();
    let s = Sim::start();
    let out = case
        .cmd_for(&s)
        .env("LOGRHYTHM_API_KEY", format!("{}\n", s.lr_key))
        .env("RF_API_KEY", format!("{}\r\n", s.rf_key))
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(!s.received().is_empty(), "nothing reached the simulated CI");
}

#[test]
fn bad_logrhythm_url_exits_78() {
    let case = Case::new();
    let port = case.trap.port();
    let out = case.cmd().env_remove("LOGRHYTHM_API_URL").output().unwrap();
    assert_clear_error(&out, 78, &["LOGRHYTHM_API_URL"], &[]);
    for url in [
        format!("127.0.0.1:{port}"),
        "platform-manager".to_string(),
        format!("ftp://127.0.0.1:{port}"),
        "http://127.0.0.1:99999".to_string(),
        format!("http://admin:hunter2pw@127.0.0.1:{port}"),
        format!("http://admin@127.0.0.1:{port}"),
    ] {
        let out = case.cmd().env("LOGRHYTHM_API_URL", &url).output().unwrap();
        assert_clear_error(&out, 78, &["LOGRHYTHM_API_URL"], &["hunter2pw"]);
        // The same through the flag.
        let out = case
            .cmd()
            .env_remove("LOGRHYTHM_API_URL")
            .args(["sync", "--lr-url", &url])
            .output()
            .unwrap();
        assert_clear_error(&out, 78, &["--lr-url"], &["hunter2pw"]);
    }
    case.assert_untouched();
}

#[test]
fn plain_http_rf_url_off_loopback_exits_78() {
    let case = Case::new();
    for url in [
        "http://api.recordedfuture.com",
        "http://192.0.2.10:8080",
        "http://[2001:db8::1]/",
    ] {
        let out = case.cmd().env("RF_API_URL", url).output().unwrap();
        assert_clear_error(&out, 78, &["RF_API_URL"], &[]);
    }
    case.assert_untouched();
}

// ---------------------------------------------------------------------------
// Key files
// ---------------------------------------------------------------------------

#[test]
fn rf_key_file_missing_exits_66() {
    let case = Case::new();
    let missing = case.path("no-such.key");
    let out = case
        .cmd()
        .env_remove("RF_API_KEY")
        .args(["sync", "--rf-key-file"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_clear_error(
        &out,
        66,
        &["--rf-key-file", &missing.display().to_string()],
        &[],
    );
    case.assert_untouched();
}

#[test]
fn rf_key_file_readable_by_others_exits_78() {
    let case = Case::new();
    let key = case.file("rf.key", b"canaryFFFFfromfile0123456789\n", 0o644);
    let out = case
        .cmd()
        .args(["sync", "--rf-key-file"])
        .arg(&key)
        .output()
        .unwrap();
    let line = assert_clear_error(
        &out,
        78,
        &["--rf-key-file", &key.display().to_string()],
        &["canaryFFFF"],
    );
    assert!(line.contains("644"), "{line}");
    case.assert_untouched();
}

#[test]
fn private_rf_key_file_is_used() {
    let case = Case::new();
    let s = Sim::start();
    let key = case.file("rf.key", format!("{}\n", s.rf_key).as_bytes(), 0o600);
    // A wrong token in the environment: only the file's token can succeed.
    let out = case
        .cmd_for(&s)
        .env("RF_API_KEY", "wrong-token-0000000000000000000")
        .args(["sync", "--rf-key-file"])
        .arg(&key)
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(!s.received().is_empty(), "nothing reached the simulated CI");
}

// ---------------------------------------------------------------------------
// Filter files
// ---------------------------------------------------------------------------

#[test]
fn exclude_rules_missing_or_a_directory_exits_66() {
    let case = Case::new();
    let missing = case.path("no-such-rules.txt");
    let out = case
        .cmd()
        .args(["sync", "--exclude-rules"])
        .arg(&missing)
        .output()
        .unwrap();
    let line = assert_clear_error(
        &out,
        66,
        &["--exclude-rules", &missing.display().to_string()],
        &[],
    );
    assert!(line.contains("No such file"), "OS error text: {line}");
    // The vendor flag, too.
    let out = case.cmd().arg("-ef").arg(&missing).output().unwrap();
    assert_clear_error(&out, 66, &[&missing.display().to_string()], &[]);

    let dir = case.path("rules.d");
    std::fs::create_dir(&dir).unwrap();
    let out = case
        .cmd()
        .args(["sync", "--exclude-rules"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_clear_error(
        &out,
        66,
        &["--exclude-rules", &dir.display().to_string()],
        &[],
    );
    case.assert_untouched();
}

#[test]
fn bad_exclusion_line_exits_65_with_file_and_line() {
    let case = Case::new();
    let file = case.file(
        "exclude.txt",
        b"# internal ranges\n8.8.8.8\n10.0.0.0/33\nexample.com\n",
        0o600,
    );
    let out = case
        .cmd()
        .args(["sync", "--exclude-indicators"])
        .arg(&file)
        .output()
        .unwrap();
    let at = format!("{}:3", file.display());
    assert_clear_error(&out, 65, &["--exclude-indicators", &at, "10.0.0.0/33"], &[]);
    case.assert_untouched();
}

#[test]
fn exclusion_files_empty_crlf_bom_comments_are_accepted() {
    let case = Case::new();
    let s = Sim::start();
    let empty = case.file("empty.txt", b"", 0o600);
    let comments = case.file("comments.txt", b"# only\n\n   # comments\n", 0o600);
    // Every IP excluded, written with a BOM and CRLF line ends and a duplicate:
    // if the first line or the CRLF lines were misread, IPs would be sent.
    let all_ips = case.file(
        "all-ips.txt",
        b"\xEF\xBB\xBF0.0.0.0/0\r\n# comment\r\n::/0\r\n0.0.0.0/0\r\n\r\n",
        0o600,
    );
    let rules = case.file("rules.txt", b"\xEF\xBB\xBF# none\r\n\r\n", 0o600);

    for (i, (flag, file)) in [
        ("--exclude-indicators", &empty),
        ("--exclude-indicators", &comments),
        ("--internal-domains", &empty),
        ("--exclude-rules", &rules),
    ]
    .into_iter()
    .enumerate()
    {
        let ledger = case.path(&format!("ledger-{i}.sqlite3"));
        let out = case
            .cmd_for(&s)
            .env("LRCI_LEDGER", &ledger)
            .args(["sync", flag])
            .arg(file)
            .output()
            .unwrap();
        assert_ok(&out);
    }
    let sent_before = s.received().len();
    assert!(sent_before > 0, "the accepted runs sent nothing");
    let sent_ip = |items: &[Value]| {
        items
            .iter()
            .filter(|d| d["ioc"]["type"].as_str() == Some("ip"))
            .count()
    };
    assert!(
        sent_ip(&s.received()) > 0,
        "the simulator served no public IP"
    );

    s.get_reset();
    let out = case
        .cmd_for(&s)
        .env("LRCI_LEDGER", case.path("ledger-ips.sqlite3"))
        .args(["sync", "--exclude-indicators"])
        .arg(&all_ips)
        .output()
        .unwrap();
    assert_ok(&out);
    let received = s.received();
    assert!(!received.is_empty(), "nothing but IPs sent?");
    assert_eq!(
        sent_ip(&received),
        0,
        "IPs excluded by the BOM/CRLF file were sent"
    );
}

impl Sim {
    /// `POST /_sim/reset`: forget what CI stored.
    fn get_reset(&self) {
        let url = format!("{}/_sim/reset", self.url());
        self.block_on(async {
            reqwest::Client::new()
                .post(url)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        });
    }
}

// ---------------------------------------------------------------------------
// Ledger refusals
// ---------------------------------------------------------------------------

/// Runs a sync on a ledger prepared by the test and checks it is refused with
/// `code`, naming the ledger, with no request and the file's bytes unchanged.
fn assert_ledger_refused(case: &Case, ledger: &Path, code: i32) -> String {
    let before = std::fs::read(ledger).unwrap();
    let out = case.cmd().env("LRCI_LEDGER", ledger).output().unwrap();
    let line = assert_clear_error(&out, code, &[&ledger.display().to_string()], &[]);
    assert_eq!(
        std::fs::read(ledger).unwrap(),
        before,
        "the ledger was changed"
    );
    let mut wal = ledger.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "a -wal was written beside the refused ledger"
    );
    assert_eq!(case.trap.connections(), 0, "a refused run made requests");
    line
}

#[test]
fn non_sqlite_ledger_exits_65_untouched() {
    let case = Case::new();
    let ledger = case.file(
        "ledger.sqlite3",
        b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
        0o600,
    );
    let line = assert_ledger_refused(&case, &ledger, 65);
    assert!(line.contains("not"), "{line}");
}

#[test]
fn foreign_sqlite_ledger_exits_65_untouched() {
    let case = Case::new();
    let ledger = case.path("foreign.sqlite3");
    {
        let c = rusqlite::Connection::open(&ledger).unwrap();
        c.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('keep me');")
            .unwrap();
    }
    assert_ledger_refused(&case, &ledger, 65);

    let other_app = case.path("other-app.sqlite3");
    {
        let c = rusqlite::Connection::open(&other_app).unwrap();
        c.execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);")
            .unwrap();
    }
    assert_ledger_refused(&case, &other_app, 65);
}

#[test]
fn newer_ledger_exits_65_untouched() {
    let case = Case::new();
    let ledger = case.path("newer.sqlite3");
    {
        let c = rusqlite::Connection::open(&ledger).unwrap();
        c.pragma_update(None, "application_id", lrci::ledger::APPLICATION_ID)
            .unwrap();
        c.pragma_update(None, "user_version", 9999).unwrap();
        c.execute_batch("CREATE TABLE future (x);").unwrap();
    }
    let line = assert_ledger_refused(&case, &ledger, 65);
    assert!(line.contains("9999"), "{line}");
}

#[test]
fn ledger_path_that_is_a_directory_exits_73() {
    let case = Case::new();
    let ledger = case.path("ledger-dir");
    std::fs::create_dir(&ledger).unwrap();
    let out = case.cmd().env("LRCI_LEDGER", &ledger).output().unwrap();
    assert_clear_error(&out, 73, &[&ledger.display().to_string()], &[]);
    assert_eq!(case.trap.connections(), 0, "a refused run made requests");
    assert_eq!(std::fs::read_dir(&ledger).unwrap().count(), 0);
}

#[test]
fn missing_ledger_directory_is_created_private() {
    let case = Case::new();
    let s = Sim::start();
    let ledger = case.path("deep/er/ledger.sqlite3");
    let out = case
        .cmd_for(&s)
        .env("LRCI_LEDGER", &ledger)
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(ledger.is_file());
    assert_eq!(mode(&ledger), 0o600, "ledger mode");
    assert_eq!(
        mode(ledger.parent().unwrap()),
        0o700,
        "ledger directory mode"
    );
    assert_eq!(mode(&case.path("deep")), 0o700, "created parent mode");
    let lock = lrci::ledger::RunLock::path_for(&ledger);
    if lock.exists() {
        assert_eq!(mode(&lock), 0o600, "lock file mode");
    }
}

// ---------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------

#[test]
fn held_lock_exits_75_at_once_naming_the_pid() {
    let case = Case::new();
    let ledger = case.ledger();
    let held = lrci::ledger::RunLock::acquire(&ledger).unwrap();
    let started = Instant::now();
    let out = case.cmd().output().unwrap();
    let took = started.elapsed();
    let pid = std::process::id().to_string();
    assert_clear_error(&out, 75, &[&pid], &[]);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(case.trap.connections(), 0, "a locked-out run made requests");
    assert!(!ledger.exists(), "a locked-out run created the ledger");
    // backfill takes the same lock.
    let out = case
        .cmd()
        .args(["backfill", "--days", "1"])
        .output()
        .unwrap();
    assert_clear_error(&out, 75, &[&pid], &[]);
    drop(held);
    assert_eq!(case.trap.connections(), 0);
}

// ---------------------------------------------------------------------------
// Log file
// ---------------------------------------------------------------------------

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with("lrci.") && name.ends_with(".log")
    });
    v
}

#[test]
fn successful_sync_writes_the_log_file() {
    let case = Case::new();
    let s = Sim::start();
    let out = case.cmd_for(&s).arg("sync").output().unwrap();
    assert_ok(&out);
    let files = log_files(&case.log_dir());
    assert_eq!(files.len(), 1, "log files: {files:?}");
    let log = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!log.trim().is_empty(), "empty log file");
    // The run's stderr log lines are in the file too.
    let stderr = text(&out.stderr);
    let run_lines: Vec<&str> = stderr.lines().filter(|l| is_log_line(l)).collect();
    assert!(
        !run_lines.is_empty(),
        "the run logged nothing at info:\n{stderr}"
    );
    for l in &run_lines {
        // The file layer also prints the target after the spans; compare the
        // message after the timestamp, level and spans.
        let msg = l.split_once("  ").map_or(*l, |(_, m)| m);
        let msg = msg.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == ' ');
        let msg = msg.rsplit_once("}: ").map_or(msg, |(_, m)| m);
        assert!(log.contains(msg), "log file lacks {msg:?}:\n{log}");
    }
    assert!(
        mode(&case.log_dir()) & 0o077 == 0,
        "log directory is not private"
    );
}

#[test]
fn uncreatable_log_dir_exits_73() {
    let case = Case::new();
    let file = case.file("plain-file", b"not a directory\n", 0o600);
    let log_dir = file.join("logs");
    let out = case.cmd().env("LRCI_LOG_DIR", &log_dir).output().unwrap();
    assert_clear_error(
        &out,
        73,
        &["LRCI_LOG_DIR", &log_dir.display().to_string()],
        &[],
    );
    case.assert_untouched();
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// Every file a run leaves next to the ledger and in the log directory.
fn run_files(ledger: &Path, log_dir: &Path) -> Vec<PathBuf> {
    let mut files = log_files(log_dir);
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = ledger.as_os_str().to_owned();
        p.push(suffix);
        files.push(PathBuf::from(p));
    }
    files.retain(|f| f.exists());
    files
}

fn assert_no_canary(places: &[(String, Vec<u8>)], canaries: &[&str]) {
    for (what, bytes) in places {
        for canary in canaries {
            let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
            assert!(!found, "a key was written to {what}");
        }
    }
}

#[test]
fn canary_keys_appear_in_no_output_log_or_ledger() {
    let mut rng = rand::rng();
    let lr_canary = Alphanumeric.sample_string(&mut rng, 40);
    let rf_canary = Alphanumeric.sample_string(&mut rng, 40);
    let case = Case::new();
    let s = Sim::start_with_keys(&lr_canary, &rf_canary);

    // `-l trace` (lrci at trace), then LRCI_LOG=trace: every crate, HTTP and TLS
    // included, at trace, into a second ledger and log directory.
    let runs = [
        (case.ledger(), case.log_dir(), None),
        (
            case.path("data2/ledger.sqlite3"),
            case.path("logs2"),
            Some("trace"),
        ),
    ];
    for (ledger, log_dir, filter) in &runs {
        let mut cmd = case.cmd_for(&s);
        cmd.env("LRCI_LEDGER", ledger)
            .env("LRCI_LOG_DIR", log_dir)
            .args(["sync", "-l", "trace", "--json"]);
        if let Some(f) = filter {
            cmd.env("LRCI_LOG", f);
        }
        let out = cmd.output().unwrap();
        assert_ok(&out);
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["exit_code"], 0);
        assert!(
            summary["detections"]["submitted"].as_u64().unwrap() > 0,
            "the canary keys did not work: {summary}"
        );
        let mut places: Vec<(String, Vec<u8>)> = vec![
            ("stdout".into(), out.stdout.clone()),
            ("stderr".into(), out.stderr.clone()),
        ];
        let files = run_files(ledger, log_dir);
        assert!(files.iter().any(|f| f == ledger), "no ledger");
        assert!(
            files.iter().any(|f| f.starts_with(log_dir)),
            "no log file in {}",
            log_dir.display()
        );
        for f in files {
            places.push((f.display().to_string(), std::fs::read(&f).unwrap()));
        }
        if filter.is_some() {
            let stderr = text(&out.stderr);
            assert!(
                stderr.lines().any(|l| l.contains("TRACE")),
                "LRCI_LOG=trace logged no trace line"
            );
        }
        assert_no_canary(&places, &[&lr_canary, &rf_canary]);
    }
}

// ---------------------------------------------------------------------------
// More rows of reliability-bar.md §6
// ---------------------------------------------------------------------------

#[test]
fn non_ascii_key_exits_78_without_showing_it() {
    let case = Case::new();
    for var in ["LOGRHYTHM_API_KEY", "RF_API_KEY"] {
        let out = case.cmd().env(var, "naïvecanary0123").output().unwrap();
        assert_clear_error(&out, 78, &[var], &["naïvecanary", "canary0123"]);
    }
    case.assert_untouched();
}

#[test]
fn conflicting_or_future_backfill_windows_exit_2() {
    let case = Case::new();
    let out = case
        .cmd()
        .args(["backfill", "--days", "1", "--days", "2"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["--days"], &[]);
    let out = case
        .cmd()
        .args(["backfill", "--from", "2999-01-01", "--to", "2999-01-02"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["--from", "--to"], &[]);
    let out = case
        .cmd()
        .args([
            "backfill",
            "--days",
            "1",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, &["--days"], &[]);
    case.assert_untouched();
}

#[test]
fn non_utf8_filter_path_is_a_clear_error() {
    use std::os::unix::ffi::OsStrExt;
    let case = Case::new();
    let name = std::ffi::OsStr::from_bytes(b"rules-\xff.txt");
    let path = case.dir.path().join(name);
    let out = case
        .cmd()
        .args(["sync", "--exclude-rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert_clear_error(&out, 66, &["--exclude-rules", "rules-"], &[]);
    case.assert_untouched();
}

#[test]
fn unreadable_exclusion_file_exits_66_with_the_os_error() {
    if running_as_root() {
        eprintln!("skipped: root reads files of mode 0000");
        return;
    }
    let case = Case::new();
    let file = case.file("rules.txt", b"Some Rule\n", 0o000);
    let out = case
        .cmd()
        .args(["sync", "--exclude-rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert_clear_error(
        &out,
        66,
        &[
            "--exclude-rules",
            &file.display().to_string(),
            "ermission denied",
        ],
        &[],
    );
    case.assert_untouched();
}

#[test]
fn read_only_ledger_directory_exits_73() {
    if running_as_root() {
        eprintln!("skipped: root writes into read-only directories");
        return;
    }
    let case = Case::new();
    let dir = case.path("ro");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let ledger = dir.join("ledger.sqlite3");
    let out = case.cmd().env("LRCI_LEDGER", &ledger).output().unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_clear_error(&out, 73, &[&dir.display().to_string()], &[]);
    assert_eq!(case.trap.connections(), 0, "a refused run made requests");
    assert!(!ledger.exists());
}

#[test]
fn stdout_on_a_full_disk_exits_74() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let case = Case::new();
    let s = Sim::start();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"))
        .env_clear()
        .envs(case.env())
        .env("LOGRHYTHM_API_URL", s.url())
        .env("RF_API_URL", s.url())
        .arg("sync")
        .stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_clear_error(&out, 74, &["stdout"], &[]);
    // The run itself was recorded before the summary could not be printed.
    assert!(!s.received().is_empty());
}

// ---------------------------------------------------------------------------
// sim and demo
// ---------------------------------------------------------------------------

#[test]
fn sim_announces_its_url_and_exits_0_on_sigterm() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"))
        .args(["sim", "--hours", "1", "--alarms-per-hour", "2"])
        .env_remove("LRCI_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = first
        .trim_end()
        .strip_prefix("lrci-sim listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("url: {url:?}"))
        .parse()
        .unwrap();
    assert_ne!(port, 0);

    // It serves: the admin stats route answers with JSON.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats: Value = rt.block_on(async {
        reqwest::get(format!("{url}/_sim/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert!(stats.is_object(), "{stats}");

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lrci sim did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sim_refuses_a_non_loopback_listen_address() {
    let case = Case::new();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        let out = case.cmd().args(["sim", "--listen", addr]).output().unwrap();
        assert_clear_error(&out, 2, &["--listen", "loopback"], &[]);
        assert!(
            !text(&out.stdout).contains("listening"),
            "{addr}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn demo_exits_0_and_tells_both_syncs() {
    let case = Case::new();
    let out = case
        .cmd()
        .args(["demo", "--alarms-per-hour", "3"])
        .output()
        .unwrap();
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("first sync"), "{stdout}");
    assert!(stdout.contains("second sync"), "{stdout}");
    let ledger = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ledger: "))
        .unwrap_or_else(|| panic!("no ledger line:\n{stdout}"));
    let ledger = PathBuf::from(ledger.trim());
    assert!(ledger.is_file(), "{} does not exist", ledger.display());
    assert!(
        ledger.starts_with(case.path("tmp")),
        "demo ledger outside TMPDIR: {}",
        ledger.display()
    );
    // The demo never touches the configured ledger.
    assert!(!case.ledger().exists());
}
