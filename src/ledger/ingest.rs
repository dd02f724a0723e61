//! Recording what a run found: one slice's alarms, their indicators and the
//! slice's coverage in one transaction, plus the lookups the engine makes
//! before it records (coverage, known alarms, alarms to fetch again).

use super::{sql, ts, Coverage, Ledger, Result, Writer};
use crate::model::{
    AlarmDecision, AlarmId, AlarmRow, DetectionState, Indicator, Observations, Verdict,
};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, Transaction};
use std::collections::{BTreeMap, HashMap};

/// What the ledger knows about an alarm already listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAlarm {
    pub decision: AlarmDecision,
    pub fetch_attempts: i64,
}

/// What a run decided about one alarm, ready to be recorded.
#[derive(Debug, Clone)]
pub struct AlarmRecord {
    pub row: AlarmRow,
    pub rbp_max: Option<i64>,
    pub outcome: AlarmOutcome,
}

/// The decision for one alarm.
#[derive(Debug, Clone)]
pub enum AlarmOutcome {
    /// Details and events fetched; these indicators came out of them.
    Accepted {
        event_count: usize,
        indicators: Vec<Indicator>,
        /// Something an audit should know, e.g. that the indicators were capped.
        note: Option<String>,
    },
    /// A rule filter or `--min-rbp` said no.
    Filtered { reason: String },
    /// Details or events could not be fetched or parsed; retried by later runs.
    Error { error: String },
    /// Details or events could not be fetched because the API failed transiently
    /// (5xx, 429, timeout, connection). Recorded like [`AlarmOutcome::Error`] but not
    /// counted against the alarm's fetch attempts: an outage is not the alarm's
    /// fault, so it never gets the alarm abandoned.
    Unavailable { error: String },
    /// The events are not ready yet (empty, 404, not JSON, a redirect) and the
    /// alarm is younger than the events grace: stored like `Unavailable`, retried
    /// by later runs, and not a failure of the run.
    NotReady { error: String },
}

/// One slice's worth of work, written in one transaction.
#[derive(Debug, Clone)]
pub struct SliceIngest {
    pub run_id: Option<i64>,
    pub slice_start: DateTime<Utc>,
    /// `None` leaves the coverage map as it is (the listing did not complete).
    pub covered_until: Option<DateTime<Utc>>,
    pub saturated_at: Vec<DateTime<Utc>>,
    /// Where this listing started: recorded saturated instants from there on
    /// are replaced by `saturated_at`; earlier ones are kept.
    pub listed_from: Option<DateTime<Utc>>,
    pub alarms: Vec<AlarmRecord>,
    /// What each accepted alarm's events showed of the organisation (network
    /// records, host names on its sides), recorded in the same transaction.
    pub observations: Vec<(AlarmId, Observations)>,
}

/// What an ingest added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    pub new_alarms: u64,
    pub new_pending: u64,
    pub new_excluded: u64,
}

impl Ledger {
    /// Coverage of the slices starting in `[from, to)`, keyed by slice start.
    pub fn coverage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<DateTime<Utc>, Coverage>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT slice_start, covered_until, saturated_at FROM coverage
                 WHERE slice_start >= ?1 AND slice_start < ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![ts(from), ts(to)], coverage_row)
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// What the ledger already knows about these alarms.
    pub fn known_alarms(&self, ids: &[AlarmId]) -> Result<HashMap<AlarmId, KnownAlarm>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT decision, fetch_attempts FROM alarms WHERE alarm_id = ?1")
            .map_err(|e| self.sql(e))?;
        let mut out = HashMap::new();
        for &id in ids {
            let known = stmt
                .query_row([id], |r| {
                    Ok(KnownAlarm {
                        decision: sql::get(r, 0, "alarms.decision")?,
                        fetch_attempts: sql::get(r, 1, "alarms.fetch_attempts")?,
                    })
                })
                .optional()
                .map_err(|e| self.sql(e))?;
            if let Some(k) = known {
                out.insert(id, k);
            }
        }
        Ok(out)
    }

    /// Alarms left in `error` whose insertion time lies in `[from, to)`: the
    /// candidates for a retry. Whether one is due is the engine's retry rule
    /// (`engine::triage::attempts_if_due`), not decided here.
    pub fn alarms_to_retry(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<AlarmRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT alarm_id, rule_name, status, entity_name, date_inserted FROM alarms
                 WHERE decision = ?3
                   AND date_inserted >= ?1 AND date_inserted < ?2
                 ORDER BY date_inserted, alarm_id",
            )
            .map_err(|e| self.sql(e))?;
        let args = params![ts(from), ts(to), AlarmDecision::Error];
        let rows = stmt.query_map(args, alarm_row).map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }
}

/// One `coverage` row: `(slice_start, covered_until, saturated_at)`.
fn coverage_row(r: &Row<'_>) -> rusqlite::Result<(DateTime<Utc>, Coverage)> {
    let start = sql::time(r, 0, "coverage.slice_start")?;
    let covered_until = sql::time(r, 1, "coverage.covered_until")?;
    let list: Option<String> = sql::get(r, 2, "coverage.saturated_at")?;
    let saturated_at = match list {
        None => Vec::new(),
        Some(text) => {
            let times: Vec<String> = serde_json::from_str(&text).map_err(|e| {
                sql::bad_text(
                    2,
                    "coverage.saturated_at",
                    format!("{text:?} is not a JSON list of times ({e})"),
                )
            })?;
            times
                .iter()
                .map(|t| sql::parse_time(t, 2, "coverage.saturated_at"))
                .collect::<rusqlite::Result<_>>()?
        }
    };
    let cov = Coverage {
        covered_until,
        saturated_at,
    };
    Ok((start, cov))
}

/// `(alarm_id, rule_name, status, entity_name, date_inserted)` of `alarms`.
fn alarm_row(r: &Row<'_>) -> rusqlite::Result<AlarmRow> {
    Ok(AlarmRow {
        alarm_id: sql::get(r, 0, "alarms.alarm_id")?,
        rule_name: sql::get(r, 1, "alarms.rule_name")?,
        status: sql::get::<Option<i64>>(r, 2, "alarms.status")?.unwrap_or(0),
        entity_name: sql::get::<Option<String>>(r, 3, "alarms.entity_name")?.unwrap_or_default(),
        date_inserted: sql::time(r, 4, "alarms.date_inserted")?,
    })
}

/// The `alarms` columns an outcome sets: decision, reason, event count, fetch
/// attempts to add, last error.
type AlarmColumns<'a> = (
    AlarmDecision,
    Option<&'a str>,
    Option<i64>,
    i64,
    Option<&'a str>,
);

/// How an outcome is stored. A transient failure ([`AlarmOutcome::Unavailable`])
/// is an `error` that does not count as a fetch attempt.
fn alarm_columns(outcome: &AlarmOutcome) -> AlarmColumns<'_> {
    match outcome {
        AlarmOutcome::Accepted {
            event_count, note, ..
        } => {
            let events = i64::try_from(*event_count).unwrap_or(i64::MAX);
            (
                AlarmDecision::Accepted,
                note.as_deref(),
                Some(events),
                1,
                None,
            )
        }
        AlarmOutcome::Filtered { reason } => (
            AlarmDecision::Filtered,
            Some(reason.as_str()),
            None,
            0,
            None,
        ),
        AlarmOutcome::Error { error } => {
            (AlarmDecision::Error, None, None, 1, Some(error.as_str()))
        }
        AlarmOutcome::Unavailable { error } | AlarmOutcome::NotReady { error } => {
            (AlarmDecision::Error, None, None, 0, Some(error.as_str()))
        }
    }
}

/// Only an alarm still in `error` is overwritten: a decided alarm keeps its
/// decision and its detections.
const UPSERT_ALARM: &str = "INSERT INTO alarms (alarm_id, rule_name, status, entity_name,
        date_inserted, rbp_max, decision, reason, event_count, fetch_attempts, last_error,
        first_run_id, first_seen_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
     ON CONFLICT (alarm_id) DO UPDATE SET
        rule_name = excluded.rule_name, status = excluded.status,
        entity_name = excluded.entity_name, rbp_max = excluded.rbp_max,
        decision = excluded.decision, reason = excluded.reason,
        event_count = excluded.event_count,
        fetch_attempts = alarms.fetch_attempts + excluded.fetch_attempts,
        last_error = excluded.last_error, updated_at = excluded.updated_at
     WHERE alarms.decision = 'error'";

const INSERT_DETECTION: &str = "INSERT INTO detections (alarm_id, ioc_type, value, field, state,
        reason, created_at, updated_at, source_type, threat_name, sent_at)
     SELECT ?1, ?2, ?3, ?4, CASE WHEN ?5 = 'pending' AND h.value IS NOT NULL THEN 'sent' ELSE ?5 END,
        ?6, ?7, ?7, ?8, ?9, CASE WHEN ?5 = 'pending' AND h.value IS NOT NULL THEN ?7 END
     FROM (SELECT 1) LEFT JOIN ci_holdings h
        ON h.incident_id = CAST(?1 AS TEXT) AND h.ioc_type = ?2 AND h.value = ?3
     WHERE true
     ON CONFLICT (alarm_id, ioc_type, value) DO NOTHING";

/// Indexes the values of the detections above a row id for substring search.
const INDEX_NEW_VALUES: &str = "INSERT INTO detections_value_fts (rowid, value)
     SELECT id, value FROM detections WHERE id > ?1";

const UPSERT_COVERAGE: &str = "INSERT INTO coverage (slice_start, covered_until, saturated_at,
        updated_at, run_id)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (slice_start) DO UPDATE SET
        covered_until = max(coverage.covered_until, excluded.covered_until),
        saturated_at = excluded.saturated_at,
        updated_at = excluded.updated_at, run_id = excluded.run_id";

const SATURATED_OF: &str = "SELECT saturated_at FROM coverage WHERE slice_start = ?1";

impl Writer {
    /// Writes one slice's alarms, their indicators and the slice's coverage in one
    /// transaction. Detections already present are left as they are.
    pub fn ingest(&mut self, batch: &SliceIngest, now: DateTime<Utc>) -> Result<IngestCounts> {
        let now = ts(now);
        self.write(|tx| {
            let mut counts = IngestCounts::default();
            // Row ids are max + 1 (no AUTOINCREMENT) and this is the only
            // writer: every detection above this one is this transaction's.
            let before: i64 = tx
                .prepare_cached("SELECT coalesce(max(id), 0) FROM detections")?
                .query_row([], |r| r.get(0))?;
            for rec in &batch.alarms {
                record_alarm(tx, rec, batch.run_id, &now, &mut counts)?;
            }
            if counts.new_pending + counts.new_excluded > 0 {
                // One statement for the slice: FTS5 flushes at every statement
                // savepoint, so one insert per row would write a segment per row
                // (migration 7).
                tx.prepare_cached(INDEX_NEW_VALUES)?.execute([before])?;
            }
            super::knowledge::record(tx, &batch.observations, batch.run_id, &now)?;
            if let Some(until) = batch.covered_until {
                record_coverage(tx, batch, until, &now)?;
            }
            Ok(counts)
        })
    }
}

/// One alarm and (when accepted) its detections.
fn record_alarm(
    tx: &Transaction<'_>,
    rec: &AlarmRecord,
    run_id: Option<i64>,
    now: &str,
    counts: &mut IngestCounts,
) -> rusqlite::Result<()> {
    let row = &rec.row;
    let mut exists = tx.prepare_cached("SELECT 1 FROM alarms WHERE alarm_id = ?1")?;
    if !exists.exists([row.alarm_id])? {
        counts.new_alarms += 1;
    }
    let (decision, reason, event_count, attempts, error) = alarm_columns(&rec.outcome);
    tx.prepare_cached(UPSERT_ALARM)?.execute(params![
        row.alarm_id,
        row.rule_name,
        row.status,
        row.entity_name,
        ts(row.date_inserted),
        rec.rbp_max,
        decision,
        reason,
        event_count,
        attempts,
        error,
        run_id,
        now,
    ])?;
    if let AlarmOutcome::Accepted { indicators, .. } = &rec.outcome {
        let mut insert = tx.prepare_cached(INSERT_DETECTION)?;
        for ind in indicators {
            let (state, reason) = match &ind.verdict {
                Verdict::Send => (DetectionState::Pending, None),
                Verdict::Exclude(r) => (DetectionState::Excluded, Some(r.as_str())),
            };
            let args = params![
                row.alarm_id,
                ind.kind,
                ind.value,
                ind.field,
                state,
                reason,
                now,
                ind.source.source_type,
                ind.source.threat_name
            ];
            if insert.execute(args)? > 0 {
                match state {
                    DetectionState::Excluded => counts.new_excluded += 1,
                    _ => counts.new_pending += 1,
                }
            }
        }
    }
    Ok(())
}

/// The slice's coverage (kept monotonic by `max`).
fn record_coverage(
    tx: &Transaction<'_>,
    batch: &SliceIngest,
    until: DateTime<Utc>,
    now: &str,
) -> rusqlite::Result<()> {
    // Saturated instants this listing did not reach stay recorded; those it
    // listed again are what it found (none, once it got through them).
    let old: Option<String> = tx
        .query_row(SATURATED_OF, [ts(batch.slice_start)], |r| r.get(0))
        .optional()?
        .flatten();
    let mut instants: Vec<String> = old
        .and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| {
            sql::parse_time(t, 0, "coverage.saturated_at")
                .is_ok_and(|t| batch.listed_from.is_none_or(|from| t < from))
        })
        .collect();
    instants.extend(batch.saturated_at.iter().map(|t| ts(*t)));
    instants.sort();
    instants.dedup();
    let saturated = if instants.is_empty() {
        None
    } else {
        serde_json::to_string(&instants).ok()
    };
    let args = params![
        ts(batch.slice_start),
        ts(until),
        saturated,
        now,
        batch.run_id
    ];
    tx.execute(UPSERT_COVERAGE, args)?;
    Ok(())
}
