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
use crate::{ci, logrhythm, platform};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use url::Url;

mod apis;
mod files;
mod privacy;
mod server;
mod settings;
#[cfg(test)]
mod tests;

use crate::cli::output::error_chain as chain;
use apis::*;
use files::*;
use privacy::*;
use server::*;
use settings::*;

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
const EXIT_PRIORITY: [u8; 8] = [
    code::CONFIG,
    code::NO_INPUT,
    code::DATA,
    code::IO,
    code::CANT_CREATE,
    code::NO_PERM,
    code::UNAVAILABLE,
    code::PARTIAL,
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
    let checks = checks(
        crate::cli::settings::resolve(cli),
        args.offline,
        args.max_age,
        args.backup.as_deref(),
    )
    .await;
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
pub async fn checks(
    settings: Result<Settings, Fatal>,
    offline: bool,
    max_age: Option<Duration>,
    backup: Option<&Path>,
) -> Vec<Check> {
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
    // A ledger that failed a check above is not judged again for freshness.
    let ledger_failed = out
        .iter()
        .any(|c| c.status == Status::Fail && c.name.starts_with("ledger:"));
    if !ledger_failed {
        if let Some(c) = freshness_check(&s.ledger().value, max_age, crate::clock::now()) {
            out.push(c);
        }
    }
    if let Some(b) = backup {
        backup_checks(b, &s.ledger().value, &mut out);
    }
    organisation_check(&s, &mut out);
    log_dir_check(&s, &mut out);
    out.push(profile_check(&s.ledger().value));
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
    match apis.lr {
        Some(lr) => {
            let check = lr_check(lr.clone(), opts.clone()).await;
            let reachable = check.status != Status::Fail;
            out.push(check);
            if reachable {
                out.push(tz_check(lr, opts.clone(), &s.ledger().value).await);
            }
        }
        None => out.push(Check::warn(
            "logrhythm",
            "not checked: fix the LogRhythm settings above first",
        )),
    }
    out.push(match apis.rf {
        Some((url, key)) => ci_check(url, key, opts).await,
        None => Check::warn(
            "collective insights",
            "not checked: fix the Recorded Future settings above first",
        ),
    });
    out
}
