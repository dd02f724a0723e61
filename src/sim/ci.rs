//! The simulated Recorded Future Collective Insights API (spec
//! `collective-insights-api.md` §10): submit and search routes, token checks,
//! request validation, the daily quota, and the store of received detections.
//!
//! [`CiSim`] owns all of that state behind one mutex and hands out an axum
//! [`Router`]; the simulator core mounts it next to the LogRhythm side. The router
//! has no router-wide fallback (axum refuses to merge two of those); unknown paths
//! under `/collective-insights` get their own 404 route instead.
//!
//! Not here: the HTTP server, admin (`/_sim`) routes and fault injection, which
//! belong to the simulator core. Tokens are never logged.

mod search;
mod validate;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post, MethodRouter};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use search::Stored;
use validate::{Invalid, Item, Processed};

/// The token `CiOptions::default()` accepts: 32 lower-case hex characters, the
/// format Recorded Future's Python SDK insists on.
pub const DEFAULT_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Largest request body the simulator reads; far above any sane batch, so the
/// configurable `max_batch` (413) is what tests hit, not this.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The request header carrying the API token.
const TOKEN_HEADER: &str = "x-rftoken";

/// A source of "now", replaceable so tests can roll the UTC day over.
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How the simulated CI API behaves.
#[derive(Clone)]
pub struct CiOptions {
    /// Tokens with Collective Insights access.
    pub tokens: Vec<String>,
    /// Tokens that are valid but lack the CI permission: requests get 403.
    pub no_ci_tokens: Vec<String>,
    /// Stored (non-debug) detections allowed per UTC day; beyond it, 429.
    pub daily_quota: u64,
    /// More items than this in one request gives 413; `None` = no limit.
    pub max_batch: Option<usize>,
    /// Reject zone-less timestamps (`2024-05-21T10:42:30`) when true.
    pub strict_timestamps: bool,
    /// Probability (0–1) that a valid, non-debug post is silently swallowed: it
    /// answers 2xx with a result as if stored, and stores nothing (a proxy that
    /// ate the request, a period of posts that never arrived). Changeable at run
    /// time with [`CiSim::set_silent_drop`].
    pub silent_drop: f64,
    /// Seeds the silent-drop draws, so a run is repeatable.
    pub seed: u64,
}

impl Default for CiOptions {
    fn default() -> Self {
        CiOptions {
            tokens: vec![DEFAULT_TOKEN.to_owned()],
            no_ci_tokens: Vec::new(),
            daily_quota: 15_000,
            max_batch: None,
            strict_timestamps: false,
            silent_drop: 0.0,
            seed: 0,
        }
    }
}

impl fmt::Debug for CiOptions {
    // Hand-written so tokens never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CiOptions")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field(
                "no_ci_tokens",
                &format_args!("[{} redacted]", self.no_ci_tokens.len()),
            )
            .field("daily_quota", &self.daily_quota)
            .field("max_batch", &self.max_batch)
            .field("strict_timestamps", &self.strict_timestamps)
            .field("silent_drop", &self.silent_drop)
            .finish()
    }
}

/// The simulated Collective Insights service. Cheap to share: wrap it in an
/// [`Arc`], call [`CiSim::router`], and keep a clone to inspect what arrived.
pub struct CiSim {
    opts: CiOptions,
    state: Mutex<SimState>,
}

struct SimState {
    clock: Clock,
    stored: Vec<Stored>,
    /// The UTC day `quota_used` belongs to.
    quota_day: Option<NaiveDate>,
    quota_used: u64,
    next_id: u64,
    /// The current silent-drop probability and its random source.
    drop_rate: f64,
    rng: ChaCha8Rng,
    /// Every item of a silently dropped post, in arrival order, exactly as posted.
    dropped: Vec<Value>,
}

impl fmt::Debug for CiSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("CiSim")
            .field("opts", &self.opts)
            .field("stored", &state.stored.len())
            .field("quota_used", &state.quota_used)
            .finish()
    }
}

impl CiSim {
    /// A simulator with no stored detections, using the system clock.
    pub fn new(opts: CiOptions) -> CiSim {
        CiSim {
            state: Mutex::new(SimState {
                clock: Arc::new(Utc::now),
                stored: Vec::new(),
                quota_day: None,
                quota_used: 0,
                next_id: 1,
                drop_rate: opts.silent_drop.clamp(0.0, 1.0),
                rng: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5113_D809_5113_D809),
                dropped: Vec::new(),
            }),
            opts,
        }
    }

    /// Sets the probability (clamped to 0–1) that a valid, non-debug post is
    /// answered as stored while nothing is stored.
    pub fn set_silent_drop(&self, rate: f64) {
        self.lock().drop_rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
    }

    /// Every item of the posts silently dropped so far, in arrival order.
    pub fn dropped(&self) -> Vec<Value> {
        self.lock().dropped.clone()
    }

    /// Replaces the clock used for the quota's UTC day and for items without a
    /// timestamp. For tests that roll the day over.
    pub fn set_clock(&self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) {
        self.lock().clock = Arc::new(clock);
    }

    /// The routes: `POST /collective-insights/detections` and
    /// `POST /collective-insights/search`, each also under a double slash
    /// (`//collective-insights/...`, which psengine produces when its base URL ends
    /// in `/`). Any other path under `/collective-insights` answers 404 JSON; other
    /// methods on the two routes answer 405 JSON.
    pub fn router(self: Arc<Self>) -> Router {
        let detections: MethodRouter<Arc<CiSim>> = post(submit).fallback(method_not_allowed);
        let search: MethodRouter<Arc<CiSim>> = post(search_route).fallback(method_not_allowed);
        Router::new()
            .route("/collective-insights/detections", detections.clone())
            .route("//collective-insights/detections", detections)
            .route("/collective-insights/search", search.clone())
            .route("//collective-insights/search", search)
            .route("/collective-insights", any(not_found))
            .route("/collective-insights/{*rest}", any(not_found))
            .route("//collective-insights", any(not_found))
            .route("//collective-insights/{*rest}", any(not_found))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
    }

    /// Every stored (non-debug) detection item, in arrival order, exactly as posted.
    pub fn received(&self) -> Vec<Value> {
        self.lock().stored.iter().map(|s| s.raw.clone()).collect()
    }

    /// Stored detections counted against the current UTC day's quota.
    pub fn quota_used(&self) -> u64 {
        let mut state = self.lock();
        let today = (state.clock)().date_naive();
        state.roll_day(today);
        state.quota_used
    }

    /// Forgets every stored item and the quota count (the clock is kept).
    pub fn reset(&self) {
        let mut state = self.lock();
        state.stored.clear();
        state.dropped.clear();
        state.quota_day = None;
        state.quota_used = 0;
        state.next_id = 1;
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock cannot leave the state half-written in a
        // way that matters to a simulator, so keep serving rather than cascade.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// 401 for a missing, empty or unknown token, 403 for a token without CI access.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let token = headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::Unauthorized)?;
        if self.opts.tokens.iter().any(|t| t == token) {
            Ok(())
        } else if self.opts.no_ci_tokens.iter().any(|t| t == token) {
            Err(Rejection::Forbidden)
        } else {
            Err(Rejection::Unauthorized)
        }
    }

    fn submit(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Value, Rejection> {
        self.authenticate(headers)?;
        let body = body.map_err(Rejection::Body)?;
        let envelope = validate::parse_envelope(&body)?;
        if let Some(max) = self.opts.max_batch {
            if envelope.data.len() > max {
                return Err(Rejection::TooManyItems {
                    count: envelope.data.len(),
                    max,
                });
            }
        }
        let items = validate::validate_items(envelope.data, self.opts.strict_timestamps)?;
        let processed = Processed::count(&items);
        let debug = envelope.debug.unwrap_or(false);
        if !debug && !self.swallow(&items) {
            self.store(items, &envelope.organization_ids)?;
        }
        let mut result = json!({"status": "ok", "debug": debug});
        if envelope.summary {
            result["summary"] = json!({ "processed": processed });
        }
        Ok(json!({ "result": result }))
    }

    /// Whether this post is silently dropped (its items kept in `dropped`).
    fn swallow(&self, items: &[Item]) -> bool {
        let mut state = self.lock();
        if state.drop_rate <= 0.0 {
            return false;
        }
        let rate = state.drop_rate;
        if !state.rng.random_bool(rate) {
            return false;
        }
        state.dropped.extend(items.iter().map(|i| i.raw.clone()));
        true
    }

    /// Stores a whole request's items, or none of them when the quota would overflow.
    fn store(&self, items: Vec<Item>, organizations: &[String]) -> Result<(), Rejection> {
        let mut state = self.lock();
        let now = (state.clock)();
        state.roll_day(now.date_naive());
        let requested = items.len() as u64;
        if state.quota_used.saturating_add(requested) > self.opts.daily_quota {
            return Err(Rejection::QuotaExceeded {
                quota: self.opts.daily_quota,
                used: state.quota_used,
                requested,
                retry_after: seconds_to_utc_midnight(now),
            });
        }
        state.quota_used += requested;
        for item in items {
            let id = format!("sim-evt-{:08}", state.next_id);
            state.next_id += 1;
            state.stored.push(Stored {
                id,
                organizations: organizations.to_vec(),
                ioc_type: item.ioc_type,
                ioc_value: item.ioc_value,
                ioc_field: item.ioc_field,
                detection_type: item.detection_type,
                detection_time: item.timestamp.unwrap_or(now),
                raw: item.raw,
            });
        }
        Ok(())
    }

    fn search(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Value, Rejection> {
        self.authenticate(headers)?;
        let body = body.map_err(Rejection::Body)?;
        let query = search::parse_query(&body)?;
        Ok(search::run(&query, &self.lock().stored))
    }
}

impl SimState {
    fn roll_day(&mut self, today: NaiveDate) {
        if self.quota_day != Some(today) {
            self.quota_day = Some(today);
            self.quota_used = 0;
        }
    }
}

/// Whole seconds (rounded up, at least 1) from `now` to the next UTC midnight.
fn seconds_to_utc_midnight(now: DateTime<Utc>) -> u64 {
    let next_midnight = now
        .date_naive()
        .succ_opt()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc());
    let Some(next_midnight) = next_midnight else {
        return 86_400;
    };
    let left = next_midnight - now;
    let whole = left.num_seconds();
    let rounded_up = if left > TimeDelta::seconds(whole) {
        whole + 1
    } else {
        whole
    };
    u64::try_from(rounded_up.max(1)).unwrap_or(1)
}

async fn submit(
    State(sim): State<Arc<CiSim>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(sim.submit(&headers, body))
}

async fn search_route(
    State(sim): State<Arc<CiSim>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(sim.search(&headers, body))
}

async fn not_found(method: Method, uri: Uri) -> Response {
    Rejection::NotFound {
        method,
        path: uri.path().to_owned(),
    }
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    Rejection::MethodNotAllowed {
        method,
        path: uri.path().to_owned(),
    }
    .into_response()
}

fn respond(outcome: Result<Value, Rejection>) -> Response {
    match outcome {
        Ok(body) => Json(body).into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// Every non-2xx answer of the simulated API; each maps to one status code.
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("missing or invalid X-RFToken")]
    Unauthorized,
    #[error("this token is not enabled for Collective Insights")]
    Forbidden,
    #[error("request body could not be read")]
    Body(#[source] BytesRejection),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{count} detections in one request; at most {max} are accepted")]
    TooManyItems { count: usize, max: usize },
    #[error(
        "daily quota of {quota} detections exceeded: {used} stored today, {requested} in this request"
    )]
    QuotaExceeded {
        quota: u64,
        used: u64,
        requested: u64,
        retry_after: u64,
    },
    #[error("no route for {method} {path}")]
    NotFound { method: Method, path: String },
    #[error("method {method} not allowed on {path}; use POST")]
    MethodNotAllowed { method: Method, path: String },
}

impl Rejection {
    fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::Forbidden => StatusCode::FORBIDDEN,
            Rejection::Body(cause) => cause.status(),
            Rejection::Invalid(_) => StatusCode::BAD_REQUEST,
            Rejection::TooManyItems { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::NotFound { .. } => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The display text followed by every cause, `: `-separated.
    fn message(&self) -> String {
        let mut message = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(inner) = cause {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            cause = inner.source();
        }
        message
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        tracing::debug!(status = status.as_u16(), %message, "ci sim rejected a request");
        let body = json!({
            "message": message,
            "status_code": status.as_u16(),
            "trace_id": trace_id(),
        });
        let mut response = (status, Json(body)).into_response();
        match &self {
            Rejection::QuotaExceeded { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Rejection::MethodNotAllowed { .. } => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        response
    }
}

/// A random version-4-shaped UUID string, like the ids RF puts in error bodies.
fn trace_id() -> String {
    let bits: u128 = rand::random();
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn seconds_to_midnight_rounds_up() {
        let at = |h, m, s| Utc.with_ymd_and_hms(2025, 3, 14, h, m, s).unwrap();
        assert_eq!(seconds_to_utc_midnight(at(23, 59, 59)), 1);
        assert_eq!(seconds_to_utc_midnight(at(0, 0, 0)), 86_400);
        assert_eq!(seconds_to_utc_midnight(at(12, 0, 0)), 43_200);
        let fractional = at(23, 59, 58) + TimeDelta::milliseconds(500);
        assert_eq!(seconds_to_utc_midnight(fractional), 2);
    }

    #[test]
    fn trace_id_is_uuid_shaped() {
        let id = trace_id();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12], "{id}");
        assert_eq!(id.chars().nth(14), Some('4'), "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(trace_id(), id);
    }

    #[test]
    fn debug_output_hides_tokens() {
        let text = format!("{:?}", CiOptions::default());
        assert!(!text.contains(DEFAULT_TOKEN), "{text}");
        assert!(text.contains("1 redacted"), "{text}");
    }
}
