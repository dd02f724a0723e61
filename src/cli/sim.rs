//! `lrci sim`: serve the simulator on loopback until SIGINT/SIGTERM.
//!
//! Prints `lrci-sim listening on http://127.0.0.1:PORT` (`https://` with
//! `--tls-cert`/`--tls-key`) as the first stdout line (flushed), then only logs
//! (stderr) until it is stopped.

pub use crate::cli::args::SimArgs;
use crate::cli::args::{
    SimAlarmsCount, SimEmptyList, SimEventsWrapper, SimOffsetMode, SimScenario, SimServerProfile,
    SimTickSemantics,
};
use crate::platform;
use crate::sim::gen::Scenario;
use crate::sim::{
    self, AlarmsCount, EmptyList, EventsWrapper, OffsetMode, ServerProfile, SimConfig,
    TickSemantics,
};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

impl std::fmt::Debug for SimArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_config().fmt(f)
    }
}

impl SimArgs {
    /// The simulator configuration these options describe.
    pub fn to_config(&self) -> SimConfig {
        let (cap, offset) = server_profile(self.server_profile).paging();
        SimConfig {
            listen: self.listen,
            seed: self.seed,
            scenario: scenario(self.scenario),
            hours: self.hours,
            alarms_per_hour: self.alarms_per_hour,
            events_per_alarm: self.events_per_alarm,
            end: self.end,
            page_cap: self
                .page_cap
                .map_or(cap, |c| usize::try_from(c).unwrap_or(usize::MAX)),
            offset_mode: self.offset_mode.map_or(offset, offset_mode),
            tick_semantics: match self.tick_semantics {
                SimTickSemantics::Millis => TickSemantics::Millis,
                SimTickSemantics::Exact => TickSemantics::Exact,
            },
            strict_bound: self.strict_bound,
            server_tz_offset_hours: self.server_tz_offset_hours,
            shuffle_rows: self.shuffle_rows,
            duplicate_rows: self.duplicate_rows,
            uniform_ties: self.uniform_ties,
            lr_latency: Duration::from_millis(self.lr_latency_ms),
            rf_latency: Duration::from_millis(self.rf_latency_ms),
            lr_capacity: self.lr_capacity,
            lr_reject_above: self.lr_reject_above,
            fault_rate: self.fault_rate,
            slow: Duration::from_millis(self.slow_ms),
            lr_key: self.lr_key.clone(),
            lr_low_priv_key: self.lr_low_priv_key.clone(),
            rf_key: self.rf_key.clone(),
            rf_no_ci_key: self.rf_no_ci_key.clone(),
            events_wrapper: match self.events_wrapper {
                SimEventsWrapper::AlarmEventsDetails => EventsWrapper::AlarmEventsDetails,
                SimEventsWrapper::AlarmsEventDetails => EventsWrapper::AlarmsEventDetails,
            },
            empty_list: match self.empty_list {
                SimEmptyList::Null => EmptyList::Null,
                SimEmptyList::Empty => EmptyList::Empty,
            },
            alarms_count: match self.alarms_count {
                SimAlarmsCount::Page => AlarmsCount::Page,
                SimAlarmsCount::Total => AlarmsCount::Total,
            },
            not_ready: Duration::from_secs(self.not_ready_secs),
            daily_quota: self.daily_quota,
            max_batch: self.max_batch,
            rf_silent_drop: self.rf_silent_drop,
            clock_offset_secs: self.clock_offset_secs,
            visibility_lag: Duration::from_secs(self.visibility_lag_secs),
            visibility_jitter: Duration::from_secs(self.visibility_jitter_secs),
            tls: None,
        }
    }
}

fn scenario(s: SimScenario) -> Scenario {
    match s {
        SimScenario::Default => Scenario::Default,
        SimScenario::Burst => Scenario::Burst,
        SimScenario::Hostile => Scenario::Hostile,
    }
}

fn server_profile(p: SimServerProfile) -> ServerProfile {
    match p {
        SimServerProfile::Harsh => ServerProfile::Harsh,
        SimServerProfile::Realistic => ServerProfile::Realistic,
    }
}

fn offset_mode(m: SimOffsetMode) -> OffsetMode {
    match m {
        SimOffsetMode::Ignored => OffsetMode::Ignored,
        SimOffsetMode::Records => OffsetMode::Records,
        SimOffsetMode::Pages => OffsetMode::Pages,
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

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut signals = platform::Shutdown::listen().context("could not listen for stop signals")?;
    let name = signals
        .recv()
        .await
        .context("could not listen for stop signals")?;
    tracing::info!(signal = name, "stop requested");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{SIM_LR_KEY, SIM_RF_KEY};
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn the_command_line_defaults_are_the_simulators_own() {
        assert_eq!(SIM_LR_KEY, sim::DEFAULT_LR_KEY);
        assert_eq!(SIM_RF_KEY, sim::DEFAULT_RF_KEY);
        let cfg = Wrap::parse_from(["sim"]).sim.to_config();
        let d = SimConfig::default();
        assert_eq!(cfg.scenario, d.scenario);
        assert_eq!(cfg.offset_mode, d.offset_mode);
        assert_eq!(cfg.events_wrapper, d.events_wrapper);
        assert_eq!(cfg.empty_list, d.empty_list);
        assert_eq!(cfg.alarms_count, d.alarms_count);
        assert_eq!((cfg.lr_key, cfg.rf_key), (d.lr_key, d.rf_key));
        assert_eq!((cfg.page_cap, cfg.daily_quota), (d.page_cap, d.daily_quota));
        assert_eq!(cfg.tick_semantics, d.tick_semantics);
        assert_eq!(
            (cfg.strict_bound, cfg.server_tz_offset_hours),
            (d.strict_bound, d.server_tz_offset_hours)
        );
        assert_eq!(
            (cfg.shuffle_rows, cfg.duplicate_rows),
            (d.shuffle_rows, d.duplicate_rows)
        );
    }

    /// One row per command line: the page cap and offset mode it gives.
    #[test]
    fn server_profile_and_its_overrides() {
        let cases: [(&[&str], usize, OffsetMode); 5] = [
            (&[], 100, OffsetMode::Ignored),
            (&["--server-profile", "harsh"], 100, OffsetMode::Ignored),
            (
                &["--server-profile", "realistic"],
                1000,
                OffsetMode::Records,
            ),
            (
                &["--server-profile", "realistic", "--page-cap", "25"],
                25,
                OffsetMode::Records,
            ),
            (
                &["--server-profile", "realistic", "--offset-mode", "pages"],
                1000,
                OffsetMode::Pages,
            ),
        ];
        for (args, cap, mode) in cases {
            let argv = std::iter::once("sim").chain(args.iter().copied());
            let cfg = Wrap::parse_from(argv).sim.to_config();
            assert_eq!((cfg.page_cap, cfg.offset_mode), (cap, mode), "{args:?}");
        }
    }

    /// Every new switch is validated with an error naming it.
    #[test]
    fn bad_switch_values_name_the_flag() {
        let cases: [&[&str]; 5] = [
            &["--server-tz-offset-hours", "15"],
            &["--server-tz-offset-hours", "two"],
            &["--tick-semantics", "nanos"],
            &["--server-profile", "gentle"],
            &["--page-cap", "0"],
        ];
        for args in cases {
            let argv = std::iter::once("sim").chain(args.iter().copied());
            let err = Wrap::try_parse_from(argv).err().unwrap().to_string();
            assert!(err.contains(args[0]), "{args:?}: {err}");
        }
        let argv = ["sim", "--server-tz-offset-hours", "-5", "--strict-bound"];
        let cfg = Wrap::parse_from(argv).sim.to_config();
        assert_eq!(cfg.server_tz_offset_hours, -5);
        assert!(cfg.strict_bound);
    }

    #[test]
    fn every_choice_maps_to_its_namesake() {
        let cases = [
            (SimScenario::Default, Scenario::Default),
            (SimScenario::Burst, Scenario::Burst),
            (SimScenario::Hostile, Scenario::Hostile),
        ];
        for (arg, want) in cases {
            assert_eq!(scenario(arg), want);
        }
        let cases = [
            (SimOffsetMode::Ignored, OffsetMode::Ignored),
            (SimOffsetMode::Records, OffsetMode::Records),
            (SimOffsetMode::Pages, OffsetMode::Pages),
        ];
        for (arg, want) in cases {
            assert_eq!(offset_mode(arg), want);
        }
    }
}
