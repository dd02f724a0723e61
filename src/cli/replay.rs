//! `replay`: turn the flags into a ledger selection, take the run lock (unless
//! `--dry-run`), build the Collective Insights client, call [`engine::replay`] and
//! print its summary. `excluded` detections are never replayed: the indicator
//! policy keeps them on site, and asking for them is a usage error.

use crate::ci;
use crate::cli::args::{ReplayArgs, StateArg};
use crate::cli::sync::interrupt_on_signals;
use crate::config::{parse_time, Settings};
use crate::engine::{self, ReplayOptions, ReplaySummary};
use crate::error::{code, Fatal, WithCode};
use crate::ledger::{Ledger, Selection, Writer};
use crate::model::AlarmId;
use crate::model::DetectionState;

/// `lrci replay`.
pub async fn run(s: &Settings, args: &ReplayArgs) -> Result<u8, Fatal> {
    // Everything that can be wrong locally fails here, before any request.
    let states = states(&args.states, args.resend)?;
    let from = args
        .from
        .as_deref()
        .map(|f| parse_time("--from", f))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|t| parse_time("--to", t))
        .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(Fatal::msg(code::USAGE, "--from must be before --to"));
        }
    }
    let api = s.ci()?;
    let path = s.ledger().value;
    let ci = ci::Client::new(
        api.rf_url.clone(),
        api.rf_key.clone(),
        api.http.options(None),
    )
    .code(code::CONFIG)?
    .with_fields(api.fields.clone());
    let opts = ReplayOptions {
        selection: Selection::new(&states, &alarm_ids(&args.alarms), from, to),
        dry_run: args.mode.dry_run,
        batch_size: usize::try_from(s.number("batch_size")).unwrap_or(1),
        daily_budget: s.number("daily_budget"),
        policy: s.filters()?.policy,
        interrupt: Some(interrupt_on_signals()?),
    };
    // Read only, so a typo in --alarm changes nothing.
    check_alarms_known(&Ledger::open_or_empty(&path)?, &alarm_ids(&args.alarms))?;
    let summary = if args.mode.dry_run {
        // Nothing is written: an existing ledger is read only; without one there
        // is nothing to replay.
        let mut ledger = Writer::scratch_copy(&path)?;
        engine::replay(&mut ledger, &ci, &opts, crate::clock::now).await?
    } else {
        let mut ledger = Writer::open(&path)?;
        engine::replay(&mut ledger, &ci, &opts, crate::clock::now).await?
    };
    print(&summary, args.mode.json)?;
    Ok(summary.exit_code)
}

/// `--alarm ID` naming an alarm the ledger never listed is a usage error (a typo
/// would otherwise replay nothing and exit 0). Pruned alarms count as known.
fn check_alarms_known(ledger: &Ledger, ids: &[AlarmId]) -> Result<(), Fatal> {
    if ids.is_empty() {
        return Ok(());
    }
    let known = ledger.known_alarms(ids)?;
    let pruned = ledger.pruned_alarms(ids)?;
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| !known.contains_key(id) && !pruned.contains(id))
        .map(AlarmId::to_string)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Fatal::msg(
        code::USAGE,
        format!(
            "--alarm {}: not in the ledger {} (see `lrci ledger alarms` and `lrci ledger gaps`)",
            unknown.join(", "),
            ledger.path().display()
        ),
    ))
}

/// The states to select: those asked for (default failed and pending), plus `sent`
/// with `--resend`. `sent` without `--resend` and `excluded` at all are usage errors.
pub fn states(asked: &[StateArg], resend: bool) -> Result<Vec<DetectionState>, Fatal> {
    let mut out = Vec::new();
    for s in asked {
        let st = match s {
            StateArg::Pending => DetectionState::Pending,
            StateArg::Failed => DetectionState::Failed,
            StateArg::Rejected => DetectionState::Rejected,
            StateArg::Unconfirmed => DetectionState::Unconfirmed,
            StateArg::Sent if resend => DetectionState::Sent,
            StateArg::Sent => {
                return Err(Fatal::msg(
                    code::USAGE,
                    "--state sent selects detections CI already accepted: add --resend to send them again",
                ))
            }
            StateArg::Excluded => {
                return Err(Fatal::msg(
                    code::USAGE,
                    "--state excluded: excluded detections are never replayed (the indicator policy keeps them on site)",
                ))
            }
        };
        if !out.contains(&st) {
            out.push(st);
        }
    }
    if out.is_empty() {
        out = vec![DetectionState::Failed, DetectionState::Pending];
    }
    if resend && !out.contains(&DetectionState::Sent) {
        out.push(DetectionState::Sent);
    }
    Ok(out)
}

fn print(s: &ReplaySummary, json: bool) -> Result<(), Fatal> {
    let text = if json {
        format!("{}\n", serde_json::to_string(s).unwrap_or_default())
    } else {
        human(s)
    };
    super::output::print(&text)
}

fn human(s: &ReplaySummary) -> String {
    let d = &s.detections;
    if d.selected == 0 {
        return format!("replay: 0 detections to replay ({})\n", s.states.join(", "));
    }
    let dry = if s.dry_run {
        " (dry run: nothing recorded, CI told debug: true)"
    } else {
        ""
    };
    let mut t = format!(
        "replay: {} detections selected ({}){dry}\n",
        d.selected,
        s.states.join(", ")
    );
    t.push_str(&format!(
        "  detections {} submitted, {} failed, {} rejected\n",
        d.submitted, d.failed, d.rejected
    ));
    t.push_str(&format!(
        "  budget     {} of {} used on {}\n",
        s.budget.used, s.budget.limit, s.budget.day
    ));
    for p in &s.problems {
        t.push_str(&format!("  problem    {p}\n"));
    }
    t.push_str(&format!("  exit code  {}\n", s.exit_code));
    t
}

/// The `--alarm` values as alarm ids.
fn alarm_ids(ids: &[i64]) -> Vec<AlarmId> {
    ids.iter().copied().map(AlarmId::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_selection_rules() {
        use DetectionState::*;
        use StateArg as A;
        let ok = |a: &[StateArg], r| states(a, r).unwrap();
        assert_eq!(ok(&[], false), vec![Failed, Pending]);
        assert_eq!(ok(&[], true), vec![Failed, Pending, Sent]);
        assert_eq!(ok(&[A::Rejected, A::Rejected], false), vec![Rejected]);
        assert_eq!(ok(&[A::Sent], true), vec![Sent]);
        assert_eq!(ok(&[A::Failed], true), vec![Failed, Sent]);
        let e = states(&[A::Sent], false).unwrap_err();
        assert_eq!(e.code, code::USAGE);
        assert!(e.to_string().contains("--resend"), "{e}");
        let e = states(&[A::Excluded], true).unwrap_err();
        assert_eq!(e.code, code::USAGE);
        assert!(e.to_string().contains("never replayed"), "{e}");
    }
}
