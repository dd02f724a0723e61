//! `logrhythm::Client`: the LogRhythm SIEM Alarm API (`/lr-alarm-api/`) —
//! listing alarms by insertion time (page by page, and whole slices with the
//! "no alarm lost" algorithm of [`listing`]), alarm details and alarm events.
//!
//! Owns the LR wire format (in `wire`) and converts it to `model` types at the
//! edge. No SQL, no ledger, no printing; transport comes from [`crate::http`].
//! Every attempt of every request passes the client's concurrency [`Limiter`]
//! when one is set ([`Client::with_concurrency`]; see [`limit`]).

pub mod limit;
mod listing;
mod partition;
pub mod probe;
mod wire;

pub use crate::model::OffsetMode;
pub use limit::Limiter;
pub use listing::{PageRequest, SliceListing, EARLY_TOLERANCE, TICK_LEAD};
pub use wire::{format_lr_date, parse_lr_date};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::Url;
use secrecy::SecretString;
use serde_json::Value;

use crate::http::{self, HttpOptions};
use crate::model::{AlarmDetails, AlarmId, AlarmRow};

/// Pages one slice may take before the listing is abandoned as runaway: at 100
/// rows a page that is a million alarms in one hour, far above any real system.
pub const MAX_PAGES_PER_SLICE: u32 = 10_000;

/// The environment variable the key comes from (named in errors, never the value).
const KEY_VARIABLE: &str = "LOGRHYTHM_API_KEY";

/// Errors of the LogRhythm client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Transport or HTTP failure.
    #[error(transparent)]
    Http(Box<http::Error>),
    /// 401 or 403: the key is wrong, expired, or lacks permission (exit 77).
    #[error("LogRhythm refused the API key (HTTP {status}); check LOGRHYTHM_API_KEY and the third-party application's user profile")]
    Auth {
        /// 401 or 403.
        status: u16,
        #[source]
        source: Box<http::Error>,
    },
    /// 404 for one alarm.
    #[error("alarm {id} not found (HTTP 404)")]
    NotFound {
        id: AlarmId,
        #[source]
        source: Box<http::Error>,
    },
    /// 404 for the alarms collection itself: no Alarm API at the configured
    /// address (a wrong host, port or path). A configuration error (exit 78).
    #[error("LOGRHYTHM_API_URL {url}: GET alarms answered HTTP 404, so there is no Alarm API at this address; give the scheme, host and port of the API gateway (e.g. https://pm.example:8501), lrci appends /lr-alarm-api/")]
    NoApi {
        /// The API root that was tried.
        url: String,
        #[source]
        source: Box<http::Error>,
    },
    /// The body is not JSON of the expected shape.
    #[error("{what}: response is not valid JSON of the expected shape")]
    Parse {
        /// Which call, e.g. `events of alarm 42`.
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// An HTML (or XML) page where JSON was expected: what a reverse proxy or
    /// gateway serves, with status 200, when its session expired or the API
    /// behind it is down. Transient: the API's own answer comes back later.
    #[error("{what}: the answer is an HTML page, not JSON (a gateway or proxy page)")]
    NotJson { what: String },
    /// Valid JSON, but a part lrci needs is missing or of the wrong kind.
    #[error("{what}: {problem}")]
    Shape { what: String, problem: &'static str },
    /// The LR envelope reported a failure inside a 2xx answer.
    #[error("{what}: LogRhythm envelope statusCode {code}: {message}")]
    Envelope {
        what: String,
        code: i64,
        message: String,
    },
    /// A full page held only alarms older than the bound asked for: the server
    /// reads `dateInserted` in another time zone than lrci assumes.
    #[error("asked for alarms from {since}, LogRhythm answered a full page of older ones (newest {newest}): it may read dateInserted as its local time; the next run measures the shift again")]
    Shifted {
        since: DateTime<Utc>,
        newest: DateTime<Utc>,
    },
    /// The listing would repeat the same request forever.
    #[error("listing made no progress: the next request (dateInserted={since} offset={offset}) repeats the last one")]
    NoProgress { since: DateTime<Utc>, offset: u32 },
    /// The page budget of a slice was exhausted.
    #[error("listing [{from}, {to}) needed more than {max} pages")]
    TooManyPages {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max: u32,
    },
}

impl From<http::Error> for Error {
    fn from(e: http::Error) -> Self {
        Error::Http(Box::new(e))
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when a later attempt may succeed (the work stays for the next run).
    /// Parse/shape/order problems are not transient: retrying the same call
    /// immediately would not help, though a later run may.
    pub fn is_transient(&self) -> bool {
        match self {
            // A redirect (a reverse proxy's login) is the gateway's state, not
            // the alarm's: a later run gets the answer once the gateway is back.
            Error::Http(e) => e.is_transient() || matches!(**e, http::Error::Redirect { .. }),
            Error::Envelope { .. } => true,
            // An HTML page with status 200 (a proxy's login or error page): the
            // gateway again. A broken JSON body stays permanent.
            Error::NotJson { .. } => true,
            Error::Auth { .. }
            | Error::NotFound { .. }
            | Error::NoApi { .. }
            | Error::Parse { .. }
            | Error::Shape { .. }
            | Error::Shifted { .. }
            | Error::NoProgress { .. }
            | Error::TooManyPages { .. } => false,
        }
    }

    /// True for 401/403: the key is wrong or lacks permission (exit 77).
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. })
    }

    /// The TLS failure, when the handshake with LogRhythm is what failed.
    pub fn tls_failure(&self) -> Option<&http::TlsFailure> {
        match self {
            Error::Http(e) => e.tls_failure(),
            _ => None,
        }
    }

    /// For a TLS failure, the one-line advice a person needs to fix it (which
    /// flag to use); `None` for any other error. Exit 78: retrying cannot help.
    pub fn tls_advice(&self) -> Option<String> {
        let f = self.tls_failure()?;
        Some(match f {
            http::TlsFailure::UnknownIssuer | http::TlsFailure::Certificate(_) => format!(
                "LogRhythm's TLS certificate is not trusted ({f}): pass its CA with --lr-ca-cert FILE, or --lr-insecure"
            ),
            http::TlsFailure::CaAsServerCert => format!(
                "LogRhythm's TLS certificate is a self-signed CA certificate ({f}) that --lr-ca-cert does not hold: put that exact certificate in the --lr-ca-cert file (openssl s_client -connect HOST:PORT </dev/null | openssl x509 > lr.pem), or use --lr-insecure"
            ),
            http::TlsFailure::NotValidForName { .. } if f.lacks_san() => format!(
                "LogRhythm's TLS certificate is not valid for the host in LOGRHYTHM_API_URL ({f}); hint: rustls ignores the CN, so reissue the certificate with a subjectAltName for that host (IP or DNS name), or use --lr-insecure"
            ),
            http::TlsFailure::NotValidForName { .. } => format!(
                "LogRhythm's TLS certificate is not valid for the host in LOGRHYTHM_API_URL ({f}): use a URL with a name the certificate covers, or --lr-insecure"
            ),
            http::TlsFailure::Expired | http::TlsFailure::NotValidYet => format!(
                "LogRhythm's TLS certificate is outside its validity period ({f}): renew it on the gateway (or check this machine's clock), or use --lr-insecure"
            ),
            http::TlsFailure::Handshake(_) => format!(
                "TLS handshake with LogRhythm failed ({f}): check that LOGRHYTHM_API_URL is the API's HTTPS port (e.g. 8501) and that the gateway speaks TLS 1.2 or later"
            ),
        })
    }
}

/// What a request asks for, which decides what a 404 means.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The alarms collection: a 404 means there is no API at the base URL.
    List,
    /// One alarm (details, events, summary): a 404 means that alarm.
    Alarm(AlarmId),
}

/// Maps HTTP errors: 401/403 → `Auth`, 404 for an alarm → `NotFound`, 404 for
/// the collection → `NoApi`.
fn map_http(e: http::Error, target: Target, base: &Url) -> Error {
    match (e.status(), target) {
        (Some(status @ (401 | 403)), _) => Error::Auth {
            status,
            source: Box::new(e),
        },
        (Some(404), Target::Alarm(id)) => Error::NotFound {
            id,
            source: Box::new(e),
        },
        (Some(404), Target::List) => Error::NoApi {
            url: base.to_string(),
            source: Box::new(e),
        },
        _ => Error::from(e),
    }
}

/// What is known of how the server pages, for [`Client::list_slice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// `count` asked for.
    pub page_size: u32,
    /// How the server treats `offset`, if known (`Ignored` skips the probe).
    pub offset_mode: OffsetMode,
    /// Added to every `dateInserted` sent: the server reads the parameter as
    /// its local time this far ahead of UTC (see [`probe`]).
    pub tz_shift: chrono::TimeDelta,
}

impl Paging {
    /// Nothing known: `page_size` rows asked, offset probed when needed, no shift.
    pub fn new(page_size: u32) -> Paging {
        Paging {
            page_size,
            offset_mode: OffsetMode::Unknown,
            tz_shift: chrono::TimeDelta::zero(),
        }
    }
}

/// Client of one LogRhythm Alarm API. A clone is the same client (one
/// connection pool, one clock-skew reading, one concurrency limiter), so
/// requests can run in tasks of their own.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Ends with `/lr-alarm-api/`.
    base: Url,
    opts: HttpOptions,
    /// LogRhythm's clock minus this machine's, from the last answer's `Date`.
    clock_skew: std::sync::Arc<std::sync::Mutex<Option<chrono::Duration>>>,
    /// Admits every attempt when set; without one, requests are not gated.
    limiter: Option<Limiter>,
}

/// `https://pm:8501` → `https://pm:8501/lr-alarm-api/` (kept if already there).
fn api_base(base: &Url) -> Result<Url> {
    let bad = |reason| {
        Error::from(http::Error::BadUrl {
            url: base.as_str().to_string(),
            reason,
        })
    };
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(bad("the LogRhythm URL must be http:// or https://"));
    }
    if base.host_str().is_none() {
        return Err(bad("the LogRhythm URL has no host"));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(bad(
            "credentials in the URL are not allowed; use LOGRHYTHM_API_KEY",
        ));
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_string();
    let path = if path.ends_with("/lr-alarm-api") {
        format!("{path}/")
    } else {
        format!("{path}/lr-alarm-api/")
    };
    url.set_path(&path);
    Ok(url)
}

impl Client {
    /// Builds the client: `base` is the API host (e.g. `https://pm:8501`); the
    /// client appends `/lr-alarm-api/`. The key is sent as `Authorization: Bearer`.
    pub fn new(base: Url, key: SecretString, opts: HttpOptions) -> Result<Client> {
        let base = api_base(&base)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            http::auth_header(KEY_VARIABLE, "Bearer ", &key)?,
        );
        let http = http::build_client(&opts, headers)?;
        Ok(Client {
            http,
            base,
            opts,
            clock_skew: std::sync::Arc::new(std::sync::Mutex::new(None)),
            limiter: None,
        })
    }

    /// Gates every request of this client by `concurrency`: at most N in
    /// flight, or the adaptive limit of [`limit`] with `auto`.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: crate::model::Concurrency) -> Client {
        self.limiter = Some(Limiter::new(concurrency));
        self
    }

    /// The concurrency limit so far (final, peak, backoffs), when one is set.
    pub fn concurrency(&self) -> Option<limit::Report> {
        self.limiter.as_ref().map(Limiter::report)
    }

    /// LogRhythm's clock minus this machine's, as the last answer's `Date`
    /// header gave it (whole seconds, so up to a second low); `None` before any
    /// answer with one.
    pub fn clock_skew(&self) -> Option<chrono::Duration> {
        *self
            .clock_skew
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The API root this client talks to (ends with `/lr-alarm-api/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, rel: &str) -> Result<Url> {
        self.base.join(rel).map_err(|_| {
            Error::from(http::Error::BadUrl {
                url: format!("{}{rel}", self.base),
                reason: "cannot build the request URL",
            })
        })
    }

    async fn get(&self, url: Url, target: Target) -> Result<Vec<u8>> {
        let build = || self.http.get(url.clone());
        let resp = match &self.limiter {
            // List pages are gated, but only per-alarm calls are latency samples.
            Some(l) => {
                let gate = l.gate(matches!(target, Target::Alarm(_)));
                http::execute_gated(&self.http, &self.opts, build, &gate).await
            }
            None => http::execute(&self.http, &self.opts, build).await,
        }
        .map_err(|e| map_http(e, target, &self.base))?;
        if let Some(skew) = resp.clock_skew {
            *self
                .clock_skew
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(skew);
        }
        Ok(resp.body)
    }

    /// One `GET /alarms` page: `dateInserted >= since` (sent as UTC without `Z`,
    /// see [`format_lr_date`]), ascending by insertion time.
    ///
    /// `null` or missing `alarmsSearchDetails` is an empty page. A row without a
    /// usable `alarmId` or `dateInserted` is skipped with a warning; a body that
    /// is not JSON is [`Error::Parse`].
    #[tracing::instrument(skip_all, fields(since = %since, count, offset), err(level = "debug"))]
    pub async fn list_page(
        &self,
        since: DateTime<Utc>,
        count: u32,
        offset: u32,
    ) -> Result<Vec<AlarmRow>> {
        self.list_page_dir(since, count, offset, false).await
    }

    /// [`Client::list_page`] narrowed by the list filters of `filter`
    /// (`alarmStatus`, `entityName`, `alarmRuleName`), offset 0.
    pub async fn list_page_filtered(
        &self,
        since: DateTime<Utc>,
        count: u32,
        filter: &partition::Filter,
    ) -> Result<Vec<AlarmRow>> {
        self.list_request(since, count, 0, false, filter).await
    }

    /// [`Client::list_page`], newest first when `descending` (the probe's
    /// question "which alarm is the newest").
    pub async fn list_page_dir(
        &self,
        since: DateTime<Utc>,
        count: u32,
        offset: u32,
        descending: bool,
    ) -> Result<Vec<AlarmRow>> {
        let all = partition::Filter::default();
        self.list_request(since, count, offset, descending, &all)
            .await
    }

    async fn list_request(
        &self,
        since: DateTime<Utc>,
        count: u32,
        offset: u32,
        descending: bool,
        filter: &partition::Filter,
    ) -> Result<Vec<AlarmRow>> {
        let mut url = self.url("alarms")?;
        url.query_pairs_mut()
            .append_pair("dateInserted", &format_lr_date(since))
            .append_pair("orderby", "DateInserted")
            .append_pair(
                "dir",
                if descending {
                    "descending"
                } else {
                    "ascending"
                },
            )
            .append_pair("count", &count.to_string())
            .append_pair("offset", &offset.to_string());
        {
            let mut q = url.query_pairs_mut();
            if let Some(st) = filter.status {
                q.append_pair("alarmStatus", &st.to_string());
            }
            if let Some(e) = &filter.entity {
                q.append_pair("entityName", e);
            }
            if let Some(r) = &filter.rule {
                q.append_pair("alarmRuleName", r);
            }
        }
        let body = self.get(url, Target::List).await?;
        parse_list_page(&body, since)
    }

    /// A cheap check that the API answers, TLS is trusted and the key is accepted
    /// (`lrci doctor`): one list page of at most one alarm inserted in the last
    /// hour. Returns how many rows came back (0 or 1).
    pub async fn probe(&self) -> Result<usize> {
        let since = crate::clock::now() - chrono::Duration::hours(1);
        self.list_page(since, 1, 0).await.map(|rows| rows.len())
    }

    /// Lists every alarm inserted in `[from, to)`, paging as [`listing`]
    /// describes with what is known of the server (`paging`). Saturated
    /// timestamps are returned (and logged), never dropped silently.
    #[tracing::instrument(skip_all, fields(from = %from, to = %to), err(level = "debug"))]
    pub async fn list_slice(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        paging: &Paging,
    ) -> Result<SliceListing> {
        let mut state = listing::Listing::new(
            from,
            to,
            paging.page_size,
            MAX_PAGES_PER_SLICE,
            paging.offset_mode,
        );
        let mut next = state.first_request();
        while let Some(req) = next {
            let page = self
                .list_page(req.since + paging.tz_shift, req.count, req.offset)
                .await?;
            next = match state.on_page(&page)? {
                listing::Next::Done => None,
                listing::Next::Fetch(r) => Some(r),
            };
        }
        let mut out = state.finish();
        let instants = std::mem::take(&mut out.saturated_at);
        for t in instants {
            let found = self.partition(t, (from, to), paging, &out).await?;
            let resolved = found.resolved;
            out.partition_requests += found.requests;
            out.merge(found.rows, (from, to));
            if resolved {
                tracing::info!(
                    timestamp = %t,
                    requests = found.requests,
                    "a full page of alarms shared one dateInserted and the server ignores offset: listed completely in parts narrowed by alarmStatus, entityName and alarmRuleName"
                );
                out.partitioned_at.push(t);
            } else {
                tracing::warn!(
                    timestamp = %t,
                    requests = found.requests,
                    why = %found.unresolved.join("; "),
                    "a full page of alarms shares one dateInserted, the server ignores offset, and the list filters could not split the instant into parts that fit: alarms at this instant may be missing (slice saturated)"
                );
                out.saturated_at.push(t);
            }
        }
        Ok(out)
    }

    /// Lists the saturated instant `t` again in parts narrowed by the list
    /// filters ([`partition`]).
    async fn partition(
        &self,
        t: DateTime<Utc>,
        slice: (DateTime<Utc>, DateTime<Utc>),
        paging: &Paging,
        listed: &SliceListing,
    ) -> Result<partition::PartitionOutcome> {
        let mut p = partition::Partition::new(
            t,
            slice,
            paging.page_size,
            listed.largest_page,
            &listed.alarms,
        );
        while let Some(req) = p.next_request() {
            let page = self
                .list_page_filtered(req.since + paging.tz_shift, req.count, &req.filter)
                .await?;
            p.on_page(&page);
        }
        Ok(p.finish())
    }

    /// `GET /alarms/{id}`: RBP and event count (`rbpMax`, falling back to `rBPMax`).
    #[tracing::instrument(skip_all, fields(alarm_id = id.get()), err(level = "debug"))]
    pub async fn details(&self, id: AlarmId) -> Result<AlarmDetails> {
        let body = self
            .get(self.url(&format!("alarms/{id}"))?, Target::Alarm(id))
            .await?;
        parse_details(&body, id)
    }

    /// `GET /alarms/{id}/events`: the event objects under `alarmEventsDetails`
    /// (or `alarmsEventDetails`); `null`/missing is no events, `null` elements
    /// are skipped. A body that is not valid JSON (lone surrogate, invalid
    /// UTF-8, nesting deeper than 128) is [`Error::Parse`] for this alarm only;
    /// 404 is [`Error::NotFound`].
    #[tracing::instrument(skip_all, fields(alarm_id = id.get()), err(level = "debug"))]
    pub async fn events(&self, id: AlarmId) -> Result<Vec<Value>> {
        let body = self
            .get(self.url(&format!("alarms/{id}/events"))?, Target::Alarm(id))
            .await?;
        parse_events(&body, id)
    }
}

/// A JSON body as `T`; a markup page (HTML or XML, after any BOM and white
/// space) is [`Error::NotJson`], anything else that does not parse [`Error::Parse`].
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: impl Fn() -> String) -> Result<T> {
    serde_json::from_slice(body).map_err(|source| {
        let rest = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
        if rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
            Error::NotJson { what: what() }
        } else {
            Error::Parse {
                what: what(),
                source,
            }
        }
    })
}

/// Parses one `GET /alarms` body (see [`Client::list_page`]); `since` only
/// names the page in errors.
pub(crate) fn parse_list_page(body: &[u8], since: DateTime<Utc>) -> Result<Vec<AlarmRow>> {
    let what = || format!("alarm list since {}", format_lr_date(since));
    let list: wire::AlarmList = parse_json(body, what)?;
    if let Some((code, message)) = list.envelope.failure() {
        return Err(Error::Envelope {
            what: what(),
            code,
            message: http::sanitize(&message, 200),
        });
    }
    let mut rows = Vec::new();
    for raw in list.alarms.unwrap_or_default() {
        match wire::to_row(&raw) {
            Ok(row) => rows.push(row),
            Err(problem) => tracing::warn!(
                alarm_id = ?wire::row_id(&raw),
                problem = ?problem,
                "skipping an alarm list row lrci cannot use"
            ),
        }
    }
    Ok(rows)
}

/// Parses one `GET /alarms/{id}` body (see [`Client::details`]).
pub(crate) fn parse_details(body: &[u8], id: AlarmId) -> Result<AlarmDetails> {
    let what = || format!("details of alarm {id}");
    let parsed: wire::DetailsBody = parse_json(body, what)?;
    if let Some((code, message)) = parsed.envelope.failure() {
        return Err(Error::Envelope {
            what: what(),
            code,
            message: http::sanitize(&message, 200),
        });
    }
    let details = parsed.details.ok_or_else(|| Error::Shape {
        what: what(),
        problem: "alarmDetails is missing or null",
    })?;
    Ok(wire::to_details(&details))
}

/// Parses one `GET /alarms/{id}/events` body (see [`Client::events`]).
pub(crate) fn parse_events(body: &[u8], id: AlarmId) -> Result<Vec<Value>> {
    let what = || format!("events of alarm {id}");
    let parsed: wire::EventsBody = parse_json(body, what)?;
    if let Some((code, message)) = parsed.envelope.failure() {
        return Err(Error::Envelope {
            what: what(),
            code,
            message: http::sanitize(&message, 200),
        });
    }
    let events = parsed.events.or(parsed.events_oas).unwrap_or_default();
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        match event {
            Value::Object(_) => out.push(event),
            Value::Null => {}
            _ => {
                return Err(Error::Shape {
                    what: what(),
                    problem: "an event is not a JSON object",
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
