//! The ledger's SQL for `replay` (choosing detections to resubmit) and for
//! `ledger prune` (removing old detail while keeping tombstones), plus the
//! tombstone lookup the engine uses so a pruned alarm is never recorded again.
//!
//! Like the rest of `ledger`, values are always bound; the only text built at run
//! time is the fixed SQL itself. `excluded` detections are never selected: the
//! indicator policy said they must not leave the site.

use super::{parse_ts, ts, Ledger, Result};
use crate::model::{AlarmId, Detection, DetectionState};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, TransactionBehavior};
use std::collections::HashSet;

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

/// What `ledger prune` removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneCounts {
    /// Alarms inserted before the cut, replaced by tombstones.
    pub alarms: u64,
    /// Their detections.
    pub detections: u64,
    /// Of those, detections still `pending` or `failed` (lost unless replayed first).
    pub unsent: u64,
    /// Submissions older than the cut that no remaining detection refers to.
    pub submissions: u64,
    /// Runs started before the cut that nothing remaining refers to.
    pub runs: u64,
}

impl Ledger {
    /// Up to `limit` detections of `sel` with ids above `after_id`, oldest first,
    /// joined with their alarm for the CI payload.
    pub fn select_detections(
        &self,
        sel: &Selection,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Detection>> {
        let sql = format!(
            "SELECT d.id, d.alarm_id, a.rule_name, a.date_inserted, d.ioc_type, d.value, d.field
             FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE d.id > ?1 AND {SELECT_WHERE}
             ORDER BY d.id LIMIT ?6"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let (states, alarms, from, to) = sel.params();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(params![after_id, states, alarms, from, to, limit])
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            let get = |i| r.get::<_, String>(i).map_err(|e| self.sql(e));
            let (Some(timestamp), Ok(kind)) = (parse_ts(&get(3)?), get(4)?.parse()) else {
                // A row this build cannot read is left alone, as the sync does.
                continue;
            };
            out.push(Detection {
                id: r.get(0).map_err(|e| self.sql(e))?,
                alarm_id: r.get(1).map_err(|e| self.sql(e))?,
                rule_name: get(2)?,
                timestamp,
                kind,
                value: get(5)?,
                field: get(6)?,
            });
        }
        Ok(out)
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

    /// Which of these alarms were pruned (have a tombstone): the engine treats
    /// them as known and never fetches or records them again.
    pub fn pruned_alarms(&self, ids: &[AlarmId]) -> Result<HashSet<AlarmId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM pruned_alarms WHERE alarm_id = ?1")
            .map_err(|e| self.sql(e))?;
        let mut out = HashSet::new();
        for &id in ids {
            if stmt.exists([id]).map_err(|e| self.sql(e))? {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Counts what [`Ledger::prune`] would remove for this cut, changing nothing.
    pub fn prune_counts(&self, before: DateTime<Utc>) -> Result<PruneCounts> {
        counts(&self.conn, &ts(before)).map_err(|e| self.sql(e))
    }

    /// Removes the detail of alarms inserted before `before`: the alarms and their
    /// detections (each alarm leaves a tombstone in `pruned_alarms`), submissions
    /// older than the cut that no remaining detection refers to, and runs started
    /// before the cut that nothing remaining refers to. Coverage rows stay (their
    /// run reference is cleared when that run goes). One transaction.
    ///
    /// With `force` false, nothing is changed when a detection to be removed is
    /// still `pending` or `failed`; the returned counts say how many (`unsent`),
    /// and the caller refuses.
    pub fn prune(
        &mut self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        force: bool,
    ) -> Result<(PruneCounts, bool)> {
        let cut = ts(before);
        let now = ts(now);
        let path = self.path.clone();
        let sql = |source| super::Error::Sql { path, source };
        let run = |conn: &mut Connection| -> rusqlite::Result<(PruneCounts, bool)> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let c = counts(&tx, &cut)?;
            if c.unsent > 0 && !force {
                return Ok((c, false));
            }
            tx.execute(
                "INSERT INTO pruned_alarms (alarm_id, date_inserted, decision, detections,
                    sent, unsent, pruned_at)
                 SELECT a.alarm_id, a.date_inserted, a.decision,
                    (SELECT count(*) FROM detections d WHERE d.alarm_id = a.alarm_id),
                    (SELECT count(*) FROM detections d WHERE d.alarm_id = a.alarm_id
                        AND d.state = 'sent'),
                    (SELECT count(*) FROM detections d WHERE d.alarm_id = a.alarm_id
                        AND d.state IN ('pending', 'failed')),
                    ?2
                 FROM alarms a WHERE a.date_inserted < ?1
                 ON CONFLICT (alarm_id) DO NOTHING",
                params![cut, now],
            )?;
            tx.execute(
                "DELETE FROM detections WHERE alarm_id IN
                    (SELECT alarm_id FROM alarms WHERE date_inserted < ?1)",
                [&cut],
            )?;
            tx.execute("DELETE FROM alarms WHERE date_inserted < ?1", [&cut])?;
            tx.execute(
                &format!("DELETE FROM submissions WHERE {OLD_SUBMISSION}"),
                [&cut],
            )?;
            tx.execute(
                &format!("UPDATE coverage SET run_id = NULL WHERE run_id IN (SELECT id FROM runs r WHERE {OLD_RUN})"),
                [&cut],
            )?;
            tx.execute(&format!("DELETE FROM runs AS r WHERE {OLD_RUN}"), [&cut])?;
            tx.commit()?;
            Ok((c, true))
        };
        run(&mut self.conn).map_err(sql)
    }

    /// `VACUUM`: gives the space of pruned rows back to the file system.
    pub fn vacuum(&self) -> Result<()> {
        self.conn.execute_batch("VACUUM").map_err(|e| self.sql(e))
    }
}

/// A submission older than the cut `?1` that no surviving detection refers to.
/// Detections of alarms before the cut are gone (or about to go) with them.
const OLD_SUBMISSION: &str = "at < ?1 AND id NOT IN (
        SELECT d.submission_id FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
        WHERE d.submission_id IS NOT NULL AND a.date_inserted >= ?1)";

/// A run started before the cut `?1` that no surviving alarm or submission refers to.
const OLD_RUN: &str = "r.started_at < ?1
    AND r.id NOT IN (SELECT first_run_id FROM alarms
        WHERE first_run_id IS NOT NULL AND date_inserted >= ?1)
    AND r.id NOT IN (SELECT run_id FROM submissions s
        WHERE s.run_id IS NOT NULL AND NOT (s.at < ?1 AND s.id NOT IN (
            SELECT d.submission_id FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
            WHERE d.submission_id IS NOT NULL AND a.date_inserted >= ?1)))";

fn counts(conn: &Connection, cut: &str) -> rusqlite::Result<PruneCounts> {
    let n = |sql: &str| -> rusqlite::Result<u64> {
        let v: i64 = conn.query_row(sql, [cut], |r| r.get(0))?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    Ok(PruneCounts {
        alarms: n("SELECT count(*) FROM alarms WHERE date_inserted < ?1")?,
        detections: n(
            "SELECT count(*) FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE a.date_inserted < ?1",
        )?,
        unsent: n(
            "SELECT count(*) FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
             WHERE a.date_inserted < ?1 AND d.state IN ('pending', 'failed')",
        )?,
        submissions: n(&format!(
            "SELECT count(*) FROM submissions WHERE {OLD_SUBMISSION}"
        ))?,
        runs: n(&format!("SELECT count(*) FROM runs r WHERE {OLD_RUN}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{AlarmOutcome, AlarmRecord, SliceIngest, SubmissionRecord};
    use crate::model::{AlarmRow, Indicator, IndicatorType, Verdict};
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    /// Alarm `id` inserted at `at` with public IPs `1.1.1.<id*10+k>` for k < n.
    fn ingest(l: &mut Ledger, run: Option<i64>, id: i64, at: DateTime<Utc>, n: u8) {
        let indicators = (0..n)
            .map(|k| Indicator {
                kind: IndicatorType::Ip,
                value: format!("1.1.{id}.{k}"),
                field: "originIP",
                verdict: Verdict::Send,
            })
            .chain(std::iter::once(Indicator {
                kind: IndicatorType::Ip,
                value: "10.0.0.1".into(),
                field: "impactedIP",
                verdict: Verdict::Exclude("private ip".into()),
            }))
            .collect();
        l.ingest(
            &SliceIngest {
                run_id: run,
                slice_start: at,
                covered_until: Some(at + chrono::Duration::hours(1)),
                saturated_at: vec![],
                alarms: vec![AlarmRecord {
                    row: AlarmRow {
                        alarm_id: id,
                        rule_name: format!("Rule {id}"),
                        status: 0,
                        entity_name: String::new(),
                        date_inserted: at,
                    },
                    rbp_max: None,
                    outcome: AlarmOutcome::Accepted {
                        event_count: 1,
                        indicators,
                        note: None,
                    },
                }],
            },
            at,
        )
        .unwrap();
    }

    fn sub(run: Option<i64>, at: DateTime<Utc>) -> SubmissionRecord {
        SubmissionRecord {
            run_id: run,
            at,
            debug: false,
            http_status: Some(200),
            processed: None,
        }
    }

    fn ids(v: &[Detection]) -> Vec<(i64, String)> {
        v.iter().map(|d| (d.alarm_id, d.value.clone())).collect()
    }

    #[test]
    fn selection_filters_by_state_alarm_and_window_and_never_excluded() {
        let mut l = Ledger::open_in_memory().unwrap();
        ingest(&mut l, None, 1, t(1, 0), 2);
        ingest(&mut l, None, 2, t(2, 0), 2);
        ingest(&mut l, None, 3, t(3, 0), 2);
        let all = l
            .select_detections(
                &Selection::new(&DetectionState::ALL, &[], None, None),
                0,
                100,
            )
            .unwrap();
        assert_eq!(all.len(), 6, "excluded rows are never selected");
        let first = all[0].id;
        l.mark_sent(&[first], &sub(None, t(4, 0))).unwrap();

        let unsent = Selection::new(
            &[DetectionState::Pending, DetectionState::Failed],
            &[],
            None,
            None,
        );
        assert_eq!(l.count_selected(&unsent).unwrap(), 5);
        let by_alarm = Selection::new(&[DetectionState::Pending], &[3, 3, 1], None, None);
        assert_eq!(
            ids(&l.select_detections(&by_alarm, 0, 100).unwrap()),
            vec![
                (1, "1.1.1.1".into()),
                (3, "1.1.3.0".into()),
                (3, "1.1.3.1".into())
            ]
        );
        let window = Selection::new(
            &[DetectionState::Pending],
            &[],
            Some(t(2, 0)),
            Some(t(3, 0)),
        );
        assert_eq!(
            ids(&l.select_detections(&window, 0, 100).unwrap()),
            vec![(2, "1.1.2.0".into()), (2, "1.1.2.1".into())]
        );
        let sent = Selection::new(&[DetectionState::Sent], &[], None, None);
        assert_eq!(l.count_selected(&sent).unwrap(), 1);
        // Paging by id.
        let page = l.select_detections(&unsent, 0, 2).unwrap();
        assert_eq!(page.len(), 2);
        let rest = l.select_detections(&unsent, page[1].id, 100).unwrap();
        assert_eq!(rest.len(), 3);
        // Only excluded asked for: nothing.
        let ex = Selection::new(&[DetectionState::Excluded], &[], None, None);
        assert_eq!(l.count_selected(&ex).unwrap(), 0);
    }

    #[test]
    fn prune_refuses_unsent_then_keeps_tombstones_and_coverage() {
        let mut l = Ledger::open_in_memory().unwrap();
        let old_run = l.begin_run("sync", t(1, 0), None).unwrap();
        ingest(&mut l, Some(old_run), 1, t(1, 0), 2);
        let new_run = l.begin_run("sync", t(5, 0), None).unwrap();
        ingest(&mut l, Some(new_run), 2, t(5, 0), 1);
        let todo = l
            .detections_to_submit(&[DetectionState::Pending], 0, 100)
            .unwrap();
        // Alarm 1's first detection sent by the old run; alarm 2's by the new one.
        l.mark_sent(&[todo[0].id], &sub(Some(old_run), t(1, 1)))
            .unwrap();
        l.mark_sent(&[todo[2].id], &sub(Some(new_run), t(5, 1)))
            .unwrap();

        let c = l.prune_counts(t(3, 0)).unwrap();
        assert_eq!(
            c,
            PruneCounts {
                alarms: 1,
                detections: 3,
                unsent: 1,
                submissions: 1,
                runs: 1
            }
        );
        let (_, done) = l.prune(t(3, 0), t(6, 0), false).unwrap();
        assert!(!done, "an unsent detection blocks the prune");
        assert_eq!(l.alarm_count().unwrap(), 2);

        l.mark_sent(&[todo[1].id], &sub(Some(new_run), t(5, 2)))
            .unwrap();
        let (c, done) = l.prune(t(3, 0), t(6, 0), false).unwrap();
        assert!(done);
        assert_eq!((c.alarms, c.detections, c.unsent), (1, 3, 0));
        // The submission of 5:02 carried alarm 1's detection, but it is not old.
        assert_eq!(c.submissions, 1);
        assert_eq!(l.alarm_count().unwrap(), 1);
        assert_eq!(l.pruned_alarms(&[1, 2]).unwrap(), HashSet::from([1]));
        let (dets, sent): (i64, i64) = l
            .conn
            .query_row(
                "SELECT detections, sent FROM pruned_alarms WHERE alarm_id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((dets, sent), (3, 2));
        // Coverage of the pruned hour stays; the old run is gone, the new one stays.
        assert!(l.coverage(t(1, 0), t(2, 0)).unwrap().contains_key(&t(1, 0)));
        let runs: Vec<i64> = l
            .conn
            .prepare("SELECT id FROM runs")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(runs, vec![new_run]);
        assert_eq!(l.prune_counts(t(3, 0)).unwrap(), PruneCounts::default());
        l.vacuum().unwrap();
    }

    #[test]
    fn forced_prune_drops_unsent_and_records_them() {
        let mut l = Ledger::open_in_memory().unwrap();
        ingest(&mut l, None, 1, t(1, 0), 2);
        let (c, done) = l.prune(t(3, 0), t(6, 0), true).unwrap();
        assert!(done);
        assert_eq!(c.unsent, 2);
        let unsent: i64 = l
            .conn
            .query_row(
                "SELECT unsent FROM pruned_alarms WHERE alarm_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unsent, 2);
        assert_eq!(
            l.state_counts().unwrap(),
            crate::ledger::StateCounts::default()
        );
    }
}
