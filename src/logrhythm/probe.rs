//! Probing what the spec cannot say (§15, issue 11): the server's page cap, what
//! it does with `offset`, and the time zone it reads the `dateInserted`
//! parameter in. The decisions are pure functions over the pages that came
//! back ([`next_tz_step`], [`judge_cap`], [`judge_offset`]); [`probe`] makes the
//! requests, about seven in all, in three rounds for an unshifted server:
//!
//! 1. the newest alarm since `now − lookback` (one descending page of one row);
//! 2. the time-zone shift: whether a bound of `newest + k hours − 1 s` still
//!    returns a row, for k = 0 and 1 (and further out only while the answer
//!    says the server is shifted): a server reading the parameter as local time
//!    UTC+N answers for every k ≤ N;
//! 3. the page cap: one page of [`PROBE_COUNT`] rows over the lookback, and one
//!    more from its last row to see whether more rows existed;
//! 4. `offset`: two pages of two rows, at offset 0 and 1.

use super::{Client, Result, TICK_LEAD};
use crate::model::{AlarmId, AlarmRow, OffsetMode, PageCap, ServerProfile};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;

/// Rows asked for when measuring the cap: the largest page any public client
/// asks for (spec §3.2).
pub const PROBE_COUNT: u32 = 1000;

/// The widest time-zone shift searched, in hours (UTC−14 to UTC+14).
pub const MAX_TZ_HOURS: i32 = 14;

/// What to do next while measuring the time-zone shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TzStep {
    /// Ask with the bound `newest + k hours − 1 s`.
    Ask(i32),
    /// The shift in hours; `None` when it cannot be told.
    Found(Option<i32>),
}

/// The next step after `answers`: for each k asked, whether a row came back.
/// A correct server answers for k ≤ 0 only; one reading the bound as UTC+N
/// answers for k ≤ N, so N is the largest k that answers.
pub fn next_tz_step(answers: &[(i32, bool)]) -> TzStep {
    let got = |k: i32| answers.iter().find(|(a, _)| *a == k).map(|(_, r)| *r);
    match got(0) {
        None => TzStep::Ask(0),
        Some(true) => {
            // Walk up while the server still answers (one past the widest
            // shift, to tell UTC+14 from a bound not applied at all).
            let mut k = 1;
            while k <= MAX_TZ_HOURS + 1 {
                match got(k) {
                    None => return TzStep::Ask(k),
                    Some(true) => k += 1,
                    Some(false) => return TzStep::Found(Some(k - 1)),
                }
            }
            // Answers 15 h in the future: the bound is not applied at all.
            TzStep::Found(None)
        }
        Some(false) => {
            // Walk down until it answers.
            for k in (-MAX_TZ_HOURS..=-1).rev() {
                match got(k) {
                    None => return TzStep::Ask(k),
                    Some(true) => return TzStep::Found(Some(k)),
                    Some(false) => {}
                }
            }
            TzStep::Found(None)
        }
    }
}

/// The cap from a page asked with `asked` rows (`first`) and the page asked
/// from its last row (`second`, when `first` was short of `asked`): rows in
/// `second` that `first` lacked prove the server cut `first`.
pub fn judge_cap(asked: u32, first: &[AlarmRow], second: Option<&[AlarmRow]>) -> Option<PageCap> {
    let n = u32::try_from(first.len()).unwrap_or(u32::MAX);
    if n == 0 {
        return None;
    }
    if n >= asked {
        return Some(PageCap::AtLeast(n));
    }
    let seen: HashSet<AlarmId> = first.iter().map(|r| r.alarm_id).collect();
    let more = second.is_some_and(|p| p.iter().any(|r| !seen.contains(&r.alarm_id)));
    Some(if more {
        PageCap::Exact(n)
    } else {
        PageCap::AtLeast(n)
    })
}

/// What `offset` does, from the ids of a page at offset 0 (`at0`) and at
/// offset 1 (`at1`), both asked with the same small count: the same rows →
/// ignored; one row in common → records; none → pages. Compared as sets, so a
/// server that shuffles its pages is still judged; `Unknown` when too few rows.
pub fn judge_offset(at0: &[AlarmId], at1: &[AlarmId]) -> OffsetMode {
    let a: HashSet<&AlarmId> = at0.iter().collect();
    let b: HashSet<&AlarmId> = at1.iter().collect();
    if a.len() < 2 || b.is_empty() {
        return OffsetMode::Unknown;
    }
    match a.intersection(&b).count() {
        n if n == a.len() && a == b => OffsetMode::Ignored,
        0 => OffsetMode::Pages,
        n if n + 1 == a.len() => OffsetMode::Records,
        _ => OffsetMode::Unknown,
    }
}

/// Probes the server (see the module doc) over alarms since `since`; `now`
/// dates the record.
///
/// The requests go in three rounds rather than one after another: the newest
/// alarm; then, at once, the first two time-zone answers and the cap and
/// `offset` pages as an unshifted server reads them (what nearly every server
/// is); then the page after the cap page. A shifted server has its further
/// time-zone answers asked in turn and its cap and `offset` pages asked again
/// with the shift.
pub async fn probe(
    client: &Client,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ServerProfile> {
    let mut requests = 1u32;
    let newest = client.list_page_dir(since, 1, 0, true).await?;
    let mut profile = ServerProfile {
        page_cap: None,
        offset_mode: OffsetMode::Unknown,
        tz_shift_hours: None,
        requests,
        probed_at: now,
        stale: None,
    };
    let Some(newest) = newest.iter().map(|r| r.date_inserted).max() else {
        return Ok(profile);
    };
    let bound = |k: i32| newest + TimeDelta::hours(i64::from(k)) - TimeDelta::seconds(1);
    let pages = |wire: DateTime<Utc>| {
        futures::future::join3(
            client.list_page(wire, PROBE_COUNT, 0),
            client.list_page(wire, 2, 0),
            client.list_page(wire, 2, 1),
        )
    };
    requests += 5;
    let (k0, k1, unshifted) = tokio::join!(
        client.list_page(bound(0), 1, 0),
        client.list_page(bound(1), 1, 0),
        pages(since),
    );
    let mut answers = vec![(0, !k0?.is_empty()), (1, !k1?.is_empty())];
    let shift = loop {
        match next_tz_step(&answers) {
            TzStep::Found(s) => break s,
            TzStep::Ask(k) => {
                requests += 1;
                let rows = client.list_page(bound(k), 1, 0).await?;
                answers.push((k, !rows.is_empty()));
            }
        }
    };
    let wire = |t: DateTime<Utc>| t + TimeDelta::hours(i64::from(shift.unwrap_or(0)));
    let (first, at0, at1) = if wire(since) == since {
        unshifted
    } else {
        requests += 3;
        pages(wire(since)).await
    };
    let first = first?;
    let second = match first.iter().map(|r| r.date_inserted).max() {
        Some(last) if first.len() < PROBE_COUNT as usize => {
            requests += 1;
            Some(
                client
                    .list_page(wire(last - TICK_LEAD), PROBE_COUNT, 0)
                    .await?,
            )
        }
        _ => None,
    };
    // Too few rows to tell: the two small pages (and their errors) say nothing.
    let offset_mode = if first.len() >= 3 {
        let ids = |p: Vec<AlarmRow>| p.into_iter().map(|r| r.alarm_id).collect::<Vec<_>>();
        judge_offset(&ids(at0?), &ids(at1?))
    } else {
        OffsetMode::Unknown
    };
    profile.page_cap = judge_cap(PROBE_COUNT, &first, second.as_deref());
    profile.offset_mode = offset_mode;
    profile.tz_shift_hours = shift;
    profile.requests = requests;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, s: i64) -> AlarmRow {
        AlarmRow {
            alarm_id: id.into(),
            rule_name: String::new(),
            status: 0,
            entity_name: String::new(),
            date_inserted: DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap(),
        }
    }

    /// Plays a server of shift `n` against the search: one row per case.
    #[test]
    fn tz_search_finds_the_shift_in_few_requests() {
        for (n, want, max_requests) in [
            (0, Some(0), 2),
            (2, Some(2), 4),
            (-5, Some(-5), 6),
            (14, Some(14), 17),
            (-14, Some(-14), 15),
        ] {
            let mut answers = Vec::new();
            let found = loop {
                match next_tz_step(&answers) {
                    TzStep::Found(s) => break s,
                    TzStep::Ask(k) => answers.push((k, k <= n)),
                }
            };
            assert_eq!(found, want, "shift {n}");
            assert!(answers.len() <= max_requests, "shift {n}: {answers:?}");
        }
        // Always answers (the bound is not applied) / never answers.
        let all = |r: bool| {
            let mut answers = Vec::new();
            loop {
                match next_tz_step(&answers) {
                    TzStep::Found(s) => break s,
                    TzStep::Ask(k) => answers.push((k, r)),
                }
            }
        };
        assert_eq!(all(true), None);
        assert_eq!(all(false), None);
    }

    #[test]
    fn cap_table() {
        let page = |n: i64| (0..n).map(|i| row(i, i)).collect::<Vec<_>>();
        let p100 = page(100);
        let later = vec![row(99, 99), row(100, 100)];
        let only_seen = vec![row(99, 99)];
        type Case<'a> = (&'a [AlarmRow], Option<&'a [AlarmRow]>, Option<PageCap>);
        let cases: [Case<'_>; 5] = [
            (&[], None, None),
            (&p100, Some(&later), Some(PageCap::Exact(100))),
            (&p100, Some(&only_seen), Some(PageCap::AtLeast(100))),
            (&p100, Some(&[]), Some(PageCap::AtLeast(100))),
            (&page(1000), None, Some(PageCap::AtLeast(1000))),
        ];
        for (i, (first, second, want)) in cases.into_iter().enumerate() {
            assert_eq!(judge_cap(1000, first, second), want, "case {i}");
        }
    }

    #[test]
    fn offset_table() {
        let ids = |v: &[i64]| v.iter().map(|&i| AlarmId::from(i)).collect::<Vec<_>>();
        let cases = [
            (ids(&[1, 2]), ids(&[1, 2]), OffsetMode::Ignored),
            (ids(&[1, 2]), ids(&[2, 1]), OffsetMode::Ignored),
            (ids(&[1, 2]), ids(&[2, 3]), OffsetMode::Records),
            (ids(&[2, 1]), ids(&[3, 2]), OffsetMode::Records),
            (ids(&[1, 2]), ids(&[3, 4]), OffsetMode::Pages),
            (ids(&[1, 2]), ids(&[]), OffsetMode::Unknown),
            (ids(&[1]), ids(&[1]), OffsetMode::Unknown),
        ];
        for (a, b, want) in cases {
            assert_eq!(judge_offset(&a, &b), want, "{a:?} {b:?}");
        }
    }
}
