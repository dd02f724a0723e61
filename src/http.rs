//! Shared HTTP plumbing for the two API clients: building a hardened reqwest
//! client, turning non-2xx answers into [`Error`], reading bodies under a size
//! cap, and the one bounded retry loop ([`execute`]).
//!
//! This module knows nothing about either API's payloads. It never logs or
//! formats credentials: auth headers are built by [`auth_header`], marked
//! sensitive, and only ever live inside the reqwest client's default headers.

use std::fmt;
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

/// Longest body snippet carried in an error's message.
const SNIPPET_CHARS: usize = 200;
/// Longest error body kept for callers that extract a server message.
const ERROR_BODY_CHARS: usize = 4096;
/// Bytes read from an error response at most (the rest is dropped unread).
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Transport settings shared by both clients.
#[derive(Clone)]
pub struct HttpOptions {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (headers and body), per attempt.
    pub timeout: Duration,
    /// Retries after the first attempt for transient failures.
    pub max_retries: u32,
    /// First backoff delay; doubled per retry, with jitter.
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_cap: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails at once
    /// (transiently) so the caller can leave the work for a later run.
    pub retry_after_cap: Duration,
    /// No attempt starts, and no sleep runs, past this instant.
    pub deadline: Option<Instant>,
    /// Extra trusted root(s), PEM, merged with the platform's roots.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Accept any server certificate (LogRhythm's self-signed default).
    pub insecure: bool,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Largest response body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(120),
            deadline: None,
            ca_cert_pem: None,
            insecure: false,
            user_agent: default_user_agent(),
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("retry_after_cap", &self.retry_after_cap)
            .field("deadline", &self.deadline)
            .field(
                "ca_cert_pem",
                &self
                    .ca_cert_pem
                    .as_ref()
                    .map(|p| format!("<{} bytes>", p.len())),
            )
            .field("insecure", &self.insecure)
            .field("user_agent", &self.user_agent)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// `lrci/<crate version>`.
pub fn default_user_agent() -> String {
    format!("lrci/{}", env!("CARGO_PKG_VERSION"))
}

/// Errors of the HTTP layer. Never carries a header or a credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A credential is unusable as a header value; names the variable, never the value.
    #[error("{variable} is not a usable credential: it must be non-empty visible ASCII without spaces or control characters")]
    BadCredential {
        /// The setting (environment variable) the credential came from.
        variable: &'static str,
    },
    /// The CA certificate bundle holds no usable certificate.
    #[error("the CA certificate bundle is unusable: {reason}")]
    BadCaCert {
        /// What is wrong with it.
        reason: &'static str,
        /// The parser's complaint, when there is one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// reqwest refused the client configuration.
    #[error("could not build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// The base URL cannot be used.
    #[error("invalid URL {url}: {reason}")]
    BadUrl {
        /// The URL as given (no credentials are ever put into URLs).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection could not be established.
    #[error("{method} {path}: could not connect")]
    Connect {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The attempt ran out of time.
    #[error("{method} {path}: timed out")]
    Timeout {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// Another transport failure while sending (reset, protocol error).
    #[error("{method} {path}: request failed")]
    Request {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The body could not be read completely.
    #[error("{method} {path}: could not read the response body")]
    Body {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The body is larger than [`HttpOptions::max_body_bytes`].
    #[error("{method} {path}: response body larger than {limit} bytes")]
    BodyTooLarge {
        method: Method,
        path: String,
        limit: usize,
    },
    /// A 3xx answer; redirects are never followed (they would leak custom
    /// auth headers such as `X-RFToken` to the target host).
    #[error("{method} {path}: HTTP {status} redirect to {location_host} not followed")]
    Redirect {
        method: Method,
        path: String,
        status: u16,
        /// Host of the `Location` header (`<none>` when absent or unparsable).
        location_host: String,
    },
    /// A non-2xx, non-3xx answer.
    #[error("{method} {path}: HTTP {status}: {snippet}")]
    Status {
        method: Method,
        path: String,
        status: u16,
        /// At most 200 characters of the body, control characters removed.
        snippet: String,
        /// Up to 4096 characters of the body, control characters removed, for
        /// callers that extract a server message.
        body: String,
        /// The parsed `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The server asked for a wait above [`HttpOptions::retry_after_cap`].
    #[error("{method} {path}: HTTP {status} with Retry-After {retry_after:?}, longer than the {cap:?} cap; leaving the work for later")]
    RetryAfterTooLong {
        method: Method,
        path: String,
        status: u16,
        retry_after: Duration,
        cap: Duration,
    },
    /// The run deadline passed before the first attempt could start.
    #[error("{method} {path}: run deadline reached before the request could start")]
    Deadline { method: Method, path: String },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when trying again later may succeed: connect errors, timeouts, body
    /// read errors, 429, 500, 502, 503, 504, a too-long `Retry-After`, a reached
    /// deadline.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Request { .. }
            | Error::Body { .. }
            | Error::RetryAfterTooLong { .. }
            | Error::Deadline { .. } => true,
            Error::Status { status, .. } => is_transient_status(*status),
            Error::BadCredential { .. }
            | Error::BadCaCert { .. }
            | Error::Build(_)
            | Error::BadUrl { .. }
            | Error::BodyTooLarge { .. }
            | Error::Redirect { .. } => false,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. }
            | Error::Redirect { status, .. }
            | Error::RetryAfterTooLong { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Statuses worth retrying.
fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Builds an auth header value from a secret, marked sensitive so it never
/// appears in Debug output. `prefix` is e.g. `"Bearer "` or `""`.
///
/// A secret that is empty or holds anything but visible ASCII (CR, LF, NUL,
/// spaces, non-ASCII) is refused with an error naming `variable`, never the value.
pub fn auth_header(
    variable: &'static str,
    prefix: &str,
    secret: &SecretString,
) -> Result<HeaderValue> {
    let raw = secret.expose_secret();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::BadCredential { variable });
    }
    let mut value = HeaderValue::from_str(&format!("{prefix}{raw}"))
        .map_err(|_| Error::BadCredential { variable })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Builds a pooled reqwest client: rustls, redirects disabled, timeouts, the
/// user agent, the given default headers (e.g. auth), the CA bundle merged with
/// the platform roots, and certificate checks off only when `insecure`.
pub fn build_client(opts: &HttpOptions, default_headers: HeaderMap) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.timeout)
        .user_agent(opts.user_agent.clone())
        .default_headers(default_headers)
        .tls_version_min(reqwest::tls::Version::TLS_1_2);
    if let Some(pem) = &opts.ca_cert_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::BadCaCert {
            reason: "not a PEM certificate bundle",
            source: Some(e),
        })?;
        if certs.is_empty() {
            return Err(Error::BadCaCert {
                reason: "no certificate found in the PEM bundle",
                source: None,
            });
        }
        builder = builder.tls_certs_merge(certs);
    }
    if opts.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(Error::Build)
}

/// One successful exchange: a 2xx status and its complete body.
#[derive(Debug)]
pub struct Response {
    /// The 2xx status.
    pub status: StatusCode,
    /// The body, at most `max_body_bytes`.
    pub body: Vec<u8>,
    /// Attempts made, 1 when the first one succeeded.
    pub attempts: u32,
}

/// Path and query of a URL, for error messages.
fn display_path(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_string(),
    }
}

/// Keeps printable characters only, at most `max` of them.
pub fn sanitize(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .take(max)
        .collect()
}

/// Parses `Retry-After` as delay-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Turns a non-2xx response into an [`Error`]; returns 2xx responses untouched.
/// Every call of both clients goes through here (via [`execute`]).
pub async fn check_status(resp: reqwest::Response, method: &Method) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let path = display_path(resp.url());
    if status.is_redirection() {
        let location_host = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| resp.url().join(loc).ok())
            .and_then(|u| u.host_str().map(|h| sanitize(h, 255)))
            .unwrap_or_else(|| "<none>".to_string());
        return Err(Error::Redirect {
            method: method.clone(),
            path,
            status: status.as_u16(),
            location_host,
        });
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    // Best effort: an unreadable error body still yields the status error.
    let raw = read_capped_lossy(resp, ERROR_BODY_BYTES).await;
    let text = String::from_utf8_lossy(&raw);
    Err(Error::Status {
        method: method.clone(),
        path,
        status: status.as_u16(),
        snippet: sanitize(&text, SNIPPET_CHARS),
        body: sanitize(&text, ERROR_BODY_CHARS),
        retry_after,
    })
}

/// Reads at most `cap` bytes of an error body, ignoring read errors.
async fn read_capped_lossy(mut resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - out.len();
                out.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&chunk));
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// Streams a body into memory, failing as soon as it exceeds `cap` bytes.
pub async fn read_body(
    mut resp: reqwest::Response,
    method: &Method,
    cap: usize,
) -> Result<Vec<u8>> {
    let path = display_path(resp.url());
    let too_large = || Error::BodyTooLarge {
        method: method.clone(),
        path: path.clone(),
        limit: cap,
    };
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > cap {
                    return Err(too_large());
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(source) if source.is_timeout() => {
                return Err(Error::Timeout {
                    method: method.clone(),
                    path,
                    source,
                })
            }
            Err(source) => {
                return Err(Error::Body {
                    method: method.clone(),
                    path,
                    source,
                })
            }
        }
    }
}

/// Classifies a reqwest send error.
fn send_error(source: reqwest::Error, method: &Method, path: String) -> Error {
    let method = method.clone();
    if source.is_timeout() {
        Error::Timeout {
            method,
            path,
            source,
        }
    } else if source.is_connect() {
        Error::Connect {
            method,
            path,
            source,
        }
    } else if source.is_body() || source.is_decode() {
        Error::Body {
            method,
            path,
            source,
        }
    } else {
        Error::Request {
            method,
            path,
            source,
        }
    }
}

/// Backoff before retry number `retry` (0-based): `base * 2^retry`, capped, with
/// "equal jitter" (half fixed, half random) so concurrent clients spread out.
pub fn backoff_delay(opts: &HttpOptions, retry: u32) -> Duration {
    let exp = opts
        .backoff_base
        .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(opts.backoff_cap)
        .min(opts.backoff_cap);
    let half = exp / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let extra = if jitter_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    };
    half + extra
}

/// What the retry loop does after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum RetryDecision {
    /// Sleep this long, then try again.
    Sleep(Duration),
    /// Return the error as is.
    GiveUp,
    /// Return [`Error::RetryAfterTooLong`].
    RetryAfterTooLong(Duration),
}

/// Pure retry decision for a failed attempt (`retries_done` retries so far).
fn decide_retry(
    err: &Error,
    retries_done: u32,
    opts: &HttpOptions,
    now: Instant,
    backoff: Duration,
) -> RetryDecision {
    if !err.is_transient() || retries_done >= opts.max_retries {
        return RetryDecision::GiveUp;
    }
    let delay = match err {
        Error::Status {
            retry_after: Some(ra),
            ..
        } => {
            if *ra > opts.retry_after_cap {
                return RetryDecision::RetryAfterTooLong(*ra);
            }
            *ra
        }
        _ => backoff,
    };
    if let Some(deadline) = opts.deadline {
        if now + delay >= deadline {
            return RetryDecision::GiveUp;
        }
    }
    RetryDecision::Sleep(delay)
}

/// Sends a request built by `build` (called once per attempt), retrying
/// transient failures as [`HttpOptions`] says, and returns the 2xx body.
///
/// Never retries 400/401/403/404/413/422 or any other non-transient error;
/// honours `Retry-After` (seconds or HTTP-date) and gives up at once when it
/// exceeds `retry_after_cap`; never sleeps past the deadline and shortens each
/// attempt's timeout so it ends by the deadline.
pub async fn execute<F>(client: &reqwest::Client, opts: &HttpOptions, build: F) -> Result<Response>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let mut retries_done = 0u32;
    loop {
        let mut request = build().build().map_err(Error::Build)?;
        let method = request.method().clone();
        let path = display_path(request.url());
        if let Some(deadline) = opts.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Deadline { method, path });
            }
            let per_attempt = request.timeout().copied().unwrap_or(opts.timeout).min(left);
            *request.timeout_mut() = Some(per_attempt);
        }
        let result = match client.execute(request).await {
            Ok(resp) => match check_status(resp, &method).await {
                Ok(resp) => {
                    let status = resp.status();
                    read_body(resp, &method, opts.max_body_bytes)
                        .await
                        .map(|body| Response {
                            status,
                            body,
                            attempts: retries_done + 1,
                        })
                }
                Err(e) => Err(e),
            },
            Err(source) => Err(send_error(source, &method, path.clone())),
        };
        let err = match result {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        let backoff = backoff_delay(opts, retries_done);
        match decide_retry(&err, retries_done, opts, Instant::now(), backoff) {
            RetryDecision::GiveUp => return Err(err),
            RetryDecision::RetryAfterTooLong(retry_after) => {
                return Err(Error::RetryAfterTooLong {
                    method,
                    path,
                    status: err.status().unwrap_or(0),
                    retry_after,
                    cap: opts.retry_after_cap,
                })
            }
            RetryDecision::Sleep(delay) => {
                tracing::warn!(
                    method = %method,
                    path = %path,
                    error = %err,
                    attempt = retries_done + 1,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "transient HTTP failure, retrying"
                );
                tokio::time::sleep(delay).await;
                retries_done += 1;
            }
        }
    }
}
