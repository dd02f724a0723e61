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

use crate::error::{code, Fatal};
use crate::ledger::{AlarmOutcome, AlarmRecord, Ledger, SliceIngest, SubmissionRecord};
use crate::model::{AlarmRow, Detection, DetectionState, Verdict};
use crate::{ci, extract, logrhythm, policy};
use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
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
    problems: Vec<String>,
}

impl Outcome {
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
    ledger: &mut Ledger,
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
    ledger: &mut Ledger,
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
    let mut dry_seen: HashSet<(i64, crate::model::IndicatorType, String)> = HashSet::new();

    for (slice_from, slice_to) in slices(from, to) {
        s.slices.total += 1;
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
            Some(fetch_from) => match lr.list_slice(fetch_from, slice_to, opts.page_size).await {
                Ok(l) => {
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
                Err(e) if e.tls_failure().is_some() => return Err(lr_tls(&e)),
                Err(e) if e.is_auth() => {
                    return Err(Fatal::new(
                        code::NO_PERM,
                        anyhow::Error::new(e).context(
                            "LogRhythm rejected the API key: check LOGRHYTHM_API_KEY and the third-party application's permissions",
                        ),
                    ))
                }
                Err(e) => {
                    s.slices.failed += 1;
                    tracing::warn!(slice = %crate::ledger::ts(slice_start), error = %e, "could not list the slice's alarms");
                    if e.is_transient() {
                        out.unavailable(format!("LogRhythm unavailable: {e}"));
                        // The API is down: the remaining slices would fail the same way.
                        let remaining = slices(slice_to, to).len() as u64;
                        s.slices.total += remaining;
                        s.slices.failed += remaining;
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
        let mut rows: BTreeMap<i64, AlarmRow> = listing
            .alarms
            .into_iter()
            .map(|a| (a.alarm_id, a))
            .collect();
        s.alarms.seen += rows.len() as u64;
        for r in retry {
            rows.entry(r.alarm_id).or_insert(r);
        }
        let ids: Vec<i64> = rows.keys().copied().collect();
        let known = ledger.known_alarms(&ids)?;
        let todo: Vec<(AlarmRow, i64)> = rows
            .into_values()
            .filter_map(|row| match known.get(&row.alarm_id) {
                None => Some((row, 0)),
                Some(k) if k.decision == "error" && k.fetch_attempts < MAX_FETCH_ATTEMPTS => {
                    Some((row, k.fetch_attempts))
                }
                Some(_) => None,
            })
            .collect();
        s.alarms.new += todo.iter().filter(|(_, a)| *a == 0).count() as u64;

        let records = decide_alarms(lr, opts, todo).await?;
        for rec in &records {
            match &rec.outcome {
                AlarmOutcome::Filtered { .. } => s.alarms.filtered += 1,
                AlarmOutcome::Error { error } => {
                    s.alarms.errors += 1;
                    tracing::warn!(alarm_id = rec.row.alarm_id, error = %error, "alarm left for a later run");
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
                                    id: 0,
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

    if !out.unavailable {
        submit(ledger, ci, opts, now, run_id, dry_pending, s, out).await?;
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
                outcome: AlarmOutcome::Error {
                    error: e.to_string(),
                },
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
                outcome: AlarmOutcome::Error {
                    error: e.to_string(),
                },
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
            alarm_id = row.alarm_id,
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

/// Submits what is pending or failed, in batches, within the daily budget. A 400 is
/// narrowed to the offending detection by splitting the batch; a 413 splits it.
#[allow(clippy::too_many_arguments)]
async fn submit(
    ledger: &mut Ledger,
    ci: &ci::Client,
    opts: &RunOptions,
    now: &impl Fn() -> DateTime<Utc>,
    run_id: Option<i64>,
    dry_pending: Vec<Detection>,
    s: &mut Summary,
    out: &mut Outcome,
) -> Result<(), Fatal> {
    let batch = opts.batch_size.max(1);
    if opts.dry_run {
        // Debug submissions are validated by CI and not stored; nothing is recorded.
        let mut queue = dry_pending;
        queue.extend(ledger.detections_to_submit(
            &[DetectionState::Pending, DetectionState::Failed],
            0,
            usize::MAX,
        )?);
        for chunk in queue.chunks(batch) {
            match ci.submit(chunk, true).await {
                Ok(_) => {
                    tracing::debug!(items = chunk.len(), "dry-run batch validated");
                    s.detections.submitted += chunk.len() as u64;
                }
                Err(e) if e.tls_failure().is_some() => return Err(rf_tls(&e)),
                Err(e) if e.tls_failure().is_some() => return Err(rf_tls(&e)),
                Err(e) if e.is_auth() => return Err(ci_auth(e)),
                Err(e) => {
                    s.detections.failed += chunk.len() as u64;
                    out.partial(format!("dry-run submission failed: {e}"));
                }
            }
        }
        return Ok(());
    }

    let today = now().date_naive();
    let mut used = ledger.budget_used(today)?;
    let mut after_id = 0;
    loop {
        if deadline_passed(opts.deadline) {
            out.partial("--max-runtime reached before everything was submitted");
            break;
        }
        let left = opts.daily_budget.saturating_sub(used);
        let todo = ledger.detections_to_submit(
            &[DetectionState::Pending, DetectionState::Failed],
            after_id,
            batch,
        )?;
        let Some(last) = todo.last() else { break };
        if left == 0 {
            out.partial(format!(
                "daily budget of {} detections reached; the rest waits for the next UTC day",
                opts.daily_budget
            ));
            break;
        }
        after_id = last.id;
        let take = usize::try_from(left).unwrap_or(usize::MAX).min(todo.len());
        let items = &todo[..take];
        match submit_batch(ledger, ci, now, run_id, items, s).await? {
            BatchEnd::Done { sent } => used += sent,
            BatchEnd::Unavailable(e) => {
                out.unavailable(format!("Collective Insights unavailable: {e}"));
                break;
            }
        }
    }
    Ok(())
}

enum BatchEnd {
    Done { sent: u64 },
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
    ledger: &mut Ledger,
    ci: &ci::Client,
    now: &impl Fn() -> DateTime<Utc>,
    run_id: Option<i64>,
    items: &[Detection],
    s: &mut Summary,
) -> Result<BatchEnd, Fatal> {
    let mut sent = 0u64;
    let mut stack: Vec<&[Detection]> = vec![items];
    while let Some(part) = stack.pop() {
        let ids: Vec<i64> = part.iter().map(|d| d.id).collect();
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
                s.detections.submitted += part.len() as u64;
                sent += part.len() as u64;
            }
            Err(e) if e.tls_failure().is_some() => return Err(rf_tls(&e)),
            Err(e) if e.is_auth() => return Err(ci_auth(e)),
            Err(ci::Error::Rejected { message, .. }) if part.len() == 1 => {
                tracing::warn!(detection = ids[0], reason = %message, "Collective Insights rejected a detection");
                ledger.mark_rejected(ids[0], &record(Some(400), None), &message)?;
                s.detections.rejected += 1;
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
                let mut left: Vec<i64> = ids;
                for p in &stack {
                    left.extend(p.iter().map(|d| d.id));
                }
                ledger.mark_failed(&left, &record(e.status(), None), &msg)?;
                s.detections.failed += left.len() as u64;
                if e.is_transient() {
                    return Ok(BatchEnd::Unavailable(msg));
                }
                stack.clear();
            }
        }
    }
    Ok(BatchEnd::Done { sent })
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
            alarm_id: 1,
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
