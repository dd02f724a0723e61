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
    /// Post a detection CI accepted before (the ledger's latest `sent` one)
    /// with `debug: true` (validated, not stored), and hand the answer to
    /// [`Submitter::canary_answer`] (`None` when there is none): a small batch
    /// refused whole is systemic if that is refused alike.
    Canary,
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
    /// CI rejects everything with the same 400 (a validation change upstream, a
    /// proxy): the run stops and what was not sent stays due.
    Systemic(String),
    /// CI answered 2xx without a recognisable result: that part is
    /// `unconfirmed`, and the run stops rather than make more of them.
    Unconfirmed { count: usize, error: String },
}

/// Single-item rejections with one message, before anything of the batch was
/// accepted, that make the machine suspect a systemic 400 and probe the far end.
const SUSPECT_AFTER: usize = 3;
/// Batches smaller than this are never held back for a probe.
const HOLD_MIN_BATCH: usize = 8;
/// Consecutive single-item rejections with one message and no acceptance, across
/// batches, that count as systemic where batches are too small to probe.
const LONE_STREAK: usize = 10;

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
    /// 2xx without a recognisable result: stored or not, nobody can tell.
    Unconfirmed { status: u16, error: String },
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
    /// Neither sent nor due until CI's search settles them.
    Unconfirmed {
        ids: Vec<DetectionId>,
        status: u16,
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
    /// The current batch's size, and whether any of it was accepted.
    batch_len: usize,
    batch_accepted: bool,
    /// Single items rejected with `held_msg` before any acceptance: not marked
    /// yet, in case CI rejects everything (then they stay due).
    held: Vec<Detection>,
    held_msg: Option<String>,
    /// The far item posted alone to tell a systemic 400 from bad items.
    probe: Option<DetectionId>,
    /// The probe said "not systemic": this batch's rejections are marked.
    no_hold: bool,
    /// Consecutive single rejections with one message, across batches.
    lone: (Option<String>, usize),
    /// Whether a [`Step::Canary`] may still be asked for (once a run): it
    /// tells a systemic 400 from bad items in a batch too small to probe
    /// with its own far end.
    canary: bool,
    /// A whole small batch refused with this message, waiting for the canary.
    canary_wait: Option<(Vec<Detection>, String)>,
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
            batch_len: 0,
            batch_accepted: false,
            held: Vec::new(),
            held_msg: None,
            probe: None,
            no_hold: false,
            lone: (None, 0),
            canary: true,
            canary_wait: None,
        }
    }

    /// CI's answer to the [`Step::Canary`] post: refused with the same message,
    /// CI refuses everything (systemic: nothing marked, the run stops); else
    /// the batch's items are at fault and are split and marked as usual.
    pub fn canary_answer(&mut self, answer: Option<Answer>) -> Mark {
        let Some((part, message)) = self.canary_wait.take() else {
            return Mark::Nothing;
        };
        self.canary = false;
        match answer {
            Some(Answer::Rejected { message: m, .. }) if m == message => self.systemic(message),
            Some(Answer::Failed {
                transient: true,
                status,
                error,
            }) => {
                let ids = part.iter().map(|d| d.id).collect();
                self.fail(ids, true, status, error)
            }
            _ => self.refused(part, message),
        }
    }

    /// A part refused with 400: split, or a single item judged.
    fn refused(&mut self, part: Vec<Detection>, message: String) -> Mark {
        if part.len() == 1 {
            return match part.into_iter().next() {
                Some(d) => self.rejected_one(d, message),
                None => Mark::Nothing,
            };
        }
        let mut a = part;
        let b = a.split_off(a.len() / 2);
        // Posted first half first.
        self.parts.push(b);
        self.parts.push(a);
        Mark::Nothing
    }

    /// What to do next.
    pub fn step(&mut self) -> Step<'_> {
        if let Some(end) = &self.end {
            return Step::Done(end.clone());
        }
        if self.parts.is_empty() && !self.held.is_empty() {
            // Nothing left to probe with, and not everything was rejected: the
            // held items are marked one by one after all.
            self.release_held();
        }
        if self.canary_wait.is_some() {
            return Step::Canary;
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
        self.batch_len = page.len();
        self.batch_accepted = false;
        self.held.clear();
        self.held_msg = None;
        self.probe = None;
        self.no_hold = false;
        self.parts.push(page);
        self.batch_open = true;
    }

    /// Puts the held items back to be posted (and marked) one by one.
    fn release_held(&mut self) {
        self.no_hold = true;
        self.held_msg = None;
        for d in self.held.drain(..).rev() {
            self.parts.push(vec![d]);
        }
    }

    /// A single item rejected with `message`: held while a systemic 400 is
    /// suspected (then `Mark::Nothing`), else marked rejected.
    fn rejected_one(&mut self, d: Detection, message: String) -> Mark {
        let id = d.id;
        if self.probe == Some(id) {
            self.probe = None;
            if self.held_msg.as_deref() == Some(message.as_str()) {
                return self.systemic(message);
            }
            self.release_held();
            return self.mark_rejected(id, message);
        }
        let may_hold = !self.no_hold
            && !self.batch_accepted
            && self.batch_len >= HOLD_MIN_BATCH
            && self.held_msg.as_ref().is_none_or(|m| *m == message);
        if !may_hold {
            if !self.held.is_empty() {
                self.release_held();
            }
            return self.mark_rejected(id, message);
        }
        self.held.push(d);
        self.held_msg = Some(message.clone());
        if self.held.len() >= SUSPECT_AFTER {
            // Probe with the batch's far end: one bad item cannot explain it.
            let far = self.parts.first_mut().and_then(Vec::pop);
            self.parts.retain(|p| !p.is_empty());
            match far {
                Some(f) => {
                    self.probe = Some(f.id);
                    self.parts.push(vec![f]);
                }
                None => return self.systemic(message),
            }
        }
        Mark::Nothing
    }

    fn mark_rejected(&mut self, id: DetectionId, reason: String) -> Mark {
        let streak = if self.lone.0.as_deref() == Some(reason.as_str()) {
            self.lone.1 + 1
        } else {
            1
        };
        self.lone = (Some(reason.clone()), streak);
        if streak >= LONE_STREAK && self.batch_len < HOLD_MIN_BATCH {
            self.end = Some(End::Systemic(reason.clone()));
        }
        Mark::Rejected { id, reason }
    }

    /// Every item rejected alike: stop; nothing of this batch is marked.
    fn systemic(&mut self, message: String) -> Mark {
        self.canary_wait = None;
        self.parts.clear();
        self.held.clear();
        self.held_msg = None;
        self.batch_open = false;
        self.end = Some(End::Systemic(message));
        Mark::Nothing
    }

    /// CI's answer to the last [`Step::Post`].
    pub fn answer(&mut self, answer: Answer) -> Mark {
        let part = self.in_flight.take().unwrap_or_default();
        let ids: Vec<DetectionId> = part.iter().map(|d| d.id).collect();
        match answer {
            Answer::Accepted { processed } => {
                self.batch_sent += ids.len() as u64;
                self.batch_accepted = true;
                self.lone = (None, 0);
                if self.probe.take().is_some() || !self.held.is_empty() {
                    self.release_held();
                }
                Mark::Sent { ids, processed }
            }
            Answer::Rejected { message, .. }
                if self.canary
                    && !self.batch_accepted
                    && part.len() == self.batch_len
                    && part.len() < HOLD_MIN_BATCH =>
            {
                // Too small to probe with its own far end: ask the canary.
                self.canary_wait = Some((part, message));
                Mark::Nothing
            }
            Answer::Rejected { message, .. } if !part.is_empty() => self.refused(part, message),
            Answer::TooLarge { .. } if part.len() > 1 => {
                let mut a = part;
                let b = a.split_off(a.len() / 2);
                // Posted first half first.
                self.parts.push(b);
                self.parts.push(a);
                Mark::Nothing
            }
            Answer::Unconfirmed { status, error } => {
                // Only the part posted is ambiguous; the rest of the batch was
                // never posted and stays due. Posting on would only make more
                // ambiguous answers, so submission ends here.
                self.parts.clear();
                self.held.clear();
                self.held_msg = None;
                self.probe = None;
                self.batch_open = false;
                self.end = Some(End::Unconfirmed {
                    count: ids.len(),
                    error: error.clone(),
                });
                Mark::Unconfirmed { ids, status, error }
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
                Step::Canary => {
                    // The canary is id 0: a detection CI accepted before.
                    let answer = ci(&[0]);
                    posts.push(vec![0]);
                    marks.push(sub.canary_answer(Some(answer)));
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
        // A batch this small refused whole first asks the canary (0), which
        // CI accepts: the items are at fault and are bisected.
        assert_eq!(
            posts,
            vec![
                vec![1, 2, 3, 4],
                vec![0],
                vec![1, 2],
                vec![3, 4],
                vec![3],
                vec![4]
            ]
        );
        assert_eq!(
            marks,
            vec![
                Mark::Nothing,
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

    fn rejected(message: &str) -> Answer {
        Answer::Rejected {
            message: message.into(),
            error: "HTTP 400".into(),
        }
    }

    #[test]
    fn a_2xx_without_a_result_marks_only_its_part_and_ends() {
        let mut sub = Submitter::new(4, 1000, 0);
        let mut posts = 0;
        let mut marks = Vec::new();
        loop {
            match sub.step() {
                Step::Page { after_id, limit } => sub.page(
                    (1..=10)
                        .filter(|i| DetectionId::from(*i) > after_id)
                        .take(limit)
                        .map(det)
                        .collect(),
                ),
                Step::Post(_) => {
                    posts += 1;
                    let a = if posts == 1 {
                        ok()
                    } else {
                        Answer::Unconfirmed {
                            status: 200,
                            error: "no result".into(),
                        }
                    };
                    marks.push(sub.answer(a));
                }
                Step::Canary => panic!("no batch was refused"),
                Step::BatchDone { .. } => {}
                Step::Done(end) => {
                    assert_eq!(
                        end,
                        End::Unconfirmed {
                            count: 4,
                            error: "no result".into()
                        }
                    );
                    break;
                }
            }
        }
        assert_eq!(posts, 2, "one batch sent, one unconfirmed, then it ends");
        assert_eq!(marks[0], sent(&[1, 2, 3, 4]));
        let ids = |v: &[i64]| v.iter().map(|&i| DetectionId::from(i)).collect::<Vec<_>>();
        assert_eq!(
            marks[1],
            Mark::Unconfirmed {
                ids: ids(&[5, 6, 7, 8]),
                status: 200,
                error: "no result".into()
            }
        );
    }

    #[test]
    fn a_systemic_400_stops_without_marking_and_costs_few_posts() {
        // (due ids, batch size, bad ids, want end, want rejected ids, most posts)
        let all: Vec<i64> = (1..=64).collect();
        let every = |_: &[i64]| rejected("schema changed");
        let mut sub = Submitter::new(32, 1000, 0);
        let (posts, marks, _, end) = drive(&mut sub, &all, every);
        assert_eq!(end, End::Systemic("schema changed".into()));
        assert!(marks.iter().all(|m| *m == Mark::Nothing), "{marks:?}");
        assert!(posts.len() <= 12, "{} posts: {posts:?}", posts.len());

        // Tiny batches (a scheduled run's few new detections): the canary, a
        // detection CI accepted before, is refused alike: systemic after two
        // posts, nothing marked.
        for batch in [1, 3, 7] {
            let mut sub = Submitter::new(batch, 1000, 0);
            let (posts, marks, _, end) = drive(&mut sub, &all[..batch], every);
            assert_eq!(end, End::Systemic("schema changed".into()), "batch {batch}");
            assert_eq!(posts.len(), 2, "batch {batch}: {posts:?}");
            assert_eq!(posts[1], vec![0], "batch {batch}: the canary");
            assert!(marks.iter().all(|m| *m == Mark::Nothing), "{marks:?}");
        }
    }

    #[test]
    fn a_small_batch_of_bad_items_is_told_apart_by_the_canary() {
        // (batch, bad ids, want rejected)
        let cases: [(usize, &[i64], &[i64]); 3] = [
            (1, &[1], &[1]),
            (3, &[1, 2, 3], &[1, 2, 3]),
            (5, &[2, 4], &[2, 4]),
        ];
        for (batch, bad, want) in cases {
            let all: Vec<i64> = (1..=i64::try_from(batch).unwrap()).collect();
            let ci = |ids: &[i64]| {
                if ids.iter().any(|i| bad.contains(i)) {
                    rejected("bad value")
                } else {
                    ok()
                }
            };
            let mut sub = Submitter::new(batch, 1000, 0);
            let (posts, marks, _, end) = drive(&mut sub, &all, ci);
            assert_eq!(end, End::Drained, "batch {batch}");
            // The canary is asked once, right after the whole batch.
            assert_eq!(posts.iter().filter(|p| **p == [0]).count(), 1, "{posts:?}");
            let rejected: Vec<i64> = marks
                .iter()
                .filter_map(|m| match m {
                    Mark::Rejected { id, .. } => Some(id.get()),
                    _ => None,
                })
                .collect();
            assert_eq!(rejected, want, "batch {batch}: {posts:?}");
        }
    }

    #[test]
    fn without_a_canary_small_batches_fall_back_to_the_streak() {
        let all: Vec<i64> = (1..=64).collect();
        let mut sub = Submitter::new(1, 1000, 0);
        let (mut posts, mut marks) = (0, Vec::new());
        let end = loop {
            match sub.step() {
                Step::Page { after_id, limit } => sub.page(
                    all.iter()
                        .filter(|i| DetectionId::from(**i) > after_id)
                        .take(limit)
                        .map(|i| det(*i))
                        .collect(),
                ),
                Step::Post(_) => {
                    posts += 1;
                    marks.push(sub.answer(rejected("schema changed")));
                }
                // A fresh ledger: nothing was ever sent.
                Step::Canary => marks.push(sub.canary_answer(None)),
                Step::BatchDone { .. } => {}
                Step::Done(end) => break end,
            }
        };
        assert_eq!(end, End::Systemic("schema changed".into()));
        assert_eq!(posts, LONE_STREAK);
    }

    #[test]
    fn bad_items_are_not_taken_for_a_systemic_400() {
        // (bad ids among 1..=16, batch size): each bad one rejected, the rest sent.
        for (bad, batch) in [
            (vec![1, 2, 3], 16),
            (vec![1, 2, 3, 4, 5], 8),
            (vec![2, 9, 15], 16),
            (vec![16], 16),
            (vec![1, 2, 3, 4], 4),
            (vec![1, 2, 3, 4, 5, 6, 7, 8], 8),
        ] {
            let ci = |ids: &[i64]| {
                if ids.iter().any(|i| bad.contains(i)) {
                    rejected("invalid ip")
                } else {
                    ok()
                }
            };
            let rows: Vec<i64> = (1..=16).collect();
            let mut sub = Submitter::new(batch, 1000, 0);
            let (_, marks, _, end) = drive(&mut sub, &rows, ci);
            let mut got_bad: Vec<i64> = marks
                .iter()
                .filter_map(|m| match m {
                    Mark::Rejected { id, .. } => Some(id.get()),
                    _ => None,
                })
                .collect();
            got_bad.sort_unstable();
            let sent: usize = marks
                .iter()
                .map(|m| match m {
                    Mark::Sent { ids, .. } => ids.len(),
                    _ => 0,
                })
                .sum();
            if bad.len() == 8 && batch == 8 {
                // A whole batch rejected alike is systemic by definition.
                assert_eq!(end, End::Systemic("invalid ip".into()), "{bad:?}");
                continue;
            }
            assert_eq!(end, End::Drained, "{bad:?} batch {batch}");
            assert_eq!(got_bad, bad, "{bad:?} batch {batch}");
            assert_eq!(sent, 16 - bad.len(), "{bad:?} batch {batch}");
        }
    }

    #[test]
    fn sent_items_count_against_the_budget_per_batch() {
        let mut sub = Submitter::new(2, 3, 0);
        let (posts, _, _, end) = drive(&mut sub, &[1, 2, 3, 4, 5], |_| ok());
        assert_eq!(posts, vec![vec![1, 2], vec![3]]);
        assert_eq!(end, End::Budget);
    }
}
