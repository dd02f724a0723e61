//! `ledger alarms` and `ledger indicators`: filtered listings.

use super::*;

pub(super) fn alarms(path: &Path, a: &AlarmsArgs, out: &mut dyn Write) -> Outcome {
    let filter = AlarmFilter {
        from: parse_opt("--from", a.from.as_ref())?,
        to: parse_opt("--to", a.to.as_ref())?,
        rule: a.rule.clone(),
        decision: a.decision.map(DecisionArg::decision),
        limit: usize::try_from(a.limit).unwrap_or(usize::MAX),
    };
    let l = open(path)?;
    let rows = l.list_alarms(&filter)?;
    if a.json {
        return Ok(write_json(out, &rows)?);
    }
    let mut t = table(&[
        "alarm",
        "inserted (UTC)",
        "rule",
        "rbp",
        "decision",
        "reason / last error",
        "indicators",
        "sent",
    ]);
    for r in &rows {
        let why = r.reason.as_deref().or(r.last_error.as_deref());
        t.add_row(vec![
            r.alarm_id.to_string(),
            when(&r.date_inserted),
            cell(&r.rule_name, 40),
            rbp(r.rbp_max),
            r.decision.to_string(),
            opt_cell(why, 40),
            r.detections.to_string(),
            r.sent.to_string(),
        ]);
    }
    write_table(out, &t)?;
    writeln!(
        out,
        "{} alarms shown (newest first, --limit {})",
        rows.len(),
        a.limit
    )?;
    Ok(())
}

pub(super) fn indicators(path: &Path, a: &IndicatorsArgs, out: &mut dyn Write) -> Outcome {
    let filter = IndicatorFilter {
        kind: a.kind.map(IndicatorType::from),
        value: a.value.clone(),
        state: a.state.map(DetectionState::from),
        alarm: a.alarm.map(AlarmId::from),
        limit: usize::try_from(a.limit).unwrap_or(usize::MAX),
    };
    let l = open(path)?;
    let rows = l.list_indicators(&filter)?;
    if a.json {
        return Ok(write_json(out, &rows)?);
    }
    let mut t = table(&[
        "id",
        "alarm",
        "type",
        "value",
        "field",
        "state",
        "attempts",
        "sent (UTC)",
        "reason / last error",
    ]);
    for r in &rows {
        let why = r.reason.as_deref().or(r.last_error.as_deref());
        t.add_row(vec![
            r.id.to_string(),
            r.alarm_id.to_string(),
            r.ioc_type.clone(),
            cell(&r.value, 60),
            cell(&r.field, 20),
            r.state.to_string(),
            r.attempts.to_string(),
            opt_when(r.sent_at.as_deref()),
            opt_cell(why, 40),
        ]);
    }
    write_table(out, &t)?;
    writeln!(
        out,
        "{} indicators shown (newest first, --limit {})",
        rows.len(),
        a.limit
    )?;
    Ok(())
}
