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
    let (from, to) = last_days(now, a.days);
    let slices = l.slice_states(from, to)?;
    let cov = audit::summarise_coverage(from, to, &slices);
    let gaps = audit::merge_gaps(&slices);
    let runs = l.recent_runs(5)?;
    let day = now.date_naive();
    let used = l.budget_used(day)?;
    if a.json {
        let mut coverage = serde_json::to_value(&cov).map_err(io::Error::other)?;
        coverage["days"] = json!(a.days);
        coverage["gaps"] = gaps.iter().map(gap_json).collect();
        let doc = json!({
            "ledger": path.to_string_lossy(),
            "alarms": alarms,
            "detections": det,
            "coverage": coverage,
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
    let total_det = det.pending + det.sent + det.failed + det.rejected + det.excluded;
    writeln!(out, "ledger      {}", escape(&path.to_string_lossy()))?;
    writeln!(
        out,
        "alarms      {} ({} accepted, {} filtered, {} error)",
        alarms.total, alarms.accepted, alarms.filtered, alarms.error
    )?;
    writeln!(
        out,
        "detections  {total_det} ({} pending, {} sent, {} failed, {} rejected, {} excluded)",
        det.pending, det.sent, det.failed, det.rejected, det.excluded
    )?;
    writeln!(
        out,
        "coverage    last {} days, {}",
        a.days,
        coverage_line(from, to, &cov)
    )?;
    write_gaps(out, &gaps, a.days)?;
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
pub(super) fn write_gaps(out: &mut dyn Write, gaps: &[GapRange], days: u32) -> Outcome {
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
        writeln!(
            out,
            "  ... {} more ranges: lrci ledger gaps --days {}",
            gaps.len() - 5,
            days
        )?;
    }
    Ok(())
}
