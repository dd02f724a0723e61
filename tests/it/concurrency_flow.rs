//! `concurrency = "auto"` end to end: the real binary against the in-process
//! simulator's capacity model (`lr_capacity`: latency grows beyond N requests in
//! flight; `lr_reject_above`: 429 beyond M). Auto ends near N without pushing
//! far above it, backs off when LogRhythm answers 429 or 5xx, and a fixed
//! concurrency never changes. Everything asserted is a count (the run summary's
//! `concurrency`, the simulator's `/_sim/stats`), never a time. Bad values of
//! both settings are one error line naming the setting.

use crate::harness::*;
use chrono::Duration as Span;
use lrci::sim::SimConfig;
use serde_json::{json, Value};
use std::time::Duration;

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `hours` × `per_hour` alarms at 20 ms a LogRhythm call (long enough that the
/// debug builds' own few milliseconds do not look like LogRhythm's latency).
fn sim_config(hours: u32, per_hour: u32, capacity: usize, reject_above: usize) -> SimConfig {
    SimConfig {
        hours,
        alarms_per_hour: per_hour,
        end: Some(end()),
        lr_latency: Duration::from_millis(20),
        lr_capacity: capacity,
        lr_reject_above: reject_above,
        daily_quota: 1_000_000,
        ..SimConfig::default()
    }
}

/// `lrci backfill --json` over the simulator's whole window, with `extra` flags.
async fn backfill(sim: &TestSim, home: &Home, hours: i64, extra: &[&str]) -> LrciRun {
    let from = ts(end() - Span::hours(hours));
    let to = ts(end());
    let mut args = vec![
        "backfill",
        "--json",
        "--from",
        &from,
        "--to",
        &to,
        "--daily-budget",
        "1000000",
    ];
    args.extend_from_slice(extra);
    lrci(sim, home, &args).await
}

/// LogRhythm requests that arrived to find more than `k` in flight, and all of them.
fn arrivals_above(stats: &Value, k: u64) -> (u64, u64) {
    let arrivals = stats["lr_in_flight"]["arrivals"]
        .as_object()
        .unwrap_or_else(|| panic!("no arrivals: {stats}"));
    let mut above = 0;
    let mut all = 0;
    for (at, count) in arrivals {
        let at: u64 = at.parse().unwrap();
        all += n(count);
        if at > k {
            above += n(count);
        }
    }
    (above, all)
}

#[tokio::test]
async fn auto_settles_near_the_capacity_of_logrhythm() {
    const CAPACITY: u64 = 12;
    let sim = start(sim_config(3, 200, 12, 0)).await;
    let home = Home::new();
    let run = backfill(
        &sim,
        &home,
        3,
        // Details too: two requests per alarm, enough samples past the warm-up.
        &[
            "--concurrency",
            "auto",
            "--concurrency-max",
            "48",
            "--fetch-details",
        ],
    )
    .await;
    run.expect_code(0);
    let c = &run.summary()["concurrency"];
    assert_eq!(c["mode"], "auto", "{c}");
    assert_eq!(c["max"], 48, "{c}");
    let stats = admin_get(&sim, "/_sim/stats").await;
    // Near N: not stuck low, not far above. The last limit is wherever the
    // probing (one up per window, down when latency grows) stood when the work
    // ran out, so it is held to a wide band; what LogRhythm saw is the measure.
    let margin = CAPACITY / 4 + 1;
    let last = n(&c["final"]);
    assert!(
        (CAPACITY / 2..=CAPACITY + margin).contains(&last),
        "final limit {last} is not near the capacity {CAPACITY}: {c}"
    );
    assert!(n(&c["peak"]) <= 2 * CAPACITY, "{c}");
    let peak = n(&stats["lr_in_flight"]["peak"]);
    assert!(
        peak >= CAPACITY,
        "LogRhythm never saw {CAPACITY} in flight: {stats}"
    );
    let (near, all) = arrivals_above(&stats, CAPACITY * 3 / 4 - 1);
    assert!(all > 1000, "{stats}");
    assert!(
        near * 3 >= all,
        "only {near} of {all} LogRhythm requests arrived with {} or more in flight: {stats}",
        CAPACITY * 3 / 4
    );
    // Past the warm-up (slow start may overshoot once), requests arrive with at
    // most N + margin in flight.
    let (above, all) = arrivals_above(&stats, CAPACITY + margin);
    assert!(
        above * 20 <= all,
        "{above} of {all} LogRhythm requests arrived with more than {} in flight: {stats}",
        CAPACITY + margin
    );
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn auto_backs_off_on_429_and_a_fixed_concurrency_does_not_change() {
    // Latency stays flat; the gateway answers 429 beyond 6 in flight.
    const REJECT_ABOVE: u64 = 6;
    let mut runs = Vec::new();
    for concurrency in ["auto", "16"] {
        let sim = start(sim_config(1, 150, 0, 6)).await;
        let home = Home::new();
        let run = backfill(
            &sim,
            &home,
            1,
            &["--concurrency", concurrency, "--max-retries", "1"],
        )
        .await;
        let stats = admin_get(&sim, "/_sim/stats").await;
        runs.push((run.summary()["concurrency"].clone(), stats));
        sim.sim.shutdown().await;
    }
    let (auto, auto_stats) = &runs[0];
    let (fixed, fixed_stats) = &runs[1];
    let rejected = |s: &Value| s["faults"]["capacity-429"].as_u64().unwrap_or(0);
    assert!(n(&auto["backoffs"]) >= 1, "{auto}");
    assert!(
        n(&auto["final"]) <= REJECT_ABOVE + 1,
        "auto ends at most one above the gateway's limit: {auto}"
    );
    assert!(
        n(&auto_stats["lr_in_flight"]["peak"]) <= 2 * REJECT_ABOVE,
        "{auto_stats}"
    );
    assert!(
        rejected(auto_stats) * 4 < rejected(fixed_stats),
        "auto was rejected {} times, fixed 16 {} times",
        rejected(auto_stats),
        rejected(fixed_stats)
    );
    assert_eq!(
        fixed,
        &json!({"mode": "fixed", "max": 16, "final": 16, "peak": 16, "backoffs": 0,
                "in_flight_peak": fixed["in_flight_peak"]}),
        "a fixed concurrency never changes"
    );
    assert!(n(&fixed["in_flight_peak"]) <= 16, "{fixed}");
}

#[tokio::test]
async fn auto_backs_off_on_5xx_and_a_fixed_concurrency_does_not() {
    let mut out = Vec::new();
    for concurrency in ["auto", "8"] {
        let sim = start(sim_config(1, 100, 0, 0)).await;
        admin_post(
            &sim,
            "/_sim/faults",
            json!({"side": "lr", "kind": "503", "count": 6, "route": "events"}),
        )
        .await;
        let home = Home::new();
        let run = backfill(&sim, &home, 1, &["--concurrency", concurrency]).await;
        run.expect_code(0);
        let stats = admin_get(&sim, "/_sim/stats").await;
        assert_eq!(stats["faults"]["503"], 6, "{stats}");
        out.push(run.summary()["concurrency"].clone());
        sim.sim.shutdown().await;
    }
    assert!(n(&out[0]["backoffs"]) >= 1, "{}", out[0]);
    assert!(
        n(&out[0]["final"]) >= 2,
        "auto recovers after the errors: {}",
        out[0]
    );
    assert_eq!(
        (
            &out[1]["mode"],
            &out[1]["final"],
            &out[1]["peak"],
            &out[1]["backoffs"]
        ),
        (&json!("fixed"), &json!(8), &json!(8), &json!(0)),
        "{}",
        out[1]
    );
}

#[test]
fn bad_concurrency_values_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.toml");
    std::fs::write(&ok, "log_level = \"info\"\n").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "log_level = \"info\"\nconcurrency = \"fast\"\n").unwrap();
    let zero = dir.path().join("zero.toml");
    std::fs::write(&zero, "concurrency_max = 0\n").unwrap();
    let (ok, bad, zero) = (
        ok.display().to_string(),
        bad.display().to_string(),
        zero.display().to_string(),
    );
    let bad_line = format!("concurrency ({bad}:2)");
    let zero_line = format!("concurrency_max ({zero}:1)");
    // (arguments, environment, exit code, what the error line names)
    type Row<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a [&'a str]);
    let rows: [Row; 6] = [
        (
            &["--config", &bad, "config", "check"],
            &[],
            78,
            &[&bad_line, "fast", "auto"],
        ),
        (
            &["--config", &ok, "config", "check"],
            &[("LRCI_CONCURRENCY", "0")],
            78,
            &["LRCI_CONCURRENCY", "0", "1..=64"],
        ),
        (
            &["--config", &ok, "config", "check"],
            &[("LRCI_CONCURRENCY", "fast")],
            78,
            &["LRCI_CONCURRENCY", "fast"],
        ),
        (
            &["--config", &zero, "config", "check"],
            &[],
            78,
            &[&zero_line, "1..=64"],
        ),
        (
            &["--config", &ok, "config", "check"],
            &[("LRCI_CONCURRENCY_MAX", "0")],
            78,
            &["LRCI_CONCURRENCY_MAX"],
        ),
        (
            &["--config", &ok, "config", "check", "--concurrency", "fast"],
            &[],
            2,
            &["--concurrency", "fast"],
        ),
    ];
    for (args, env, code, names) in rows {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"))
            .env_clear()
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap();
        assert_clear_error(&out, code, names, &[]);
    }
    // `auto` in any case, from the file, the environment or the flag, is valid.
    for (args, env) in [
        (
            vec!["--config", &ok, "config", "show"],
            vec![("LRCI_CONCURRENCY", "AUTO")],
        ),
        (
            vec!["--config", &ok, "config", "show", "--concurrency", "Auto"],
            vec![],
        ),
    ] {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrci"))
            .env_clear()
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .envs(env)
            .args(&args)
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("concurrency ") && l.contains("= auto")),
            "{stdout}"
        );
    }
}
