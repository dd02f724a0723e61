//! Submission as a sans-I/O state machine, in the style of
//! `logrhythm::listing`: the driver asks [`Submitter::step`] what to do, pages
//! detections out of the ledger or posts a batch, and feeds the answer back; the
//! machine says what to mark. It owns batching, the daily budget and the
//! bisection of a rejected (400) or too large (413) batch down to the offending
//! detection. No I/O and no clock here.

use crate::model::{Detection, DetectionId, DetectionState};

/// The states a sync submits: new detections and those a failure left behind.
/// The ledger selects rows in these states; nothing else decides what is due.
pub const DUE_STATES: [DetectionState; 2] = [DetectionState::Pending, DetectionState::Failed];

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Read up to `limit` detections with ids above `after_id`, ascending, and
    /// hand them to [`Submitter::page`].
    Page { after_id: DetectionId, limit: usize },
    /// Post these and hand the answer to [`Submitter::answer`].
    Post(&'a [Detection]),
    /// A batch (everything taken from one page) is answered; `failed` is the
    /// error of a part left `failed` by a non-transient error, if any.
    BatchDone { failed: Option<String> },
    /// Nothing more to do.
    Done(End),
}

/// Why submission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Everything due was answered.
    Drained,
    /// The daily budget is used up; the rest waits for the next UTC day.
    Budget,
    /// CI failed transiently; the rest waits for the next run.
    Unavailable(String),
}

/// CI's answer to one post, as far as the machine cares. Auth and TLS failures
/// never get here: they end the run in the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx; `processed` is CI's per-type summary as JSON.
    Accepted { processed: Option<String> },
    /// 400 with CI's message.
    Rejected { message: String, error: String },
    /// 413.
    TooLarge { error: String },
    /// Anything else.
    Failed {
        transient: bool,
        status: Option<u16>,
        error: String,
    },
}

/// What to record in the ledger after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Nothing (the part was split and goes out again in halves).
    Nothing,
    Sent {
        ids: Vec<DetectionId>,
        processed: Option<String>,
    },
    Rejected {
        id: DetectionId,
        reason: String,
    },
    Failed {
        ids: Vec<DetectionId>,
        status: Option<u16>,
        error: String,
    },
}

/// The submission of everything due, one page and batch at a time.
#[derive(Debug)]
pub struct Submitter {
    batch: usize,
    budget: u64,
    used: u64,
    after_id: DetectionId,
    /// The current batch's parts still to post; the last is posted next.
    parts: Vec<Vec<Detection>>,
    in_flight: Option<Vec<Detection>>,
    batch_open: bool,
    batch_sent: u64,
    batch_failed: Option<String>,
    end: Option<End>,
}

impl Submitter {
    /// `batch` items per post (at least one), within `budget` items a UTC day of
    /// which `used` are already spent.
    pub fn new(batch: usize, budget: u64, used: u64) -> Submitter {
        Submitter {
            batch: batch.max(1),
            budget,
            used,
            after_id: DetectionId::from(0),
            parts: Vec::new(),
            in_flight: None,
            batch_open: false,
            batch_sent: 0,
            batch_failed: None,
            end: None,
        }
    }

    /// What to do next.
    pub fn step(&mut self) -> Step<'_> {
        if let Some(end) = &self.end {
            return Step::Done(end.clone());
        }
        if let Some(part) = self.parts.pop() {
            return Step::Post(self.in_flight.insert(part));
        }
        if self.batch_open {
            self.batch_open = false;
            self.used += self.batch_sent;
            self.batch_sent = 0;
            return Step::BatchDone {
                failed: self.batch_failed.take(),
            };
        }
        Step::Page {
            after_id: self.after_id,
            limit: self.batch,
        }
    }

    /// The page asked for by [`Step::Page`]: an empty one ends submission; else as
    /// much of it as the budget allows becomes the next batch.
    pub fn page(&mut self, mut page: Vec<Detection>) {
        if page.is_empty() {
            self.end = Some(End::Drained);
            return;
        }
        let left = self.budget.saturating_sub(self.used);
        if left == 0 {
            self.end = Some(End::Budget);
            return;
        }
        // What the budget cuts off is paged again next, where it meets the
        // spent budget and ends the submission with End::Budget.
        page.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        self.after_id = page.last().map_or(self.after_id, |d| d.id);
        self.parts.push(page);
        self.batch_open = true;
    }

    /// CI's answer to the last [`Step::Post`].
    pub fn answer(&mut self, answer: Answer) -> Mark {
        let part = self.in_flight.take().unwrap_or_default();
        let ids: Vec<DetectionId> = part.iter().map(|d| d.id).collect();
        match answer {
            Answer::Accepted { processed } => {
                self.batch_sent += ids.len() as u64;
                Mark::Sent { ids, processed }
            }
            Answer::Rejected { message, .. } if ids.len() == 1 => Mark::Rejected {
                id: ids[0],
                reason: message,
            },
            Answer::Rejected { .. } | Answer::TooLarge { .. } if part.len() > 1 => {
                let mut a = part;
                let b = a.split_off(a.len() / 2);
                // Posted first half first.
                self.parts.push(b);
                self.parts.push(a);
                Mark::Nothing
            }
            Answer::TooLarge { error } => self.fail(ids, false, Some(413), error),
            Answer::Rejected { error, .. } => self.fail(ids, false, Some(400), error),
            Answer::Failed {
                transient,
                status,
                error,
            } => self.fail(ids, transient, status, error),
        }
    }

    /// A failure marks the part and everything left of its batch `failed`.
    fn fail(
        &mut self,
        mut ids: Vec<DetectionId>,
        transient: bool,
        status: Option<u16>,
        error: String,
    ) -> Mark {
        for p in self.parts.drain(..) {
            ids.extend(p.iter().map(|d| d.id));
        }
        if transient {
            self.end = Some(End::Unavailable(error.clone()));
        } else {
            self.batch_failed = Some(error.clone());
        }
        Mark::Failed { ids, status, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IndicatorType;
    use chrono::{TimeZone, Utc};

    fn det(id: i64) -> Detection {
        Detection {
            id: id.into(),
            alarm_id: id.into(),
            rule_name: "r".into(),
            timestamp: Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap(),
            kind: IndicatorType::Ip,
            value: format!("10.0.0.{id}"),
            field: "sip".into(),
            source_type: None,
            threat_name: None,
        }
    }

    /// Posts made, marks, each batch's failure, and how submission ended.
    type Trace = (Vec<Vec<i64>>, Vec<Mark>, Vec<Option<String>>, End);

    /// A fake ledger and CI: `rows` are the due detection ids; `ci` answers a
    /// post of these ids. Returns the posts made, the marks and how it ended.
    fn drive(sub: &mut Submitter, rows: &[i64], ci: impl Fn(&[i64]) -> Answer) -> Trace {
        let (mut posts, mut marks, mut batches) = (Vec::new(), Vec::new(), Vec::new());
        // Rows leave the due set once sent or rejected, as in the ledger.
        let mut due: Vec<i64> = rows.to_vec();
        loop {
            match sub.step() {
                Step::Page { after_id, limit } => {
                    let page = due
                        .iter()
                        .filter(|id| **id > after_id.get())
                        .take(limit)
                        .map(|id| det(*id))
                        .collect();
                    sub.page(page);
                }
                Step::Post(items) => {
                    let ids: Vec<i64> = items.iter().map(|d| d.id.get()).collect();
                    let answer = ci(&ids);
                    posts.push(ids);
                    let mark = sub.answer(answer);
                    match &mark {
                        Mark::Sent { ids, .. } => {
                            due.retain(|d| !ids.contains(&DetectionId::from(*d)))
                        }
                        Mark::Rejected { id, .. } => due.retain(|d| *d != id.get()),
                        _ => {}
                    }
                    marks.push(mark);
                }
                Step::BatchDone { failed } => batches.push(failed),
                Step::Done(end) => return (posts, marks, batches, end),
            }
        }
    }

    fn ok() -> Answer {
        Answer::Accepted { processed: None }
    }

    fn sent(ids: &[i64]) -> Mark {
        Mark::Sent {
            ids: ids.iter().map(|&i| i.into()).collect(),
            processed: None,
        }
    }

    #[test]
    fn batches_and_budget() {
        // (due ids, batch, budget, used, posts expected, end)
        for (rows, batch, budget, used, want, end) in [
            (vec![], 2, 10, 0, vec![], End::Drained),
            (
                vec![1, 2, 3],
                2,
                10,
                0,
                vec![vec![1, 2], vec![3]],
                End::Drained,
            ),
            (
                vec![1, 2, 3],
                0,
                10,
                0,
                vec![vec![1], vec![2], vec![3]],
                End::Drained,
            ),
            (vec![1, 2, 3], 2, 3, 1, vec![vec![1, 2]], End::Budget),
            (vec![1, 2, 3], 5, 2, 0, vec![vec![1, 2]], End::Budget),
            (vec![1, 2, 3], 2, 5, 5, vec![], End::Budget),
        ] {
            let mut sub = Submitter::new(batch, budget, used);
            let (posts, _, _, got) = drive(&mut sub, &rows, |_| ok());
            assert_eq!(
                posts, want,
                "{rows:?} batch={batch} budget={budget} used={used}"
            );
            assert_eq!(
                got, end,
                "{rows:?} batch={batch} budget={budget} used={used}"
            );
        }
    }

    #[test]
    fn a_400_is_bisected_down_to_the_offending_detection() {
        let bad = 3;
        let ci = |ids: &[i64]| {
            if ids.contains(&bad) {
                Answer::Rejected {
                    message: "invalid ip".into(),
                    error: "HTTP 400".into(),
                }
            } else {
                ok()
            }
        };
        let mut sub = Submitter::new(4, 100, 0);
        let (posts, marks, batches, end) = drive(&mut sub, &[1, 2, 3, 4], ci);
        assert_eq!(
            posts,
            vec![vec![1, 2, 3, 4], vec![1, 2], vec![3, 4], vec![3], vec![4]]
        );
        assert_eq!(
            marks,
            vec![
                Mark::Nothing,
                sent(&[1, 2]),
                Mark::Nothing,
                Mark::Rejected {
                    id: 3.into(),
                    reason: "invalid ip".into()
                },
                sent(&[4]),
            ]
        );
        assert_eq!(batches, vec![None]);
        assert_eq!(end, End::Drained);
    }

    #[test]
    fn failures() {
        let failed = |transient| Answer::Failed {
            transient,
            status: Some(503),
            error: "HTTP 503".into(),
        };
        // A transient failure marks the part and the rest of its batch failed and ends.
        let mut sub = Submitter::new(4, 100, 0);
        let (posts, marks, _, end) = drive(&mut sub, &[1, 2, 3, 4, 5], |ids| {
            if ids.len() == 4 {
                Answer::TooLarge {
                    error: "HTTP 413".into(),
                }
            } else if ids.contains(&3) {
                failed(true)
            } else {
                ok()
            }
        });
        assert_eq!(posts, vec![vec![1, 2, 3, 4], vec![1, 2], vec![3, 4]]);
        assert_eq!(
            marks[2],
            Mark::Failed {
                ids: vec![3.into(), 4.into()],
                status: Some(503),
                error: "HTTP 503".into()
            }
        );
        assert_eq!(end, End::Unavailable("HTTP 503".into()));

        // A permanent failure fails the batch's rest; the next batch still goes.
        let mut sub = Submitter::new(2, 100, 0);
        let (posts, marks, batches, end) = drive(&mut sub, &[1, 2, 3], |ids| {
            if ids == [1, 2] {
                failed(false)
            } else {
                ok()
            }
        });
        assert_eq!(posts, vec![vec![1, 2], vec![3]]);
        assert_eq!(marks[1], sent(&[3]));
        assert_eq!(batches, vec![Some("HTTP 503".into()), None]);
        assert_eq!(end, End::Drained);

        // A single detection too large is failed, not split.
        let mut sub = Submitter::new(1, 100, 0);
        let (_, marks, _, _) = drive(&mut sub, &[7], |_| Answer::TooLarge {
            error: "HTTP 413".into(),
        });
        assert_eq!(
            marks,
            vec![Mark::Failed {
                ids: vec![7.into()],
                status: Some(413),
                error: "HTTP 413".into()
            }]
        );
    }

    #[test]
    fn sent_items_count_against_the_budget_per_batch() {
        let mut sub = Submitter::new(2, 3, 0);
        let (posts, _, _, end) = drive(&mut sub, &[1, 2, 3, 4, 5], |_| ok());
        assert_eq!(posts, vec![vec![1, 2], vec![3]]);
        assert_eq!(end, End::Budget);
    }
}
