//! `ledger runs`: the newest runs and their outcomes.

use super::*;

pub(super) fn duration_secs(r: &RunRow) -> Option<f64> {
    let start = audit::parse_stored(&r.started_at)?;
    let end = audit::parse_stored(r.finished_at.as_deref()?)?;
    let ms = (end - start).num_milliseconds();
    #[allow(clippy::cast_precision_loss)]
    Some(ms as f64 / 1000.0)
}

pub(super) fn human_duration(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) => {
            #[allow(clippy::cast_possible_truncation)]
            let whole = s.round() as i64;
            if whole < 3600 {
                format!("{}m{:02}s", whole / 60, whole % 60)
            } else {
                format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
            }
        }
    }
}

pub(super) fn run_json(r: &RunRow, with_summary: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "kind": r.kind,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_secs": duration_secs(r),
        "window_from": r.window_from,
        "window_to": r.window_to,
        "exit_code": r.exit_code,
        "sent": r.sent,
    });
    if with_summary {
        let summary = r.summary.as_deref().map(|s| {
            serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.to_string()))
        });
        v["summary"] = summary.unwrap_or(Value::Null);
    }
    v
}

pub(super) fn runs_table(rows: &[RunRow]) -> Table {
    let mut t = table(&["run", "kind", "started (UTC)", "duration", "exit", "sent"]);
    for r in rows {
        t.add_row(vec![
            r.id.to_string(),
            cell(&r.kind, 10),
            when(&r.started_at),
            human_duration(duration_secs(r)),
            r.exit_code
                .map_or_else(|| "running or died".to_string(), |c| c.to_string()),
            r.sent.to_string(),
        ]);
    }
    t
}

pub(super) fn runs(path: &Path, a: &RunsArgs, out: &mut dyn Write) -> Outcome {
    let l = open(path)?;
    let rows = l.recent_runs(usize::try_from(a.limit).unwrap_or(usize::MAX))?;
    if a.json {
        let doc: Vec<Value> = rows.iter().map(|r| run_json(r, true)).collect();
        return Ok(write_json(out, &doc)?);
    }
    let mut t = table(&[
        "run",
        "kind",
        "started (UTC)",
        "duration",
        "window (UTC)",
        "exit",
        "sent",
    ]);
    for r in &rows {
        let window = match (&r.window_from, &r.window_to) {
            (Some(f), Some(to)) => format!("{} .. {}", when(f), when(to)),
            _ => "-".into(),
        };
        t.add_row(vec![
            r.id.to_string(),
            cell(&r.kind, 10),
            when(&r.started_at),
            human_duration(duration_secs(r)),
            window,
            r.exit_code
                .map_or_else(|| "running or died".to_string(), |c| c.to_string()),
            r.sent.to_string(),
        ]);
    }
    write_table(out, &t)?;
    Ok(())
}
