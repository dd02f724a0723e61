//! `lrci sim`: serve the simulator on loopback until SIGINT/SIGTERM.
//!
//! Prints `lrci-sim listening on http://127.0.0.1:PORT` (`https://` with
//! `--tls-cert`/`--tls-key`) as the first stdout line (flushed), then only logs
//! (stderr) until it is stopped.

use crate::sim::gen::Scenario;
use crate::sim::{self, AlarmsCount, EmptyList, EventsWrapper, OffsetMode, SimConfig};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `lrci sim`. `Debug` shows the resolved configuration, keys redacted.
#[derive(Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; loopback only (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", value_parser = parse_loopback)]
    pub listen: SocketAddr,
    /// Seed for the generated alarms and the random faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Hours of alarms to generate, ending at --end.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Alarms generated per hour.
    #[arg(long, default_value_t = 50)]
    pub alarms_per_hour: u32,
    /// Events served per alarm by /events.
    #[arg(long, default_value_t = 1)]
    pub events_per_alarm: u32,
    /// End of the generated window (RFC 3339; truncated to the second). Default: now.
    #[arg(long, value_parser = parse_rfc3339)]
    pub end: Option<DateTime<Utc>>,
    /// Largest page GET /alarms returns (larger counts are silently truncated).
    #[arg(long, default_value_t = 100)]
    pub page_cap: usize,
    /// How GET /alarms treats `offset`.
    #[arg(long, value_enum, default_value_t = OffsetMode::Ignored)]
    pub offset_mode: OffsetMode,
    /// Fixed latency added to every LogRhythm request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub lr_latency_ms: u64,
    /// Fixed latency added to every Collective Insights request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub rf_latency_ms: u64,
    /// Probability (0–1) that any API request gets a random fault.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// How long the "slow" fault holds an answer, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub slow_ms: u64,
    /// The valid LogRhythm bearer token.
    #[arg(long, default_value = sim::DEFAULT_LR_KEY)]
    pub lr_key: String,
    /// A LogRhythm token that is known but lacks permission (answers 403).
    #[arg(long)]
    pub lr_low_priv_key: Option<String>,
    /// The valid Collective Insights token (X-RFToken).
    #[arg(long, default_value = sim::DEFAULT_RF_KEY)]
    pub rf_key: String,
    /// A CI token that is valid but lacks the CI permission (answers 403).
    #[arg(long)]
    pub rf_no_ci_key: Option<String>,
    /// Named scenario.
    #[arg(long, value_enum, default_value_t = Scenario::Default)]
    pub scenario: Scenario,
    /// Wrapper key of the events response.
    #[arg(long, value_enum, default_value_t = EventsWrapper::AlarmEventsDetails)]
    pub events_wrapper: EventsWrapper,
    /// An empty alarm list as `null` or `[]`.
    #[arg(long, value_enum, default_value_t = EmptyList::Null)]
    pub empty_list: EmptyList,
    /// `alarmsCount` as rows in the page or total matches.
    #[arg(long, value_enum, default_value_t = AlarmsCount::Page)]
    pub alarms_count: AlarmsCount,
    /// Events and summary answer 404 for alarms younger than this many seconds.
    #[arg(long, default_value_t = 0)]
    pub not_ready_secs: u64,
    /// Collective Insights daily detection quota.
    #[arg(long, default_value_t = 15_000)]
    pub daily_quota: u64,
    /// Collective Insights maximum items per request (413 above it).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

fn parse_loopback(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|e| format!("{s:?} is not an IP:PORT address: {e}"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address; the simulator only listens on 127.0.0.0/8 or [::1]"
        ))
    }
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

impl std::fmt::Debug for SimArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_config().fmt(f)
    }
}

impl SimArgs {
    /// The simulator configuration these options describe.
    pub fn to_config(&self) -> SimConfig {
        SimConfig {
            listen: self.listen,
            seed: self.seed,
            scenario: self.scenario,
            hours: self.hours,
            alarms_per_hour: self.alarms_per_hour,
            events_per_alarm: self.events_per_alarm,
            end: self.end,
            page_cap: self.page_cap,
            offset_mode: self.offset_mode,
            lr_latency: Duration::from_millis(self.lr_latency_ms),
            rf_latency: Duration::from_millis(self.rf_latency_ms),
            fault_rate: self.fault_rate,
            slow: Duration::from_millis(self.slow_ms),
            lr_key: self.lr_key.clone(),
            lr_low_priv_key: self.lr_low_priv_key.clone(),
            rf_key: self.rf_key.clone(),
            rf_no_ci_key: self.rf_no_ci_key.clone(),
            events_wrapper: self.events_wrapper,
            empty_list: self.empty_list,
            alarms_count: self.alarms_count,
            not_ready: Duration::from_secs(self.not_ready_secs),
            daily_quota: self.daily_quota,
            max_batch: self.max_batch,
            tls: None,
        }
    }
}

/// Starts the simulator, announces its URL on stdout, and serves until SIGINT or
/// SIGTERM, then shuts down cleanly.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let mut cfg = args.to_config();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let read = |flag: &str, p: &PathBuf| {
            std::fs::read(p).with_context(|| format!("{flag} {}: cannot read it", p.display()))
        };
        cfg.tls = Some(sim::TlsPem {
            cert: read("--tls-cert", cert)?,
            key: read("--tls-key", key)?,
        });
    }
    let running = sim::start(cfg)
        .await
        .context("could not start the simulator")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "lrci-sim listening on {}", running.url())
            .and_then(|()| out.flush())
            .context("could not write the listening line to stdout")?;
    }
    wait_for_signal().await?;
    tracing::info!("stopping the simulator");
    running.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("could not listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("could not listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("could not listen for Ctrl-C")
}
