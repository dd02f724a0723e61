//! The sync engine shared by `sync`, `backfill`, `replay` and `demo`: the thin I/O
//! driver over pure decisions. The only module that uses every leaf (LogRhythm
//! client, CI client, extraction, ledger); clients and ledger are built by the
//! caller and passed in.
//!
//! - [`plan`]: which hourly slices to fetch, from coverage and the clock;
//! - [`triage`]: the verdicts about alarms (retry rule, filters, caps);
//! - [`submit`]: batching, bisection and budget as a sans-I/O state machine;
//! - [`failure`]: the one classification of failures (what stops a run);
//! - [`report`]: what a run counted and how it ended;
//! - [`server`]: the probed server profile a run lists with, and its checks.
//!
//! This module only does the I/O those decide: list slices and fetch events (and
//! details, when a setting needs them) pipelined under one bound on requests in
//! flight, extract indicators, write each slice's alarms, indicators and
//! coverage in one transaction, in slice order; then submit the ledger's due
//! detections, marking each outcome. Nothing is submitted before it is
//! committed, and `sent` is written only after a 2xx. It must not print, exit or
//! decide exit codes.
//!
//! # Dry run
//! A dry run takes the same path against an in-memory copy of the ledger (the
//! caller opens it with [`Writer::scratch_copy`]) and posts with `debug: true`;
//! the file is never written.
//!
//! # Interruption
//! A run given an [`Interrupt`] stops starting new slices and batches once it is
//! raised (SIGINT/SIGTERM in the CLI): a slice being fetched is abandoned (nothing of
//! it was written, so the next run fetches it again), a CI request in flight is
//! finished (abandoning it could leave CI holding items the ledger does not know were
//! sent), the run is recorded and exits 75 with "interrupted" among its problems. A
//! hard kill loses nothing either: each slice commits in one transaction, and rows
//! are marked `sent` only after CI's 2xx.

pub mod failure;
pub mod plan;
pub mod report;
pub mod submit;
pub mod triage;

mod fetch;
mod knowledge;
mod send;
pub mod server;
pub mod settle;

pub use knowledge::{current as policy_with_knowledge, unjudged};
pub use plan::{floor_hour, slice_len, slices, window};
pub use report::{
    AlarmCounts, BudgetOut, DetectionCounts, Outcome, ReplayCounts, ReplaySummary, SliceCounts,
    Summary, WindowOut,
};
pub use triage::{MAX_FETCH_ATTEMPTS, MAX_INDICATORS_PER_ALARM};

use crate::error::Fatal;
use crate::ledger::Selection;
use crate::ledger::{Ledger, Writer};
use crate::model::DetectionId;
use crate::{ci, logrhythm, policy};
use chrono::{DateTime, Utc};
use send::Sink;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

/// Which command is running (recorded in the ledger's runs table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Sync,
    Backfill,
}

impl RunKind {
    fn as_str(self) -> &'static str {
        match self {
            RunKind::Sync => "sync",
            RunKind::Backfill => "backfill",
        }
    }
}

/// Raised once when the run should stop starting new work (see the module doc).
#[derive(Debug, Clone)]
pub struct Interrupt(watch::Receiver<bool>);

/// The side that raises an [`Interrupt`] (the CLI's signal listener).
#[derive(Debug)]
pub struct InterruptHandle(watch::Sender<bool>);

impl Interrupt {
    /// A new, unraised interrupt and the handle that raises it.
    pub fn new() -> (InterruptHandle, Interrupt) {
        let (tx, rx) = watch::channel(false);
        (InterruptHandle(tx), Interrupt(rx))
    }

    /// Whether it has been raised.
    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when it is raised (never, if the handle is dropped unraised).
    pub async fn raised(&mut self) {
        if self.0.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl InterruptHandle {
    /// Asks the run to stop starting new work.
    pub fn raise(&self) {
        self.0.send_replace(true);
    }
}

/// Where a run is, for a progress bar or progress log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Slices dealt with (fetched, skipped as covered, or failed) of `slices_total`.
    pub slices_done: u64,
    pub slices_total: u64,
    /// Alarms listed so far.
    pub alarms: u64,
    /// Detections CI accepted so far.
    pub sent: u64,
    /// True once every slice is dealt with and the run is submitting.
    pub submitting: bool,
}

/// Called by the engine after each slice and each CI batch. Must not block.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Everything a run needs besides its clients and ledger.
pub struct RunOptions {
    pub kind: RunKind,
    /// `[from, to)`; `from` is rounded down to the hour by [`window`].
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub refetch: bool,
    pub dry_run: bool,
    pub min_rbp: Option<i64>,
    /// Fetch every alarm's details (RBP) although `min_rbp` is unset; without
    /// either, RBP is recorded as not fetched and an alarm costs one request.
    pub fetch_details: bool,
    pub rf_only: bool,
    pub exclude_rules: Vec<String>,
    pub policy: policy::Policy,
    pub page_size: u32,
    /// LogRhythm requests in flight at most: list pages and per-alarm
    /// requests together (slices are pipelined under this one budget).
    pub concurrency: usize,
    pub batch_size: usize,
    pub daily_budget: u64,
    /// How long an alarm's events may be not ready before it is final without them.
    pub events_grace: chrono::Duration,
    /// How long listed time stays provisional: covered slices younger than this
    /// are listed again each run for alarms that became listable late.
    pub relist_horizon: chrono::Duration,
    pub deadline: Option<Instant>,
    /// Stops the run between slices and batches when raised.
    pub interrupt: Option<Interrupt>,
    /// Told where the run is after each slice and batch.
    pub progress: Option<ProgressFn>,
}

/// What `replay` resubmits and how.
pub struct ReplayOptions {
    /// The detections to resubmit (never `excluded` ones: the policy keeps them on site).
    pub selection: Selection,
    /// Post with `debug: true` and record nothing.
    pub dry_run: bool,
    pub batch_size: usize,
    pub daily_budget: u64,
    /// The configured policy: pending and failed detections are judged again
    /// with it and what the ledger knows before anything is resubmitted.
    pub policy: policy::Policy,
    /// Stops the replay between batches when raised.
    pub interrupt: Option<Interrupt>,
}

/// Runs one sync or backfill. Errors are returned only for what stops the whole run
/// (credentials rejected, ledger failure); everything else is counted in the summary.
pub async fn run(
    ledger: &mut Writer,
    lr: &logrhythm::Client,
    ci: &ci::Client,
    opts: &RunOptions,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Summary, Fatal> {
    let (from, to) = opts.window;
    let run_id = ledger.begin_run(opts.kind.as_str(), now(), Some((from, to)))?;
    let mut s = Summary {
        run_id: (!opts.dry_run).then_some(run_id),
        command: opts.kind.as_str(),
        window: WindowOut {
            from: crate::ledger::ts(from),
            to: crate::ledger::ts(to),
        },
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    tracing::info!(command = s.command, from = %s.window.from, to = %s.window.to, dry_run = opts.dry_run, "run started");
    let mut sink = Sink {
        ledger,
        ci,
        now: &now,
        run_id,
        debug: opts.dry_run,
        batch: opts.batch_size,
        budget: opts.daily_budget,
        interrupt: opts.interrupt.as_ref(),
        deadline: opts.deadline,
    };
    let result = fetch::sync(&mut sink, lr, opts, &mut s).await;
    s.concurrency = lr.concurrency().map(report::ConcurrencyOut::from);
    let result = match result {
        Ok(()) => sink.budget().map(|b| s.budget = b),
        Err(f) => Err(f),
    };
    let failed = close(&mut s.outcome, result);
    s.exit_code = s.outcome.exit_code();
    s.problems = s.outcome.problems.clone();
    tracing::info!(
        exit_code = s.exit_code,
        slices_fetched = s.slices.fetched,
        alarms_new = s.alarms.new,
        detections_new = s.detections.new,
        submitted = s.detections.submitted,
        failed = s.detections.failed,
        concurrency = s.concurrency.map(|c| c.final_limit),
        concurrency_peak = s.concurrency.map(|c| c.peak),
        "run finished"
    );
    record(sink.ledger, run_id, &now, s.exit_code, &s, failed).map(|()| s)
}

/// Resubmits the selected detections through the sync's submit path (batches,
/// bisection on 400, budget, auth stops the run, transient failures leave rows
/// `failed`). A resent `sent` row stays `sent` with its new submission recorded.
/// Records a run of kind `replay`; a dry run does so in an in-memory copy.
pub async fn replay(
    ledger: &mut Writer,
    ci: &ci::Client,
    opts: &ReplayOptions,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<ReplaySummary, Fatal> {
    let states = opts.selection.states().iter();
    let mut s = ReplaySummary {
        command: "replay",
        states: states.map(|st| st.as_str().to_string()).collect(),
        dry_run: opts.dry_run,
        ..ReplaySummary::default()
    };
    s.detections.selected = ledger.count_selected(&opts.selection)?;
    let run_id = ledger.begin_run("replay", now(), None)?;
    s.run_id = (!opts.dry_run).then_some(run_id);
    tracing::info!(
        selected = s.detections.selected,
        dry_run = opts.dry_run,
        "replay started"
    );
    let mut sink = Sink {
        ledger,
        ci,
        now: &now,
        run_id,
        debug: opts.dry_run,
        batch: opts.batch_size,
        budget: opts.daily_budget,
        interrupt: opts.interrupt.as_ref(),
        deadline: None,
    };
    let result = replay_selected(&mut sink, opts, &mut s).await;
    let failed = close(&mut s.outcome, result);
    s.exit_code = s.outcome.exit_code();
    s.problems = s.outcome.problems.clone();
    let d = &s.detections;
    tracing::info!(
        exit_code = s.exit_code,
        submitted = d.submitted,
        failed = d.failed,
        rejected = d.rejected,
        "replay finished"
    );
    record(sink.ledger, run_id, &now, s.exit_code, &s, failed).map(|()| s)
}

async fn replay_selected(
    sink: &mut Sink<'_>,
    opts: &ReplayOptions,
    s: &mut ReplaySummary,
) -> Result<(), Fatal> {
    if s.detections.selected > 0 {
        let (_, now_excluded) = knowledge::rejudge(sink, &opts.policy)?;
        if now_excluded > 0 {
            s.detections.selected = sink.ledger.count_selected(&opts.selection)?;
        }
        let sel = &opts.selection;
        let source =
            |l: &Ledger, after: DetectionId, limit: usize| l.select_detections(sel, after, limit);
        let mut d = DetectionCounts::default();
        let r = sink.submit(&source, &mut d, &mut s.outcome, &|_| {}).await;
        s.detections.submitted = d.submitted;
        s.detections.failed = d.failed;
        s.detections.rejected = d.rejected;
        r?;
    }
    s.budget = sink.budget()?;
    Ok(())
}

/// Folds a run's result into its outcome; returns the failure that stopped it.
fn close(outcome: &mut Outcome, result: Result<(), Fatal>) -> Option<Fatal> {
    let f = result.err()?;
    outcome.fatal(f.code, f.to_string());
    Some(f)
}

/// Records the end of the run; a run that failed returns its failure (a ledger
/// that fails here already failed the run, so the first error is the one told).
fn record<S: Serialize>(
    ledger: &mut Writer,
    run_id: i64,
    now: &dyn Fn() -> DateTime<Utc>,
    exit_code: u8,
    summary: &S,
    failed: Option<Fatal>,
) -> Result<(), Fatal> {
    let json = serde_json::to_string(summary).unwrap_or_default();
    let finished = ledger.finish_run(run_id, now(), exit_code, &json);
    match failed {
        Some(f) => Err(f),
        None => finished.map_err(Fatal::from),
    }
}

fn deadline_passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Runs `f` unless `interrupt` is raised first; then `f` is dropped (its requests
/// abandoned) and `None` returned.
async fn race<F: Future>(interrupt: Option<&Interrupt>, f: F) -> Option<F::Output> {
    match interrupt {
        None => Some(f.await),
        Some(i) => {
            let mut i = i.clone();
            tokio::select! {
                biased;
                () = i.raised() => None,
                v = f => Some(v),
            }
        }
    }
}
