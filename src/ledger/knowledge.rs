//! What the ledger knows of the organisation (issue 10): network records
//! LogRhythm has shown, host-name sightings on the organisation's event sides,
//! and the registered domains learned from them ([`LEARN_MIN_WITNESSES`]
//! witnesses from [`LEARN_MIN_ALARMS`] alarms); plus judging pending detections
//! again once more is known. The rule itself (which sides count) is the
//! policy's and extraction's; this module only stores and counts.

use super::{sql, ts, Ledger, Result, Writer};
use crate::model::{
    AlarmId, DetectionId, DetectionState, IndicatorType, NetworkRecord, Observations,
    LEARN_MIN_ALARMS, LEARN_MIN_WITNESSES,
};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::BTreeSet;

/// A network record as kept, with when and where it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownNetwork {
    pub record: NetworkRecord,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub example_alarm_id: AlarmId,
    /// Alarms it was seen in.
    pub sightings: i64,
}

/// A registered domain with sightings on the organisation's sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvidence {
    pub domain: String,
    /// When it was learned; `None` while the evidence is below the threshold.
    pub learned_at: Option<DateTime<Utc>>,
    pub witnesses: i64,
    pub alarms: i64,
    pub example_alarm_id: AlarmId,
    pub example_host: String,
    pub basis: String,
}

/// One stored indicator value with its state, for per-domain counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueCount {
    pub kind: IndicatorType,
    pub value: String,
    pub state: DetectionState,
    pub count: i64,
    pub example_alarm_id: AlarmId,
    /// Earliest `sent_at` of the value, when it was sent.
    pub first_sent: Option<DateTime<Utc>>,
}

const UPSERT_NETWORK: &str = "INSERT INTO org_networks (begin_ip, end_ip, name, host_zone,
        first_seen, last_seen, example_alarm_id, sightings)
     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 1)
     ON CONFLICT (begin_ip, end_ip) DO UPDATE SET
        name = excluded.name, host_zone = excluded.host_zone,
        last_seen = excluded.last_seen, sightings = org_networks.sightings + 1";

const INSERT_SIGHTING: &str = "INSERT INTO org_sightings (registered, witness, alarm_id, host,
        basis, seen_at)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6
     WHERE NOT EXISTS (SELECT 1 FROM org_domains WHERE domain = ?1)
     ON CONFLICT (registered, witness, alarm_id) DO NOTHING";

/// Records one slice's observations (inside the slice's transaction) and learns
/// the registered domains whose evidence now reaches the threshold.
pub(super) fn record(
    tx: &Transaction<'_>,
    observed: &[(AlarmId, Observations)],
    run_id: Option<i64>,
    now: &str,
) -> rusqlite::Result<()> {
    let mut touched = BTreeSet::new();
    {
        let mut net = tx.prepare_cached(UPSERT_NETWORK)?;
        let mut sight = tx.prepare_cached(INSERT_SIGHTING)?;
        for (alarm, obs) in observed {
            for n in &obs.networks {
                net.execute(params![
                    n.begin.to_string(),
                    n.end.to_string(),
                    n.name,
                    n.zone,
                    now,
                    alarm
                ])?;
            }
            for s in &obs.names {
                if sight.execute(params![
                    s.registered,
                    s.witness,
                    alarm,
                    s.host,
                    s.basis,
                    now
                ])? > 0
                {
                    touched.insert(s.registered.clone());
                }
            }
        }
    }
    for domain in touched {
        learn(tx, &domain, run_id, now)?;
    }
    Ok(())
}

/// Learns `domain` when its evidence reaches the threshold.
fn learn(
    tx: &Transaction<'_>,
    domain: &str,
    run_id: Option<i64>,
    now: &str,
) -> rusqlite::Result<()> {
    let (witnesses, alarms): (i64, i64) = tx.query_row(
        "SELECT COUNT(DISTINCT witness), COUNT(DISTINCT alarm_id) FROM org_sightings
         WHERE registered = ?1",
        [domain],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if witnesses < LEARN_MIN_WITNESSES || alarms < LEARN_MIN_ALARMS {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO org_domains (domain, learned_at, run_id, example_alarm_id, example_host,
            basis, witnesses, alarms)
         SELECT registered, ?2, ?3, alarm_id, host, basis, ?4, ?5 FROM org_sightings
         WHERE registered = ?1 ORDER BY alarm_id, witness LIMIT 1
         ON CONFLICT (domain) DO NOTHING",
        params![domain, now, run_id, witnesses, alarms],
    )?;
    Ok(())
}

fn network_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KnownNetwork> {
    let ip = |i: usize, col: &'static str| -> rusqlite::Result<std::net::IpAddr> {
        let text: String = sql::get(r, i, col)?;
        text.parse()
            .map_err(|_| sql::bad_text(i, col, format!("{text:?} is not an IP address")))
    };
    Ok(KnownNetwork {
        record: NetworkRecord {
            begin: ip(0, "org_networks.begin_ip")?,
            end: ip(1, "org_networks.end_ip")?,
            name: sql::get(r, 2, "org_networks.name")?,
            zone: sql::get(r, 3, "org_networks.host_zone")?,
        },
        first_seen: sql::time(r, 4, "org_networks.first_seen")?,
        last_seen: sql::time(r, 5, "org_networks.last_seen")?,
        example_alarm_id: sql::get(r, 6, "org_networks.example_alarm_id")?,
        sightings: sql::get(r, 7, "org_networks.sightings")?,
    })
}

impl Ledger {
    /// Every network record LogRhythm has shown, by first sighting.
    pub fn known_networks(&self) -> Result<Vec<KnownNetwork>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT begin_ip, end_ip, name, host_zone, first_seen, last_seen,
                        example_alarm_id, sightings
                 FROM org_networks ORDER BY first_seen, begin_ip",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt.query_map([], network_row).map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// The registered domains learned as the organisation's.
    pub fn learned_domains(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT domain FROM org_domains ORDER BY domain")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| sql::get(r, 0, "org_domains.domain"))
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// Every registered domain with sightings: learned ones with the evidence
    /// they were learned from, the others with what has been seen so far.
    pub fn domain_evidence(&self) -> Result<Vec<DomainEvidence>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT domain, learned_at, witnesses, alarms, example_alarm_id, example_host, basis
                 FROM org_domains
                 UNION ALL
                 SELECT s.registered, NULL, COUNT(DISTINCT s.witness), COUNT(DISTINCT s.alarm_id),
                        MIN(s.alarm_id), MIN(s.host), MIN(s.basis)
                 FROM org_sightings s
                 WHERE NOT EXISTS (SELECT 1 FROM org_domains d WHERE d.domain = s.registered)
                 GROUP BY s.registered
                 ORDER BY 1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DomainEvidence {
                    domain: sql::get(r, 0, "org_domains.domain")?,
                    learned_at: match sql::get::<Option<String>>(r, 1, "org_domains.learned_at")? {
                        Some(t) => Some(sql::parse_time(&t, 1, "org_domains.learned_at")?),
                        None => None,
                    },
                    witnesses: sql::get(r, 2, "org_domains.witnesses")?,
                    alarms: sql::get(r, 3, "org_domains.alarms")?,
                    example_alarm_id: sql::get(r, 4, "org_domains.example_alarm_id")?,
                    example_host: sql::get(r, 5, "org_domains.example_host")?,
                    basis: sql::get(r, 6, "org_domains.basis")?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// When `domain` was learned, if it was.
    pub fn learned_at(&self, domain: &str) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self
            .conn
            .query_row(
                "SELECT learned_at FROM org_domains WHERE domain = ?1",
                [domain],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        t.map(|t| sql::parse_time(&t, 0, "org_domains.learned_at").map_err(|e| self.sql(e)))
            .transpose()
    }

    /// Stored values of these types with their state and count (for per-domain
    /// and per-network counts in `ledger domains` / `ledger networks`).
    pub fn value_counts(&self, kinds: &[IndicatorType]) -> Result<Vec<ValueCount>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ioc_type, value, state, COUNT(*), MIN(alarm_id), MIN(sent_at)
                 FROM detections WHERE ioc_type = ?1 GROUP BY ioc_type, value, state",
            )
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for kind in kinds {
            let rows = stmt
                .query_map([kind], |r| {
                    Ok(ValueCount {
                        kind: sql::get(r, 0, "detections.ioc_type")?,
                        value: sql::get(r, 1, "detections.value")?,
                        state: sql::get(r, 2, "detections.state")?,
                        count: sql::get(r, 3, "detections.count")?,
                        example_alarm_id: sql::get(r, 4, "detections.alarm_id")?,
                        first_sent: match sql::get::<Option<String>>(r, 5, "detections.sent_at")? {
                            Some(t) => Some(sql::parse_time(&t, 5, "detections.sent_at")?),
                            None => None,
                        },
                    })
                })
                .map_err(|e| self.sql(e))?;
            for row in rows {
                out.push(row.map_err(|e| self.sql(e))?);
            }
        }
        Ok(out)
    }

    /// The detections in `states` as `(id, type, value)`: what a run judges
    /// again before submitting.
    pub fn due_values(
        &self,
        states: &[DetectionState],
    ) -> Result<Vec<(DetectionId, IndicatorType, String)>> {
        let mut out = Vec::new();
        self.for_each_due_value(states, |id, kind, value| out.push((id, kind, value)))?;
        Ok(out)
    }

    /// [`Ledger::due_values`] one row at a time, so memory does not grow with
    /// the backlog.
    pub fn for_each_due_value(
        &self,
        states: &[DetectionState],
        mut f: impl FnMut(DetectionId, IndicatorType, String),
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, ioc_type, value FROM detections WHERE state = ?1")
            .map_err(|e| self.sql(e))?;
        for st in states {
            let rows = stmt
                .query_map([st], |r| {
                    Ok((
                        sql::get(r, 0, "detections.id")?,
                        sql::get(r, 1, "detections.ioc_type")?,
                        sql::get(r, 2, "detections.value")?,
                    ))
                })
                .map_err(|e| self.sql(e))?;
            for row in rows {
                let (id, kind, value) = row.map_err(|e| self.sql(e))?;
                f(id, kind, value);
            }
        }
        Ok(())
    }
}

impl Writer {
    /// Marks these detections `excluded` with their reasons, if they are still
    /// `pending` or `failed` (never one already sent). Returns how many changed.
    pub fn exclude_due(
        &mut self,
        items: &[(DetectionId, String)],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let now = ts(now);
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE detections SET state = 'excluded', reason = ?2, updated_at = ?3
                 WHERE id = ?1 AND state IN ('pending', 'failed')",
            )?;
            let mut n = 0u64;
            for (id, reason) in items {
                n += stmt.execute(params![id, reason, now])? as u64;
            }
            Ok(n)
        })
    }
}
