//! `ledger prune`: removing old detail while keeping tombstones, and the
//! tombstone lookup the engine uses so a pruned alarm is never recorded again.
//!
//! Like the rest of `ledger`, values are always bound; the only text built at run
//! time is the fixed SQL itself.

use super::{ts, Ledger, Result, Writer};
use crate::model::AlarmId;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, TransactionBehavior};
use std::collections::HashSet;

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
}

impl Writer {
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
        run(&mut self.ledger.conn).map_err(sql)
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
    use crate::ledger::{AlarmOutcome, AlarmRecord, Selection, SliceIngest, SubmissionRecord};
    use crate::model::{
        AlarmRow, Detection, DetectionId, DetectionState, Indicator, IndicatorType, Verdict,
    };
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    /// Alarm `id` inserted at `at` with public IPs `1.1.1.<id*10+k>` for k < n.
    fn ingest(l: &mut Writer, run: Option<i64>, id: i64, at: DateTime<Utc>, n: u8) {
        let indicators = (0..n)
            .map(|k| Indicator {
                kind: IndicatorType::Ip,
                value: format!("1.1.{id}.{k}"),
                field: "originIP",
                verdict: Verdict::Send,
                source: Default::default(),
            })
            .chain(std::iter::once(Indicator {
                kind: IndicatorType::Ip,
                value: "10.0.0.1".into(),
                field: "impactedIP",
                verdict: Verdict::Exclude("private ip".into()),
                source: Default::default(),
            }))
            .collect();
        l.ingest(
            &SliceIngest {
                run_id: run,
                slice_start: at,
                covered_until: Some(at + chrono::Duration::hours(1)),
                saturated_at: vec![],
                listed_from: None,
                observations: Vec::new(),
                alarms: vec![AlarmRecord {
                    row: AlarmRow {
                        alarm_id: id.into(),
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
        v.iter()
            .map(|d| (d.alarm_id.get(), d.value.clone()))
            .collect()
    }

    #[test]
    fn selection_filters_by_state_alarm_and_window_and_never_excluded() {
        let mut l = Writer::open_in_memory().unwrap();
        ingest(&mut l, None, 1, t(1, 0), 2);
        ingest(&mut l, None, 2, t(2, 0), 2);
        ingest(&mut l, None, 3, t(3, 0), 2);
        let all = l
            .select_detections(
                &Selection::new(DetectionState::ALL, &[], None, None),
                DetectionId::from(0),
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
        let by_alarm = Selection::new(
            &[DetectionState::Pending],
            &[3, 3, 1].map(AlarmId::from),
            None,
            None,
        );
        assert_eq!(
            ids(&l
                .select_detections(&by_alarm, DetectionId::from(0), 100)
                .unwrap()),
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
            ids(&l
                .select_detections(&window, DetectionId::from(0), 100)
                .unwrap()),
            vec![(2, "1.1.2.0".into()), (2, "1.1.2.1".into())]
        );
        let sent = Selection::new(&[DetectionState::Sent], &[], None, None);
        assert_eq!(l.count_selected(&sent).unwrap(), 1);
        // Paging by id.
        let page = l
            .select_detections(&unsent, DetectionId::from(0), 2)
            .unwrap();
        assert_eq!(page.len(), 2);
        let rest = l.select_detections(&unsent, page[1].id, 100).unwrap();
        assert_eq!(rest.len(), 3);
        // Only excluded asked for: nothing.
        let ex = Selection::new(&[DetectionState::Excluded], &[], None, None);
        assert_eq!(l.count_selected(&ex).unwrap(), 0);
    }

    #[test]
    fn prune_refuses_unsent_then_keeps_tombstones_and_coverage() {
        let mut l = Writer::open_in_memory().unwrap();
        let old_run = l.begin_run("sync", t(1, 0), None).unwrap();
        ingest(&mut l, Some(old_run), 1, t(1, 0), 2);
        let new_run = l.begin_run("sync", t(5, 0), None).unwrap();
        ingest(&mut l, Some(new_run), 2, t(5, 0), 1);
        let todo = l
            .detections_to_submit(&[DetectionState::Pending], DetectionId::from(0), 100)
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
        assert_eq!(
            l.pruned_alarms(&[1, 2].map(AlarmId::from)).unwrap(),
            HashSet::from([1].map(AlarmId::from))
        );
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
        let mut l = Writer::open_in_memory().unwrap();
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
