//! `ledger show ALARM_ID`: one alarm, its verdict and every indicator.

use super::*;

/// The one-line answer to "did this alarm reach Recorded Future?".
pub(super) fn verdict(a: &AlarmDetail, inds: &[AlarmIndicator]) -> String {
    let sent: Vec<&AlarmIndicator> = inds
        .iter()
        .filter(|i| i.state == DetectionState::Sent)
        .collect();
    if !sent.is_empty() {
        let mut times: Vec<&str> = sent.iter().filter_map(|i| i.sent_at.as_deref()).collect();
        times.sort_unstable();
        let span = match (times.first(), times.last()) {
            (Some(f), Some(l)) if f == l => format!(" at {}", when(f)),
            (Some(f), Some(l)) => format!(" between {} and {}", when(f), when(l)),
            _ => String::new(),
        };
        return format!(
            "yes: {} of {} indicators sent{span} UTC",
            sent.len(),
            inds.len()
        );
    }
    match a.decision.as_str() {
        "filtered" => format!(
            "no: the alarm was filtered ({})",
            opt_cell(a.reason.as_deref(), 200)
        ),
        "error" => format!(
            "no: its details or events could not be fetched ({} attempts; last error: {})",
            a.fetch_attempts,
            opt_cell(a.last_error.as_deref(), 200)
        ),
        _ if inds.is_empty() => "no: it held no indicators".into(),
        _ => {
            let count = |s: DetectionState| inds.iter().filter(|i| i.state == s).count();
            format!(
                "no: none of its {} indicators was sent ({} excluded by policy, {} rejected by CI, {} failed, {} pending)",
                inds.len(),
                count(DetectionState::Excluded),
                count(DetectionState::Rejected),
                count(DetectionState::Failed),
                count(DetectionState::Pending)
            )
        }
    }
}

pub(super) fn show(
    path: &Path,
    a: &ShowArgs,
    policy: &crate::policy::Policy,
    out: &mut dyn Write,
) -> Outcome {
    let l = open(path)?;
    let Some(alarm) = l.alarm_detail(AlarmId::from(a.alarm_id))? else {
        return show_missing(&l, path, a);
    };
    let inds = l.alarm_indicators(AlarmId::from(a.alarm_id))?;
    let sent = inds
        .iter()
        .filter(|i| i.state == DetectionState::Sent)
        .count();
    let before = sent_before_knowledge(&l, policy, &inds)?;
    if a.json {
        let doc = json!({
            "alarm": alarm,
            "reached_rf": sent > 0,
            "sent": sent,
            "verdict": verdict(&alarm, &inds),
            "indicators": inds,
            "sent_before_knowledge": before,
        });
        return Ok(write_json(out, &doc)?);
    }
    show_alarm(out, &alarm, &inds)?;
    if inds.is_empty() {
        return Ok(());
    }
    show_indicators(out, &inds)?;
    show_sent_before(out, &before)
}

/// The error for an alarm `show` cannot find: pruned (with what it held) or never listed.
pub(super) fn show_missing(l: &Ledger, path: &Path, a: &ShowArgs) -> Outcome {
    if let Some(p) = l.pruned_alarm(AlarmId::from(a.alarm_id))? {
        return Err(Fatal::msg(
            code::USAGE,
            format!(
                "alarm {} was pruned from the ledger {} on {} UTC (inserted {} UTC, {}; {} of {} indicators sent); its detail is gone",
                a.alarm_id,
                path.display(),
                when(&p.pruned_at),
                when(&p.date_inserted),
                escape(p.decision.as_str()),
                p.sent,
                p.detections
            ),
        )
        .into());
    }
    Err(Fatal::msg(
        code::USAGE,
        format!(
            "alarm {} is not in the ledger {}: lrci never listed it (see `lrci ledger gaps` for hours not fetched)",
            a.alarm_id,
            path.display()
        ),
    )
    .into())
}

/// The alarm's fields, one a line.
pub(super) fn show_alarm(
    out: &mut dyn Write,
    alarm: &AlarmDetail,
    inds: &[AlarmIndicator],
) -> Outcome {
    let line = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "{k:<13}{v}");
    line(out, "alarm", alarm.alarm_id.to_string())?;
    line(out, "rule", cell(&alarm.rule_name, 200))?;
    line(
        out,
        "inserted",
        format!("{} UTC", when(&alarm.date_inserted)),
    )?;
    line(out, "entity", opt_cell(alarm.entity_name.as_deref(), 200))?;
    line(out, "status", opt_num(alarm.status))?;
    line(out, "rbp max", rbp(alarm.rbp_max))?;
    let reason = alarm
        .reason
        .as_deref()
        .map(|r| format!(" ({})", cell(r, 200)))
        .unwrap_or_default();
    line(out, "decision", format!("{}{reason}", alarm.decision))?;
    line(out, "events", opt_num(alarm.event_count))?;
    line(out, "attempts", alarm.fetch_attempts.to_string())?;
    line(
        out,
        "last error",
        opt_cell(alarm.last_error.as_deref(), 200),
    )?;
    let run = alarm
        .first_run_id
        .map(|r| format!(" (run {r})"))
        .unwrap_or_default();
    line(
        out,
        "first seen",
        format!("{} UTC{run}", when(&alarm.first_seen_at)),
    )?;
    line(out, "reached RF", verdict(alarm, inds))?;
    Ok(())
}

/// The alarm's indicators as a table.
pub(super) fn show_indicators(out: &mut dyn Write, inds: &[AlarmIndicator]) -> Outcome {
    let mut t = table(&[
        "type",
        "value",
        "field",
        "state",
        "attempts",
        "sent (UTC)",
        "submission",
        "reason / last error",
    ]);
    for i in inds {
        let sub = i.submission.as_ref().map_or_else(
            || "-".to_string(),
            |s| {
                format!(
                    "#{} {} {}{}{}",
                    s.id,
                    when(&s.at),
                    s.outcome,
                    s.http_status
                        .map(|h| format!(" http {h}"))
                        .unwrap_or_default(),
                    if s.debug { " debug" } else { "" }
                )
            },
        );
        let why = i.reason.as_deref().or(i.last_error.as_deref());
        t.add_row(vec![
            i.ioc_type.clone(),
            cell(&i.value, 60),
            cell(&i.field, 20),
            i.state.to_string(),
            i.attempts.to_string(),
            opt_when(i.sent_at.as_deref()),
            sub,
            opt_cell(why, 40),
        ]);
    }
    write_table(out, &t)?;
    Ok(())
}
