//! Doctor's checks of the two APIs: reachability, TLS, authentication, latency.

use super::*;

/// Slower than this is worth a warning (a run makes thousands of requests).
pub(super) const SLOW: Duration = Duration::from_secs(5);

pub(super) fn latency(name: &str, took: Duration, detail: String) -> Check {
    let ms = took.as_millis();
    if took > SLOW {
        Check::warn(
            name,
            format!("{detail}; slow: answered in {ms} ms (consider a larger --timeout)"),
        )
    } else {
        Check::ok(name, format!("{detail}; answered in {ms} ms"))
    }
}

/// What the `Date` header says of the clocks, and whether it is worth a
/// warning (the run's own warning, [`crate::engine::plan::skew_warning`]).
pub(super) fn clock_note(skew: Option<chrono::Duration>) -> Option<(bool, String)> {
    let skew = skew?;
    if let Some(w) = crate::engine::plan::skew_warning(skew) {
        return Some((true, w));
    }
    let secs = skew.num_milliseconds() as f64 / 1000.0;
    Some((
        false,
        format!("clocks agree (LogRhythm's Date header {secs:+.0} s from this machine's)"),
    ))
}

/// A LogRhythm client for one doctor check, with the TLS settings of `lr`.
pub(super) fn lr_client(
    lr: LrSettings,
    opts: HttpOptions,
) -> Result<logrhythm::Client, logrhythm::Error> {
    let opts = HttpOptions {
        ca_cert_pem: lr.ca_pem,
        insecure: lr.insecure,
        ..opts
    };
    logrhythm::Client::new(lr.url, lr.key, opts)
}

pub(super) async fn lr_check(lr: LrSettings, opts: HttpOptions) -> Check {
    const NAME: &str = "logrhythm";
    let tls = match (lr.url.scheme(), lr.insecure) {
        ("https", false) => "TLS trusted",
        ("https", true) => "TLS NOT verified (--lr-insecure)",
        _ => "plain http",
    };
    let client = match lr_client(lr, opts) {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, code::CONFIG, chain(&e)),
    };
    let base = client.base().to_string();
    let started = Instant::now();
    match client.probe().await {
        Ok(_) => {
            let took = started.elapsed();
            let reachable =
                format!("{base} reachable, {tls}, LOGRHYTHM_API_KEY accepted (alarm list read)");
            match clock_note(client.clock_skew()) {
                Some((true, note)) => Check::warn(NAME, format!("{reachable}; {note}")),
                Some((false, note)) => latency(NAME, took, format!("{reachable}; {note}")),
                None => latency(NAME, took, reachable),
            }
        }
        Err(e) if failure::of_lr(&e) == failure::Class::Auth => {
            Check::fail(NAME, code::NO_PERM, e.to_string())
        }
        Err(e) => match e.tls_advice() {
            Some(advice) => Check::fail(NAME, code::CONFIG, advice),
            None => {
                let (code, hint) = lr_failure_class(&e);
                let what = match &e {
                    logrhythm::Error::Http(h) => describe_http(h),
                    other => chain(other),
                };
                Check::fail(NAME, code, format!("{base}: {what}; {hint}"))
            }
        },
    }
}

/// The exit code and advice for a LogRhythm probe failure other than auth or TLS.
pub(super) fn lr_failure_class(e: &logrhythm::Error) -> (u8, &'static str) {
    const WRONG_URL: &str = "check that LOGRHYTHM_API_URL is the API gateway's address and port (e.g. https://platform-manager:8501)";
    match e {
        logrhythm::Error::Http(h) => match h.as_ref() {
            crate::http::Error::Redirect { .. } => (code::CONFIG, WRONG_URL),
            crate::http::Error::Status { status: 404, .. } => (code::CONFIG, WRONG_URL),
            crate::http::Error::Connect {
                cause: crate::http::ConnectCause::NameNotFound,
                ..
            } => (
                code::CONFIG,
                "the host name in LOGRHYTHM_API_URL does not exist: check its spelling",
            ),
            _ => (
                code::UNAVAILABLE,
                "check LOGRHYTHM_API_URL, the network path to it and that the API gateway service runs",
            ),
        },
        logrhythm::Error::NoApi { .. } => (code::CONFIG, WRONG_URL),
        logrhythm::Error::Parse { .. }
        | logrhythm::Error::NotJson { .. }
        | logrhythm::Error::Shape { .. } => (
            code::CONFIG,
            "the answer is not the LogRhythm Alarm API's: check LOGRHYTHM_API_URL",
        ),
        _ => (
            code::UNAVAILABLE,
            "LogRhythm answered but could not list alarms; try again, then check the Alarm API service",
        ),
    }
}

pub(super) async fn ci_check(url: Url, key: SecretString, opts: HttpOptions) -> Check {
    const NAME: &str = "collective insights";
    let mut origin = url.clone();
    origin.set_query(None);
    origin.set_fragment(None);
    let client = match ci::Client::new(url, key, opts) {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, code::CONFIG, chain(&e)),
    };
    let started = Instant::now();
    match client.probe().await {
        Ok(()) => latency(
            NAME,
            started.elapsed(),
            format!(
                "{origin} reachable, RF_API_KEY accepted (a one-result search; nothing submitted)"
            ),
        ),
        Err(e) if failure::of_ci(&e) == failure::Class::Auth => {
            Check::fail(NAME, code::NO_PERM, e.to_string())
        }
        Err(e) => {
            let what = match &e {
                ci::Error::Http(h) => format!("{origin}: {}", describe_http(h)),
                other => chain(other),
            };
            if failure::of_ci(&e) == failure::Class::Tls {
                return Check::fail(
                    NAME,
                    code::CONFIG,
                    format!(
                        "{what}; check RF_API_URL and any proxy that intercepts TLS on the way"
                    ),
                );
            }
            let wrong_url = matches!(e.status(), Some(404 | 405 | 300..=399))
                || matches!(e, ci::Error::BadResponse { .. })
                || failure::of_ci(&e) == failure::Class::Configuration;
            if wrong_url {
                Check::fail(
                    NAME,
                    code::CONFIG,
                    format!(
                        "{what}; check that RF_API_URL is the Recorded Future API (https://api.recordedfuture.com)"
                    ),
                )
            } else {
                Check::fail(
                    NAME,
                    code::UNAVAILABLE,
                    format!(
                        "{what}; check RF_API_URL, outbound HTTPS from this machine and any proxy"
                    ),
                )
            }
        }
    }
}

/// An HTTP failure in a few words, without the request's path and query (the
/// check names the API already), ending with the root cause.
pub(super) fn describe_http(h: &crate::http::Error) -> String {
    use crate::http::Error as H;
    match h {
        H::Connect { source, .. } => format!("could not connect: {}", root_cause(source)),
        H::Timeout { .. } => "timed out (see --connect-timeout and --timeout)".to_string(),
        H::Request { source, .. } => format!("request failed: {}", root_cause(source)),
        H::Body { source, .. } => {
            format!("could not read the response body: {}", root_cause(source))
        }
        H::Tls { failure, .. } => format!("TLS handshake failed: {failure}"),
        H::Status {
            status, snippet, ..
        } => format!("HTTP {status}: {snippet}"),
        H::Redirect {
            status,
            location_host,
            ..
        } => format!("HTTP {status} redirect to {location_host} (not followed)"),
        H::RetryAfterTooLong {
            status,
            retry_after,
            ..
        } => format!(
            "HTTP {status}, asked to wait {} s before trying again",
            retry_after.as_secs()
        ),
        other => chain(other),
    }
}

/// The innermost cause of an error.
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}
