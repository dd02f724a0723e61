//! `--metrics-file`: Prometheus text exposition format, written at the end of
//! every run (failed ones too) for node_exporter's textfile collector. The file is
//! written to a temporary file in the same directory and renamed over the old
//! one, so the collector never reads half a file. Series of other commands and
//! profiles are read back from the previous file and kept.

use crate::ledger::{Ledger, StateCounts};
use crate::platform;
use chrono::{DateTime, Duration as Span, Utc};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// What the run itself tells.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub command: String,
    pub profile: String,
    pub started: DateTime<Utc>,
    pub duration_secs: f64,
    pub exit_code: u8,
}

/// What the ledger tells after the run (absent when it cannot be read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerFacts {
    pub detections: StateCounts,
    pub budget_used: u64,
    pub budget_limit: u64,
    /// Seconds from the end of the newest covered hour of the sync window to now.
    pub coverage_lag: Option<f64>,
    /// Seconds between an alarm's time and when lrci first saw it, as observed.
    pub visibility_lag: Option<f64>,
    pub saturated_slices: u64,
    pub alarms_in_error: u64,
}

/// Every series: name, type, help. Run series carry `command` and `profile`;
/// ledger series carry `profile` (and `state` for detections).
pub const SERIES: &[(&str, &str, &str)] = &[
    (
        "lrci_last_run_timestamp_seconds",
        "gauge",
        "Start of the last run (Unix time)",
    ),
    (
        "lrci_last_run_duration_seconds",
        "gauge",
        "Duration of the last run",
    ),
    (
        "lrci_last_run_exit_code",
        "gauge",
        "Exit code of the last run (0 ok, 75 partial, see lrci --help)",
    ),
    (
        "lrci_last_success_timestamp_seconds",
        "gauge",
        "Start of the last run that exited 0 (Unix time)",
    ),
    (
        "lrci_detections",
        "gauge",
        "Detections in the ledger by state",
    ),
    (
        "lrci_budget_used",
        "gauge",
        "Detections sent today (UTC) against the daily budget",
    ),
    ("lrci_budget_limit", "gauge", "The daily detection budget"),
    (
        "lrci_coverage_lag_seconds",
        "gauge",
        "Seconds from the newest instant up to which every alarm was listed to now",
    ),
    (
        "lrci_visibility_lag_seconds",
        "gauge",
        "Largest first seen minus dateInserted of the alarms inserted in the last day (includes the schedule interval and settle)",
    ),
    (
        "lrci_saturated_slices",
        "gauge",
        "Hour slices of the sync window where alarms may be missing (saturated)",
    ),
    (
        "lrci_alarms_in_error",
        "gauge",
        "Alarms whose details could not be fetched or processed",
    ),
];

/// Samples by series name: label text (`{a="b"}`) to value.
pub type Samples = BTreeMap<String, BTreeMap<String, f64>>;

/// A label value escaped as the format wants (`\`, `"`, newline).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The samples of a previous file written by [`render`] (other lines ignored).
pub fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, lbl) = match series.find('{') {
            Some(i) => series.split_at(i),
            None => (series, ""),
        };
        if SERIES.iter().any(|(n, _, _)| *n == name) {
            out.entry(name.to_string())
                .or_default()
                .insert(lbl.to_string(), v);
        }
    }
    out
}

/// Whether a label text belongs to `profile` (and to `command`, when given).
fn owns(lbl: &str, profile: &str, command: Option<&str>) -> bool {
    let has = |k: &str, v: &str| lbl.contains(&format!("{k}=\"{}\"", escape_label(v)));
    has("profile", profile) && command.is_none_or(|c| has("command", c))
}

/// The previous samples updated with this run: this command's and profile's run
/// series replaced (the last success kept when this run failed), this profile's
/// ledger series replaced when the ledger could be read.
pub fn merge(mut prev: Samples, run: &RunFacts, ledger: Option<&LedgerFacts>) -> Samples {
    let run_lbl = labels(&[("command", &run.command), ("profile", &run.profile)]);
    fn put(s: &mut Samples, name: &str, lbl: &str, v: f64) {
        s.entry(name.to_string())
            .or_default()
            .insert(lbl.to_string(), v);
    }
    let mut set = |name: &str, lbl: &str, v: f64| put(&mut prev, name, lbl, v);
    let start = run.started.timestamp() as f64;
    set("lrci_last_run_timestamp_seconds", &run_lbl, start);
    set(
        "lrci_last_run_duration_seconds",
        &run_lbl,
        run.duration_secs,
    );
    set(
        "lrci_last_run_exit_code",
        &run_lbl,
        f64::from(run.exit_code),
    );
    if run.exit_code == 0 {
        set("lrci_last_success_timestamp_seconds", &run_lbl, start);
    }
    let Some(l) = ledger else {
        return prev;
    };
    for (name, _, _) in &SERIES[4..] {
        if let Some(m) = prev.get_mut(*name) {
            m.retain(|lbl, _| !owns(lbl, &run.profile, None));
        }
    }
    let mut set = |name: &str, lbl: &str, v: f64| put(&mut prev, name, lbl, v);
    let p = run.profile.as_str();
    let d = &l.detections;
    for (state, n) in [
        ("pending", d.pending),
        ("sent", d.sent),
        ("failed", d.failed),
        ("rejected", d.rejected),
        ("excluded", d.excluded),
    ] {
        let lbl = labels(&[("profile", p), ("state", state)]);
        set("lrci_detections", &lbl, n as f64);
    }
    let lbl = labels(&[("profile", p)]);
    set("lrci_budget_used", &lbl, l.budget_used as f64);
    set("lrci_budget_limit", &lbl, l.budget_limit as f64);
    set(
        "lrci_coverage_lag_seconds",
        &lbl,
        l.coverage_lag.unwrap_or(0.0),
    );
    if let Some(v) = l.visibility_lag {
        set("lrci_visibility_lag_seconds", &lbl, v);
    }
    set("lrci_saturated_slices", &lbl, l.saturated_slices as f64);
    set("lrci_alarms_in_error", &lbl, l.alarms_in_error as f64);
    prev
}

/// The file's text: HELP and TYPE for every series that has samples.
pub fn render(s: &Samples) -> String {
    let mut out = String::new();
    for (name, kind, help) in SERIES {
        let Some(samples) = s.get(*name).filter(|m| !m.is_empty()) else {
            continue;
        };
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (lbl, v) in samples {
            out.push_str(&format!("{name}{lbl} {v}\n"));
        }
    }
    out
}

/// Reads what the ledger at `path` tells (`None` when it cannot be opened:
/// the run series are still written). Coverage is judged over the sync window
/// (from the oldest hour ever listed), or the last `lookback_days` before any.
pub fn ledger_facts(path: &Path, lookback_days: i64, budget_limit: u64) -> Option<LedgerFacts> {
    if !path.exists() {
        return None;
    }
    let l = Ledger::open(path).ok()?;
    let now = crate::clock::now();
    let fresh = l.freshness(now).ok()?;
    let from = l
        .first_slice()
        .ok()
        .flatten()
        .unwrap_or_else(|| now - Span::days(lookback_days.max(1)));
    let slices = l.slice_states(from, now).ok()?;
    let cov = crate::ledger::audit::summarise_coverage(from, now, &slices);
    Some(LedgerFacts {
        detections: l.state_counts().ok()?,
        budget_used: l.budget_used(now.date_naive()).ok()?,
        budget_limit,
        coverage_lag: fresh.coverage_lag_seconds,
        visibility_lag: fresh.visibility_lag_seconds,
        saturated_slices: cov.saturated_hours,
        alarms_in_error: l.alarm_counts().ok()?.error,
    })
}

/// Writes `text` to `path` atomically: a temporary file in the same directory,
/// made readable by the collector (0644), then renamed over `path`.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".lrci-metrics.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.flush()?;
    platform::set_file_mode(tmp.as_file(), platform::SHARED_FILE)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Updates the metrics file with this run; a failure is logged, never fatal.
pub fn update(path: &Path, run: &RunFacts, ledger: Option<&LedgerFacts>) {
    let prev = std::fs::read_to_string(path)
        .map(|t| parse(&t))
        .unwrap_or_default();
    let text = render(&merge(prev, run, ledger));
    if let Err(e) = write_atomic(path, &text) {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the metrics file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str, profile: &str, exit_code: u8, at: i64) -> RunFacts {
        RunFacts {
            command: command.into(),
            profile: profile.into(),
            started: DateTime::from_timestamp(at, 0).unwrap(),
            duration_secs: 1.5,
            exit_code,
        }
    }

    #[test]
    fn merging_keeps_other_series_and_the_last_success() {
        let ledger = LedgerFacts {
            budget_limit: 100,
            coverage_lag: Some(30.0),
            ..LedgerFacts::default()
        };
        let a = render(&merge(
            Samples::new(),
            &run("sync", "acme", 0, 1000),
            Some(&ledger),
        ));
        let b = render(&merge(
            parse(&a),
            &run("sync", "beta", 0, 1100),
            Some(&ledger),
        ));
        let c = render(&merge(parse(&b), &run("sync", "acme", 77, 1200), None));
        // (series line, present in c)
        for (line, want) in [
            (
                "lrci_last_run_exit_code{command=\"sync\",profile=\"acme\"} 77",
                true,
            ),
            (
                "lrci_last_run_exit_code{command=\"sync\",profile=\"acme\"} 0",
                false,
            ),
            (
                "lrci_last_success_timestamp_seconds{command=\"sync\",profile=\"acme\"} 1000",
                true,
            ),
            (
                "lrci_last_run_timestamp_seconds{command=\"sync\",profile=\"acme\"} 1200",
                true,
            ),
            (
                "lrci_last_run_timestamp_seconds{command=\"sync\",profile=\"beta\"} 1100",
                true,
            ),
            ("lrci_budget_limit{profile=\"beta\"} 100", true),
            ("lrci_coverage_lag_seconds{profile=\"acme\"} 30", true),
            ("lrci_detections{profile=\"acme\",state=\"sent\"} 0", true),
            ("# TYPE lrci_last_run_exit_code gauge", true),
            ("lrci_visibility_lag_seconds", false),
        ] {
            assert_eq!(c.contains(line), want, "{line}\n{c}");
        }
        assert_eq!(c.matches("# HELP lrci_detections ").count(), 1);
    }

    #[test]
    fn label_values_are_escaped_and_read_back() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let text = render(&merge(Samples::new(), &run("sync", "we\"ird", 0, 5), None));
        assert!(text.contains("profile=\"we\\\"ird\""), "{text}");
        assert_eq!(
            parse(&text),
            merge(Samples::new(), &run("sync", "we\"ird", 0, 5), None)
        );
        assert!(parse("garbage\nother_metric 1\n# HELP x y\n").is_empty());
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lrci.prom");
        write_atomic(&p, "a 1\n").unwrap();
        write_atomic(&p, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
