//! The pure listing decision for one time slice: given the page that just came
//! back and what was seen so far, what to request next. No I/O here; the
//! client (`super::Client::list_slice`) fetches what this module asks for.
//!
//! The Alarm API only has a lower time bound (`dateInserted`), may cap `count`
//! silently, and may treat `offset` as a record offset, a page index or ignore
//! it (spec §3, §3.2, §12). The rules (DESIGN.md §1.3):
//! - page ascending from the slice start; a page is *full* when it holds the
//!   `count` asked for, or — since the server may cap pages silently — as many
//!   rows as the largest page seen so far, provided that is at least
//!   [`MIN_PLAUSIBLE_CAP`] rows (caps seen in the wild are 25 to 1000; without
//!   this floor, the lone alarm of a fresh hour looked like a full page of one
//!   timestamp and was reported saturated);
//! - after a full page spanning several timestamps, continue from its last
//!   `dateInserted` (inclusive) with offset 0, de-duplicating by `alarmId`;
//! - after a full page holding a single timestamp, page through that timestamp
//!   with `offset`; the first such page probes with `offset=1` to learn whether
//!   offset counts records, pages, or is ignored;
//! - when offset is ignored, the timestamp is *saturated*: record it and go on
//!   from one millisecond later, so the rest of the slice is still fetched;
//! - stop at a short page or at the first row at or past the slice end;
//! - every page must be ascending; a bounded number of pages.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::Error;
use crate::model::{AlarmId, AlarmRow};

/// How the server treats `offset`, as detected while paging through ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetMode {
    /// Not needed (no full page of a single timestamp), so not detected.
    #[default]
    Unknown,
    /// `offset` counts rows to skip.
    Records,
    /// `offset` is a page index.
    Pages,
    /// `offset` has no effect.
    Ignored,
}

/// One `GET /alarms` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// `dateInserted` lower bound (inclusive).
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
    /// Timestamps where a full page shared one timestamp and offset did not help:
    /// alarms at these instants may be missing.
    pub saturated_at: Vec<DateTime<Utc>>,
    /// Pages requested.
    pub pages: u32,
    /// How `offset` behaved, if it had to be used.
    pub offset_mode: OffsetMode,
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
}

impl Listing {
    /// Starts a listing of `[from, to)`; `max_pages` bounds the work.
    pub(crate) fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page_size: u32,
        max_pages: u32,
    ) -> Self {
        let page_size = page_size.max(1);
        Listing {
            from,
            to,
            page_size,
            max_pages,
            current: PageRequest {
                since: from,
                count: page_size,
                offset: 0,
            },
            max_page_len: 0,
            min_cap: MIN_PLAUSIBLE_CAP,
            mode: OffsetMode::Unknown,
            probe_anchor: None,
            seen: HashSet::new(),
            alarms: Vec::new(),
            saturated: Vec::new(),
            pages: 0,
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
        check_ascending(&self.current, page)?;
        self.max_page_len = self.max_page_len.max(page.len());
        let asked = usize::try_from(self.current.count).unwrap_or(usize::MAX);
        let full = !page.is_empty()
            && (page.len() >= asked
                || (page.len() >= self.max_page_len && page.len() >= self.min_cap));

        let mut past_end = false;
        for row in page {
            if row.date_inserted >= self.to {
                past_end = true;
                break;
            }
            if row.date_inserted >= self.from && self.seen.insert(row.alarm_id) {
                self.alarms.push(row.clone());
            }
        }
        if let Some(anchor) = self.probe_anchor.take() {
            if let Some(first) = page.first() {
                self.mode = classify(&anchor, first.alarm_id);
            }
        }
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok(Next::Done);
        };
        if past_end || !full {
            return Ok(Next::Done);
        }

        let next = if first.date_inserted != last.date_inserted {
            Some(PageRequest {
                since: last.date_inserted,
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

    /// Next request after a full page whose rows all share timestamp `t`.
    fn tie_step(&mut self, t: DateTime<Utc>, page: &[AlarmRow]) -> Option<PageRequest> {
        let tie_count = self
            .page_size
            .min(u32::try_from(self.max_page_len).unwrap_or(u32::MAX));
        if t != self.current.since {
            if self.current.offset != 0 {
                // The ties of the previous timestamp ended exactly at a page
                // boundary; restart cleanly at `t`.
                return Some(PageRequest {
                    since: t,
                    count: self.page_size,
                    offset: 0,
                });
            }
            // Rows >= since began at `t`, so this page is exactly what (t, 0)
            // would return: treat it as such.
            self.current.since = t;
        }
        let offset = self.current.offset;
        let at = |offset: u32| {
            Some(PageRequest {
                since: t,
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
            pages: self.pages,
            offset_mode: self.mode,
        }
    }
}

/// Mode from the answer to `offset=1` after an offset-0 page with ids `anchor`.
fn classify(anchor: &[AlarmId], first_id: AlarmId) -> OffsetMode {
    if anchor.first() == Some(&first_id) {
        OffsetMode::Ignored
    } else if anchor.get(1) == Some(&first_id) {
        OffsetMode::Records
    } else if !anchor.contains(&first_id) {
        OffsetMode::Pages
    } else {
        // Neither a record shift nor a page shift: not trustworthy, so never
        // rely on it (ties will be reported saturated, not silently dropped).
        OffsetMode::Ignored
    }
}

/// A page must be non-decreasing in `dateInserted`.
fn check_ascending(req: &PageRequest, page: &[AlarmRow]) -> Result<(), Error> {
    for pair in page.windows(2) {
        if let [a, b] = pair {
            if b.date_inserted < a.date_inserted {
                return Err(Error::Order {
                    since: req.since,
                    offset: req.offset,
                    alarm_id: b.alarm_id,
                    prev: a.date_inserted,
                    next: b.date_inserted,
                });
            }
        }
    }
    Ok(())
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

    fn req(ms: i64, count: u32, offset: u32) -> Next {
        Next::Fetch(PageRequest {
            since: t(ms),
            count,
            offset,
        })
    }

    /// Feeds pages in order and checks each decision: one table row per page.
    fn run(page_size: u32, to_ms: i64, steps: &[(Vec<AlarmRow>, Next)]) -> SliceListing {
        let mut l = Listing::new(t(0), t(to_ms), page_size, 100).with_min_cap(1);
        for (i, (page, want)) in steps.iter().enumerate() {
            assert_eq!(l.on_page(page).unwrap(), *want, "step {i}");
        }
        l.finish()
    }

    /// REGRESSION: the lone alarm of a fresh hour was taken for a full page of
    /// one timestamp, probed with offset, and reported saturated (exit 75).
    #[test]
    fn page_below_the_plausible_cap_is_short() {
        let mut l = Listing::new(t(0), t(1000), 1000, 100);
        assert_eq!(l.on_page(&rows(&[(1, 5)])).unwrap(), Next::Done);
        let out = l.finish();
        assert_eq!(out.alarms.len(), 1);
        assert!(out.saturated_at.is_empty());
        // Nine rows of one timestamp, asked for 1000: still short, not saturated.
        let mut l = Listing::new(t(0), t(1000), 1000, 100);
        let nine: Vec<(i64, i64)> = (1..=9).map(|i| (i, 7)).collect();
        assert_eq!(l.on_page(&rows(&nine)).unwrap(), Next::Done);
        assert!(l.finish().saturated_at.is_empty());
        // Ten rows spanning two timestamps could be a capped page: continue.
        let mut l = Listing::new(t(0), t(1000), 1000, 100);
        let ten: Vec<(i64, i64)> = (1..=10).map(|i| (i, if i < 6 { 3 } else { 8 })).collect();
        assert_eq!(l.on_page(&rows(&ten)).unwrap(), req(8, 1000, 0));
    }

    #[test]
    fn short_first_page_ends_the_slice() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(1, 0), (2, 5)]), req(5, 3, 0)),
                (rows(&[(2, 5)]), Next::Done),
            ],
        );
        assert_eq!(out.alarms.len(), 2);
        assert_eq!(out.pages, 2);
        let out = run(3, 1000, &[(vec![], Next::Done)]);
        assert!(out.alarms.is_empty());
    }

    #[test]
    fn full_pages_continue_from_last_timestamp_inclusive() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(1, 0), (2, 1), (3, 2)]), req(2, 3, 0)),
                (rows(&[(3, 2), (4, 3), (5, 3)]), req(3, 3, 0)),
                (rows(&[(4, 3), (5, 3), (6, 9)]), req(9, 3, 0)),
                (rows(&[(6, 9)]), Next::Done),
            ],
        );
        let ids: Vec<_> = out.alarms.iter().map(|a| a.alarm_id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(out.offset_mode, OffsetMode::Unknown);
        assert!(out.saturated_at.is_empty());
    }

    #[test]
    fn server_cap_below_request_is_learned() {
        // Asked for 10, server gives 2 per page: 2 is full, 1 is short.
        let out = run(
            10,
            1000,
            &[
                (rows(&[(1, 0), (2, 1)]), req(1, 10, 0)),
                (rows(&[(2, 1), (3, 4)]), req(4, 10, 0)),
                (rows(&[(3, 4)]), Next::Done),
            ],
        );
        assert_eq!(out.alarms.len(), 3);
    }

    #[test]
    fn row_at_or_past_end_stops_and_is_excluded() {
        let out = run(3, 10, &[(rows(&[(1, 0), (2, 9), (3, 10)]), Next::Done)]);
        let ids: Vec<_> = out.alarms.iter().map(|a| a.alarm_id).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn rows_before_start_are_ignored() {
        let mut l = Listing::new(t(5), t(100), 3, 100).with_min_cap(1);
        assert_eq!(
            l.on_page(&rows(&[(1, 0), (2, 6)])).unwrap(),
            Next::Fetch(PageRequest {
                since: t(6),
                count: 3,
                offset: 0
            })
        );
        assert_eq!(l.on_page(&rows(&[(2, 6)])).unwrap(), Next::Done);
        let out = l.finish();
        assert_eq!(out.alarms.len(), 1);
        assert_eq!(out.alarms[0].alarm_id, 2);
    }

    #[test]
    fn ties_with_record_offset() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(1, 0), (2, 7), (3, 7)]), req(7, 3, 0)),
                (rows(&[(2, 7), (3, 7), (4, 7)]), req(7, 3, 1)),
                (rows(&[(3, 7), (4, 7), (5, 7)]), req(7, 3, 4)),
                (rows(&[(6, 7), (7, 8)]), Next::Done),
            ],
        );
        assert_eq!(out.offset_mode, OffsetMode::Records);
        assert_eq!(out.alarms.len(), 7);
        assert!(out.saturated_at.is_empty());
    }

    #[test]
    fn ties_with_page_index_offset() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(2, 7), (3, 7), (4, 7)]), req(7, 3, 1)),
                (rows(&[(5, 7), (6, 7), (7, 7)]), req(7, 3, 2)),
                (rows(&[(8, 7), (9, 9)]), Next::Done),
            ],
        );
        assert_eq!(out.offset_mode, OffsetMode::Pages);
        assert_eq!(out.alarms.len(), 8);
    }

    #[test]
    fn ties_with_offset_ignored_saturate_then_continue() {
        let out = run(
            3,
            1000,
            &[
                (rows(&[(2, 7), (3, 7), (4, 7)]), req(7, 3, 1)),
                (rows(&[(2, 7), (3, 7), (4, 7)]), req(8, 3, 0)),
                (rows(&[(9, 20)]), Next::Done),
            ],
        );
        assert_eq!(out.offset_mode, OffsetMode::Ignored);
        assert_eq!(out.saturated_at, vec![t(7)]);
        assert_eq!(out.alarms.len(), 4);
    }

    #[test]
    fn known_ignored_mode_saturates_without_probing_again() {
        let out = run(
            2,
            1000,
            &[
                (rows(&[(1, 7), (2, 7)]), req(7, 2, 1)),
                (rows(&[(1, 7), (2, 7)]), req(8, 2, 0)),
                (rows(&[(3, 9), (4, 9)]), req(10, 2, 0)),
                (rows(&[]), Next::Done),
            ],
        );
        assert_eq!(out.saturated_at, vec![t(7), t(9)]);
    }

    #[test]
    fn saturation_at_the_last_millisecond_ends_the_slice() {
        let out = run(
            2,
            8,
            &[
                (rows(&[(1, 7), (2, 7)]), req(7, 2, 1)),
                (rows(&[(1, 7), (2, 7)]), Next::Done),
            ],
        );
        assert_eq!(out.saturated_at, vec![t(7)]);
    }

    #[test]
    fn unordered_page_is_an_order_error() {
        let mut l = Listing::new(t(0), t(1000), 3, 100).with_min_cap(1);
        let err = l.on_page(&rows(&[(1, 5), (2, 3), (3, 9)])).unwrap_err();
        assert!(
            matches!(err, Error::Order { alarm_id, .. } if alarm_id == 2),
            "{err}"
        );
    }

    #[test]
    fn repeated_request_is_no_progress() {
        // A server that ignores dateInserted and keeps returning old rows.
        let mut l = Listing::new(t(100), t(1000), 2, 100).with_min_cap(1);
        assert_eq!(l.on_page(&rows(&[(1, 0), (2, 1)])).unwrap(), req(1, 2, 0));
        let err = l.on_page(&rows(&[(1, 0), (2, 1)])).unwrap_err();
        assert!(matches!(err, Error::NoProgress { .. }), "{err}");
    }

    #[test]
    fn page_budget_is_bounded() {
        let mut l = Listing::new(t(0), t(1_000_000), 1, 3).with_min_cap(1);
        assert_eq!(l.on_page(&rows(&[(1, 1)])).unwrap(), req(1, 1, 1));
        assert_eq!(l.on_page(&rows(&[(2, 2)])).unwrap(), req(2, 1, 0));
        let err = l.on_page(&rows(&[(3, 3)])).unwrap_err();
        assert!(matches!(err, Error::TooManyPages { max: 3, .. }), "{err}");
    }

    #[test]
    fn classify_table() {
        let anchor = [10, 11, 12].map(AlarmId::from);
        assert_eq!(classify(&anchor, 10.into()), OffsetMode::Ignored);
        assert_eq!(classify(&anchor, 11.into()), OffsetMode::Records);
        assert_eq!(classify(&anchor, 13.into()), OffsetMode::Pages);
        assert_eq!(classify(&anchor, 12.into()), OffsetMode::Ignored);
    }

    #[test]
    fn empty_slice_requests_nothing() {
        let l = Listing::new(t(5), t(5), 10, 10);
        assert_eq!(l.first_request(), None);
    }
}
