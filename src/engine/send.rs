//! The submit driver: runs the [`Submitter`] state machine against the ledger
//! and Collective Insights. I/O only; every decision is in `submit` and `failure`.

use super::failure;
use super::report::{BudgetOut, DetectionCounts, Outcome};
use super::submit::{Answer, End, Mark, Step, Submitter};
use super::{deadline_passed, settle, Interrupt};
use crate::ci;
use crate::error::Fatal;
use crate::ledger::{Holding, Ledger, SubmissionRecord, Writer};
use crate::model::Detection;
use crate::model::DetectionId;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Pages through the detections to submit: `(ledger, after_id, limit)`, ids ascending.
pub(super) type Source<'a> =
    dyn Fn(&Ledger, DetectionId, usize) -> crate::ledger::Result<Vec<Detection>> + 'a;

/// Where a run's submissions go and how they are recorded.
pub(super) struct Sink<'a> {
    /// The ledger written: the file, or its in-memory copy in a dry run.
    pub ledger: &'a mut Writer,
    pub ci: &'a ci::Client,
    pub now: &'a dyn Fn() -> DateTime<Utc>,
    pub run_id: i64,
    /// Post with `debug: true` (a dry run): CI validates and stores nothing.
    pub debug: bool,
    pub batch: usize,
    pub budget: u64,
    pub interrupt: Option<&'a Interrupt>,
    pub deadline: Option<Instant>,
}

impl Sink<'_> {
    /// Whether the run must stop before the next batch (and why, into `out`).
    pub fn should_stop(&self, out: &mut Outcome) -> bool {
        if self.interrupt.is_some_and(Interrupt::is_raised) {
            out.interrupted();
            return true;
        }
        if deadline_passed(self.deadline) {
            out.partial("--max-runtime reached before everything was submitted");
            return true;
        }
        false
    }

    /// Today's budget as the summary shows it.
    pub fn budget(&self) -> Result<BudgetOut, Fatal> {
        let today = (self.now)().date_naive();
        Ok(BudgetOut {
            day: today.format("%Y-%m-%d").to_string(),
            used: self.ledger.budget_used(today)?,
            limit: self.budget,
        })
    }

    /// Submits what `source` yields, in batches within the daily budget, marking
    /// each answer; `tick` is told the counts after each batch.
    pub async fn submit(
        &mut self,
        source: &Source<'_>,
        d: &mut DetectionCounts,
        out: &mut Outcome,
        tick: &dyn Fn(&DetectionCounts),
    ) -> Result<(), Fatal> {
        self.settle(d, out).await?;
        let used = self.ledger.budget_used((self.now)().date_naive())?;
        let mut machine = Submitter::new(self.batch, self.budget, used);
        let rejected_before = d.rejected;
        loop {
            match machine.step() {
                Step::Page { after_id, limit } => {
                    let page = source(self.ledger, after_id, limit)?;
                    if !page.is_empty() && self.should_stop(out) {
                        return Ok(());
                    }
                    machine.page(page);
                }
                Step::Post(items) => {
                    let items = items.to_vec();
                    let answer = self.post(&items).await?;
                    let mark = machine.answer(answer);
                    self.mark(mark, d)?;
                }
                Step::Canary => {
                    let answer = match self.ledger.last_sent_detection()? {
                        Some(known) => Some(self.post_as(&[known], true).await?),
                        None => None,
                    };
                    tracing::info!(
                        answer = ?answer.as_ref().map(canary_word),
                        "CI refused a whole small batch: asked it to validate a detection it accepted before"
                    );
                    let mark = machine.canary_answer(answer);
                    self.mark(mark, d)?;
                }
                Step::BatchDone { failed } => {
                    tick(d);
                    if let Some(e) = failed {
                        out.partial(format!("some detections failed: {e}"));
                    }
                }
                Step::Done(end) => {
                    if d.rejected > rejected_before {
                        // Not silent: CI said no to these and will not be asked again.
                        out.partial_once(&format!(
                            "{} detections rejected by Collective Insights (HTTP 400); see lrci ledger indicators --state rejected",
                            d.rejected - rejected_before
                        ));
                    }
                    let end = match end {
                        End::Unavailable(_) if deadline_passed(self.deadline) => {
                            out.partial_once(
                                "--max-runtime reached before everything was submitted",
                            );
                            End::Drained
                        }
                        other => other,
                    };
                    ended(end, self.budget, out);
                    tick(d);
                    return Ok(());
                }
            }
        }
    }

    /// Looks the `unconfirmed` detections up in CI's search before submitting:
    /// found ones become `sent`, ones absent for long enough `pending` (posted
    /// again by this run), younger ones wait. A search that fails leaves them
    /// as they are and says so; the run goes on with the rest.
    async fn settle(&mut self, d: &mut DetectionCounts, out: &mut Outcome) -> Result<(), Fatal> {
        let rows = self.ledger.unconfirmed(settle::SETTLE_LIMIT)?;
        let Some((from, to)) = settle::window(&rows) else {
            return Ok(());
        };
        let held = match self.ci.search_window(from, to, ci::MAX_PAGE).await {
            Ok(h) => h,
            Err(e) => {
                let e = failure::ci(e)?;
                d.settled.waiting += rows.len() as u64;
                out.partial(format!(
                    "{} unconfirmed detections could not be looked up in Collective Insights' search: {}; they stay unconfirmed",
                    rows.len(),
                    e.error
                ));
                return Ok(());
            }
        };
        let holdings: Vec<Holding> = held.iter().filter_map(settle::holding).collect();
        let now = (self.now)();
        let s = settle::decide(&rows, &holdings, now);
        self.ledger.confirm_sent(&s.found, now)?;
        let reason = format!(
            "unconfirmed since a 2xx without a result, not found in Collective Insights' search at {}: posted again",
            crate::ledger::ts(now)
        );
        self.ledger.requeue(&s.absent, &reason, now)?;
        d.settled.found += s.found.len() as u64;
        d.settled.absent += s.absent.len() as u64;
        d.settled.waiting += s.waiting as u64;
        tracing::info!(
            found = s.found.len(),
            absent = s.absent.len(),
            waiting = s.waiting,
            "unconfirmed detections looked up in Collective Insights' search"
        );
        if s.waiting > 0 {
            out.partial(format!(
                "{} detections unconfirmed and not yet in Collective Insights' search; a later run checks again (after {} minutes unconfirmed they are posted again)",
                s.waiting,
                settle::SETTLE_AGE.num_minutes()
            ));
        }
        Ok(())
    }

    /// One POST; auth and TLS failures end the run here.
    async fn post(&self, items: &[Detection]) -> Result<Answer, Fatal> {
        self.post_as(items, self.debug).await
    }

    /// One POST with `debug` as given (`true`: CI validates and stores nothing).
    async fn post_as(&self, items: &[Detection], debug: bool) -> Result<Answer, Fatal> {
        let e = match self.ci.submit(items, debug).await {
            Ok(o) => {
                let processed = o
                    .processed
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok());
                return Ok(Answer::Accepted { processed });
            }
            Err(e) => failure::ci(e)?,
        };
        let error = e.error.to_string();
        Ok(match e.error {
            ci::Error::BadResponse { status, .. } if (200..300).contains(&status) => {
                Answer::Unconfirmed { status, error }
            }
            ci::Error::Rejected { message, .. } => Answer::Rejected { message, error },
            ci::Error::TooLarge { .. } => Answer::TooLarge { error },
            other => Answer::Failed {
                transient: e.transient,
                status: other.status(),
                error,
            },
        })
    }

    /// Records what the machine said to mark, and counts it.
    fn mark(&mut self, mark: Mark, d: &mut DetectionCounts) -> Result<(), Fatal> {
        let record = |status: Option<u16>, processed: Option<String>| SubmissionRecord {
            run_id: Some(self.run_id),
            at: (self.now)(),
            debug: self.debug,
            http_status: status,
            processed,
        };
        match mark {
            Mark::Nothing => tracing::info!("CI refused the batch: splitting it"),
            Mark::Sent { ids, processed } => {
                self.ledger.mark_sent(&ids, &record(Some(200), processed))?;
                tracing::debug!(items = ids.len(), debug = self.debug, "batch submitted");
                d.submitted += ids.len() as u64;
            }
            Mark::Rejected { id, reason } => {
                tracing::warn!(detection = %id, reason = %reason, "Collective Insights rejected a detection");
                self.ledger
                    .mark_rejected(id, &record(Some(400), None), &reason)?;
                d.rejected += 1;
            }
            Mark::Failed { ids, status, error } => {
                self.ledger
                    .mark_failed(&ids, &record(status, None), &error)?;
                d.failed += ids.len() as u64;
            }
            Mark::Unconfirmed { ids, status, error } => {
                tracing::warn!(items = ids.len(), status, error = %error, "Collective Insights answered without a recognisable result: detections unconfirmed");
                self.ledger
                    .mark_unconfirmed(&ids, &record(Some(status), None), &error)?;
                d.unconfirmed += ids.len() as u64;
            }
        }
        Ok(())
    }
}

/// What the end of submission means for the run.
fn ended(end: End, budget: u64, out: &mut Outcome) {
    match end {
        End::Drained => {}
        End::Budget => out.partial(format!(
            "daily budget of {budget} detections reached; the rest waits for the next UTC day"
        )),
        End::Unavailable(e) => out.unavailable(format!("Collective Insights unavailable: {e}")),
        End::Unconfirmed { count, error } => out.partial(format!(
            "{count} detections unconfirmed: {error}; they are not posted again blindly: the next run looks them up in Collective Insights' search (or run `lrci reconcile`)"
        )),
        End::Systemic(message) => out.partial(format!(
            "Collective Insights rejects every detection with the same error (HTTP 400): {message}; the run stopped, what was not sent stays due for the next run"
        )),
    }
}

/// A word for the log about the canary's answer.
fn canary_word(a: &Answer) -> &'static str {
    match a {
        Answer::Accepted { .. } => "accepted",
        Answer::Rejected { .. } => "refused",
        _ => "failed",
    }
}
