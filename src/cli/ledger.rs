//! `lrci ledger ...`: the read-only audit commands (`status`, `alarms`,
//! `indicators`, `show`, `runs`, `gaps`, `export`) and their clap types.
//!
//! Every command here opens the ledger with [`Mode::ReadOnly`] and never takes the
//! run lock, so it works while a sync runs and never blocks it (WAL). The one
//! writing subcommand, `prune`, lives in [`crate::cli::prune`] and is only
//! dispatched from here. A missing ledger is
//! exit 66 and nothing is created. Output goes to stdout only: tables for people
//! (times in UTC, long values cut with an ellipsis, control, bidi and zero-width
//! characters escaped so ledger values that came from LogRhythm cannot drive the
//! terminal), or `--json` for machines (the same characters escaped as `\uXXXX`).
//! A closed pipe (`| head`) ends the command quietly with exit 0; any other write
//! error is exit 74. All SQL is in [`crate::ledger::audit`].

use crate::cli::args::GlobalArgs;
use crate::config::parse_time;
use crate::error::{code, Fatal};
use crate::ledger::audit::{
    self, AlarmDetail, AlarmFilter, AlarmIndicator, ExportError, ExportFilter, ExportRow, GapRange,
    IndicatorFilter, RunRow,
};
use crate::ledger::{self, Ledger};
use crate::model::{AlarmDecision, AlarmId, DetectionState, IndicatorType};
use chrono::{DateTime, Duration as Span, Utc};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::Table;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Flags of `ledger`.
#[derive(Debug, Args, Clone)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: LedgerCommand,
}

/// The audit commands: all read only and lock-free, except `prune`.
#[derive(Debug, Subcommand, Clone)]
pub enum LedgerCommand {
    /// Alarms and detections by state, coverage of the last days, the last runs and today's CI budget.
    Status(StatusArgs),
    /// Alarms the ledger holds, newest first.
    Alarms(AlarmsArgs),
    /// Indicators (detections) the ledger holds, newest first.
    Indicators(IndicatorsArgs),
    /// One alarm: its filter decision, every indicator, whether and when it reached Recorded Future, and if not, why.
    Show(ShowArgs),
    /// The last sync, backfill and replay runs.
    Runs(RunsArgs),
    /// Hours the coverage map does not hold completely: uncovered, partial and saturated ranges.
    Gaps(GapsArgs),
    /// Every detection with its alarm's fields, streamed as JSON lines or CSV.
    Export(ExportArgs),
    /// Remove old detail but keep what is needed never to resend a pruned alarm (takes the run lock).
    Prune(crate::cli::prune::PruneArgs),
}

/// Flags of `ledger status`.
#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// Coverage of the last N days (whole UTC hours before the current one).
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650), allow_negative_numbers = true)]
    pub days: u32,
    /// The daily CI budget to compare today's use with (as given to sync).
    #[arg(long, value_name = "N", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub daily_budget: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An alarm decision, for `--decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DecisionArg {
    Accepted,
    Filtered,
    Error,
}

impl DecisionArg {
    fn decision(self) -> AlarmDecision {
        match self {
            DecisionArg::Accepted => AlarmDecision::Accepted,
            DecisionArg::Filtered => AlarmDecision::Filtered,
            DecisionArg::Error => AlarmDecision::Error,
        }
    }
}

/// A detection state, for `--state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Pending,
    Sent,
    Failed,
    Rejected,
    Excluded,
}

impl From<StateArg> for DetectionState {
    fn from(s: StateArg) -> DetectionState {
        match s {
            StateArg::Pending => DetectionState::Pending,
            StateArg::Sent => DetectionState::Sent,
            StateArg::Failed => DetectionState::Failed,
            StateArg::Rejected => DetectionState::Rejected,
            StateArg::Excluded => DetectionState::Excluded,
        }
    }
}

/// An indicator type, for `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    Ip,
    Domain,
    Url,
    Vulnerability,
    Hash,
}

impl From<TypeArg> for IndicatorType {
    fn from(t: TypeArg) -> IndicatorType {
        match t {
            TypeArg::Ip => IndicatorType::Ip,
            TypeArg::Domain => IndicatorType::Domain,
            TypeArg::Url => IndicatorType::Url,
            TypeArg::Vulnerability => IndicatorType::Vulnerability,
            TypeArg::Hash => IndicatorType::Hash,
        }
    }
}

/// Flags of `ledger alarms`.
#[derive(Debug, Args, Clone)]
pub struct AlarmsArgs {
    /// Alarms inserted at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Alarms inserted before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Rule names containing this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub rule: Option<String>,
    /// Only alarms with this decision.
    #[arg(long, value_enum)]
    pub decision: Option<DecisionArg>,
    /// At most N alarms.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub limit: u32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger indicators`.
#[derive(Debug, Args, Clone)]
pub struct IndicatorsArgs {
    /// Only indicators of this type.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<TypeArg>,
    /// Values containing this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub value: Option<String>,
    /// Only indicators in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only indicators of this alarm.
    #[arg(long, value_name = "ALARM_ID")]
    pub alarm: Option<AlarmId>,
    /// At most N indicators.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub limit: u32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger show`.
#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// The LogRhythm alarm id. An id the ledger never saw is exit 2.
    #[arg(value_name = "ALARM_ID", allow_negative_numbers = true)]
    pub alarm_id: AlarmId,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger runs`.
#[derive(Debug, Args, Clone)]
pub struct RunsArgs {
    /// At most N runs, newest first.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub limit: u32,
    /// Print a JSON array (with each run's stored summary) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ledger gaps`.
#[derive(Debug, Args, Clone)]
pub struct GapsArgs {
    /// The last N days (whole UTC hours before the current one) [default: 7].
    #[arg(long, value_name = "N", conflicts_with = "from", value_parser = clap::value_parser!(u32).range(1..=3650), allow_negative_numbers = true)]
    pub days: Option<u32>,
    /// Start of the range (RFC 3339 or YYYY-MM-DD, UTC; rounded down to the hour).
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<String>,
    /// End of the range, exclusive.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object a line.
    Jsonl,
    /// CSV with a header line.
    Csv,
}

/// Flags of `ledger export`.
#[derive(Debug, Args, Clone)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only detections in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only detections of alarms inserted at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only detections of alarms inserted before this time.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

/// The CSV columns of `ledger export`, in the order of [`ExportRow`]'s fields.
pub const EXPORT_COLUMNS: [&str; 18] = [
    "detection_id",
    "alarm_id",
    "rule_name",
    "date_inserted",
    "entity_name",
    "rbp_max",
    "decision",
    "type",
    "value",
    "field",
    "state",
    "reason",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
    "sent_at",
    "submission_id",
];

/// Why a command stopped: writing stdout failed, or anything else.
enum Failure {
    Write(io::Error),
    Fatal(Fatal),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Write(e)
    }
}

impl From<Fatal> for Failure {
    fn from(f: Fatal) -> Failure {
        Failure::Fatal(f)
    }
}

impl From<ledger::Error> for Failure {
    fn from(e: ledger::Error) -> Failure {
        Failure::Fatal(e.into())
    }
}

impl From<ExportError> for Failure {
    fn from(e: ExportError) -> Failure {
        match e {
            ExportError::Ledger(e) => e.into(),
            ExportError::Sink(e) => Failure::Write(e),
        }
    }
}

type Outcome = Result<(), Failure>;

/// Whether this `ledger` subcommand writes the ledger (only `prune` without `--dry-run`).
pub fn writes(args: &LedgerArgs) -> bool {
    matches!(&args.command, LedgerCommand::Prune(p) if !p.dry_run)
}

/// Runs one `lrci ledger ...` command and returns its exit code.
pub async fn run(global: &GlobalArgs, args: &LedgerArgs) -> Result<u8, Fatal> {
    if let LedgerCommand::Prune(p) = &args.command {
        return crate::cli::prune::run(global, p).await;
    }
    let path = crate::cli::settings::ledger_path(global)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let now = Utc::now();
    let result = match &args.command {
        LedgerCommand::Status(a) => status(&path, a, now, &mut out),
        LedgerCommand::Alarms(a) => alarms(&path, a, &mut out),
        LedgerCommand::Indicators(a) => indicators(&path, a, &mut out),
        LedgerCommand::Show(a) => show(&path, a, &mut out),
        LedgerCommand::Runs(a) => runs(&path, a, &mut out),
        LedgerCommand::Gaps(a) => gaps(&path, a, now, &mut out),
        LedgerCommand::Export(a) => export(&path, a, &mut out),
        // Dispatched above.
        LedgerCommand::Prune(_) => Ok(()),
    }
    .and_then(|()| out.flush().map_err(Failure::Write));
    match result {
        Ok(()) => Ok(code::OK),
        // `lrci ledger ... | head`: the reader has what it wanted.
        Err(Failure::Write(e)) => super::output::pipe_exit(Err(e)).map(|()| code::OK),
        Err(Failure::Fatal(f)) => Err(f),
    }
}

/// Opens an existing ledger read-only; a missing one is exit 66 and is not created.
fn open(path: &Path) -> Result<Ledger, Fatal> {
    match path.try_exists() {
        Ok(true) => Ok(Ledger::open(path)?),
        Ok(false) => Err(Fatal::msg(
            code::NO_INPUT,
            format!(
                "the ledger {} does not exist: run `lrci sync` first, or point LRCI_LEDGER (--ledger) at the ledger",
                path.display()
            ),
        )),
        Err(e) => Err(Fatal::new(
            code::NO_INPUT,
            anyhow::Error::new(e).context(format!("cannot read the ledger {}", path.display())),
        )),
    }
}

fn parse_opt(flag: &str, raw: Option<&String>) -> Result<Option<DateTime<Utc>>, Fatal> {
    raw.map(|s| parse_time(flag, s)).transpose()
}

/// Hour slicing is the engine plan's (one definition for sync and `ledger gaps`).
fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    crate::engine::plan::floor_hour(t)
}

/// The last `days` whole UTC hours before the current one: `[from, to)`.
fn last_days(now: DateTime<Utc>, days: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let to = floor_hour(now);
    (to - Span::days(i64::from(days)), to)
}

// ---- output helpers --------------------------------------------------------

/// A ledger value made safe for a terminal: unsafe characters ([`crate::text`])
/// become `\u{..}`.
pub fn escape(s: &str) -> String {
    crate::text::escape(s)
}

/// [`escape`]d and cut to `max` characters with an ellipsis.
pub fn cell(s: &str, max: usize) -> String {
    let e = escape(s);
    if e.chars().count() <= max {
        return e;
    }
    let mut cut: String = e.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn opt_cell(s: Option<&str>, max: usize) -> String {
    s.map_or_else(|| "-".to_string(), |s| cell(s, max))
}

/// A stored RFC 3339 time as `YYYY-MM-DD HH:MM:SS` (UTC); anything else escaped.
pub fn when(s: &str) -> String {
    match audit::parse_stored(s) {
        Some(t) => human_time(t),
        None => escape(s),
    }
}

fn human_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn opt_when(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_string(), when)
}

fn opt_num<T: std::fmt::Display>(n: Option<T>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// A comfy-table preset with one rule under the header and nothing else, so rows
/// stay one line each and `grep`/`head` work on them.
const HEADER_RULE_ONLY: &str = "     ──              ";

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(HEADER_RULE_ONLY)
        .force_no_tty()
        .set_header(header.to_vec());
    t
}

fn write_table(out: &mut dyn Write, t: &Table) -> io::Result<()> {
    for line in t.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// JSON text with the characters of [`crate::text::is_unsafe`] that serde_json leaves raw (DEL,
/// C1, bidi, zero-width, separators) escaped as `\uXXXX`. Those characters can only
/// occur inside JSON strings, where the escape means the same character.
fn json_safe(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    // serde_json writes valid UTF-8; all escaped characters are DEL or non-ASCII.
    let needs = raw.iter().any(|b| *b >= 0x7f);
    let Ok(text) = std::str::from_utf8(raw) else {
        return raw.into();
    };
    if !needs || !text.chars().any(crate::text::is_unsafe) {
        return raw.into();
    }
    let mut s = String::with_capacity(raw.len() + 16);
    for c in text.chars() {
        if crate::text::is_unsafe(c) && !c.is_ascii_control() {
            s.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else if c == '\u{7f}' {
            s.push_str("\\u007f");
        } else {
            s.push(c);
        }
    }
    s.into_bytes().into()
}

fn write_json(out: &mut dyn Write, v: &impl Serialize) -> io::Result<()> {
    let raw = serde_json::to_vec(v).map_err(io::Error::other)?;
    out.write_all(&json_safe(&raw))?;
    out.write_all(b"\n")
}

fn duration_secs(r: &RunRow) -> Option<f64> {
    let start = audit::parse_stored(&r.started_at)?;
    let end = audit::parse_stored(r.finished_at.as_deref()?)?;
    let ms = (end - start).num_milliseconds();
    #[allow(clippy::cast_precision_loss)]
    Some(ms as f64 / 1000.0)
}

fn human_duration(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) => {
            #[allow(clippy::cast_possible_truncation)]
            let whole = s.round() as i64;
            if whole < 3600 {
                format!("{}m{:02}s", whole / 60, whole % 60)
            } else {
                format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
            }
        }
    }
}

fn run_json(r: &RunRow, with_summary: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "kind": r.kind,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_secs": duration_secs(r),
        "window_from": r.window_from,
        "window_to": r.window_to,
        "exit_code": r.exit_code,
        "sent": r.sent,
    });
    if with_summary {
        let summary = r.summary.as_deref().map(|s| {
            serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.to_string()))
        });
        v["summary"] = summary.unwrap_or(Value::Null);
    }
    v
}

fn runs_table(rows: &[RunRow]) -> Table {
    let mut t = table(&["run", "kind", "started (UTC)", "duration", "exit", "sent"]);
    for r in rows {
        t.add_row(vec![
            r.id.to_string(),
            cell(&r.kind, 10),
            when(&r.started_at),
            human_duration(duration_secs(r)),
            r.exit_code
                .map_or_else(|| "running or died".to_string(), |c| c.to_string()),
            r.sent.to_string(),
        ]);
    }
    t
}

fn gap_json(g: &GapRange) -> Value {
    json!({
        "kind": g.kind.as_str(),
        "from": ledger::ts(g.from),
        "to": ledger::ts(g.to),
        "hours": g.hours(),
        "covered_until": g.covered_until.map(ledger::ts),
        "saturated_at": g.saturated_at.iter().map(|t| ledger::ts(*t)).collect::<Vec<_>>(),
    })
}

fn gap_detail(g: &GapRange) -> String {
    if let Some(u) = g.covered_until {
        return format!("listed up to {}", human_time(u));
    }
    if !g.saturated_at.is_empty() {
        let shown: Vec<String> = g
            .saturated_at
            .iter()
            .take(3)
            .map(|t| human_time(*t))
            .collect();
        let more = g.saturated_at.len().saturating_sub(3);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return format!("full page at one timestamp: {}{tail}", shown.join(", "));
    }
    "never listed".into()
}

fn gaps_table(gaps: &[GapRange]) -> Table {
    let mut t = table(&["kind", "from (UTC)", "to (UTC)", "hours", "detail"]);
    for g in gaps {
        t.add_row(vec![
            g.kind.as_str().to_string(),
            human_time(g.from),
            human_time(g.to),
            g.hours().to_string(),
            gap_detail(g),
        ]);
    }
    t
}

// ---- commands ----------------------------------------------------------------

fn status(path: &Path, a: &StatusArgs, now: DateTime<Utc>, out: &mut dyn Write) -> Outcome {
    let l = open(path)?;
    let alarms = l.alarm_counts()?;
    let det = l.state_counts()?;
    let (from, to) = last_days(now, a.days);
    let slices = l.slice_states(from, to)?;
    let cov = audit::summarise_coverage(from, to, &slices);
    let gaps = audit::merge_gaps(&slices);
    let runs = l.recent_runs(5)?;
    let day = now.date_naive();
    let used = l.budget_used(day)?;
    if a.json {
        let mut coverage = serde_json::to_value(&cov).map_err(io::Error::other)?;
        coverage["days"] = json!(a.days);
        coverage["gaps"] = gaps.iter().map(gap_json).collect();
        let doc = json!({
            "ledger": path.to_string_lossy(),
            "alarms": alarms,
            "detections": det,
            "coverage": coverage,
            "last_run": runs.first().map(|r| run_json(r, false)),
            "runs": runs.iter().map(|r| run_json(r, false)).collect::<Vec<_>>(),
            "budget": {
                "day": day.format("%Y-%m-%d").to_string(),
                "used": used,
                "limit": a.daily_budget,
            },
        });
        return Ok(write_json(out, &doc)?);
    }
    let total_det = det.pending + det.sent + det.failed + det.rejected + det.excluded;
    writeln!(out, "ledger      {}", escape(&path.to_string_lossy()))?;
    writeln!(
        out,
        "alarms      {} ({} accepted, {} filtered, {} error)",
        alarms.total, alarms.accepted, alarms.filtered, alarms.error
    )?;
    writeln!(
        out,
        "detections  {total_det} ({} pending, {} sent, {} failed, {} rejected, {} excluded)",
        det.pending, det.sent, det.failed, det.rejected, det.excluded
    )?;
    writeln!(
        out,
        "coverage    last {} days, {} .. {} UTC: {} of {} hours covered, {} saturated, {} partial, {} uncovered",
        a.days,
        human_time(from),
        human_time(to),
        cov.covered_hours,
        cov.hours,
        cov.saturated_hours,
        cov.partial_hours,
        cov.uncovered_hours
    )?;
    write_gaps(out, &gaps, a.days)?;
    writeln!(
        out,
        "budget      {used} of {} detections sent today ({} UTC)",
        a.daily_budget,
        day.format("%Y-%m-%d")
    )?;
    if runs.is_empty() {
        writeln!(out, "last runs   none")?;
    } else {
        writeln!(out, "last runs")?;
        write_table(out, &runs_table(&runs))?;
    }
    Ok(())
}

/// The first uncovered ranges of `ledger status`, and how to see the rest.
fn write_gaps(out: &mut dyn Write, gaps: &[GapRange], days: u32) -> Outcome {
    for g in gaps.iter().take(5) {
        writeln!(
            out,
            "  {:<9}  {} .. {}  {}h  {}",
            g.kind.as_str(),
            human_time(g.from),
            human_time(g.to),
            g.hours(),
            gap_detail(g)
        )?;
    }
    if gaps.len() > 5 {
        writeln!(
            out,
            "  ... {} more ranges: lrci ledger gaps --days {}",
            gaps.len() - 5,
            days
        )?;
    }
    Ok(())
}

fn alarms(path: &Path, a: &AlarmsArgs, out: &mut dyn Write) -> Outcome {
    let filter = AlarmFilter {
        from: parse_opt("--from", a.from.as_ref())?,
        to: parse_opt("--to", a.to.as_ref())?,
        rule: a.rule.clone(),
        decision: a.decision.map(DecisionArg::decision),
        limit: usize::try_from(a.limit).unwrap_or(usize::MAX),
    };
    let l = open(path)?;
    let rows = l.list_alarms(&filter)?;
    if a.json {
        return Ok(write_json(out, &rows)?);
    }
    let mut t = table(&[
        "alarm",
        "inserted (UTC)",
        "rule",
        "rbp",
        "decision",
        "reason / last error",
        "indicators",
        "sent",
    ]);
    for r in &rows {
        let why = r.reason.as_deref().or(r.last_error.as_deref());
        t.add_row(vec![
            r.alarm_id.to_string(),
            when(&r.date_inserted),
            cell(&r.rule_name, 40),
            opt_num(r.rbp_max),
            r.decision.to_string(),
            opt_cell(why, 40),
            r.detections.to_string(),
            r.sent.to_string(),
        ]);
    }
    write_table(out, &t)?;
    writeln!(
        out,
        "{} alarms shown (newest first, --limit {})",
        rows.len(),
        a.limit
    )?;
    Ok(())
}

fn indicators(path: &Path, a: &IndicatorsArgs, out: &mut dyn Write) -> Outcome {
    let filter = IndicatorFilter {
        kind: a.kind.map(IndicatorType::from),
        value: a.value.clone(),
        state: a.state.map(DetectionState::from),
        alarm: a.alarm,
        limit: usize::try_from(a.limit).unwrap_or(usize::MAX),
    };
    let l = open(path)?;
    let rows = l.list_indicators(&filter)?;
    if a.json {
        return Ok(write_json(out, &rows)?);
    }
    let mut t = table(&[
        "id",
        "alarm",
        "type",
        "value",
        "field",
        "state",
        "attempts",
        "sent (UTC)",
        "reason / last error",
    ]);
    for r in &rows {
        let why = r.reason.as_deref().or(r.last_error.as_deref());
        t.add_row(vec![
            r.id.to_string(),
            r.alarm_id.to_string(),
            r.ioc_type.clone(),
            cell(&r.value, 60),
            cell(&r.field, 20),
            r.state.to_string(),
            r.attempts.to_string(),
            opt_when(r.sent_at.as_deref()),
            opt_cell(why, 40),
        ]);
    }
    write_table(out, &t)?;
    writeln!(
        out,
        "{} indicators shown (newest first, --limit {})",
        rows.len(),
        a.limit
    )?;
    Ok(())
}

/// The one-line answer to "did this alarm reach Recorded Future?".
fn verdict(a: &AlarmDetail, inds: &[AlarmIndicator]) -> String {
    let sent: Vec<&AlarmIndicator> = inds
        .iter()
        .filter(|i| i.state == DetectionState::Sent)
        .collect();
    if !sent.is_empty() {
        let mut times: Vec<&str> = sent.iter().filter_map(|i| i.sent_at.as_deref()).collect();
        times.sort_unstable();
        let span = match (times.first(), times.last()) {
            (Some(f), Some(l)) if f == l => format!(" at {}", when(f)),
            (Some(f), Some(l)) => format!(" between {} and {}", when(f), when(l)),
            _ => String::new(),
        };
        return format!(
            "yes: {} of {} indicators sent{span} UTC",
            sent.len(),
            inds.len()
        );
    }
    match a.decision.as_str() {
        "filtered" => format!(
            "no: the alarm was filtered ({})",
            opt_cell(a.reason.as_deref(), 200)
        ),
        "error" => format!(
            "no: its details or events could not be fetched ({} attempts; last error: {})",
            a.fetch_attempts,
            opt_cell(a.last_error.as_deref(), 200)
        ),
        _ if inds.is_empty() => "no: it held no indicators".into(),
        _ => {
            let count = |s: DetectionState| inds.iter().filter(|i| i.state == s).count();
            format!(
                "no: none of its {} indicators was sent ({} excluded by policy, {} rejected by CI, {} failed, {} pending)",
                inds.len(),
                count(DetectionState::Excluded),
                count(DetectionState::Rejected),
                count(DetectionState::Failed),
                count(DetectionState::Pending)
            )
        }
    }
}

fn show(path: &Path, a: &ShowArgs, out: &mut dyn Write) -> Outcome {
    let l = open(path)?;
    let Some(alarm) = l.alarm_detail(a.alarm_id)? else {
        return show_missing(&l, path, a);
    };
    let inds = l.alarm_indicators(a.alarm_id)?;
    let sent = inds
        .iter()
        .filter(|i| i.state == DetectionState::Sent)
        .count();
    if a.json {
        let doc = json!({
            "alarm": alarm,
            "reached_rf": sent > 0,
            "sent": sent,
            "verdict": verdict(&alarm, &inds),
            "indicators": inds,
        });
        return Ok(write_json(out, &doc)?);
    }
    show_alarm(out, &alarm, &inds)?;
    if inds.is_empty() {
        return Ok(());
    }
    show_indicators(out, &inds)
}

/// The error for an alarm `show` cannot find: pruned (with what it held) or never listed.
fn show_missing(l: &Ledger, path: &Path, a: &ShowArgs) -> Outcome {
    if let Some(p) = l.pruned_alarm(a.alarm_id)? {
        return Err(Fatal::msg(
            code::USAGE,
            format!(
                "alarm {} was pruned from the ledger {} on {} UTC (inserted {} UTC, {}; {} of {} indicators sent); its detail is gone",
                a.alarm_id,
                path.display(),
                when(&p.pruned_at),
                when(&p.date_inserted),
                escape(p.decision.as_str()),
                p.sent,
                p.detections
            ),
        )
        .into());
    }
    Err(Fatal::msg(
        code::USAGE,
        format!(
            "alarm {} is not in the ledger {}: lrci never listed it (see `lrci ledger gaps` for hours not fetched)",
            a.alarm_id,
            path.display()
        ),
    )
    .into())
}

/// The alarm's fields, one a line.
fn show_alarm(out: &mut dyn Write, alarm: &AlarmDetail, inds: &[AlarmIndicator]) -> Outcome {
    let line = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "{k:<13}{v}");
    line(out, "alarm", alarm.alarm_id.to_string())?;
    line(out, "rule", cell(&alarm.rule_name, 200))?;
    line(
        out,
        "inserted",
        format!("{} UTC", when(&alarm.date_inserted)),
    )?;
    line(out, "entity", opt_cell(alarm.entity_name.as_deref(), 200))?;
    line(out, "status", opt_num(alarm.status))?;
    line(out, "rbp max", opt_num(alarm.rbp_max))?;
    let reason = alarm
        .reason
        .as_deref()
        .map(|r| format!(" ({})", cell(r, 200)))
        .unwrap_or_default();
    line(out, "decision", format!("{}{reason}", alarm.decision))?;
    line(out, "events", opt_num(alarm.event_count))?;
    line(out, "attempts", alarm.fetch_attempts.to_string())?;
    line(
        out,
        "last error",
        opt_cell(alarm.last_error.as_deref(), 200),
    )?;
    let run = alarm
        .first_run_id
        .map(|r| format!(" (run {r})"))
        .unwrap_or_default();
    line(
        out,
        "first seen",
        format!("{} UTC{run}", when(&alarm.first_seen_at)),
    )?;
    line(out, "reached RF", verdict(alarm, inds))?;
    Ok(())
}

/// The alarm's indicators as a table.
fn show_indicators(out: &mut dyn Write, inds: &[AlarmIndicator]) -> Outcome {
    let mut t = table(&[
        "type",
        "value",
        "field",
        "state",
        "attempts",
        "sent (UTC)",
        "submission",
        "reason / last error",
    ]);
    for i in inds {
        let sub = i.submission.as_ref().map_or_else(
            || "-".to_string(),
            |s| {
                format!(
                    "#{} {} {}{}{}",
                    s.id,
                    when(&s.at),
                    s.outcome,
                    s.http_status
                        .map(|h| format!(" http {h}"))
                        .unwrap_or_default(),
                    if s.debug { " debug" } else { "" }
                )
            },
        );
        let why = i.reason.as_deref().or(i.last_error.as_deref());
        t.add_row(vec![
            i.ioc_type.clone(),
            cell(&i.value, 60),
            cell(&i.field, 20),
            i.state.to_string(),
            i.attempts.to_string(),
            opt_when(i.sent_at.as_deref()),
            sub,
            opt_cell(why, 40),
        ]);
    }
    write_table(out, &t)?;
    Ok(())
}

fn runs(path: &Path, a: &RunsArgs, out: &mut dyn Write) -> Outcome {
    let l = open(path)?;
    let rows = l.recent_runs(usize::try_from(a.limit).unwrap_or(usize::MAX))?;
    if a.json {
        let doc: Vec<Value> = rows.iter().map(|r| run_json(r, true)).collect();
        return Ok(write_json(out, &doc)?);
    }
    let mut t = table(&[
        "run",
        "kind",
        "started (UTC)",
        "duration",
        "window (UTC)",
        "exit",
        "sent",
    ]);
    for r in &rows {
        let window = match (&r.window_from, &r.window_to) {
            (Some(f), Some(to)) => format!("{} .. {}", when(f), when(to)),
            _ => "-".into(),
        };
        t.add_row(vec![
            r.id.to_string(),
            cell(&r.kind, 10),
            when(&r.started_at),
            human_duration(duration_secs(r)),
            window,
            r.exit_code
                .map_or_else(|| "running or died".to_string(), |c| c.to_string()),
            r.sent.to_string(),
        ]);
    }
    write_table(out, &t)?;
    Ok(())
}

fn gaps(path: &Path, a: &GapsArgs, now: DateTime<Utc>, out: &mut dyn Write) -> Outcome {
    let (from, to) = match (&a.from, &a.to) {
        (Some(f), Some(t)) => {
            let from = floor_hour(parse_time("--from", f)?);
            let to = parse_time("--to", t)?;
            if from >= to {
                return Err(Fatal::msg(code::USAGE, "--from must be before --to").into());
            }
            (from, to)
        }
        _ => last_days(now, a.days.unwrap_or(7)),
    };
    let l = open(path)?;
    let slices = l.slice_states(from, to)?;
    let gaps = audit::merge_gaps(&slices);
    let cov = audit::summarise_coverage(from, to, &slices);
    if a.json {
        let doc = json!({
            "from": ledger::ts(from),
            "to": ledger::ts(to),
            "coverage": cov,
            "gaps": gaps.iter().map(gap_json).collect::<Vec<_>>(),
        });
        return Ok(write_json(out, &doc)?);
    }
    writeln!(
        out,
        "{} .. {} UTC: {} of {} hours covered, {} saturated, {} partial, {} uncovered",
        human_time(from),
        human_time(to),
        cov.covered_hours,
        cov.hours,
        cov.saturated_hours,
        cov.partial_hours,
        cov.uncovered_hours
    )?;
    if gaps.is_empty() {
        writeln!(out, "no gaps")?;
    } else {
        write_table(out, &gaps_table(&gaps))?;
    }
    Ok(())
}

/// A csv error as the I/O error it wraps (so a closed pipe stays a closed pipe).
fn csv_io(e: csv::Error) -> io::Error {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return io;
        }
        return io::Error::other("csv writer I/O error");
    }
    io::Error::other(e)
}

fn export(path: &Path, a: &ExportArgs, out: &mut dyn Write) -> Outcome {
    let filter = ExportFilter {
        state: a.state.map(DetectionState::from),
        from: parse_opt("--from", a.from.as_ref())?,
        to: parse_opt("--to", a.to.as_ref())?,
    };
    let l = open(path)?;
    let n = match a.format {
        ExportFormat::Jsonl => {
            let mut buf = Vec::with_capacity(512);
            l.export(&filter, |row: &ExportRow| {
                buf.clear();
                serde_json::to_writer(&mut buf, row).map_err(io::Error::other)?;
                out.write_all(&json_safe(&buf))?;
                out.write_all(b"\n")
            })?
        }
        ExportFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut *out);
            w.write_record(EXPORT_COLUMNS).map_err(csv_io)?;
            let n = l.export(&filter, |row| w.serialize(row).map_err(csv_io))?;
            w.flush()?;
            n
        }
    };
    tracing::debug!(rows = n, "export finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_terminal_controls() {
        for (raw, want) in [
            ("plain.example", "plain.example"),
            (
                "a\u{1b}[2J\u{1b}]0;pwned\u{7}b",
                "a\\u{1b}[2J\\u{1b}]0;pwned\\u{7}b",
            ),
            ("line\nbreak\r", "line\\u{a}break\\u{d}"),
            ("abc\u{202e}gpj.exe", "abc\\u{202e}gpj.exe"),
            ("zero\u{200b}width", "zero\\u{200b}width"),
            ("sep\u{2028}nel\u{85}", "sep\\u{2028}nel\\u{85}"),
            ("nul\0", "nul\\u{0}"),
            ("пример.испытание", "пример.испытание"),
        ] {
            assert_eq!(escape(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn cell_truncates_with_an_ellipsis_after_escaping() {
        assert_eq!(cell("short", 10), "short");
        assert_eq!(cell("exactly10!", 10), "exactly10!");
        assert_eq!(cell("0123456789abc", 10), "012345678…");
        assert_eq!(cell("ééééééééééé", 5), "éééé…");
        assert_eq!(cell("\u{202e}\u{202e}", 8), "\\u{202e…");
    }

    #[test]
    fn times_are_shown_in_utc_without_fraction() {
        assert_eq!(when("2026-11-27T20:53:22.123Z"), "2026-11-27 20:53:22");
        assert_eq!(when("not a time\u{1b}"), "not a time\\u{1b}");
    }

    #[test]
    fn json_output_escapes_what_serde_json_leaves_raw() {
        let v = json!({"v": "a\u{202e}b\u{7f}c\u{85}d\u{200b}e\u{2028}f\u{1b}g пример"});
        let raw = serde_json::to_vec(&v).unwrap();
        let safe = json_safe(&raw).into_owned();
        let text = String::from_utf8(safe.clone()).unwrap();
        assert!(!text.chars().any(crate::text::is_unsafe), "{text}");
        assert!(text.contains("пример"));
        let back: Value = serde_json::from_slice(&safe).unwrap();
        assert_eq!(back, v);
        let plain = serde_json::to_vec(&json!({"v": "ok"})).unwrap();
        assert!(matches!(json_safe(&plain), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn csv_columns_match_the_export_row() {
        let row = ExportRow {
            detection_id: 1,
            alarm_id: 2.into(),
            rule_name: "r".into(),
            date_inserted: "d".into(),
            entity_name: None,
            rbp_max: Some(3),
            decision: "accepted".parse().unwrap(),
            ioc_type: "ip".into(),
            value: "8.8.8.8".into(),
            field: "originIP".into(),
            state: "sent".parse().unwrap(),
            reason: None,
            attempts: 1,
            last_error: None,
            created_at: "c".into(),
            updated_at: "u".into(),
            sent_at: None,
            submission_id: Some(4),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), EXPORT_COLUMNS.join(","));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(None), "-");
        assert_eq!(human_duration(Some(2.345)), "2.3s");
        assert_eq!(human_duration(Some(62.0)), "1m02s");
        assert_eq!(human_duration(Some(7322.0)), "2h02m");
    }

    #[test]
    fn status_covers_whole_hours_before_the_current_one() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 42, 7).unwrap();
        let (from, to) = last_days(now, 2);
        assert_eq!(to, Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap());
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap());
    }
}
