//! The loopback simulator of the LogRhythm Alarm API and Collective Insights API
//! (`lrci sim`, DESIGN.md §4): configuration, shared state, server start/stop, router
//! assembly, the `/_sim` admin routes, and the fault/latency/stats middleware.
//!
//! The LogRhythm side lives in `lr`, the Collective Insights side in `ci`, scenario
//! generation in [`gen`]. This module never listens on anything but loopback.
//!
//! Middleware order for a request to either API: count it in the stats (by route
//! pattern); on the LogRhythm side, count it in flight and apply the capacity
//! model (below); add the side's latency, draw a seeded random fault (`fault_rate`),
//! then — only if the request carries valid credentials for its side — take the next
//! queued fault, then run the handler. `/_sim` routes are neither counted nor faulted.
//! A `slow` fault runs the handler first and then holds the answer for `slow_ms`
//! (the work is done; the answer is late). `drop` answers with a body stream that
//! fails at once, so the connection breaks without a usable response;
//! `store-then-drop` runs the handler first.
//!
//! **Capacity model** (`lr_capacity` N, `lrci sim --lr-capacity N`): LogRhythm
//! serves N requests at a time at `lr_latency` each and queues the rest, so a
//! request that arrives with k LogRhythm requests in flight (itself included)
//! waits `lr_latency × max(1, k / N)`: flat up to N, then growing with every
//! request more, while throughput stays N per `lr_latency` (an API gateway in
//! front of one Platform Manager). With `lr_reject_above` M (`--lr-reject-above
//! M`), a request arriving with more than M in flight is answered 429 at once,
//! without `Retry-After` (a gateway's connection limit), counted as the fault
//! `capacity-429`. Neither applies with 0 (the default). `/_sim/stats` shows
//! `lr_in_flight`: the most LogRhythm requests in flight at once (`peak`) and
//! how many requests arrived to find k in flight (`arrivals`, by k), so tests
//! assert on how hard an agent pushed without timing anything.

pub mod ci;
mod delay;
pub mod gen;
pub mod json;
mod lr;
pub mod time;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SubsecRound, Utc};
use gen::{AlarmMeta, GenParams, Scenario};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// The default Collective Insights token: 32 lowercase alphanumerics, the format
/// Recorded Future's own SDK insists on.
pub const DEFAULT_RF_KEY: &str = "0123456789abcdef0123456789abcdef";
/// The default LogRhythm bearer token.
pub const DEFAULT_LR_KEY: &str = "sim-lr-key";

/// How `GET /alarms` treats `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OffsetMode {
    /// `offset` is ignored (what the vendor script documents): every call starts at row 0.
    #[default]
    Ignored,
    /// `offset` is the number of rows to skip.
    Records,
    /// `offset` is a 0-based page index (rows skipped = offset × page size).
    Pages,
}

/// How `GET /alarms` compares stored `dateInserted` values with the parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TickSemantics {
    /// The stored value is the rendered millisecond (`.007`), compared as such.
    #[default]
    Millis,
    /// The stored value is the exact SQL Server `datetime` tick (`.00666…`),
    /// compared exactly with the parameter, as a `datetime2` comparison does: a
    /// parameter of `.007` excludes the row shown as `.007`.
    Exact,
}

/// A bundle of list behaviours (DESIGN.md §4): `harsh` is the default (page
/// cap 100, `offset` ignored); `realistic` pages with record offsets up to 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ServerProfile {
    /// Page cap 100, `offset` ignored: what the vendor script documents.
    #[default]
    Harsh,
    /// Page cap 1000, `offset` counts records: what most clients assume.
    Realistic,
}

impl ServerProfile {
    /// The page cap and offset mode of this profile.
    pub fn paging(self) -> (usize, OffsetMode) {
        match self {
            ServerProfile::Harsh => (100, OffsetMode::Ignored),
            ServerProfile::Realistic => (1000, OffsetMode::Records),
        }
    }
}

/// Largest server time-zone offset the simulator accepts, in hours (UTC−14 to UTC+14
/// spans every zone in use).
pub const MAX_TZ_OFFSET_HOURS: i32 = 14;

/// Wrapper key of the events response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EventsWrapper {
    /// `alarmEventsDetails` (what real systems send).
    #[default]
    #[value(name = "alarmEventsDetails")]
    AlarmEventsDetails,
    /// `alarmsEventDetails` (the OpenAPI file's spelling).
    #[value(name = "alarmsEventDetails")]
    AlarmsEventDetails,
}

impl EventsWrapper {
    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            EventsWrapper::AlarmEventsDetails => "alarmEventsDetails",
            EventsWrapper::AlarmsEventDetails => "alarmsEventDetails",
        }
    }
}

/// What an empty alarm list looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EmptyList {
    /// `alarmsSearchDetails: null`.
    #[default]
    Null,
    /// `alarmsSearchDetails: []`.
    Empty,
}

/// Meaning of `alarmsCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AlarmsCount {
    /// Rows in this page.
    #[default]
    Page,
    /// All rows matching the filters.
    Total,
}

/// Which simulated service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The LogRhythm Alarm API (`/lr-alarm-api/`).
    Lr,
    /// Recorded Future Collective Insights (`/collective-insights/`).
    Rf,
}

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum FaultKind {
    /// 429 with `Retry-After`.
    #[serde(rename = "429")]
    TooMany,
    /// 500.
    #[serde(rename = "500")]
    Internal,
    /// 502.
    #[serde(rename = "502")]
    BadGateway,
    /// 503.
    #[serde(rename = "503")]
    Unavailable,
    /// A 502 HTML error page.
    #[serde(rename = "html")]
    Html,
    /// The real answer, held back for `slow_ms`.
    #[serde(rename = "slow")]
    Slow,
    /// The connection breaks without a usable response.
    #[serde(rename = "drop")]
    Drop,
    /// The handler runs (CI stores the items), then the connection breaks. CI only.
    #[serde(rename = "store-then-drop")]
    StoreThenDrop,
    /// A gateway's HTML login page with status 200 (a session expired on a
    /// reverse proxy): not JSON, but no error status either.
    #[serde(rename = "html-200")]
    Html200,
    /// A 302 to a login page (a reverse proxy's single sign-on).
    #[serde(rename = "redirect")]
    Redirect,
    /// A 400 whatever the request (a validation change upstream, a proxy that
    /// mangles bodies): CI's error shape on side rf.
    #[serde(rename = "400")]
    BadRequest,
    /// The handler runs (CI stores the items), then the answer is a 200 without
    /// a recognisable result (a proxy rewriting it, an API change). CI only.
    #[serde(rename = "no-result")]
    NoResult,
    /// A 200 without a recognisable result and nothing stored (a proxy that
    /// answered for CI). CI only.
    #[serde(rename = "no-result-lost")]
    NoResultLost,
}

impl FaultKind {
    /// The kinds `fault_rate` picks from, uniformly.
    pub const RANDOM: [FaultKind; 7] = [
        FaultKind::TooMany,
        FaultKind::Internal,
        FaultKind::BadGateway,
        FaultKind::Unavailable,
        FaultKind::Html,
        FaultKind::Slow,
        FaultKind::Drop,
    ];

    /// The name used in `/_sim/faults` and in the stats.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::TooMany => "429",
            FaultKind::Internal => "500",
            FaultKind::BadGateway => "502",
            FaultKind::Unavailable => "503",
            FaultKind::Html => "html",
            FaultKind::Slow => "slow",
            FaultKind::Drop => "drop",
            FaultKind::StoreThenDrop => "store-then-drop",
            FaultKind::Html200 => "html-200",
            FaultKind::Redirect => "redirect",
            FaultKind::BadRequest => "400",
            FaultKind::NoResult => "no-result",
            FaultKind::NoResultLost => "no-result-lost",
        }
    }
}

/// Every knob of the simulator. `Default` gives the documented defaults (with the
/// window ending now, truncated to the second). `Debug` redacts the keys.
#[derive(Clone)]
pub struct SimConfig {
    /// Address to bind; must be loopback. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Generator seed (also seeds random faults).
    pub seed: u64,
    /// Named scenario.
    pub scenario: Scenario,
    /// Window length in hours.
    pub hours: u32,
    /// Alarms generated per hour.
    pub alarms_per_hour: u32,
    /// Events served per alarm.
    pub events_per_alarm: u32,
    /// Window end (truncated to whole seconds); `None` = now.
    pub end: Option<DateTime<Utc>>,
    /// Largest page `GET /alarms` returns; larger `count`s are silently truncated.
    pub page_cap: usize,
    /// How `offset` is treated.
    pub offset_mode: OffsetMode,
    /// How stored `dateInserted` values compare with the parameter.
    pub tick_semantics: TickSemantics,
    /// `dateInserted` is an exclusive (`>`) bound instead of inclusive (`>=`).
    pub strict_bound: bool,
    /// The server reads the `dateInserted` parameter as its local time at UTC+N
    /// hours (any zone designator ignored) while stored and returned values stay
    /// UTC: the effective bound is the parameter − N hours.
    pub server_tz_offset_hours: i32,
    /// Each list page's rows come back in a random (seeded) order.
    pub shuffle_rows: bool,
    /// Rows of alarms whose id is divisible by 5 come twice, as a join's
    /// duplicates would: `offset` and the page size count them.
    pub duplicate_rows: bool,
    /// Alarms sharing one `dateInserted` also share the first one's rule,
    /// status and entity, so list filters cannot split the instant (a burst of
    /// one AI Engine rule).
    pub uniform_ties: bool,
    /// Fixed latency added to every LogRhythm request.
    pub lr_latency: Duration,
    /// Fixed latency added to every Collective Insights request.
    pub rf_latency: Duration,
    /// LogRhythm requests served at once before latency grows (see the module
    /// doc's capacity model); 0 = unlimited.
    pub lr_capacity: usize,
    /// A LogRhythm request arriving with more than this many in flight is
    /// answered 429 at once; 0 = never.
    pub lr_reject_above: usize,
    /// Probability (0–1) that a request to either API gets a random fault.
    pub fault_rate: f64,
    /// How long a `slow` fault holds the answer.
    pub slow: Duration,
    /// The valid LogRhythm bearer token.
    pub lr_key: String,
    /// A LogRhythm token that authenticates but lacks permission (403).
    pub lr_low_priv_key: Option<String>,
    /// The valid Collective Insights token.
    pub rf_key: String,
    /// A CI token that is valid but lacks the CI permission (403).
    pub rf_no_ci_key: Option<String>,
    /// Wrapper key of the events response.
    pub events_wrapper: EventsWrapper,
    /// Empty alarm list as `null` or `[]`.
    pub empty_list: EmptyList,
    /// Meaning of `alarmsCount`.
    pub alarms_count: AlarmsCount,
    /// Events and summary answer 404 for alarms younger than this (wall clock).
    pub not_ready: Duration,
    /// The server's clock minus the real one, in seconds: its `Date` header,
    /// the default time of `/_sim/generate`, and what "now" means for the
    /// visibility lag and events readiness. Negative: the agent's clock is fast.
    pub clock_offset_secs: i64,
    /// An alarm is listed only from its `dateInserted` + this (wall clock)...
    pub visibility_lag: Duration,
    /// ... plus up to this much more, a fixed share per alarm.
    pub visibility_jitter: Duration,
    /// CI daily detection quota.
    pub daily_quota: u64,
    /// CI maximum batch size (413 above it).
    pub max_batch: Option<usize>,
    /// Probability (0–1) that a CI post is answered as stored while nothing is
    /// stored (see [`ci::CiOptions::silent_drop`]).
    pub rf_silent_drop: f64,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsPem>,
}

/// A PEM certificate chain (leaf first) and its PEM private key, for the
/// simulator's HTTPS listener. `Debug` never shows the key.
#[derive(Clone)]
pub struct TlsPem {
    /// The certificate chain, PEM.
    pub cert: Vec<u8>,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("cert", &format!("<{} bytes>", self.cert.len()))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |k: &Option<String>| k.as_ref().map(|_| "<redacted>");
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("seed", &self.seed)
            .field("scenario", &self.scenario)
            .field("hours", &self.hours)
            .field("alarms_per_hour", &self.alarms_per_hour)
            .field("events_per_alarm", &self.events_per_alarm)
            .field("end", &self.end)
            .field("page_cap", &self.page_cap)
            .field("offset_mode", &self.offset_mode)
            .field("tick_semantics", &self.tick_semantics)
            .field("strict_bound", &self.strict_bound)
            .field("server_tz_offset_hours", &self.server_tz_offset_hours)
            .field("shuffle_rows", &self.shuffle_rows)
            .field("duplicate_rows", &self.duplicate_rows)
            .field("uniform_ties", &self.uniform_ties)
            .field("lr_latency", &self.lr_latency)
            .field("rf_latency", &self.rf_latency)
            .field("lr_capacity", &self.lr_capacity)
            .field("lr_reject_above", &self.lr_reject_above)
            .field("fault_rate", &self.fault_rate)
            .field("slow", &self.slow)
            .field("lr_key", &"<redacted>")
            .field("lr_low_priv_key", &redacted(&self.lr_low_priv_key))
            .field("rf_key", &"<redacted>")
            .field("rf_no_ci_key", &redacted(&self.rf_no_ci_key))
            .field("events_wrapper", &self.events_wrapper)
            .field("empty_list", &self.empty_list)
            .field("alarms_count", &self.alarms_count)
            .field("not_ready", &self.not_ready)
            .field("daily_quota", &self.daily_quota)
            .field("max_batch", &self.max_batch)
            .field("clock_offset_secs", &self.clock_offset_secs)
            .field("visibility_lag", &self.visibility_lag)
            .field("visibility_jitter", &self.visibility_jitter)
            .field("rf_silent_drop", &self.rf_silent_drop)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            scenario: Scenario::Default,
            hours: 24,
            alarms_per_hour: 50,
            events_per_alarm: 1,
            end: None,
            page_cap: 100,
            offset_mode: OffsetMode::Ignored,
            tick_semantics: TickSemantics::Millis,
            strict_bound: false,
            server_tz_offset_hours: 0,
            shuffle_rows: false,
            duplicate_rows: false,
            uniform_ties: false,
            lr_latency: Duration::ZERO,
            rf_latency: Duration::ZERO,
            lr_capacity: 0,
            lr_reject_above: 0,
            fault_rate: 0.0,
            slow: Duration::from_millis(30_000),
            lr_key: DEFAULT_LR_KEY.to_string(),
            lr_low_priv_key: None,
            rf_key: DEFAULT_RF_KEY.to_string(),
            rf_no_ci_key: None,
            events_wrapper: EventsWrapper::AlarmEventsDetails,
            empty_list: EmptyList::Null,
            alarms_count: AlarmsCount::Page,
            not_ready: Duration::ZERO,
            daily_quota: 15_000,
            max_batch: None,
            rf_silent_drop: 0.0,
            clock_offset_secs: 0,
            visibility_lag: Duration::ZERO,
            visibility_jitter: Duration::ZERO,
            tls: None,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `listen` is not a loopback address.
    #[error(
        "refusing to listen on {0}: the simulator only listens on loopback (127.0.0.0/8 or ::1)"
    )]
    NotLoopback(SocketAddr),
    /// A knob is out of range.
    #[error("invalid simulator setting: {0}")]
    Invalid(&'static str),
    /// The TLS certificate or key cannot be used.
    #[error("unusable TLS certificate or key for the HTTPS listener")]
    Tls(#[source] std::io::Error),
    /// Binding the socket failed.
    #[error("could not bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Alarms, sorted by (`dateInserted`, id), with an id index.
#[derive(Debug, Default)]
pub(crate) struct AlarmStore {
    pub(crate) by_time: Vec<Arc<AlarmMeta>>,
    pub(crate) by_id: HashMap<i64, Arc<AlarmMeta>>,
    next_id: i64,
}

impl AlarmStore {
    fn insert(&mut self, a: AlarmMeta) {
        let a = Arc::new(a);
        let key = (a.date_inserted, a.id);
        let at = self
            .by_time
            .partition_point(|x| (x.date_inserted, x.id) < key);
        self.by_time.insert(at, a.clone());
        self.next_id = self.next_id.max(a.id + 1);
        self.by_id.insert(a.id, a);
    }
}

#[derive(Debug, Default)]
struct Stats {
    requests: BTreeMap<String, u64>,
    faults: BTreeMap<String, u64>,
    /// Most LogRhythm requests in flight at once.
    lr_in_flight_peak: usize,
    /// LogRhythm requests by how many were in flight when they arrived (themselves included).
    lr_arrivals: BTreeMap<usize, u64>,
}

#[derive(Debug, Clone)]
struct Fault {
    kind: FaultKind,
    retry_after: u64,
    /// Only requests of this route pattern (see `route_pattern`) take it.
    route: Option<String>,
}

#[derive(Debug)]
struct Faults {
    rng: ChaCha8Rng,
    lr: VecDeque<Fault>,
    rf: VecDeque<Fault>,
}

/// The simulator's shared state: configuration, alarms, stats, queued faults and
/// the Collective Insights side. Reach it through [`RunningSim::state`].
/// The simulator's wall clock: the real one, or a time set through
/// `POST /_sim/clock` (or [`SimState::set_clock`]) running on from there at the
/// real rate, so a test can run a day of scheduled syncs in seconds.
#[derive(Debug, Default)]
pub struct SimClock(Mutex<Option<(DateTime<Utc>, std::time::Instant)>>);

impl SimClock {
    /// Now on this clock.
    pub fn now(&self) -> DateTime<Utc> {
        match *lock(&self.0) {
            Some((t, since)) => t + chrono::Duration::from_std(since.elapsed()).unwrap_or_default(),
            None => Utc::now(),
        }
    }

    /// Sets the clock to `t` (it runs on from there).
    pub fn set(&self, t: DateTime<Utc>) {
        *lock(&self.0) = Some((t, std::time::Instant::now()));
    }
}

pub struct SimState {
    cfg: SimConfig,
    clock: Arc<SimClock>,
    gen_params: GenParams,
    alarms: RwLock<AlarmStore>,
    stats: Mutex<Stats>,
    faults: Mutex<Faults>,
    ci: Arc<ci::CiSim>,
    /// LogRhythm requests in flight now.
    lr_in_flight: std::sync::atomic::AtomicUsize,
    /// The latency's timer, started with the first request that has one.
    delays: std::sync::OnceLock<Option<delay::Delays>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimState {
    /// Builds the state and generates the scenario's alarms.
    pub fn new(cfg: SimConfig) -> Result<SimState, Error> {
        if !(0.0..=1.0).contains(&cfg.fault_rate) {
            return Err(Error::Invalid("fault rate must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&cfg.rf_silent_drop) {
            return Err(Error::Invalid("silent drop rate must be between 0 and 1"));
        }
        if cfg.page_cap == 0 {
            return Err(Error::Invalid("page cap must be at least 1"));
        }
        if cfg.server_tz_offset_hours.abs() > MAX_TZ_OFFSET_HOURS {
            return Err(Error::Invalid(
                "server time-zone offset must be between -14 and 14 hours",
            ));
        }
        let end = cfg.end.unwrap_or_else(Utc::now).trunc_subsecs(0);
        let gen_params = GenParams {
            seed: cfg.seed,
            scenario: cfg.scenario,
            hours: cfg.hours,
            alarms_per_hour: cfg.alarms_per_hour,
            end,
            events_per_alarm: cfg.events_per_alarm,
        };
        let mut store = AlarmStore {
            next_id: gen::FIRST_ALARM_ID,
            ..AlarmStore::default()
        };
        let mut generated = gen::generate(&gen_params);
        if cfg.uniform_ties {
            gen::uniform_ties(&mut generated);
        }
        store.by_id.reserve(generated.len());
        for a in generated {
            // Already sorted: push directly instead of a binary-search insert.
            let a = Arc::new(a);
            store.next_id = store.next_id.max(a.id + 1);
            store.by_id.insert(a.id, a.clone());
            store.by_time.push(a);
        }
        let clock = Arc::new(SimClock::default());
        let ci = Arc::new(ci::CiSim::new(ci::CiOptions {
            tokens: vec![cfg.rf_key.clone()],
            no_ci_tokens: cfg.rf_no_ci_key.iter().cloned().collect(),
            daily_quota: cfg.daily_quota,
            max_batch: cfg.max_batch,
            silent_drop: cfg.rf_silent_drop,
            seed: cfg.seed,
            ..ci::CiOptions::default()
        }));
        let ci_clock = clock.clone();
        ci.set_clock(move || ci_clock.now());
        Ok(SimState {
            faults: Mutex::new(Faults {
                rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xFA17_FA17_FA17_FA17),
                lr: VecDeque::new(),
                rf: VecDeque::new(),
            }),
            cfg,
            clock,
            gen_params,
            alarms: RwLock::new(store),
            stats: Mutex::new(Stats::default()),
            ci,
            lr_in_flight: std::sync::atomic::AtomicUsize::new(0),
            delays: std::sync::OnceLock::new(),
        })
    }

    /// The server's "now": the simulator's clock ([`SimClock`]) plus
    /// `clock_offset_secs`.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now() + chrono::Duration::seconds(self.cfg.clock_offset_secs)
    }

    /// Sets the simulator's clock (the server's clock is it plus
    /// `clock_offset_secs`); Collective Insights' side follows it too.
    pub fn set_clock(&self, t: DateTime<Utc>) {
        self.clock.set(t);
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The generator parameters (including the resolved window end).
    pub fn gen_params(&self) -> &GenParams {
        &self.gen_params
    }

    /// The Collective Insights side.
    pub fn ci(&self) -> &Arc<ci::CiSim> {
        &self.ci
    }

    pub(crate) fn alarms(&self) -> RwLockReadGuard<'_, AlarmStore> {
        self.alarms.read().unwrap_or_else(|e| e.into_inner())
    }

    fn alarms_mut(&self) -> RwLockWriteGuard<'_, AlarmStore> {
        self.alarms.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of alarms the simulator holds.
    pub fn alarm_count(&self) -> usize {
        self.alarms().by_time.len()
    }

    /// All alarms, sorted by (`dateInserted`, id).
    pub fn alarm_list(&self) -> Vec<Arc<AlarmMeta>> {
        self.alarms().by_time.clone()
    }

    /// Adds `count` new alarms, deterministically for the seed and the first new id:
    /// ids continue after the highest so far; the i-th is inserted at `at` (on a
    /// tick) + 10 ms × i. Returns the new ids.
    pub fn generate(&self, count: usize, at: DateTime<Utc>) -> Vec<i64> {
        let mut store = self.alarms_mut();
        let new = gen::generate_more(
            self.cfg.seed,
            self.cfg.scenario,
            store.next_id,
            count,
            at,
            self.cfg.events_per_alarm,
        );
        let ids = new.iter().map(|a| a.id).collect();
        for a in new {
            store.insert(a);
        }
        ids
    }

    /// Queues `count` faults of `kind` for the next authenticated requests on `side`.
    pub fn queue_faults(&self, side: Side, kind: FaultKind, count: usize, retry_after: u64) {
        self.queue_route_faults(side, kind, count, retry_after, None);
    }

    /// [`SimState::queue_faults`] for the requests of one route only (a
    /// `route_pattern`, e.g. `/lr-alarm-api/alarms/{id}/events`).
    pub fn queue_route_faults(
        &self,
        side: Side,
        kind: FaultKind,
        count: usize,
        retry_after: u64,
        route: Option<String>,
    ) {
        let mut f = lock(&self.faults);
        let q = match side {
            Side::Lr => &mut f.lr,
            Side::Rf => &mut f.rf,
        };
        let fault = Fault {
            kind,
            retry_after,
            route,
        };
        q.extend(std::iter::repeat_n(fault, count));
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        let mut f = lock(&self.faults);
        f.lr.clear();
        f.rf.clear();
    }

    /// Clears CI's stored items and quota, and the request/fault statistics.
    pub fn reset(&self) {
        self.ci.reset();
        *lock(&self.stats) = Stats::default();
    }

    /// `{"requests": {"<METHOD> <route pattern>": n}, "faults": {"<kind>": n},
    /// "lr_in_flight": {"peak": n, "arrivals": {"<k>": n}}}`.
    pub fn stats(&self) -> serde_json::Value {
        let s = lock(&self.stats);
        let arrivals: BTreeMap<String, u64> = s
            .lr_arrivals
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect();
        serde_json::json!({
            "requests": s.requests,
            "faults": s.faults,
            "lr_in_flight": {"peak": s.lr_in_flight_peak, "arrivals": arrivals},
        })
    }

    /// Counts a LogRhythm request in flight until the guard is dropped.
    fn lr_enter(self: &Arc<Self>) -> InFlight {
        use std::sync::atomic::Ordering;
        let now = self.lr_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = lock(&self.stats);
        s.lr_in_flight_peak = s.lr_in_flight_peak.max(now);
        *s.lr_arrivals.entry(now).or_default() += 1;
        InFlight {
            state: self.clone(),
            now,
        }
    }

    /// The ground truth (`GET /_sim/alarms`) as JSON bytes: one object per alarm in
    /// (`dateInserted`, id) order, `{"alarmId", "alarmRuleName", "dateInserted",
    /// "details", "events"}` with details and events byte-for-byte as served. When
    /// the served events are not parseable JSON (hostile scenario: lone surrogate,
    /// invalid UTF-8, 10 000-deep nesting, `1e99999`, an HTML page), `events` is
    /// `null` and `"eventsUnparseable"` gives the parser's complaint; when the served
    /// list is `null`, `events` is `null` too. `"organisationValues"` lists the
    /// `{"type", "value"}` (raw, as placed) of the simulated organisation's values
    /// in the events, which must never reach CI; `"heldBack"` lists attackers'
    /// values LogRhythm placed on an organisation's side (a DNS sinkhole answer),
    /// which an agent excludes in that alarm but must not learn from.
    pub fn ground_truth(&self) -> Vec<u8> {
        use json::Node;
        let alarms = self.alarm_list();
        let mut out = Vec::with_capacity(alarms.len() * 4096);
        out.push(b'[');
        for (i, a) in alarms.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let body = gen::events_body(a);
            let (events, complaint) = if body.replace.is_some() {
                (
                    Node::Null,
                    Some("the events body is an HTML page".to_string()),
                )
            } else if body.null_list {
                (Node::Null, None)
            } else {
                match serde_json::from_slice::<serde_json::Value>(&body.array) {
                    Ok(_) => (Node::Raw(body.array), None),
                    Err(e) => (Node::Null, Some(e.to_string())),
                }
            };
            let mut obj = Node::obj([
                ("alarmId", Node::Int(a.id)),
                ("alarmRuleName", Node::s(a.rule_name.clone())),
                ("dateInserted", Node::s(time::render_lr(a.date_inserted))),
                ("details", gen::details(a)),
                ("events", events),
            ]);
            if let Some(c) = complaint {
                obj.set("eventsUnparseable", Node::Str(c));
            }
            let marks = gen::marks(a);
            let list = |items: Vec<(&'static str, String)>| {
                Node::Arr(
                    items
                        .into_iter()
                        .map(|(t, v)| Node::obj([("type", Node::s(t)), ("value", Node::Str(v))]))
                        .collect(),
                )
            };
            obj.set("organisationValues", list(marks.org));
            obj.set("heldBack", list(marks.held_back));
            obj.write(&mut out);
        }
        out.push(b']');
        out
    }

    fn authorized(&self, side: Side, headers: &HeaderMap) -> bool {
        match side {
            Side::Lr => lr::check_auth(&self.cfg, headers).is_ok(),
            Side::Rf => headers
                .get("x-rftoken")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t == self.cfg.rf_key),
        }
    }

    fn next_fault(&self, side: Side, headers: &HeaderMap, route: &str) -> Option<Fault> {
        let mut f = lock(&self.faults);
        if self.cfg.fault_rate > 0.0 {
            let p: f64 = f.rng.random();
            let k = f.rng.random_range(0..FaultKind::RANDOM.len());
            if p < self.cfg.fault_rate {
                return FaultKind::RANDOM.get(k).map(|&kind| Fault {
                    kind,
                    retry_after: 1,
                    route: None,
                });
            }
        }
        if !self.authorized(side, headers) {
            return None;
        }
        let q = match side {
            Side::Lr => &mut f.lr,
            Side::Rf => &mut f.rf,
        };
        let at = q
            .iter()
            .position(|x| x.route.as_deref().is_none_or(|r| r == route))?;
        q.remove(at)
    }
}

/// One LogRhythm request in flight (see [`SimState::lr_enter`]).
struct InFlight {
    state: Arc<SimState>,
    /// In flight when it arrived, itself included.
    now: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state
            .lr_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The latency of a LogRhythm request that arrived with `in_flight` in flight
/// (itself included): `base × max(1, in_flight / capacity)`; capacity 0 = unlimited.
fn lr_latency(base: Duration, capacity: usize, in_flight: usize) -> Duration {
    if capacity == 0 || in_flight <= capacity {
        return base;
    }
    // Exact for any realistic count (far below 2^52).
    #[allow(clippy::cast_precision_loss)]
    let factor = in_flight as f64 / capacity as f64;
    base.mul_f64(factor)
}

/// A running simulator; dropping it without [`RunningSim::shutdown`] leaves the
/// server task running until the runtime ends.
pub struct RunningSim {
    addr: SocketAddr,
    tls: bool,
    state: Arc<SimState>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`, or `https://…` when serving TLS (no trailing
    /// slash); both APIs live under it.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, to add alarms or script faults in-process.
    pub fn state(&self) -> Arc<SimState> {
        self.state.clone()
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "simulator task ended abnormally");
        }
    }
}

/// Binds `cfg.listen` (loopback only), generates the scenario and serves both APIs
/// and the admin routes on one port.
pub async fn start(cfg: SimConfig) -> anyhow::Result<RunningSim> {
    if !cfg.listen.ip().is_loopback() {
        return Err(Error::NotLoopback(cfg.listen).into());
    }
    let listen = cfg.listen;
    let state = Arc::new(SimState::new(cfg)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    let app = router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tls = match &state.config().tls {
        Some(pem) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem(pem.cert.clone(), pem.key.clone())
                .await
                .map_err(Error::Tls)?,
        ),
        None => None,
    };
    let https = tls.is_some();
    let task = match tls {
        None => tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulator server failed");
            }
        }),
        Some(tls) => {
            let std_listener = listener.into_std().map_err(|source| Error::Bind {
                addr: listen,
                source,
            })?;
            let handle = axum_server::Handle::new();
            let server = axum_server::from_tcp_rustls(std_listener, tls)
                .map_err(|source| Error::Bind {
                    addr: listen,
                    source,
                })?
                .handle(handle.clone());
            tokio::spawn(async move {
                let stopper = handle.clone();
                tokio::spawn(async move {
                    let _ = stopped.await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(5)));
                });
                if let Err(e) = server.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "simulator server failed");
                }
            })
        }
    };
    tracing::info!(%addr, alarms = state.alarm_count(), "simulator listening");
    Ok(RunningSim {
        addr,
        tls: https,
        state,
        stop,
        task,
    })
}

/// The whole application: both APIs, the admin routes, and the middleware.
pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .merge(lr::router(state.clone()))
        .merge(state.ci.clone().router())
        .merge(admin_router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state, sim_layer))
}

fn side_of(path: &str) -> Option<Side> {
    let p = path.trim_start_matches('/');
    if p.starts_with("lr-alarm-api/") || p == "lr-alarm-api" {
        Some(Side::Lr)
    } else if p.starts_with("collective-insights/") || p == "collective-insights" {
        Some(Side::Rf)
    } else {
        None
    }
}

/// The route pattern a path belongs to, for the stats: leading slashes collapsed to
/// one and the alarm id segment replaced by `{id}`
/// (`/lr-alarm-api/alarms/1234/events` → `/lr-alarm-api/alarms/{id}/events`).
fn route_pattern(path: &str) -> String {
    let mut segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.first() == Some(&"lr-alarm-api") && segs.get(1) == Some(&"alarms") {
        if let Some(id) = segs.get_mut(2) {
            *id = "{id}";
        }
    }
    format!("/{}", segs.join("/"))
}

async fn sim_layer(State(st): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let offset = st.cfg.clock_offset_secs;
    let mut resp = sim_layer_inner(st.clone(), req, next).await;
    if offset != 0 {
        // The server's clock, as a real server's Date header shows it.
        let date = httpdate::fmt_http_date(std::time::SystemTime::from(st.now()));
        if let Ok(v) = HeaderValue::from_str(&date) {
            resp.headers_mut().insert(header::DATE, v);
        }
    }
    resp
}

async fn sim_layer_inner(st: Arc<SimState>, req: Request, next: Next) -> Response {
    let arrived = std::time::Instant::now();
    let Some(side) = side_of(req.uri().path()) else {
        return next.run(req).await;
    };
    let route = route_pattern(req.uri().path());
    *lock(&st.stats)
        .requests
        .entry(format!("{} {route}", req.method()))
        .or_default() += 1;
    // Held until the answer is made: the request counts as in flight until then.
    let in_flight = (side == Side::Lr).then(|| st.lr_enter());
    let latency = match &in_flight {
        Some(f) => {
            let reject = st.cfg.lr_reject_above;
            if reject > 0 && f.now > reject {
                *lock(&st.stats)
                    .faults
                    .entry("capacity-429".to_string())
                    .or_default() += 1;
                return capacity_rejection();
            }
            lr_latency(st.cfg.lr_latency, st.cfg.lr_capacity, f.now)
        }
        None => st.cfg.rf_latency,
    };
    if !latency.is_zero() {
        // The answer starts `latency` after the request arrived, to the
        // microsecond rather than tokio's millisecond (see `delay`).
        let at = arrived + latency;
        match st.delays.get_or_init(delay::Delays::start) {
            Some(d) => d.until(at).await,
            None => tokio::time::sleep_until(at.into()).await,
        }
    }
    let Some(fault) = st.next_fault(side, req.headers(), &route) else {
        return next.run(req).await;
    };
    *lock(&st.stats)
        .faults
        .entry(fault.kind.as_str().to_string())
        .or_default() += 1;
    tracing::debug!(kind = fault.kind.as_str(), %route, "injecting fault");
    match fault.kind {
        FaultKind::Slow => {
            let resp = next.run(req).await;
            tokio::time::sleep(st.cfg.slow).await;
            resp
        }
        FaultKind::Drop => dropped_connection(),
        FaultKind::StoreThenDrop => {
            let resp = next.run(req).await;
            // Let the handler's body finish too, so the work is really done.
            let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
            dropped_connection()
        }
        FaultKind::Html200 | FaultKind::Redirect => gateway_page(fault.kind),
        FaultKind::NoResult | FaultKind::NoResultLost => {
            if fault.kind == FaultKind::NoResult {
                let resp = next.run(req).await;
                let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
            }
            (StatusCode::OK, Json(serde_json::json!({"accepted": true}))).into_response()
        }
        FaultKind::Html => {
            let mut r = (
                StatusCode::BAD_GATEWAY,
                "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
                 <body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n",
            )
                .into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        FaultKind::TooMany
        | FaultKind::BadRequest
        | FaultKind::Internal
        | FaultKind::BadGateway
        | FaultKind::Unavailable => {
            let status = match fault.kind {
                FaultKind::BadRequest => StatusCode::BAD_REQUEST,
                FaultKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
                FaultKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                FaultKind::BadGateway => StatusCode::BAD_GATEWAY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            let reason = match fault.kind {
                FaultKind::BadRequest => {
                    "request validation failed: data.0.detection.type is not allowed"
                }
                _ => status.canonical_reason().unwrap_or("Error"),
            };
            let body = match side {
                Side::Lr => serde_json::json!({
                    "statusCode": status.as_u16(), "statusMessage": reason, "responseMessage": reason
                }),
                Side::Rf => serde_json::json!({
                    "message": reason, "status_code": status.as_u16(), "trace_id": "sim-fault"
                }),
            };
            let mut r = (status, Json(body)).into_response();
            if fault.kind == FaultKind::TooMany {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(fault.retry_after));
            }
            r
        }
    }
}

/// The 429 of a gateway at its connection limit: LogRhythm's error envelope,
/// no `Retry-After`.
fn capacity_rejection() -> Response {
    let reason = "Too Many Requests";
    (
        StatusCode::TOO_MANY_REQUESTS,
        Json(serde_json::json!({
            "statusCode": 429, "statusMessage": reason, "responseMessage": reason
        })),
    )
        .into_response()
}

/// A response whose body fails on its first poll: hyper aborts the connection, so
/// the client gets no complete answer.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "simulated dropped connection",
        ))
    });
    Response::new(Body::from_stream(stream))
}

// ---------------------------------------------------------------------------------
// Admin routes

fn admin_router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/_sim/received", get(admin_received))
        .route("/_sim/dropped", get(admin_dropped))
        .route("/_sim/silent-drop", post(admin_silent_drop))
        .route("/_sim/stats", get(admin_stats))
        .route("/_sim/clock", get(admin_clock).post(admin_set_clock))
        .route("/_sim/reset", post(admin_reset))
        .route("/_sim/alarms", get(admin_alarms))
        .route("/_sim/generate", post(admin_generate))
        .route(
            "/_sim/faults",
            post(admin_faults).delete(admin_clear_faults),
        )
        .with_state(state)
}

async fn admin_received(State(st): State<Arc<SimState>>) -> Json<Vec<serde_json::Value>> {
    Json(st.ci.received())
}

async fn admin_dropped(State(st): State<Arc<SimState>>) -> Json<Vec<serde_json::Value>> {
    Json(st.ci.dropped())
}

#[derive(Deserialize)]
struct SilentDropReq {
    rate: f64,
}

async fn admin_silent_drop(
    State(st): State<Arc<SimState>>,
    body: Result<Json<SilentDropReq>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return admin_error(e.body_text()),
    };
    if !(0.0..=1.0).contains(&req.rate) {
        return admin_error(format!("rate must be from 0 to 1, not {}", req.rate));
    }
    st.ci.set_silent_drop(req.rate);
    Json(serde_json::json!({ "rate": req.rate })).into_response()
}

#[derive(Debug, Deserialize)]
struct ClockReq {
    now: String,
}

async fn admin_clock(State(st): State<Arc<SimState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "now": crate::ledger::ts(st.clock.now()) }))
}

async fn admin_set_clock(
    State(st): State<Arc<SimState>>,
    body: Result<Json<ClockReq>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return admin_error(e.body_text()),
    };
    match DateTime::parse_from_rfc3339(req.now.trim()) {
        Ok(t) => {
            st.set_clock(t.with_timezone(&Utc));
            admin_clock(State(st)).await.into_response()
        }
        Err(_) => admin_error(format!("now: {:?} is not an RFC 3339 time", req.now)),
    }
}

async fn admin_stats(State(st): State<Arc<SimState>>) -> Json<serde_json::Value> {
    Json(st.stats())
}

async fn admin_reset(State(st): State<Arc<SimState>>) -> Json<serde_json::Value> {
    st.reset();
    Json(serde_json::json!({"reset": true}))
}

async fn admin_alarms(State(st): State<Arc<SimState>>) -> Response {
    let body = tokio::task::spawn_blocking(move || st.ground_truth()).await;
    match body {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "building the ground truth failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// What a reverse proxy in front of the API answers when its session expired:
/// a login page with status 200, or a 302 to it.
fn gateway_page(kind: FaultKind) -> Response {
    if kind == FaultKind::Redirect {
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_static("/login?next=%2F"),
        );
        return r;
    }
    let mut r = (
        StatusCode::OK,
        "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form action=\"/login\" method=\"post\">\
         <input name=\"user\"><input name=\"password\" type=\"password\"></form></body></html>\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// The route names `/_sim/faults` takes for `route`, as route patterns.
fn fault_route(name: &str) -> Option<&'static str> {
    Some(match name {
        "list" => "/lr-alarm-api/alarms",
        "details" => "/lr-alarm-api/alarms/{id}",
        "events" => "/lr-alarm-api/alarms/{id}/events",
        "summary" => "/lr-alarm-api/alarms/{id}/summary",
        "detections" => "/collective-insights/detections",
        "search" => "/collective-insights/search",
        _ => return None,
    })
}

/// Most alarms one `/_sim/generate` call may add.
const MAX_GENERATE: usize = 100_000;

#[derive(Deserialize)]
struct GenerateReq {
    count: usize,
    at: Option<String>,
}

fn admin_error(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

async fn admin_generate(
    State(st): State<Arc<SimState>>,
    body: Result<Json<GenerateReq>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return admin_error(e.body_text()),
    };
    if req.count > MAX_GENERATE {
        return admin_error(format!("count must be at most {MAX_GENERATE}"));
    }
    let at = match req.at.as_deref() {
        None => st.now(),
        Some(s) => match time::parse_lr_param(s) {
            Some(t) => t,
            None => return admin_error(format!("cannot parse at {s:?} (use RFC 3339)")),
        },
    };
    let ids = st.generate(req.count, at);
    Json(serde_json::json!({ "alarmIds": ids })).into_response()
}

#[derive(Deserialize)]
struct FaultsReq {
    side: Side,
    kind: FaultKind,
    count: usize,
    retry_after: Option<u64>,
    /// Only requests of this route: list, details, events, summary, detections, search.
    route: Option<String>,
}

async fn admin_faults(
    State(st): State<Arc<SimState>>,
    body: Result<Json<FaultsReq>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return admin_error(e.body_text()),
    };
    let rf_only = [
        FaultKind::StoreThenDrop,
        FaultKind::NoResult,
        FaultKind::NoResultLost,
    ];
    if rf_only.contains(&req.kind) && req.side != Side::Rf {
        return admin_error(format!(
            "{} is only available on side rf",
            req.kind.as_str()
        ));
    }
    let route = match req.route.as_deref() {
        None => None,
        Some(name) => match fault_route(name) {
            Some(r) => Some(r.to_string()),
            None => {
                return admin_error(format!(
                    "unknown route {name:?}: list, details, events, summary, detections or search"
                ))
            }
        },
    };
    st.queue_route_faults(
        req.side,
        req.kind,
        req.count,
        req.retry_after.unwrap_or(1),
        route,
    );
    Json(serde_json::json!({ "queued": req.count })).into_response()
}

async fn admin_clear_faults(State(st): State<Arc<SimState>>) -> Json<serde_json::Value> {
    st.clear_faults();
    Json(serde_json::json!({ "cleared": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_keys() {
        let cfg = SimConfig {
            lr_low_priv_key: Some("low-secret".into()),
            rf_no_ci_key: Some("noci-secret".into()),
            ..SimConfig::default()
        };
        let text = format!("{cfg:?}");
        for secret in [DEFAULT_LR_KEY, DEFAULT_RF_KEY, "low-secret", "noci-secret"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("page_cap: 100"));
    }

    #[test]
    fn latency_is_flat_up_to_the_capacity_then_grows_with_every_request() {
        let ms = Duration::from_millis;
        // (base ms, capacity, in flight, latency ms)
        let rows = [
            (20, 0, 100, 20),
            (20, 8, 1, 20),
            (20, 8, 8, 20),
            (20, 8, 10, 25),
            (20, 8, 16, 40),
            (20, 8, 64, 160),
            (0, 8, 64, 0),
        ];
        for (base, cap, n, want) in rows {
            assert_eq!(lr_latency(ms(base), cap, n), ms(want), "{base} {cap} {n}");
        }
    }

    #[test]
    fn route_patterns_collapse_ids_and_slashes() {
        assert_eq!(
            route_pattern("/lr-alarm-api/alarms/17/events"),
            "/lr-alarm-api/alarms/{id}/events"
        );
        assert_eq!(
            route_pattern("/lr-alarm-api/alarms"),
            "/lr-alarm-api/alarms"
        );
        assert_eq!(
            route_pattern("//collective-insights/detections"),
            "/collective-insights/detections"
        );
    }
}
