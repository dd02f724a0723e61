//! The engine's use of what the ledger knows of the organisation: the policy
//! with that knowledge, judging the waiting detections again before anything is
//! submitted, and the warning about domains nobody has judged.

use super::report::Summary;
use super::send::Sink;
use super::submit::DUE_STATES;
use crate::error::Fatal;
use crate::ledger::Ledger;
use crate::model::{IndicatorType, Verdict};
use crate::policy::{self, Policy};

/// `base` (the configured policy) with the ledger's networks and learned domains.
///
/// # Errors
/// A ledger that cannot be read.
pub fn current(ledger: &Ledger, base: &Policy) -> Result<Policy, Fatal> {
    let networks = ledger
        .known_networks()?
        .into_iter()
        .map(|n| n.record)
        .collect();
    Ok(base
        .clone()
        .with_knowledge(networks, ledger.learned_domains()?))
}

/// Judges every `pending` and `failed` detection again with everything known
/// now, marking the ones that are now the organisation's (configured or learned)
/// `excluded` with the reason; returns the policy used and how many changed.
pub(super) fn rejudge(sink: &mut Sink<'_>, base: &Policy) -> Result<(Policy, u64), Fatal> {
    let policy = current(sink.ledger, base)?;
    let mut now_excluded = Vec::new();
    // Streamed: the backlog may be large; only what changes is kept.
    sink.ledger
        .for_each_due_value(&DUE_STATES, |id, kind, value| {
            match policy::judge_stored(kind, &value, &policy) {
                // Only what is known of the organisation is judged again: a value
                // the fixed rules refuse was refused when it was recorded (one in
                // the ledger anyway was put there by hand, and CI is left to say so).
                Verdict::Exclude(reason)
                    if policy::judge_stored(kind, &value, &Policy::default()) == Verdict::Send =>
                {
                    now_excluded.push((id, reason));
                }
                _ => {}
            }
        })?;
    let mut n = 0;
    if !now_excluded.is_empty() {
        n = sink.ledger.exclude_due(&now_excluded, (sink.now)())?;
        tracing::info!(
            excluded = n,
            "detections waiting to be sent are now known to be the organisation's and were excluded"
        );
    }
    Ok((policy, n))
}

/// Warns about registered domains whose host names are about to be sent although
/// nobody judged them (see [`policy::unjudged_domains`]).
pub(super) fn warn_unjudged(
    ledger: &Ledger,
    policy: &Policy,
    s: &mut Summary,
) -> Result<(), Fatal> {
    s.organisation.learned_domains = ledger.learned_domains()?;
    s.organisation.networks = ledger
        .known_networks()?
        .iter()
        .map(|n| n.record.label())
        .collect();
    let list = unjudged(ledger, policy)?;
    s.organisation.unjudged_domains = list.iter().map(|u| u.domain.clone()).collect();
    for u in list {
        tracing::warn!(
            domain = %u.domain,
            hosts = u.hosts,
            example = %u.example,
            "{} host names under {} are about to be sent and nobody has judged {}: if it is the organisation's, add it to internal_domains (else to allow_domains); review with `lrci ledger domains` and `lrci sync --dry-run`",
            u.hosts, u.domain, u.domain
        );
    }
    Ok(())
}

/// The unjudged domains among the detections waiting to be sent.
///
/// # Errors
/// A ledger that cannot be read.
pub fn unjudged(ledger: &Ledger, policy: &Policy) -> Result<Vec<policy::Unjudged>, Fatal> {
    // Distinct host names only (what `unjudged_domains` counts), streamed.
    let mut distinct = std::collections::BTreeSet::new();
    ledger.for_each_due_value(&DUE_STATES, |_, kind, value| {
        let host = match kind {
            IndicatorType::Domain => Some(value),
            IndicatorType::Url => policy::url_host(&value),
            _ => None,
        };
        if let Some(h) = host {
            distinct.insert(h);
        }
    })?;
    let hosts: Vec<String> = distinct.into_iter().collect();
    let seen: Vec<String> = ledger
        .domain_evidence()?
        .into_iter()
        .filter(|d| d.learned_at.is_none())
        .map(|d| d.domain)
        .collect();
    Ok(policy::unjudged_domains(&hosts, policy, &seen))
}
