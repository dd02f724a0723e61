//! The hour slice: the unit of listing, coverage and `ledger gaps`. One
//! definition, so the engine's plan and the audit commands never disagree about
//! where a slice starts. No I/O here.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// One UTC hour `[start, start + 1h)`; `start` is always on the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slice {
    start: DateTime<Utc>,
}

impl Slice {
    /// The length of every slice.
    pub const LEN: TimeDelta = TimeDelta::hours(1);

    /// The slice containing `t`.
    pub fn containing(t: DateTime<Utc>) -> Slice {
        Slice {
            start: Slice::floor(t),
        }
    }

    /// `t` rounded down to the hour (a slice start).
    pub fn floor(t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(Slice::LEN).unwrap_or(t)
    }

    /// Where the slice starts (inclusive).
    pub fn start(self) -> DateTime<Utc> {
        self.start
    }

    /// Where the slice ends (exclusive): the next slice's start.
    pub fn end(self) -> DateTime<Utc> {
        self.start + Slice::LEN
    }

    /// Every slice starting in `[floor(from), to)`, oldest first.
    pub fn starting_in(from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = Slice> {
        let first = Slice::containing(from);
        std::iter::successors(Some(first), |s| Some(Slice { start: s.end() }))
            .take_while(move |s| s.start < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 3, h, m, 0).unwrap()
    }

    #[test]
    fn slices_are_whole_utc_hours() {
        // (from, to, starts of the slices)
        let cases: &[(DateTime<Utc>, DateTime<Utc>, &[u32])] = &[
            (t(10, 0), t(10, 0), &[]),
            (t(10, 0), t(10, 1), &[10]),
            (t(10, 30), t(12, 0), &[10, 11]),
            (t(10, 30), t(12, 1), &[10, 11, 12]),
            (t(12, 0), t(10, 0), &[]),
        ];
        for (from, to, want) in cases {
            let got: Vec<u32> = Slice::starting_in(*from, *to)
                .map(|s| chrono::Timelike::hour(&s.start()))
                .collect();
            assert_eq!(&got, want, "{from} .. {to}");
        }
        let s = Slice::containing(t(10, 59));
        assert_eq!((s.start(), s.end()), (t(10, 0), t(11, 0)));
    }
}
