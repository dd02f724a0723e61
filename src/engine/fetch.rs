//! The fetch driver of `sync` and `backfill`: walks the plan's slices, lists and
//! fetches what triage says, writes each slice in one transaction, then hands
//! the due detections to the submit driver. I/O only; the decisions are in
//! `plan`, `triage` and `failure`.
//!
//! The walk is pipelined ([`pipeline`]): the next slices are listed while the
//! alarms of earlier ones are fetched, under one budget of `concurrency`
//! LogRhythm requests in flight, and slices are committed one by one in slice
//! order. An alarm costs its events request, plus its details only when
//! `min_rbp` or `fetch_details` needs them.

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
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::Instrument;

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
    let began = tokio::time::Instant::now();
    let done = pipeline(sink, &mut lister, opts, s, &slices, coverage).await?;
    tracing::info!(
        slices = done,
        alarms = s.alarms.seen,
        seconds = began.elapsed().as_secs_f64(),
        "slices fetched and committed"
    );
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

/// One slice of the walk, from its plan to its commit.
struct Pending<'c> {
    /// Its place in the window's slices.
    idx: usize,
    slice: Slice,
    cov: Option<&'c Coverage>,
    fetch_from: Option<DateTime<Utc>>,
    covered: bool,
    /// Alarms left in error here that are due again.
    retry: Vec<AlarmRow>,
    phase: Phase,
}

enum Phase {
    /// To be listed from this instant when a request slot is free.
    ToList(DateTime<Utc>),
    Listing,
    Fetching(Fetching),
    /// Nothing more to request: what its turn records.
    Settled(Verdict),
}

/// What a slice that is not fetched tells at its turn.
enum Verdict {
    /// Covered and nothing to retry.
    Skip,
    /// `--max-runtime` was spent when its turn to be planned came.
    OutOfTime,
    /// Its listing failed.
    NotListed {
        error: String,
        transient: bool,
        out_of_time: bool,
    },
}

/// A listed slice whose alarms are being fetched, and what its turn counts.
struct Fetching {
    /// False for a covered slice that only retries alarms (no listing).
    listed: bool,
    saturated_at: Vec<DateTime<Utc>>,
    /// Instants listed completely in parts narrowed by the list filters.
    partitioned: u64,
    seen: u64,
    new: u64,
    late: u64,
    worst_lag: Option<f64>,
    /// The policy its alarms are extracted with: what the ledger knew when
    /// the slice was listed (see [`pipeline`]).
    policy: Arc<Policy>,
    queue: VecDeque<AlarmRow>,
    running: usize,
    records: Vec<Fetched>,
}

impl Pending<'_> {
    /// Whether its turn can be taken: nothing of it is still to be requested.
    fn ready(&self) -> bool {
        match &self.phase {
            Phase::Settled(_) => true,
            Phase::Fetching(f) => f.queue.is_empty() && f.running == 0,
            Phase::ToList(_) | Phase::Listing => false,
        }
    }

    /// Whether it holds listed or listing work (what the depth bounds).
    fn active(&self) -> bool {
        !matches!(self.phase, Phase::Settled(_))
    }

    fn demand(&self) -> plan::Demand {
        match &self.phase {
            Phase::ToList(_) => plan::Demand::List,
            Phase::Fetching(f) if !f.queue.is_empty() => plan::Demand::Fetch,
            _ => plan::Demand::None,
        }
    }
}

/// A request slot's work and what it brings back.
enum Done {
    Listed(usize, Result<logrhythm::SliceListing, logrhythm::Error>),
    Alarm(usize, Result<Brought, Fatal>),
}

/// The slices, pipelined: the next slices are listed while the alarms of the
/// earlier ones are fetched, all under one budget of `concurrency` requests in
/// flight (a listing holds one slot for its pages, which go one after
/// another; an alarm holds one for its details and events), and each slice is
/// committed in one transaction at its turn, in slice order, so coverage never
/// runs ahead of what is written. At most [`plan::pipeline_depth`] slices are
/// listed or fetched ahead of their turn, which bounds memory.
///
/// What earlier slices taught (networks, learned domains) is read from the
/// ledger when a slice's listing comes back, so it holds every slice committed
/// by then but not the ones still being fetched. That is enough: extraction
/// with less knowledge can only keep more (knowledge only ever excludes), and
/// before anything is submitted [`super::knowledge::rejudge`] judges every
/// waiting detection again with all this run learned.
///
/// Every request slot is a task of its own on the runtime: its requests,
/// parsing and extraction go on (on either core) while a slice is committed,
/// and slots that free up meanwhile are given new work ([`commit`]); what
/// depends on the run's clock is settled here ([`settle`]).
///
/// Returns how many slices had their turn.
async fn pipeline(
    sink: &mut Sink<'_>,
    lister: &mut Lister<'_>,
    opts: &RunOptions,
    s: &mut Summary,
    slices: &[Slice],
    coverage: &BTreeMap<DateTime<Utc>, Coverage>,
) -> Result<u64, Fatal> {
    let lr = Arc::new(lister.lr.clone());
    let paging = lister.paging;
    let details = Details {
        needed: triage::needs_details(opts.min_rbp, opts.fetch_details),
        min_rbp: opts.min_rbp,
    };
    let budget = opts.concurrency.max(1);
    let depth = plan::pipeline_depth(budget);
    let mut window: VecDeque<Pending<'_>> = VecDeque::new();
    // Dropped with the walk (an interrupt, an error): unfinished requests are
    // cancelled and nothing of them is written.
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut next = 0usize;
    // A transient listing failure: nothing after this slice is started.
    let mut stop_at: Option<usize> = None;
    let mut done = 0u64;
    // What the slots brought back while a slice was being written.
    let mut came_back: VecDeque<Joined> = VecDeque::new();
    let start = Start {
        lr: &lr,
        paging,
        details,
        budget,
    };
    loop {
        while window.front().is_some_and(Pending::ready) {
            let Some(p) = window.pop_front() else { break };
            done += 1;
            let slots = Slots {
                window: &mut window,
                tasks: &mut tasks,
                came_back: &mut came_back,
                start,
                stop_at,
                interrupt: sink.interrupt,
            };
            let flow = turn(sink, opts, p, s, slots)?;
            progress(opts, s, done, 0, false);
            if let Flow::Stop = flow {
                return Ok(done);
            }
            while let Some(j) = came_back.pop_front() {
                let Some(d) = joined(j, s) else {
                    return Ok(done);
                };
                on_done(sink, lister, opts, (&mut window, &mut stop_at), d)?;
            }
        }
        if sink.interrupt.is_some_and(super::Interrupt::is_raised) {
            // Uncommitted slices are dropped with their requests: nothing of
            // them was written, the next run fetches them again.
            s.outcome.interrupted();
            return Ok(done);
        }
        while next < slices.len()
            && stop_at.is_none()
            && window.iter().filter(|p| p.active()).count() < depth
        {
            let cov = coverage.get(&plan::floor_hour(slices[next].0));
            window.push_back(plan_slice(sink, opts, (next, slices[next], cov))?);
            next += 1;
        }
        start.fill(&mut window, &mut tasks, stop_at);
        if tasks.is_empty() {
            if window.front().is_some_and(Pending::ready) {
                continue;
            }
            // Nothing in flight and nothing left to start: every slice had its turn.
            return Ok(done);
        }
        let interrupt = sink.interrupt;
        tokio::select! {
            biased;
            () = raised(interrupt) => {
                s.outcome.interrupted();
                return Ok(done);
            }
            Some(j) = tasks.join_next() => {
                let Some(d) = joined(j, s) else {
                    return Ok(done);
                };
                on_done(sink, lister, opts, (&mut window, &mut stop_at), d)?;
            }
        }
    }
}

/// A request slot's task as it ended.
type Joined = Result<Done, tokio::task::JoinError>;

/// What a task brought back; `None` when the runtime cancelled it (it is
/// shutting down: the walk stops as interrupted).
fn joined(j: Joined, s: &mut Summary) -> Option<Done> {
    match j {
        Ok(d) => Some(d),
        // A task's panic is the walk's, as if it had run here.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: only the runtime shutting down does that.
        Err(_) => {
            s.outcome.interrupted();
            None
        }
    }
}

/// How request slots are started: the client, its paging, what an alarm
/// costs, and the budget.
#[derive(Clone, Copy)]
struct Start<'a> {
    lr: &'a Arc<logrhythm::Client>,
    paging: logrhythm::Paging,
    details: Details,
    budget: usize,
}

impl Start<'_> {
    /// Starts requests while a slot is free and the window has work for one
    /// ([`plan::pick`] over the slices' demands). Reads nothing from the
    /// ledger, so it also runs while a slice is being written. Nothing is
    /// started for the slices after `stop_at`.
    fn fill(
        &self,
        window: &mut VecDeque<Pending<'_>>,
        tasks: &mut JoinSet<Done>,
        stop_at: Option<usize>,
    ) {
        let (paging, details) = (self.paging, self.details);
        while tasks.len() < self.budget {
            let eligible = |p: &Pending<'_>| stop_at.is_none_or(|at| p.idx <= at);
            let demands = window.iter().map(|p| {
                if eligible(p) {
                    p.demand()
                } else {
                    plan::Demand::None
                }
            });
            let Some(at) = plan::pick(demands) else { break };
            let p = &mut window[at];
            let idx = p.idx;
            let lr = Arc::clone(self.lr);
            match &mut p.phase {
                Phase::ToList(from) => {
                    let (from, to) = (*from, p.slice.1);
                    p.phase = Phase::Listing;
                    tasks.spawn(
                        async move { Done::Listed(idx, lr.list_slice(from, to, &paging).await) }
                            .in_current_span(),
                    );
                }
                Phase::Fetching(f) => {
                    let Some(row) = f.queue.pop_front() else {
                        break;
                    };
                    f.running += 1;
                    let policy = Arc::clone(&f.policy);
                    tasks.spawn(
                        async move { Done::Alarm(idx, fetch_alarm(&lr, details, &policy, row).await) }
                            .in_current_span(),
                    );
                }
                Phase::Listing | Phase::Settled(_) => break,
            }
        }
    }
}

/// The request slots while a slice's turn writes it: see [`commit`].
struct Slots<'w, 'c> {
    window: &'w mut VecDeque<Pending<'c>>,
    tasks: &'w mut JoinSet<Done>,
    /// What ends meanwhile, taken in by the walk after the commit.
    came_back: &'w mut VecDeque<Joined>,
    start: Start<'w>,
    stop_at: Option<usize>,
    interrupt: Option<&'w super::Interrupt>,
}

impl Slots<'_, '_> {
    /// Keeps every slot busy until `written` resolves: each task that ends is
    /// put aside as it came back and its slot given to the window's next work.
    async fn keep_busy(self, mut written: tokio::sync::oneshot::Receiver<()>) {
        loop {
            if !self.interrupt.is_some_and(super::Interrupt::is_raised) {
                self.start.fill(self.window, self.tasks, self.stop_at);
            }
            tokio::select! {
                biased;
                _ = &mut written => return,
                Some(j) = self.tasks.join_next() => self.came_back.push_back(j),
            }
        }
    }
}

/// Writes a slice's batch in its transaction while the request slots go on.
///
/// A commit takes about 13 ms of CPU for a slice of 200 alarms. Done on the
/// walk's own thread, no request was started meanwhile: at concurrency 32 and
/// 20 ms latency most slots sat idle through it. Here the transaction runs on
/// a thread of its own while this one keeps the slots busy ([`Slots`]): only
/// work that needs nothing from the ledger is started (listings of slices
/// already planned, alarms already triaged), and what comes back meanwhile is
/// taken in after the commit, in the order it came. Commits stay one at a
/// time and in slice order: this returns when the transaction has ended. A
/// runtime with one thread (unit tests) commits in place.
fn commit(
    ledger: &mut crate::ledger::Writer,
    batch: &SliceIngest,
    now: DateTime<Utc>,
    slots: Slots<'_, '_>,
) -> Result<crate::ledger::IngestCounts, Fatal> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => h,
        _ => return Ok(ledger.ingest(batch, now)?),
    };
    let span = tracing::Span::current();
    let written = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (done, written) = tokio::sync::oneshot::channel::<()>();
            let writer = scope.spawn(move || {
                let r = span.in_scope(|| ledger.ingest(batch, now));
                drop(done);
                r
            });
            handle.block_on(slots.keep_busy(written));
            writer.join()
        })
    });
    match written {
        Ok(r) => Ok(r?),
        // The writer's panic is the walk's, as if it had run here.
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Resolves when the interrupt is raised (never without one).
async fn raised(interrupt: Option<&super::Interrupt>) {
    match interrupt {
        Some(i) => i.clone().raised().await,
        None => std::future::pending().await,
    }
}

/// Plans one slice: what to list, which retries are due, or nothing.
fn plan_slice<'c>(
    sink: &Sink<'_>,
    opts: &RunOptions,
    (idx, slice, cov): (usize, Slice, Option<&'c Coverage>),
) -> Result<Pending<'c>, Fatal> {
    let retry = due_retries(sink.ledger, slice)?;
    let provisional_from = (sink.now)() - opts.relist_horizon;
    let fetch_from = plan::fetch_from(slice, cov, opts.refetch, provisional_from);
    let step = plan::step(fetch_from, retry.len(), deadline_passed(sink.deadline));
    let mut p = Pending {
        idx,
        slice,
        cov,
        fetch_from,
        covered: step.covered,
        retry: Vec::new(),
        phase: Phase::Settled(Verdict::Skip),
    };
    p.phase = match step.action {
        plan::Action::Skip => Phase::Settled(Verdict::Skip),
        plan::Action::OutOfTime => Phase::Settled(Verdict::OutOfTime),
        // Covered: only the alarms left in error are fetched again; no listing.
        plan::Action::RetryOnly => {
            let f = fetching(
                sink,
                opts,
                &p,
                retry,
                logrhythm::SliceListing::default(),
                false,
            )?;
            Phase::Fetching(f)
        }
        plan::Action::List(at) => {
            p.retry = retry;
            Phase::ToList(at)
        }
    };
    Ok(p)
}

/// A slice's alarms to fetch once its listing is in: triage against the
/// ledger, late alarms noted, rule filters applied (no requests for those).
fn fetching(
    sink: &Sink<'_>,
    opts: &RunOptions,
    p: &Pending<'_>,
    retry: Vec<AlarmRow>,
    listing: logrhythm::SliceListing,
    listed: bool,
) -> Result<Fetching, Fatal> {
    let Todo {
        alarms: todo,
        seen,
        fresh,
    } = alarms_todo(sink.ledger, listing.alarms, retry)?;
    let new = fresh.len() as u64;
    let mut f = Fetching {
        listed,
        saturated_at: listing.saturated_at,
        partitioned: listing.partitioned_at.len() as u64,
        seen,
        new,
        late: 0,
        worst_lag: None,
        policy: Arc::new(super::knowledge::current(sink.ledger, &opts.policy)?),
        queue: VecDeque::new(),
        running: 0,
        records: Vec::new(),
    };
    if let Some(c) = p.cov {
        let now = (sink.now)();
        for (row, _) in &todo {
            // Late: never seen before, though its time was listed already (an
            // alarm waiting for its events is listed again too, but is not new).
            if fresh.contains(&row.alarm_id) && row.date_inserted < c.covered_until {
                // At most this late: it was not listable when its time was listed.
                let lag = (now - row.date_inserted).num_milliseconds() as f64 / 1000.0;
                f.late += 1;
                f.worst_lag = Some(f.worst_lag.map_or(lag, |w: f64| w.max(lag)));
            }
        }
    }
    for (row, _attempts) in todo {
        match triage::rule_filter(&row.rule_name, opts.rf_only, &opts.exclude_rules) {
            Some(reason) => f
                .records
                .push((record(row, None, AlarmOutcome::Filtered { reason }), None)),
            None => f.queue.push_back(row),
        }
    }
    Ok(f)
}

/// Takes in what a request slot brought back.
fn on_done(
    sink: &Sink<'_>,
    lister: &mut Lister<'_>,
    opts: &RunOptions,
    (window, stop_at): (&mut VecDeque<Pending<'_>>, &mut Option<usize>),
    d: Done,
) -> Result<(), Fatal> {
    let idx = match &d {
        Done::Listed(i, _) | Done::Alarm(i, _) => *i,
    };
    if stop_at.is_some_and(|at| idx > at) {
        // Beyond a slice whose listing failed transiently: never committed.
        return Ok(());
    }
    let Some(at) = window.iter().position(|p| p.idx == idx) else {
        return Ok(());
    };
    let p = &mut window[at];
    match d {
        Done::Listed(_, Ok(l)) => {
            if let Some(w) = lister.watch.as_deref_mut() {
                w.observe(&l);
            }
            tracing::debug!(slice = %crate::ledger::ts(plan::floor_hour(p.slice.0)), alarms = l.alarms.len(), pages = l.pages, "slice listed");
            let retry = std::mem::take(&mut p.retry);
            p.phase = Phase::Fetching(fetching(sink, opts, p, retry, l, true)?);
        }
        Done::Listed(_, Err(e)) => {
            let e = failure::lr(e)?;
            let slice = crate::ledger::ts(plan::floor_hour(p.slice.0));
            tracing::warn!(slice = %slice, error = %e.error, "could not list the slice's alarms");
            if e.transient {
                // The API is down (or the run's time is up): the slices after
                // this one would fail the same way.
                *stop_at = Some(idx);
            }
            p.phase = Phase::Settled(Verdict::NotListed {
                error: e.error.to_string(),
                transient: e.transient,
                out_of_time: e.transient && deadline_passed(sink.deadline),
            });
        }
        Done::Alarm(_, r) => {
            let brought = r?;
            if let Phase::Fetching(f) = &mut p.phase {
                f.running -= 1;
                let fetched = settle(brought, (sink.now)(), opts.events_grace, &f.policy);
                f.records.push(fetched);
            }
        }
    }
    Ok(())
}

/// A slice's turn, in slice order: what it counts, and its commit.
fn turn(
    sink: &mut Sink<'_>,
    opts: &RunOptions,
    p: Pending<'_>,
    s: &mut Summary,
    slots: Slots<'_, '_>,
) -> Result<Flow, Fatal> {
    let lr = slots.start.lr;
    let slice_start = plan::floor_hour(p.slice.0);
    if p.covered {
        tracing::debug!(slice = %crate::ledger::ts(slice_start), "slice already covered");
        s.slices.covered += 1;
    }
    let f = match p.phase {
        Phase::Settled(Verdict::Skip) => return Ok(Flow::Next),
        Phase::Settled(Verdict::OutOfTime) => {
            s.slices.failed += 1;
            s.outcome
                .partial("--max-runtime reached before every slice was fetched");
            return Ok(Flow::Next);
        }
        Phase::Settled(Verdict::NotListed {
            error,
            transient,
            out_of_time,
        }) => {
            return Ok(not_listed(
                opts,
                p.slice,
                (&error, transient, out_of_time),
                s,
            ))
        }
        Phase::Fetching(f) => f,
        // Not ready: never given a turn (see `Pending::ready`).
        Phase::ToList(_) | Phase::Listing => return Ok(Flow::Next),
    };
    s.alarms.seen += f.seen;
    s.alarms.new += f.new;
    s.slices.partitioned += f.partitioned;
    note_saturation(&f.saturated_at, slice_start, s);
    if f.late > 0 {
        tracing::info!(slice = %crate::ledger::ts(slice_start), late = f.late, "alarms became listable after their time was listed: found by re-listing provisional time");
        s.alarms.late += f.late;
    }
    if let Some(lag) = f.worst_lag {
        let worst = s.visibility.late_lag_seconds.get_or_insert(lag);
        *worst = worst.max(lag);
    }
    let mut fetched = f.records;
    fetched.sort_by_key(|(r, _)| (r.row.date_inserted, r.row.alarm_id));
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
        covered_until: p
            .fetch_from
            .and_then(|_| plan::covered_until(p.slice, (sink.now)(), lr.clock_skew())),
        saturated_at: f.saturated_at,
        listed_from: p.fetch_from,
        alarms: records,
        observations,
    };
    let counts = commit(sink.ledger, &batch, (sink.now)(), slots)?;
    s.detections.new += counts.new_pending;
    s.detections.excluded += counts.new_excluded;
    // Counted once committed: a slice abandoned by an interrupt was not fetched.
    s.slices.fetched += u64::from(f.listed);
    Ok(Flow::Next)
}

/// A slice whose listing failed, at its turn: counted, and how the walk goes on.
fn not_listed(
    opts: &RunOptions,
    (from, to): Slice,
    (error, transient, out_of_time): (&str, bool, bool),
    s: &mut Summary,
) -> Flow {
    let slice = crate::ledger::ts(plan::floor_hour(from));
    s.slices.failed += 1;
    if out_of_time {
        // The request ran into --max-runtime: the run's own limit, not an outage.
        s.outcome.partial_once(
            "--max-runtime reached before every slice was listed; the next run continues",
        );
        s.slices.failed += plan::slices(to, opts.window.1).len() as u64;
        return Flow::Stop;
    }
    if transient {
        s.outcome
            .unavailable(format!("LogRhythm unavailable: {error}"));
        // The API is down: the remaining slices would fail the same way.
        s.slices.failed += plan::slices(to, opts.window.1).len() as u64;
        return Flow::Stop;
    }
    s.outcome
        .partial(format!("slice {slice} not listed: {error}"));
    Flow::Next
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

fn note_saturation(saturated_at: &[DateTime<Utc>], slice_start: DateTime<Utc>, s: &mut Summary) {
    if saturated_at.is_empty() {
        return;
    }
    s.slices.saturated += 1;
    let at: Vec<String> = saturated_at.iter().map(|t| crate::ledger::ts(*t)).collect();
    let slice = crate::ledger::ts(slice_start);
    tracing::warn!(
        slice = %slice,
        timestamps = %at.join(", "),
        "slice saturated: a full page of alarms shares one dateInserted, the server ignores offset and the list filters cannot split it; alarms at that time may be missing, and every run lists it again until it gets through"
    );
    s.outcome
        .partial(format!("slice {slice} saturated at {}", at.join(", ")));
}

/// A slice's alarms to process, and what its turn counts of them.
struct Todo {
    /// Each with the fetch attempts it has spent.
    alarms: Vec<(AlarmRow, i64)>,
    /// Alarms listed.
    seen: u64,
    /// Alarms the ledger never saw (not merely due again).
    fresh: HashSet<AlarmId>,
}

/// Alarms to process: listed ones and due retries the retry rule lets through.
fn alarms_todo(
    ledger: &Ledger,
    listed: Vec<AlarmRow>,
    retry: Vec<AlarmRow>,
) -> Result<Todo, Fatal> {
    let mut rows: BTreeMap<AlarmId, AlarmRow> =
        listed.into_iter().map(|a| (a.alarm_id, a)).collect();
    let seen = rows.len() as u64;
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
    Ok(Todo {
        alarms: todo,
        seen,
        fresh,
    })
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

/// Whether an alarm's details are fetched, and the RBP filter they serve.
#[derive(Debug, Clone, Copy)]
struct Details {
    needed: bool,
    min_rbp: Option<i64>,
}

/// What one alarm's requests brought back, before the run's clock has its say.
enum Brought {
    /// Decided: filtered by its RBP, a failed request, or its events extracted.
    Decided(Fetched),
    /// No events (none yet, or an answer that means "not ready"): whether to
    /// wait for them or to accept the alarm without them is the events
    /// grace's call ([`settle`]).
    NoEvents {
        row: AlarmRow,
        rbp: Option<i64>,
        /// Why, for the record while the alarm waits.
        why: String,
        /// The alarm's note once the grace is over.
        note: String,
    },
}

/// Details (only when a setting needs them), `--min-rbp`, events and
/// extraction for one alarm, in a task of its own. Requests go one after
/// another: an alarm holds one slot of the run's request budget.
async fn fetch_alarm(
    lr: &logrhythm::Client,
    details: Details,
    policy: &Policy,
    row: AlarmRow,
) -> Result<Brought, Fatal> {
    // Without a need for them, RBP stays "not fetched" (NULL in the ledger).
    let mut rbp = None;
    if details.needed {
        let d = match lr.details(row.alarm_id).await {
            Ok(d) => d,
            Err(e) => return Ok(Brought::Decided((record(row, None, fetch_error(e)?), None))),
        };
        rbp = d.rbp_max;
        if let Some(reason) = triage::rbp_filter(details.min_rbp, rbp) {
            let filtered = record(row, rbp, AlarmOutcome::Filtered { reason });
            return Ok(Brought::Decided((filtered, None)));
        }
    }
    match lr.events(row.alarm_id).await {
        Ok(ev) if ev.is_empty() => Ok(Brought::NoEvents {
            row,
            rbp,
            why: "none yet".to_string(),
            note: "no events within the events grace".to_string(),
        }),
        Ok(ev) => Ok(Brought::Decided(accepted(row, rbp, &ev, policy, None))),
        Err(e) if events_pending(&e) => Ok(Brought::NoEvents {
            row,
            rbp,
            why: e.to_string(),
            note: format!("no events within the events grace (last: {e})"),
        }),
        Err(e) => Ok(Brought::Decided((record(row, rbp, fetch_error(e)?), None))),
    }
}

/// An alarm without events, judged by the events grace at `now`: it waits for
/// them while it is younger, else it is accepted without them.
fn settle(
    brought: Brought,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    policy: &Policy,
) -> Fetched {
    match brought {
        Brought::Decided(f) => f,
        Brought::NoEvents {
            row,
            rbp,
            why,
            note,
        } => {
            let age = now - row.date_inserted;
            match triage::events_not_ready(row.alarm_id, &why, age, grace) {
                Some(error) => (record(row, rbp, AlarmOutcome::NotReady { error }), None),
                None => accepted(row, rbp, &[], policy, Some(note)),
            }
        }
    }
}

/// An alarm whose events are in: its indicators (capped) and what the events
/// showed of the organisation.
fn accepted(
    row: AlarmRow,
    rbp: Option<i64>,
    events: &[serde_json::Value],
    policy: &Policy,
    late: Option<String>,
) -> Fetched {
    let observations = extract::observations(events, policy);
    let mut indicators = extract::indicators(events, policy);
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
    (record(row, rbp, outcome), Some(observations))
}
