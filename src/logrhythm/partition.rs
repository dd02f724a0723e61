//! The pure partition of a saturated instant (DESIGN.md §1.3): a full page of
//! alarms sharing one `dateInserted` on a server that ignores `offset` cannot be
//! paged through, so the instant is listed again in parts, each narrowed by the
//! list filters, until every part fits in a page. No I/O here; the client
//! (`super::Client::list_slice`) fetches what this module asks for.
//!
//! The parts, broadest first:
//! 1. `alarmStatus`, each of its ten values (0–9): an exhaustive split;
//! 2. a status part that still does not fit is split by `entityName`;
//! 3. a status and entity part that still does not fit, by `alarmRuleName`.
//!
//! Entity and rule names cannot be enumerated through the Alarm API, so levels
//! 2 and 3 use every value seen at that instant, in any part: what a later part
//! shows is asked for in the parts already split (a fixed point), so a value
//! goes unasked only if none of its alarms at that instant appears in any page
//! asked. A part *fits* when its page is short, or holds a row after the
//! instant (pages come sorted by `dateInserted`, so every row of that part at
//! the instant came before it). The instant is **resolved** when every part
//! fits. It stays saturated when a part of all three filters still does not
//! fit, when the server ignores a filter (a row that does not match it comes
//! back), or when the request budget is spent.

use std::collections::{BTreeSet, HashSet, VecDeque};

use chrono::{DateTime, Utc};

use super::listing::TICK_LEAD;
use crate::model::AlarmRow;

/// The statuses an alarm can have (spec §8): the exhaustive first split.
const STATUSES: std::ops::RangeInclusive<i64> = 0..=9;

/// Requests one saturated instant may cost before it is left saturated.
pub const MAX_PARTITION_REQUESTS: u32 = 300;

/// The list filters of one part. `None` is "not filtered by this".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filter {
    /// `alarmStatus`.
    pub status: Option<i64>,
    /// `entityName`, exact.
    pub entity: Option<String>,
    /// `alarmRuleName`, exact.
    pub rule: Option<String>,
}

impl Filter {
    /// Whether `row` is one this filter admits.
    pub fn admits(&self, row: &AlarmRow) -> bool {
        self.status.is_none_or(|s| row.status == s)
            && self.entity.as_deref().is_none_or(|e| row.entity_name == e)
            && self.rule.as_deref().is_none_or(|r| row.rule_name == r)
    }

    /// For logs: `alarmStatus=0 entityName="Primary Site"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.status {
            parts.push(format!("alarmStatus={s}"));
        }
        if let Some(e) = &self.entity {
            parts.push(format!("entityName={e:?}"));
        }
        if let Some(r) = &self.rule {
            parts.push(format!("alarmRuleName={r:?}"));
        }
        parts.join(" ")
    }

    /// How a part that does not fit is split next, if at all.
    fn next_level(&self) -> Option<Level> {
        match (&self.entity, &self.rule) {
            (None, None) => Some(Level::Entity),
            (Some(_), None) => Some(Level::Rule),
            _ => None,
        }
    }

    fn child(&self, level: Level, value: &str) -> Filter {
        let mut f = self.clone();
        match level {
            Level::Entity => f.entity = Some(value.to_string()),
            Level::Rule => f.rule = Some(value.to_string()),
        }
        f
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Entity,
    Rule,
}

/// One request of a partition: `GET /alarms` from `since` with these filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRequest {
    /// `dateInserted` lower bound, in the server's own time (one tick lead).
    pub since: DateTime<Utc>,
    pub count: u32,
    pub filter: Filter,
}

/// What a partition found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionOutcome {
    /// Every row the parts returned inside the slice, unsorted, possibly
    /// repeating rows the slice's listing already holds.
    pub rows: Vec<AlarmRow>,
    /// Every part fitted: no alarm of the instant is missing.
    pub resolved: bool,
    /// Requests made.
    pub requests: u32,
    /// Why it is not resolved, for the log.
    pub unresolved: Vec<String>,
}

/// Partition state of one saturated instant.
#[derive(Debug)]
pub(crate) struct Partition {
    t: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    count: u32,
    /// A page this long is full (the largest page the server sent).
    full_len: usize,
    queue: VecDeque<Filter>,
    asked: HashSet<Filter>,
    /// Parts that did not fit and are split by the next level.
    split: Vec<Filter>,
    entities: BTreeSet<String>,
    rules: BTreeSet<String>,
    out: PartitionOutcome,
    max_requests: u32,
    current: Option<Filter>,
}

impl Partition {
    /// Starts the partition of instant `t` of the slice `[from, to)`. `seen`
    /// are rows already listed (their names at `t` are asked for at once);
    /// `full_len` the length of a full page; `count` the rows to ask for.
    pub(crate) fn new(
        t: DateTime<Utc>,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        count: u32,
        full_len: usize,
        seen: &[AlarmRow],
    ) -> Self {
        let mut p = Partition {
            t,
            from,
            to,
            count: count.max(1),
            full_len: full_len.max(1),
            queue: STATUSES
                .map(|s| Filter {
                    status: Some(s),
                    ..Filter::default()
                })
                .collect(),
            asked: HashSet::new(),
            split: Vec::new(),
            entities: BTreeSet::new(),
            rules: BTreeSet::new(),
            out: PartitionOutcome::default(),
            max_requests: MAX_PARTITION_REQUESTS,
            current: None,
        };
        for row in seen.iter().filter(|r| r.date_inserted == t) {
            p.learn(row);
        }
        p
    }

    #[cfg(test)]
    fn with_budget(mut self, max: u32) -> Self {
        self.max_requests = max;
        self
    }

    fn learn(&mut self, row: &AlarmRow) {
        if !self.entities.contains(&row.entity_name) {
            self.entities.insert(row.entity_name.clone());
        }
        if !self.rules.contains(&row.rule_name) {
            self.rules.insert(row.rule_name.clone());
        }
    }

    /// The next request, or `None` when the partition is over.
    pub(crate) fn next_request(&mut self) -> Option<PartRequest> {
        if self.queue.is_empty() {
            self.expand();
        }
        if self.out.requests >= self.max_requests {
            if !self.queue.is_empty() {
                let left = self.queue.len();
                self.queue.clear();
                self.out.unresolved.push(format!(
                    "request budget of {} spent with {left} parts left",
                    self.max_requests
                ));
            }
            return None;
        }
        let filter = self.queue.pop_front()?;
        self.asked.insert(filter.clone());
        self.current = Some(filter.clone());
        Some(PartRequest {
            since: self.t - TICK_LEAD,
            count: self.count,
            filter,
        })
    }

    /// Asks, in every part already split, for the values seen since.
    fn expand(&mut self) {
        for parent in &self.split {
            let Some(level) = parent.next_level() else {
                continue;
            };
            let values = match level {
                Level::Entity => &self.entities,
                Level::Rule => &self.rules,
            };
            for v in values {
                let child = parent.child(level, v);
                if !self.asked.contains(&child) && !self.queue.contains(&child) {
                    self.queue.push_back(child);
                }
            }
        }
    }

    /// Takes in the page answering the last request.
    pub(crate) fn on_page(&mut self, page: &[AlarmRow]) {
        self.out.requests += 1;
        let Some(filter) = self.current.take() else {
            return;
        };
        let mut page = page.to_vec();
        page.sort_by_key(|r| (r.date_inserted, r.alarm_id));
        let mut ignored = false;
        for row in &page {
            if !filter.admits(row) {
                ignored = true;
            }
            if row.date_inserted == self.t {
                self.learn(row);
            }
            if row.date_inserted >= self.from && row.date_inserted < self.to {
                self.out.rows.push(row.clone());
            }
        }
        if ignored {
            // Nothing narrowed by filters can be trusted on this server.
            self.queue.clear();
            self.split.clear();
            self.out.unresolved.push(format!(
                "the server ignores a filter of {} (a row that does not match came back)",
                filter.describe()
            ));
            return;
        }
        let fits =
            page.len() < self.full_len || page.last().is_some_and(|r| r.date_inserted > self.t);
        if fits {
            return;
        }
        if filter.next_level().is_some() {
            self.split.push(filter);
        } else {
            self.out
                .unresolved
                .push(format!("{} holds more than a page", filter.describe()));
        }
    }

    /// The result.
    pub(crate) fn finish(mut self) -> PartitionOutcome {
        self.out.resolved = self.out.unresolved.is_empty();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
    }

    fn row(id: i64, ms: i64, status: i64, entity: &str, rule: &str) -> AlarmRow {
        AlarmRow {
            alarm_id: id.into(),
            rule_name: rule.into(),
            status,
            entity_name: entity.into(),
            date_inserted: t(ms),
        }
    }

    /// A server that ignores offset: each request gets the first `cap` rows
    /// matching its filters (or all rows, when `honours` is false), sorted.
    fn serve(all: &[AlarmRow], req: &PartRequest, cap: usize, honours: bool) -> Vec<AlarmRow> {
        let mut rows: Vec<AlarmRow> = all
            .iter()
            .filter(|r| r.date_inserted >= req.since)
            .filter(|r| !honours || req.filter.admits(r))
            .cloned()
            .collect();
        rows.sort_by_key(|r| (r.date_inserted, r.alarm_id));
        rows.truncate(cap.min(req.count as usize));
        rows
    }

    fn run(all: &[AlarmRow], cap: usize, honours: bool, budget: u32) -> PartitionOutcome {
        let first = serve(
            all,
            &PartRequest {
                since: t(70) - TICK_LEAD,
                count: cap as u32,
                filter: Filter::default(),
            },
            cap,
            true,
        );
        let mut p = Partition::new(t(70), (t(0), t(1000)), 100, cap, &first).with_budget(budget);
        while let Some(req) = p.next_request() {
            let page = serve(all, &req, cap, honours);
            p.on_page(&page);
        }
        p.finish()
    }

    fn ids_at_70(out: &PartitionOutcome) -> BTreeSet<i64> {
        out.rows
            .iter()
            .filter(|r| r.date_inserted == t(70))
            .map(|r| r.alarm_id.get())
            .collect()
    }

    /// `n` rows at t(70), spread by `spread(i)` over (status, entity, rule),
    /// then 5 later rows.
    fn burst(n: i64, spread: impl Fn(i64) -> (i64, &'static str, &'static str)) -> Vec<AlarmRow> {
        let mut v: Vec<AlarmRow> = (0..n)
            .map(|i| {
                let (s, e, r) = spread(i);
                row(i + 1, 70, s, e, r)
            })
            .collect();
        v.extend((0..5).map(|i| row(1000 + i, 80 + i, 0, "E", "R")));
        v
    }

    const ENTITIES: [&str; 3] = ["Global Entity", "Primary Site", "Branch Office"];
    const RULES: [&str; 4] = ["R1", "R2", "R3", "R4"];

    #[test]
    fn partitions_resolve_or_stay_saturated() {
        // (case, ties, spread, cap, server honours filters, resolved, ties found)
        type Spread = fn(i64) -> (i64, &'static str, &'static str);
        let cases: [(&str, i64, Spread, usize, bool, bool, usize); 5] = [
            (
                "spread over statuses: the status split suffices",
                60,
                |i| (i % 10, "E", "R"),
                10,
                true,
                true,
                60,
            ),
            (
                "one status, three entities",
                60,
                |i| (0, ENTITIES[(i % 3) as usize], "R"),
                25,
                true,
                true,
                60,
            ),
            (
                "one status, one entity, four rules",
                60,
                |i| (0, "E", RULES[(i % 4) as usize]),
                20,
                true,
                true,
                60,
            ),
            (
                "identical ties cannot be split",
                60,
                |_| (0, "E", "R"),
                25,
                true,
                false,
                25,
            ),
            (
                "a server ignoring the filters is never trusted",
                60,
                |i| (i % 10, "E", "R"),
                10,
                false,
                false,
                10,
            ),
        ];
        for (case, n, spread, cap, honours, resolved, found) in cases {
            let all = burst(n, spread);
            let out = run(&all, cap, honours, MAX_PARTITION_REQUESTS);
            assert_eq!(out.resolved, resolved, "{case}: {:?}", out.unresolved);
            assert_eq!(ids_at_70(&out).len(), found, "{case}");
            assert!(out.requests <= MAX_PARTITION_REQUESTS, "{case}");
        }
    }

    /// A name the first pages never showed, seen in a later part, is asked
    /// for in the parts already split (the fixed point).
    #[test]
    fn names_seen_only_in_a_later_part_are_asked_for_too() {
        // ids 1..=10: status 1 at "Branch Office"; 11..=30 status 0 at
        // "Global Entity" (two rules); 31..=40 status 0 at "Branch Office",
        // which the status-0 page (ids 11..=30) never shows.
        let all = burst(40, |i| match i {
            0..=9 => (1, "Branch Office", "R"),
            10..=29 => (0, "Global Entity", RULES[(i % 2) as usize]),
            _ => (0, "Branch Office", "R"),
        });
        let mut p = Partition::new(t(70), (t(0), t(1000)), 100, 20, &[]);
        let mut asked = Vec::new();
        while let Some(req) = p.next_request() {
            asked.push(req.filter.describe());
            p.on_page(&serve(&all, &req, 20, true));
        }
        let out = p.finish();
        assert!(out.resolved, "{:?}", out.unresolved);
        assert_eq!(ids_at_70(&out).len(), 40);
        assert!(asked.contains(&"alarmStatus=0 entityName=\"Branch Office\"".to_string()));
    }

    #[test]
    fn the_budget_bounds_the_requests_and_leaves_the_instant_saturated() {
        let all = burst(60, |i| (0, "E", RULES[(i % 4) as usize]));
        let out = run(&all, 20, true, 12);
        assert_eq!(out.requests, 12);
        assert!(!out.resolved);
        assert!(out.unresolved.iter().any(|u| u.contains("budget")));
    }

    #[test]
    fn rows_outside_the_slice_are_not_returned() {
        let mut all = burst(30, |i| (i % 10, "E", "R"));
        all.push(row(5000, 2000, 0, "E", "R"));
        let mut p = Partition::new(t(70), (t(0), t(100)), 100, 10, &[]);
        while let Some(req) = p.next_request() {
            p.on_page(&serve(&all, &req, 100, true));
        }
        let out = p.finish();
        assert!(out.resolved);
        assert!(out.rows.iter().all(|r| r.date_inserted < t(100)));
    }

    #[test]
    fn describe_names_each_filter() {
        let f = Filter {
            status: Some(0),
            entity: Some("Primary Site".into()),
            rule: Some("R".into()),
        };
        assert_eq!(
            f.describe(),
            "alarmStatus=0 entityName=\"Primary Site\" alarmRuleName=\"R\""
        );
    }
}
