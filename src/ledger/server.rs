//! The server profile (issue 11): what lrci probed of the LogRhythm server's
//! list behaviour — page cap, `offset`, time-zone shift — one row, replaced
//! by each probe and marked stale when a listing contradicts it.

use super::{sql, ts, Ledger, Result, Writer};
use crate::model::{OffsetMode, PageCap, ServerProfile};
use rusqlite::{params, OptionalExtension};

fn profile_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ServerProfile> {
    let cap: Option<i64> = sql::get(r, 0, "server_profile.page_cap")?;
    let exact: bool = sql::get(r, 1, "server_profile.page_cap_exact")?;
    let cap = cap.map(|n| {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if exact {
            PageCap::Exact(n)
        } else {
            PageCap::AtLeast(n)
        }
    });
    let mode: String = sql::get(r, 2, "server_profile.offset_mode")?;
    let offset_mode = OffsetMode::parse(&mode).ok_or_else(|| {
        sql::bad_text(
            2,
            "server_profile.offset_mode",
            format!("{mode:?} is not an offset mode"),
        )
    })?;
    Ok(ServerProfile {
        page_cap: cap,
        offset_mode,
        tz_shift_hours: sql::get(r, 3, "server_profile.tz_shift_hours")?,
        requests: sql::get(r, 4, "server_profile.requests")?,
        probed_at: sql::time(r, 5, "server_profile.probed_at")?,
        stale: sql::get(r, 6, "server_profile.stale_reason")?,
    })
}

impl Ledger {
    /// The recorded server profile, if the server was ever probed.
    pub fn server_profile(&self) -> Result<Option<ServerProfile>> {
        self.conn
            .query_row(
                "SELECT page_cap, page_cap_exact, offset_mode, tz_shift_hours, requests,
                        probed_at, stale_reason
                 FROM server_profile WHERE id = 1",
                [],
                profile_row,
            )
            .optional()
            .map_err(|e| self.sql(e))
    }
}

impl Writer {
    /// Records a probe's findings, replacing any earlier record.
    pub fn record_server_profile(&mut self, p: &ServerProfile) -> Result<()> {
        let (cap, exact) = match p.page_cap {
            None => (None, false),
            Some(PageCap::Exact(n)) => (Some(i64::from(n)), true),
            Some(PageCap::AtLeast(n)) => (Some(i64::from(n)), false),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO server_profile (id, page_cap, page_cap_exact, offset_mode,
                        tz_shift_hours, requests, probed_at, stale_reason)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET
                    page_cap = excluded.page_cap, page_cap_exact = excluded.page_cap_exact,
                    offset_mode = excluded.offset_mode, tz_shift_hours = excluded.tz_shift_hours,
                    requests = excluded.requests, probed_at = excluded.probed_at,
                    stale_reason = excluded.stale_reason",
                params![
                    cap,
                    exact,
                    p.offset_mode.as_str(),
                    p.tz_shift_hours,
                    p.requests,
                    ts(p.probed_at),
                    p.stale
                ],
            )
            .map(|_| ())
        })
    }

    /// Marks the record stale (a listing contradicted it): the next run probes
    /// again. No record, nothing to mark.
    pub fn mark_server_profile_stale(&mut self, reason: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE server_profile SET stale_reason = ?1 WHERE id = 1",
                [reason],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_profile_round_trips_and_can_be_marked_stale() {
        let mut w = Writer::open_in_memory().unwrap();
        assert_eq!(w.server_profile().unwrap(), None);
        w.mark_server_profile_stale("nothing recorded").unwrap();
        assert_eq!(w.server_profile().unwrap(), None);
        let at = Utc.with_ymd_and_hms(2024, 5, 14, 9, 0, 0).unwrap();
        for cap in [Some(PageCap::Exact(100)), Some(PageCap::AtLeast(37)), None] {
            let p = ServerProfile {
                page_cap: cap,
                offset_mode: OffsetMode::Records,
                tz_shift_hours: Some(-5),
                requests: 7,
                probed_at: at,
                stale: None,
            };
            w.record_server_profile(&p).unwrap();
            assert_eq!(w.server_profile().unwrap(), Some(p.clone()));
        }
        w.mark_server_profile_stale("a page of 120 rows").unwrap();
        let got = w.server_profile().unwrap().unwrap();
        assert_eq!(got.stale.as_deref(), Some("a page of 120 rows"));
        assert_eq!(got.tz_shift_hours, Some(-5));
    }
}
