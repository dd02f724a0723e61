//! The organisation check (issue 10): what the policy knows of the organisation,
//! and host names of a domain nobody judged that are about to be sent.

use super::*;

const NAME: &str = "organisation";

/// One check line: learned domains and networks, or a warning naming each
/// registered domain whose host names wait to be sent without anyone having
/// judged it, with the commands to review.
pub(super) fn organisation_check(s: &Settings, out: &mut Vec<Check>) {
    let path = s.ledger().value;
    let Ok(policy) = s.filters().map(|f| f.policy) else {
        // The configuration check above already says what is wrong.
        return;
    };
    if !path.exists() {
        out.push(Check::info(
            NAME,
            "nothing learned yet: before the first real run, review `lrci sync --dry-run` and then `lrci ledger domains`",
        ));
        return;
    }
    let known = Ledger::open(&path).map_err(Fatal::from).and_then(|l| {
        let policy = crate::engine::policy_with_knowledge(&l, &policy)?;
        let unjudged = crate::engine::unjudged(&l, &policy)?;
        Ok((
            l.learned_domains()?.len(),
            l.known_networks()?.len(),
            unjudged,
        ))
    });
    match known {
        // The ledger checks above say why it cannot be read.
        Err(_) => {}
        Ok((domains, networks, unjudged)) if unjudged.is_empty() => out.push(Check::ok(
            NAME,
            format!(
                "{domains} domains learned, {networks} networks shown by LogRhythm; no host names of an unjudged domain wait to be sent (`lrci ledger domains`)"
            ),
        )),
        Ok((_, _, unjudged)) => {
            let list: Vec<String> = unjudged
                .iter()
                .take(5)
                .map(|u| format!("{} ({} names, e.g. {})", u.domain, u.hosts, u.example))
                .collect();
            out.push(Check::warn(
                NAME,
                format!(
                    "host names of domains nobody judged wait to be sent: {}; if one is the organisation's, add it to internal_domains (else to allow_domains); review with `lrci ledger domains` and `lrci sync --dry-run`",
                    list.join(", ")
                ),
            ));
        }
    }
}
