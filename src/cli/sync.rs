//! `sync` and `backfill`: resolve the configuration, open the ledger and take the
//! run lock before any network call, build both clients, run the engine, print the
//! summary. SIGINT/SIGTERM stop the run gracefully ([`interrupt_on_signals`]);
//! `backfill` shows a progress bar on a terminal, and progress log lines otherwise.

use crate::cli::args::{BackfillArgs, ModeArgs, SyncArgs};
use crate::config::{parse_time, ApiConfig, Settings};
use crate::engine::{self, Interrupt, Progress, ProgressFn, RunKind, RunOptions, Summary};
use crate::error::{code, Fatal, WithCode};
use crate::ledger::Writer;
use crate::model::Concurrency;
use crate::{ci, logrhythm, platform};
use chrono::{DateTime, Duration as Span, Utc};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `lrci sync` (and `lrci` alone).
pub async fn sync(s: &Settings, args: &SyncArgs) -> Result<u8, Fatal> {
    let lookback = i64::try_from(s.number("lookback")).unwrap_or(1);
    let now = crate::clock::now();
    let window = engine::window(now, Span::days(lookback), settle(s));
    execute(s, &args.mode, RunKind::Sync, window, false).await
}

/// Where a sync of an existing ledger starts: the oldest hour since the ledger's
/// first, at most `catchup` back, that is not listed completely (an outage
/// longer than the lookback, a slice that failed). Gaps older than that are
/// named in a warning, with the backfill that fills them. `None` for a ledger
/// that does not exist or cannot be read (the run itself reports that).
fn catch_up_from(
    l: &crate::ledger::Ledger,
    now: DateTime<Utc>,
    catchup: Span,
) -> Option<DateTime<Utc>> {
    let first = engine::floor_hour(l.first_slice().ok()??);
    let current = engine::floor_hour(now);
    let bound = engine::floor_hour(now - catchup);
    if first < bound {
        let old = l.slice_states(first, bound).ok()?;
        let gaps = crate::ledger::audit::merge_gaps(&old);
        if let (Some(a), Some(b)) = (gaps.first(), gaps.last()) {
            let hours: i64 = gaps.iter().map(|g| g.hours()).sum();
            tracing::warn!(
                hours,
                from = %crate::ledger::ts(a.from),
                to = %crate::ledger::ts(b.to),
                "hours older than max_catchup were never listed completely and are left to backfill: lrci backfill --from FROM --to TO"
            );
        }
    }
    let states = l.slice_states(first.max(bound), current).ok()?;
    states
        .iter()
        .find(|(_, st)| !matches!(st, crate::ledger::audit::SliceState::Covered))
        .map(|(start, _)| *start)
}

/// `lrci backfill`.
pub async fn backfill(s: &Settings, args: &BackfillArgs) -> Result<u8, Fatal> {
    let now = crate::clock::now();
    let latest = now - settle(s);
    let window = match (&args.from, &args.to, args.days) {
        (Some(f), Some(t), None) => {
            let from = parse_time("--from", f)?;
            let to = parse_time("--to", t)?.min(latest);
            if from >= to {
                return Err(Fatal::msg(
                    code::USAGE,
                    "--from must be before --to (and before now minus --settle)",
                ));
            }
            (engine::floor_hour(from), to)
        }
        (None, None, Some(days)) => engine::window(now, Span::days(i64::from(days)), settle(s)),
        _ => {
            return Err(Fatal::msg(
                code::USAGE,
                "backfill needs --days N, or --from TIME and --to TIME",
            ))
        }
    };
    execute(s, &args.mode, RunKind::Backfill, window, args.refetch).await
}

fn settle(s: &Settings) -> Span {
    Span::seconds(i64::try_from(s.number("settle")).unwrap_or(i64::MAX))
}

/// Builds both clients from the resolved settings, with the run's deadline
/// (`max_runtime`): no request attempt or retry wait of either client runs past
/// it, so a run stuck in retries ends on time.
pub fn clients(
    api: &ApiConfig,
    deadline: Option<tokio::time::Instant>,
    concurrency: Concurrency,
) -> Result<(logrhythm::Client, ci::Client), Fatal> {
    if api.lr_insecure {
        tracing::warn!("--lr-insecure: the LogRhythm API's TLS certificate is NOT verified; use --lr-ca-cert instead");
    }
    let lr = logrhythm::Client::new(
        api.lr_url.clone(),
        api.lr_key.clone(),
        api.lr_options(deadline),
    )
    .code(code::CONFIG)?
    .with_concurrency(concurrency);
    let ci = ci::Client::new(
        api.ci.rf_url.clone(),
        api.ci.rf_key.clone(),
        api.ci.http.options(deadline),
    )
    .code(code::CONFIG)?
    .with_fields(api.ci.fields.clone());
    Ok((lr, ci))
}

/// The engine's options from the settings (filters read and checked here).
fn run_options(
    s: &Settings,
    mode: &ModeArgs,
    kind: RunKind,
    window: (DateTime<Utc>, DateTime<Utc>),
    refetch: bool,
    deadline: Option<tokio::time::Instant>,
) -> Result<RunOptions, Fatal> {
    let filters = s.filters()?;
    Ok(RunOptions {
        kind,
        window,
        refetch,
        dry_run: mode.dry_run,
        min_rbp: filters.min_rbp,
        fetch_details: s.flag("fetch_details"),
        rf_only: filters.rf_only,
        exclude_rules: filters.exclude_rules,
        policy: filters.policy,
        page_size: u32::try_from(s.number("page_size")).unwrap_or(u32::MAX),
        // With auto, the most tasks the limiter may let run; it gates the rest.
        concurrency: usize::try_from(s.concurrency().ceiling()).unwrap_or(1),
        batch_size: usize::try_from(s.number("batch_size")).unwrap_or(1),
        daily_budget: s.number("daily_budget"),
        events_grace: Span::seconds(i64::try_from(s.number("events_grace")).unwrap_or(i64::MAX)),
        relist_horizon: Span::seconds(
            i64::try_from(s.number("relist_horizon")).unwrap_or(i64::MAX),
        ),
        deadline,
        interrupt: Some(interrupt_on_signals()?),
        progress: None,
    })
}

async fn execute(
    s: &Settings,
    mode: &ModeArgs,
    kind: RunKind,
    window: (DateTime<Utc>, DateTime<Utc>),
    refetch: bool,
) -> Result<u8, Fatal> {
    // Everything that can be wrong locally fails here, before any request.
    let api = s.api()?;
    s.check_runtime()?;
    let path = s.ledger().value;
    let deadline = s
        .optional("max_runtime")
        .map(|m| tokio::time::Instant::now() + Duration::from_secs(m.value));
    let bar = match kind {
        RunKind::Backfill => Some(progress_reporter()),
        RunKind::Sync => None,
    };
    let mut opts = RunOptions {
        progress: bar.as_ref().map(|(f, _)| f.clone()),
        ..run_options(s, mode, kind, window, refetch, deadline)?
    };
    // Nothing is written by a dry run: an existing ledger is read only, a missing
    // one is replaced by an empty in-memory ledger. The lock is taken before
    // the clients are built (loading the platform's roots takes a while), so
    // of two runs started together the first one holds it.
    let mut ledger = if mode.dry_run {
        Writer::scratch_copy(&path)?
    } else {
        Writer::open(&path)?
    };
    let (lr, ci) = clients(&api, deadline, s.concurrency())?;
    if kind == RunKind::Sync {
        // After an outage: from the oldest hour not listed completely.
        let catchup = Span::days(i64::try_from(s.number("max_catchup")).unwrap_or(7));
        if let Some(from) = catch_up_from(&ledger, crate::clock::now(), catchup) {
            opts.window.0 = opts.window.0.min(from);
        }
    }
    let summary = engine::run(&mut ledger, &lr, &ci, &opts, crate::clock::now).await;
    if let Some(bar) = bar.and_then(|(_, b)| b) {
        bar.finish_and_clear();
    }
    let summary = summary?;
    crate::cli::runlog::note_problems(&summary.problems);
    print_summary(&summary, mode.json, &path)?;
    Ok(summary.exit_code)
}

/// Listens for SIGINT and SIGTERM: the first one raises the returned interrupt, so
/// the run stops starting new slices and batches, records itself and exits 75. A
/// request in flight is finished (bounded by --timeout); SIGKILL loses nothing
/// either, since every slice commits in one transaction.
pub fn interrupt_on_signals() -> Result<Interrupt, Fatal> {
    let (handle, interrupt) = Interrupt::new();
    let mut signals = platform::Shutdown::listen().map_err(|e| {
        Fatal::new(
            code::CONFIG,
            anyhow::Error::new(e).context("could not listen for stop signals"),
        )
    })?;
    tokio::spawn(async move {
        if let Ok(name) = signals.recv().await {
            tracing::warn!(signal = name, "interrupted: finishing the request in flight, then stopping; the next run continues where this one stopped");
            handle.raise();
        }
    });
    Ok(interrupt)
}

/// How often plain progress lines are logged when stderr is not a terminal.
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(10);

/// A progress bar on stderr when it is a terminal (returned, to be cleared at the
/// end), else a callback that logs a progress line at most every
/// [`PROGRESS_LOG_EVERY`] and when the fetch phase ends. Never writes to stdout.
pub fn progress_reporter() -> (ProgressFn, Option<indicatif::ProgressBar>) {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} slices  {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let b = bar.clone();
        let f: ProgressFn = Arc::new(move |p: &Progress| {
            b.set_length(p.slices_total);
            b.set_position(p.slices_done);
            let phase = if p.submitting { "submitting, " } else { "" };
            b.set_message(format!(
                "{phase}{} alarms, {} detections sent",
                p.alarms, p.sent
            ));
        });
        return (f, Some(bar));
    }
    let last: Mutex<Option<(Instant, Progress)>> = Mutex::new(None);
    let f: ProgressFn = Arc::new(move |p: &Progress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let due = match &*last {
            None => true,
            Some((at, prev)) => {
                (prev != p && at.elapsed() >= PROGRESS_LOG_EVERY)
                    || (p.submitting && !prev.submitting)
            }
        };
        if due {
            tracing::info!(
                "backfill progress: {}/{} slices, {} alarms, {} detections sent",
                p.slices_done,
                p.slices_total,
                p.alarms,
                p.sent
            );
            *last = Some((Instant::now(), *p));
        }
    });
    (f, None)
}

/// Prints the run's result on stdout: one JSON object, or a few lines for people.
pub fn print_summary(s: &Summary, json: bool, ledger: &Path) -> Result<(), Fatal> {
    let mut out = std::io::stdout().lock();
    let text = if json {
        format!("{}\n", serde_json::to_string(s).unwrap_or_default())
    } else {
        human_summary(s, ledger)
    };
    super::output::pipe_exit(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

fn human_summary(s: &Summary, ledger: &Path) -> String {
    let mut t = String::new();
    let dry = if s.dry_run {
        " (dry run: nothing recorded, CI told debug: true)"
    } else {
        ""
    };
    t.push_str(&format!(
        "{} {} .. {}{dry}\n",
        s.command, s.window.from, s.window.to
    ));
    t.push_str(&format!(
        "  slices     {} total, {} fetched, {} already covered, {} saturated, {} failed\n",
        s.slices.total, s.slices.fetched, s.slices.covered, s.slices.saturated, s.slices.failed
    ));
    t.push_str(&format!(
        "  alarms     {} seen, {} new ({} late), {} filtered, {} left for retry, {} waiting for events\n",
        s.alarms.seen, s.alarms.new, s.alarms.late, s.alarms.filtered, s.alarms.errors, s.alarms.waiting
    ));
    t.push_str(&format!(
        "  detections {} new, {} submitted, {} failed, {} rejected, {} excluded by policy\n",
        s.detections.new,
        s.detections.submitted,
        s.detections.failed,
        s.detections.rejected,
        s.detections.excluded
    ));
    let (u, st) = (s.detections.unconfirmed, &s.detections.settled);
    if u + st.found + st.absent + st.waiting > 0 {
        t.push_str(&format!(
            "  unconfirmed {u} new (2xx without a result); earlier ones: {} found in CI, {} posted again, {} still waiting\n",
            st.found, st.absent, st.waiting
        ));
    }
    t.push_str(&format!(
        "  budget     {} of {} used on {}\n",
        s.budget.used, s.budget.limit, s.budget.day
    ));
    let org = &s.organisation;
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    t.push_str(&format!(
        "  organisation learned domains: {}; networks shown by LogRhythm: {} (review: lrci ledger domains, lrci ledger networks)\n",
        list(&org.learned_domains),
        list(&org.networks)
    ));
    if !org.unjudged_domains.is_empty() {
        t.push_str(&format!(
            "  warning    host names of domains nobody judged wait to be sent: {}; if one is the organisation's, add it to internal_domains (else allow_domains)\n",
            list(&org.unjudged_domains)
        ));
    }
    if !s.dry_run {
        t.push_str(&format!("  ledger     {}\n", ledger.display()));
    }
    for p in &s.problems {
        t.push_str(&format!("  problem    {p}\n"));
    }
    t.push_str(&format!("  exit code  {}\n", s.exit_code));
    t
}
