//! Builds a large ledger through the real write path, for the `lrci ledger`
//! benchmark (`contrib/bench/ledger.sh`).
//!
//! `cargo run --release --example build_ledger -- OUT.sqlite3 [ALARMS] [PER_ALARM] [--unsent]`
//!
//! ALARMS (default 100 000) alarms with PER_ALARM (default 10) indicators each,
//! spread over hourly slices that end at the current hour, are written with
//! `Ledger::ingest` one slice at a time (alarms, indicators and coverage in one
//! transaction, as a sync does). Two indicators in ten are excluded by policy. Of the
//! rest, most are marked `sent` in batches of 500 (`mark_sent`), one batch in fifty
//! `failed` (`mark_failed`), and one detection in a thousand `rejected`
//! (`mark_rejected`). The work is recorded as ten sync runs. With `--unsent`
//! nothing is submitted: every indicator that is not excluded stays `pending`,
//! a backlog for `lrci replay` (`contrib/bench/submit_cpu.sh`).

use chrono::{Duration as Span, DurationRound, Utc};
use lrci::ledger::{AlarmOutcome, AlarmRecord, SliceIngest, SubmissionRecord, Writer};
use lrci::model::{AlarmRow, DetectionState, Indicator, IndicatorType, Verdict};
use std::path::PathBuf;
use std::time::Instant;

const ALARMS_PER_SLICE: u64 = 100;
const BATCH: usize = 500;
const RUNS: u64 = 10;

fn indicator(alarm: u64, i: u64) -> Indicator {
    let n = alarm * 16 + i;
    let (kind, value, field) = match i % 5 {
        0 => (
            IndicatorType::Ip,
            format!(
                "{}.{}.{}.{}",
                11 + n % 200,
                (n >> 8) % 256,
                (n >> 16) % 256,
                n % 256
            ),
            "originIP",
        ),
        1 => (
            IndicatorType::Domain,
            format!("host{n}.example-{}.com", n % 97),
            "impactedHostName",
        ),
        2 => (
            IndicatorType::Url,
            format!("https://dl{}.example.net/payload/{n}.bin", n % 53),
            "url",
        ),
        3 => (
            IndicatorType::Vulnerability,
            format!("CVE-20{}-{}", 10 + n % 15, 10_000 + n % 90_000),
            "cve",
        ),
        _ => (
            IndicatorType::Domain,
            format!("c2-{n}.example.org"),
            "domain",
        ),
    };
    let verdict = if i >= 8 {
        Verdict::Exclude("private ip (rfc1918)".into())
    } else {
        Verdict::Send
    };
    Indicator {
        kind,
        value,
        field,
        verdict,
        source: Default::default(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let unsent = all.iter().any(|a| a == "--unsent");
    let mut args = all.into_iter().filter(|a| a != "--unsent");
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: build_ledger OUT [ALARMS] [PER_ALARM] [--unsent]")?,
    );
    let alarms: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let per_alarm: u64 = args.next().map_or(Ok(10), |s| s.parse())?;
    if out.exists() {
        return Err(format!("{} exists; remove it first", out.display()).into());
    }
    let started = Instant::now();
    let mut ledger = Writer::open(&out)?;
    let now = Utc::now();
    let end = now.duration_trunc(Span::hours(1))?;
    let slices = alarms.div_ceil(ALARMS_PER_SLICE);
    let first = end - Span::hours(i64::try_from(slices)?);
    let slices_per_run = slices.div_ceil(RUNS);

    let mut next_alarm = 1;
    let mut after_id = lrci::model::DetectionId::from(0);
    let mut batches = 0u64;
    let mut slice = 0u64;
    for run in 0..RUNS {
        let run_start = now - Span::hours(i64::try_from(RUNS - run)?);
        let run_id = ledger.begin_run("sync", run_start, Some((first, end)))?;
        // Ingest this run's share of slices.
        while slice < slices && slice < (run + 1) * slices_per_run {
            let slice_start = first + Span::hours(i64::try_from(slice)?);
            let mut records = Vec::new();
            for k in 0..ALARMS_PER_SLICE {
                if next_alarm > alarms {
                    break;
                }
                let id = next_alarm;
                next_alarm += 1;
                records.push(AlarmRecord {
                    row: AlarmRow {
                        alarm_id: i64::try_from(id)?.into(),
                        rule_name: format!("Recorded Future: Risk List Match - rule {}", id % 37),
                        status: 1,
                        entity_name: "Primary Site".into(),
                        date_inserted: slice_start + Span::seconds(i64::try_from(k * 30)?),
                    },
                    rbp_max: Some(i64::try_from(id % 101)?),
                    outcome: AlarmOutcome::Accepted {
                        event_count: 3,
                        indicators: (0..per_alarm).map(|i| indicator(id, i)).collect(),
                        note: None,
                    },
                });
            }
            ledger.ingest(
                &SliceIngest {
                    run_id: Some(run_id),
                    slice_start,
                    covered_until: Some(slice_start + Span::hours(1)),
                    saturated_at: vec![],
                    listed_from: None,
                    observations: Vec::new(),
                    alarms: records,
                },
                run_start,
            )?;
            slice += 1;
        }
        // Submit what is pending, as the submitter does: batches in id order.
        loop {
            if unsent {
                break;
            }
            let todo = ledger.detections_to_submit(&[DetectionState::Pending], after_id, BATCH)?;
            let Some(last) = todo.last() else { break };
            after_id = last.id;
            batches += 1;
            let sub = SubmissionRecord {
                run_id: Some(run_id),
                at: run_start + Span::minutes(1),
                debug: false,
                http_status: Some(200),
                processed: None,
            };
            let mut ids: Vec<lrci::model::DetectionId> = todo.iter().map(|d| d.id).collect();
            // One detection in a thousand: CI answered 400 for it.
            let rejected: Vec<lrci::model::DetectionId> = ids
                .iter()
                .copied()
                .filter(|id| id.get() % 1000 == 7)
                .collect();
            ids.retain(|id| id.get() % 1000 != 7);
            if batches.is_multiple_of(50) {
                let failed = SubmissionRecord {
                    http_status: Some(503),
                    ..sub.clone()
                };
                ledger.mark_failed(&ids, &failed, "HTTP 503 after 4 retries")?;
            } else {
                ledger.mark_sent(&ids, &sub)?;
            }
            for id in rejected {
                let r = SubmissionRecord {
                    http_status: Some(400),
                    ..sub.clone()
                };
                ledger.mark_rejected(id, &r, "invalid ioc.value")?;
            }
        }
        ledger.finish_run(run_id, run_start + Span::minutes(2), 0, "{}")?;
    }
    let c = ledger.state_counts()?;
    println!(
        "{}: {} alarms, {} detections (sent {}, failed {}, rejected {}, excluded {}, pending {}) in {:.1}s",
        out.display(),
        ledger.alarm_count()?,
        c.pending + c.sent + c.failed + c.rejected + c.excluded,
        c.sent,
        c.failed,
        c.rejected,
        c.excluded,
        c.pending,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
