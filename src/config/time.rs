//! Times given on the command line (`--from`, `--to`, `--before`): one parser for
//! every command.

use crate::error::{code, Fatal};
use chrono::{DateTime, NaiveDate, Utc};

/// Parses a time flag: RFC 3339 (a missing zone means UTC) or a date (midnight
/// UTC). A bad value is a usage error naming `flag`.
pub fn parse_time(flag: &str, raw: &str) -> Result<DateTime<Utc>, Fatal> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    Err(Fatal::msg(
        code::USAGE,
        format!("{flag} {s:?}: expected RFC 3339 (2026-11-27T08:00:00Z) or a date (2026-11-27)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc_or_name_the_flag() {
        for (raw, want) in [
            ("2026-11-27T08:00:00Z", Some("2026-11-27T08:00:00+00:00")),
            (
                "2026-11-27T10:00:00+02:00",
                Some("2026-11-27T08:00:00+00:00"),
            ),
            ("2026-11-27T08:00:00", Some("2026-11-27T08:00:00+00:00")),
            (" 2026-11-27 ", Some("2026-11-27T00:00:00+00:00")),
            ("2021-13-45", None),
            ("yesterday", None),
        ] {
            match (parse_time("--from", raw), want) {
                (Ok(t), Some(w)) => assert_eq!(t.to_rfc3339(), w, "{raw}"),
                (Err(e), None) => {
                    assert_eq!(e.code, code::USAGE);
                    assert!(e.to_string().starts_with("--from"), "{e}");
                }
                (got, want) => panic!("{raw}: {got:?} vs {want:?}"),
            }
        }
    }
}
