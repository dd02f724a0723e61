//! The fetch driver of `sync` and `backfill`: walks the plan's slices, lists and
//! fetches what triage says, writes each slice in one transaction, then hands
//! the due detections to the submit driver. I/O only; the decisions are in
//! `plan`, `triage` and `failure`.

use super::report::{DetectionCounts, Summary};
use super::send::Sink;
use super::{deadline_passed, failure, plan, race, server, triage, Progress, RunOptions};
use crate::error::Fatal;
use crate::ledger::{AlarmOutcome, AlarmRecord, Coverage, Ledger, SliceIngest};
use crate::model::{AlarmId, DetectionId};
use crate::model::{AlarmRow, Observations};
use crate::policy::Policy;
use crate::{extract, logrhythm};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashSet};

type Slice = (DateTime<Utc>, DateTime<Utc>);

/// Whether the walk over the slices goes on.
enum Flow {
    Next,
    Stop,
}

/// Tells the progress callback where the run is.
fn progress(opts: &RunOptions, s: &Summary, done: u64, sent: u64, submitting: bool) {
    if let Some(p) = &opts.progress {
        p(&Progress {
            slices_done: done,
            slices_total: s.slices.total,
            alarms: s.alarms.seen,
            sent,
            submitting,
        });
    }
}

/// The whole sync: every slice of the window, then submission.
pub(super) async fn sync(
    sink: &mut Sink<'_>,
    lr: &logrhythm::Client,
    opts: &RunOptions,
    s: &mut Summary,
) -> Result<(), Fatal> {
    let (from, to) = opts.window;
    let coverage = sink.ledger.coverage(plan::floor_hour(from), to)?;
    let slices = plan::slices(from, to);
    let (paging, mut watch) = if slices.is_empty() {
        (logrhythm::Paging::new(opts.page_size), None)
    } else {
        let now = (sink.now)();
        let prepared = server::prepare(sink.ledger, lr, from, now, opts.page_size);
        let Some(prepared) = race(sink.interrupt, prepared).await else {
            // Stopped while probing: nothing listed, nothing lost.
            s.slices.total = slices.len() as u64;
            s.outcome.interrupted();
            return Ok(());
        };
        let (p, w) = prepared?;
        (p, Some(w))
    };
    let lister = Lister {
        lr,
        paging,
        watch: watch.as_mut(),
    };
    let result = walk(sink, lister, opts, s, slices, &coverage).await;
    if let Some(w) = watch {
        w.finish(sink.ledger)?;
    }
    result
}

/// The LogRhythm side of a run: the client, how it pages, and the watch over
/// what listings show of the server.
struct Lister<'w> {
    lr: &'w logrhythm::Client,
    paging: logrhythm::Paging,
    watch: Option<&'w mut server::Watch>,
}

/// Every slice, then submission.
async fn walk(
    sink: &mut Sink<'_>,
    mut lister: Lister<'_>,
    opts: &RunOptions,
    s: &mut Summary,
    slices: Vec<Slice>,
    coverage: &BTreeMap<DateTime<Utc>, Coverage>,
) -> Result<(), Fatal> {
    s.slices.total = slices.len() as u64;
    progress(opts, s, 0, 0, false);
    let mut done = 0u64;
    for slice in slices {
        if done > 0 {
            progress(opts, s, done, 0, false);
        }
        done += 1;
        if sink.interrupt.is_some_and(super::Interrupt::is_raised) {
            s.outcome.interrupted();
            break;
        }
        let cov = coverage.get(&plan::floor_hour(slice.0));
        // What earlier slices taught is used by the next one.
        let policy = super::knowledge::current(sink.ledger, &opts.policy)?;
        if let Flow::Stop = one_slice(sink, &mut lister, (opts, &policy), (slice, cov), s).await? {
            break;
        }
    }
    progress(opts, s, done, s.detections.submitted, true);
    let lag = sink
        .ledger
        .visibility_lag((sink.now)() - chrono::Duration::days(1))?;
    if let Some(skew) = lister.lr.clock_skew() {
        let secs = skew.num_milliseconds() as f64 / 1000.0;
        s.visibility.clock_skew_seconds = Some(secs);
        if let Some(w) = plan::skew_warning(skew) {
            tracing::warn!(skew_seconds = secs, "{w}");
        }
    }
    s.visibility.lag_seconds = lag;
    s.visibility.relist_horizon_seconds = opts.relist_horizon.num_seconds();
    let late = s.visibility.late_lag_seconds;
    if let Some(w) = super::report::lag_warning(late, opts.relist_horizon.num_seconds()) {
        tracing::warn!("{w}");
    }
    // Learning is complete for this run: judge what waits again with everything
    // now known, so nothing learned from a later alarm of this run leaves.
    let (policy, now_excluded) = super::knowledge::rejudge(sink, &opts.policy)?;
    s.detections.excluded += now_excluded;
    s.detections.new = s.detections.new.saturating_sub(now_excluded);
    super::knowledge::warn_unjudged(sink.ledger, &policy, s)?;
    if !s.outcome.may_submit() {
        return Ok(());
    }
    let unsent = |l: &Ledger, after: DetectionId, limit: usize| {
        l.detections_to_submit(&super::submit::DUE_STATES, after, limit)
    };
    let (total, seen) = (s.slices.total, s.alarms.seen);
    let tick = |d: &DetectionCounts| {
        if let Some(p) = &opts.progress {
            p(&Progress {
                slices_done: done,
                slices_total: total,
                alarms: seen,
                sent: d.submitted,
                submitting: true,
            });
        }
    };
    sink.submit(&unsent, &mut s.detections, &mut s.outcome, &tick)
        .await
}

/// Alarms left in error in this slice that the retry rule says are due.
fn due_retries(ledger: &Ledger, slice: Slice) -> Result<Vec<AlarmRow>, Fatal> {
    let candidates = ledger.alarms_to_retry(slice.0, slice.1)?;
    let ids: Vec<AlarmId> = candidates.iter().map(|r| r.alarm_id).collect();
    let known = ledger.known_alarms(&ids)?;
    Ok(candidates
        .into_iter()
        .filter(|r| triage::attempts_if_due(known.get(&r.alarm_id), false).is_some())
        .collect())
}

/// One slice: plan, list, triage, fetch, record.
async fn one_slice(
    sink: &mut Sink<'_>,
    lister: &mut Lister<'_>,
    (opts, policy): (&RunOptions, &Policy),
    (slice, cov): (Slice, Option<&Coverage>),
    s: &mut Summary,
) -> Result<Flow, Fatal> {
    let lr = lister.lr;
    let slice_start = plan::floor_hour(slice.0);
    let retry = due_retries(sink.ledger, slice)?;
    let provisional_from = (sink.now)() - opts.relist_horizon;
    let fetch_from = plan::fetch_from(slice, cov, opts.refetch, provisional_from);
    let step = plan::step(fetch_from, retry.len(), deadline_passed(sink.deadline));
    if step.covered {
        tracing::debug!(slice = %crate::ledger::ts(slice_start), retry = retry.len(), "slice already covered");
        s.slices.covered += 1;
    }
    let (listing, listed) = match step.action {
        plan::Action::Skip => return Ok(Flow::Next),
        plan::Action::OutOfTime => {
            s.slices.failed += 1;
            s.outcome
                .partial("--max-runtime reached before every slice was fetched");
            return Ok(Flow::Next);
        }
        // Covered: only the alarms left in error are fetched again; no listing.
        plan::Action::RetryOnly => (logrhythm::SliceListing::default(), false),
        plan::Action::List(at) => match list(sink, lister, opts, (at, slice.1), s).await? {
            Ok(l) => (l, true),
            Err(flow) => return Ok(flow),
        },
    };
    note_saturation(&listing, slice_start, s);
    let saturated_at = listing.saturated_at.clone();
    let (todo, fresh) = alarms_todo(sink.ledger, listing.alarms, retry, s)?;
    if let Some(c) = cov {
        // Late: never seen before, though its time was listed already (an
        // alarm waiting for its events is listed again too, but is not new).
        let late: Vec<&AlarmRow> = todo
            .iter()
            .filter(|(row, _)| fresh.contains(&row.alarm_id) && row.date_inserted < c.covered_until)
            .map(|(row, _)| row)
            .collect();
        let now = (sink.now)();
        for row in &late {
            // At most this late: it was not listable when its time was listed.
            let lag = (now - row.date_inserted).num_milliseconds() as f64 / 1000.0;
            let worst = s.visibility.late_lag_seconds.get_or_insert(lag);
            *worst = worst.max(lag);
        }
        let late = late.len() as u64;
        if late > 0 {
            tracing::info!(slice = %crate::ledger::ts(slice_start), late, "alarms became listable after their time was listed: found by re-listing provisional time");
            s.alarms.late += late;
        }
    }
    let Some(records) = race(sink.interrupt, decide_alarms(lr, (opts, policy), todo)).await else {
        // Abandoned before anything of this slice was written: fetched again later.
        s.outcome.interrupted();
        return Ok(Flow::Stop);
    };
    let fetched = records?;
    let mut records = Vec::with_capacity(fetched.len());
    let mut observations = Vec::new();
    for (rec, obs) in fetched {
        if let Some(obs) = obs {
            observations.push((rec.row.alarm_id, obs));
        }
        records.push(rec);
    }
    count_records(&records, s);
    let batch = SliceIngest {
        run_id: Some(sink.run_id),
        slice_start,
        covered_until: fetch_from
            .and_then(|_| plan::covered_until(slice, (sink.now)(), lr.clock_skew())),
        saturated_at,
        listed_from: fetch_from,
        alarms: records,
        observations,
    };
    let counts = sink.ledger.ingest(&batch, (sink.now)())?;
    s.detections.new += counts.new_pending;
    s.detections.excluded += counts.new_excluded;
    // Counted once committed: a slice abandoned by an interrupt was not fetched.
    s.slices.fetched += u64::from(listed);
    Ok(Flow::Next)
}

/// Lists `[from, to)`; a failure is counted and says how the walk goes on.
async fn list(
    sink: &Sink<'_>,
    lister: &mut Lister<'_>,
    opts: &RunOptions,
    (from, to): Slice,
    s: &mut Summary,
) -> Result<Result<logrhythm::SliceListing, Flow>, Fatal> {
    let slice = crate::ledger::ts(plan::floor_hour(from));
    let listing = lister.lr.list_slice(from, to, &lister.paging);
    let Some(listed) = race(sink.interrupt, listing).await else {
        s.outcome.interrupted();
        return Ok(Err(Flow::Stop));
    };
    let e = match listed {
        Ok(l) => {
            if let Some(w) = lister.watch.as_deref_mut() {
                w.observe(&l);
            }
            let from = crate::ledger::ts(from);
            tracing::debug!(slice = %slice, from = %from, alarms = l.alarms.len(), pages = l.pages, "slice listed");
            return Ok(Ok(l));
        }
        Err(e) => failure::lr(e)?,
    };
    s.slices.failed += 1;
    tracing::warn!(slice = %slice, error = %e.error, "could not list the slice's alarms");
    if e.transient && deadline_passed(sink.deadline) {
        // The request ran into --max-runtime: the run's own limit, not an outage.
        s.outcome.partial_once(
            "--max-runtime reached before every slice was listed; the next run continues",
        );
        s.slices.failed += plan::slices(to, opts.window.1).len() as u64;
        return Ok(Err(Flow::Stop));
    }
    if e.transient {
        s.outcome
            .unavailable(format!("LogRhythm unavailable: {}", e.error));
        // The API is down: the remaining slices would fail the same way.
        s.slices.failed += plan::slices(to, opts.window.1).len() as u64;
        return Ok(Err(Flow::Stop));
    }
    s.outcome
        .partial(format!("slice {slice} not listed: {}", e.error));
    Ok(Err(Flow::Next))
}

fn note_saturation(listing: &logrhythm::SliceListing, slice_start: DateTime<Utc>, s: &mut Summary) {
    s.slices.partitioned += listing.partitioned_at.len() as u64;
    if listing.saturated_at.is_empty() {
        return;
    }
    s.slices.saturated += 1;
    let at: Vec<String> = listing
        .saturated_at
        .iter()
        .map(|t| crate::ledger::ts(*t))
        .collect();
    let slice = crate::ledger::ts(slice_start);
    tracing::warn!(
        slice = %slice,
        timestamps = %at.join(", "),
        "slice saturated: a full page of alarms shares one dateInserted, the server ignores offset and the list filters cannot split it; alarms at that time may be missing, and every run lists it again until it gets through"
    );
    s.outcome
        .partial(format!("slice {slice} saturated at {}", at.join(", ")));
}

/// Alarms to fetch, with the fetch attempts each has spent.
type Todo = Vec<(AlarmRow, i64)>;

/// Alarms to process: listed ones and due retries the retry rule lets through,
/// with the fetch attempts each has spent; and which of them the ledger has
/// never seen.
fn alarms_todo(
    ledger: &Ledger,
    listed: Vec<AlarmRow>,
    retry: Vec<AlarmRow>,
    s: &mut Summary,
) -> Result<(Todo, HashSet<AlarmId>), Fatal> {
    let mut rows: BTreeMap<AlarmId, AlarmRow> =
        listed.into_iter().map(|a| (a.alarm_id, a)).collect();
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
        .filter_map(|row| {
            let id = row.alarm_id;
            triage::attempts_if_due(known.get(&id), pruned.contains(&id)).map(|a| (row, a))
        })
        .collect();
    let fresh: HashSet<AlarmId> = todo
        .iter()
        .map(|(row, _)| row.alarm_id)
        .filter(|id| !known.contains_key(id) && !pruned.contains(id))
        .collect();
    s.alarms.new += fresh.len() as u64;
    Ok((todo, fresh))
}

fn count_records(records: &[AlarmRecord], s: &mut Summary) {
    for rec in records {
        match &rec.outcome {
            AlarmOutcome::Filtered { .. } => s.alarms.filtered += 1,
            AlarmOutcome::Error { error } | AlarmOutcome::Unavailable { error } => {
                s.alarms.errors += 1;
                tracing::warn!(alarm_id = %rec.row.alarm_id, error = %error, "alarm left for a later run");
            }
            AlarmOutcome::NotReady { error } => {
                s.alarms.waiting += 1;
                tracing::info!(alarm_id = %rec.row.alarm_id, reason = %error, "alarm's events not ready yet; later runs fetch them");
            }
            AlarmOutcome::Accepted { .. } => {}
        }
    }
    if s.alarms.errors > 0 {
        s.outcome.partial_once(
            "some alarms' details or events could not be fetched; later runs retry them",
        );
    }
}

/// Rule filters first (no requests), then details and events for the rest with
/// bounded concurrency.
async fn decide_alarms(
    lr: &logrhythm::Client,
    (opts, policy): (&RunOptions, &Policy),
    todo: Vec<(AlarmRow, i64)>,
) -> Result<Vec<Fetched>, Fatal> {
    let mut records = Vec::with_capacity(todo.len());
    let mut fetch = Vec::new();
    for (row, _attempts) in todo {
        match triage::rule_filter(&row.rule_name, opts.rf_only, &opts.exclude_rules) {
            Some(reason) => {
                records.push((record(row, None, AlarmOutcome::Filtered { reason }), None))
            }
            None => fetch.push(row),
        }
    }
    let mut results = stream::iter(fetch)
        .map(|row| fetch_alarm(lr, (opts, policy), row))
        .buffer_unordered(opts.concurrency.max(1));
    while let Some(r) = results.next().await {
        records.push(r?);
    }
    records.sort_by_key(|(r, _)| (r.row.date_inserted, r.row.alarm_id));
    Ok(records)
}

/// An alarm's record, and what its events showed of the organisation.
type Fetched = (AlarmRecord, Option<Observations>);

fn record(row: AlarmRow, rbp_max: Option<i64>, outcome: AlarmOutcome) -> AlarmRecord {
    AlarmRecord {
        row,
        rbp_max,
        outcome,
    }
}

/// Whether an events failure means "not ready yet" (DESIGN.md section 1, item 6):
/// 404, an HTML page where JSON was expected, a redirect.
fn events_pending(e: &logrhythm::Error) -> bool {
    match e {
        logrhythm::Error::NotFound { .. } | logrhythm::Error::NotJson { .. } => true,
        logrhythm::Error::Http(h) => matches!(**h, crate::http::Error::Redirect { .. }),
        _ => false,
    }
}

/// A failed details/events fetch: a transient API failure does not count against
/// the alarm's fetch attempts (an outage must never get an alarm abandoned).
fn fetch_error(e: logrhythm::Error) -> Result<AlarmOutcome, Fatal> {
    let e = failure::lr(e)?;
    let error = e.error.to_string();
    Ok(if e.transient {
        AlarmOutcome::Unavailable { error }
    } else {
        AlarmOutcome::Error { error }
    })
}

/// Details, `--min-rbp`, events, extraction and the cap for one alarm.
async fn fetch_alarm(
    lr: &logrhythm::Client,
    (opts, policy): (&RunOptions, &Policy),
    row: AlarmRow,
) -> Result<Fetched, Fatal> {
    let details = match lr.details(row.alarm_id).await {
        Ok(d) => d,
        Err(e) => return Ok((record(row, None, fetch_error(e)?), None)),
    };
    let rbp = details.rbp_max;
    if let Some(reason) = triage::rbp_filter(opts.min_rbp, rbp) {
        return Ok((record(row, rbp, AlarmOutcome::Filtered { reason }), None));
    }
    let age = crate::clock::now() - row.date_inserted;
    let not_ready = |why: &str| triage::events_not_ready(row.alarm_id, why, age, opts.events_grace);
    let waiting = |error| {
        Ok((
            record(row.clone(), rbp, AlarmOutcome::NotReady { error }),
            None,
        ))
    };
    let (events, late) = match lr.events(row.alarm_id).await {
        Ok(ev) if ev.is_empty() => match not_ready("none yet") {
            Some(error) => return waiting(error),
            None => (ev, Some("no events within the events grace".to_string())),
        },
        Ok(ev) => (ev, None),
        Err(e) if events_pending(&e) => match not_ready(&e.to_string()) {
            Some(error) => return waiting(error),
            None => (
                Vec::new(),
                Some(format!("no events within the events grace (last: {e})")),
            ),
        },
        Err(e) => return Ok((record(row, rbp, fetch_error(e)?), None)),
    };
    let observations = extract::observations(&events, policy);
    let mut indicators = extract::indicators(&events, policy);
    let note = triage::cap_indicators(&mut indicators).map(|(note, found)| {
        tracing::warn!(
            alarm_id = %row.alarm_id,
            found,
            kept = triage::MAX_INDICATORS_PER_ALARM,
            "alarm holds more indicators than the per-alarm cap; the rest are not recorded"
        );
        note
    });
    let outcome = AlarmOutcome::Accepted {
        event_count: events.len(),
        indicators,
        note: note.or(late),
    };
    Ok((record(row, rbp, outcome), Some(observations)))
}
