//! The simulated LogRhythm Alarm API under `/lr-alarm-api/` (spec §14): bearer auth,
//! `GET /alarms` with its filters, sort and paging quirks, and per-alarm details,
//! events and summary.
//!
//! Sorting: `orderby` ∈ {AlarmRuleName, AlarmStatus, DateInserted, EntityName}
//! (case-insensitive); without `orderby` rows come in (`dateInserted`, alarmId)
//! ascending order; `orderby` without `dir` sorts descending. Ties are always broken
//! by `alarmId` ascending, in both directions. Query parameter names are
//! case-insensitive and unknown ones are ignored; bad values of known ones → 400.
//!
//! The `dateInserted` bound follows the real-world switches of [`SimConfig`]:
//! `>=` or `>` (`strict_bound`), the rendered millisecond or the exact
//! 1/300 s tick (`tick_semantics`), and a server-local reading of the parameter
//! (`server_tz_offset_hours`). `shuffle_rows` and `duplicate_rows` spoil a
//! page after it is cut. The filters `alarmStatus`, `alarmRuleName` and
//! `entityName` match exactly; with `uniform_ties` the alarms sharing one
//! `dateInserted` share rule, status and entity too, so no filter splits them.

use super::gen::{self, AlarmMeta};
use super::json::Node;
use super::time::{admits, parse_lr_param};
use super::{AlarmsCount, EmptyList, OffsetMode, SimConfig, SimState, TickSemantics};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use std::cmp::Ordering;
use std::sync::Arc;

/// Page size when the request has no `count` (FR notes claim 25; [S]/[?]).
const DEFAULT_COUNT: usize = 25;

const JSON_CT: &str = "application/json; charset=utf-8";

pub(super) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/lr-alarm-api/alarms", get(list))
        .route("/lr-alarm-api/alarms/{id}", get(details))
        .route("/lr-alarm-api/alarms/{id}/events", get(events))
        .route("/lr-alarm-api/alarms/{id}/summary", get(summary))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth_layer,
        ))
        .with_state(state)
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthError {
    Missing,
    LowPrivilege,
}

/// Checks `Authorization: Bearer <token>` (scheme case-insensitive).
pub(super) fn check_auth(cfg: &SimConfig, headers: &HeaderMap) -> Result<(), AuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match token {
        Some(t) if !t.is_empty() && t == cfg.lr_key => Ok(()),
        Some(t) if cfg.lr_low_priv_key.as_deref() == Some(t) && !t.is_empty() => {
            Err(AuthError::LowPrivilege)
        }
        _ => Err(AuthError::Missing),
    }
}

async fn auth_layer(State(st): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    match check_auth(&st.cfg, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(AuthError::Missing) => {
            let mut r = envelope(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Authorization has been denied for this request.",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Err(AuthError::LowPrivilege) => envelope(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The user does not have permission to perform this action.",
        ),
    }
}

fn envelope(status: StatusCode, message: &str, response: &str) -> Response {
    let body = Node::obj([
        ("statusCode", Node::Int(i64::from(status.as_u16()))),
        ("statusMessage", Node::s(message)),
        ("responseMessage", Node::s(response)),
    ]);
    bytes_response(status, JSON_CT, body.to_bytes())
}

fn bytes_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn bad_request(msg: String) -> Response {
    envelope(StatusCode::BAD_REQUEST, "Bad Request", &msg)
}

fn ok_with(key: &str, value: Node) -> Response {
    let body = Node::obj([
        (key, value),
        ("statusCode", Node::Int(200)),
        ("statusMessage", Node::s("OK")),
        ("responseMessage", Node::s("Success")),
    ]);
    bytes_response(StatusCode::OK, JSON_CT, body.to_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderBy {
    RuleName,
    Status,
    DateInserted,
    EntityName,
}

#[derive(Debug, Default)]
struct ListQuery {
    date_inserted: Option<chrono::DateTime<Utc>>,
    order_by: Option<OrderBy>,
    descending: Option<bool>,
    count: Option<usize>,
    offset: usize,
    status: Option<i64>,
    rule_name: Option<String>,
    entity_name: Option<String>,
    case: Option<String>,
}

fn parse_query(raw: Option<&str>) -> Result<ListQuery, String> {
    let mut q = ListQuery::default();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.to_ascii_lowercase().as_str() {
            "dateinserted" => {
                q.date_inserted = Some(
                    parse_lr_param(&v)
                        .ok_or_else(|| format!("The value '{v}' is not valid for dateInserted."))?,
                )
            }
            "orderby" => {
                q.order_by = Some(match v.to_ascii_lowercase().as_str() {
                    "alarmrulename" => OrderBy::RuleName,
                    "alarmstatus" => OrderBy::Status,
                    "dateinserted" => OrderBy::DateInserted,
                    "entityname" => OrderBy::EntityName,
                    _ => return Err(format!("The value '{v}' is not valid for orderby.")),
                })
            }
            "dir" => {
                q.descending = Some(match v.to_ascii_lowercase().as_str() {
                    "ascending" => false,
                    "descending" => true,
                    _ => return Err(format!("The value '{v}' is not valid for dir.")),
                })
            }
            "count" => {
                q.count = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| format!("The value '{v}' is not valid for count."))?,
                )
            }
            "offset" => {
                q.offset = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("The value '{v}' is not valid for offset."))?
            }
            "alarmstatus" => {
                q.status = Some(
                    gen::parse_status(&v)
                        .ok_or_else(|| format!("The value '{v}' is not valid for alarmStatus."))?,
                )
            }
            "alarmrulename" => q.rule_name = Some(v.into_owned()),
            "entityname" => q.entity_name = Some(v.into_owned()),
            "caseassociation" | "associatedcases" => q.case = Some(v.trim().to_string()),
            _ => {}
        }
    }
    Ok(q)
}

fn compare(by: OrderBy, a: &AlarmMeta, b: &AlarmMeta) -> Ordering {
    match by {
        OrderBy::RuleName => a.rule_name.cmp(&b.rule_name),
        OrderBy::Status => a.status.cmp(&b.status),
        OrderBy::DateInserted => a.date_inserted.cmp(&b.date_inserted),
        OrderBy::EntityName => a.entity_name.cmp(&b.entity_name),
    }
}

async fn list(State(st): State<Arc<SimState>>, RawQuery(raw): RawQuery) -> Response {
    let q = match parse_query(raw.as_deref()) {
        Ok(q) => q,
        Err(msg) => return bad_request(msg),
    };
    let cfg = &st.cfg;
    let store = st.alarms();
    let exact = cfg.tick_semantics == TickSemantics::Exact;
    let from = match q.date_inserted {
        Some(t) => {
            // A server-local reading of the parameter (UTC+N) moves the bound N
            // hours earlier in UTC.
            let t = t - chrono::Duration::hours(i64::from(cfg.server_tz_offset_hours));
            store
                .by_time
                .partition_point(|a| !admits(a.date_inserted, t, exact, cfg.strict_bound))
        }
        None => 0,
    };
    let mut rows: Vec<&Arc<AlarmMeta>> = store
        .by_time
        .get(from..)
        .unwrap_or_default()
        .iter()
        .filter(|a| listable(&st, a))
        .filter(|a| q.status.is_none_or(|s| a.status == s))
        .filter(|a| q.rule_name.as_deref().is_none_or(|r| a.rule_name == r))
        .filter(|a| q.entity_name.as_deref().is_none_or(|e| a.entity_name == e))
        .filter(|a| {
            q.case
                .as_deref()
                .is_none_or(|c| a.cases.iter().any(|x| x.trim().eq_ignore_ascii_case(c)))
        })
        .collect();
    let descending = q.descending.unwrap_or(q.order_by.is_some());
    let by = q.order_by.unwrap_or(OrderBy::DateInserted);
    // by_time is already (dateInserted, id) ascending; other orders need a sort.
    if by != OrderBy::DateInserted || descending {
        rows.sort_by(|a, b| {
            let primary = compare(by, a, b);
            let primary = if descending {
                primary.reverse()
            } else {
                primary
            };
            primary.then(a.id.cmp(&b.id))
        });
    }
    let total = rows.len();
    let page = q.count.unwrap_or(DEFAULT_COUNT).min(cfg.page_cap);
    let skip = match cfg.offset_mode {
        OffsetMode::Ignored => 0,
        OffsetMode::Records => q.offset,
        OffsetMode::Pages => q.offset.saturating_mul(page),
    };
    if cfg.duplicate_rows {
        // A join's duplicates: part of the result, so offset and the page
        // size count them.
        rows = rows
            .into_iter()
            .flat_map(|a| std::iter::repeat_n(a, if a.id % 5 == 0 { 2 } else { 1 }))
            .collect();
    }
    let mut picked: Vec<&Arc<AlarmMeta>> = rows.iter().skip(skip).take(page).copied().collect();
    if cfg.shuffle_rows {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let first = picked.first().map_or(0, |a| a.id);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ first.unsigned_abs());
        picked.shuffle(&mut rng);
    }
    let page_rows: Vec<Node> = picked.iter().map(|a| gen::list_row(a)).collect();
    drop(store);
    let count = match cfg.alarms_count {
        AlarmsCount::Page => page_rows.len(),
        AlarmsCount::Total => total,
    };
    let list = if page_rows.is_empty() && cfg.empty_list == EmptyList::Null {
        Node::Null
    } else {
        Node::Arr(page_rows)
    };
    let body = Node::obj([
        ("alarmsSearchDetails", list),
        (
            "alarmsCount",
            Node::Int(i64::try_from(count).unwrap_or(i64::MAX)),
        ),
        ("statusCode", Node::Int(200)),
        ("statusMessage", Node::s("OK")),
        ("responseMessage", Node::s("Success")),
    ]);
    bytes_response(StatusCode::OK, JSON_CT, body.to_bytes())
}

/// Why a `{id}` path segment did not resolve to an alarm.
enum Lookup {
    /// Not an integer: 400.
    BadId(String),
    /// No such alarm: 404.
    NotFound(i64),
}

impl IntoResponse for Lookup {
    fn into_response(self) -> Response {
        match self {
            Lookup::BadId(id) => bad_request(format!("The value '{id}' is not valid.")),
            Lookup::NotFound(n) => envelope(
                StatusCode::NOT_FOUND,
                "Not Found",
                &format!("Alarm ID: {n} not found."),
            ),
        }
    }
}

/// Resolves the `{id}` path segment: 400 when not an integer, 404 when unknown.
fn find(st: &SimState, id: &str) -> Result<Arc<AlarmMeta>, Lookup> {
    let Ok(n) = id.trim().parse::<i64>() else {
        return Err(Lookup::BadId(id.to_string()));
    };
    st.alarms()
        .by_id
        .get(&n)
        .cloned()
        .ok_or(Lookup::NotFound(n))
}

/// Whether an alarm is listable yet: with a visibility lag, only from its
/// `dateInserted` + lag + its own share of the jitter (wall clock), as alarms
/// that the AI Engine or ingestion commit late. Details and events by id are
/// not affected.
fn listable(st: &SimState, a: &AlarmMeta) -> bool {
    let (lag, jitter) = (st.cfg.visibility_lag, st.cfg.visibility_jitter);
    if lag.is_zero() && jitter.is_zero() {
        return true;
    }
    // A fixed share of the jitter per alarm, from its id: repeatable per seed.
    let share = (a.id.unsigned_abs().wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
    let delay = lag + jitter.mul_f64(share);
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    st.now() >= a.date_inserted + delay
}

fn not_ready(st: &SimState, a: &AlarmMeta) -> Option<Response> {
    let age = st.now().signed_duration_since(a.date_inserted);
    let min = chrono::Duration::from_std(st.cfg.not_ready).unwrap_or(chrono::Duration::MAX);
    (!st.cfg.not_ready.is_zero() && age < min).then(|| Lookup::NotFound(a.id).into_response())
}

async fn details(State(st): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match find(&st, &id) {
        Ok(a) => ok_with("alarmDetails", gen::details(&a)),
        Err(e) => e.into_response(),
    }
}

async fn events(State(st): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let a = match find(&st, &id) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if let Some(r) = not_ready(&st, &a) {
        return r;
    }
    let body = gen::events_body(&a);
    if let Some((ct, bytes)) = body.replace {
        return bytes_response(StatusCode::OK, ct, bytes);
    }
    let key = body.wrapper.unwrap_or(st.cfg.events_wrapper.key());
    let list = if body.null_list {
        Node::Null
    } else {
        Node::Raw(body.array)
    };
    let out = Node::obj([
        (key, list),
        ("statusCode", Node::Int(200)),
        ("statusMessage", Node::s("OK")),
        ("responseMessage", Node::s("Success")),
    ]);
    bytes_response(StatusCode::OK, body.content_type, out.to_bytes())
}

async fn summary(State(st): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let a = match find(&st, &id) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if let Some(r) = not_ready(&st, &a) {
        return r;
    }
    ok_with("alarmSummaryDetails", gen::summary(&a))
}
