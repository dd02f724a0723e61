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

/// The filters of a [`Selection`] beyond its states, on the detection `d`
/// and its alarm `a`.
const SELECT_WHERE: &str = "(?3 IS NULL OR d.alarm_id IN (SELECT value FROM json_each(?3)))
    AND (?4 IS NULL OR a.date_inserted >= ?4)
    AND (?5 IS NULL OR a.date_inserted < ?5)";

/// The most states one selection query takes: every state but `excluded`.
const STATE_SLOTS: usize = 5;

/// A state no row has: pads the unused state slots, so each arm costs one
/// empty index seek.
const NO_STATE: &str = "none";

/// The keyset page of the submission queries: up to `?{limit}` detections with
/// ids above `?1` in the states bound to `?{first_state}..` ([`STATE_SLOTS`]
/// of them), ids ascending, each row also passing `filter`.
///
/// One `UNION ALL` arm per state: `state = ? AND id > ?` is a range of the
/// `detections_by_state` index, whose entries are ordered by rowid within a
/// state, so each arm yields its rows in id order without sorting, and SQLite
/// merges the arms (`MERGE (UNION ALL)`) and stops at the limit. A page costs
/// O(batch), whatever the backlog. `state IN (...) ORDER BY id`, the former
/// query, sorted every matching row in a temporary B-tree on every page.
fn keyset_sql(filter: &str, first_state: usize, limit: usize) -> String {
    let arms: Vec<String> = (0..STATE_SLOTS)
        .map(|i| {
            format!(
                "SELECT {DETECTION_COLUMNS}
                 FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
                 WHERE d.state = ?{} AND d.id > ?1{filter}",
                first_state + i
            )
        })
        .collect();
    format!("{} ORDER BY 1 LIMIT ?{limit}", arms.join(" UNION ALL "))
}

/// `states` as [`STATE_SLOTS`] bound values: each state once, `excluded`
/// never (the policy keeps it on site), the rest [`NO_STATE`].
fn state_slots(states: &[DetectionState]) -> [&'static str; STATE_SLOTS] {
    let mut slots = [NO_STATE; STATE_SLOTS];
    let mut n = 0;
    for s in states {
        let s = s.as_str();
        if s == DetectionState::Excluded.as_str() || slots[..n].contains(&s) {
            continue;
        }
        if let Some(slot) = slots.get_mut(n) {
            *slot = s;
            n += 1;
        }
    }
    slots
}

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

/// `ids` as a JSON array, bound once and read with `json_each`.
fn id_list(ids: &[DetectionId]) -> String {
    let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
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
        let sql = keyset_sql(&format!(" AND {SELECT_WHERE}"), 6, 11);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        // ?2 (the states as JSON, for `count_selected`) is unused here: the
        // states fill the arms' slots ?6..?10.
        let (_, alarms, from, to) = sel.params();
        let [s0, s1, s2, s3, s4] = state_slots(&sel.states);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let args = params![
            after_id,
            Option::<String>::None,
            alarms,
            from,
            to,
            s0,
            s1,
            s2,
            s3,
            s4,
            limit
        ];
        let rows = stmt
            .query_map(args, detection_row)
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    /// How many detections `sel` picks.
    pub fn count_selected(&self, sel: &Selection) -> Result<u64> {
        let sql = format!(
            "SELECT count(*) FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE ?1 IS NULL AND d.state <> 'excluded'
                AND d.state IN (SELECT value FROM json_each(?2)) AND {SELECT_WHERE}"
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
        let sql = keyset_sql("", 2, 7);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let [s0, s1, s2, s3, s4] = state_slots(states);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let args = params![after_id, s0, s1, s2, s3, s4, limit];
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
            // One statement for the batch (ids as a JSON array): a statement per
            // row cost most of a replay's CPU (issue 13).
            tx.prepare_cached(
                "UPDATE detections SET state = 'sent', sent_at = ?2, submission_id = ?3,
                    attempts = attempts + 1, last_error = NULL, updated_at = ?2
                 WHERE id IN (SELECT value FROM json_each(?1))",
            )?
            .execute(params![id_list(ids), ts(sub.at), sub_id])?;
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
            tx.prepare_cached(
                "UPDATE detections SET state = ?5, attempts = attempts + 1,
                    last_error = ?2, submission_id = ?3, updated_at = ?4
                 WHERE id IN (SELECT value FROM json_each(?1)) AND state <> 'sent'",
            )?
            .execute(params![id_list(ids), error, sub_id, ts(sub.at), state])?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{AlarmOutcome, AlarmRecord, SliceIngest};
    use crate::model::{AlarmRow, Indicator, Verdict};
    use chrono::TimeZone;
    use DetectionState::*;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, h, 0, 0).unwrap()
    }

    /// 40 alarms over four hours with 5 detections each, in states that cycle
    /// through every state but `excluded` (every seventh detection is one).
    fn ledger() -> Writer {
        let mut l = Writer::open_in_memory().unwrap();
        let alarms = (1..=40i64)
            .map(|id| AlarmRecord {
                row: AlarmRow {
                    alarm_id: id.into(),
                    rule_name: format!("Rule {id}"),
                    status: 0,
                    entity_name: "e".into(),
                    date_inserted: t(10 + u32::try_from(id % 4).unwrap()),
                },
                rbp_max: None,
                outcome: AlarmOutcome::Accepted {
                    event_count: 1,
                    indicators: (0..5)
                        .map(|i| Indicator {
                            kind: IndicatorType::Domain,
                            value: format!("h{id}-{i}.example.com"),
                            field: "domain",
                            verdict: Verdict::Send,
                            source: Default::default(),
                        })
                        .collect(),
                    note: None,
                },
            })
            .collect();
        l.ingest(
            &SliceIngest {
                run_id: None,
                slice_start: t(10),
                covered_until: Some(t(14)),
                saturated_at: vec![],
                listed_from: None,
                observations: Vec::new(),
                alarms,
            },
            t(15),
        )
        .unwrap();
        l.conn
            .execute_batch(
                "UPDATE detections SET state = CASE
                     WHEN id % 7 = 0 THEN 'excluded'
                     ELSE json_extract('[\"pending\",\"sent\",\"failed\",\"rejected\",\"unconfirmed\"]',
                                       '$[' || (id % 5) || ']') END",
            )
            .unwrap();
        l
    }

    /// Every detection as (id, state, alarm id, alarm time), by id.
    fn all(l: &Ledger) -> Vec<(i64, DetectionState, i64, DateTime<Utc>)> {
        let mut st = l
            .conn
            .prepare(
                "SELECT d.id, d.state, d.alarm_id, a.date_inserted FROM detections d
                 JOIN alarms a USING (alarm_id) ORDER BY d.id",
            )
            .unwrap();
        st.query_map([], |r| {
            Ok((
                r.get(0)?,
                sql::get(r, 1, "state")?,
                r.get(2)?,
                sql::time(r, 3, "date_inserted")?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    /// Pages through `page` with `limit` rows a page, as the submitter does.
    fn drain(page: impl Fn(DetectionId) -> Vec<Detection>) -> Vec<i64> {
        let mut after = DetectionId::from(0);
        let mut ids = Vec::new();
        loop {
            let rows = page(after);
            let Some(last) = rows.last() else { break };
            after = last.id;
            ids.extend(rows.iter().map(|d| d.id.get()));
        }
        ids
    }

    #[test]
    fn keyset_pages_give_each_selected_detection_once_in_id_order() {
        let l = ledger();
        let rows = all(&l);
        let states: &[&[DetectionState]] = &[
            &[Pending],
            &[Pending, Failed],
            &[Failed, Pending, Failed],
            &[Sent, Rejected, Unconfirmed, Pending, Failed],
            &[Excluded],
            &[Excluded, Sent],
            &[],
        ];
        for st in states {
            for limit in [1, 3, 7, 500] {
                let want: Vec<i64> = rows
                    .iter()
                    .filter(|r| r.1 != Excluded && st.contains(&r.1))
                    .map(|r| r.0)
                    .collect();
                let got = drain(|after| l.detections_to_submit(st, after, limit).unwrap());
                assert_eq!(got, want, "detections_to_submit {st:?} limit {limit}");
                let sel = Selection::new(st, &[], None, None);
                let got = drain(|after| l.select_detections(&sel, after, limit).unwrap());
                assert_eq!(got, want, "select_detections {st:?} limit {limit}");
                assert_eq!(l.count_selected(&sel).unwrap(), want.len() as u64);
            }
        }
        // With the alarm and window filters of `replay`.
        let alarms = [AlarmId::from(3), AlarmId::from(8), AlarmId::from(21)];
        let filters = [
            Selection::new(&[Pending, Sent], &alarms, None, None),
            Selection::new(&[Failed, Unconfirmed], &[], Some(t(11)), Some(t(13))),
            Selection::new(&[Pending, Failed, Sent], &alarms, Some(t(11)), None),
        ];
        for sel in &filters {
            let want: Vec<i64> = rows
                .iter()
                .filter(|r| sel.states.contains(&r.1))
                .filter(|r| sel.alarms.is_empty() || sel.alarms.contains(&AlarmId::from(r.2)))
                .filter(|r| sel.from.is_none_or(|f| r.3 >= f) && sel.to.is_none_or(|x| r.3 < x))
                .map(|r| r.0)
                .collect();
            assert!(!want.is_empty(), "{sel:?}");
            for limit in [1, 4, 500] {
                let got = drain(|after| l.select_detections(sel, after, limit).unwrap());
                assert_eq!(got, want, "{sel:?} limit {limit}");
            }
            assert_eq!(l.count_selected(sel).unwrap(), want.len() as u64);
        }
    }

    /// The query plan's lines for `sql` with its parameters bound to `args`.
    fn plan(l: &Ledger, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Vec<String> {
        // `sql` is one of this module's constant statements.
        let explain = ["EXPLAIN QUERY PLAN ", sql].concat();
        let mut st = l.conn.prepare(&explain).unwrap();
        st.query_map(args, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn selection_is_a_keyset_scan_of_the_state_index_without_sorting() {
        let l = ledger();
        // Statistics as a big ledger would have them, so the planner's choice is
        // the one it makes there.
        l.conn.execute_batch("ANALYZE").unwrap();
        let [s0, s1, s2, s3, s4] = state_slots(&[Pending, Failed]);
        let submit = plan(
            &l,
            &keyset_sql("", 2, 7),
            &[&7i64, &s0, &s1, &s2, &s3, &s4, &500i64],
        );
        let sel = Selection::new(&[Pending, Sent], &[], Some(t(11)), None);
        let (_, alarms, from, to) = sel.params();
        let [r0, r1, r2, r3, r4] = state_slots(&sel.states);
        let replay = plan(
            &l,
            &keyset_sql(&format!(" AND {SELECT_WHERE}"), 6, 11),
            &[
                &7i64,
                &Option::<String>::None,
                &alarms,
                &from,
                &to,
                &r0,
                &r1,
                &r2,
                &r3,
                &r4,
                &500i64,
            ],
        );
        for (name, lines) in [
            ("detections_to_submit", submit),
            ("select_detections", replay),
        ] {
            let text = lines.join("\n");
            assert!(!text.contains("TEMP B-TREE"), "{name}:\n{text}");
            assert!(text.contains("MERGE (UNION ALL)"), "{name}:\n{text}");
            let seeks = lines
                .iter()
                .filter(|p| p.contains("USING INDEX detections_by_state (state=? AND rowid>?)"))
                .count();
            assert_eq!(seeks, STATE_SLOTS, "{name}:\n{text}");
        }
    }

    #[test]
    fn state_slots_take_each_state_once_and_never_excluded() {
        let cases: &[(&[DetectionState], [&str; STATE_SLOTS])] = &[
            (&[], ["none"; 5]),
            (&[Pending], ["pending", "none", "none", "none", "none"]),
            (
                &[Failed, Pending, Failed],
                ["failed", "pending", "none", "none", "none"],
            ),
            (&[Excluded, Sent], ["sent", "none", "none", "none", "none"]),
            (
                &[Pending, Sent, Failed, Rejected, Unconfirmed, Excluded],
                ["pending", "sent", "failed", "rejected", "unconfirmed"],
            ),
        ];
        for (states, want) in cases {
            assert_eq!(state_slots(states), *want, "{states:?}");
        }
    }
}
