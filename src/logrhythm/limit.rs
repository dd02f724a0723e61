//! How many LogRhythm requests may be in flight at once (`concurrency`): every
//! attempt of every LogRhythm request (list pages, probes, details, events)
//! passes the client's [`Limiter`], which admits at most its current limit.
//!
//! With `concurrency = N` the limit is N, always. With `concurrency = "auto"`
//! the pure [`Control`] adapts it, never above `concurrency_max` and never
//! below 1. The rule is TCP Vegas's, in the form of Netflix's concurrency-limits
//! `VegasLimit`, with TCP's slow start and AIMD's answer to explicit overload:
//!
//! - It starts at [`INITIAL_LIMIT`] (1): LogRhythm as unloaded as this agent
//!   can leave it, which is where the base latency is learnt.
//! - Samples are grouped in windows of `max(limit, MIN_WINDOW)` finished
//!   per-alarm attempts (details, events: about one round trip of every
//!   admitted request), admitted under the current limit. A window's latency
//!   is the mean of its answered attempts; the **base** latency is the lowest
//!   window mean seen in this run (LogRhythm unloaded). List pages (and
//!   probes) pass the limiter and their errors count, but their latency is no
//!   sample: a page of 100–1000 rows takes longer than a per-alarm call, and
//!   mixing the two would make the listing at the start of a run look like
//!   LogRhythm unloaded.
//! - At the end of a window, `queue = limit × (1 − base / latency)` estimates
//!   how many of the admitted requests wait in LogRhythm rather than being
//!   served (for a server that serves N at a time and queues the rest it is
//!   exactly `limit − N`). With `alpha = max(1, limit / 20)`:
//!   - `queue < alpha` (flat: latency within 5 % of the base from a limit of
//!     20 on, within one request's worth below) raises the limit by one, or
//!     doubles it while `queue < alpha / 2` and nothing was lowered yet (slow
//!     start); not when fewer than half of the admitted requests were in use
//!     (the run, not LogRhythm, was the bottleneck);
//!   - `queue > 2 × alpha` (latency 11 % above the base from a limit of 20 on)
//!     in two windows running lowers it to what LogRhythm serves (`limit ×
//!     base / latency`, with the lower latency of the two), at most halving
//!     it. One slow window alone is not taken for a queue: a pause of this
//!     agent (a ledger commit, a busy CPU) delays every answer in flight at
//!     once and looks like LogRhythm's latency for that window only;
//!   - in between it holds. Against a server that serves N at a time it
//!     settles from N to N + N/20 + 2.
//! - An attempt answered 429 or 5xx, or timed out, halves the limit at once
//!   (multiplicative decrease). Attempts that were already running under the
//!   old limit are not counted again: each change of the limit starts a new
//!   epoch, and only attempts admitted since the last decrease can lower the
//!   limit (one decrease per round trip, as in TCP).
//!
//! Time is only measured here (the latency of an attempt); the decisions are
//! pure functions of the samples and are table-tested below. Changes of the
//! limit are logged at debug; the run summary shows the final and peak limit.
//!
//! A run is short (minutes), so the base latency is never raised within a run:
//! a LogRhythm that stays slower for good makes auto careful for the rest of
//! that run, and the next run measures again.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::http::{Attempt, Gate};
use crate::model::Concurrency;

/// Where `auto` starts: one request at a time, LogRhythm's unloaded latency.
/// Slow start reaches 8 (the fixed default of earlier versions) after 7 round
/// trips and 32 after 9.
pub const INITIAL_LIMIT: u32 = 1;
/// Fewest samples in a window, so a limit of 1 or 2 still averages a few
/// latencies before deciding.
pub const MIN_WINDOW: u32 = 4;
/// Share of the limit that may queue in LogRhythm and still count as flat.
const FLAT_SHARE: f64 = 0.05;
/// Factor of the limit after a 429, a 5xx or a timeout (TCP's halving).
const BACKOFF: f64 = 0.5;

/// One finished attempt, as [`Control`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// From admission to the end of the attempt (answer read, or failure).
    pub latency: Duration,
    pub attempt: Attempt,
    /// Attempts in flight when it was admitted, itself included.
    pub in_flight: u32,
    /// [`Control::epoch`] when it was admitted.
    pub epoch: u64,
    /// A per-alarm call whose latency is a sample (not a list page).
    pub measured: bool,
}

/// Why the limit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Latency stayed flat while the admitted requests were in use.
    Flat,
    /// Latency grew: requests queue in LogRhythm.
    Latency,
    /// LogRhythm answered 429 or 5xx, or did not answer in time.
    Overload,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Flat => "latency flat",
            Reason::Latency => "latency grew",
            Reason::Overload => "429, 5xx or timeout",
        }
    }
}

/// A decision of [`Control::on_sample`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub from: u32,
    pub to: u32,
    pub reason: Reason,
}

/// The samples of the current window.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    samples: u32,
    answered: u32,
    latency_sum: f64,
    /// Most attempts in flight at any admission in the window.
    busiest: u32,
}

/// The pure `auto` controller: samples in, limit out (no clock, no I/O).
#[derive(Debug, Clone)]
pub struct Control {
    limit: f64,
    max: u32,
    /// Changes of the limit so far.
    epoch: u64,
    /// The epoch the last decrease started.
    last_cut: u64,
    /// Lowest window mean latency seen, in seconds.
    base: Option<f64>,
    /// Doubling while flat, until the first decrease.
    slow_start: bool,
    /// The mean latency of the last window when it showed a queue, waiting
    /// for the next window to confirm it.
    grew: Option<f64>,
    window: Window,
}

impl Control {
    /// Starts at `initial` (clamped to `1..=max`), never above `max` (at least 1).
    pub fn new(initial: u32, max: u32) -> Control {
        let max = max.max(1);
        Control {
            limit: f64::from(initial.clamp(1, max)),
            max,
            epoch: 0,
            last_cut: 0,
            base: None,
            slow_start: true,
            grew: None,
            window: Window::default(),
        }
    }

    /// The current limit, `1..=max`.
    pub fn limit(&self) -> u32 {
        // The float is kept within 1..=max, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let l = self.limit.floor() as u32;
        l.clamp(1, self.max)
    }

    /// Counts the changes of the limit so far: a sample admitted before the
    /// last change ran under another limit; one admitted before the last
    /// decrease cannot lower the limit again.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The lowest window mean latency seen (LogRhythm unloaded).
    pub fn base(&self) -> Option<Duration> {
        self.base.map(Duration::from_secs_f64)
    }

    fn set(&mut self, to: f64, reason: Reason) -> Decision {
        let from = self.limit();
        self.limit = to.clamp(1.0, f64::from(self.max));
        self.epoch += 1;
        if reason != Reason::Flat {
            self.last_cut = self.epoch;
            self.slow_start = false;
        }
        self.window = Window::default();
        Decision {
            from,
            to: self.limit(),
            reason,
        }
    }

    /// Takes one finished attempt into account; returns the decision it
    /// completed, if any (a decision may leave the limit where it was: a
    /// backoff at 1, an increase at the maximum).
    pub fn on_sample(&mut self, s: Sample) -> Option<Decision> {
        if s.attempt == Attempt::Overloaded {
            if s.epoch < self.last_cut {
                return None;
            }
            return Some(self.set(self.limit * BACKOFF, Reason::Overload));
        }
        if !s.measured || s.epoch != self.epoch {
            return None;
        }
        let w = &mut self.window;
        w.samples += 1;
        w.busiest = w.busiest.max(s.in_flight);
        if s.attempt == Attempt::Answered {
            w.answered += 1;
            w.latency_sum += s.latency.as_secs_f64();
        }
        if w.samples < self.limit().max(MIN_WINDOW) {
            return None;
        }
        let w = std::mem::take(&mut self.window);
        if w.answered == 0 {
            return None;
        }
        let latency = (w.latency_sum / f64::from(w.answered)).max(f64::MIN_POSITIVE);
        let base = self.base.map_or(latency, |b| b.min(latency));
        self.base = Some(base);
        let limit = self.limit;
        let queue = |latency: f64| limit * (1.0 - base / latency);
        let alpha = (FLAT_SHARE * limit).max(1.0);
        if queue(latency) > 2.0 * alpha {
            let before = self.grew.replace(latency)?;
            self.grew = None;
            let latency = before.min(latency);
            if queue(latency) <= 2.0 * alpha {
                return None;
            }
            let served = limit * base / latency;
            return Some(self.set(served.max(limit * BACKOFF), Reason::Latency));
        }
        self.grew = None;
        let queue = queue(latency);
        if queue < alpha && w.busiest * 2 >= self.limit() {
            let up = if self.slow_start && queue < alpha / 2.0 {
                limit
            } else {
                1.0
            };
            Some(self.set(limit + up, Reason::Flat))
        } else {
            None
        }
    }
}

/// What the run summary shows of the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// `fixed` or `auto`.
    pub mode: &'static str,
    /// The ceiling: `concurrency` when fixed, `concurrency_max` with auto.
    pub max: u32,
    /// The limit at the end of the run.
    pub final_limit: u32,
    /// The highest limit during the run.
    pub peak: u32,
    /// Times the limit was halved for a 429, a 5xx or a timeout.
    pub backoffs: u64,
    /// Most LogRhythm requests this client had in flight at once.
    pub in_flight_peak: u32,
}

#[derive(Debug)]
struct State {
    /// `None` when fixed.
    control: Option<Control>,
    fixed: u32,
    in_flight: u32,
    report: Report,
}

impl State {
    fn limit(&self) -> u32 {
        self.control.as_ref().map_or(self.fixed, Control::limit)
    }

    fn epoch(&self) -> u64 {
        self.control.as_ref().map_or(0, Control::epoch)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Woken when a place frees up or the limit rises.
    freed: Notify,
}

/// Admits LogRhythm attempts up to the current limit; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Limiter(Arc<Shared>);

impl Limiter {
    /// A limiter for `concurrency`; `auto` starts at [`INITIAL_LIMIT`].
    pub fn new(concurrency: Concurrency) -> Limiter {
        let (control, fixed, mode) = match concurrency {
            Concurrency::Fixed(n) => (None, n.max(1), "fixed"),
            Concurrency::Auto { max } => {
                let c = Control::new(INITIAL_LIMIT, max);
                let start = c.limit();
                (Some(c), start, "auto")
            }
        };
        let max = concurrency.ceiling();
        let start = control.as_ref().map_or(fixed, Control::limit);
        Limiter(Arc::new(Shared {
            state: Mutex::new(State {
                control,
                fixed,
                in_flight: 0,
                report: Report {
                    mode,
                    max,
                    final_limit: start,
                    peak: start,
                    backoffs: 0,
                    in_flight_peak: 0,
                },
            }),
            freed: Notify::new(),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.state().limit()
    }

    /// The limit so far, for the run summary.
    pub fn report(&self) -> Report {
        self.state().report
    }

    /// The gate of one request: `measured` when its latency is a sample
    /// (per-alarm calls), not for list pages and probes.
    pub fn gate(&self, measured: bool) -> Admit<'_> {
        Admit {
            limiter: self,
            measured,
        }
    }

    fn admit(&self, measured: bool) -> Option<Pass> {
        let mut st = self.state();
        if st.in_flight >= st.limit() {
            return None;
        }
        st.in_flight += 1;
        st.report.in_flight_peak = st.report.in_flight_peak.max(st.in_flight);
        Some(Pass {
            limiter: self.clone(),
            admitted: Instant::now(),
            in_flight: st.in_flight,
            epoch: st.epoch(),
            measured,
            done: false,
        })
    }

    fn release(&self, sample: Option<Sample>) {
        let mut st = self.state();
        st.in_flight = st.in_flight.saturating_sub(1);
        let decision = match (sample, st.control.as_mut()) {
            (Some(s), Some(c)) => c.on_sample(s).map(|d| (d, c.base())),
            _ => None,
        };
        if let Some((d, base)) = decision {
            let r = &mut st.report;
            r.final_limit = d.to;
            r.peak = r.peak.max(d.to);
            if d.reason == Reason::Overload {
                r.backoffs += 1;
            }
            if d.from != d.to {
                tracing::debug!(
                    from = d.from,
                    to = d.to,
                    reason = d.reason.as_str(),
                    base_ms = base.map(|b| b.as_secs_f64() * 1000.0),
                    in_flight = st.in_flight,
                    "LogRhythm concurrency limit changed"
                );
            }
        }
        drop(st);
        self.0.freed.notify_waiters();
    }
}

/// One admitted attempt; dropping it unreported (the request abandoned)
/// frees its place without a sample.
#[derive(Debug)]
pub struct Pass {
    limiter: Limiter,
    admitted: Instant,
    in_flight: u32,
    epoch: u64,
    measured: bool,
    done: bool,
}

impl Drop for Pass {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.release(None);
        }
    }
}

/// [`Limiter::gate`]: admits the attempts of one request.
#[derive(Debug, Clone, Copy)]
pub struct Admit<'a> {
    limiter: &'a Limiter,
    measured: bool,
}

impl Gate for Admit<'_> {
    type Pass = Pass;

    async fn enter(&self) -> Pass {
        let shared = &self.limiter.0;
        loop {
            let freed = shared.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a release in between is not missed.
            freed.as_mut().enable();
            if let Some(pass) = self.limiter.admit(self.measured) {
                return pass;
            }
            freed.await;
        }
    }

    fn leave(&self, mut pass: Pass, attempt: Attempt) {
        pass.done = true;
        self.limiter.release(Some(Sample {
            latency: pass.admitted.elapsed(),
            attempt,
            in_flight: pass.in_flight,
            epoch: pass.epoch,
            measured: pass.measured,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// `n` answered samples of `latency` with `in_flight` busy, in the current epoch.
    fn feed(c: &mut Control, n: u32, latency: Duration, in_flight: u32) -> Vec<Decision> {
        (0..n)
            .filter_map(|_| {
                let epoch = c.epoch();
                c.on_sample(Sample {
                    latency,
                    attempt: Attempt::Answered,
                    in_flight,
                    epoch,
                    measured: true,
                })
            })
            .collect()
    }

    /// A server that serves `capacity` at a time, `service` each, and queues
    /// the rest: with `limit` admitted (all busy) latency is service × limit / capacity.
    fn run_against(c: &mut Control, capacity: u32, service: Duration, windows: u32) {
        for _ in 0..windows {
            let l = c.limit();
            let latency = service * l.max(capacity) / capacity;
            feed(c, l.max(MIN_WINDOW), latency, l);
        }
    }

    #[test]
    fn decisions_follow_latency_and_errors() {
        // (what, start limit, max, in slow start, windows of (latency ms, in
        // flight), overloads at the end, limit after)
        type Row = (
            &'static str,
            u32,
            u32,
            bool,
            &'static [(u64, u32)],
            u32,
            u32,
        );
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("slow start: doubles per flat window", 1, 32, true, &[(20, 1), (20, 2), (20, 4)], 0, 8),
            ("slow start stops at the maximum", 8, 12, true, &[(20, 8), (20, 12)], 0, 12),
            ("slow start ends at the first queue, then one up", 8, 32, true, &[(20, 8), (40, 16), (40, 16), (20, 8)], 0, 9),
            ("slow start ends at the first error", 8, 32, true, &[(20, 8)], 1, 8),
            ("slow start, latency 4 % up: one up only", 8, 32, true, &[(20, 8), (21, 16)], 0, 17),
            ("... and doubling again when flat", 8, 64, true, &[(20, 8), (21, 16), (20, 17)], 0, 34),
            ("flat latency, busy: one up per window", 8, 32, false, &[(20, 8), (20, 9), (20, 10)], 0, 11),
            ("flat latency, never above the maximum", 8, 9, false, &[(20, 8), (20, 9), (20, 9)], 0, 9),
            ("flat latency but the run is the bottleneck: holds", 8, 32, false, &[(20, 8), (20, 3), (20, 3)], 0, 9),
            ("latency within 5 %: still flat", 10, 32, false, &[(20, 10), (21, 11)], 0, 12),
            ("latency grew 15 %: holds", 10, 32, false, &[(20, 10), (23, 11)], 0, 11),
            ("latency grew 40 % in two windows: down to what is served", 16, 32, false, &[(20, 16), (28, 17), (28, 17)], 0, 12),
            ("the lower latency of the two counts", 16, 32, false, &[(20, 16), (40, 17), (28, 17)], 0, 12),
            ("one slow window is a pause, not a queue", 16, 32, false, &[(20, 16), (40, 17), (20, 17)], 0, 18),
            ("a slow window, then one 10 % slower: holds", 16, 32, false, &[(20, 16), (40, 17), (22, 17)], 0, 17),
            ("a slow window, then one 15 % slower: down", 16, 32, false, &[(20, 16), (40, 17), (23, 17)], 0, 14),
            ("latency ×10: at most halved", 16, 32, false, &[(20, 16), (200, 16), (200, 16)], 0, 8),
            ("one 429: halved", 16, 32, false, &[(20, 16)], 1, 8),
            ("429s of requests admitted before the cut: one halving", 16, 32, false, &[], 5, 8),
            ("errors never go below 1", 2, 32, false, &[], 1, 1),
            ("start clamped to the maximum", 8, 4, false, &[], 0, 4),
            ("a maximum of 0 is taken as 1", 8, 0, true, &[(20, 1)], 0, 1),
        ];
        for &(what, start, max, slow_start, windows, overloads, want) in rows {
            let mut c = Control::new(start, max);
            c.slow_start = slow_start;
            for &(ms, in_flight) in windows {
                let n = c.limit().max(MIN_WINDOW);
                feed(&mut c, n, MS(ms), in_flight);
            }
            // Every overload was admitted in the same epoch (before the first cut).
            let epoch = c.epoch();
            for _ in 0..overloads {
                c.on_sample(Sample {
                    latency: MS(5),
                    attempt: Attempt::Overloaded,
                    in_flight: c.limit(),
                    epoch,
                    measured: true,
                });
            }
            assert_eq!(c.limit(), want, "{what}");
        }
    }

    #[test]
    fn a_window_without_answers_decides_nothing() {
        let mut c = Control::new(8, 32);
        for _ in 0..MIN_WINDOW {
            let epoch = c.epoch();
            assert_eq!(
                c.on_sample(Sample {
                    latency: MS(1),
                    attempt: Attempt::Other,
                    in_flight: 8,
                    epoch,
                    measured: true,
                }),
                None
            );
        }
        assert_eq!(c.limit(), 8);
    }

    #[test]
    fn settles_just_above_the_capacity_of_a_queueing_server() {
        for (capacity, max) in [(4, 32), (16, 32), (24, 32), (40, 64), (100, 32)] {
            let mut c = Control::new(INITIAL_LIMIT, max);
            run_against(&mut c, capacity, MS(20), 300);
            let l = c.limit();
            let want_high = max.min(capacity + capacity / 20 + 2);
            let want_low = max.min(capacity);
            assert!(
                (want_low..=want_high).contains(&l),
                "capacity {capacity}, max {max}: limit {l} not in {want_low}..={want_high}"
            );
        }
    }

    #[test]
    fn recovers_after_overload_and_backs_off_again() {
        let mut c = Control::new(INITIAL_LIMIT, 32);
        run_against(&mut c, 16, MS(20), 100);
        let settled = c.limit();
        assert!(settled >= 16, "{settled}");
        let epoch = c.epoch();
        let d = c.on_sample(Sample {
            latency: MS(2),
            attempt: Attempt::Overloaded,
            in_flight: settled,
            epoch,
            measured: true,
        });
        assert_eq!(
            d.map(|d| (d.to, d.reason)),
            Some((settled / 2, Reason::Overload))
        );
        run_against(&mut c, 16, MS(20), 100);
        assert_eq!(c.limit(), settled, "climbs back to the same place");
    }

    #[test]
    fn stale_samples_do_not_count_after_a_cut() {
        let mut c = Control::new(16, 32);
        let old = c.epoch();
        let cut = |c: &mut Control, epoch| {
            c.on_sample(Sample {
                latency: MS(2),
                attempt: Attempt::Overloaded,
                in_flight: 16,
                epoch,
                measured: true,
            })
        };
        assert!(cut(&mut c, old).is_some());
        assert_eq!(cut(&mut c, old), None, "admitted under the old limit");
        let now = c.epoch();
        assert_eq!(cut(&mut c, now).map(|d| d.to), Some(4));
    }

    /// A report from its fields, in the order of [`Report`].
    fn report(
        mode: &'static str,
        max: u32,
        final_limit: u32,
        peak: u32,
        backoffs: u64,
        in_flight_peak: u32,
    ) -> Report {
        Report {
            mode,
            max,
            final_limit,
            peak,
            backoffs,
            in_flight_peak,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_limiter_admits_up_to_the_limit_and_reports() {
        let l = Limiter::new(Concurrency::Fixed(2));
        let a = l.gate(true).enter().await;
        let b = l.gate(true).enter().await;
        let third = tokio::time::timeout(MS(20), l.gate(true).enter()).await;
        assert!(third.is_err(), "a third attempt waits");
        drop(a);
        let c = tokio::time::timeout(MS(1000), l.gate(true).enter()).await;
        assert!(c.is_ok(), "a freed place admits the next");
        l.gate(true).leave(b, Attempt::Overloaded);
        assert_eq!(
            l.report(),
            report("fixed", 2, 2, 2, 0, 2),
            "fixed never changes"
        );

        let auto = Limiter::new(Concurrency::Auto { max: 32 });
        assert_eq!(auto.limit(), INITIAL_LIMIT);
        for measured in [false, true, true, true, true] {
            let p = auto.gate(measured).enter().await;
            auto.gate(measured).leave(p, Attempt::Answered);
        }
        assert_eq!(
            auto.limit(),
            2,
            "one flat window of per-alarm calls doubles it (the list page is no sample)"
        );
        let p = auto.gate(false).enter().await;
        auto.gate(false).leave(p, Attempt::Overloaded);
        assert_eq!(auto.report(), report("auto", 32, 1, 2, 1, 1));
    }
}
