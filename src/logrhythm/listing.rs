//! The pure listing decision for one time slice: given the page that just came
//! back and what was seen so far, what to request next. No I/O here; the
//! client (`super::Client::list_slice`) fetches what this module asks for.
//!
//! The Alarm API only has a lower time bound (`dateInserted`), inclusive or (on
//! some servers) exclusive; stores it in SQL Server `datetime` ticks of 1/300 s
//! that a `datetime2` comparison with a millisecond parameter can exclude; may
//! cap `count` silently; and may treat `offset` as a record offset, a page index
//! or ignore it (spec §3, §3.2, §4.1, §12, §15). The rules (DESIGN.md §1.3):
//! - every request asks from [`TICK_LEAD`] (one tick and a little) before the
//!   time it means, so an alarm sharing the boundary timestamp is never lost to
//!   a strict bound or a tick comparison; what comes back twice is de-duplicated
//!   by `alarmId`;
//! - each page is sorted by (`dateInserted`, `alarmId`) here, whatever order the
//!   server used, and bounded to `[from, to)` here;
//! - a page is *full* when it holds the `count` asked for, or — since the server
//!   may cap pages silently — as many rows as the largest page seen so far,
//!   provided that is at least [`MIN_PLAUSIBLE_CAP`] rows (caps seen in the wild
//!   are 25 to 1000; without this floor, the lone alarm of a fresh hour looked
//!   like a full page of one timestamp and was reported saturated);
//! - after a full page whose last timestamp lies beyond the lead of the request,
//!   continue from that timestamp (minus the lead) with offset 0;
//! - otherwise (a full page of one instant, or of instants within the lead),
//!   page through that request with `offset`; the first such page probes with
//!   `offset=1` to learn whether offset counts records, pages, or is ignored,
//!   unless the server is already known to ignore it;
//! - when offset is ignored, the last instant of the page is *saturated*:
//!   record it and go on from just after its tick, so the rest of the slice is
//!   still fetched;
//! - rows older than the request by more than [`EARLY_TOLERANCE`] say the server
//!   reads the bound in another time zone: counted (the caller warns), and a full
//!   page of nothing else fails the slice ([`Error::Shifted`]);
//! - stop at a short page or at the first row at or past the slice end; a
//!   bounded number of pages.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::Error;
use crate::model::{AlarmId, AlarmRow, OffsetMode};

/// How far before the instant it means each request asks: one SQL Server
/// `datetime` tick is 3.33 ms, and a stored tick is displayed rounded to the
/// millisecond (`.007` is 6.67 ms), so 4 ms before a displayed value is at or
/// before its exact tick, even for a strict (`>`) bound.
pub const TICK_LEAD: TimeDelta = TimeDelta::milliseconds(4);

/// How much older than requested a row may be before it counts as a sign of a
/// server reading the bound in another time zone.
pub const EARLY_TOLERANCE: TimeDelta = TimeDelta::seconds(1);

/// One `GET /alarms` request, in the server's own time: the client adds the
/// server's time-zone shift when it sends `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// `dateInserted` lower bound as the server should apply it.
    pub since: DateTime<Utc>,
    /// `count`.
    pub count: u32,
    /// `offset`.
    pub offset: u32,
}

/// What to do after a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The slice is complete (or saturated where recorded).
    Done,
    /// Request this page next.
    Fetch(PageRequest),
}

/// Everything one slice listing produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SliceListing {
    /// Unique by id, `from <= t < to`, ascending by `(t, id)`.
    pub alarms: Vec<AlarmRow>,
    /// Timestamps where a full page shared one timestamp, offset did not help
    /// and neither did the list filters: alarms at these instants may be missing.
    pub saturated_at: Vec<DateTime<Utc>>,
    /// Timestamps where a full page shared one timestamp and offset did not
    /// help, listed completely in parts narrowed by the list filters.
    pub partitioned_at: Vec<DateTime<Utc>>,
    /// Requests those parts took.
    pub partition_requests: u32,
    /// Pages requested.
    pub pages: u32,
    /// How `offset` behaved, if it had to be used.
    pub offset_mode: OffsetMode,
    /// The most rows any page held.
    pub largest_page: usize,
    /// How much older than requested the oldest row was, when more than
    /// [`EARLY_TOLERANCE`] (a server reading the bound in another time zone).
    pub early_by: Option<TimeDelta>,
}

impl SliceListing {
    /// Adds `rows` listed otherwise (a partition's parts): only those inside
    /// `[from, to)` not yet held, keeping the order by `(t, id)`.
    pub fn merge(&mut self, rows: Vec<AlarmRow>, (from, to): (DateTime<Utc>, DateTime<Utc>)) {
        let mut held: HashSet<AlarmId> = self.alarms.iter().map(|a| a.alarm_id).collect();
        let before = self.alarms.len();
        for row in rows {
            if row.date_inserted >= from && row.date_inserted < to && held.insert(row.alarm_id) {
                self.alarms.push(row);
            }
        }
        if self.alarms.len() > before {
            self.alarms.sort_by_key(|a| (a.date_inserted, a.alarm_id));
        }
    }
}

/// The smallest server page cap lrci believes in. A page shorter than both the
/// requested `count` and this is the last one.
pub const MIN_PLAUSIBLE_CAP: usize = 10;

/// Listing state of one slice.
#[derive(Debug)]
pub(crate) struct Listing {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    page_size: u32,
    max_pages: u32,
    current: PageRequest,
    max_page_len: usize,
    min_cap: usize,
    mode: OffsetMode,
    /// Ids of the offset-0 page at `current.since` while the offset probe is out.
    probe_anchor: Option<Vec<AlarmId>>,
    seen: HashSet<AlarmId>,
    alarms: Vec<AlarmRow>,
    saturated: Vec<DateTime<Utc>>,
    pages: u32,
    early_by: Option<TimeDelta>,
    /// The ids of the last page, sorted.
    last_ids: Option<Vec<AlarmId>>,
}

impl Listing {
    /// Starts a listing of `[from, to)`; `max_pages` bounds the work. `known`
    /// is what the server is already known to do with `offset`: `Ignored` skips
    /// the offset probe; any other mode is confirmed by the probe first (trusting
    /// a wrong record-or-page belief would skip alarms).
    pub(crate) fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page_size: u32,
        max_pages: u32,
        known: OffsetMode,
    ) -> Self {
        let page_size = page_size.max(1);
        Listing {
            from,
            to,
            page_size,
            max_pages,
            current: PageRequest {
                since: from - TICK_LEAD,
                count: page_size,
                offset: 0,
            },
            max_page_len: 0,
            min_cap: MIN_PLAUSIBLE_CAP,
            mode: match known {
                OffsetMode::Ignored => OffsetMode::Ignored,
                _ => OffsetMode::Unknown,
            },
            probe_anchor: None,
            seen: HashSet::new(),
            alarms: Vec::new(),
            saturated: Vec::new(),
            pages: 0,
            early_by: None,
            last_ids: None,
        }
    }

    /// Lowers the cap floor, so tests can model tiny pages readably.
    #[cfg(test)]
    fn with_min_cap(mut self, min_cap: usize) -> Self {
        self.min_cap = min_cap;
        self
    }

    /// The first request, or `None` for an empty slice.
    pub(crate) fn first_request(&self) -> Option<PageRequest> {
        (self.from < self.to).then_some(self.current)
    }

    /// Takes in the page answering the last request and decides the next step.
    pub(crate) fn on_page(&mut self, page: &[AlarmRow]) -> Result<Next, Error> {
        self.pages += 1;
        let mut page = page.to_vec();
        page.sort_by_key(|r| (r.date_inserted, r.alarm_id));
        let page = page.as_slice();
        self.max_page_len = self.max_page_len.max(page.len());
        let asked = usize::try_from(self.current.count).unwrap_or(usize::MAX);
        let full = !page.is_empty()
            && (page.len() >= asked
                || (page.len() >= self.max_page_len && page.len() >= self.min_cap));

        let mut past_end = false;
        for row in page {
            let early = self.current.since - row.date_inserted;
            if early > EARLY_TOLERANCE && self.early_by.is_none_or(|e| early > e) {
                self.early_by = Some(early);
            }
            if row.date_inserted >= self.to {
                past_end = true;
                break;
            }
            // Every id is remembered, even before `from`, so a row the server
            // sends twice (or again at the next page) counts once.
            if self.seen.insert(row.alarm_id) && row.date_inserted >= self.from {
                self.alarms.push(row.clone());
            }
        }
        if let Some(anchor) = self.probe_anchor.take() {
            if !page.is_empty() {
                let ids: Vec<AlarmId> = page.iter().map(|r| r.alarm_id).collect();
                self.mode = classify(&anchor, &ids);
            }
        }
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok(Next::Done);
        };
        if past_end || !full {
            return Ok(Next::Done);
        }
        if last.date_inserted < self.current.since - EARLY_TOLERANCE {
            return Err(Error::Shifted {
                since: self.current.since,
                newest: last.date_inserted,
            });
        }
        let ids: Vec<AlarmId> = page.iter().map(|r| r.alarm_id).collect();
        let repeated = self.last_ids.as_ref() == Some(&ids);
        if self.current.offset > 0 && repeated && self.mode != OffsetMode::Ignored {
            // A later offset brought back the very same page: offset does not
            // do what it was believed to; never rely on it in this slice.
            self.mode = OffsetMode::Ignored;
        }
        self.last_ids = Some(ids);

        let ahead = last.date_inserted - TICK_LEAD;
        let next = if first.date_inserted != last.date_inserted && ahead > self.current.since {
            Some(PageRequest {
                since: ahead,
                count: self.page_size,
                offset: 0,
            })
        } else {
            self.tie_step(last.date_inserted, page)
        };
        let Some(next) = next else {
            return Ok(Next::Done);
        };
        if next == self.current {
            return Err(Error::NoProgress {
                since: next.since,
                offset: next.offset,
            });
        }
        if self.pages >= self.max_pages {
            return Err(Error::TooManyPages {
                from: self.from,
                to: self.to,
                max: self.max_pages,
            });
        }
        self.current = next;
        Ok(Next::Fetch(next))
    }

    /// Next request after a full page that moving on by timestamp cannot get
    /// past: its rows share timestamp `t`, or lie within the lead of the request.
    fn tie_step(&mut self, t: DateTime<Utc>, page: &[AlarmRow]) -> Option<PageRequest> {
        let tie_count = self
            .page_size
            .min(u32::try_from(self.max_page_len).unwrap_or(u32::MAX));
        let anchor = t - TICK_LEAD;
        if anchor > self.current.since {
            if self.current.offset != 0 {
                // The ties of the previous timestamp ended exactly at a page
                // boundary; restart cleanly at `t`.
                return Some(PageRequest {
                    since: anchor,
                    count: self.page_size,
                    offset: 0,
                });
            }
            // Nothing came back between the request and `t`, so this page is
            // exactly what a request at `t` would return: treat it as such.
            self.current.since = anchor;
        }
        let since = self.current.since;
        let offset = self.current.offset;
        let at = |offset: u32| {
            Some(PageRequest {
                since,
                count: tie_count,
                offset,
            })
        };
        match self.mode {
            OffsetMode::Unknown if offset == 0 => {
                self.probe_anchor = Some(page.iter().map(|r| r.alarm_id).collect());
                at(1)
            }
            OffsetMode::Records => {
                at(offset.saturating_add(u32::try_from(page.len()).unwrap_or(u32::MAX)))
            }
            OffsetMode::Pages => at(offset.saturating_add(1)),
            OffsetMode::Unknown | OffsetMode::Ignored => {
                if !self.saturated.contains(&t) {
                    self.saturated.push(t);
                }
                // Just past `t`'s tick (displayed within 0.34 ms of it), before
                // the next tick (3.33 ms later): no lead here.
                let after = t + TimeDelta::milliseconds(1);
                (after < self.to).then_some(PageRequest {
                    since: after,
                    count: self.page_size,
                    offset: 0,
                })
            }
        }
    }

    /// The result: alarms sorted by `(t, id)`.
    pub(crate) fn finish(mut self) -> SliceListing {
        self.alarms.sort_by_key(|a| (a.date_inserted, a.alarm_id));
        SliceListing {
            alarms: self.alarms,
            saturated_at: self.saturated,
            partitioned_at: Vec::new(),
            partition_requests: 0,
            pages: self.pages,
            offset_mode: self.mode,
            largest_page: self.max_page_len,
            early_by: self.early_by,
        }
    }
}

/// Mode from the answer to `offset=1` (ids `page`) after an offset-0 page with
/// ids `anchor`, both sorted by time and id: the same page → ignored; the
/// anchor shifted by one row → records; at most one row in common (a row the
/// server duplicated across the page boundary) → pages. Anything else is not
/// trustworthy and counts as ignored (ties are then reported saturated, never
/// silently dropped).
pub(crate) fn classify(anchor: &[AlarmId], page: &[AlarmId]) -> OffsetMode {
    if page == anchor {
        return OffsetMode::Ignored;
    }
    if !page.is_empty() && page.first() == anchor.get(1) {
        return OffsetMode::Records;
    }
    let known: HashSet<&AlarmId> = anchor.iter().collect();
    let shared: HashSet<&AlarmId> = page.iter().filter(|id| known.contains(id)).collect();
    if shared.len() <= 1 {
        OffsetMode::Pages
    } else {
        OffsetMode::Ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn row(id: i64, ms: i64) -> AlarmRow {
        AlarmRow {
            alarm_id: id.into(),
            rule_name: format!("rule {id}"),
            status: 0,
            entity_name: String::new(),
            date_inserted: t(ms),
        }
    }

    fn rows(spec: &[(i64, i64)]) -> Vec<AlarmRow> {
        spec.iter().map(|&(id, ms)| row(id, ms)).collect()
    }

    /// A request meaning `ms`: sent [`TICK_LEAD`] (4 ms) earlier.
    fn req(ms: i64, count: u32, offset: u32) -> Next {
        at(ms - 4, count, offset)
    }

    /// A request sent at exactly `ms` (no lead).
    fn at(ms: i64, count: u32, offset: u32) -> Next {
        Next::Fetch(PageRequest {
            since: t(ms),
            count,
            offset,
        })
    }

    fn listing(page_size: u32, to_ms: i64) -> Listing {
        Listing::new(t(0), t(to_ms), page_size, 100, OffsetMode::Unknown).with_min_cap(1)
    }

    /// Feeds pages in order and checks each decision: one table row per page.
    fn run(page_size: u32, to_ms: i64, steps: &[(Vec<AlarmRow>, Next)]) -> SliceListing {
        let mut l = listing(page_size, to_ms);
        for (i, (page, want)) in steps.iter().enumerate() {
            assert_eq!(l.on_page(page).unwrap(), *want, "step {i}");
        }
        l.finish()
    }

    /// REGRESSION: the lone alarm of a fresh hour was taken for a full page of
    /// one timestamp, probed with offset, and reported saturated (exit 75).
    #[test]
    fn page_below_the_plausible_cap_is_short() {
        let new = || Listing::new(t(0), t(1000), 1000, 100, OffsetMode::Unknown);
        let mut l = new();
        assert_eq!(l.on_page(&rows(&[(1, 5)])).unwrap(), Next::Done);
        let out = l.finish();
        assert_eq!(out.alarms.len(), 1);
        assert!(out.saturated_at.is_empty());
        // Nine rows of one timestamp, asked for 1000: still short, not saturated.
        let mut l = new();
        let nine: Vec<(i64, i64)> = (1..=9).map(|i| (i, 7)).collect();
        assert_eq!(l.on_page(&rows(&nine)).unwrap(), Next::Done);
        assert!(l.finish().saturated_at.is_empty());
        // Ten rows spanning two timestamps could be a capped page: continue.
        let mut l = new();
        let ten: Vec<(i64, i64)> = (1..=10).map(|i| (i, if i < 6 { 3 } else { 80 })).collect();
        assert_eq!(l.on_page(&rows(&ten)).unwrap(), req(80, 1000, 0));
    }

    #[test]
    fn the_first_request_asks_one_tick_early() {
        let l = listing(3, 1000);
        assert_eq!(l.first_request().map(Next::Fetch), Some(req(0, 3, 0)));
    }

    #[test]
    fn short_first_page_ends_the_slice() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(1, 0), (2, 50)]), req(50, 3, 0)),
                (rows(&[(2, 50)]), Next::Done),
            ],
        );
        assert_eq!(out.alarms.len(), 2);
        assert_eq!(out.pages, 2);
        let out = run(3, 1000, &[(vec![], Next::Done)]);
        assert!(out.alarms.is_empty());
    }

    #[test]
    fn full_pages_continue_from_last_timestamp_minus_the_lead() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(1, 0), (2, 10), (3, 20)]), req(20, 3, 0)),
                (rows(&[(3, 20), (4, 30), (5, 30)]), req(30, 3, 0)),
                (rows(&[(4, 30), (5, 30), (6, 90)]), req(90, 3, 0)),
                (rows(&[(6, 90)]), Next::Done),
            ],
        );
        let ids: Vec<_> = out.alarms.iter().map(|a| a.alarm_id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(out.offset_mode, OffsetMode::Unknown);
        assert!(out.saturated_at.is_empty());
        assert_eq!(out.largest_page, 3);
    }

    /// Pages are sorted here, and rows the server sends twice count once.
    #[test]
    fn shuffled_and_duplicated_pages_are_sorted_and_deduplicated() {
        let out = run(
            4,
            1000,
            &[
                (rows(&[(3, 20), (1, 0), (3, 20), (2, 10)]), req(20, 4, 0)),
                (rows(&[(4, 50), (3, 20)]), Next::Done),
            ],
        );
        let ids: Vec<_> = out.alarms.iter().map(|a| a.alarm_id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
    }

    #[test]
    fn server_cap_below_request_is_learned() {
        // Asked for 10, server gives 2 per page: 2 is full, 1 is short.
        let out = run(
            10,
            1000,
            &[
                (rows(&[(1, 0), (2, 10)]), req(10, 10, 0)),
                (rows(&[(2, 10), (3, 40)]), req(40, 10, 0)),
                (rows(&[(3, 40)]), Next::Done),
            ],
        );
        assert_eq!(out.alarms.len(), 3);
    }

    #[test]
    fn row_at_or_past_end_stops_and_is_excluded() {
        let out = run(3, 100, &[(rows(&[(1, 0), (2, 90), (3, 100)]), Next::Done)]);
        let ids: Vec<_> = out.alarms.iter().map(|a| a.alarm_id).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn rows_before_start_are_ignored() {
        let mut l = Listing::new(t(50), t(1000), 3, 100, OffsetMode::Unknown).with_min_cap(1);
        assert_eq!(
            l.on_page(&rows(&[(1, 47), (2, 60)])).unwrap(),
            req(60, 3, 0)
        );
        assert_eq!(l.on_page(&rows(&[(2, 60)])).unwrap(), Next::Done);
        let out = l.finish();
        assert_eq!(out.alarms.len(), 1);
        assert_eq!(out.alarms[0].alarm_id, 2);
        assert_eq!(out.early_by, None);
    }

    #[test]
    fn ties_with_record_offset() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(1, 0), (2, 70), (3, 70)]), req(70, 3, 0)),
                (rows(&[(2, 70), (3, 70), (4, 70)]), req(70, 3, 1)),
                (rows(&[(3, 70), (4, 70), (5, 70)]), req(70, 3, 4)),
                (rows(&[(6, 70), (7, 80)]), Next::Done),
            ],
        );
        assert_eq!(out.offset_mode, OffsetMode::Records);
        assert_eq!(out.alarms.len(), 7);
        assert!(out.saturated_at.is_empty());
    }

    /// Two ticks 3.33 ms apart fill a page: moving on by timestamp would ask
    /// the same again, so the request is paged through with offset.
    #[test]
    fn a_full_page_within_the_lead_is_paged_with_offset() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(1, 0), (2, 70), (3, 73)]), req(73, 3, 0)),
                (rows(&[(2, 70), (3, 73), (4, 73)]), req(73, 3, 1)),
                (rows(&[(3, 73), (4, 73), (5, 73)]), req(73, 3, 4)),
                (rows(&[(6, 90)]), Next::Done),
            ],
        );
        assert_eq!(out.offset_mode, OffsetMode::Records);
        assert_eq!(out.alarms.len(), 6);
    }

    #[test]
    fn ties_with_page_index_offset() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(2, 70), (3, 70), (4, 70)]), req(70, 3, 1)),
                (rows(&[(5, 70), (6, 70), (7, 70)]), req(70, 3, 2)),
                (rows(&[(8, 70), (9, 90)]), Next::Done),
            ],
        );
        assert_eq!(out.offset_mode, OffsetMode::Pages);
        assert_eq!(out.alarms.len(), 8);
    }

    #[test]
    fn ties_with_offset_ignored_saturate_then_continue_just_past_the_tick() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(2, 70), (3, 70), (4, 70)]), req(70, 3, 1)),
                (rows(&[(2, 70), (3, 70), (4, 70)]), at(71, 3, 0)),
                (rows(&[(9, 200)]), Next::Done),
            ],
        );
        assert_eq!(out.offset_mode, OffsetMode::Ignored);
        assert_eq!(out.saturated_at, vec![t(70)]);
        assert_eq!(out.alarms.len(), 4);
    }

    #[test]
    fn known_ignored_mode_saturates_without_probing() {
        let mut l = Listing::new(t(0), t(1000), 2, 100, OffsetMode::Ignored).with_min_cap(1);
        let steps = [
            (rows(&[(1, 70), (2, 70)]), at(71, 2, 0)),
            (rows(&[(3, 90), (4, 90)]), at(91, 2, 0)),
            (rows(&[]), Next::Done),
        ];
        for (i, (page, want)) in steps.iter().enumerate() {
            assert_eq!(l.on_page(page).unwrap(), *want, "step {i}");
        }
        assert_eq!(l.finish().saturated_at, vec![t(70), t(90)]);
    }

    /// A recorded records/pages mode is confirmed by the probe first.
    #[test]
    fn known_records_mode_is_confirmed_by_the_probe() {
        let mut l = Listing::new(t(0), t(1000), 2, 100, OffsetMode::Records).with_min_cap(1);
        assert_eq!(
            l.on_page(&rows(&[(1, 70), (2, 70)])).unwrap(),
            req(70, 2, 1)
        );
        // The server ignores offset after all: saturated, never looped over.
        assert_eq!(l.on_page(&rows(&[(1, 70), (2, 70)])).unwrap(), at(71, 2, 0));
        let out = l.finish();
        assert_eq!(out.offset_mode, OffsetMode::Ignored);
        assert_eq!(out.saturated_at, vec![t(70)]);
    }

    #[test]
    fn saturation_at_the_last_millisecond_ends_the_slice() {
        let out = run(
            2,
            71,
            &[
                (rows(&[(1, 70), (2, 70)]), req(70, 2, 1)),
                (rows(&[(1, 70), (2, 70)]), Next::Done),
            ],
        );
        assert_eq!(out.saturated_at, vec![t(70)]);
    }

    /// Rows hours older than asked: counted; a full page of only such rows
    /// fails the slice rather than walking back in time.
    #[test]
    fn rows_older_than_requested_are_counted_and_a_page_of_them_fails() {
        let mut l =
            Listing::new(t(7_200_000), t(9_000_000), 3, 100, OffsetMode::Unknown).with_min_cap(1);
        let err = l.on_page(&rows(&[(1, 0), (2, 10), (3, 20)])).unwrap_err();
        assert!(matches!(err, Error::Shifted { .. }), "{err}");
        let mut l = Listing::new(t(7_200_000), t(9_000_000), 3, 100, OffsetMode::Unknown);
        assert_eq!(
            l.on_page(&rows(&[(1, 0), (2, 7_200_010)])).unwrap(),
            Next::Done
        );
        let out = l.finish();
        assert_eq!(out.alarms.len(), 1);
        assert_eq!(out.early_by, Some(TimeDelta::milliseconds(7_199_996)));
    }

    #[test]
    fn repeated_request_is_no_progress() {
        // A server that keeps answering with the same rows whatever is asked:
        // probed, saturated, then stopped.
        let mut l = Listing::new(t(0), t(1000), 2, 100, OffsetMode::Unknown).with_min_cap(1);
        let same = rows(&[(1, 0), (2, 10)]);
        assert_eq!(l.on_page(&same).unwrap(), req(10, 2, 0));
        assert_eq!(l.on_page(&same).unwrap(), req(10, 2, 1));
        assert_eq!(l.on_page(&same).unwrap(), at(11, 2, 0));
        let err = l.on_page(&same).unwrap_err();
        assert!(matches!(err, Error::NoProgress { .. }), "{err}");
    }

    #[test]
    fn page_budget_is_bounded() {
        let mut l = Listing::new(t(0), t(1_000_000), 1, 3, OffsetMode::Unknown).with_min_cap(1);
        assert_eq!(l.on_page(&rows(&[(1, 10)])).unwrap(), req(10, 1, 1));
        assert_eq!(l.on_page(&rows(&[(2, 20)])).unwrap(), req(20, 1, 0));
        let err = l.on_page(&rows(&[(3, 30)])).unwrap_err();
        assert!(matches!(err, Error::TooManyPages { max: 3, .. }), "{err}");
    }

    #[test]
    fn classify_table() {
        let ids = |v: &[i64]| v.iter().map(|&i| AlarmId::from(i)).collect::<Vec<_>>();
        let anchor = ids(&[10, 11, 12]);
        let cases = [
            (ids(&[10, 11, 12]), OffsetMode::Ignored),
            (ids(&[11, 12, 13]), OffsetMode::Records),
            (ids(&[13, 14, 15]), OffsetMode::Pages),
            // A row duplicated across the page boundary.
            (ids(&[12, 13, 14]), OffsetMode::Pages),
            // Neither a record nor a page shift.
            (ids(&[10, 12, 13]), OffsetMode::Ignored),
        ];
        for (page, want) in cases {
            assert_eq!(classify(&anchor, &page), want, "{page:?}");
        }
        // A duplicated first row: the records shift still shows.
        let doubled = ids(&[10, 10, 11]);
        assert_eq!(classify(&doubled, &ids(&[10, 11, 12])), OffsetMode::Records);
        assert_eq!(classify(&doubled, &doubled), OffsetMode::Ignored);
    }

    #[test]
    fn empty_slice_requests_nothing() {
        let l = Listing::new(t(5), t(5), 10, 10, OffsetMode::Unknown);
        assert_eq!(l.first_request(), None);
    }
}
