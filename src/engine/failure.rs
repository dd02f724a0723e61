//! One classification of every failure the engine meets (LogRhythm, Collective
//! Insights, HTTP): transient, permanent, auth, TLS or configuration. The class
//! alone decides what happens next: transient and permanent failures are counted
//! and the run goes on, auth ends the run with 77, TLS and configuration with 78.
//! Also used by `doctor`. No I/O here beyond one log line for a TLS cause chain.

use crate::error::{code, one_line as chain, Fatal};
use crate::{ci, http, logrhythm};

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Connect, timeout, 429, 5xx, a broken answer: may work on a later attempt.
    Transient,
    /// A definite answer that retrying will not change (404, 400, bad shape).
    Permanent,
    /// Credentials rejected (401/403): exit 77.
    Auth,
    /// The TLS handshake failed: a configuration problem, exit 78.
    Tls,
    /// The client cannot be used as configured (URL, credential format, CA): exit 78.
    Configuration,
}

impl Class {
    /// Whether the run must stop (and with which exit code).
    pub fn fatal_code(self) -> Option<u8> {
        match self {
            Class::Transient | Class::Permanent => None,
            Class::Auth => Some(code::NO_PERM),
            Class::Tls | Class::Configuration => Some(code::CONFIG),
        }
    }
}

/// The facts an error exposes, in the order they decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Facts {
    tls: bool,
    auth: bool,
    config: bool,
    transient: bool,
}

/// The one ladder: TLS before auth before configuration before transient.
fn classify(f: Facts) -> Class {
    if f.tls {
        Class::Tls
    } else if f.auth {
        Class::Auth
    } else if f.config {
        Class::Configuration
    } else if f.transient {
        Class::Transient
    } else {
        Class::Permanent
    }
}

fn http_config(e: &http::Error) -> bool {
    matches!(
        e,
        http::Error::BadCredential { .. }
            | http::Error::BadCaCert { .. }
            | http::Error::Build(_)
            | http::Error::BadUrl { .. }
            | http::Error::Connect {
                cause: http::ConnectCause::NameNotFound,
                ..
            }
    )
}

/// The class of a bare HTTP error.
pub fn of_http(e: &http::Error) -> Class {
    classify(Facts {
        tls: e.tls_failure().is_some(),
        auth: matches!(e.status(), Some(401 | 403)),
        config: http_config(e),
        transient: e.is_transient(),
    })
}

/// The class of a LogRhythm client error.
pub fn of_lr(e: &logrhythm::Error) -> Class {
    let config = match e {
        logrhythm::Error::Http(h) => http_config(h),
        logrhythm::Error::NoApi { .. } => true,
        _ => false,
    };
    classify(Facts {
        tls: e.tls_failure().is_some(),
        auth: e.is_auth(),
        config,
        transient: e.is_transient(),
    })
}

/// The class of a Collective Insights client error.
pub fn of_ci(e: &ci::Error) -> Class {
    let config = match e {
        ci::Error::Http(h) => http_config(h),
        ci::Error::Config { .. } | ci::Error::NoApi { .. } => true,
        _ => false,
    };
    classify(Facts {
        tls: e.tls_failure().is_some(),
        auth: e.is_auth(),
        config,
        transient: e.is_transient(),
    })
}

/// A LogRhythm error the run can live with: its class is transient or permanent.
#[derive(Debug)]
pub struct Soft<E> {
    pub transient: bool,
    pub error: E,
}

/// Ends the run for an auth, TLS or configuration failure talking to LogRhythm;
/// anything else comes back to be counted.
pub fn lr(e: logrhythm::Error) -> Result<Soft<logrhythm::Error>, Fatal> {
    match of_lr(&e) {
        Class::Transient => Ok(Soft {
            transient: true,
            error: e,
        }),
        Class::Permanent => Ok(Soft {
            transient: false,
            error: e,
        }),
        Class::Auth => Err(Fatal::new(
            code::NO_PERM,
            anyhow::Error::new(e).context(
                "LogRhythm rejected the API key: check LOGRHYTHM_API_KEY and the third-party application's permissions",
            ),
        )),
        Class::Tls => {
            // The full cause chain goes to the log; the error is one line of advice.
            tracing::error!(error = %chain(&e), "TLS handshake with LogRhythm failed");
            Err(Fatal::msg(
                code::CONFIG,
                e.tls_advice().unwrap_or_else(|| e.to_string()),
            ))
        }
        Class::Configuration => Err(match &e {
            logrhythm::Error::NoApi { .. } => Fatal::msg(code::CONFIG, &e),
            logrhythm::Error::Http(h) if h.unknown_host().is_some() => {
                Fatal::msg(code::CONFIG, unknown_host("LOGRHYTHM_API_URL", h))
            }
            _ => Fatal::new(
                code::CONFIG,
                anyhow::Error::new(e).context("the LogRhythm client is misconfigured"),
            ),
        }),
    }
}

/// Ends the run for an auth, TLS or configuration failure talking to Collective
/// Insights (what was not sent stays pending for the next run); anything else
/// comes back to be counted.
pub fn ci(e: ci::Error) -> Result<Soft<ci::Error>, Fatal> {
    match of_ci(&e) {
        Class::Transient => Ok(Soft {
            transient: true,
            error: e,
        }),
        Class::Permanent => Ok(Soft {
            transient: false,
            error: e,
        }),
        Class::Auth => Err(Fatal::new(
            code::NO_PERM,
            anyhow::Error::new(e).context(
                "Recorded Future rejected the token: check RF_API_KEY and that the token has the Collective Insights permission",
            ),
        )),
        Class::Tls => {
            tracing::error!(error = %e, "TLS handshake with Recorded Future failed");
            let failure = e
                .tls_failure()
                .map_or_else(|| e.to_string(), ToString::to_string);
            Err(Fatal::msg(
                code::CONFIG,
                format!("Recorded Future's TLS certificate is not accepted ({failure}): RF_API_URL must present a publicly trusted certificate (--lr-ca-cert and --lr-insecure apply to LogRhythm only)"),
            ))
        }
        Class::Configuration => Err(match &e {
            ci::Error::NoApi { .. } => Fatal::msg(code::CONFIG, &e),
            ci::Error::Http(h) if h.unknown_host().is_some() => {
                Fatal::msg(code::CONFIG, unknown_host("RF_API_URL", h))
            }
            _ => Fatal::new(
                code::CONFIG,
                anyhow::Error::new(e).context("the Collective Insights client is misconfigured"),
            ),
        }),
    }
}

/// One line for a host name that does not resolve: the variable, the host and
/// what to do (the request path and resolver wording add nothing).
fn unknown_host(variable: &str, e: &http::Error) -> String {
    let host = e.unknown_host().unwrap_or("the host");
    format!("{variable}: the host name of {host} does not exist in DNS; check its spelling (a typo is not an outage: nothing is retried until it is fixed)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> http::Error {
        http::Error::Status {
            method: reqwest::Method::GET,
            path: "/x".into(),
            status,
            snippet: String::new(),
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn the_ladder() {
        let f = |tls, auth, config, transient| Facts {
            tls,
            auth,
            config,
            transient,
        };
        for (facts, class) in [
            (f(false, false, false, false), Class::Permanent),
            (f(false, false, false, true), Class::Transient),
            (f(false, false, true, true), Class::Configuration),
            (f(false, true, true, true), Class::Auth),
            (f(true, true, true, true), Class::Tls),
            (f(true, false, false, false), Class::Tls),
        ] {
            assert_eq!(classify(facts), class, "{facts:?}");
        }
    }

    #[test]
    fn classes_of_real_errors() {
        let boxed = |s| Box::new(status(s));
        for (e, class) in [
            (status(503), Class::Transient),
            (status(429), Class::Transient),
            (status(404), Class::Permanent),
            (status(401), Class::Auth),
            (
                http::Error::BadCredential {
                    variable: "RF_API_KEY",
                },
                Class::Configuration,
            ),
        ] {
            assert_eq!(of_http(&e), class, "{e}");
        }
        for (e, class) in [
            (logrhythm::Error::Http(boxed(502)), Class::Transient),
            (
                logrhythm::Error::Auth {
                    status: 403,
                    source: boxed(403),
                },
                Class::Auth,
            ),
            (
                logrhythm::Error::NotFound {
                    id: 7.into(),
                    source: boxed(404),
                },
                Class::Permanent,
            ),
            (
                logrhythm::Error::Shape {
                    what: "x".into(),
                    problem: "y",
                },
                Class::Permanent,
            ),
            (
                logrhythm::Error::NoApi {
                    url: "https://pm:8501/x/lr-alarm-api/".into(),
                    source: boxed(404),
                },
                Class::Configuration,
            ),
        ] {
            assert_eq!(of_lr(&e), class, "{e}");
        }
        for (e, class) in [
            (ci::Error::Http(boxed(503)), Class::Transient),
            (
                ci::Error::Rejected {
                    message: "bad".into(),
                    source: boxed(400),
                },
                Class::Permanent,
            ),
            (ci::Error::TooLarge { source: boxed(413) }, Class::Permanent),
            (
                ci::Error::NoApi {
                    url: "https://rf/x/collective-insights/detections".into(),
                    source: boxed(404),
                },
                Class::Configuration,
            ),
            (
                ci::Error::Config {
                    url: "x".into(),
                    reason: "y",
                },
                Class::Configuration,
            ),
        ] {
            assert_eq!(of_ci(&e), class, "{e}");
        }
    }

    #[test]
    fn only_auth_tls_and_configuration_stop_the_run() {
        for (class, code) in [
            (Class::Transient, None),
            (Class::Permanent, None),
            (Class::Auth, Some(code::NO_PERM)),
            (Class::Tls, Some(code::CONFIG)),
            (Class::Configuration, Some(code::CONFIG)),
        ] {
            assert_eq!(class.fatal_code(), code, "{class:?}");
        }
        let e = lr(logrhythm::Error::Auth {
            status: 401,
            source: Box::new(status(401)),
        })
        .unwrap_err();
        assert_eq!(e.code, code::NO_PERM);
        assert!(e.to_string().contains("LOGRHYTHM_API_KEY"), "{e}");
        let soft = ci(ci::Error::Http(Box::new(status(503)))).unwrap();
        assert!(soft.transient);
    }
}
