//! Read-only queries behind the audit commands (`lrci ledger ...`): counts, alarm and
//! indicator listings, one alarm with its detections and submissions, runs, the
//! coverage map as hour ranges, and a streamed export.
//!
//! Everything here only reads, so it works on a ledger opened with
//! [`Mode::ReadOnly`](super::Mode::ReadOnly) while a sync writes (WAL). Values are
//! always bound; the only SQL assembled at run time is the choice among constant
//! `WHERE` fragments, so each filter can use its index. Times are returned as the
//! ledger stores them (RFC 3339 UTC text); the command layer formats them for people.
//!
//! The coverage arithmetic ([`classify_slices`], [`summarise_coverage`],
//! [`merge_gaps`]) is pure and has no SQL.

use super::{parse_ts, sql, ts, Coverage, Ledger, Result, StateCounts};
use crate::model::{AlarmDecision, AlarmId, DetectionState, IndicatorType};
use chrono::{DateTime, Duration as Span, Utc};
use rusqlite::types::ToSql;
use rusqlite::{OptionalExtension, Row};
use serde::Serialize;
use std::collections::BTreeMap;

/// Lower and upper bounds that every stored timestamp lies between, so a range
/// filter that was not given still uses the `date_inserted` index.
const TIME_MIN: &str = "0000";
const TIME_MAX: &str = "9999-12-31T23:59:59.999Z~";

/// Alarms by the decision taken about them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlarmCounts {
    pub total: u64,
    pub accepted: u64,
    pub filtered: u64,
    pub error: u64,
}

/// How fresh the ledger is: when the last run and the last successful sync
/// started, and how far the completely listed hours trail now. For
/// `ledger status --json`, `doctor --max-age` and the metrics file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Freshness {
    pub last_run_at: Option<String>,
    pub last_run_kind: Option<String>,
    /// `None` while that run is going on or when it died without finishing.
    pub last_run_exit_code: Option<i64>,
    /// The newest `sync` or `backfill` that exited 0.
    pub last_success_at: Option<String>,
    pub last_success_age_seconds: Option<f64>,
    /// The oldest hour lrci has ever listed: the start of the sync window.
    pub window_start: Option<String>,
    /// Seconds from the end of the newest completely listed hour to now.
    pub coverage_lag_seconds: Option<f64>,
    /// The largest observed lag, first seen − `dateInserted`, of the alarms
    /// inserted in the last day (it includes the schedule's interval and
    /// `settle`): how late alarms reach lrci.
    pub visibility_lag_seconds: Option<f64>,
}

/// Seconds from `then` to `now`, never negative.
fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    ((now - then).num_milliseconds().max(0) as f64) / 1000.0
}

/// One row of `runs`, with what it sent (items of its non-debug 2xx submissions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub kind: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub window_from: Option<String>,
    pub window_to: Option<String>,
    /// `None` while the run is going on, or when it died without finishing.
    pub exit_code: Option<i64>,
    pub sent: u64,
    /// The run's `--json` summary as it stored it (JSON text).
    pub summary: Option<String>,
}

/// Which alarms `ledger alarms` lists.
#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    /// `date_inserted >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `date_inserted < to`.
    pub to: Option<DateTime<Utc>>,
    /// Case-insensitive (ASCII) substring of the rule name.
    pub rule: Option<String>,
    /// `accepted`, `filtered` or `error`.
    pub decision: Option<AlarmDecision>,
    pub limit: usize,
}

/// One alarm in a listing, with how many detections it has and how many were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmListRow {
    pub alarm_id: AlarmId,
    pub rule_name: String,
    pub date_inserted: String,
    pub rbp_max: Option<i64>,
    pub decision: AlarmDecision,
    pub reason: Option<String>,
    pub fetch_attempts: i64,
    pub last_error: Option<String>,
    pub detections: u64,
    pub sent: u64,
}

/// Which detections `ledger indicators` lists.
#[derive(Debug, Clone, Default)]
pub struct IndicatorFilter {
    pub kind: Option<IndicatorType>,
    /// Case-insensitive (ASCII) substring of the normalised value.
    pub value: Option<String>,
    pub state: Option<DetectionState>,
    pub alarm: Option<AlarmId>,
    pub limit: usize,
}

/// One detection in a listing, with its alarm's rule and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndicatorRow {
    pub id: i64,
    pub alarm_id: AlarmId,
    pub rule_name: String,
    pub date_inserted: String,
    #[serde(rename = "type")]
    pub ioc_type: String,
    pub value: String,
    pub field: String,
    pub state: DetectionState,
    pub reason: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
    pub submission_id: Option<i64>,
}

/// Everything the ledger holds about one alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmDetail {
    pub alarm_id: AlarmId,
    pub rule_name: String,
    pub status: Option<i64>,
    pub entity_name: Option<String>,
    pub date_inserted: String,
    pub rbp_max: Option<i64>,
    pub decision: AlarmDecision,
    pub reason: Option<String>,
    pub event_count: Option<i64>,
    pub fetch_attempts: i64,
    pub last_error: Option<String>,
    pub first_run_id: Option<i64>,
    pub first_seen_at: String,
    pub updated_at: String,
}

/// The POST to Collective Insights a detection was last part of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubmissionInfo {
    pub id: i64,
    pub run_id: Option<i64>,
    pub at: String,
    pub items: i64,
    pub debug: bool,
    /// `ok`, `rejected` or `failed`.
    pub outcome: String,
    pub http_status: Option<i64>,
}

/// One detection of an alarm, for `ledger show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmIndicator {
    pub id: i64,
    #[serde(rename = "type")]
    pub ioc_type: String,
    pub value: String,
    pub field: String,
    pub state: DetectionState,
    pub reason: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub submission: Option<SubmissionInfo>,
}

/// The tombstone `ledger prune` keeps of an alarm whose detail it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedAlarm {
    pub alarm_id: AlarmId,
    pub date_inserted: String,
    pub decision: AlarmDecision,
    pub detections: u64,
    pub sent: u64,
    pub unsent: u64,
    pub pruned_at: String,
}

/// Which detections `ledger export` writes.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub state: Option<DetectionState>,
    /// The alarm's `date_inserted >= from`.
    pub from: Option<DateTime<Utc>>,
    /// The alarm's `date_inserted < to`.
    pub to: Option<DateTime<Utc>>,
}

/// What RBP says when the alarm's details were not fetched (see
/// `fetch_details`): shown and exported instead of an empty value.
pub const RBP_NOT_FETCHED: &str = "not fetched";

fn rbp_or_not_fetched<S: serde::Serializer>(rbp: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match rbp {
        Some(n) => s.serialize_i64(*n),
        None => s.serialize_str(RBP_NOT_FETCHED),
    }
}

/// One exported detection with its alarm's fields. The field order is the CSV
/// column order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRow {
    pub detection_id: i64,
    pub alarm_id: AlarmId,
    pub rule_name: String,
    pub date_inserted: String,
    pub entity_name: Option<String>,
    /// `None`: the alarm's details were not fetched (no setting needed them);
    /// exported as the text `not fetched`.
    #[serde(serialize_with = "rbp_or_not_fetched")]
    pub rbp_max: Option<i64>,
    pub decision: AlarmDecision,
    #[serde(rename = "type")]
    pub ioc_type: String,
    pub value: String,
    pub field: String,
    pub state: DetectionState,
    pub reason: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub submission_id: Option<i64>,
}

/// Why an export stopped: the ledger, or the sink the rows went to.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Ledger(#[from] super::Error),
    #[error("cannot write the export: {0}")]
    Sink(#[source] std::io::Error),
}

/// What the coverage map says about one UTC hour slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SliceState {
    /// Listed completely to the end of the hour.
    Covered,
    /// Listed completely only up to `covered_until`, before the end of the hour.
    Partial { covered_until: DateTime<Utc> },
    /// Never listed completely.
    Uncovered,
    /// Listed, but a full page shared one timestamp and the server ignored `offset`
    /// at these instants: alarms may be missing.
    Saturated { saturated_at: Vec<DateTime<Utc>> },
}

/// Counts of hour slices in a range, for `ledger status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoverageSummary {
    pub from: String,
    pub to: String,
    /// Hours in `[from, to)`.
    pub hours: u64,
    /// Hours listed completely and not saturated.
    pub covered_hours: u64,
    pub partial_hours: u64,
    pub uncovered_hours: u64,
    pub saturated_hours: u64,
}

/// What a [`GapRange`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    Uncovered,
    Partial,
    Saturated,
}

impl GapKind {
    /// The lower-case name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::Uncovered => "uncovered",
            GapKind::Partial => "partial",
            GapKind::Saturated => "saturated",
        }
    }
}

/// Contiguous hours of one kind that are not covered cleanly: `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRange {
    pub kind: GapKind,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// For a partial slice: up to when it was listed.
    pub covered_until: Option<DateTime<Utc>>,
    /// For saturated slices: every instant where a full page shared one timestamp.
    pub saturated_at: Vec<DateTime<Utc>>,
}

impl GapRange {
    /// Whole hours in the range.
    pub fn hours(&self) -> i64 {
        (self.to - self.from).num_hours()
    }
}

/// The slice length and rounding are the model's ([`crate::model::Slice`]): the
/// same hours the engine lists.
fn hour() -> Span {
    crate::model::Slice::LEN
}

fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    crate::model::Slice::floor(t)
}

/// The state of every hour slice starting in `[floor_hour(from), to)`, in order.
pub fn classify_slices(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    coverage: &BTreeMap<DateTime<Utc>, Coverage>,
) -> Vec<(DateTime<Utc>, SliceState)> {
    let mut out = Vec::new();
    let mut start = floor_hour(from);
    while start < to {
        let end = start + hour();
        let state = match coverage.get(&start) {
            None => SliceState::Uncovered,
            Some(c) if !c.saturated_at.is_empty() => SliceState::Saturated {
                saturated_at: c.saturated_at.clone(),
            },
            Some(c) if c.covered_until >= end => SliceState::Covered,
            Some(c) => SliceState::Partial {
                covered_until: c.covered_until,
            },
        };
        out.push((start, state));
        start = end;
    }
    out
}

/// Counts the slices of [`classify_slices`] by state.
pub fn summarise_coverage(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    slices: &[(DateTime<Utc>, SliceState)],
) -> CoverageSummary {
    let mut s = CoverageSummary {
        from: ts(from),
        to: ts(to),
        hours: 0,
        covered_hours: 0,
        partial_hours: 0,
        uncovered_hours: 0,
        saturated_hours: 0,
    };
    for (_, state) in slices {
        s.hours += 1;
        match state {
            SliceState::Covered => s.covered_hours += 1,
            SliceState::Partial { .. } => s.partial_hours += 1,
            SliceState::Uncovered => s.uncovered_hours += 1,
            SliceState::Saturated { .. } => s.saturated_hours += 1,
        }
    }
    s
}

/// Merges the slices that are not cleanly covered into ranges for people:
/// adjacent uncovered hours become one range, adjacent saturated hours one range
/// (with all their instants); each partial hour stays on its own, since each has
/// its own `covered_until`.
pub fn merge_gaps(slices: &[(DateTime<Utc>, SliceState)]) -> Vec<GapRange> {
    let mut out: Vec<GapRange> = Vec::new();
    for (start, state) in slices {
        let end = *start + hour();
        let (kind, covered_until, saturated_at) = match state {
            SliceState::Covered => continue,
            SliceState::Uncovered => (GapKind::Uncovered, None, Vec::new()),
            SliceState::Partial { covered_until } => {
                (GapKind::Partial, Some(*covered_until), Vec::new())
            }
            SliceState::Saturated { saturated_at } => {
                (GapKind::Saturated, None, saturated_at.clone())
            }
        };
        if let Some(last) = out.last_mut() {
            if last.to == *start && last.kind == kind && kind != GapKind::Partial {
                last.to = end;
                last.saturated_at.extend(saturated_at);
                continue;
            }
        }
        out.push(GapRange {
            kind,
            from: *start,
            to: end,
            covered_until,
            saturated_at,
        });
    }
    out
}

/// The shortest `--value` the trigram index can answer: a trigram is three
/// characters, and FTS5 matches nothing for a shorter phrase.
pub const MIN_INDEXED_VALUE: usize = 3;

/// How `list_indicators` finds the rows of a `--value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// Every row (or an alarm's rows) is read and held to the predicate.
    Scan,
    /// The trigram index proposes the rows that contain the value.
    Index,
}

/// The index for a value of [`MIN_INDEXED_VALUE`] characters or more, unless
/// the rows come from one alarm (a handful, through its own index).
fn indicator_search(f: &IndicatorFilter) -> Search {
    match &f.value {
        Some(v) if f.alarm.is_none() && v.chars().count() >= MIN_INDEXED_VALUE => Search::Index,
        _ => Search::Scan,
    }
}

/// `value` as one FTS5 phrase (a string in double quotes, inner quotes
/// doubled): the trigram tokenizer turns it into consecutive trigrams, which
/// match exactly the values that contain it. Nothing in it is query syntax.
fn fts_phrase(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `WHERE` clause from constant fragments and the values bound to them.
#[derive(Default)]
struct Where {
    clauses: Vec<&'static str>,
    values: Vec<(&'static str, Box<dyn ToSql>)>,
}

impl Where {
    fn add(&mut self, clause: &'static str, name: &'static str, value: Box<dyn ToSql>) {
        self.clauses.push(clause);
        self.values.push((name, value));
    }

    /// Binds a value that is not part of the `WHERE` clause (e.g. `:limit`).
    fn bind(&mut self, name: &'static str, value: Box<dyn ToSql>) {
        self.values.push((name, value));
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn params(&self) -> Vec<(&str, &dyn ToSql)> {
        self.values.iter().map(|(n, v)| (*n, v.as_ref())).collect()
    }
}

fn map_run(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get("id")?,
        kind: r.get("kind")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        window_from: r.get("window_from")?,
        window_to: r.get("window_to")?,
        exit_code: r.get("exit_code")?,
        sent: count(r.get("sent")?),
        summary: r.get("summary")?,
    })
}

fn map_alarm_list(r: &Row<'_>) -> rusqlite::Result<AlarmListRow> {
    Ok(AlarmListRow {
        alarm_id: r.get("alarm_id")?,
        rule_name: r.get("rule_name")?,
        date_inserted: r.get("date_inserted")?,
        rbp_max: r.get("rbp_max")?,
        decision: sql::get(r, "decision", "alarms.decision")?,
        reason: r.get("reason")?,
        fetch_attempts: r.get("fetch_attempts")?,
        last_error: r.get("last_error")?,
        detections: count(r.get("detections")?),
        sent: count(r.get("sent")?),
    })
}

fn map_indicator(r: &Row<'_>) -> rusqlite::Result<IndicatorRow> {
    Ok(IndicatorRow {
        id: r.get("id")?,
        alarm_id: r.get("alarm_id")?,
        rule_name: r.get("rule_name")?,
        date_inserted: r.get("date_inserted")?,
        ioc_type: r.get("ioc_type")?,
        value: r.get("value")?,
        field: r.get("field")?,
        state: sql::get(r, "state", "detections.state")?,
        reason: r.get("reason")?,
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        sent_at: r.get("sent_at")?,
        submission_id: r.get("submission_id")?,
    })
}

fn map_alarm_detail(r: &Row<'_>) -> rusqlite::Result<AlarmDetail> {
    Ok(AlarmDetail {
        alarm_id: r.get("alarm_id")?,
        rule_name: r.get("rule_name")?,
        status: r.get("status")?,
        entity_name: r.get("entity_name")?,
        date_inserted: r.get("date_inserted")?,
        rbp_max: r.get("rbp_max")?,
        decision: sql::get(r, "decision", "alarms.decision")?,
        reason: r.get("reason")?,
        event_count: r.get("event_count")?,
        fetch_attempts: r.get("fetch_attempts")?,
        last_error: r.get("last_error")?,
        first_run_id: r.get("first_run_id")?,
        first_seen_at: r.get("first_seen_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn map_alarm_indicator(r: &Row<'_>) -> rusqlite::Result<AlarmIndicator> {
    let submission = match r.get::<_, Option<i64>>("sub_id")? {
        None => None,
        Some(id) => Some(SubmissionInfo {
            id,
            run_id: r.get("sub_run_id")?,
            at: r.get("sub_at")?,
            items: r.get("sub_items")?,
            debug: r.get::<_, i64>("sub_debug")? != 0,
            outcome: r.get("sub_outcome")?,
            http_status: r.get("sub_http_status")?,
        }),
    };
    Ok(AlarmIndicator {
        id: r.get("id")?,
        ioc_type: r.get("ioc_type")?,
        value: r.get("value")?,
        field: r.get("field")?,
        state: sql::get(r, "state", "detections.state")?,
        reason: r.get("reason")?,
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        sent_at: r.get("sent_at")?,
        submission,
    })
}

fn map_export(r: &Row<'_>) -> rusqlite::Result<ExportRow> {
    Ok(ExportRow {
        detection_id: r.get("id")?,
        alarm_id: r.get("alarm_id")?,
        rule_name: r.get("rule_name")?,
        date_inserted: r.get("date_inserted")?,
        entity_name: r.get("entity_name")?,
        rbp_max: r.get("rbp_max")?,
        decision: sql::get(r, "decision", "alarms.decision")?,
        ioc_type: r.get("ioc_type")?,
        value: r.get("value")?,
        field: r.get("field")?,
        state: sql::get(r, "state", "detections.state")?,
        reason: r.get("reason")?,
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        sent_at: r.get("sent_at")?,
        submission_id: r.get("submission_id")?,
    })
}

impl Ledger {
    /// Alarms in the ledger by decision.
    pub fn alarm_counts(&self) -> Result<AlarmCounts> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT decision, count(*) FROM alarms GROUP BY decision")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                let d: AlarmDecision = sql::get(r, 0, "alarms.decision")?;
                Ok((d, r.get::<_, i64>(1)?))
            })
            .map_err(|e| self.sql(e))?;
        let mut c = AlarmCounts::default();
        for row in rows {
            let (decision, n) = row.map_err(|e| self.sql(e))?;
            let n = count(n);
            c.total += n;
            match decision {
                AlarmDecision::Accepted => c.accepted = n,
                AlarmDecision::Filtered => c.filtered = n,
                AlarmDecision::Error => c.error = n,
            }
        }
        Ok(c)
    }

    /// The last `limit` runs, newest first.
    pub fn recent_runs(&self, limit_n: usize) -> Result<Vec<RunRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.id, r.kind, r.started_at, r.finished_at, r.window_from, r.window_to,
                        r.exit_code, r.summary,
                        (SELECT coalesce(sum(s.items), 0) FROM submissions s
                          WHERE s.run_id = r.id AND s.outcome = 'ok' AND s.debug = 0) AS sent
                 FROM runs r ORDER BY r.id DESC LIMIT ?1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([limit(limit_n)], map_run)
            .map_err(|e| self.sql(e))?;
        rows.map(|r| r.map_err(|e| self.sql(e))).collect()
    }

    /// The oldest hour slice the coverage map holds (the start of the sync
    /// window); `None` before the first listing.
    pub fn first_slice(&self) -> Result<Option<DateTime<Utc>>> {
        let first: Option<String> = self
            .conn
            .query_row("SELECT min(slice_start) FROM coverage", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        Ok(first.as_deref().and_then(parse_stored))
    }

    /// The start time of the newest `sync` or `backfill` that exited 0.
    pub fn last_success(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = self
            .conn
            .query_row(
                "SELECT max(started_at) FROM runs
                 WHERE exit_code = 0 AND kind IN ('sync', 'backfill')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok(at.as_deref().and_then(parse_stored))
    }

    /// Seconds from the newest listed instant since `from` to `now`: the end of
    /// the newest completely listed hour, or how far the hour after it was
    /// listed; `None` when nothing is listed.
    pub fn coverage_lag(&self, from: DateTime<Utc>, now: DateTime<Utc>) -> Result<Option<f64>> {
        let slices = self.slice_states(from, now)?;
        let Some(i) = slices
            .iter()
            .rposition(|(_, st)| matches!(st, SliceState::Covered))
        else {
            return Ok(None);
        };
        let mut reached = slices[i].0 + Span::hours(1);
        if let Some((_, SliceState::Partial { covered_until })) = slices.get(i + 1) {
            reached = reached.max(*covered_until);
        }
        Ok(Some(age(reached, now)))
    }

    /// The largest first seen − `dateInserted` of the alarms inserted since
    /// `since`, in seconds; `None` when there are none.
    pub fn visibility_lag(&self, since: DateTime<Utc>) -> Result<Option<f64>> {
        self.conn
            .query_row(
                "SELECT max((julianday(first_seen_at) - julianday(date_inserted)) * 86400.0)
                 FROM alarms WHERE date_inserted >= ?1",
                [ts(since)],
                |r| r.get::<_, Option<f64>>(0),
            )
            .map(|v| v.map(|s| (s.max(0.0) * 1000.0).round() / 1000.0))
            .map_err(|e| self.sql(e))
    }

    /// See [`Freshness`].
    pub fn freshness(&self, now: DateTime<Utc>) -> Result<Freshness> {
        let last = self.recent_runs(1)?.into_iter().next();
        let success = self.last_success()?;
        let start = self.first_slice()?;
        let lag = match start {
            Some(from) => self.coverage_lag(from, now)?,
            None => None,
        };
        Ok(Freshness {
            last_run_at: last.as_ref().map(|r| r.started_at.clone()),
            last_run_kind: last.as_ref().map(|r| r.kind.clone()),
            last_run_exit_code: last.as_ref().and_then(|r| r.exit_code),
            last_success_at: success.map(ts),
            last_success_age_seconds: success.map(|t| age(t, now)),
            window_start: start.map(ts),
            coverage_lag_seconds: lag,
            visibility_lag_seconds: self.visibility_lag(now - Span::days(1))?,
        })
    }

    /// Alarms matching `f`, newest (`date_inserted`) first.
    pub fn list_alarms(&self, f: &AlarmFilter) -> Result<Vec<AlarmListRow>> {
        let mut w = Where::default();
        // The range is always bound so the date index serves both order and filter.
        w.add(
            "a.date_inserted >= :from",
            ":from",
            Box::new(f.from.map_or_else(|| TIME_MIN.to_string(), ts)),
        );
        w.add(
            "a.date_inserted < :to",
            ":to",
            Box::new(f.to.map_or_else(|| TIME_MAX.to_string(), ts)),
        );
        if let Some(rule) = &f.rule {
            w.add(
                "instr(lower(a.rule_name), lower(:rule)) > 0",
                ":rule",
                Box::new(rule.clone()),
            );
        }
        if let Some(d) = &f.decision {
            // `+`: walk the date index (order and limit) rather than every alarm with
            // this decision and then sort them.
            w.add("+a.decision = :decision", ":decision", Box::new(*d));
        }
        w.bind(":limit", Box::new(limit(f.limit)));
        // `+d.state`: without it SQLite counts an alarm's sent rows by walking the
        // state index (every sent row in the ledger) instead of the alarm's own rows;
        // 13 s instead of milliseconds on a ledger of a million detections.
        let sql = format!(
            "SELECT a.alarm_id, a.rule_name, a.date_inserted, a.rbp_max, a.decision, a.reason,
                    a.fetch_attempts, a.last_error,
                    (SELECT count(*) FROM detections d WHERE d.alarm_id = a.alarm_id) AS detections,
                    (SELECT count(*) FROM detections d
                      WHERE d.alarm_id = a.alarm_id AND +d.state = 'sent') AS sent
             FROM alarms a {}
             ORDER BY a.date_inserted DESC, a.alarm_id DESC LIMIT :limit",
            w.sql()
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(&*w.params(), map_alarm_list)
            .map_err(|e| self.sql(e))?;
        rows.map(|r| r.map_err(|e| self.sql(e))).collect()
    }

    /// Detections matching `f`, newest (row id) first, with their alarm's rule and time.
    ///
    /// A `value` of [`MIN_INDEXED_VALUE`] characters or more is looked up in the
    /// trigram index (`detections_value_fts`, migration 6) when no alarm is
    /// given; shorter values, and an alarm's few rows, are scanned. Both ways
    /// give the same rows: the index only proposes candidates (its case folding
    /// is Unicode's, a superset of the ASCII folding of `lower()`), and every
    /// row is held to the one predicate, `instr(lower(value), lower(:value))`.
    pub fn list_indicators(&self, f: &IndicatorFilter) -> Result<Vec<IndicatorRow>> {
        self.list_indicators_by(f, indicator_search(f))
    }

    /// [`Ledger::list_indicators`] the way `search` says (tests compare the two).
    fn list_indicators_by(&self, f: &IndicatorFilter, search: Search) -> Result<Vec<IndicatorRow>> {
        let mut w = Where::default();
        if let Some(k) = f.kind {
            w.add("d.ioc_type = :type", ":type", Box::new(k.as_str()));
        }
        if let Some(v) = &f.value {
            w.add(
                "instr(lower(d.value), lower(:value)) > 0",
                ":value",
                Box::new(v.clone()),
            );
            if search == Search::Index {
                w.add(
                    "f.detections_value_fts MATCH :phrase",
                    ":phrase",
                    Box::new(fts_phrase(v)),
                );
            }
        }
        if let Some(s) = f.state {
            // With an alarm, its few rows come from the alarm's index; the state
            // index would walk every row in that state (`+` keeps SQLite off it).
            // With the trigram index, the candidates are filtered by state.
            let clause = if f.alarm.is_some() || search == Search::Index {
                "+d.state = :state"
            } else {
                "d.state = :state"
            };
            w.add(clause, ":state", Box::new(s.as_str()));
        }
        if let Some(a) = f.alarm {
            w.add("d.alarm_id = :alarm", ":alarm", Box::new(a));
        }
        w.bind(":limit", Box::new(limit(f.limit)));
        // The index yields row ids newest first by itself (FTS5 consumes the
        // ORDER BY on its rowid), so a common value stops at the limit too.
        let (from, order) = match search {
            Search::Index => (
                "detections_value_fts f JOIN detections d ON d.id = f.rowid",
                "f.rowid",
            ),
            Search::Scan => ("detections d", "d.id"),
        };
        let sql = format!(
            "SELECT d.id, d.alarm_id, a.rule_name, a.date_inserted, d.ioc_type, d.value, d.field,
                    d.state, d.reason, d.attempts, d.last_error, d.sent_at, d.submission_id
             FROM {from} JOIN alarms a ON a.alarm_id = d.alarm_id {}
             ORDER BY {order} DESC LIMIT :limit",
            w.sql()
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(&*w.params(), map_indicator)
            .map_err(|e| self.sql(e))?;
        rows.map(|r| r.map_err(|e| self.sql(e))).collect()
    }

    /// One alarm, or `None` when the ledger never saw it.
    pub fn alarm_detail(&self, id: AlarmId) -> Result<Option<AlarmDetail>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT alarm_id, rule_name, status, entity_name, date_inserted, rbp_max, decision,
                        reason, event_count, fetch_attempts, last_error, first_run_id,
                        first_seen_at, updated_at
                 FROM alarms WHERE alarm_id = ?1",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_row([id], map_alarm_detail)
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// The tombstone of a pruned alarm, or `None` when it was never pruned.
    pub fn pruned_alarm(&self, id: AlarmId) -> Result<Option<PrunedAlarm>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT alarm_id, date_inserted, decision, detections, sent, unsent, pruned_at
                 FROM pruned_alarms WHERE alarm_id = ?1",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_row([id], |r| {
            Ok(PrunedAlarm {
                alarm_id: r.get(0)?,
                date_inserted: r.get(1)?,
                decision: sql::get(r, 2, "pruned_alarms.decision")?,
                detections: count(r.get(3)?),
                sent: count(r.get(4)?),
                unsent: count(r.get(5)?),
                pruned_at: r.get(6)?,
            })
        })
        .optional()
        .map_err(|e| self.sql(e))
    }

    /// Every detection of an alarm with the submission it was last part of, by type
    /// and value.
    pub fn alarm_indicators(&self, id: AlarmId) -> Result<Vec<AlarmIndicator>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.id, d.ioc_type, d.value, d.field, d.state, d.reason, d.attempts,
                        d.last_error, d.created_at, d.updated_at, d.sent_at,
                        s.id AS sub_id, s.run_id AS sub_run_id, s.at AS sub_at,
                        s.items AS sub_items, s.debug AS sub_debug, s.outcome AS sub_outcome,
                        s.http_status AS sub_http_status
                 FROM detections d LEFT JOIN submissions s ON s.id = d.submission_id
                 WHERE d.alarm_id = ?1
                 ORDER BY d.ioc_type, d.value",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([id], map_alarm_indicator)
            .map_err(|e| self.sql(e))?;
        rows.map(|r| r.map_err(|e| self.sql(e))).collect()
    }

    /// Streams every detection matching `f`, in row id order, with its alarm's fields,
    /// to `each`, one row at a time straight from the SQLite cursor (constant memory
    /// whatever the ledger's size). Stops at the first error of `each`.
    pub fn export(
        &self,
        f: &ExportFilter,
        mut each: impl FnMut(&ExportRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        let mut w = Where::default();
        if let Some(s) = f.state {
            w.add("d.state = :state", ":state", Box::new(s.as_str()));
        }
        if let Some(from) = f.from {
            w.add("a.date_inserted >= :from", ":from", Box::new(ts(from)));
        }
        if let Some(to) = f.to {
            w.add("a.date_inserted < :to", ":to", Box::new(ts(to)));
        }
        let sql = format!(
            "SELECT d.id, d.alarm_id, a.rule_name, a.date_inserted, a.entity_name, a.rbp_max,
                    a.decision, d.ioc_type, d.value, d.field, d.state, d.reason, d.attempts,
                    d.last_error, d.created_at, d.updated_at, d.sent_at, d.submission_id
             FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id {}
             ORDER BY d.id",
            w.sql()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let mut rows = stmt.query(&*w.params()).map_err(|e| self.sql(e))?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            let row = map_export(r).map_err(|e| self.sql(e))?;
            each(&row).map_err(ExportError::Sink)?;
            n += 1;
        }
        Ok(n)
    }

    /// Coverage of the hour slices in `[from, to)` (see [`classify_slices`]).
    pub fn slice_states(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, SliceState)>> {
        let from = floor_hour(from);
        let map = self.coverage(from, to)?;
        Ok(classify_slices(from, to, &map))
    }
}

impl Ledger {
    /// Detections by state.
    pub fn state_counts(&self) -> Result<StateCounts> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM detections GROUP BY state")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                let s: DetectionState = sql::get(r, 0, "detections.state")?;
                Ok((s, r.get::<_, i64>(1)?))
            })
            .map_err(|e| self.sql(e))?;
        let mut c = StateCounts::default();
        for row in rows {
            let (state, n) = row.map_err(|e| self.sql(e))?;
            let n = u64::try_from(n).unwrap_or(0);
            match state {
                DetectionState::Pending => c.pending = n,
                DetectionState::Sent => c.sent = n,
                DetectionState::Failed => c.failed = n,
                DetectionState::Rejected => c.rejected = n,
                DetectionState::Unconfirmed => c.unconfirmed = n,
                DetectionState::Excluded => c.excluded = n,
            }
        }
        Ok(c)
    }

    /// The most frequent exclusion reasons, most frequent first.
    pub fn top_exclusion_reasons(&self, limit: usize) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT coalesce(reason, '?'), count(*) AS n FROM detections
                 WHERE state = 'excluded' GROUP BY 1 ORDER BY n DESC, 1 LIMIT ?1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(|e| self.sql(e))?;
        rows.map(|r| {
            r.map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
                .map_err(|e| self.sql(e))
        })
        .collect()
    }

    /// Number of alarms in the ledger.
    pub fn alarm_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM alarms", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Parses a stored timestamp (for callers that format times for people).
pub fn parse_stored(s: &str) -> Option<DateTime<Utc>> {
    parse_ts(s)
}

#[cfg(test)]
mod tests {
    use super::super::{AlarmOutcome, AlarmRecord, SliceIngest, SubmissionRecord, Writer};
    use super::*;
    use crate::model::{AlarmRow, Indicator, Verdict};
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn ind(kind: IndicatorType, value: &str, field: &'static str, verdict: Verdict) -> Indicator {
        Indicator {
            kind,
            value: value.into(),
            field,
            verdict,
            source: Default::default(),
        }
    }

    fn record(id: i64, rule: &str, at: DateTime<Utc>, outcome: AlarmOutcome) -> AlarmRecord {
        AlarmRecord {
            row: AlarmRow {
                alarm_id: id.into(),
                rule_name: rule.into(),
                status: 1,
                entity_name: "Global Entity".into(),
                date_inserted: at,
            },
            rbp_max: Some(60),
            outcome,
        }
    }

    fn accepted(inds: Vec<Indicator>) -> AlarmOutcome {
        AlarmOutcome::Accepted {
            event_count: 2,
            indicators: inds,
            note: None,
        }
    }

    fn sub(at: DateTime<Utc>, run_id: Option<i64>, status: u16) -> SubmissionRecord {
        SubmissionRecord {
            run_id,
            at,
            debug: false,
            http_status: Some(status),
            processed: None,
        }
    }

    /// Alarm 1 (RF rule, 10:05): 8.8.8.8 sent, evil.example failed, 10.0.0.1 excluded.
    /// Alarm 2 (other rule, 10:30): filtered. Alarm 3 (11:10): bad.example rejected.
    /// Coverage: 10:00 full, 11:00 partial to 11:30. One finished run.
    fn fixture() -> (Writer, i64) {
        let mut l = Writer::open_in_memory().unwrap();
        let run = l.begin_run("sync", t(27, 12, 0), None).unwrap();
        l.ingest(
            &SliceIngest {
                run_id: Some(run),
                slice_start: t(27, 10, 0),
                covered_until: Some(t(27, 11, 0)),
                saturated_at: vec![],
                listed_from: None,
                observations: Vec::new(),
                alarms: vec![
                    record(
                        1,
                        "Recorded Future: Malware C2",
                        t(27, 10, 5),
                        accepted(vec![
                            ind(IndicatorType::Ip, "8.8.8.8", "originIP", Verdict::Send),
                            ind(
                                IndicatorType::Domain,
                                "evil.example",
                                "impactedHostName",
                                Verdict::Send,
                            ),
                            ind(
                                IndicatorType::Ip,
                                "10.0.0.1",
                                "impactedIP",
                                Verdict::Exclude("private ip (rfc1918)".into()),
                            ),
                        ]),
                    ),
                    record(
                        2,
                        "Login failures",
                        t(27, 10, 30),
                        AlarmOutcome::Filtered {
                            reason: "rbp 10 < 40".into(),
                        },
                    ),
                ],
            },
            t(27, 12, 0),
        )
        .unwrap();
        l.ingest(
            &SliceIngest {
                run_id: Some(run),
                slice_start: t(27, 11, 0),
                covered_until: Some(t(27, 11, 30)),
                saturated_at: vec![],
                listed_from: None,
                observations: Vec::new(),
                alarms: vec![record(
                    3,
                    "Recorded Future: Phishing",
                    t(27, 11, 10),
                    accepted(vec![ind(
                        IndicatorType::Domain,
                        "bad.example",
                        "domain",
                        Verdict::Send,
                    )]),
                )],
            },
            t(27, 12, 0),
        )
        .unwrap();
        let id_of = |l: &Ledger, v: &str| -> i64 {
            l.conn
                .query_row("SELECT id FROM detections WHERE value = ?1", [v], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        let (ip, dom, bad) = (
            id_of(&l, "8.8.8.8"),
            id_of(&l, "evil.example"),
            id_of(&l, "bad.example"),
        );
        l.mark_sent(&[ip.into()], &sub(t(27, 12, 1), Some(run), 200))
            .unwrap();
        l.mark_failed(
            &[dom.into()],
            &sub(t(27, 12, 2), Some(run), 503),
            "HTTP 503",
        )
        .unwrap();
        l.mark_rejected(
            bad.into(),
            &sub(t(27, 12, 3), Some(run), 400),
            "invalid domain",
        )
        .unwrap();
        l.finish_run(run, t(27, 12, 4), 75, "{\"exit_code\":75}")
            .unwrap();
        (l, run)
    }

    #[test]
    fn alarm_counts_by_decision() {
        let (l, _) = fixture();
        assert_eq!(
            l.alarm_counts().unwrap(),
            AlarmCounts {
                total: 3,
                accepted: 2,
                filtered: 1,
                error: 0
            }
        );
        let empty = Writer::open_in_memory().unwrap();
        assert_eq!(empty.alarm_counts().unwrap(), AlarmCounts::default());
    }

    #[test]
    fn runs_count_only_real_successful_sends() {
        let (mut l, run) = fixture();
        // A debug submission in the same run is not a send.
        let id: i64 = l
            .conn
            .query_row(
                "SELECT id FROM detections WHERE value = 'evil.example'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut debug = sub(t(27, 12, 5), Some(run), 200);
        debug.debug = true;
        l.mark_sent(&[id.into()], &debug).unwrap();
        let second = l.begin_run("replay", t(27, 13, 0), None).unwrap();
        let runs = l.recent_runs(5).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].id, second);
        assert_eq!(runs[0].kind, "replay");
        assert_eq!(runs[0].exit_code, None);
        assert_eq!(runs[0].sent, 0);
        assert_eq!(runs[1].id, run);
        assert_eq!(runs[1].exit_code, Some(75));
        assert_eq!(runs[1].sent, 1);
        assert_eq!(
            runs[1].finished_at.as_deref(),
            Some("2026-11-27T12:04:00.000Z")
        );
        assert_eq!(l.recent_runs(1).unwrap().len(), 1);
    }

    #[test]
    fn alarms_filter_by_time_rule_and_decision_newest_first() {
        let (l, _) = fixture();
        let all = l
            .list_alarms(&AlarmFilter {
                limit: 10,
                ..AlarmFilter::default()
            })
            .unwrap();
        assert_eq!(
            all.iter().map(|a| a.alarm_id).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        let a1 = &all[2];
        assert_eq!((a1.detections, a1.sent), (3, 1));
        assert_eq!(a1.date_inserted, "2026-11-27T10:05:00.000Z");
        let rf = l
            .list_alarms(&AlarmFilter {
                rule: Some("recorded FUTURE".into()),
                limit: 10,
                ..AlarmFilter::default()
            })
            .unwrap();
        assert_eq!(rf.iter().map(|a| a.alarm_id).collect::<Vec<_>>(), [3, 1]);
        let window = l
            .list_alarms(&AlarmFilter {
                from: Some(t(27, 10, 5)),
                to: Some(t(27, 11, 10)),
                limit: 10,
                ..AlarmFilter::default()
            })
            .unwrap();
        assert_eq!(
            window.iter().map(|a| a.alarm_id).collect::<Vec<_>>(),
            [2, 1]
        );
        let filtered = l
            .list_alarms(&AlarmFilter {
                decision: Some("filtered".parse().unwrap()),
                limit: 10,
                ..AlarmFilter::default()
            })
            .unwrap();
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0].reason.as_deref(), Some("rbp 10 < 40"));
        let one = l
            .list_alarms(&AlarmFilter {
                limit: 1,
                ..AlarmFilter::default()
            })
            .unwrap();
        assert_eq!(one.len(), 1);
        // A LIKE wildcard is a literal character here, and an injection is a value.
        for odd in ["%", "_", "'); DROP TABLE alarms;--"] {
            let none = l
                .list_alarms(&AlarmFilter {
                    rule: Some(odd.into()),
                    limit: 10,
                    ..AlarmFilter::default()
                })
                .unwrap();
            assert!(none.is_empty(), "{odd}");
        }
        assert_eq!(l.alarm_counts().unwrap().total, 3);
    }

    #[test]
    fn indicators_filter_by_type_value_state_and_alarm() {
        let (l, _) = fixture();
        let f = |kind, value: Option<&str>, state, alarm| IndicatorFilter {
            kind,
            value: value.map(str::to_string),
            state,
            alarm,
            limit: 100,
        };
        let all = l.list_indicators(&f(None, None, None, None)).unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let ips = l
            .list_indicators(&f(Some(IndicatorType::Ip), None, None, None))
            .unwrap();
        assert_eq!(ips.len(), 2);
        let evil = l
            .list_indicators(&f(None, Some("EVIL"), None, None))
            .unwrap();
        assert_eq!(evil.len(), 1);
        assert_eq!(evil[0].state.as_str(), "failed");
        assert_eq!(evil[0].last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(evil[0].rule_name, "Recorded Future: Malware C2");
        let excluded = l
            .list_indicators(&f(None, None, Some(DetectionState::Excluded), None))
            .unwrap();
        assert_eq!(excluded.len(), 1);
        assert_eq!(excluded[0].reason.as_deref(), Some("private ip (rfc1918)"));
        let of3 = l
            .list_indicators(&f(None, None, None, Some(3.into())))
            .unwrap();
        assert_eq!(of3.len(), 1);
        assert_eq!(of3[0].state.as_str(), "rejected");
        let none = l
            .list_indicators(&f(Some(IndicatorType::Url), None, None, Some(1.into())))
            .unwrap();
        assert!(none.is_empty());
        let mut lim = f(None, None, None, None);
        lim.limit = 2;
        assert_eq!(l.list_indicators(&lim).unwrap().len(), 2);
    }

    /// The fixture plus alarm 4 with values that test case folding, quotes,
    /// wildcards and FTS5 query syntax; its detections are pending.
    fn search_fixture() -> Writer {
        let (mut l, run) = fixture();
        let values = [
            "EVIL.Example.COM",
            "https://Straße.example.de/Pfad?q=%41_b",
            "İstanbul-ÉCOLE.example.tr",
            "quote\"inside.example",
            "near-and-or.example",
            "1.1.1.1",
            "11.1.1.10",
            "café.example",
            "CAFÉ.example.org",
        ];
        l.ingest(
            &SliceIngest {
                run_id: Some(run),
                slice_start: t(27, 11, 0),
                covered_until: Some(t(27, 12, 0)),
                saturated_at: vec![],
                listed_from: None,
                observations: Vec::new(),
                alarms: vec![record(
                    4,
                    "Recorded Future: Odd values",
                    t(27, 11, 40),
                    accepted(
                        values
                            .iter()
                            .map(|v| ind(IndicatorType::Domain, v, "domain", Verdict::Send))
                            .collect(),
                    ),
                )],
            },
            t(27, 12, 0),
        )
        .unwrap();
        l
    }

    #[test]
    fn the_trigram_index_and_the_scan_give_the_same_indicators() {
        let l = search_fixture();
        // (value, rows expected) — the count pins the documented semantics:
        // ASCII letters match in either case, other letters only as written.
        let queries: &[(&str, usize)] = &[
            ("", 13),
            ("e", 9),
            ("EV", 2),
            ("evi", 2),
            ("EVIL", 2),
            ("evil.example", 2),
            ("example", 9),
            (".EXAMPLE.", 4),
            ("straße", 1),
            ("STRAßE", 1),
            ("STRASSE", 0),
            ("strasse", 0),
            ("İstanbul", 1),
            ("istanbul", 0),
            ("école", 0),
            ("ÉCOLE", 1),
            ("écOLE", 0),
            ("café", 1),
            ("CAFÉ", 1),
            ("cafÉ", 1),
            ("Café", 1),
            ("\"", 1),
            ("e\"i", 1),
            ("%41_b", 1),
            ("%", 1),
            ("_", 1),
            ("*", 0),
            ("exa*", 0),
            ("near", 1),
            ("NEAR(", 0),
            ("and-or", 1),
            ("OR", 2),
            ("^evi", 0),
            ("1.1.1", 2),
            ("1.1.1.1", 2),
            (".1.1.", 2),
            ("'); DROP TABLE detections;--", 0),
            ("8.8.8.8", 1),
            ("10.0", 1),
        ];
        for &(value, want) in queries {
            for (state, kind, limit) in [
                (None, None, 100),
                (None, None, 1),
                (Some(DetectionState::Pending), None, 100),
                (
                    Some(DetectionState::Failed),
                    Some(IndicatorType::Domain),
                    100,
                ),
                (None, Some(IndicatorType::Ip), 100),
            ] {
                let f = IndicatorFilter {
                    kind,
                    value: Some(value.into()),
                    state,
                    alarm: None,
                    limit,
                };
                let scan = l.list_indicators_by(&f, Search::Scan).unwrap();
                let chosen = l.list_indicators(&f).unwrap();
                assert_eq!(chosen, scan, "{value:?} {f:?}");
                if value.chars().count() >= MIN_INDEXED_VALUE {
                    assert_eq!(indicator_search(&f), Search::Index, "{value:?}");
                    let index = l.list_indicators_by(&f, Search::Index).unwrap();
                    assert_eq!(index, scan, "{value:?} {f:?}");
                } else {
                    assert_eq!(indicator_search(&f), Search::Scan, "{value:?}");
                }
                if (state, kind, limit) == (None, None, 100) {
                    assert_eq!(scan.len(), want, "{value:?}: {scan:?}");
                }
            }
        }
        // One alarm's rows come from its own index, whatever the value.
        let of4 = IndicatorFilter {
            value: Some("example".into()),
            alarm: Some(4.into()),
            limit: 100,
            ..IndicatorFilter::default()
        };
        assert_eq!(indicator_search(&of4), Search::Scan);
        assert_eq!(l.list_indicators(&of4).unwrap().len(), 7);
    }

    /// Plan lines of the indicator query for `f` done the way `search` says.
    fn indicator_plan(l: &Ledger, f: &IndicatorFilter, search: Search) -> String {
        let phrase = f.value.as_deref().map(fts_phrase);
        let sql = match search {
            Search::Index => {
                "EXPLAIN QUERY PLAN SELECT d.id FROM detections_value_fts f
                JOIN detections d ON d.id = f.rowid JOIN alarms a ON a.alarm_id = d.alarm_id
                WHERE instr(lower(d.value), lower(?1)) > 0 AND f.detections_value_fts MATCH ?2
                ORDER BY f.rowid DESC LIMIT 50"
            }
            Search::Scan => {
                "EXPLAIN QUERY PLAN SELECT d.id FROM detections d
                JOIN alarms a ON a.alarm_id = d.alarm_id
                WHERE instr(lower(d.value), lower(?1)) > 0 AND ?2 IS NOT NULL
                ORDER BY d.id DESC LIMIT 50"
            }
        };
        let mut st = l.conn.prepare(sql).unwrap();
        let rows = st
            .query_map(rusqlite::params![f.value, phrase], |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n")
    }

    #[test]
    fn a_value_search_goes_through_the_trigram_index_in_row_order() {
        let l = search_fixture();
        let f = IndicatorFilter {
            value: Some("evil".into()),
            limit: 50,
            ..IndicatorFilter::default()
        };
        let plan = indicator_plan(&l, &f, Search::Index);
        assert!(plan.contains("VIRTUAL TABLE INDEX"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        let scan = indicator_plan(&l, &f, Search::Scan);
        assert!(scan.contains("SCAN d"), "{scan}");
    }

    #[test]
    fn the_trigram_index_follows_inserts_and_prunes() {
        let l = search_fixture();
        let check = |l: &Ledger| {
            // FTS5's own check of an external-content index against its table.
            l.conn
                .execute(
                    "INSERT INTO detections_value_fts (detections_value_fts, rank)
                     VALUES ('integrity-check', 1)",
                    [],
                )
                .unwrap();
        };
        check(&l);
        let found = |l: &Ledger, v: &str| {
            l.list_indicators(&IndicatorFilter {
                value: Some(v.into()),
                limit: 100,
                ..IndicatorFilter::default()
            })
            .unwrap()
            .len()
        };
        assert_eq!(found(&l, "bad.example"), 1);
        l.conn
            .execute_batch("DELETE FROM detections WHERE alarm_id = 3")
            .unwrap();
        check(&l);
        assert_eq!(found(&l, "bad.example"), 0);
        l.conn
            .execute_batch(
                "UPDATE detections SET value = 'renamed.example' WHERE value = '8.8.8.8'",
            )
            .unwrap();
        check(&l);
        assert_eq!(found(&l, "8.8.8"), 0);
        assert_eq!(found(&l, "renamed"), 1);
        // A stale index would make the check fail: prove that it can.
        l.conn
            .execute_batch("DROP TRIGGER detections_value_fts_delete; DELETE FROM detections WHERE alarm_id = 4")
            .unwrap();
        let stale = l.conn.execute(
            "INSERT INTO detections_value_fts (detections_value_fts, rank) VALUES ('integrity-check', 1)",
            [],
        );
        assert!(stale.is_err());
    }

    #[test]
    fn show_answers_what_reached_rf_and_why_not() {
        let (l, run) = fixture();
        assert_eq!(l.alarm_detail(999.into()).unwrap(), None);
        assert_eq!(l.pruned_alarm(999.into()).unwrap(), None);
        let a = l.alarm_detail(1.into()).unwrap().unwrap();
        assert_eq!(a.rule_name, "Recorded Future: Malware C2");
        assert_eq!(a.decision.as_str(), "accepted");
        assert_eq!(a.rbp_max, Some(60));
        assert_eq!(a.event_count, Some(2));
        assert_eq!(a.first_run_id, Some(run));
        let inds = l.alarm_indicators(1.into()).unwrap();
        let by = |v: &str| inds.iter().find(|i| i.value == v).unwrap();
        let sent = by("8.8.8.8");
        assert_eq!(sent.state.as_str(), "sent");
        assert_eq!(sent.field, "originIP");
        assert_eq!(sent.sent_at.as_deref(), Some("2026-11-27T12:01:00.000Z"));
        let s = sent.submission.as_ref().unwrap();
        assert_eq!(
            (s.outcome.as_str(), s.http_status, s.debug),
            ("ok", Some(200), false)
        );
        assert_eq!(s.run_id, Some(run));
        let failed = by("evil.example");
        assert_eq!(failed.state.as_str(), "failed");
        assert_eq!(failed.attempts, 1);
        assert_eq!(failed.sent_at, None);
        assert_eq!(failed.submission.as_ref().unwrap().http_status, Some(503));
        let excluded = by("10.0.0.1");
        assert_eq!(excluded.reason.as_deref(), Some("private ip (rfc1918)"));
        assert_eq!(excluded.submission, None);
        let rejected = l.alarm_indicators(3.into()).unwrap();
        assert_eq!(rejected[0].state.as_str(), "rejected");
        assert_eq!(rejected[0].reason.as_deref(), Some("invalid domain"));
        assert_eq!(rejected[0].submission.as_ref().unwrap().outcome, "rejected");
        let filtered = l.alarm_detail(2.into()).unwrap().unwrap();
        assert_eq!(filtered.decision.as_str(), "filtered");
        assert!(l.alarm_indicators(2.into()).unwrap().is_empty());
    }

    #[test]
    fn pruned_alarm_reads_the_tombstone() {
        let (l, _) = fixture();
        l.conn
            .execute(
                "INSERT INTO pruned_alarms (alarm_id, date_inserted, decision, detections, sent,
                    unsent, pruned_at)
                 VALUES (42, '2026-10-01T00:00:00.000Z', 'accepted', 5, 4, 0, '2026-11-27T00:00:00.000Z')",
                [],
            )
            .unwrap();
        let p = l.pruned_alarm(42.into()).unwrap().unwrap();
        assert_eq!((p.detections, p.sent, p.unsent), (5, 4, 0));
        assert_eq!(p.decision.as_str(), "accepted");
        assert_eq!(p.pruned_at, "2026-11-27T00:00:00.000Z");
        assert_eq!(l.pruned_alarm(1.into()).unwrap(), None);
    }

    #[test]
    fn export_streams_rows_in_id_order_with_filters() {
        let (l, _) = fixture();
        let mut seen = Vec::new();
        let n = l
            .export(&ExportFilter::default(), |r| {
                seen.push((r.detection_id, r.alarm_id, r.state));
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 4);
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
        let mut sent = Vec::new();
        l.export(
            &ExportFilter {
                state: Some(DetectionState::Sent),
                ..ExportFilter::default()
            },
            |r| {
                sent.push(r.clone());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].value, "8.8.8.8");
        assert_eq!(sent[0].rule_name, "Recorded Future: Malware C2");
        let mut late = 0;
        l.export(
            &ExportFilter {
                from: Some(t(27, 11, 0)),
                to: Some(t(27, 12, 0)),
                ..ExportFilter::default()
            },
            |_| {
                late += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(late, 1);
        // A sink error stops the export and comes back as a sink error.
        let mut calls = 0;
        let err = l
            .export(&ExportFilter::default(), |_| {
                calls += 1;
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            })
            .unwrap_err();
        assert_eq!(calls, 1);
        match err {
            ExportError::Sink(e) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn slice_states_from_the_ledger() {
        let (l, _) = fixture();
        let states = l.slice_states(t(27, 9, 30), t(27, 13, 0)).unwrap();
        assert_eq!(
            states,
            vec![
                (t(27, 9, 0), SliceState::Uncovered),
                (t(27, 10, 0), SliceState::Covered),
                (
                    t(27, 11, 0),
                    SliceState::Partial {
                        covered_until: t(27, 11, 30)
                    }
                ),
                (t(27, 12, 0), SliceState::Uncovered),
            ]
        );
    }

    fn cov(until: DateTime<Utc>, sat: Vec<DateTime<Utc>>) -> Coverage {
        Coverage {
            covered_until: until,
            saturated_at: sat,
        }
    }

    #[test]
    fn gaps_merge_adjacent_hours_of_one_kind() {
        let mut map = BTreeMap::new();
        // 00 uncovered, 01 uncovered, 02 covered, 03 saturated, 04 saturated,
        // 05 partial, 06 partial, 07 uncovered.
        map.insert(t(1, 2, 0), cov(t(1, 3, 0), vec![]));
        map.insert(t(1, 3, 0), cov(t(1, 4, 0), vec![t(1, 3, 17)]));
        map.insert(t(1, 4, 0), cov(t(1, 5, 0), vec![t(1, 4, 2), t(1, 4, 9)]));
        map.insert(t(1, 5, 0), cov(t(1, 5, 40), vec![]));
        map.insert(t(1, 6, 0), cov(t(1, 6, 10), vec![]));
        let slices = classify_slices(t(1, 0, 0), t(1, 8, 0), &map);
        let gaps = merge_gaps(&slices);
        let shape: Vec<(GapKind, u32, u32)> = gaps
            .iter()
            .map(|g| {
                use chrono::Timelike;
                (g.kind, g.from.hour(), g.to.hour())
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (GapKind::Uncovered, 0, 2),
                (GapKind::Saturated, 3, 5),
                (GapKind::Partial, 5, 6),
                (GapKind::Partial, 6, 7),
                (GapKind::Uncovered, 7, 8),
            ]
        );
        assert_eq!(gaps[0].hours(), 2);
        assert_eq!(
            gaps[1].saturated_at,
            vec![t(1, 3, 17), t(1, 4, 2), t(1, 4, 9)]
        );
        assert_eq!(gaps[2].covered_until, Some(t(1, 5, 40)));
        let s = summarise_coverage(t(1, 0, 0), t(1, 8, 0), &slices);
        assert_eq!(
            (
                s.hours,
                s.covered_hours,
                s.saturated_hours,
                s.partial_hours,
                s.uncovered_hours
            ),
            (8, 1, 2, 2, 3)
        );
        assert_eq!(s.from, "2026-11-01T00:00:00.000Z");
        assert!(merge_gaps(&classify_slices(t(1, 2, 0), t(1, 3, 0), &map)).is_empty());
        assert!(classify_slices(t(1, 3, 0), t(1, 3, 0), &map).is_empty());
    }
}
