//! `ci::Client`: Recorded Future Collective Insights — posting detections to
//! `POST /collective-insights/detections`, and a one-result
//! `POST /collective-insights/search` that `lrci doctor` uses to check the token.
//!
//! Owns the CI wire format (in `wire`). Decides nothing about what to send or
//! what a failure means for the ledger; it reports the outcome of one POST.
//! No SQL, no ledger, no printing; transport comes from [`crate::http`].

pub mod fields;
mod search;
pub use search::{Held, MAX_PAGE};
mod wire;
pub use fields::Fields;
pub(crate) use wire::error_message;

use std::net::IpAddr;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Url;
use secrecy::SecretString;

use crate::http::{self, HttpOptions};
use crate::model::Detection;

/// The environment variable the token comes from (named in errors, never the value).
const TOKEN_VARIABLE: &str = "RF_API_KEY";

/// Why 401/403 happens, for the operator.
pub const AUTH_HINT: &str = "check RF_API_KEY: the token must be valid and have the Collective Insights permission (an API token issued for the CI API)";

/// Errors of the CI client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Transport or HTTP failure (including 429/5xx after retries).
    #[error(transparent)]
    Http(Box<http::Error>),
    /// The base URL is not acceptable.
    #[error("RF_API_URL {url} is not usable: {reason}")]
    Config { url: String, reason: &'static str },
    /// 404: there is no Collective Insights API at the configured address.
    #[error("RF_API_URL: POST {url} answered HTTP 404, so there is no Collective Insights API at this address; RF_API_URL is the API root (e.g. https://api.recordedfuture.com), lrci appends /collective-insights/")]
    NoApi {
        /// The endpoint that was tried.
        url: String,
        #[source]
        source: Box<http::Error>,
    },
    /// 401 or 403 (exit 77).
    #[error("Collective Insights refused the token (HTTP {status}); {hint}")]
    Auth {
        status: u16,
        hint: &'static str,
        #[source]
        source: Box<http::Error>,
    },
    /// 400: CI rejected the batch.
    #[error("Collective Insights rejected the batch (HTTP 400): {message}")]
    Rejected {
        /// `message`, `error.message`, or the raw body text (sanitised, ≤ 500 chars).
        message: String,
        #[source]
        source: Box<http::Error>,
    },
    /// 413: the batch is too large; split it.
    #[error("Collective Insights says the batch is too large (HTTP 413)")]
    TooLarge {
        #[source]
        source: Box<http::Error>,
    },
    /// A 2xx whose body is not a CI result (no `result.status`): nothing may be
    /// treated as sent. Transient, so the work stays for a later attempt.
    #[error("Collective Insights answered HTTP {status} without a result.status: {snippet}")]
    BadResponse {
        status: u16,
        /// ≤ 200 chars of the body, control characters removed.
        snippet: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The request body could not be encoded.
    #[error("could not encode the detections as JSON")]
    Encode(#[source] serde_json::Error),
}

impl From<http::Error> for Error {
    fn from(e: http::Error) -> Self {
        Error::Http(Box::new(e))
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the same batch may succeed later (429, 5xx, timeouts, connect
    /// errors, a 2xx without a result).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http(e) => e.is_transient(),
            Error::BadResponse { .. } => true,
            Error::Config { .. }
            | Error::NoApi { .. }
            | Error::Auth { .. }
            | Error::Rejected { .. }
            | Error::TooLarge { .. }
            | Error::Encode(_) => false,
        }
    }

    /// True for 401/403: the token is wrong or lacks the CI permission.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. })
    }

    /// The TLS failure, when the handshake with Recorded Future is what failed
    /// (a configuration problem: exit 78, the detections stay pending).
    pub fn tls_failure(&self) -> Option<&http::TlsFailure> {
        match self {
            Error::Http(e) => e.tls_failure(),
            _ => None,
        }
    }

    /// The HTTP status behind the error, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http(e) => e.status(),
            Error::Auth { status, .. } | Error::BadResponse { status, .. } => Some(*status),
            Error::Rejected { .. } => Some(400),
            Error::TooLarge { .. } => Some(413),
            Error::NoApi { .. } => Some(404),
            Error::Config { .. } | Error::Encode(_) => None,
        }
    }
}

/// `summary.processed`: per-type counts CI reports (may be below what was sent,
/// because CI de-duplicates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Processed {
    pub ip: u64,
    pub domain: u64,
    pub hash: u64,
    pub vulnerability: u64,
    pub url: u64,
}

/// The outcome of one accepted POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    /// `result.debug` as echoed (the requested flag when not echoed).
    pub debug: bool,
    /// `result.summary.processed`, when present.
    pub processed: Option<Processed>,
    /// HTTP attempts made (1 = no retry).
    pub attempts: u32,
}

/// Client of the Collective Insights API.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Url,
    /// `.../collective-insights/search`, for [`Client::probe`].
    search: Url,
    opts: HttpOptions,
    fields: Fields,
}

/// True for 127.0.0.0/8, ::1 and `localhost`.
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks the base URL and builds the detections endpoint.
fn endpoint(base: &Url) -> Result<Url> {
    let bad = |reason| Error::Config {
        url: base.as_str().to_string(),
        reason,
    };
    if base.cannot_be_a_base() || base.host().is_none() {
        return Err(bad("not an http(s) URL with a host"));
    }
    match base.scheme() {
        "https" => {}
        "http" if is_loopback_host(base) => {}
        "http" => return Err(bad("plain http:// is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost); use https://")),
        _ => return Err(bad("must be https://")),
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(bad(
            "credentials in the URL are not allowed; use RF_API_KEY",
        ));
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    let path = format!(
        "{}/collective-insights/detections",
        url.path().trim_end_matches('/')
    );
    url.set_path(&path);
    Ok(url)
}

impl Client {
    /// Builds the client for `base` (e.g. `https://api.recordedfuture.com`);
    /// refuses a non-https URL unless its host is loopback. The token is sent
    /// as `X-RFToken`.
    pub fn new(base: Url, token: SecretString, opts: HttpOptions) -> Result<Client> {
        let endpoint = endpoint(&base)?;
        let mut search = endpoint.clone();
        let search_path = endpoint
            .path()
            .strip_suffix("/detections")
            .map(|p| format!("{p}/search"))
            .ok_or(Error::Config {
                url: base.as_str().to_string(),
                reason: "cannot build the search URL",
            })?;
        search.set_path(&search_path);
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-rftoken"),
            http::auth_header(TOKEN_VARIABLE, "", &token)?,
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = http::build_client(&opts, headers)?;
        Ok(Client {
            http,
            endpoint,
            search,
            opts,
            fields: Fields::default(),
        })
    }

    /// Sets what detections carry beyond the indicator (types by rule, MITRE
    /// codes, malwares).
    pub fn with_fields(mut self, fields: Fields) -> Client {
        self.fields = fields;
        self
    }

    /// The detections endpoint this client posts to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Checks that CI answers and accepts the token without submitting anything:
    /// `POST /collective-insights/search` with `{"limit": 1}` (read only; stores
    /// nothing, uses no submission quota). 401/403 → [`Error::Auth`]; a 2xx body
    /// that is not a JSON object → [`Error::BadResponse`].
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn probe(&self) -> Result<()> {
        let resp = http::execute(&self.http, &self.opts, || {
            self.http
                .post(self.search.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"limit":1}"#)
        })
        .await
        .map_err(|e| map_http(e, &self.search))?;
        match serde_json::from_slice::<serde_json::Value>(&resp.body) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err(Error::BadResponse {
                status: resp.status.as_u16(),
                snippet: http::sanitize(&String::from_utf8_lossy(&resp.body), 200),
                source: None,
            }),
            Err(source) => Err(Error::BadResponse {
                status: resp.status.as_u16(),
                snippet: http::sanitize(&String::from_utf8_lossy(&resp.body), 200),
                source: Some(source),
            }),
        }
    }

    /// Posts `items` as one batch with `options.debug` set explicitly and
    /// `summary: true`.
    ///
    /// Success requires a 2xx whose body carries `result.status`; anything else
    /// (HTML, empty, other JSON) is the transient [`Error::BadResponse`], so the
    /// caller marks nothing as sent. 400 → [`Error::Rejected`], 413 →
    /// [`Error::TooLarge`], 401/403 → [`Error::Auth`]; 429/5xx/timeouts are
    /// retried as [`http::execute`] does (CI de-duplicates, so a repeat is safe).
    #[tracing::instrument(skip_all, fields(items = items.len(), debug), err(level = "debug"))]
    pub async fn submit(&self, items: &[Detection], debug: bool) -> Result<SubmitOutcome> {
        let body = wire::SubmitBody {
            options: wire::Options {
                debug,
                summary: true,
            },
            data: items
                .iter()
                .map(|d| wire::Item::from_detection(d, &self.fields))
                .collect(),
        };
        let bytes = serde_json::to_vec(&body).map_err(Error::Encode)?;
        let resp = http::execute(&self.http, &self.opts, || {
            self.http
                .post(self.endpoint.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone())
        })
        .await
        .map_err(|e| map_http(e, &self.endpoint))?;
        let (result, processed) = parse_response(resp.status.as_u16(), &resp.body)?;
        if let Some(p) = processed {
            tracing::info!(
                sent = items.len(),
                ip = p.ip,
                domain = p.domain,
                hash = p.hash,
                vulnerability = p.vulnerability,
                url = p.url,
                "Collective Insights processed counts"
            );
        }
        Ok(SubmitOutcome {
            debug: result.unwrap_or(debug),
            processed,
            attempts: resp.attempts,
        })
    }
}

/// Parses a 2xx answer to a submission: the server's `result.debug` and its
/// processed counts (a status other than "ok" is logged). A body without `result.status` is
/// [`Error::BadResponse`].
pub(crate) fn parse_response(
    status: u16,
    body: &[u8],
) -> Result<(Option<bool>, Option<Processed>)> {
    let parsed: wire::SubmitResponse =
        serde_json::from_slice(body).map_err(|source| Error::BadResponse {
            status,
            snippet: http::sanitize(&String::from_utf8_lossy(body), 200),
            source: Some(source),
        })?;
    let result = parsed.result;
    let processed = result.summary.and_then(|s| s.processed).map(|p| Processed {
        ip: p.ip,
        domain: p.domain,
        hash: p.hash,
        vulnerability: p.vulnerability,
        url: p.url,
    });
    if result.status != "ok" {
        tracing::warn!(status = %http::sanitize(&result.status, 50), "Collective Insights result.status is not \"ok\"");
    }
    Ok((result.debug, processed))
}

/// Maps HTTP errors to the CI-specific variants.
fn map_http(e: http::Error, url: &Url) -> Error {
    match e.status() {
        Some(404) => Error::NoApi {
            url: url.to_string(),
            source: Box::new(e),
        },
        Some(status @ (401 | 403)) => Error::Auth {
            status,
            hint: AUTH_HINT,
            source: Box::new(e),
        },
        Some(400) => {
            let message = match &e {
                http::Error::Status { body, .. } => wire::error_message(body)
                    .map(|m| http::sanitize(&m, 500))
                    .unwrap_or_else(|| http::sanitize(body, 500)),
                _ => String::new(),
            };
            Error::Rejected {
                message,
                source: Box::new(e),
            }
        }
        Some(413) => Error::TooLarge {
            source: Box::new(e),
        },
        _ => Error::from(e),
    }
}

#[cfg(test)]
mod tests;
