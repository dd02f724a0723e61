//! The wall clock lrci reads: the system's, or, for rehearsals and tests that
//! run a day of scheduled syncs in seconds, the time `LRCI_TEST_CLOCK` names
//! (RFC 3339) at process start, running on from there at the real rate.
//! Timers and `--max-runtime` use the monotonic clock and are not affected.
//! Every other read of "now" goes through [`now`] (or [`system_now`]).

use chrono::{DateTime, Utc};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// The environment variable that sets the clock.
pub const VAR: &str = "LRCI_TEST_CLOCK";

static BASE: OnceLock<Option<(DateTime<Utc>, Instant)>> = OnceLock::new();

/// Parses a `LRCI_TEST_CLOCK` value.
pub fn parse(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{VAR}: {value:?} is not an RFC 3339 time (like 2026-12-01T10:00:00Z)")
        })
}

fn from_env() -> Option<(DateTime<Utc>, Instant)> {
    let value = std::env::var(VAR).ok()?;
    parse(&value).ok().map(|t| (t, Instant::now()))
}

/// Checks `LRCI_TEST_CLOCK` and starts the clock: the error names the
/// variable. `Some` is the time it set.
pub fn init() -> Result<Option<DateTime<Utc>>, String> {
    if let Ok(value) = std::env::var(VAR) {
        parse(&value)?;
    }
    Ok(BASE.get_or_init(from_env).map(|(t, _)| t))
}

/// Now, on lrci's clock.
pub fn now() -> DateTime<Utc> {
    match BASE.get_or_init(from_env) {
        Some((t, since)) => *t + chrono::Duration::from_std(since.elapsed()).unwrap_or_default(),
        None => Utc::now(),
    }
}

/// [`now`] as a [`SystemTime`] (for HTTP dates).
pub fn system_now() -> SystemTime {
    match BASE.get_or_init(from_env) {
        Some(_) => SystemTime::from(now()),
        None => SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        for (value, ok) in [
            ("2026-12-01T10:00:00Z", true),
            ("2026-12-01T10:00:00.250+02:00", true),
            (" 2026-12-01T10:00:00Z ", true),
            ("2026-12-01 10:00", false),
            ("yesterday", false),
            ("", false),
        ] {
            let r = parse(value);
            assert_eq!(r.is_ok(), ok, "{value:?}");
            if let Err(e) = r {
                assert!(e.starts_with(VAR), "{e}");
            }
        }
    }
}
