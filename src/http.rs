//! Shared HTTP plumbing for the two API clients: building a hardened reqwest
//! client, turning non-2xx answers into [`Error`], reading bodies under a size
//! cap, and the one bounded retry loop ([`execute`], or [`execute_gated`] when
//! a [`Gate`] admits each attempt, as LogRhythm's adaptive concurrency does).
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

#[cfg(test)]
impl HttpOptions {
    /// Short timeouts and millisecond backoff, so client tests against local mock
    /// servers run fast; shared by the http, logrhythm and ci tests.
    pub(crate) fn fast_for_tests(max_retries: u32) -> HttpOptions {
        HttpOptions {
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            max_retries,
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(50),
            ..HttpOptions::default()
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

/// `lrci/<crate version> (<os>; <arch>) LogRhythm`: psengine's
/// `app_id (os) … platform_id` shape, so Recorded Future can tell the
/// integration and the platform it sends for apart.
pub fn default_user_agent() -> String {
    format!(
        "lrci/{} ({}; {}) LogRhythm",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
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
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
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
    /// The connection could not be established: the host and why.
    #[error("{method} {path}: could not connect to {host}: {cause}")]
    Connect {
        method: Method,
        path: String,
        /// `host:port` of the URL.
        host: String,
        /// Why, read from the cause chain.
        cause: ConnectCause,
        #[source]
        source: reqwest::Error,
    },
    /// The TLS handshake failed: the server's certificate was not accepted, or
    /// there is no protocol both sides speak. Not transient: only a configuration
    /// change (a CA, a URL, a new certificate) fixes it.
    #[error("{method} {path}: TLS handshake failed: {failure}")]
    Tls {
        method: Method,
        path: String,
        /// What rustls objected to.
        failure: TlsFailure,
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
            Error::Connect { cause, .. } => *cause != ConnectCause::NameNotFound,
            Error::Timeout { .. }
            | Error::Request { .. }
            | Error::Body { .. }
            | Error::RetryAfterTooLong { .. }
            | Error::Deadline { .. } => true,
            Error::Status { status, .. } => is_transient_status(*status),
            Error::BadCredential { .. }
            | Error::BadCaCert { .. }
            | Error::Tls { .. }
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

impl Error {
    /// The `host:port` whose name does not exist in DNS, when that is what failed.
    pub fn unknown_host(&self) -> Option<&str> {
        match self {
            Error::Connect {
                host,
                cause: ConnectCause::NameNotFound,
                ..
            } => Some(host),
            _ => None,
        }
    }

    /// The TLS failure, when the handshake is what failed.
    pub fn tls_failure(&self) -> Option<&TlsFailure> {
        match self {
            Error::Tls { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// Why rustls refused a TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate chain does not end at a trusted root (a self-signed
    /// gateway whose CA was not given).
    UnknownIssuer,
    /// The certificate is not valid for the host name in the URL. `presented`
    /// lists the subjectAltName entries it has when rustls reports them; an
    /// empty list means a certificate without any subjectAltName (CN-only,
    /// which rustls ignores).
    NotValidForName {
        /// The names in the certificate, when known.
        presented: Option<Vec<String>>,
    },
    /// The server's certificate is a CA certificate (a self-signed one with
    /// `CA:TRUE`, what `openssl req -x509` makes) that is not the one given.
    CaAsServerCert,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotValidYet,
    /// Another certificate problem, as rustls describes it.
    Certificate(String),
    /// The handshake failed for a reason other than the certificate (no common
    /// protocol version, the server does not speak TLS, an alert), as rustls
    /// describes it.
    Handshake(String),
}

impl TlsFailure {
    /// Classifies a rustls error.
    pub fn from_rustls(e: &rustls::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer => TlsFailure::UnknownIssuer,
                C::NotValidForName => TlsFailure::NotValidForName { presented: None },
                C::NotValidForNameContext { presented, .. } => TlsFailure::NotValidForName {
                    presented: Some(presented.iter().map(|n| bare_name(n)).collect()),
                },
                C::Expired | C::ExpiredContext { .. } => TlsFailure::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => TlsFailure::NotValidYet,
                C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                    TlsFailure::CaAsServerCert
                }
                other => TlsFailure::Certificate(sanitize(&other.to_string(), 150)),
            },
            other => TlsFailure::Handshake(sanitize(&other.to_string(), 150)),
        }
    }

    /// Walks an error's source chain (looking inside `io::Error`s, where
    /// tokio-rustls puts it) for a `rustls::Error`.
    pub fn find(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(t) = e.downcast_ref::<rustls::Error>() {
                return Some(TlsFailure::from_rustls(t));
            }
            cur = match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => e.source(),
            };
        }
        None
    }

    /// True when the certificate (not the protocol) is what was refused.
    pub fn is_certificate(&self) -> bool {
        !matches!(self, TlsFailure::Handshake(_))
    }

    /// True for a certificate that carries no subjectAltName at all: the host
    /// name is only in the CN, which rustls (like browsers) ignores.
    pub fn lacks_san(&self) -> bool {
        matches!(self, TlsFailure::NotValidForName { presented: Some(p) } if p.is_empty())
    }
}

/// `DnsName("a.example")` / `IpAddress(10.0.0.1)` (webpki's rendering of a
/// subjectAltName entry) → `a.example` / `10.0.0.1`, sanitized.
fn bare_name(name: &str) -> String {
    let inner = name
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(name);
    sanitize(inner.trim_matches('"'), 100)
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownIssuer => f.write_str("UnknownIssuer"),
            TlsFailure::CaAsServerCert => f.write_str("CaUsedAsEndEntity"),
            TlsFailure::NotValidForName { presented: None } => f.write_str("NotValidForName"),
            TlsFailure::NotValidForName { presented: Some(p) } if p.is_empty() => {
                f.write_str("NotValidForName, no subjectAltName")
            }
            TlsFailure::NotValidForName { presented: Some(p) } => {
                write!(f, "NotValidForName, valid for {}", p.join(", "))
            }
            TlsFailure::Expired => f.write_str("Expired"),
            TlsFailure::NotValidYet => f.write_str("NotValidYet"),
            TlsFailure::Certificate(s) | TlsFailure::Handshake(s) => f.write_str(s),
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
    let base = || {
        let builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .user_agent(opts.user_agent.clone())
            .default_headers(default_headers.clone())
            .tls_version_min(reqwest::tls::Version::TLS_1_2);
        if opts.insecure {
            builder.tls_danger_accept_invalid_certs(true)
        } else {
            builder
        }
    };
    let Some(pem) = &opts.ca_cert_pem else {
        return base().build().map_err(Error::Build);
    };
    if opts.insecure {
        return base().build().map_err(Error::Build);
    }
    let certs = parse_ca_bundle(pem)?;
    let tls = pinned::client_config(&certs).map_err(|e| Error::BadCaCert {
        reason: "the certificate bundle cannot be used to verify servers",
        source: Some(Box::new(e)),
    })?;
    base()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(Error::Build)
}

/// Trust for `--lr-ca-cert`: the platform's roots plus the bundle, as reqwest
/// does by default; and one more case that matters on appliances: a server
/// whose own certificate *is* a certificate of the bundle, self-signed with the
/// CA flag set (what `openssl req -x509` makes). webpki refuses a CA
/// certificate as the server's (`CaUsedAsEndEntity`); a user who hands lrci that
/// exact certificate has pinned it, so it is accepted when it is byte for byte
/// the one given, is valid now and names the host. Nothing else is relaxed.
mod pinned {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
    use std::sync::Arc;

    /// The rustls configuration: TLS 1.2 and 1.3, HTTP/2 and 1.1 by ALPN.
    pub fn client_config(bundle: &[Vec<u8>]) -> Result<rustls::ClientConfig, rustls::Error> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let pinned: Vec<CertificateDer<'static>> = bundle
            .iter()
            .map(|d| CertificateDer::from(d.clone()))
            .collect();
        let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(
            pinned.clone(),
            provider.clone(),
        )?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { inner, pinned }))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    #[derive(Debug)]
    struct Verifier {
        inner: rustls_platform_verifier::Verifier,
        pinned: Vec<CertificateDer<'static>>,
    }

    /// Whether the chain failed only because the server's certificate is a CA
    /// certificate (or, on platforms that say so instead, has no known issuer).
    pub(super) fn is_ca_as_server_cert(e: &rustls::Error) -> bool {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => true,
            rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
                format!("{o:?}").contains("CaUsedAsEndEntity")
            }
            _ => false,
        }
    }

    /// The checks the chain verification would have made of a pinned certificate:
    /// validity period and host name.
    pub(super) fn check_pinned(
        der: &CertificateDer<'_>,
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let bad = |e: CertificateError| rustls::Error::InvalidCertificate(e);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let validity = cert.validity();
        if now < validity.not_before.timestamp() {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now > validity.not_after.timestamp() {
            return Err(bad(CertificateError::Expired));
        }
        let ee =
            webpki::EndEntityCert::try_from(der).map_err(|_| bad(CertificateError::BadEncoding))?;
        ee.verify_is_valid_for_subject_name(name)
            .map_err(|_| bad(CertificateError::NotValidForName))
    }

    impl ServerCertVerifier for Verifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(e)
                    if is_ca_as_server_cert(&e)
                        && self
                            .pinned
                            .iter()
                            .any(|p| p.as_ref() == end_entity.as_ref()) =>
                {
                    check_pinned(end_entity, server_name, now)?;
                    tracing::debug!("LogRhythm's certificate is the one --lr-ca-cert gives (a self-signed CA certificate): accepted");
                    Ok(ServerCertVerified::assertion())
                }
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    }
}

/// Parses a PEM CA bundle and checks that every certificate in it can serve as
/// a trust anchor. Refuses a bundle that is empty, is not PEM, holds only keys
/// or other sections, or holds a certificate that does not decode.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    use rustls::pki_types::pem::{PemObject, SectionKind};
    use rustls::pki_types::CertificateDer;
    let mut certs = Vec::new();
    let mut keys = 0usize;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| Error::BadCaCert {
            reason: "not a valid PEM file",
            source: Some(Box::new(e)),
        })?;
        match kind {
            SectionKind::Certificate => certs.push(der),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                keys += 1;
            }
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(Error::BadCaCert {
            reason: if keys > 0 {
                "it holds a private key but no certificate"
            } else {
                "no PEM certificate found"
            },
            source: None,
        });
    }
    let mut store = rustls::RootCertStore::empty();
    for der in &certs {
        store
            .add(CertificateDer::from(der.as_slice()))
            .map_err(|e| Error::BadCaCert {
                reason: "a certificate in the bundle cannot be decoded",
                source: Some(Box::new(e)),
            })?;
    }
    Ok(certs)
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
    /// The server's clock minus this machine's when the answer arrived, from
    /// its `Date` header (whole seconds: up to a second low). `None` without one.
    pub clock_skew: Option<chrono::Duration>,
}

/// The server's clock minus this machine's, from a `Date` header.
pub fn clock_skew(headers: &HeaderMap, local: SystemTime) -> Option<chrono::Duration> {
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())?;
    let ms = |t: SystemTime| -> Option<i64> {
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(d.as_millis()).ok()
    };
    Some(chrono::Duration::milliseconds(ms(date)? - ms(local)?))
}

/// Path and query of a URL, for error messages.
fn display_path(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_string(),
    }
}

/// Keeps printable characters only, at most `max` of them: line breaks and
/// tabs become spaces, every other unsafe character ([`crate::text::is_unsafe`])
/// is dropped (server text ends up in logs and terminals).
pub fn sanitize(text: &str, max: usize) -> String {
    crate::text::flatten(text, max)
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

/// The server's clock as its `Date` header gives it, else this machine's: an
/// HTTP-date `Retry-After` is a time on the server's clock, and the two may
/// differ by minutes.
fn server_now(headers: &HeaderMap) -> SystemTime {
    headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or_else(crate::clock::system_now)
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
        .and_then(|v| parse_retry_after(v, server_now(resp.headers())));
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
/// Why a connection could not be made, read from an error's cause chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectCause {
    /// The name does not exist in DNS: a typo in the URL, not an outage.
    NameNotFound,
    /// The resolver did not answer (temporary failure in name resolution).
    NameLookupFailed,
    /// Nothing listens on that port (connection refused).
    Refused,
    /// No route to the host or network.
    Unreachable,
    /// The connection was reset or aborted while it was being made.
    Reset,
    /// Anything else, as the innermost cause says it.
    Other(String),
}

impl std::fmt::Display for ConnectCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectCause::NameNotFound => {
                f.write_str("the host name does not exist in DNS (check the spelling in the URL)")
            }
            ConnectCause::NameLookupFailed => {
                f.write_str("the host name could not be resolved (DNS did not answer)")
            }
            ConnectCause::Refused => {
                f.write_str("connection refused (nothing listens on that port)")
            }
            ConnectCause::Unreachable => f.write_str("no route to the host or network"),
            ConnectCause::Reset => f.write_str("the connection was reset"),
            ConnectCause::Other(text) => f.write_str(text),
        }
    }
}

impl ConnectCause {
    /// Walks the cause chain: an `io::Error` kind decides when there is one,
    /// otherwise the resolver's message (glibc, musl, macOS and Windows wordings).
    pub fn find(err: &(dyn std::error::Error + 'static)) -> ConnectCause {
        let mut innermost = err.to_string();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as K;
                match io.kind() {
                    K::ConnectionRefused => return ConnectCause::Refused,
                    K::ConnectionReset | K::ConnectionAborted => return ConnectCause::Reset,
                    K::HostUnreachable | K::NetworkUnreachable => return ConnectCause::Unreachable,
                    _ => {}
                }
                if let Some(found) = Self::from_text(&io.to_string()) {
                    return found;
                }
            }
            let text = c.to_string();
            if let Some(found) = Self::from_text(&text) {
                return found;
            }
            innermost = text;
            cause = c.source();
        }
        ConnectCause::Other(innermost)
    }

    /// The resolver's and the OS's wordings.
    fn from_text(text: &str) -> Option<ConnectCause> {
        let t = text.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
        if has(&[
            "name or service not known",
            "no such host is known",
            "nodename nor servname provided",
            "no address associated with hostname",
            "name does not resolve",
            "host not found",
            "no address associated with name",
        ]) {
            Some(ConnectCause::NameNotFound)
        } else if has(&[
            "temporary failure in name resolution",
            "this is usually a temporary error during hostname resolution",
            "try again",
        ]) {
            Some(ConnectCause::NameLookupFailed)
        } else if has(&["connection refused", "actively refused"]) {
            Some(ConnectCause::Refused)
        } else if has(&[
            "no route to host",
            "network is unreachable",
            "host is unreachable",
        ]) {
            Some(ConnectCause::Unreachable)
        } else if has(&["connection reset", "forcibly closed"]) {
            Some(ConnectCause::Reset)
        } else {
            None
        }
    }
}

/// `host:port` of a URL (the scheme's default port when none is written).
fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("the server");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn send_error(source: reqwest::Error, method: &Method, path: String) -> Error {
    let method = method.clone();
    if let Some(failure) = TlsFailure::find(&source) {
        Error::Tls {
            method,
            path,
            failure,
            source,
        }
    } else if source.is_timeout() {
        Error::Timeout {
            method,
            path,
            source,
        }
    } else if source.is_connect() {
        Error::Connect {
            method,
            path,
            host: source
                .url()
                .map_or_else(|| "the server".to_owned(), host_port),
            cause: ConnectCause::find(&source),
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
    execute_gated(client, opts, build, &Open).await
}

/// How one attempt of [`execute_gated`] ended, as a [`Gate`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer, read whole.
    Answered,
    /// The server is overloaded or failing: 429, 5xx, or no answer in time.
    Overloaded,
    /// Anything else (another 4xx, a refused connection, a body too large):
    /// it says nothing of the server's load.
    Other,
}

impl Attempt {
    fn of(result: &Result<Response>) -> Attempt {
        match result {
            Ok(_) => Attempt::Answered,
            Err(Error::Timeout { .. }) => Attempt::Overloaded,
            Err(Error::Status { status, .. }) if is_transient_status(*status) => {
                Attempt::Overloaded
            }
            Err(_) => Attempt::Other,
        }
    }
}

/// Admits each attempt of [`execute_gated`] (never a backoff sleep) and is
/// told how it ended: the hook of LogRhythm's concurrency limiter.
pub trait Gate: Sync {
    /// Held while one attempt runs; dropping it unused (the request abandoned)
    /// must free its place.
    type Pass: Send;
    /// Waits until an attempt may start.
    fn enter(&self) -> impl std::future::Future<Output = Self::Pass> + Send;
    /// The attempt that `pass` admitted ended so.
    fn leave(&self, pass: Self::Pass, attempt: Attempt);
}

/// The gate that admits everything at once.
struct Open;

impl Gate for Open {
    type Pass = ();
    async fn enter(&self) {}
    fn leave(&self, (): (), _: Attempt) {}
}

/// [`execute`], with every attempt admitted by `gate` and reported to it.
pub async fn execute_gated<F, G>(
    client: &reqwest::Client,
    opts: &HttpOptions,
    build: F,
    gate: &G,
) -> Result<Response>
where
    F: Fn() -> reqwest::RequestBuilder,
    G: Gate,
{
    let mut retries_done = 0u32;
    loop {
        // Admitted first, so the time waiting at the gate counts against the
        // deadline; a pass dropped on an early return frees its place.
        let pass = gate.enter().await;
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
                    let clock_skew = clock_skew(resp.headers(), crate::clock::system_now());
                    read_body(resp, &method, opts.max_body_bytes)
                        .await
                        .map(|body| Response {
                            status,
                            body,
                            attempts: retries_done + 1,
                            clock_skew,
                        })
                }
                Err(e) => Err(e),
            },
            Err(source) => Err(send_error(source, &method, path.clone())),
        };
        gate.leave(pass, Attempt::of(&result));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant as StdInstant;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn fast() -> HttpOptions {
        HttpOptions::fast_for_tests(4)
    }

    async fn get(opts: &HttpOptions, url: String) -> Result<Response> {
        let client = build_client(opts, HeaderMap::new()).unwrap();
        execute(&client, opts, || client.get(&url)).await
    }

    #[test]
    fn defaults_match_the_brief() {
        let o = HttpOptions::default();
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert_eq!(o.max_retries, 4);
        assert_eq!(o.backoff_base, Duration::from_millis(500));
        assert_eq!(o.backoff_cap, Duration::from_secs(30));
        assert_eq!(o.retry_after_cap, Duration::from_secs(120));
        assert_eq!(o.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(
            o.user_agent,
            format!(
                "lrci/{} ({}; {}) LogRhythm",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH
            )
        );
    }

    #[test]
    fn credentials_with_unsafe_bytes_are_refused_by_name() {
        for bad in [
            "",
            "abc\r\nX-Evil: 1",
            "abc\n",
            "a\0b",
            "has space",
            "caf\u{e9}",
            "tab\there",
        ] {
            let err =
                auth_header("RF_API_KEY", "", &SecretString::from(bad.to_string())).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(text.contains("RF_API_KEY"), "{text}");
            if !bad.is_empty() {
                assert!(!text.contains(bad), "value leaked: {text}");
            }
        }
        let ok = auth_header(
            "K",
            "Bearer ",
            &SecretString::from("s3cr3t-T0ken".to_string()),
        )
        .unwrap();
        assert!(ok.is_sensitive());
        assert!(!format!("{ok:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_ca_bundles_are_config_errors() {
        for pem in [
            &b""[..],
            b"not a certificate",
            b"-----BEGIN CERTIFICATE-----\nZZZ\n-----END CERTIFICATE-----\n",
        ] {
            let opts = HttpOptions {
                ca_cert_pem: Some(pem.to_vec()),
                ..HttpOptions::default()
            };
            let err = build_client(&opts, HeaderMap::new()).unwrap_err();
            assert!(matches!(err, Error::BadCaCert { .. }), "{err:?}");
        }
    }

    #[test]
    fn a_real_ca_bundle_is_accepted_when_the_system_has_one() {
        let Ok(pem) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") else {
            return;
        };
        let opts = HttpOptions {
            ca_cert_pem: Some(pem),
            ..HttpOptions::default()
        };
        build_client(&opts, HeaderMap::new()).unwrap();
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    fn status_err(status: u16, retry_after: Option<Duration>) -> Error {
        Error::Status {
            method: Method::GET,
            path: "/x".into(),
            status,
            snippet: String::new(),
            body: String::new(),
            retry_after,
        }
    }

    #[test]
    fn retry_decision_table() {
        let opts = fast();
        let now = Instant::now();
        let b = Duration::from_millis(20);
        for status in [400, 401, 403, 404, 413, 422] {
            assert_eq!(
                decide_retry(&status_err(status, None), 0, &opts, now, b),
                RetryDecision::GiveUp,
                "{status}"
            );
        }
        for status in [429, 500, 502, 503, 504] {
            assert_eq!(
                decide_retry(&status_err(status, None), 0, &opts, now, b),
                RetryDecision::Sleep(b),
                "{status}"
            );
        }
        // Retry-After wins over backoff; above the cap means give up now.
        let ra = Some(Duration::from_secs(2));
        assert_eq!(
            decide_retry(&status_err(429, ra), 0, &opts, now, b),
            RetryDecision::Sleep(Duration::from_secs(2))
        );
        let huge = Some(Duration::from_secs(121));
        assert_eq!(
            decide_retry(&status_err(429, huge), 0, &opts, now, b),
            RetryDecision::RetryAfterTooLong(Duration::from_secs(121))
        );
        // Retry budget.
        assert_eq!(
            decide_retry(&status_err(503, None), 4, &opts, now, b),
            RetryDecision::GiveUp
        );
        // Deadline: a sleep that would reach it is not taken.
        let tight = HttpOptions {
            deadline: Some(now + Duration::from_millis(15)),
            ..fast()
        };
        assert_eq!(
            decide_retry(&status_err(503, None), 0, &tight, now, b),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let opts = HttpOptions {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(1000),
            ..HttpOptions::default()
        };
        for _ in 0..50 {
            let d0 = backoff_delay(&opts, 0);
            assert!(
                d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100),
                "{d0:?}"
            );
            let d3 = backoff_delay(&opts, 3);
            assert!(
                d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800),
                "{d3:?}"
            );
            let d40 = backoff_delay(&opts, 40);
            assert!(
                d40 >= Duration::from_millis(500) && d40 <= Duration::from_millis(1000),
                "{d40:?}"
            );
        }
    }

    #[tokio::test]
    async fn retries_503_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
            .expect(1)
            .mount(&server)
            .await;
        let resp = get(&fast(), format!("{}/a", server.uri())).await.unwrap();
        assert_eq!(resp.body, b"fine");
        assert_eq!(resp.attempts, 3);
    }

    #[tokio::test]
    async fn gives_up_after_max_retries_with_the_last_error() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(502).set_body_string("<html>\u{1b}[2Jbad gateway</html>"),
            )
            .expect(5)
            .mount(&server)
            .await;
        let err = get(&fast(), format!("{}/a?x=1", server.uri()))
            .await
            .unwrap_err();
        assert!(err.is_transient());
        match &err {
            Error::Status {
                status,
                snippet,
                path,
                ..
            } => {
                assert_eq!(*status, 502);
                assert_eq!(path, "/a?x=1");
                assert!(!snippet.contains('\u{1b}'), "{snippet:?}");
                assert!(snippet.contains("bad gateway"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn snippet_is_at_most_200_chars() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_string("x".repeat(5000)))
            .mount(&server)
            .await;
        let err = get(&fast(), server.uri()).await.unwrap_err();
        let Error::Status { snippet, body, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(snippet.chars().count(), 200);
        assert_eq!(body.chars().count(), 4096);
    }

    #[tokio::test]
    async fn never_retries_permanent_statuses() {
        for status in [400u16, 401, 403, 404, 413, 422] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(status))
                .expect(1)
                .mount(&server)
                .await;
            let err = get(&fast(), server.uri()).await.unwrap_err();
            assert_eq!(err.status(), Some(status));
            assert!(!err.is_transient(), "{status}");
        }
    }

    /// Serves `first` once, then 200; the time until the second attempt
    /// succeeded (which it must, as the second of two).
    async fn wait_after(first: ResponseTemplate) -> Duration {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(first)
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let start = StdInstant::now();
        let resp = get(&fast(), server.uri()).await.unwrap();
        assert_eq!(resp.attempts, 2);
        start.elapsed()
    }

    #[tokio::test]
    async fn retry_after_seconds_is_honoured() {
        let gap = wait_after(ResponseTemplate::new(429).insert_header("Retry-After", "1")).await;
        assert!(gap >= Duration::from_millis(1000), "{gap:?}");
        assert!(gap < Duration::from_millis(2500), "{gap:?}");
    }

    #[tokio::test]
    async fn retry_after_http_date_is_honoured() {
        let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
        let gap =
            wait_after(ResponseTemplate::new(503).insert_header("Retry-After", when.as_str()))
                .await;
        // HTTP-dates have whole-second resolution: the wait is 1–2 s.
        assert!(gap >= Duration::from_millis(900), "{gap:?}");
        assert!(gap < Duration::from_millis(3000), "{gap:?}");
    }

    /// Issue 9 item 7: the date is read against the server's clock (`Date`),
    /// not this machine's: a server 10 minutes ahead asking for 2 s gets 2 s.
    #[tokio::test]
    async fn retry_after_http_date_is_read_against_the_servers_clock() {
        let ahead = SystemTime::now() + Duration::from_secs(600);
        let gap = wait_after(
            ResponseTemplate::new(503)
                .insert_header("Date", httpdate::fmt_http_date(ahead).as_str())
                .insert_header(
                    "Retry-After",
                    httpdate::fmt_http_date(ahead + Duration::from_secs(2)).as_str(),
                ),
        )
        .await;
        assert!(gap >= Duration::from_millis(900), "{gap:?}");
        assert!(gap < Duration::from_millis(3500), "{gap:?}");
    }

    #[tokio::test]
    async fn retry_after_over_the_cap_gives_up_at_once() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
            .expect(1)
            .mount(&server)
            .await;
        let start = StdInstant::now();
        let err = get(&fast(), server.uri()).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(err.is_transient());
        assert!(
            matches!(err, Error::RetryAfterTooLong { status: 429, retry_after, .. } if retry_after == Duration::from_secs(3600)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn deadline_stops_retries_and_bounds_slow_attempts() {
        // Backoff longer than the time left: one attempt, then the last error.
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .expect(1)
            .mount(&server)
            .await;
        let opts = HttpOptions {
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(2),
            deadline: Some(Instant::now() + Duration::from_millis(700)),
            ..fast()
        };
        let start = StdInstant::now();
        let err = get(&opts, server.uri()).await.unwrap_err();
        assert_eq!(err.status(), Some(503));
        assert!(
            start.elapsed() < Duration::from_millis(700),
            "{:?}",
            start.elapsed()
        );

        // A server slower than the time left: the attempt is cut at the deadline.
        let slow = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&slow)
            .await;
        let opts = HttpOptions {
            timeout: Duration::from_secs(10),
            deadline: Some(Instant::now() + Duration::from_millis(500)),
            ..fast()
        };
        let start = StdInstant::now();
        let err = get(&opts, slow.uri()).await.unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(err.is_transient(), "{err:?}");

        // Deadline already passed: no request at all.
        let none = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&none)
            .await;
        let opts = HttpOptions {
            deadline: Some(Instant::now()),
            ..fast()
        };
        let err = get(&opts, none.uri()).await.unwrap_err();
        assert!(matches!(err, Error::Deadline { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn timeouts_are_transient_and_retried() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
            .expect(2)
            .mount(&server)
            .await;
        let opts = HttpOptions {
            timeout: Duration::from_millis(200),
            max_retries: 1,
            ..fast()
        };
        let err = get(&opts, server.uri()).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(err.is_transient());
    }

    #[test]
    fn connect_causes_are_read_from_the_chain() {
        use std::io::{Error as Io, ErrorKind as K};
        let cases: &[(Io, ConnectCause)] = &[
            (Io::new(K::ConnectionRefused, "x"), ConnectCause::Refused),
            (Io::new(K::ConnectionReset, "x"), ConnectCause::Reset),
            (Io::new(K::HostUnreachable, "x"), ConnectCause::Unreachable),
            (
                Io::other("failed to lookup address information: Name or service not known"),
                ConnectCause::NameNotFound,
            ),
            (Io::other("No such host is known. (os error 11001)"), ConnectCause::NameNotFound),
            (
                Io::other("failed to lookup address information: nodename nor servname provided, or not known"),
                ConnectCause::NameNotFound,
            ),
            (
                Io::other("failed to lookup address information: Temporary failure in name resolution"),
                ConnectCause::NameLookupFailed,
            ),
            (Io::other("something odd"), ConnectCause::Other("something odd".into())),
        ];
        for (io, want) in cases {
            let text = io.to_string();
            let wrapped = Io::new(io.kind(), text.clone());
            assert_eq!(&ConnectCause::find(&wrapped), want, "{text}");
        }
    }

    #[test]
    fn host_port_names_the_default_port() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(host_port(&u("https://pm.corp:8501/x")), "pm.corp:8501");
        assert_eq!(host_port(&u("https://api.example/")), "api.example:443");
        assert_eq!(host_port(&u("http://[::1]/")), "[::1]:80");
    }

    #[tokio::test]
    async fn connection_refused_is_a_transient_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let opts = HttpOptions {
            max_retries: 1,
            ..fast()
        };
        let err = get(&opts, format!("http://{addr}/")).await.unwrap_err();
        assert!(
            matches!(&err, Error::Connect { cause: ConnectCause::Refused, host, .. } if *host == addr.to_string()),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("could not connect to {addr}: connection refused")),
            "{err}"
        );
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn body_over_the_cap_is_refused() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; 2000]))
            .expect(2)
            .mount(&server)
            .await;
        let opts = HttpOptions {
            max_body_bytes: 1000,
            ..fast()
        };
        let err = get(&opts, server.uri()).await.unwrap_err();
        assert!(
            matches!(err, Error::BodyTooLarge { limit: 1000, .. }),
            "{err:?}"
        );
        assert!(!err.is_transient());
        let opts = HttpOptions {
            max_body_bytes: 2000,
            ..fast()
        };
        assert_eq!(get(&opts, server.uri()).await.unwrap().body.len(), 2000);
    }

    #[tokio::test]
    async fn redirects_are_never_followed() {
        let target = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&target)
            .await;
        let origin = MockServer::start().await;
        for status in [301u16, 302, 307, 308] {
            origin.reset().await;
            Mock::given(method("GET"))
                .and(path("/a"))
                .respond_with(ResponseTemplate::new(status).insert_header(
                    "Location",
                    format!("http://localhost:{}/b", target.address().port()).as_str(),
                ))
                .expect(1)
                .mount(&origin)
                .await;
            let err = get(&fast(), format!("{}/a", origin.uri()))
                .await
                .unwrap_err();
            match &err {
                Error::Redirect {
                    status: s,
                    location_host,
                    ..
                } => {
                    assert_eq!(*s, status);
                    assert_eq!(location_host, "localhost");
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(err.to_string().contains("localhost"), "{err}");
            assert!(!err.is_transient());
        }
        assert_eq!(target.received_requests().await.unwrap().len(), 0);
    }

    /// A chunked body (no Content-Length) that keeps coming: the read stops at
    /// the cap instead of buffering everything.
    #[tokio::test]
    async fn chunked_body_over_the_cap_is_cut_off_while_streaming() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await.unwrap();
            sock.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let chunk = format!("{:x}\r\n{}\r\n", 1024, "a".repeat(1024));
            let mut sent = 0usize;
            // Up to 100 MiB, stopping as soon as the client hangs up.
            while sent < 100 * 1024 * 1024 {
                if sock.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 1024;
            }
            sent
        });
        let opts = HttpOptions {
            max_body_bytes: 64 * 1024,
            ..fast()
        };
        let err = get(&opts, format!("http://{addr}/")).await.unwrap_err();
        assert!(matches!(err, Error::BodyTooLarge { .. }), "{err:?}");
        let sent = server.await.unwrap();
        assert!(sent < 50 * 1024 * 1024, "server pushed {sent} bytes");
    }

    #[test]
    fn sanitize_table() {
        let cases = [
            ("plain", 200, "plain"),
            ("a\r\nb\tc", 200, "a  b c"),
            ("\u{1b}[2J\u{1b}]0;pwned\u{7}x", 200, "[2J]0;pwnedx"),
            ("nul\0byte", 200, "nulbyte"),
            ("bidi\u{202e}txt\u{2066}", 200, "biditxt"),
            ("line\u{2028}sep\u{85}nel", 200, "line sep nel"),
            ("abcdef", 3, "abc"),
        ];
        for (input, max, want) in cases {
            assert_eq!(sanitize(input, max), want, "{input:?}");
        }
    }

    /// A server that answers the ClientHello with a TLS 1.0 ServerHello: the
    /// client refuses (rustls speaks only 1.2 and 1.3, and the builder sets 1.2
    /// as the minimum), even with `insecure`, and the failure is a
    /// non-transient [`Error::Tls`], so it is not retried.
    #[tokio::test]
    async fn tls_below_1_2_is_refused_and_not_retried() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for insecure in [false, true] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let mut accepted = 0u32;
                while let Ok(Ok((mut sock, _))) =
                    tokio::time::timeout(Duration::from_millis(500), listener.accept()).await
                {
                    accepted += 1;
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    // ServerHello: version 3.1 (TLS 1.0), zero random, no session
                    // id, TLS_RSA_WITH_AES_128_CBC_SHA, no compression.
                    let mut body = vec![0x03, 0x01];
                    body.extend_from_slice(&[0u8; 32]);
                    body.extend_from_slice(&[0x00, 0x00, 0x2f, 0x00]);
                    let mut hs = vec![0x02, 0x00, 0x00, body.len() as u8];
                    hs.extend_from_slice(&body);
                    let mut rec = vec![0x16, 0x03, 0x01, 0x00, hs.len() as u8];
                    rec.extend_from_slice(&hs);
                    let _ = sock.write_all(&rec).await;
                    let _ = sock.read(&mut buf).await;
                }
                accepted
            });
            let opts = HttpOptions { insecure, ..fast() };
            let err = get(&opts, format!("https://{addr}/")).await.unwrap_err();
            let Error::Tls { failure, .. } = &err else {
                panic!("insecure={insecure}: {err:?}")
            };
            assert!(matches!(failure, TlsFailure::Handshake(_)), "{failure:?}");
            assert!(!failure.is_certificate());
            assert!(!err.is_transient());
            assert_eq!(server.await.unwrap(), 1, "retried a TLS failure");
        }
    }

    #[test]
    fn tls_failures_are_classified_from_the_rustls_error() {
        use rustls::CertificateError as C;
        let io = |c: C| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(c),
            )
        };
        assert_eq!(
            TlsFailure::find(&io(C::UnknownIssuer)),
            Some(TlsFailure::UnknownIssuer)
        );
        let no_san = TlsFailure::find(&io(C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("10.0.0.1")
                .unwrap()
                .to_owned(),
            presented: vec![],
        }))
        .unwrap();
        assert!(no_san.lacks_san(), "{no_san:?}");
        let other = TlsFailure::find(&io(C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("a.example")
                .unwrap()
                .to_owned(),
            presented: vec!["DnsName(\"b.example\")".into()],
        }))
        .unwrap();
        assert!(!other.lacks_san());
        assert_eq!(other.to_string(), "NotValidForName, valid for b.example");
        assert_eq!(TlsFailure::find(&io(C::Expired)), Some(TlsFailure::Expired));
        // Not a TLS error at all.
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(TlsFailure::find(&plain), None);
    }

    #[test]
    fn options_debug_hides_ca_bytes() {
        let opts = HttpOptions {
            ca_cert_pem: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            ..HttpOptions::default()
        };
        let dbg = format!("{opts:?}");
        assert!(dbg.contains("<27 bytes>"), "{dbg}");
        assert!(!dbg.contains("BEGIN"), "{dbg}");
    }
}
