//! `ledger gaps`: the hours never listed completely.

use super::*;

pub(super) fn gap_json(g: &GapRange) -> Value {
    json!({
        "kind": g.kind.as_str(),
        "from": ledger::ts(g.from),
        "to": ledger::ts(g.to),
        "hours": g.hours(),
        "covered_until": g.covered_until.map(ledger::ts),
        "saturated_at": g.saturated_at.iter().map(|t| ledger::ts(*t)).collect::<Vec<_>>(),
    })
}

pub(super) fn gap_detail(g: &GapRange) -> String {
    if let Some(u) = g.covered_until {
        return format!("listed up to {}", human_time(u));
    }
    if !g.saturated_at.is_empty() {
        let shown: Vec<String> = g
            .saturated_at
            .iter()
            .take(3)
            .map(|t| human_time(*t))
            .collect();
        let more = g.saturated_at.len().saturating_sub(3);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return format!("full page at one timestamp: {}{tail}", shown.join(", "));
    }
    "never listed".into()
}

pub(super) fn gaps_table(gaps: &[GapRange]) -> Table {
    let mut t = table(&["kind", "from (UTC)", "to (UTC)", "hours", "detail"]);
    for g in gaps {
        t.add_row(vec![
            g.kind.as_str().to_string(),
            human_time(g.from),
            human_time(g.to),
            g.hours().to_string(),
            gap_detail(g),
        ]);
    }
    t
}

pub(super) fn gaps(path: &Path, a: &GapsArgs, now: DateTime<Utc>, out: &mut dyn Write) -> Outcome {
    let (from, to) = match (&a.from, &a.to) {
        (Some(f), Some(t)) => {
            let from = floor_hour(parse_time("--from", f)?);
            let to = parse_time("--to", t)?;
            if from >= to {
                return Err(Fatal::msg(code::USAGE, "--from must be before --to").into());
            }
            (from, to)
        }
        _ => {
            let l = open(path)?;
            let (from, to, _) = window(&l, a.days, now)?;
            (from, to)
        }
    };
    let l = open(path)?;
    let slices = l.slice_states(from, to)?;
    let gaps = audit::merge_gaps(&slices);
    let cov = audit::summarise_coverage(from, to, &slices);
    if a.json {
        let doc = json!({
            "from": ledger::ts(from),
            "to": ledger::ts(to),
            "coverage": cov,
            "gaps": gaps.iter().map(gap_json).collect::<Vec<_>>(),
        });
        return Ok(write_json(out, &doc)?);
    }
    writeln!(out, "{}", coverage_line(from, to, &cov))?;
    if gaps.is_empty() {
        writeln!(out, "no gaps")?;
    } else {
        write_table(out, &gaps_table(&gaps))?;
    }
    Ok(())
}

/// `FROM .. TO UTC: N of M hours covered, S saturated, P partial, U uncovered`, the
/// coverage sentence of `ledger gaps` and `ledger status`.
pub(super) fn coverage_line(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cov: &audit::CoverageSummary,
) -> String {
    format!(
        "{} .. {} UTC: {} of {} hours covered, {} saturated, {} partial, {} uncovered",
        human_time(from),
        human_time(to),
        cov.covered_hours,
        cov.hours,
        cov.saturated_hours,
        cov.partial_hours,
        cov.uncovered_hours
    )
}
