//! The run report: what a run counted, the problems it met, and whether it was
//! partial, interrupted or found an API unavailable, and the one rule that turns
//! that into an exit code ([`Outcome::exit_code`]). No I/O here.

use crate::error::code;
use serde::Serialize;

/// How a run ended, gathered while it runs; the exit code is derived from it once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// An API was unavailable (transient failures): the work is left for later.
    pub unavailable: bool,
    /// Some work was not done (saturated slice, budget, deadline, failures).
    pub partial: bool,
    /// A signal stopped the run.
    pub interrupted: bool,
    /// The exit code of the failure that stopped the run, if one did.
    pub fatal: Option<u8>,
    /// Short reasons the run is not a clean success, in the order met.
    pub problems: Vec<String>,
}

impl Outcome {
    /// The exit code of a run that ended so (DESIGN.md section 2): a failure that
    /// stopped the run keeps its own code; else 69 when an API was unavailable,
    /// else 75 when the run was partial or interrupted, else 0.
    pub fn exit_code(&self) -> u8 {
        if let Some(fatal) = self.fatal {
            fatal
        } else if self.unavailable {
            code::UNAVAILABLE
        } else if self.partial || self.interrupted {
            code::PARTIAL
        } else {
            code::OK
        }
    }

    /// The run was interrupted (recorded once).
    pub fn interrupted(&mut self) {
        if !self.interrupted {
            self.interrupted = true;
            self.partial("interrupted: stopped before the work was done; the next run continues");
        }
    }

    /// Some work was left undone, and why.
    pub fn partial(&mut self, why: impl Into<String>) {
        self.partial = true;
        self.problems.push(why.into());
    }

    /// Records `why` once, however many times it happens (per-alarm failures).
    pub fn partial_once(&mut self, why: &str) {
        if !self.problems.iter().any(|p| p == why) {
            self.partial(why);
        }
    }

    /// An API was unavailable, and which.
    pub fn unavailable(&mut self, why: impl Into<String>) {
        self.unavailable = true;
        self.problems.push(why.into());
    }

    /// A failure stopped the run.
    pub fn fatal(&mut self, code: u8, why: String) {
        self.fatal = Some(code);
        self.problems.push(why);
    }

    /// Whether submission may start: not after an outage or an interrupt.
    pub fn may_submit(&self) -> bool {
        !self.unavailable && !self.interrupted
    }
}

/// The `--json` summary of `sync` and `backfill` (DESIGN.md section 2).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub run_id: Option<i64>,
    pub command: &'static str,
    pub window: WindowOut,
    pub slices: SliceCounts,
    pub alarms: AlarmCounts,
    pub detections: DetectionCounts,
    pub budget: BudgetOut,
    pub dry_run: bool,
    pub exit_code: u8,
    /// Short reasons the exit code is not 0.
    pub problems: Vec<String>,
    /// What the policy knows of the organisation after the run.
    pub organisation: OrganisationOut,
    /// How late alarms became listable, against the relist horizon.
    pub visibility: VisibilityOut,
    /// LogRhythm requests in flight: the limit's mode, ceiling, end and peak.
    pub concurrency: Option<ConcurrencyOut>,
    /// What the exit code is derived from.
    #[serde(skip)]
    pub outcome: Outcome,
}

/// The observed visibility lag (the largest first seen − `dateInserted` of the
/// last day's alarms, so it includes the schedule interval, settle, and on a
/// fresh ledger the lookback), the lag of the late alarms found this run, and
/// the horizon within which late alarms are still found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VisibilityOut {
    pub lag_seconds: Option<f64>,
    /// The age of the oldest alarm this run found in time already listed (a
    /// late alarm): how late alarms become listable, schedule included.
    pub late_lag_seconds: Option<f64>,
    pub relist_horizon_seconds: i64,
    /// LogRhythm's clock minus this machine's (its `Date` header, whole
    /// seconds), from the run's last LogRhythm answer.
    pub clock_skew_seconds: Option<f64>,
}

/// The LogRhythm concurrency limit of a run (`logrhythm::limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConcurrencyOut {
    /// `fixed` or `auto`.
    pub mode: &'static str,
    /// `concurrency` when fixed, `concurrency_max` with auto.
    pub max: u32,
    /// The limit at the end of the run.
    #[serde(rename = "final")]
    pub final_limit: u32,
    /// The highest limit of the run.
    pub peak: u32,
    /// Times auto halved the limit for a 429, a 5xx or a timeout.
    pub backoffs: u64,
    /// Most LogRhythm requests in flight at once.
    pub in_flight_peak: u32,
}

impl From<crate::logrhythm::limit::Report> for ConcurrencyOut {
    fn from(r: crate::logrhythm::limit::Report) -> Self {
        ConcurrencyOut {
            mode: r.mode,
            max: r.max,
            final_limit: r.final_limit,
            peak: r.peak,
            backoffs: r.backoffs,
            in_flight_peak: r.in_flight_peak,
        }
    }
}

/// Share of the relist horizon the observed lag may reach before a warning.
pub const LAG_WARN_SHARE: f64 = 0.75;

/// The warning when the observed lag nears the horizon, if it does.
pub fn lag_warning(lag_seconds: Option<f64>, horizon_seconds: i64) -> Option<String> {
    let lag = lag_seconds?;
    let horizon = horizon_seconds as f64;
    (lag > horizon * LAG_WARN_SHARE).then(|| {
        format!(
            "alarms became listable up to {lag:.0} s after their dateInserted (found late, schedule interval included), near the relist horizon of {horizon_seconds} s: an alarm later than the horizon is never listed; raise relist_horizon (--relist-horizon)"
        )
    })
}

/// What the policy knows of the organisation at the end of a run (issue 10).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrganisationOut {
    /// Registered domains learned as the organisation's (never sent).
    pub learned_domains: Vec<String>,
    /// Network records LogRhythm has shown (`name (begin-end)`, never sent).
    pub networks: Vec<String>,
    /// Registered domains whose host names wait to be sent although nobody judged them.
    pub unjudged_domains: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowOut {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SliceCounts {
    pub total: u64,
    pub fetched: u64,
    pub covered: u64,
    pub saturated: u64,
    /// Instants where a full page shared one timestamp on a server ignoring
    /// offset, listed completely in parts narrowed by the list filters.
    pub partitioned: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AlarmCounts {
    pub seen: u64,
    pub new: u64,
    pub filtered: u64,
    /// Alarms whose details or events could not be fetched this run.
    pub errors: u64,
    /// Alarms whose events are not ready yet (younger than the events grace).
    pub waiting: u64,
    /// New alarms found in time an earlier run had already listed: they became
    /// listable after their `dateInserted` (found by re-listing provisional time).
    pub late: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DetectionCounts {
    pub new: u64,
    pub submitted: u64,
    pub failed: u64,
    pub rejected: u64,
    pub excluded: u64,
    /// Posted, answered 2xx without a recognisable result (this run).
    pub unconfirmed: u64,
    /// Unconfirmed detections of earlier runs settled from CI's search this run.
    pub settled: SettledCounts,
}

/// How the unconfirmed detections found at the start of submission were settled.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SettledCounts {
    /// Found in CI's search: `sent`.
    pub found: u64,
    /// Not found, and older than the settle age: `pending`, posted again.
    pub absent: u64,
    /// Not settled yet (too young to call absent, or the search failed).
    pub waiting: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BudgetOut {
    pub day: String,
    pub used: u64,
    pub limit: u64,
}

/// The `--json` summary of `replay`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub run_id: Option<i64>,
    pub command: &'static str,
    /// The states selected.
    pub states: Vec<String>,
    pub detections: ReplayCounts,
    pub budget: BudgetOut,
    pub dry_run: bool,
    pub exit_code: u8,
    /// Short reasons the exit code is not 0.
    pub problems: Vec<String>,
    /// What the exit code is derived from.
    #[serde(skip)]
    pub outcome: Outcome,
}

/// Detection counts of a replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayCounts {
    /// Chosen by the selection when the replay started.
    pub selected: u64,
    pub submitted: u64,
    pub failed: u64,
    pub rejected: u64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes() {
        let o = |unavailable, partial, interrupted, fatal| Outcome {
            unavailable,
            partial,
            interrupted,
            fatal,
            problems: Vec::new(),
        };
        for (outcome, want) in [
            (o(false, false, false, None), code::OK),
            (o(false, true, false, None), code::PARTIAL),
            (o(false, false, true, None), code::PARTIAL),
            (o(true, false, false, None), code::UNAVAILABLE),
            (o(true, true, true, None), code::UNAVAILABLE),
            (o(false, false, false, Some(code::NO_PERM)), code::NO_PERM),
            (o(true, true, false, Some(code::CONFIG)), code::CONFIG),
            (o(false, false, false, Some(code::DATA)), code::DATA),
        ] {
            assert_eq!(outcome.exit_code(), want, "{outcome:?}");
        }
    }

    use super::*;

    #[test]
    fn outcome_records() {
        let mut o = Outcome::default();
        assert!(o.may_submit());
        o.partial_once("some alarms");
        o.partial_once("some alarms");
        o.interrupted();
        o.interrupted();
        assert_eq!(o.problems.len(), 2, "{:?}", o.problems);
        assert!(o.partial && o.interrupted && !o.may_submit());
        let mut o = Outcome::default();
        o.unavailable("LogRhythm unavailable");
        assert!(!o.may_submit() && !o.partial);
    }
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    #[test]
    fn the_lag_is_warned_about_near_the_horizon() {
        for (lag, horizon, warns) in [
            (None, 7200, false),
            (Some(60.0), 7200, false),
            (Some(5400.0), 7200, false),
            (Some(5401.0), 7200, true),
            (Some(9000.0), 7200, true),
            (Some(1.0), 0, true),
            (Some(0.0), 0, false),
        ] {
            assert_eq!(
                lag_warning(lag, horizon).is_some(),
                warns,
                "{lag:?} {horizon}"
            );
        }
    }
}
