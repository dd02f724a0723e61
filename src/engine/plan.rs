//! The plan: which hourly slices of a window to fetch, from the coverage map and
//! the clock. Hour slicing is [`crate::model::Slice`]'s (the one definition the
//! ledger's audits use too). Pure: no I/O, no clock reads.

use crate::ledger::Coverage;
use chrono::{DateTime, Duration as Span, Utc};

/// A slice is one UTC hour.
pub fn slice_len() -> Span {
    crate::model::Slice::LEN
}

/// Rounds down to the UTC hour.
pub fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    crate::model::Slice::floor(t)
}

/// The window of a sync: `[now - lookback, now - settle)`, its start rounded down
/// to the UTC hour so every slice is listed from its beginning.
pub fn window(now: DateTime<Utc>, lookback: Span, settle: Span) -> (DateTime<Utc>, DateTime<Utc>) {
    let to = now - settle;
    let from = floor_hour(now - lookback);
    (from, to.max(from))
}

/// The slices of a window, each `[start, end)` clipped to it.
pub fn slices(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut start = floor_hour(from);
    while start < to {
        let end = start + slice_len();
        out.push((start.max(from), end.min(to)));
        start = end;
    }
    out
}

/// Where to list a slice from: `None` when the coverage map says it is complete
/// and final (and `--refetch` was not given), else the first instant not yet
/// covered, still provisional, or saturated (an instant where alarms may be
/// missing is listed again by every run). Listed time after `provisional_from` (now −
/// `relist_horizon`) is provisional: an alarm may become listable some time
/// after its `dateInserted`, so that time is listed again by every run (only
/// alarm ids not yet seen are then fetched).
pub fn fetch_from(
    slice: (DateTime<Utc>, DateTime<Utc>),
    coverage: Option<&Coverage>,
    refetch: bool,
    provisional_from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let (from, to) = slice;
    match coverage {
        Some(c) if !refetch => {
            // A saturated instant is listed again by every run until the
            // listing gets through it (DESIGN.md section 1, item 3).
            let start = c
                .saturated_at
                .iter()
                .fold(c.covered_until.min(provisional_from), |s, t| s.min(*t))
                .max(from);
            (start < to).then_some(start)
        }
        _ => Some(from),
    }
}

/// How far a listed slice counts as covered: its end, but never past "now" on
/// LogRhythm's clock (`now` + `skew`). When the server's clock is behind this
/// machine's (this clock is fast, say a VM booted before NTP fixed it), time the
/// server has not reached is never marked covered. `None` when the server has
/// not reached the slice at all: nothing is recorded and later runs list it.
/// A skew within [`SKEW_RESOLUTION`] is the `Date` header's whole seconds, not a
/// difference of clocks, and is ignored.
pub fn covered_until(
    slice: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    skew: Option<Span>,
) -> Option<DateTime<Utc>> {
    let limit = match skew {
        Some(s) if s < -SKEW_RESOLUTION => slice.1.min(now + s),
        _ => slice.1,
    };
    (limit > slice.0).then_some(limit)
}

/// The `Date` header counts whole seconds: a skew this small is not one.
pub const SKEW_RESOLUTION: Span = Span::seconds(2);

/// Beyond this, the difference between the clocks is warned about.
pub const SKEW_WARN: Span = Span::seconds(30);

/// The warning for a difference between the clocks beyond [`SKEW_WARN`]
/// (`skew` is LogRhythm's clock minus this machine's), for the log and doctor.
pub fn skew_warning(skew: Span) -> Option<String> {
    if skew.abs() <= SKEW_WARN {
        return None;
    }
    let secs = skew.num_milliseconds() as f64 / 1000.0;
    let (how, by) = if secs < 0.0 {
        ("ahead of", -secs)
    } else {
        ("behind", secs)
    };
    Some(format!(
        "this machine's clock is {by:.0} s {how} LogRhythm's (its Date header): coverage follows LogRhythm's clock, but fix this machine's time (NTP)"
    ))
}

/// What to do with one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Covered and nothing to retry.
    Skip,
    /// The run's `--max-runtime` is spent: count the slice failed.
    OutOfTime,
    /// Covered, but alarms left in error are due again: fetch only those.
    RetryOnly,
    /// List the slice's alarms from this instant (and retry the due ones).
    List(DateTime<Utc>),
}

/// The decision for one slice, and whether it counts as already covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub covered: bool,
    pub action: Action,
}

/// Decides one slice from where it should be listed from ([`fetch_from`]), the
/// number of alarms due for a retry in it and whether the deadline has passed.
pub fn step(fetch_from: Option<DateTime<Utc>>, retries_due: usize, out_of_time: bool) -> Step {
    let covered = fetch_from.is_none();
    let action = match fetch_from {
        None if retries_due == 0 => Action::Skip,
        _ if out_of_time => Action::OutOfTime,
        None => Action::RetryOnly,
        Some(t) => Action::List(t),
    };
    Step { covered, action }
}

/// Slices a run lists or fetches ahead of the one whose turn it is to commit:
/// enough for listing (pages one after another) to stay ahead of fetching at
/// `concurrency` requests in flight, few enough that the alarm rows and records
/// held stay those of a few slices.
pub fn pipeline_depth(concurrency: usize) -> usize {
    (concurrency / 4).clamp(4, 16)
}

/// What one slice in the pipeline asks of a free request slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    /// Nothing now (being listed, all its alarms started, or settled).
    None,
    /// Its listing has not started.
    List,
    /// Alarms wait to be fetched.
    Fetch,
}

/// Which slice (by position, earliest first) a free request slot serves: a
/// listing first, since its pages go one after another and everything of its
/// slice waits for them; else the earliest slice's alarms, so slices are
/// ready for their commit in order.
pub fn pick(demands: impl IntoIterator<Item = Demand>) -> Option<usize> {
    let mut fetch = None;
    for (i, d) in demands.into_iter().enumerate() {
        match d {
            Demand::List => return Some(i),
            Demand::Fetch if fetch.is_none() => fetch = Some(i),
            _ => {}
        }
    }
    fetch
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn window_starts_on_the_hour_and_ends_settle_before_now() {
        let (f, to) = window(t(27, 20, 53), Span::days(1), Span::minutes(2));
        assert_eq!(f, t(26, 20, 0));
        assert_eq!(to, t(27, 20, 51));
        // A settle longer than the lookback gives an empty window, never a reversed one.
        let (f, to) = window(t(27, 20, 53), Span::hours(1), Span::hours(3));
        assert_eq!((f, to), (t(27, 19, 0), t(27, 19, 0)));
    }

    #[test]
    fn slices_are_utc_hours_clipped_to_the_window() {
        for (from, to, want) in [
            (
                t(27, 10, 0),
                t(27, 12, 30),
                vec![
                    (t(27, 10, 0), t(27, 11, 0)),
                    (t(27, 11, 0), t(27, 12, 0)),
                    (t(27, 12, 0), t(27, 12, 30)),
                ],
            ),
            (t(27, 10, 0), t(27, 10, 0), vec![]),
            (
                t(27, 10, 15),
                t(27, 10, 45),
                vec![(t(27, 10, 15), t(27, 10, 45))],
            ),
            (
                t(27, 23, 30),
                t(28, 0, 30),
                vec![(t(27, 23, 30), t(28, 0, 0)), (t(28, 0, 0), t(28, 0, 30))],
            ),
        ] {
            assert_eq!(slices(from, to), want, "{from} .. {to}");
        }
    }

    #[test]
    fn where_a_slice_is_listed_from() {
        let slice = (t(27, 10, 0), t(27, 11, 0));
        let cov = |until| Coverage {
            covered_until: until,
            saturated_at: vec![],
        };
        let full = cov(t(27, 11, 0));
        let half = cov(t(27, 10, 30));
        let before = cov(t(27, 9, 0));
        let saturated = Coverage {
            covered_until: t(27, 11, 0),
            saturated_at: vec![t(27, 10, 45), t(27, 10, 20)],
        };
        // Final: the whole slice is older than the horizon.
        let final_ = t(27, 12, 0);
        for (coverage, refetch, provisional, want) in [
            (None, false, final_, Some(t(27, 10, 0))),
            (Some(&full), false, final_, None),
            (Some(&full), true, final_, Some(t(27, 10, 0))),
            (Some(&half), false, final_, Some(t(27, 10, 30))),
            (Some(&half), true, final_, Some(t(27, 10, 0))),
            (Some(&before), false, final_, Some(t(27, 10, 0))),
            // Provisional from 10:40: covered time after it is listed again.
            (Some(&full), false, t(27, 10, 40), Some(t(27, 10, 40))),
            (Some(&half), false, t(27, 10, 40), Some(t(27, 10, 30))),
            // The whole slice provisional: listed again from its start.
            (Some(&full), false, t(27, 9, 0), Some(t(27, 10, 0))),
            // Provisional from exactly the slice end: final.
            (Some(&full), false, t(27, 11, 0), None),
            (None, false, t(27, 9, 0), Some(t(27, 10, 0))),
            // Saturated: listed again from its earliest saturated instant by
            // every run, however old.
            (Some(&saturated), false, final_, Some(t(27, 10, 20))),
            (Some(&saturated), false, t(27, 10, 10), Some(t(27, 10, 10))),
            (Some(&saturated), true, final_, Some(t(27, 10, 0))),
        ] {
            assert_eq!(
                fetch_from(slice, coverage, refetch, provisional),
                want,
                "{coverage:?} {refetch} {provisional}"
            );
        }
    }

    #[test]
    fn coverage_never_runs_ahead_of_the_servers_clock() {
        let slice = (t(27, 10, 0), t(27, 11, 0));
        let secs = Span::seconds;
        for (skew, now, want) in [
            (None, t(27, 11, 0), Some(t(27, 11, 0))),
            (Some(secs(0)), t(27, 11, 0), Some(t(27, 11, 0))),
            // The Date header's whole seconds: not a skew.
            (Some(secs(-1)), t(27, 11, 0), Some(t(27, 11, 0))),
            (Some(secs(-2)), t(27, 11, 0), Some(t(27, 11, 0))),
            // Server ahead: nothing to hold back.
            (Some(secs(300)), t(27, 11, 0), Some(t(27, 11, 0))),
            // Server 30 min behind: the open slice is covered to its clock.
            (Some(secs(-1800)), t(27, 11, 0), Some(t(27, 10, 30))),
            // Server an hour behind: it has not reached the slice.
            (Some(secs(-3600)), t(27, 11, 0), None),
            (Some(secs(-7200)), t(27, 12, 0), None),
            // An hour behind, two hours after the slice: the whole slice.
            (Some(secs(-3600)), t(27, 12, 0), Some(t(27, 11, 0))),
            // A backfill of the past: the server has long passed it.
            (Some(secs(-10)), t(28, 9, 0), Some(t(27, 11, 0))),
        ] {
            assert_eq!(covered_until(slice, now, skew), want, "{skew:?} {now}");
        }
    }

    #[test]
    fn slice_steps() {
        let at = Some(t(27, 10, 30));
        for (from, retries, late, covered, action) in [
            (None, 0, false, true, Action::Skip),
            (None, 0, true, true, Action::Skip),
            (None, 2, false, true, Action::RetryOnly),
            (None, 2, true, true, Action::OutOfTime),
            (at, 0, false, false, Action::List(t(27, 10, 30))),
            (at, 3, false, false, Action::List(t(27, 10, 30))),
            (at, 0, true, false, Action::OutOfTime),
        ] {
            assert_eq!(
                step(from, retries, late),
                Step { covered, action },
                "{from:?} retries={retries} late={late}"
            );
        }
    }

    #[test]
    fn which_slice_a_free_slot_serves() {
        use Demand::{Fetch, List, None as Idle};
        for (demands, want) in [
            (vec![], None),
            (vec![Idle, Idle], None),
            (vec![Fetch, Fetch], Some(0)),
            (vec![Idle, Fetch, Fetch], Some(1)),
            // A listing goes first, even behind alarms waiting.
            (vec![Fetch, Fetch, List], Some(2)),
            (vec![Fetch, List, List], Some(1)),
            (vec![Idle, Idle, List], Some(2)),
        ] {
            assert_eq!(pick(demands.clone()), want, "{demands:?}");
        }
    }

    #[test]
    fn pipeline_depth_table() {
        for (concurrency, want) in [(1, 4), (8, 4), (16, 4), (32, 8), (64, 16), (1000, 16)] {
            assert_eq!(pipeline_depth(concurrency), want, "{concurrency}");
        }
    }
}
