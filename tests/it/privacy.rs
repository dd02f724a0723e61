//! Issue 10: nothing of the organisation's leaves, with no configuration. The
//! simulator's default mix is a realistic organisation (kestrel-logistics.co.uk:
//! internal hosts in `Internal` zones, DMZ hosts on its public range with network
//! records, its AD domain, name-only events, NAT egress, a DNS sinkhole) and
//! `/_sim/alarms` marks the organisation's values. The real binary runs with the
//! vendor script's variables only (plus where its ledger and logs go); the oracle
//! (harness/oracle.rs, no lrci code) judges what reached CI.

use crate::harness::*;
use lrci::sim::gen::{ORG_DMZ_RANGE, ORG_DOMAIN, ORG_LAN_RANGE};
use lrci::sim::SimConfig;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

type Key = (i64, String, String);

/// Whether a received value is the organisation's by the simulator's own
/// constants: a name under its domain, an address in its ranges, a URL on either.
fn is_organisations(kind: &str, value: &str) -> bool {
    let in_range = |ip: IpAddr, (b, e): (&str, &str)| {
        let (b, e): (IpAddr, IpAddr) = (b.parse().unwrap(), e.parse().unwrap());
        b <= ip && ip <= e
    };
    let host_is = |h: &str| match h.parse::<IpAddr>() {
        Ok(ip) => in_range(ip, ORG_DMZ_RANGE) || in_range(ip, ORG_LAN_RANGE),
        Err(_) => h == ORG_DOMAIN || h.ends_with(&format!(".{ORG_DOMAIN}")),
    };
    match kind {
        "url" => url_host(value).is_some_and(|h| host_is(&h)),
        "ip" | "domain" => host_is(value),
        _ => false,
    }
}

/// What one realistic run did, as the oracle judges it.
#[derive(Debug)]
struct Figures {
    seed: u64,
    alarms: usize,
    sent: usize,
    org_reaching_ci: Vec<Key>,
    external_missed: Vec<Key>,
    unexpected: Vec<Key>,
    first_alarm_sent: usize,
}

async fn realistic_run(seed: u64) -> (Figures, Home, TestSim) {
    let sim = start(SimConfig {
        seed,
        daily_quota: 1_000_000,
        ..live_config(6, 30)
    })
    .await;
    let home = Home::new();
    let run = lrci(&sim, &home, &["sync", "--json"]).await;
    run.expect_code(0);
    let s = run.summary();
    let truth = truth(&sim).await;
    let window = in_window(&truth, &s);
    let org = organisation_values(&truth);
    let got = unique_keys(&received(&sim).await);
    let want: BTreeSet<Key> = window
        .iter()
        .flat_map(|a| {
            let id = a["alarmId"].as_i64().unwrap();
            oracle_indicators(a, &[])
                .into_iter()
                .map(move |(t, v)| (id, t, v))
        })
        .collect();
    let first: &Value = window.first().expect("the window holds alarms");
    let first_id = first["alarmId"].as_i64().unwrap();
    // The first alarm names only the organisation's hosts, and some of them look
    // public (FQDNs under a public suffix): without learning they would leave.
    assert!(oracle_indicators(first, &[]).is_empty(), "{first}");
    assert!(!oracle_all_public(first, &[]).is_empty(), "{first}");
    let figures = Figures {
        seed,
        alarms: window.len(),
        sent: got.len(),
        org_reaching_ci: got
            .iter()
            .filter(|(_, t, v)| org.contains(&(t.clone(), v.clone())) || is_organisations(t, v))
            .cloned()
            .collect(),
        external_missed: want.difference(&got).cloned().collect(),
        unexpected: got.difference(&want).cloned().collect(),
        first_alarm_sent: got.iter().filter(|(id, _, _)| *id == first_id).count(),
    };
    eprintln!(
        "seed {}: {} alarms, {} detections sent, {} of the organisation's values reached CI, {} external indicators missed",
        figures.seed,
        figures.alarms,
        figures.sent,
        figures.org_reaching_ci.len(),
        figures.external_missed.len()
    );
    (figures, home, sim)
}

fn assert_clean(f: &Figures) {
    let sample = |v: &[Key]| v.iter().take(10).cloned().collect::<Vec<_>>();
    assert!(f.alarms > 100, "{f:?}");
    assert!(f.sent > 200, "{f:?}");
    assert!(
        f.org_reaching_ci.is_empty(),
        "seed {}: the organisation's values reached CI: {:?}",
        f.seed,
        sample(&f.org_reaching_ci)
    );
    assert!(
        f.external_missed.is_empty(),
        "seed {}: external indicators missed: {:?}",
        f.seed,
        sample(&f.external_missed)
    );
    assert!(
        f.unexpected.is_empty(),
        "seed {}: sent but not expected: {:?}",
        f.seed,
        sample(&f.unexpected)
    );
    assert_eq!(f.first_alarm_sent, 0, "{f:?}");
}

/// Done-when 1 and 2: a fresh install's first run with no configuration, the
/// window starting with an alarm that names only internal hosts, several seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_without_configuration_sends_nothing_of_the_organisations_and_misses_nothing() {
    for seed in [1, 7, 2026] {
        let (f, home, _sim) = realistic_run(seed).await;
        assert_clean(&f);
        // What was learned, with its evidence: the organisation's domain, and no
        // attacker's domain (the sinkhole answered several from one address).
        let out = lrci_ledger_json(&home, &["ledger", "domains", "--json"]);
        let learned: Vec<&str> = out
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "learned")
            .map(|r| r["domain"].as_str().unwrap())
            .collect();
        assert_eq!(learned, [ORG_DOMAIN], "seed {seed}: {out}");
        let org = out
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["domain"] == ORG_DOMAIN)
            .unwrap();
        assert_eq!(org["detections"]["sent"], 0, "{org}");
        assert!(org["detections"]["excluded"].as_i64().unwrap() > 0, "{org}");
        assert!(
            org["evidence"]["example_alarm_id"].as_i64().is_some(),
            "{org}"
        );
        let nets = lrci_ledger_json(&home, &["ledger", "networks", "--json"]);
        let ranges: BTreeSet<&str> = nets
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["range"].as_str().unwrap())
            .collect();
        let dmz = format!("{}-{}", ORG_DMZ_RANGE.0, ORG_DMZ_RANGE.1);
        let lan = format!("{}-{}", ORG_LAN_RANGE.0, ORG_LAN_RANGE.1);
        assert_eq!(
            ranges,
            BTreeSet::from([dmz.as_str(), lan.as_str()]),
            "{nets}"
        );
    }
}

/// Configured knowledge wins over learned: an allowed domain is sent although
/// learned, and `internal_domains` / `own_networks` are excluded with their
/// configured reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_wins_over_learning_and_is_named_in_ledger_domains() {
    let sim = start(SimConfig {
        seed: 5,
        daily_quota: 1_000_000,
        ..live_config(3, 30)
    })
    .await;
    let home = Home::new();
    let run = lrci(
        &sim,
        &home,
        &["sync", "--json", "--allow-domain", ORG_DOMAIN],
    )
    .await;
    run.expect_code(0);
    let got = unique_keys(&received(&sim).await);
    let org_names = got
        .iter()
        .filter(|(_, t, v)| t == "domain" && v.ends_with(ORG_DOMAIN))
        .count();
    assert!(org_names > 0, "an allowed domain is sent although learned");
    // Without the allow list the domain is learned; with it (as configured for
    // the run), allowed.
    let out = lrci_ledger_json(&home, &["ledger", "domains", "--json"]);
    let status = |out: &Value| {
        out.as_array()
            .unwrap()
            .iter()
            .find(|r| r["domain"] == ORG_DOMAIN)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&out), "learned", "{out}");
    let out = lrci_ledger_env(
        &home,
        &["ledger", "domains", "--json"],
        &[("LRCI_ALLOW_DOMAINS", ORG_DOMAIN)],
    );
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = out
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["domain"] == ORG_DOMAIN)
        .unwrap()
        .clone();
    assert_eq!(row["status"], "allowed", "{row}");
    // The addresses in LogRhythm's network records are still never sent.
    assert!(!got
        .iter()
        .any(|(_, t, v)| t == "ip" && is_organisations(t, v)));
}

/// A value sent before it was known to be the organisation's: `ledger show` says
/// so (nothing already sent is recalled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_show_names_values_sent_before_they_were_known() {
    let sim = start(SimConfig {
        seed: 11,
        daily_quota: 1_000_000,
        ..live_config(3, 30)
    })
    .await;
    let home = Home::new();
    // First run with the domain allowed: its names are sent.
    lrci(&sim, &home, &["sync", "--allow-domain", ORG_DOMAIN])
        .await
        .expect_code(0);
    let got = unique_keys(&received(&sim).await);
    let (alarm, _, value) = got
        .iter()
        .find(|(_, t, v)| t == "domain" && v.ends_with(ORG_DOMAIN))
        .cloned()
        .expect("an organisation's name was sent while allowed");
    // Without the allow list, the learned domain now excludes it.
    let out = lrci_ledger_json(&home, &["ledger", "show", &alarm.to_string(), "--json"]);
    let notes = out["sent_before_knowledge"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["value"] == value.as_str()
            && n["now_excluded"]
                .as_str()
                .unwrap()
                .contains("learned organisation domain")),
        "{out}"
    );
    let text = lrci_ledger_text(&home, &["ledger", "show", &alarm.to_string()]);
    assert!(text.contains("Nothing already sent is recalled"), "{text}");
}

fn lrci_ledger_env(home: &Home, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lrci"))
        .args(args)
        .env_clear()
        .env("LRCI_LEDGER", home.ledger())
        .env("LRCI_CONFIG", home.file("none.toml", ""))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    out
}

fn lrci_ledger(home: &Home, args: &[&str]) -> std::process::Output {
    lrci_ledger_env(home, args, &[])
}

fn lrci_ledger_json(home: &Home, args: &[&str]) -> Value {
    serde_json::from_slice(&lrci_ledger(home, args).stdout).unwrap()
}

fn lrci_ledger_text(home: &Home, args: &[&str]) -> String {
    text(&lrci_ledger(home, args).stdout)
}

/// Guidance: a dry run shows what it learned (the summary's `organisation`) and
/// warns of domains nobody judged; `doctor` says the same from the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_doctor_show_what_was_learned_and_warn_of_unjudged_domains() {
    let sim = start(SimConfig {
        seed: 1,
        daily_quota: 1_000_000,
        ..live_config(6, 30)
    })
    .await;
    let home = Home::new();
    let dry = lrci(&sim, &home, &["sync", "--dry-run", "--json"]).await;
    dry.expect_code(0);
    let s = dry.summary();
    assert_eq!(
        s["organisation"]["learned_domains"],
        serde_json::json!([ORG_DOMAIN]),
        "{s}"
    );
    assert_eq!(
        s["organisation"]["networks"].as_array().unwrap().len(),
        2,
        "{s}"
    );
    // The sinkhole placed attackers' names on the organisation's side: seen, not
    // learned, and about to be sent, so named for review.
    let unjudged = s["organisation"]["unjudged_domains"].as_array().unwrap();
    assert!(!unjudged.is_empty(), "{s}");
    assert!(!unjudged.contains(&Value::from(ORG_DOMAIN)), "{s}");
    assert!(dry.stderr.contains("lrci ledger domains"), "{}", dry.stderr);
    assert!(received(&sim).await.is_empty(), "a dry run stores nothing");

    lrci(&sim, &home, &["sync"]).await.expect_code(0);
    let check = |run: &LrciRun| {
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "organisation")
            .cloned()
            .unwrap_or_else(|| panic!("no organisation check: {doc}"))
    };
    let ok = check(&lrci(&sim, &home, &["doctor", "--json", "--offline"]).await);
    assert_eq!(ok["status"], "ok", "{ok}");
    // Put the sent names back to waiting: now they are about to be sent.
    rusqlite::Connection::open(home.ledger())
        .unwrap()
        .execute_batch(
            "UPDATE detections SET state = 'pending', sent_at = NULL
             WHERE state = 'sent' AND ioc_type = 'domain'",
        )
        .unwrap();
    let warn = check(&lrci(&sim, &home, &["doctor", "--json", "--offline"]).await);
    assert_eq!(warn["status"], "warn", "{warn}");
    let detail = warn["detail"].as_str().unwrap();
    assert!(detail.contains("lrci ledger domains"), "{detail}");
    assert!(!detail.contains(ORG_DOMAIN), "{detail}");
}
