//! Orchestration: the sync engine shared by `sync`, `backfill` and `demo`. The only
//! module that uses every leaf (LogRhythm client, CI client, extraction, ledger).
//!
//! A run is: plan the hourly slices of the window against the coverage map; for each
//! slice not yet covered, list its alarms, decide about each (rule filters, RBP),
//! fetch details and events with bounded concurrency, extract indicators, and write
//! the slice's alarms, indicators and coverage in one transaction; then submit the
//! ledger's pending and failed detections in batches, marking each outcome. Nothing
//! is submitted before it is committed, and `sent` is written only after a 2xx.
//! Clients and ledger are built by the caller and passed in.
//!
//! `replay` ([`replay`]) resubmits chosen ledger rows through the same submit path.
//!
//! # Interruption
//! A run given an [`Interrupt`] stops starting new slices and batches once it is
//! raised (SIGINT/SIGTERM in the CLI): a slice being fetched is abandoned (nothing of
//! it was written, so the next run fetches it again), a CI request in flight is
//! finished (abandoning it could leave CI holding items the ledger does not know were
//! sent), the run is recorded and exits 75 with "interrupted" among its problems. A
//! hard kill loses nothing either: each slice commits in one transaction, and rows
//! are marked `sent` only after CI's 2xx.

use crate::error::{code, Fatal};
use crate::ledger::{
    AlarmOutcome, AlarmRecord, Ledger, Selection, SliceIngest, SubmissionRecord, Writer,
};
use crate::model::{
    AlarmDecision, AlarmId, AlarmRow, Detection, DetectionId, DetectionState, Verdict,
};
use crate::{ci, extract, logrhythm, policy};
use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

/// Fetch attempts for an alarm's details and events before it is left in `error`
/// for an operator (visible in the ledger; `backfill --refetch` tries again).
pub const MAX_FETCH_ATTEMPTS: i64 = 3;

/// Most indicators recorded for one alarm. A real alarm holds a handful; a field
/// stuffed with thousands of values is hostile or broken, and must not flood CI.
/// The alarm's reason in the ledger says when the cap cut it.
pub const MAX_INDICATORS_PER_ALARM: usize = 1000;

/// A slice is one UTC hour.
pub fn slice_len() -> Span {
    Span::hours(1)
}

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
    pub rf_only: bool,
    pub exclude_rules: Vec<String>,
    pub policy: policy::Policy,
    pub page_size: u32,
    pub concurrency: usize,
    pub batch_size: usize,
    pub daily_budget: u64,
    pub deadline: Option<Instant>,
    /// Stops the run between slices and batches when raised.
    pub interrupt: Option<Interrupt>,
    /// Told where the run is after each slice and batch.
    pub progress: Option<ProgressFn>,
}

/// The window of a sync: `[now - lookback, now - settle)`, its start rounded down
/// to the UTC hour so every slice is listed from its beginning.
pub fn window(now: DateTime<Utc>, lookback: Span, settle: Span) -> (DateTime<Utc>, DateTime<Utc>) {
    let to = now - settle;
    let from = floor_hour(now - lookback);
    (from, to.max(from))
}

/// Rounds down to the UTC hour.
pub fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(slice_len()).unwrap_or(t)
}

/// The `--json` summary (DESIGN.md section 2).
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
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AlarmCounts {
    pub seen: u64,
    pub new: u64,
    pub filtered: u64,
    /// Alarms whose details or events could not be fetched this run.
    pub errors: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DetectionCounts {
    pub new: u64,
    pub submitted: u64,
    pub failed: u64,
    pub rejected: u64,
    pub excluded: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BudgetOut {
    pub day: String,
    pub used: u64,
    pub limit: u64,
}

/// Exit-code inputs gathered during a run; the code is decided once at the end.
#[derive(Debug, Default)]
struct Outcome {
    unavailable: bool,
    partial: bool,
    interrupted: bool,
    problems: Vec<String>,
}

impl Outcome {
    fn interrupted(&mut self) {
        if !self.interrupted {
            self.interrupted = true;
            self.partial("interrupted: stopped before the work was done; the next run continues");
        }
    }
    fn partial(&mut self, why: impl Into<String>) {
        self.partial = true;
        self.problems.push(why.into());
    }
    fn unavailable(&mut self, why: impl Into<String>) {
        self.unavailable = true;
        self.problems.push(why.into());
    }
    /// 69 when an API was unavailable, else 75 when partial, else 0.
    fn code(&self) -> u8 {
        if self.unavailable {
            code::UNAVAILABLE
        } else if self.partial {
            code::PARTIAL
        } else {
            code::OK
        }
    }
}

/// The slices of a window, each `[start, end)` clipped to it.
pub fn slices(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut start = floor_hour(from);
    while start < to {
        let end = start + slice_len();
        out.push((start.max(from), end.min(to)));
        start = end;
    }
    out
}

/// What to do about one listed alarm before any per-alarm request: the rule filters.
pub fn rule_decision(row: &AlarmRow, rf_only: bool, exclude_rules: &[String]) -> Option<String> {
    let name = row.rule_name.trim();
    if rf_only && !name.to_lowercase().contains("recorded future") {
        return Some("rule is not a Recorded Future rule (--rf-only)".into());
    }
    if exclude_rules.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Some("rule excluded (--exclude-rules)".into());
    }
    None
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
    let started = now();
    let (from, to) = opts.window;
    let run_id = if opts.dry_run {
        None
    } else {
        Some(ledger.begin_run(opts.kind.as_str(), started, Some((from, to)))?)
    };
    let mut s = Summary {
        run_id,
        command: opts.kind.as_str(),
        window: WindowOut {
            from: crate::ledger::ts(from),
            to: crate::ledger::ts(to),
        },
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    tracing::info!(
        command = opts.kind.as_str(),
        from = %s.window.from,
        to = %s.window.to,
        dry_run = opts.dry_run,
        "run started"
    );
    let mut out = Outcome::default();
    let result = run_inner(ledger, lr, ci, opts, &now, run_id, &mut s, &mut out).await;
    let exit = match &result {
        Ok(()) => out.code(),
        Err(f) => f.code,
    };
    s.exit_code = exit;
    tracing::info!(
        exit_code = exit,
        slices_fetched = s.slices.fetched,
        alarms_new = s.alarms.new,
        detections_new = s.detections.new,
        submitted = s.detections.submitted,
        failed = s.detections.failed,
        "run finished"
    );
    s.problems = out.problems;
    if let Err(f) = &result {
        s.problems.push(f.to_string());
    }
    if let Some(id) = run_id {
        let json = serde_json::to_string(&s).unwrap_or_default();
        // A ledger that fails here already failed the run; report the first error.
        let finished = ledger.finish_run(id, now(), exit, &json);
        if result.is_ok() {
            finished?;
        }
    }
    result.map(|()| s)
}

#[allow(clippy::too_many_arguments)]
async fn run_inner(
    ledger: &mut Writer,
    lr: &logrhythm::Client,
    ci: &ci::Client,
    opts: &RunOptions,
    now: &impl Fn() -> DateTime<Utc>,
    run_id: Option<i64>,
    s: &mut Summary,
    out: &mut Outcome,
) -> Result<(), Fatal> {
    let (from, to) = opts.window;
    let coverage = ledger.coverage(floor_hour(from), to)?;
    // In --dry-run nothing is written, so what this run would add is kept here.
    let mut dry_pending: Vec<Detection> = Vec::new();
    let mut dry_seen: HashSet<(AlarmId, crate::model::IndicatorType, String)> = HashSet::new();
    let plan = slices(from, to);
    s.slices.total = plan.len() as u64;
    let mut done = 0u64;
    let report = |s: &Summary, done: u64, submitting: bool| {
        if let Some(p) = &opts.progress {
            p(&Progress {
                slices_done: done,
                slices_total: s.slices.total,
                alarms: s.alarms.seen,
                sent: s.detections.submitted,
                submitting,
            });
        }
    };
    report(s, 0, false);

    for (slice_from, slice_to) in plan {
        if done > 0 {
            report(s, done, false);
        }
        done += 1;
        if interrupted(opts) {
            out.interrupted();
            break;
        }
        let slice_start = floor_hour(slice_from);
        let retry = ledger.alarms_to_retry(slice_from, slice_to, MAX_FETCH_ATTEMPTS)?;
        let fetch_from = match coverage.get(&slice_start) {
            Some(c) if !opts.refetch && c.covered_until >= slice_to => None,
            Some(c) if !opts.refetch => Some(c.covered_until.max(slice_from)),
            _ => Some(slice_from),
        };
        if fetch_from.is_none() {
            tracing::debug!(slice = %crate::ledger::ts(slice_start), retry = retry.len(), "slice already covered");
            s.slices.covered += 1;
            if retry.is_empty() {
                continue;
            }
        }
        if deadline_passed(opts.deadline) {
            s.slices.failed += 1;
            out.partial("--max-runtime reached before every slice was fetched");
            continue;
        }
        let listing = match fetch_from {
            // Covered: only the alarms left in error are fetched again; no listing.
            None => logrhythm::SliceListing::default(),
            Some(fetch_from) => match interruptible(
                opts,
                lr.list_slice(fetch_from, slice_to, opts.page_size),
            )
            .await
            {
                None => {
                    out.interrupted();
                    break;
                }
                Some(Ok(l)) => {
                    s.slices.fetched += 1;
                    tracing::debug!(
                        slice = %crate::ledger::ts(slice_start),
                        from = %crate::ledger::ts(fetch_from),
                        alarms = l.alarms.len(),
                        pages = l.pages,
                        "slice listed"
                    );
                    l
                }
                Some(Err(e)) if e.tls_failure().is_some() => return Err(lr_tls(&e)),
                Some(Err(e)) if e.is_auth() => {
                    return Err(Fatal::new(
                        code::NO_PERM,
                        anyhow::Error::new(e).context(
                            "LogRhythm rejected the API key: check LOGRHYTHM_API_KEY and the third-party application's permissions",
                        ),
                    ))
                }
                Some(Err(e)) => {
                    s.slices.failed += 1;
                    tracing::warn!(slice = %crate::ledger::ts(slice_start), error = %e, "could not list the slice's alarms");
                    if e.is_transient() {
                        out.unavailable(format!("LogRhythm unavailable: {e}"));
                        // The API is down: the remaining slices would fail the same way.
                        s.slices.failed += slices(slice_to, to).len() as u64;
                        break;
                    }
                    out.partial(format!(
                        "slice {} not listed: {e}",
                        crate::ledger::ts(slice_start)
                    ));
                    continue;
                }
            },
        };
        if !listing.saturated_at.is_empty() {
            s.slices.saturated += 1;
            let at: Vec<String> = listing
                .saturated_at
                .iter()
                .map(|t| crate::ledger::ts(*t))
                .collect();
            tracing::warn!(
                slice = %crate::ledger::ts(slice_start),
                timestamps = %at.join(", "),
                "slice saturated: a full page of alarms shares one dateInserted and the server ignores offset; alarms at that time may be missing"
            );
            out.partial(format!(
                "slice {} saturated at {}",
                crate::ledger::ts(slice_start),
                at.join(", ")
            ));
        }

        // Alarms to process: listed ones not yet decided, plus earlier errors to retry.
        let mut rows: BTreeMap<AlarmId, AlarmRow> = listing
            .alarms
            .into_iter()
            .map(|a| (a.alarm_id, a))
            .collect();
        s.alarms.seen += rows.len() as u64;
        for r in retry {
            rows.entry(r.alarm_id).or_insert(r);
        }
        let ids: Vec<AlarmId> = rows.keys().copied().collect();
        let known = ledger.known_alarms(&ids)?;
        // A pruned alarm (tombstone) is known: never fetched or recorded again.
        let pruned = ledger.pruned_alarms(&ids)?;
        let todo: Vec<(AlarmRow, i64)> = rows
            .into_values()
            .filter(|row| !pruned.contains(&row.alarm_id))
            .filter_map(|row| match known.get(&row.alarm_id) {
                None => Some((row, 0)),
                Some(k)
                    if k.decision == AlarmDecision::Error
                        && k.fetch_attempts < MAX_FETCH_ATTEMPTS =>
                {
                    Some((row, k.fetch_attempts))
                }
                Some(_) => None,
            })
            .collect();
        s.alarms.new += todo.iter().filter(|(_, a)| *a == 0).count() as u64;

        let Some(records) = interruptible(opts, decide_alarms(lr, opts, todo)).await else {
            // Abandoned before anything of this slice was written: fetched again later.
            out.interrupted();
            break;
        };
        let records = records?;
        for rec in &records {
            match &rec.outcome {
                AlarmOutcome::Filtered { .. } => s.alarms.filtered += 1,
                AlarmOutcome::Error { error } | AlarmOutcome::Unavailable { error } => {
                    s.alarms.errors += 1;
                    tracing::warn!(alarm_id = %rec.row.alarm_id, error = %error, "alarm left for a later run");
                }
                AlarmOutcome::Accepted { .. } => {}
            }
        }
        if s.alarms.errors > 0 && !out.problems.iter().any(|p| p.starts_with("some alarms")) {
            out.partial(
                "some alarms' details or events could not be fetched; later runs retry them",
            );
        }

        if opts.dry_run {
            for rec in &records {
                if let AlarmOutcome::Accepted { indicators, .. } = &rec.outcome {
                    for ind in indicators {
                        let key = (rec.row.alarm_id, ind.kind, ind.value.clone());
                        if ledger.detection_state(key.0, key.1, &key.2)?.is_some()
                            || !dry_seen.insert(key)
                        {
                            continue;
                        }
                        match ind.verdict {
                            Verdict::Send => {
                                s.detections.new += 1;
                                dry_pending.push(Detection {
                                    id: DetectionId::from(0),
                                    alarm_id: rec.row.alarm_id,
                                    rule_name: rec.row.rule_name.clone(),
                                    timestamp: rec.row.date_inserted,
                                    kind: ind.kind,
                                    value: ind.value.clone(),
                                    field: ind.field.to_string(),
                                });
                            }
                            Verdict::Exclude(_) => s.detections.excluded += 1,
                        }
                    }
                }
            }
            continue;
        }
        let counts = ledger.ingest(
            &SliceIngest {
                run_id,
                slice_start,
                covered_until: fetch_from.map(|_| slice_to),
                saturated_at: listing.saturated_at.clone(),
                alarms: records,
            },
            now(),
        )?;
        s.detections.new += counts.new_pending;
        s.detections.excluded += counts.new_excluded;
    }

    report(s, done, true);
    if !out.unavailable && !out.interrupted {
        let knobs = Knobs::of(opts);
        let unsent = |l: &Ledger, after: DetectionId, limit: usize| {
            l.detections_to_submit(
                &[DetectionState::Pending, DetectionState::Failed],
                after,
                limit,
            )
        };
        let tick = |d: &DetectionCounts| {
            if let Some(p) = &opts.progress {
                p(&Progress {
                    slices_done: done,
                    slices_total: s.slices.total,
                    alarms: s.alarms.seen,
                    sent: d.submitted,
                    submitting: true,
                });
            }
        };
        let mut d = std::mem::take(&mut s.detections);
        let r = submit(
            ledger,
            ci,
            &knobs,
            now,
            run_id,
            &unsent,
            dry_pending,
            &mut d,
            out,
            &tick,
        )
        .await;
        s.detections = d;
        r?;
    }
    let today = now().date_naive();
    s.budget = BudgetOut {
        day: today.format("%Y-%m-%d").to_string(),
        used: ledger.budget_used(today)?,
        limit: opts.daily_budget,
    };
    Ok(())
}

fn deadline_passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn interrupted(opts: &RunOptions) -> bool {
    opts.interrupt.as_ref().is_some_and(Interrupt::is_raised)
}

/// Runs `f` unless the run's interrupt is raised first; then `f` is dropped (its
/// requests abandoned) and `None` returned.
async fn interruptible<F: Future>(opts: &RunOptions, f: F) -> Option<F::Output> {
    race(opts.interrupt.as_ref(), f).await
}

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

/// Rule filters first (no requests), then details and events for the rest with
/// bounded concurrency.
async fn decide_alarms(
    lr: &logrhythm::Client,
    opts: &RunOptions,
    todo: Vec<(AlarmRow, i64)>,
) -> Result<Vec<AlarmRecord>, Fatal> {
    let mut records = Vec::with_capacity(todo.len());
    let mut fetch = Vec::new();
    for (row, attempts) in todo {
        match rule_decision(&row, opts.rf_only, &opts.exclude_rules) {
            Some(reason) => records.push(AlarmRecord {
                row,
                rbp_max: None,
                outcome: AlarmOutcome::Filtered { reason },
            }),
            None => fetch.push((row, attempts)),
        }
    }
    let mut results = stream::iter(fetch)
        .map(|(row, attempts)| fetch_alarm(lr, opts, row, attempts))
        .buffer_unordered(opts.concurrency.max(1));
    while let Some(r) = results.next().await {
        records.push(r?);
    }
    records.sort_by_key(|r| (r.row.date_inserted, r.row.alarm_id));
    Ok(records)
}

/// A failed details/events fetch: a transient API failure does not count against
/// the alarm's fetch attempts (an outage must never get an alarm abandoned).
fn fetch_error(e: &logrhythm::Error) -> AlarmOutcome {
    let error = e.to_string();
    if e.is_transient() {
        AlarmOutcome::Unavailable { error }
    } else {
        AlarmOutcome::Error { error }
    }
}

async fn fetch_alarm(
    lr: &logrhythm::Client,
    opts: &RunOptions,
    row: AlarmRow,
    attempts: i64,
) -> Result<AlarmRecord, Fatal> {
    let auth = |e: logrhythm::Error| {
        Fatal::new(
            code::NO_PERM,
            anyhow::Error::new(e)
                .context("LogRhythm rejected the API key: check LOGRHYTHM_API_KEY"),
        )
    };
    let details = match lr.details(row.alarm_id).await {
        Ok(d) => d,
        Err(e) if e.tls_failure().is_some() => return Err(lr_tls(&e)),
        Err(e) if e.is_auth() => return Err(auth(e)),
        Err(e) => {
            return Ok(AlarmRecord {
                row,
                rbp_max: None,
                outcome: fetch_error(&e),
            })
        }
    };
    if let Some(min) = opts.min_rbp {
        let rbp = details.rbp_max.unwrap_or(0);
        if rbp < min {
            return Ok(AlarmRecord {
                row,
                rbp_max: details.rbp_max,
                outcome: AlarmOutcome::Filtered {
                    reason: format!("rbpMax {rbp} below --min-rbp {min}"),
                },
            });
        }
    }
    let events = match lr.events(row.alarm_id).await {
        Ok(ev) => ev,
        Err(e) if e.tls_failure().is_some() => return Err(lr_tls(&e)),
        Err(e) if e.is_auth() => return Err(auth(e)),
        Err(e) => {
            return Ok(AlarmRecord {
                row,
                rbp_max: details.rbp_max,
                outcome: fetch_error(&e),
            })
        }
    };
    // Events can be empty right after an alarm fires; give them a few runs to appear.
    if events.is_empty() && attempts + 1 < MAX_FETCH_ATTEMPTS {
        let error = format!("events of alarm {}: none yet", row.alarm_id);
        return Ok(AlarmRecord {
            row,
            rbp_max: details.rbp_max,
            outcome: AlarmOutcome::Error { error },
        });
    }
    let mut indicators = extract::indicators(&events, &opts.policy);
    let mut note = None;
    if indicators.len() > MAX_INDICATORS_PER_ALARM {
        let found = indicators.len();
        indicators.truncate(MAX_INDICATORS_PER_ALARM);
        tracing::warn!(
            alarm_id = %row.alarm_id,
            found,
            kept = MAX_INDICATORS_PER_ALARM,
            "alarm holds more indicators than the per-alarm cap; the rest are not recorded"
        );
        note = Some(format!(
            "indicators capped: kept the first {MAX_INDICATORS_PER_ALARM} of {found}"
        ));
    }
    Ok(AlarmRecord {
        row,
        rbp_max: details.rbp_max,
        outcome: AlarmOutcome::Accepted {
            event_count: events.len(),
            indicators,
            note,
        },
    })
}

/// What `replay` resubmits and how.
pub struct ReplayOptions {
    /// The detections to resubmit (never `excluded` ones: the policy keeps them on site).
    pub selection: Selection,
    /// Post with `debug: true` and record nothing.
    pub dry_run: bool,
    pub batch_size: usize,
    pub daily_budget: u64,
    /// Stops the replay between batches when raised.
    pub interrupt: Option<Interrupt>,
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

/// Resubmits the selected detections through the sync's submit path (batches,
/// bisection on 400, budget, auth stops the run, transient failures leave rows
/// `failed`). A resent `sent` row stays `sent` with its new submission recorded.
/// Records a run of kind `replay` unless `dry_run`.
pub async fn replay(
    ledger: &mut Writer,
    ci: &ci::Client,
    opts: &ReplayOptions,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<ReplaySummary, Fatal> {
    let mut s = ReplaySummary {
        command: "replay",
        states: opts
            .selection
            .states()
            .iter()
            .map(|st| st.as_str().to_string())
            .collect(),
        dry_run: opts.dry_run,
        ..ReplaySummary::default()
    };
    s.detections.selected = ledger.count_selected(&opts.selection)?;
    let run_id = if opts.dry_run {
        None
    } else {
        Some(ledger.begin_run("replay", now(), None)?)
    };
    s.run_id = run_id;
    tracing::info!(
        selected = s.detections.selected,
        dry_run = opts.dry_run,
        "replay started"
    );
    let mut out = Outcome::default();
    let knobs = Knobs {
        batch_size: opts.batch_size,
        daily_budget: opts.daily_budget,
        deadline: None,
        dry_run: opts.dry_run,
        interrupt: opts.interrupt.as_ref(),
    };
    let sel = &opts.selection;
    let source =
        |l: &Ledger, after: DetectionId, limit: usize| l.select_detections(sel, after, limit);
    let mut d = DetectionCounts::default();
    let result = if s.detections.selected == 0 {
        Ok(())
    } else {
        submit(
            ledger,
            ci,
            &knobs,
            &now,
            run_id,
            &source,
            Vec::new(),
            &mut d,
            &mut out,
            &|_| {},
        )
        .await
    };
    s.detections.submitted = d.submitted;
    s.detections.failed = d.failed;
    s.detections.rejected = d.rejected;
    let today = now().date_naive();
    s.budget = BudgetOut {
        day: today.format("%Y-%m-%d").to_string(),
        used: ledger.budget_used(today)?,
        limit: opts.daily_budget,
    };
    s.exit_code = match &result {
        Ok(()) => out.code(),
        Err(f) => f.code,
    };
    s.problems = out.problems;
    if let Err(f) = &result {
        s.problems.push(f.to_string());
    }
    tracing::info!(
        exit_code = s.exit_code,
        submitted = s.detections.submitted,
        failed = s.detections.failed,
        rejected = s.detections.rejected,
        "replay finished"
    );
    if let Some(id) = run_id {
        let json = serde_json::to_string(&s).unwrap_or_default();
        let finished = ledger.finish_run(id, now(), s.exit_code, &json);
        if result.is_ok() {
            finished?;
        }
    }
    result.map(|()| s)
}

/// The submit path's knobs, shared by `sync`, `backfill` and `replay`.
struct Knobs<'a> {
    batch_size: usize,
    daily_budget: u64,
    deadline: Option<Instant>,
    dry_run: bool,
    interrupt: Option<&'a Interrupt>,
}

impl<'a> Knobs<'a> {
    fn of(opts: &'a RunOptions) -> Knobs<'a> {
        Knobs {
            batch_size: opts.batch_size,
            daily_budget: opts.daily_budget,
            deadline: opts.deadline,
            dry_run: opts.dry_run,
            interrupt: opts.interrupt.as_ref(),
        }
    }
}

/// Pages through the detections to submit: `(ledger, after_id, limit)`, ids ascending.
type Source<'a> = dyn Fn(&Ledger, DetectionId, usize) -> crate::ledger::Result<Vec<Detection>> + 'a;

/// Submits what `source` yields, in batches, within the daily budget. A 400 is
/// narrowed to the offending detection by splitting the batch; a 413 splits it. In
/// a dry run, `extra` (what the run would have recorded) goes first, everything is
/// posted with `debug: true` and nothing is recorded.
#[allow(clippy::too_many_arguments)]
async fn submit(
    ledger: &mut Writer,
    ci: &ci::Client,
    k: &Knobs<'_>,
    now: &impl Fn() -> DateTime<Utc>,
    run_id: Option<i64>,
    source: &Source<'_>,
    extra: Vec<Detection>,
    d: &mut DetectionCounts,
    out: &mut Outcome,
    tick: &dyn Fn(&DetectionCounts),
) -> Result<(), Fatal> {
    let batch = k.batch_size.max(1);
    let stop = |out: &mut Outcome| {
        if k.interrupt.is_some_and(Interrupt::is_raised) {
            out.interrupted();
            return true;
        }
        if deadline_passed(k.deadline) {
            out.partial("--max-runtime reached before everything was submitted");
            return true;
        }
        false
    };
    if k.dry_run {
        // Debug submissions are validated by CI and not stored; nothing is recorded.
        let mut after_id = DetectionId::from(0);
        let mut extra = Some(extra);
        loop {
            if stop(out) {
                break;
            }
            let chunk = match extra.take() {
                Some(e) if !e.is_empty() => e,
                _ => {
                    let page = source(ledger, after_id, batch)?;
                    let Some(last) = page.last() else { break };
                    after_id = last.id;
                    page
                }
            };
            for part in chunk.chunks(batch) {
                match ci.submit(part, true).await {
                    Ok(_) => {
                        tracing::debug!(items = part.len(), "dry-run batch validated");
                        d.submitted += part.len() as u64;
                    }
                    Err(e) if e.tls_failure().is_some() => return Err(rf_tls(&e)),
                    Err(e) if e.is_auth() => return Err(ci_auth(e)),
                    Err(e) => {
                        d.failed += part.len() as u64;
                        out.partial(format!("dry-run submission failed: {e}"));
                    }
                }
                tick(d);
            }
        }
        return Ok(());
    }

    let today = now().date_naive();
    let mut used = ledger.budget_used(today)?;
    let mut after_id = DetectionId::from(0);
    loop {
        let todo = source(ledger, after_id, batch)?;
        let Some(last) = todo.last() else { break };
        if stop(out) {
            break;
        }
        let left = k.daily_budget.saturating_sub(used);
        if left == 0 {
            out.partial(format!(
                "daily budget of {} detections reached; the rest waits for the next UTC day",
                k.daily_budget
            ));
            break;
        }
        after_id = last.id;
        let take = usize::try_from(left).unwrap_or(usize::MAX).min(todo.len());
        let items = &todo[..take];
        let end = submit_batch(ledger, ci, now, run_id, items, d).await?;
        tick(d);
        match end {
            BatchEnd::Done { sent, failed } => {
                used += sent;
                if let Some(e) = failed {
                    out.partial(format!("some detections failed: {e}"));
                }
            }
            BatchEnd::Unavailable(e) => {
                out.unavailable(format!("Collective Insights unavailable: {e}"));
                break;
            }
        }
    }
    Ok(())
}

enum BatchEnd {
    /// Every part answered; `failed` holds the error of a part left `failed` by a
    /// non-transient error, if any.
    Done {
        sent: u64,
        failed: Option<String>,
    },
    Unavailable(String),
}

/// A TLS failure talking to LogRhythm (untrusted certificate, wrong name,
/// expired, no common protocol) is a configuration error: exit 78 with one line
/// of advice; the full cause chain goes to the log.
fn lr_tls(e: &logrhythm::Error) -> Fatal {
    let mut chain = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        chain.push_str(": ");
        chain.push_str(&c.to_string());
        cause = c.source();
    }
    tracing::error!(error = %chain, "TLS handshake with LogRhythm failed");
    Fatal::msg(
        code::CONFIG,
        e.tls_advice().unwrap_or_else(|| e.to_string()),
    )
}

/// A TLS failure talking to Recorded Future is a configuration error: exit 78;
/// what was not sent stays pending for the next run. `--lr-ca-cert` and
/// `--lr-insecure` never apply to it.
fn rf_tls(e: &ci::Error) -> Fatal {
    tracing::error!(error = %e, "TLS handshake with Recorded Future failed");
    let failure = e
        .tls_failure()
        .map_or_else(|| e.to_string(), ToString::to_string);
    Fatal::msg(
        code::CONFIG,
        format!("Recorded Future's TLS certificate is not accepted ({failure}): RF_API_URL must present a publicly trusted certificate (--lr-ca-cert and --lr-insecure apply to LogRhythm only)"),
    )
}

fn ci_auth(e: ci::Error) -> Fatal {
    Fatal::new(
        code::NO_PERM,
        anyhow::Error::new(e).context(
            "Recorded Future rejected the token: check RF_API_KEY and that the token has the Collective Insights permission",
        ),
    )
}

/// One batch, split on 400/413 until each part is accepted or a single detection is
/// rejected. A transient failure marks what is left `failed` and stops.
async fn submit_batch(
    ledger: &mut Writer,
    ci: &ci::Client,
    now: &impl Fn() -> DateTime<Utc>,
    run_id: Option<i64>,
    items: &[Detection],
    d: &mut DetectionCounts,
) -> Result<BatchEnd, Fatal> {
    let mut sent = 0u64;
    let mut failed = None;
    let mut stack: Vec<&[Detection]> = vec![items];
    while let Some(part) = stack.pop() {
        let ids: Vec<DetectionId> = part.iter().map(|d| d.id).collect();
        let record = |status: Option<u16>, processed: Option<String>| SubmissionRecord {
            run_id,
            at: now(),
            debug: false,
            http_status: status,
            processed,
        };
        match ci.submit(part, false).await {
            Ok(o) => {
                let processed = o
                    .processed
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok());
                ledger.mark_sent(&ids, &record(Some(200), processed))?;
                tracing::debug!(items = part.len(), "batch submitted");
                d.submitted += part.len() as u64;
                sent += part.len() as u64;
            }
            Err(e) if e.tls_failure().is_some() => return Err(rf_tls(&e)),
            Err(e) if e.is_auth() => return Err(ci_auth(e)),
            Err(ci::Error::Rejected { message, .. }) if part.len() == 1 => {
                tracing::warn!(detection = %ids[0], reason = %message, "Collective Insights rejected a detection");
                ledger.mark_rejected(ids[0], &record(Some(400), None), &message)?;
                d.rejected += 1;
            }
            Err(e @ (ci::Error::Rejected { .. } | ci::Error::TooLarge { .. }))
                if part.len() > 1 =>
            {
                tracing::info!(items = part.len(), error = %e, "splitting the batch");
                let (a, b) = part.split_at(part.len() / 2);
                // Pop order: first half first.
                stack.push(b);
                stack.push(a);
            }
            Err(e) => {
                let msg = e.to_string();
                let mut left: Vec<DetectionId> = ids;
                for p in &stack {
                    left.extend(p.iter().map(|d| d.id));
                }
                ledger.mark_failed(&left, &record(e.status(), None), &msg)?;
                d.failed += left.len() as u64;
                if e.is_transient() {
                    return Ok(BatchEnd::Unavailable(msg));
                }
                failed = Some(msg);
                stack.clear();
            }
        }
    }
    Ok(BatchEnd::Done { sent, failed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn window_starts_on_the_hour_and_ends_settle_before_now() {
        let (f, to) = window(t(27, 20, 53), Span::days(1), Span::minutes(2));
        assert_eq!(f, t(26, 20, 0));
        assert_eq!(to, t(27, 20, 51));
    }

    #[test]
    fn slices_are_utc_hours_clipped_to_the_window() {
        let s = slices(t(27, 10, 0), t(27, 12, 30));
        assert_eq!(
            s,
            vec![
                (t(27, 10, 0), t(27, 11, 0)),
                (t(27, 11, 0), t(27, 12, 0)),
                (t(27, 12, 0), t(27, 12, 30)),
            ]
        );
        assert!(slices(t(27, 10, 0), t(27, 10, 0)).is_empty());
    }

    #[test]
    fn rule_filters() {
        let row = |name: &str| AlarmRow {
            alarm_id: 1.into(),
            rule_name: name.into(),
            status: 0,
            entity_name: String::new(),
            date_inserted: t(27, 1, 0),
        };
        let ex = vec!["Noisy Rule".to_string()];
        for (name, rf_only, filtered) in [
            ("Recorded Future: Risk List Match - IP", true, false),
            ("AIE: recorded future c2", true, false),
            ("AIE: Port Scan", true, true),
            ("AIE: Port Scan", false, false),
            ("noisy rule", false, true),
            ("  Noisy Rule ", false, true),
        ] {
            assert_eq!(
                rule_decision(&row(name), rf_only, &ex).is_some(),
                filtered,
                "{name} rf_only={rf_only}"
            );
        }
    }
}
