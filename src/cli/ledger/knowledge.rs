//! `ledger domains` and `ledger networks`: what the indicator policy knows of
//! the organisation — per registered domain and per network, whether it is
//! learned from LogRhythm, configured, allowed or nothing (default), the
//! evidence with an example alarm, and how many detections under it were sent
//! and excluded. And the note of `ledger show` on values sent before the
//! knowledge that would now exclude them existed.

use super::*;
use crate::ledger::{DomainEvidence, KnownNetwork, ValueCount};
use crate::policy::{self, Policy};
use std::collections::BTreeMap;

/// Detections under one domain or network, by state.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Counts {
    sent: i64,
    excluded: i64,
    waiting: i64,
    other: i64,
}

impl Counts {
    fn add(&mut self, v: &ValueCount) {
        match v.state {
            DetectionState::Sent => self.sent += v.count,
            DetectionState::Excluded => self.excluded += v.count,
            DetectionState::Pending | DetectionState::Failed => self.waiting += v.count,
            _ => self.other += v.count,
        }
    }
}

#[derive(Debug, Serialize)]
struct DomainRow {
    domain: String,
    /// `configured` (internal_domains), `allowed` (allow_domains), `learned`,
    /// `seen` (evidence below the threshold) or `default`.
    status: &'static str,
    learned_at: Option<String>,
    evidence: Option<Evidence>,
    detections: Counts,
}

#[derive(Debug, Serialize)]
struct Evidence {
    witnesses: i64,
    alarms: i64,
    example_alarm_id: i64,
    example_host: String,
    basis: String,
}

fn host_of(v: &ValueCount) -> Option<String> {
    match v.kind {
        IndicatorType::Domain => Some(v.value.clone()),
        IndicatorType::Url => policy::url_host(&v.value),
        _ => None,
    }
}

fn domain_rows(l: &Ledger, p: &Policy) -> Result<Vec<DomainRow>, Fatal> {
    let evidence: BTreeMap<String, DomainEvidence> = l
        .domain_evidence()?
        .into_iter()
        .map(|e| (e.domain.clone(), e))
        .collect();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for v in l.value_counts(&[IndicatorType::Domain, IndicatorType::Url])? {
        let Some(host) = host_of(&v) else { continue };
        let Some(reg) = policy::registered_domain(&host) else {
            continue;
        };
        counts.entry(reg).or_default().add(&v);
    }
    let mut keys: Vec<String> = evidence.keys().cloned().collect();
    keys.extend(counts.keys().cloned());
    keys.extend(p.internal_domains());
    keys.extend(p.allowed_domains());
    keys.sort();
    keys.dedup();
    let mut rows: Vec<DomainRow> = keys
        .into_iter()
        .map(|d| {
            let e = evidence.get(&d);
            let status = if p.is_configured_internal(&d) {
                "configured"
            } else if p.is_allowed_domain(&d) {
                "allowed"
            } else if e.is_some_and(|e| e.learned_at.is_some()) {
                "learned"
            } else if e.is_some() {
                "seen"
            } else {
                "default"
            };
            DomainRow {
                status,
                learned_at: e.and_then(|e| e.learned_at).map(crate::ledger::ts),
                evidence: e.map(|e| Evidence {
                    witnesses: e.witnesses,
                    alarms: e.alarms,
                    example_alarm_id: e.example_alarm_id.into(),
                    example_host: e.example_host.clone(),
                    basis: e.basis.clone(),
                }),
                detections: counts.get(&d).copied().unwrap_or_default(),
                domain: d,
            }
        })
        .collect();
    let rank = |s: &str| match s {
        "configured" => 0,
        "allowed" => 1,
        "learned" => 2,
        "seen" => 3,
        _ => 4,
    };
    rows.sort_by(|a, b| {
        (rank(a.status), -a.detections.sent, &a.domain).cmp(&(
            rank(b.status),
            -b.detections.sent,
            &b.domain,
        ))
    });
    Ok(rows)
}

fn evidence_text(e: Option<&Evidence>) -> String {
    match e {
        None => "-".into(),
        Some(e) => format!(
            "{} witnesses in {} alarms (learned at {} in {}); e.g. alarm {}: {} ({})",
            e.witnesses,
            e.alarms,
            crate::model::LEARN_MIN_WITNESSES,
            crate::model::LEARN_MIN_ALARMS,
            e.example_alarm_id,
            e.example_host,
            e.basis
        ),
    }
}

pub(super) fn domains(path: &Path, p: &Policy, json: bool, out: &mut dyn Write) -> Outcome {
    let l = open(path)?;
    let rows = domain_rows(&l, p)?;
    if json {
        return Ok(write_json(out, &rows)?);
    }
    let mut t = table(&[
        "registered domain",
        "status",
        "learned (UTC)",
        "evidence",
        "sent",
        "excluded",
        "waiting",
    ]);
    for r in &rows {
        t.add_row(vec![
            cell(&r.domain, 60),
            r.status.to_string(),
            opt_when(r.learned_at.as_deref()),
            cell(&evidence_text(r.evidence.as_ref()), 120),
            r.detections.sent.to_string(),
            r.detections.excluded.to_string(),
            r.detections.waiting.to_string(),
        ]);
    }
    write_table(out, &t)?;
    writeln!(
        out,
        "learned: LogRhythm placed its host names in the Internal or DMZ zone or next to an address of its network records; \
         configured: internal_domains; allowed: allow_domains (sent although learned); default: nothing known, sent"
    )?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct NetworkRow {
    range: String,
    name: String,
    zone: String,
    /// `logrhythm` (a network record LogRhythm attached), `configured`
    /// (own_networks) or `allowed` (allow_networks).
    status: &'static str,
    first_seen: Option<String>,
    last_seen: Option<String>,
    example_alarm_id: Option<i64>,
    alarms: Option<i64>,
    detections: Counts,
}

fn network_rows(l: &Ledger, p: &Policy) -> Result<Vec<NetworkRow>, Fatal> {
    let ips = l.value_counts(&[IndicatorType::Ip])?;
    let count = |inside: &dyn Fn(std::net::IpAddr) -> bool| {
        let mut c = Counts::default();
        for v in &ips {
            if v.value.parse().is_ok_and(inside) {
                c.add(v);
            }
        }
        c
    };
    let mut rows = Vec::new();
    for (nets, status) in [
        (p.own_networks(), "configured"),
        (p.allowed_networks(), "allowed"),
    ] {
        for n in nets {
            rows.push(NetworkRow {
                range: n.to_string(),
                name: String::new(),
                zone: String::new(),
                status,
                first_seen: None,
                last_seen: None,
                example_alarm_id: None,
                alarms: None,
                detections: count(&|ip| n.contains(ip)),
            });
        }
    }
    for KnownNetwork {
        record,
        first_seen,
        last_seen,
        example_alarm_id,
        sightings,
    } in l.known_networks()?
    {
        rows.push(NetworkRow {
            range: format!("{}-{}", record.begin, record.end),
            detections: count(&|ip| record.contains(ip)),
            name: record.name,
            zone: record.zone,
            status: "logrhythm",
            first_seen: Some(crate::ledger::ts(first_seen)),
            last_seen: Some(crate::ledger::ts(last_seen)),
            example_alarm_id: Some(example_alarm_id.into()),
            alarms: Some(sightings),
        });
    }
    Ok(rows)
}

pub(super) fn networks(path: &Path, p: &Policy, json: bool, out: &mut dyn Write) -> Outcome {
    let l = open(path)?;
    let rows = network_rows(&l, p)?;
    if json {
        return Ok(write_json(out, &rows)?);
    }
    let mut t = table(&[
        "network",
        "name",
        "zone",
        "status",
        "first seen (UTC)",
        "example alarm",
        "alarms",
        "sent",
        "excluded",
    ]);
    for r in &rows {
        t.add_row(vec![
            cell(&r.range, 60),
            cell(&r.name, 40),
            cell(&r.zone, 12),
            r.status.to_string(),
            opt_when(r.first_seen.as_deref()),
            opt_num(r.example_alarm_id),
            opt_num(r.alarms),
            r.detections.sent.to_string(),
            r.detections.excluded.to_string(),
        ]);
    }
    write_table(out, &t)?;
    writeln!(
        out,
        "logrhythm: a network record LogRhythm attached to an event (never sent); configured: own_networks; allowed: allow_networks (sent although LogRhythm calls it ours)"
    )?;
    Ok(())
}

/// A value sent before what is now known would have excluded it.
#[derive(Debug, Serialize)]
pub(super) struct SentBefore {
    #[serde(rename = "type")]
    ioc_type: String,
    value: String,
    sent_at: String,
    /// Why it would be excluded now.
    now_excluded: String,
    /// When that knowledge arrived (learned domain, first sighting of the
    /// network); `None` for configured knowledge.
    known_since: Option<String>,
}

/// The alarm's sent indicators that what is known now would exclude.
pub(super) fn sent_before_knowledge(
    l: &Ledger,
    p: &Policy,
    inds: &[AlarmIndicator],
) -> Result<Vec<SentBefore>, Fatal> {
    let policy = crate::engine::policy_with_knowledge(l, p)?;
    let networks = l.known_networks()?;
    let mut out = Vec::new();
    for i in inds.iter().filter(|i| i.state == DetectionState::Sent) {
        let Ok(kind) = i.ioc_type.parse::<IndicatorType>() else {
            continue;
        };
        let crate::model::Verdict::Exclude(reason) = policy::judge_stored(kind, &i.value, &policy)
        else {
            continue;
        };
        let host = match kind {
            IndicatorType::Url => policy::url_host(&i.value),
            _ => Some(i.value.clone()),
        };
        let since = match host {
            Some(h) => match h.parse::<std::net::IpAddr>() {
                Ok(ip) => networks
                    .iter()
                    .filter(|n| n.record.contains(ip))
                    .map(|n| n.first_seen)
                    .min(),
                Err(_) => match policy::registered_domain(&h) {
                    Some(reg) => l.learned_at(&reg)?,
                    None => None,
                },
            },
            None => None,
        };
        out.push(SentBefore {
            ioc_type: i.ioc_type.clone(),
            value: i.value.clone(),
            sent_at: i.sent_at.clone().unwrap_or_default(),
            now_excluded: reason,
            known_since: since.map(crate::ledger::ts),
        });
    }
    Ok(out)
}

pub(super) fn show_sent_before(out: &mut dyn Write, items: &[SentBefore]) -> Outcome {
    for s in items {
        let since = s
            .known_since
            .as_deref()
            .map(|t| format!(" (known since {} UTC)", when(t)))
            .unwrap_or_else(|| " (configured since)".to_string());
        writeln!(
            out,
            "note: {} {} was sent at {} UTC, before lrci knew what now excludes it: {}{since}. Nothing already sent is recalled.",
            s.ioc_type,
            cell(&s.value, 80),
            when(&s.sent_at),
            cell(&s.now_excluded, 120),
        )?;
    }
    Ok(())
}
