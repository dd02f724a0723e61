//! `POST /collective-insights/search` paged over a detection-time window (spec
//! §3): what CI holds for the token's organisation, for `lrci reconcile`.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;

use super::{map_http, Client, Error, Result};
use crate::http;

/// Largest page CI accepts (psengine `SEARCH_MAX_LIMIT`).
pub const MAX_PAGE: usize = 1000;
/// Pages read at most in one window (a server that never ends paging).
const MAX_PAGES: usize = 10_000;

/// One event CI holds, reduced to the ledger's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub event_id: String,
    /// `incident.id` (lrci sends the alarm id), when the event has one.
    pub incident_id: Option<String>,
    pub ioc_type: String,
    pub value: String,
    pub detection_time: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Page {
    data: Vec<Event>,
    #[serde(default)]
    counts: Option<Counts>,
    #[serde(default)]
    next_offset: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Counts {
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    detection_time: Option<String>,
    #[serde(default)]
    indicator: Option<Indicator>,
    #[serde(default)]
    incident: Option<Incident>,
}

#[derive(Debug, Deserialize)]
struct Indicator {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Incident {
    #[serde(default)]
    id: Option<String>,
}

/// The request body of one page.
pub(super) fn body(from: DateTime<Utc>, to: DateTime<Utc>, limit: usize, offset: usize) -> String {
    let t = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut v = serde_json::json!({
        "filters": {"detection_time": {"from": t(from), "to": t(to)}, "submission_method": ["api"]},
        "limit": limit.clamp(1, MAX_PAGE),
    });
    if offset > 0 {
        v["offset"] = offset.into();
    }
    v.to_string()
}

/// What to do after a page: `Some(next offset)` or `None` (done).
pub(super) fn next_offset(
    seen: usize,
    returned: usize,
    total: Option<u64>,
    server_next: Option<u64>,
) -> Option<usize> {
    if returned == 0 {
        return None;
    }
    if let Some(total) = total {
        if seen as u64 >= total {
            return None;
        }
    }
    match server_next {
        Some(n) if n as usize > seen.saturating_sub(returned) => Some(n as usize),
        _ => Some(seen),
    }
}

impl Client {
    /// Every event CI holds with a detection time in `[from, to]`, paging with
    /// `page` (≤ 1000) items a request; retries and `Retry-After` as for submits.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn search_window(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: usize,
    ) -> Result<Vec<Held>> {
        let mut out = Vec::new();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let bytes = body(from, to, page, offset);
            let resp = http::execute(&self.http, &self.opts, || {
                self.http
                    .post(self.search.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.clone())
            })
            .await
            .map_err(|e| map_http(e, &self.search))?;
            let parsed: Page =
                serde_json::from_slice(&resp.body).map_err(|source| Error::BadResponse {
                    status: resp.status.as_u16(),
                    snippet: http::sanitize(&String::from_utf8_lossy(&resp.body), 200),
                    source: Some(source),
                })?;
            let returned = parsed.data.len();
            out.extend(parsed.data.into_iter().filter_map(held));
            let total = parsed.counts.and_then(|c| c.total);
            match next_offset(offset + returned, returned, total, parsed.next_offset) {
                Some(n) => offset = n,
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}

fn held(e: Event) -> Option<Held> {
    let ind = e.indicator?;
    Some(Held {
        event_id: e.id.unwrap_or_default(),
        incident_id: e.incident.and_then(|i| i.id),
        ioc_type: ind.kind,
        value: ind.value,
        detection_time: e.detection_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_table() {
        // (seen, returned, total, next_offset) -> next
        for (seen, returned, total, next, want) in [
            (0, 0, Some(0), None, None),
            (1000, 1000, Some(2500), None, Some(1000)),
            (2500, 500, Some(2500), None, None),
            (1000, 1000, None, None, Some(1000)),
            (1000, 1000, None, Some(1000), Some(1000)),
            (1000, 1000, Some(5000), Some(0), Some(1000)),
            (300, 0, None, None, None),
        ] {
            assert_eq!(
                next_offset(seen, returned, total, next),
                want,
                "{seen} {returned}"
            );
        }
    }

    #[test]
    fn body_caps_the_page_and_sends_offset_only_after_the_first() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let b: serde_json::Value = serde_json::from_str(&body(
            t("2024-05-14T00:00:00Z"),
            t("2024-05-15T00:00:00Z"),
            5000,
            0,
        ))
        .unwrap();
        assert_eq!(b["limit"], 1000);
        assert!(b.get("offset").is_none());
        assert_eq!(
            b["filters"]["detection_time"]["from"],
            "2024-05-14T00:00:00.000Z"
        );
        let b: serde_json::Value = serde_json::from_str(&body(
            t("2024-05-14T00:00:00Z"),
            t("2024-05-15T00:00:00Z"),
            10,
            20,
        ))
        .unwrap();
        assert_eq!(
            (b["limit"].as_u64(), b["offset"].as_u64()),
            (Some(10), Some(20))
        );
    }
}
