//! Running the real `lrci` binary: a home directory per test, a clean environment
//! pointing both APIs at a simulator, what the process did, and the "clear error"
//! rule its refusals are checked against.

use super::sim::TestSim;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Where one whole-flow test keeps its ledger, logs and input files.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The ledger file (`LRCI_LEDGER`).
    pub fn ledger(&self) -> PathBuf {
        self.dir.path().join("ledger.sqlite3")
    }

    /// The log directory (`LRCI_LOG_DIR`).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Writes `contents` to `name` in the home and returns its path as text.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Every byte of every file under the home (ledger, WAL, logs, lock), for
    /// secret scans.
    pub fn all_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    let b = std::fs::read(&p).unwrap();
                    out.push((p, b));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

/// The credentials a run is given.
#[derive(Clone)]
pub struct Keys {
    pub lr: String,
    pub rf: String,
}

impl Keys {
    /// The simulator's valid keys.
    pub fn of(sim: &TestSim) -> Keys {
        Keys {
            lr: sim.state().config().lr_key.clone(),
            rf: sim.state().config().rf_key.clone(),
        }
    }
}

/// What one `lrci` process did.
#[derive(Debug)]
pub struct LrciRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl LrciRun {
    /// The `--json` summary: the last non-empty stdout line, parsed.
    pub fn summary(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no stdout; stderr:\n{}", self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "summary is not JSON ({e}): {line}\nstderr:\n{}",
                self.stderr
            )
        })
    }

    /// Panics with the output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &LrciRun {
        assert_eq!(
            self.code,
            code,
            "exit code; stdout:\n{}\nstderr (tail):\n{}",
            self.stdout,
            tail(&self.stderr, 40)
        );
        self
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The `lrci` binary with a clean environment pointing both APIs at the simulator,
/// the ledger and logs into `home`, and `args`.
pub fn lrci_command(
    sim: &TestSim,
    home: &Home,
    keys: &Keys,
    args: &[&str],
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"));
    c.env_clear()
        .env("LOGRHYTHM_API_URL", sim.url())
        .env("RF_API_URL", sim.url())
        .env("LOGRHYTHM_API_KEY", &keys.lr)
        .env("RF_API_KEY", &keys.rf)
        .env("LRCI_LEDGER", home.ledger())
        .env("LRCI_LOG_DIR", home.log_dir())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Waits for a spawned `lrci` (at most two minutes).
pub async fn finish(child: tokio::process::Child) -> LrciRun {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("lrci finishes within two minutes")
    .unwrap();
    LrciRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `lrci ARGS` with the simulator's valid keys and waits for it.
pub async fn lrci(sim: &TestSim, home: &Home, args: &[&str]) -> LrciRun {
    lrci_with(sim, home, &Keys::of(sim), args).await
}

/// Runs `lrci ARGS` with the given keys and waits for it.
pub async fn lrci_with(sim: &TestSim, home: &Home, keys: &Keys, args: &[&str]) -> LrciRun {
    finish(lrci_command(sim, home, keys, args).spawn().unwrap()).await
}

/// Output bytes as text (lossy).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A tracing log line (fmt layer: starts with an RFC 3339 timestamp).
pub fn is_log_line(line: &str) -> bool {
    line.len() > 4 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
}

/// Checks that `out` is a clear error: the exit code, exactly one `error:` line
/// (log lines aside) of at most 300 characters containing every one of `names`,
/// no panic or Debug dump, and none of `hidden` anywhere in stdout or stderr.
/// Returns the error line.
pub fn assert_clear_error(out: &Output, code: i32, names: &[&str], hidden: &[&str]) -> String {
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stderr:\n{stderr:.4000}\nstdout:\n{stdout:.4000}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !is_log_line(l))
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error: line in\n{stderr:.4000}"
    );
    let line = errors[0];
    assert!(
        line.chars().count() <= 300,
        "error line of {} chars: {line}",
        line.chars().count()
    );
    for name in names {
        assert!(
            line.contains(name),
            "error line does not name {name:?}: {line}"
        );
    }
    for bad in ["panicked", "Os {", "kind: ", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{bad:?} in stderr:\n{stderr:.4000}");
    }
    for h in hidden {
        assert!(
            !stderr.contains(h) && !stdout.contains(h),
            "{h:?} shown in the output:\n{stderr}\n{stdout}"
        );
    }
    line.to_string()
}
