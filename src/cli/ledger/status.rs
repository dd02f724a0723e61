//! `ledger status`: the ledger at a glance (coverage, states, budget, last runs).

use super::*;

pub(super) fn status(
    path: &Path,
    a: &StatusArgs,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Outcome {
    let l = open(path)?;
    let alarms = l.alarm_counts()?;
    let det = l.state_counts()?;
    let (from, to, label) = window(&l, a.days, now)?;
    let fresh = l.freshness(now)?;
    let slices = l.slice_states(from, to)?;
    let cov = audit::summarise_coverage(from, to, &slices);
    let gaps = audit::merge_gaps(&slices);
    let runs = l.recent_runs(5)?;
    let day = now.date_naive();
    let used = l.budget_used(day)?;
    if a.json {
        let mut coverage = serde_json::to_value(&cov).map_err(io::Error::other)?;
        coverage["days"] = json!(a.days);
        coverage["window"] = json!(label);
        coverage["gaps"] = gaps.iter().map(gap_json).collect();
        let doc = json!({
            "ledger": path.to_string_lossy(),
            "alarms": alarms,
            "detections": det,
            "coverage": coverage,
            "freshness": fresh,
            "last_run": runs.first().map(|r| run_json(r, false)),
            "runs": runs.iter().map(|r| run_json(r, false)).collect::<Vec<_>>(),
            "budget": {
                "day": day.format("%Y-%m-%d").to_string(),
                "used": used,
                "limit": a.daily_budget,
            },
        });
        return Ok(write_json(out, &doc)?);
    }
    let total_det = det.total();
    writeln!(out, "ledger      {}", escape(&path.to_string_lossy()))?;
    writeln!(
        out,
        "alarms      {} ({} accepted, {} filtered, {} error)",
        alarms.total, alarms.accepted, alarms.filtered, alarms.error
    )?;
    writeln!(
        out,
        "detections  {total_det} ({} pending, {} sent, {} failed, {} rejected, {} unconfirmed, {} excluded)",
        det.pending, det.sent, det.failed, det.rejected, det.unconfirmed, det.excluded
    )?;
    writeln!(
        out,
        "coverage    {label}, {}",
        coverage_line(from, to, &cov)
    )?;
    write_gaps(out, &gaps, a.days)?;
    writeln!(out, "last success {}", last_success_text(&fresh))?;
    writeln!(
        out,
        "budget      {used} of {} detections sent today ({} UTC)",
        a.daily_budget,
        day.format("%Y-%m-%d")
    )?;
    if runs.is_empty() {
        writeln!(out, "last runs   none")?;
    } else {
        writeln!(out, "last runs")?;
        write_table(out, &runs_table(&runs))?;
    }
    Ok(())
}

/// The first uncovered ranges of `ledger status`, and how to see the rest.
/// `2026-12-03 06:00:12 UTC (4m ago)`, or why there is none.
fn last_success_text(f: &audit::Freshness) -> String {
    match (&f.last_success_at, f.last_success_age_seconds) {
        (Some(at), Some(age)) => {
            let at = ledger::audit::parse_stored(at).map_or_else(|| at.clone(), human_time);
            format!("{at} ({} ago)", human_age(age))
        }
        _ => "none: no sync has finished with exit code 0".to_string(),
    }
}

pub(super) fn write_gaps(out: &mut dyn Write, gaps: &[GapRange], days: Option<u32>) -> Outcome {
    for g in gaps.iter().take(5) {
        writeln!(
            out,
            "  {:<9}  {} .. {}  {}h  {}",
            g.kind.as_str(),
            human_time(g.from),
            human_time(g.to),
            g.hours(),
            gap_detail(g)
        )?;
    }
    if gaps.len() > 5 {
        let flag = days.map(|d| format!(" --days {d}")).unwrap_or_default();
        writeln!(
            out,
            "  ... {} more ranges: lrci ledger gaps{flag}",
            gaps.len() - 5,
        )?;
    }
    Ok(())
}
