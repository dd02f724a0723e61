//! What lrci has learned of one LogRhythm server's list behaviour (issue 11):
//! its page cap, what it does with `offset`, and the time zone it reads the
//! `dateInserted` parameter in. Probed once per ledger (and again when a
//! listing contradicts the record), kept in the ledger, shown by `doctor`.

use chrono::{DateTime, TimeDelta, Utc};

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

impl OffsetMode {
    /// The name stored in the ledger and shown by `doctor`.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetMode::Unknown => "unknown",
            OffsetMode::Records => "records",
            OffsetMode::Pages => "pages",
            OffsetMode::Ignored => "ignored",
        }
    }

    /// The mode named `s` ([`OffsetMode::as_str`]).
    pub fn parse(s: &str) -> Option<OffsetMode> {
        [
            OffsetMode::Unknown,
            OffsetMode::Records,
            OffsetMode::Pages,
            OffsetMode::Ignored,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// The largest page the server returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCap {
    /// The server cut a page at this many rows although more matched.
    Exact(u32),
    /// Every matching row fitted in one page of this many: the cap, if any, is
    /// at least that.
    AtLeast(u32),
}

impl PageCap {
    /// The rows counted.
    pub fn rows(self) -> u32 {
        match self {
            PageCap::Exact(n) | PageCap::AtLeast(n) => n,
        }
    }

    /// The `count` to ask for when lrci would ask `wanted`: the cap when it is
    /// known and smaller, so that a page the server cuts counts as full at once.
    pub fn page_size(self, wanted: u32) -> u32 {
        match self {
            PageCap::Exact(n) if n > 0 => wanted.min(n),
            _ => wanted,
        }
    }
}

impl std::fmt::Display for PageCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageCap::Exact(n) => write!(f, "{n} rows"),
            PageCap::AtLeast(n) => write!(f, "at least {n} rows"),
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProfile {
    /// The page cap; `None` when there were too few alarms to tell.
    pub page_cap: Option<PageCap>,
    /// What `offset` does (`Unknown` when there were too few alarms to tell).
    pub offset_mode: OffsetMode,
    /// Whole hours the server's reading of `dateInserted` is ahead of UTC
    /// (`None` when no alarm was there to measure it by).
    pub tz_shift_hours: Option<i32>,
    /// Requests the probe made.
    pub requests: u32,
    /// When it was probed (agent's clock).
    pub probed_at: DateTime<Utc>,
    /// Set when a listing contradicted this record: the next run probes again.
    pub stale: Option<String>,
}

impl ServerProfile {
    /// The shift to add to every `dateInserted` sent.
    pub fn tz_shift(&self) -> TimeDelta {
        TimeDelta::hours(i64::from(self.tz_shift_hours.unwrap_or(0)))
    }

    /// One line for `doctor` and the log.
    pub fn describe(&self) -> String {
        let cap = self
            .page_cap
            .map_or("not measured (too few alarms)".to_string(), |c| {
                c.to_string()
            });
        let tz = match self.tz_shift_hours {
            None => "not measured (no alarm)".to_string(),
            Some(0) => "dateInserted read as UTC".to_string(),
            Some(h) => format!("dateInserted read as local time UTC{h:+} h (lrci compensates)"),
        };
        format!(
            "page cap {cap}; offset {}; {tz}; probed {} with {} requests",
            self.offset_mode.as_str(),
            self.probed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.requests
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_mode_names_round_trip() {
        for m in [
            OffsetMode::Unknown,
            OffsetMode::Records,
            OffsetMode::Pages,
            OffsetMode::Ignored,
        ] {
            assert_eq!(OffsetMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(OffsetMode::parse("Records"), None);
    }

    /// One row per case: cap, wanted, count asked.
    #[test]
    fn page_size_table() {
        let cases = [
            (PageCap::Exact(100), 1000, 100),
            (PageCap::Exact(1000), 500, 500),
            (PageCap::AtLeast(37), 1000, 1000),
            (PageCap::Exact(0), 1000, 1000),
        ];
        for (cap, wanted, want) in cases {
            assert_eq!(cap.page_size(wanted), want, "{cap:?} {wanted}");
        }
    }
}
