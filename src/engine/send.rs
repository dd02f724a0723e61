//! The submit driver: runs the [`Submitter`] state machine against the ledger
//! and Collective Insights. I/O only; every decision is in `submit` and `failure`.

use super::failure;
use super::report::{BudgetOut, DetectionCounts, Outcome};
use super::submit::{Answer, End, Mark, Step, Submitter};
use super::{deadline_passed, Interrupt};
use crate::ci;
use crate::error::Fatal;
use crate::ledger::{Ledger, SubmissionRecord, Writer};
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

    /// One POST; auth and TLS failures end the run here.
    async fn post(&self, items: &[Detection]) -> Result<Answer, Fatal> {
        let e = match self.ci.submit(items, self.debug).await {
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
        End::Systemic(message) => out.partial(format!(
            "Collective Insights rejects every detection with the same error (HTTP 400): {message}; the run stopped, what was not sent stays due for the next run"
        )),
    }
}
