//! What the engine knows of the LogRhythm server's list behaviour (issue 11):
//! at the start of a run, the ledger's server profile — probed now when none is
//! recorded or the record is stale — becomes the [`Paging`] every slice lists
//! with (the honoured page size, a known-ignored `offset`, the time-zone shift);
//! during the run, each listing is checked against the record ([`contradiction`],
//! pure), and a contradiction marks the record stale so the next run probes
//! again. Rows older than asked give one warning per run, at its end, naming
//! the largest difference seen.

use crate::error::Fatal;
use crate::ledger::{ts, Writer};
use crate::logrhythm::{self, Paging, SliceListing};
use crate::model::{OffsetMode, PageCap, ServerProfile};
use chrono::{DateTime, TimeDelta, Utc};

use super::failure;

/// How far before the window the probe looks for alarms to measure by.
pub const PROBE_LOOKBACK: TimeDelta = TimeDelta::days(1);

/// A record older than this is probed again: a server upgrade may change what
/// it does, and a shift that loses rows is invisible to a listing.
pub const PROFILE_MAX_AGE: TimeDelta = TimeDelta::days(7);

/// The paging a profile says to use, for `page_size` rows wanted.
pub fn paging(profile: Option<&ServerProfile>, page_size: u32) -> Paging {
    let Some(p) = profile else {
        return Paging::new(page_size);
    };
    Paging {
        page_size: p.page_cap.map_or(page_size, |c| c.page_size(page_size)),
        offset_mode: p.offset_mode,
        tz_shift: p.tz_shift(),
    }
}

/// Why a listing contradicts the recorded profile, if it does.
pub fn contradiction(p: &ServerProfile, l: &SliceListing) -> Option<String> {
    if let Some(PageCap::Exact(cap)) = p.page_cap {
        if l.largest_page > cap as usize {
            return Some(format!(
                "a page of {} rows, above the recorded cap of {cap}",
                l.largest_page
            ));
        }
    }
    let (was, now) = (p.offset_mode, l.offset_mode);
    if was != OffsetMode::Unknown && now != OffsetMode::Unknown && was != now {
        return Some(format!(
            "offset behaved as {}, recorded as {}",
            now.as_str(),
            was.as_str()
        ));
    }
    l.early_by.map(|by| {
        format!(
            "rows {} s older than asked (dateInserted read as local time?)",
            by.num_seconds()
        )
    })
}

/// The run's view of the server: the record it lists with, and what it saw.
pub(super) struct Watch {
    profile: Option<ServerProfile>,
    /// The most any listing's rows were older than asked.
    early_by: Option<TimeDelta>,
    stale: Option<String>,
}

impl Watch {
    /// Checks one slice's listing against the record and keeps the most its
    /// rows were older than asked.
    pub(super) fn observe(&mut self, l: &SliceListing) {
        if let Some(by) = l.early_by {
            self.early_by = Some(self.early_by.map_or(by, |e| e.max(by)));
        }
        if self.stale.is_some() {
            return;
        }
        if let Some(p) = &self.profile {
            if let Some(why) = contradiction(p, l) {
                tracing::info!(reason = %why, "a listing contradicts the recorded server profile; the next run probes again");
                self.stale = Some(why);
            }
        }
    }

    /// Warns (once per run) of rows older than asked, and records a
    /// contradiction seen during the run.
    pub(super) fn finish(self, ledger: &mut Writer) -> Result<(), Fatal> {
        if let Some(by) = self.early_by {
            let hours = by.num_minutes().saturating_add(30) / 60;
            tracing::warn!(
                older_by_seconds = by.num_seconds(),
                shift_hours = hours,
                "LogRhythm returned alarms up to about {hours} h older than the dateInserted asked for: it may read the parameter as server-local time; lrci bounds rows itself, and the next run measures the shift again (see lrci doctor)"
            );
        }
        if let Some(why) = self.stale {
            ledger.mark_server_profile_stale(&why)?;
        }
        Ok(())
    }
}

/// The paging for this run: the recorded profile, probed first when there is
/// none or it is stale. A probe that fails transiently leaves the run listing
/// as if nothing were known (and the next run probes again).
pub(super) async fn prepare(
    ledger: &mut Writer,
    lr: &logrhythm::Client,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    page_size: u32,
) -> Result<(Paging, Watch), Fatal> {
    let recorded = ledger.server_profile()?;
    let profile = match recorded {
        // A record made before any alarm existed measured nothing: ask again.
        Some(p)
            if p.stale.is_none()
                && p.tz_shift_hours.is_some()
                && now - p.probed_at < PROFILE_MAX_AGE =>
        {
            Some(p)
        }
        earlier => {
            let why = match &earlier {
                None => "nothing recorded".to_string(),
                Some(p) => match &p.stale {
                    Some(why) => why.clone(),
                    None if p.tz_shift_hours.is_none() => {
                        "nothing measured yet (no alarm)".to_string()
                    }
                    None => format!("recorded {}", ts(p.probed_at)),
                },
            };
            match logrhythm::probe::probe(lr, since - PROBE_LOOKBACK, now).await {
                Ok(p) => {
                    tracing::info!(reason = %why, profile = %p.describe(), "probed the LogRhythm server");
                    if p.tz_shift_hours.is_some_and(|h| h != 0) {
                        tracing::warn!(
                            shift_hours = p.tz_shift_hours,
                            "LogRhythm reads the dateInserted parameter as local time, not UTC; lrci shifts every bound it sends to compensate"
                        );
                    }
                    ledger.record_server_profile(&p)?;
                    Some(p)
                }
                Err(e) => {
                    let e = failure::lr(e)?;
                    tracing::warn!(error = %e.error, "could not probe the LogRhythm server's paging; listing without a profile this run");
                    earlier
                }
            }
        }
    };
    let paging = paging(profile.as_ref(), page_size);
    Ok((
        paging,
        Watch {
            profile,
            early_by: None,
            stale: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(cap: Option<PageCap>, mode: OffsetMode, tz: Option<i32>) -> ServerProfile {
        ServerProfile {
            page_cap: cap,
            offset_mode: mode,
            tz_shift_hours: tz,
            requests: 7,
            probed_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            stale: None,
        }
    }

    #[test]
    fn paging_table() {
        let cases = [
            (None, Paging::new(1000)),
            (
                Some(profile(
                    Some(PageCap::Exact(100)),
                    OffsetMode::Ignored,
                    Some(0),
                )),
                Paging {
                    page_size: 100,
                    offset_mode: OffsetMode::Ignored,
                    tz_shift: TimeDelta::zero(),
                },
            ),
            (
                Some(profile(
                    Some(PageCap::AtLeast(40)),
                    OffsetMode::Records,
                    Some(-5),
                )),
                Paging {
                    page_size: 1000,
                    offset_mode: OffsetMode::Records,
                    tz_shift: TimeDelta::hours(-5),
                },
            ),
            (
                Some(profile(None, OffsetMode::Unknown, None)),
                Paging::new(1000),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(paging(p.as_ref(), 1000), want, "{p:?}");
        }
    }

    #[test]
    fn contradiction_table() {
        let listing = |largest: usize, mode: OffsetMode, early: Option<i64>| SliceListing {
            largest_page: largest,
            offset_mode: mode,
            early_by: early.map(TimeDelta::seconds),
            ..SliceListing::default()
        };
        let p = profile(Some(PageCap::Exact(100)), OffsetMode::Ignored, Some(0));
        let cases = [
            (listing(100, OffsetMode::Unknown, None), false),
            (listing(100, OffsetMode::Ignored, None), false),
            (listing(101, OffsetMode::Unknown, None), true),
            (listing(50, OffsetMode::Records, None), true),
            (listing(50, OffsetMode::Unknown, Some(7200)), true),
        ];
        for (l, want) in cases {
            assert_eq!(contradiction(&p, &l).is_some(), want, "{l:?}");
        }
        // A lower bound on the cap is no contradiction when exceeded.
        let p = profile(Some(PageCap::AtLeast(40)), OffsetMode::Unknown, Some(0));
        assert_eq!(
            contradiction(&p, &listing(500, OffsetMode::Records, None)),
            None
        );
    }
}
