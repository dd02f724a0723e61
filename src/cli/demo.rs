//! `demo`: starts the simulator in-process on loopback, runs a real `sync` against
//! it over HTTP into a fresh ledger in a temporary directory, prints what happened,
//! then runs a second sync to show that nothing is sent twice.

use crate::cli::args::DemoArgs;
use crate::config::{spec, ApiConfig, CiConfig, HttpSettings};
use crate::engine::{self, RunKind, RunOptions, Summary};
use crate::error::{code, Fatal, WithCode};
use crate::ledger::{Ledger, Writer};
use crate::sim;
use chrono::Duration as Span;
use secrecy::SecretString;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs the demo and returns the worst exit code of its two syncs.
pub async fn run(args: &DemoArgs) -> Result<u8, Fatal> {
    let cfg = sim::SimConfig {
        seed: args.seed,
        hours: 26,
        alarms_per_hour: args.alarms_per_hour,
        ..sim::SimConfig::default()
    };
    let (lr_key, rf_key) = (cfg.lr_key.clone(), cfg.rf_key.clone());
    let sim = sim::start(cfg)
        .await
        .context_code("cannot start the simulator on 127.0.0.1", code::UNAVAILABLE)?;
    let url = sim.url();
    let dir = tempfile::Builder::new()
        .prefix("lrci-demo-")
        .tempdir()
        .code(code::CANT_CREATE)?
        .keep();
    let path = dir.join("ledger.sqlite3");
    let api = demo_api(&url, lr_key, rf_key)?;
    let mut out = String::new();
    out.push_str(&format!(
        "lrci demo: simulator on {url} (LogRhythm Alarm API + Collective Insights), {} alarms/hour, seed {}\n",
        args.alarms_per_hour, args.seed
    ));
    out.push_str(&format!("ledger: {}\n", path.display()));
    out.push_str(
        "configuration: none beyond the two API URLs and keys; what is the organisation's is learned from LogRhythm\n\n",
    );
    let result = two_syncs(&api, &url, &path, &mut out).await;
    sim.shutdown().await;
    let code = result?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Ok(code)
}

/// Both APIs pointed at the simulator, with the declared default timeouts.
fn demo_api(url: &str, lr_key: String, rf_key: String) -> Result<ApiConfig, Fatal> {
    Ok(ApiConfig {
        lr_url: url.parse().code(code::CONFIG)?,
        lr_key: SecretString::from(lr_key),
        lr_ca_pem: None,
        lr_insecure: false,
        ci: CiConfig {
            rf_url: url.parse().code(code::CONFIG)?,
            rf_key: SecretString::from(rf_key),
            fields: crate::ci::Fields::default(),
            http: HttpSettings {
                timeout: Duration::from_secs(spec::DEFAULT_TIMEOUT_SECS),
                connect_timeout: Duration::from_secs(spec::DEFAULT_CONNECT_TIMEOUT_SECS),
                max_retries: u32::try_from(spec::DEFAULT_MAX_RETRIES).unwrap_or(4),
            },
        },
    })
}

/// The declared default: auto, up to `concurrency_max`.
fn demo_concurrency() -> crate::model::Concurrency {
    crate::model::Concurrency::Auto {
        max: u32::try_from(spec::DEFAULT_CONCURRENCY_MAX).unwrap_or(1),
    }
}

/// A sync's options with the declared defaults and no knowledge configured: the
/// simulated organisation's domain and networks are learned from its events.
fn demo_options() -> RunOptions {
    let n = |v: u64| usize::try_from(v).unwrap_or(1);
    RunOptions {
        kind: RunKind::Sync,
        window: engine::window(
            crate::clock::now(),
            Span::days(1),
            Span::seconds(i64::try_from(spec::DEFAULT_SETTLE_SECS).unwrap_or(120)),
        ),
        refetch: false,
        dry_run: false,
        min_rbp: None,
        fetch_details: false,
        rf_only: false,
        exclude_rules: Vec::new(),
        policy: crate::policy::Policy::default(),
        page_size: u32::try_from(spec::DEFAULT_PAGE_SIZE).unwrap_or(1000),
        concurrency: usize::try_from(demo_concurrency().ceiling()).unwrap_or(1),
        batch_size: n(spec::DEFAULT_BATCH_SIZE),
        daily_budget: spec::DEFAULT_DAILY_BUDGET,
        events_grace: Span::seconds(
            i64::try_from(spec::DEFAULT_EVENTS_GRACE_SECS).unwrap_or(86_400),
        ),
        relist_horizon: Span::seconds(
            i64::try_from(spec::DEFAULT_RELIST_HORIZON_SECS).unwrap_or(7_200),
        ),
        deadline: None,
        interrupt: None,
        progress: None,
    }
}

/// Runs the two syncs into `path`, describing each in `out`; the worst exit code.
async fn two_syncs(api: &ApiConfig, url: &str, path: &Path, out: &mut String) -> Result<u8, Fatal> {
    let (lr, ci) = crate::cli::sync::clients(api, None, demo_concurrency())?;
    let opts = demo_options();
    let mut ledger = Writer::open(path)?;
    let started = Instant::now();
    let first = engine::run(&mut ledger, &lr, &ci, &opts, crate::clock::now).await?;
    out.push_str(&format!(
        "first sync ({:.1} s): window {} .. {}\n",
        started.elapsed().as_secs_f64(),
        first.window.from,
        first.window.to
    ));
    describe(out, &first);
    let reasons = ledger.top_exclusion_reasons(5)?;
    if !reasons.is_empty() {
        out.push_str("  top reasons not sent:\n");
        for (reason, n) in reasons {
            out.push_str(&format!("    {n:>6}  {reason}\n"));
        }
    }
    let stored = received_count(url).await;
    if let Some(n) = stored {
        out.push_str(&format!(
            "  the simulated Collective Insights stored {n} detections\n"
        ));
    }
    let started = Instant::now();
    let second = engine::run(&mut ledger, &lr, &ci, &opts, crate::clock::now).await?;
    out.push_str(&format!(
        "\nsecond sync ({:.1} s): covered slices are skipped, only the open hour is listed again\n",
        started.elapsed().as_secs_f64()
    ));
    describe(out, &second);
    if let (Some(before), Some(after)) = (stored, received_count(url).await) {
        out.push_str(&format!(
            "  Collective Insights received {} more detections (was {before}, now {after})\n",
            after.saturating_sub(before)
        ));
    }
    describe_knowledge(out, &ledger)?;
    describe_ledger(out, &ledger, path)?;
    Ok(first.exit_code.max(second.exit_code))
}

/// What was learned of the organisation, as `lrci ledger domains` and `lrci
/// ledger networks` would show it.
fn describe_knowledge(out: &mut String, ledger: &Ledger) -> Result<(), Fatal> {
    out.push_str("\nlearned from LogRhythm (lrci ledger domains, lrci ledger networks):\n");
    for d in ledger.domain_evidence()? {
        let status = if d.learned_at.is_some() {
            "learned, never sent"
        } else {
            "seen, not learned (too little evidence), sent"
        };
        out.push_str(&format!(
            "  domain   {:<32} {status}: {} witnesses in {} alarms, e.g. alarm {} {} ({})\n",
            d.domain, d.witnesses, d.alarms, d.example_alarm_id, d.example_host, d.basis
        ));
    }
    for n in ledger.known_networks()? {
        out.push_str(&format!(
            "  network  {:<32} zone {}, in {} alarms, never sent\n",
            n.record.label(),
            n.record.zone,
            n.sightings
        ));
    }
    Ok(())
}

fn describe_ledger(out: &mut String, ledger: &Ledger, path: &Path) -> Result<(), Fatal> {
    let counts = ledger.state_counts()?;
    out.push_str(&format!(
        "\nledger now: {} alarms; detections {} sent, {} pending, {} failed, {} rejected, {} excluded\n",
        ledger.alarm_count()?,
        counts.sent,
        counts.pending,
        counts.failed,
        counts.rejected,
        counts.excluded
    ));
    out.push_str(&format!(
        "inspect it: sqlite3 {} 'SELECT state, count(*) FROM detections GROUP BY state'\n",
        path.display()
    ));
    Ok(())
}

fn describe(out: &mut String, s: &Summary) {
    out.push_str(&format!(
        "  slices      {} in the window: {} fetched, {} already covered, {} saturated, {} failed\n",
        s.slices.total, s.slices.fetched, s.slices.covered, s.slices.saturated, s.slices.failed
    ));
    out.push_str(&format!(
        "  alarms      {} listed, {} new, {} filtered out\n",
        s.alarms.seen, s.alarms.new, s.alarms.filtered
    ));
    out.push_str(&format!(
        "  detections  {} new, {} sent, {} failed, {} rejected, {} excluded by policy (internal or invalid)\n",
        s.detections.new,
        s.detections.submitted,
        s.detections.failed,
        s.detections.rejected,
        s.detections.excluded
    ));
    out.push_str(&format!("  exit code   {}\n", s.exit_code));
}

/// How many detections the simulator's CI side stored (`/_sim/received`).
async fn received_count(base: &str) -> Option<usize> {
    let body: serde_json::Value = reqwest::get(format!("{base}/_sim/received"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body.as_array().map(Vec::len)
}

trait ContextCode<T> {
    fn context_code(self, what: &'static str, code: u8) -> Result<T, Fatal>;
}

impl<T> ContextCode<T> for anyhow::Result<T> {
    fn context_code(self, what: &'static str, code: u8) -> Result<T, Fatal> {
        self.map_err(|e| Fatal::new(code, e.context(what)))
    }
}
