//! Table and JSON output shared by the audit commands: cells cut and escaped,
//! times in UTC, JSON with unsafe characters as `\uXXXX`.

use super::*;

/// A ledger value made safe for a terminal: unsafe characters ([`crate::text`])
/// become `\u{..}`.
pub fn escape(s: &str) -> String {
    crate::text::escape(s)
}

/// [`escape`]d and cut to `max` characters with an ellipsis.
pub fn cell(s: &str, max: usize) -> String {
    cut(&escape(s), max)
}

pub(super) fn opt_cell(s: Option<&str>, max: usize) -> String {
    s.map_or_else(|| "-".to_string(), |s| cell(s, max))
}

/// A stored RFC 3339 time as `YYYY-MM-DD HH:MM:SS` (UTC); anything else escaped.
pub fn when(s: &str) -> String {
    match audit::parse_stored(s) {
        Some(t) => human_time(t),
        None => escape(s),
    }
}

pub(super) fn human_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(super) fn opt_when(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_string(), when)
}

/// An alarm's RBP, or "not fetched" when its details were not fetched.
pub(super) fn rbp(n: Option<i64>) -> String {
    n.map_or_else(
        || crate::ledger::audit::RBP_NOT_FETCHED.to_string(),
        |n| n.to_string(),
    )
}

pub(super) fn opt_num<T: std::fmt::Display>(n: Option<T>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// A comfy-table preset with one rule under the header and nothing else, so rows
/// stay one line each and `grep`/`head` work on them.
pub(super) const HEADER_RULE_ONLY: &str = "     ──              ";

pub(super) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(HEADER_RULE_ONLY)
        .force_no_tty()
        .set_header(header.to_vec());
    t
}

/// Writes the table, each row one line; when there is a width to fit
/// ([`crate::cli::output::terminal_width`]) it is [`fit`] to it first (`--json`
/// has every value whole).
pub(super) fn write_table(out: &mut dyn Write, t: &Table) -> io::Result<()> {
    let fitted = crate::cli::output::terminal_width().map(|w| fit(t, usize::from(w)));
    for line in fitted.as_ref().unwrap_or(t).lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The table narrowed to `width` characters: the widest columns give up
/// characters first (none below 3), and cut cells end with `…`; header and rows
/// stay one line each.
pub(super) fn fit(t: &Table, width: usize) -> Table {
    let texts =
        |r: &comfy_table::Row| -> Vec<String> { r.cell_iter().map(|c| c.content()).collect() };
    let header = t.header().map(texts).unwrap_or_default();
    let rows: Vec<Vec<String>> = t.row_iter().map(texts).collect();
    let len = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| len(h)).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            let w = c.lines().map(len).max().unwrap_or(0);
            match widths.get_mut(i) {
                Some(x) => *x = (*x).max(w),
                None => widths.push(w),
            }
        }
    }
    let rendered = t.lines().map(|l| len(l.trim_end())).max().unwrap_or(0);
    if rendered <= width {
        return t.clone();
    }
    let overhead = rendered.saturating_sub(widths.iter().sum());
    let budget = width.saturating_sub(overhead);
    // Columns whose values all have one length (times, ids) are read whole or
    // not at all: free text gives up characters first, down to 8, then all to 3.
    let rigid: Vec<bool> = (0..widths.len())
        .map(|i| {
            let mut lens = rows
                .iter()
                .filter_map(|r| r.get(i))
                .filter(|c| c.as_str() != "-" && !c.is_empty())
                .map(|c| len(c));
            let first = lens.next();
            first.is_some() && lens.all(|l| Some(l) == first)
        })
        .collect();
    for (floor, flexible_only) in [(8, true), (3, false)] {
        while widths.iter().sum::<usize>() > budget {
            let widest = widths
                .iter()
                .enumerate()
                .filter(|(i, w)| **w > floor && !(flexible_only && rigid[*i]))
                .max_by_key(|(_, w)| **w)
                .map(|(i, _)| i);
            let Some(i) = widest else { break };
            widths[i] -= 1;
        }
    }
    let cut_row = |r: &[String]| -> Vec<String> {
        r.iter()
            .enumerate()
            .map(|(i, c)| cut(c, widths.get(i).copied().unwrap_or(3)))
            .collect()
    };
    let mut out = table(&[]);
    out.set_header(cut_row(&header));
    for r in &rows {
        out.add_row(cut_row(r));
    }
    out
}

/// `s` at most `max` characters, cut with `…`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut c: String = s.chars().take(max.saturating_sub(1)).collect();
    c.push('…');
    c
}

/// JSON text with the characters of [`crate::text::is_unsafe`] that serde_json leaves raw (DEL,
/// C1, bidi, zero-width, separators) escaped as `\uXXXX`. Those characters can only
/// occur inside JSON strings, where the escape means the same character.
pub(super) fn json_safe(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
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

pub(super) fn write_json(out: &mut dyn Write, v: &impl Serialize) -> io::Result<()> {
    let raw = serde_json::to_vec(v).map_err(io::Error::other)?;
    out.write_all(&json_safe(&raw))?;
    out.write_all(b"\n")
}

/// Seconds as `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn human_age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}
