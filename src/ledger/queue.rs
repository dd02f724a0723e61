//! Submission selection and outcomes: which detections go to CI next, and what
//! CI answered for them (`sent`, `failed`, `rejected`), with the day's budget.

use super::{sql, ts, Ledger, Result, Writer};
use crate::model::{AlarmId, Detection, DetectionId, DetectionState, IndicatorType};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension, Row};

/// Which detections a `replay` picks. Every filter narrows the choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// States to pick; `excluded` is dropped by [`Selection::new`].
    states: Vec<DetectionState>,
    /// Only these alarms (empty: any alarm).
    alarms: Vec<AlarmId>,
    /// Only alarms inserted at or after this time.
    from: Option<DateTime<Utc>>,
    /// Only alarms inserted before this time.
    to: Option<DateTime<Utc>>,
}

impl Selection {
    /// A selection of the given states (never `excluded`, which the policy keeps
    /// on site), alarms and alarm insertion window `[from, to)`.
    pub fn new(
        states: &[DetectionState],
        alarms: &[AlarmId],
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Selection {
        let mut st: Vec<DetectionState> = Vec::new();
        for s in states {
            if *s != DetectionState::Excluded && !st.contains(s) {
                st.push(*s);
            }
        }
        let mut al = alarms.to_vec();
        al.sort_unstable();
        al.dedup();
        Selection {
            states: st,
            alarms: al,
            from,
            to,
        }
    }

    /// The states this selection picks.
    pub fn states(&self) -> &[DetectionState] {
        &self.states
    }

    /// Bound parameters `?2..?5` of the selection queries: states and alarms as
    /// JSON arrays (read with `json_each`), then the window bounds.
    fn params(&self) -> (String, Option<String>, Option<String>, Option<String>) {
        let states: Vec<&str> = self.states.iter().map(|s| s.as_str()).collect();
        let states = serde_json::to_string(&states).unwrap_or_else(|_| "[]".into());
        let alarms = if self.alarms.is_empty() {
            None
        } else {
            serde_json::to_string(&self.alarms).ok()
        };
        (states, alarms, self.from.map(ts), self.to.map(ts))
    }
}

const SELECT_WHERE: &str = "d.state <> 'excluded'
    AND d.state IN (SELECT value FROM json_each(?2))
    AND (?3 IS NULL OR d.alarm_id IN (SELECT value FROM json_each(?3)))
    AND (?4 IS NULL OR a.date_inserted >= ?4)
    AND (?5 IS NULL OR a.date_inserted < ?5)";

/// The columns [`detection_row`] reads, in order.
const DETECTION_COLUMNS: &str =
    "d.id, d.alarm_id, a.rule_name, a.date_inserted, d.ioc_type, d.value, d.field, d.source_type, d.threat_name";

/// One detection joined with its alarm ([`DETECTION_COLUMNS`]).
fn detection_row(r: &Row<'_>) -> rusqlite::Result<Detection> {
    Ok(Detection {
        id: sql::get(r, 0, "detections.id")?,
        alarm_id: sql::get(r, 1, "detections.alarm_id")?,
        rule_name: sql::get(r, 2, "alarms.rule_name")?,
        timestamp: sql::time(r, 3, "alarms.date_inserted")?,
        kind: sql::get(r, 4, "detections.ioc_type")?,
        value: sql::get(r, 5, "detections.value")?,
        field: sql::get(r, 6, "detections.field")?,
        source_type: sql::get(r, 7, "detections.source_type")?,
        threat_name: sql::get(r, 8, "detections.threat_name")?,
    })
}

/// One POST's result, for the submissions table.
#[derive(Debug, Clone)]
pub struct SubmissionRecord {
    pub run_id: Option<i64>,
    pub at: DateTime<Utc>,
    pub debug: bool,
    pub http_status: Option<u16>,
    pub processed: Option<String>,
}

impl Ledger {
    /// Up to `limit` detections of `sel` with ids above `after_id`, oldest first,
    /// joined with their alarm for the CI payload.
    pub fn select_detections(
        &self,
        sel: &Selection,
        after_id: DetectionId,
        limit: usize,
    ) -> Result<Vec<Detection>> {
        let sql = format!(
            "SELECT {DETECTION_COLUMNS}
             FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE d.id > ?1 AND {SELECT_WHERE}
             ORDER BY d.id LIMIT ?6"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let (states, alarms, from, to) = sel.params();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![after_id, states, alarms, from, to, limit],
                detection_row,
            )
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// How many detections `sel` picks.
    pub fn count_selected(&self, sel: &Selection) -> Result<u64> {
        let sql = format!(
            "SELECT count(*) FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE ?1 IS NULL AND {SELECT_WHERE}"
        );
        let (states, alarms, from, to) = sel.params();
        let n: i64 = self
            .conn
            .query_row(
                &sql,
                params![Option::<i64>::None, states, alarms, from, to],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` detections in one of `states`, oldest first, with ids above
    /// `after_id`, joined with their alarm for the CI payload.
    pub fn detections_to_submit(
        &self,
        states: &[DetectionState],
        after_id: DetectionId,
        limit: usize,
    ) -> Result<Vec<Detection>> {
        let sql = format!(
            "SELECT {DETECTION_COLUMNS}
             FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE d.id > ?1 AND d.state IN (?2, ?3, ?4, ?5, ?6)
             ORDER BY d.id LIMIT ?7"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        // Five slots, padded with a repeat of the first state: one cached statement
        // serves every subset (an empty set matches nothing).
        let slot = |i: usize| {
            states
                .get(i)
                .or(states.first())
                .map_or("none", |s| s.as_str())
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let args = params![after_id, slot(0), slot(1), slot(2), slot(3), slot(4), limit];
        let rows = stmt
            .query_map(args, detection_row)
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// The latest detection CI accepted (`sent`), as it would be posted: a
    /// known-good item to tell a systemic refusal from bad items.
    pub fn last_sent_detection(&self) -> Result<Option<Detection>> {
        let sql = format!(
            "SELECT {DETECTION_COLUMNS}
             FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE d.state = ?1
             ORDER BY d.id DESC LIMIT 1"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        stmt.query_row([DetectionState::Sent.as_str()], detection_row)
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Detections posted for real (non-debug, 2xx) on a UTC day: the CI budget used.
    pub fn budget_used(&self, day: NaiveDate) -> Result<u64> {
        let from = format!("{}T00:00:00.000Z", day.format("%Y-%m-%d"));
        let to = day
            .succ_opt()
            .map(|d| format!("{}T00:00:00.000Z", d.format("%Y-%m-%d")))
            .unwrap_or_else(|| "9999".into());
        let used: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(sum(items), 0) FROM submissions
                 WHERE outcome = 'ok' AND debug = 0 AND at >= ?1 AND at < ?2",
                params![from, to],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// Whether a detection with this key exists, and its state (for `--dry-run`).
    pub fn detection_state(
        &self,
        alarm_id: AlarmId,
        kind: IndicatorType,
        value: &str,
    ) -> Result<Option<DetectionState>> {
        self.conn
            .query_row(
                "SELECT state FROM detections WHERE alarm_id = ?1 AND ioc_type = ?2 AND value = ?3",
                params![alarm_id, kind, value],
                |r| sql::get(r, 0, "detections.state"),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }
}

impl Writer {
    fn insert_submission(
        tx: &rusqlite::Transaction<'_>,
        sub: &SubmissionRecord,
        items: usize,
        outcome: &str,
    ) -> rusqlite::Result<i64> {
        tx.execute(
            "INSERT INTO submissions (run_id, at, items, debug, outcome, http_status, processed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                sub.run_id,
                ts(sub.at),
                i64::try_from(items).unwrap_or(i64::MAX),
                sub.debug,
                outcome,
                sub.http_status,
                sub.processed
            ],
        )?;
        Ok(tx.last_insert_rowid())
    }

    /// CI answered 2xx for these detections: mark them `sent`, in one transaction.
    pub fn mark_sent(&mut self, ids: &[DetectionId], sub: &SubmissionRecord) -> Result<()> {
        self.write(|tx| {
            let sub_id = Self::insert_submission(tx, sub, ids.len(), "ok")?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE detections SET state = 'sent', sent_at = ?2, submission_id = ?3,
                        attempts = attempts + 1, last_error = NULL, updated_at = ?2
                     WHERE id = ?1",
                )?;
                for id in ids {
                    stmt.execute(params![id, ts(sub.at), sub_id])?;
                }
            }
            Ok(())
        })
    }

    /// A transient failure (after retries): these stay retryable as `failed`.
    /// Already-sent rows are never downgraded.
    pub fn mark_failed(
        &mut self,
        ids: &[DetectionId],
        sub: &SubmissionRecord,
        error: &str,
    ) -> Result<()> {
        self.mark_unsent(ids, sub, error, DetectionState::Failed)
    }

    /// CI answered 2xx without a recognisable result: `unconfirmed`, neither sent
    /// nor due, until CI's search settles it. The post is recorded with outcome
    /// `failed` (nothing confirmed it) and its HTTP status.
    pub fn mark_unconfirmed(
        &mut self,
        ids: &[DetectionId],
        sub: &SubmissionRecord,
        error: &str,
    ) -> Result<()> {
        self.mark_unsent(ids, sub, error, DetectionState::Unconfirmed)
    }

    /// Records a post nothing confirmed (outcome `failed`) and puts `ids` in
    /// `state` with `error`; already-sent rows are never downgraded.
    fn mark_unsent(
        &mut self,
        ids: &[DetectionId],
        sub: &SubmissionRecord,
        error: &str,
        state: DetectionState,
    ) -> Result<()> {
        self.write(|tx| {
            let sub_id = Self::insert_submission(tx, sub, ids.len(), "failed")?;
            let mut stmt = tx.prepare_cached(
                "UPDATE detections SET state = ?5, attempts = attempts + 1,
                    last_error = ?2, submission_id = ?3, updated_at = ?4
                 WHERE id = ?1 AND state <> 'sent'",
            )?;
            for id in ids {
                stmt.execute(params![id, error, sub_id, ts(sub.at), state])?;
            }
            Ok(())
        })
    }

    /// CI answered 400 for this one detection: `rejected`, with CI's reason.
    pub fn mark_rejected(
        &mut self,
        id: DetectionId,
        sub: &SubmissionRecord,
        reason: &str,
    ) -> Result<()> {
        self.write(|tx| {
            let sub_id = Self::insert_submission(tx, sub, 1, "rejected")?;
            tx.execute(
                "UPDATE detections SET state = 'rejected', reason = ?2, attempts = attempts + 1,
                last_error = ?2, submission_id = ?3, updated_at = ?4
             WHERE id = ?1 AND state <> 'sent'",
                params![id, reason, sub_id, ts(sub.at)],
            )?;
            Ok(())
        })
    }
}
