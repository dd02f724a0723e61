//! LogRhythm date handling for the simulator: rendering dates the way the Alarm API
//! does (UTC, no `Z`, SQL Server `datetime` ticks, trailing fraction zeros trimmed)
//! and parsing every `dateInserted` input form the spec lists.
//!
//! Pure functions only; no clock, no I/O.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

/// Milliseconds in one SQL Server `datetime` tick run: ticks are 1/300 s, so the
/// millisecond part of a stored value always ends in 0, 3 or 7.
const TICKS_PER_SECOND: i64 = 300;

/// Rounds `t` to the nearest SQL Server `datetime` tick (1/300 s) and returns it
/// with whole-millisecond precision, as SQL Server reports it (`.003`, `.007`, `.010`…).
pub fn snap_to_tick(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let nanos = i64::from(t.timestamp_subsec_nanos());
    // Nearest tick within the second (0..=300; 300 rolls into the next second).
    let tick = (nanos * TICKS_PER_SECOND + 500_000_000) / 1_000_000_000;
    from_second_and_tick(secs, tick)
}

/// The instant `secs` whole seconds after the epoch plus `tick` ticks (1/300 s each),
/// with milliseconds rounded the way SQL Server displays them.
pub fn from_second_and_tick(secs: i64, tick: i64) -> DateTime<Utc> {
    let extra_secs = tick.div_euclid(TICKS_PER_SECOND);
    let tick = tick.rem_euclid(TICKS_PER_SECOND);
    // tick * 1000 / 300 rounded to the nearest millisecond: 1 -> 3, 2 -> 7, 3 -> 10.
    let ms = (tick * 10 + 1) / 3;
    let ms = if ms >= 1000 { 999 } else { ms };
    Utc.timestamp_opt(secs + extra_secs, 0)
        .single()
        .map(|t| t + chrono::Duration::milliseconds(ms))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t` in units of 1/300 ns since the epoch, so that both a tick (1/300 s) and a
/// nanosecond are whole numbers.
fn units(secs: i64, nanos: i128) -> i128 {
    (i128::from(secs) * 1_000_000_000 + nanos) * 300
}

/// The exact instant of the tick a rendered value (`.003`, `.007`, `.010`…)
/// stands for, in [`units`]: `.007` is tick 2, 6.666… ms.
fn exact_tick_units(t: DateTime<Utc>) -> i128 {
    let ms = i64::from(t.timestamp_subsec_millis());
    let tick = (ms * 3 + 5) / 10;
    units(t.timestamp(), 0) + i128::from(tick) * 1_000_000_000
}

/// Whether a row stored at `stored` (as rendered, on a tick) passes the
/// `dateInserted` bound `param`: `>=`, or `>` when `strict`. With `exact`, the
/// stored value is the exact tick and the comparison is exact (SQL Server
/// comparing a `datetime` column with a `datetime2` parameter); otherwise the
/// rendered millisecond is compared.
pub fn admits(stored: DateTime<Utc>, param: DateTime<Utc>, exact: bool, strict: bool) -> bool {
    let p = units(
        param.timestamp(),
        i128::from(param.timestamp_subsec_nanos()),
    );
    let s = if exact {
        exact_tick_units(stored)
    } else {
        units(
            stored.timestamp(),
            i128::from(stored.timestamp_subsec_nanos()),
        )
    };
    if strict {
        s > p
    } else {
        s >= p
    }
}

/// Renders a UTC instant as LogRhythm does: `YYYY-MM-DDTHH:MM:SS` plus `.f`, `.ff` or
/// `.fff` with trailing zeros removed (no fraction at all on a whole second), no `Z`.
pub fn render_lr(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ms = t.nanosecond() / 1_000_000 % 1000;
    if ms == 0 {
        return base;
    }
    let frac = format!("{ms:03}");
    format!("{base}.{}", frac.trim_end_matches('0'))
}

/// Parses a `dateInserted` query value in every form the spec (§4.2, §14.5) lists,
/// interpreting zone-less values as UTC:
/// `2021-04-19T13:00:00Z`, `2021-04-02T09:09:52.98`, 0–7 (up to 9) fraction digits,
/// `+hh:mm` offsets, a space instead of `T`, minutes-only times, date-only
/// `2020-04-20`, and the PowerShell-style `4/19/2021 13:00:00`, `4/19/2021 3:30`,
/// `4/19/2021`. Returns `None` for anything else.
pub fn parse_lr_param(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .unwrap_or(s);
    const FORMATS: [&str; 8] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M %p",
    ];
    for f in FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    for f in ["%Y-%m-%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(naive, f) {
            return d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn renders_trimmed_fractions_without_zone() {
        assert_eq!(
            render_lr(utc("2021-08-23T15:19:00Z")),
            "2021-08-23T15:19:00"
        );
        assert_eq!(
            render_lr(utc("2021-08-23T15:19:38.190Z")),
            "2021-08-23T15:19:38.19"
        );
        assert_eq!(
            render_lr(utc("2021-08-23T15:19:08.600Z")),
            "2021-08-23T15:19:08.6"
        );
        assert_eq!(
            render_lr(utc("2021-10-13T09:13:20.103Z")),
            "2021-10-13T09:13:20.103"
        );
    }

    #[test]
    fn ticks_end_in_0_3_or_7() {
        for tick in 0..300 {
            let t = from_second_and_tick(1_700_000_000, tick);
            let ms = t.timestamp_subsec_millis();
            assert!(matches!(ms % 10, 0 | 3 | 7), "tick {tick} gave {ms}");
            assert_eq!(snap_to_tick(t), t, "tick {tick} is a fixed point");
        }
        assert_eq!(from_second_and_tick(0, 1).timestamp_subsec_millis(), 3);
        assert_eq!(from_second_and_tick(0, 2).timestamp_subsec_millis(), 7);
        assert_eq!(from_second_and_tick(0, 300), utc("1970-01-01T00:00:01Z"));
    }

    /// One row per case: stored (rendered), parameter, exact?, strict?, admitted?
    #[test]
    fn bound_comparison_table() {
        let cases = [
            // Millisecond semantics: the rendered value is what is compared.
            ("00:00:00.007", "00:00:00.007", false, false, true),
            ("00:00:00.007", "00:00:00.007", false, true, false),
            ("00:00:00.007", "00:00:00.003", false, true, true),
            // Exact ticks: .007 is 6.667 ms, so a .007 parameter excludes it.
            ("00:00:00.007", "00:00:00.007", true, false, false),
            ("00:00:00.007", "00:00:00.0066666", true, false, true),
            ("00:00:00.007", "00:00:00.003", true, false, true),
            ("00:00:00.007", "00:00:00.003", true, true, true),
            // .003 is 3.333 ms: a .003 parameter includes it, even strictly.
            ("00:00:00.003", "00:00:00.003", true, true, true),
            ("00:00:00.003", "00:00:00.004", true, false, false),
            // Whole ticks (.010 is exactly tick 3).
            ("00:00:00.01", "00:00:00.010", true, false, true),
            ("00:00:00.01", "00:00:00.010", true, true, false),
            ("00:00:00.997", "00:00:00.9966", true, false, true),
            ("00:00:00.997", "00:00:00.9967", true, false, false),
        ];
        for (stored, param, exact, strict, want) in cases {
            let s = utc(&format!("2021-08-23T{stored}Z"));
            let p = utc(&format!("2021-08-23T{param}Z"));
            assert_eq!(
                admits(s, p, exact, strict),
                want,
                "{stored} vs {param} exact={exact} strict={strict}"
            );
        }
    }

    #[test]
    fn parses_every_listed_form() {
        let cases = [
            ("2021-04-19T13:00:00Z", "2021-04-19T13:00:00Z"),
            ("2021-04-19T13:00:00", "2021-04-19T13:00:00Z"),
            ("2021-04-02T09:09:52.98", "2021-04-02T09:09:52.98Z"),
            (
                "2021-04-02T09:09:52.9876543",
                "2021-04-02T09:09:52.9876543Z",
            ),
            (
                "2021-04-02T09:09:52.9876543Z",
                "2021-04-02T09:09:52.9876543Z",
            ),
            ("2021-04-02T11:09:52+02:00", "2021-04-02T09:09:52Z"),
            ("2021-04-02 09:09:52", "2021-04-02T09:09:52Z"),
            ("2020-04-20", "2020-04-20T00:00:00Z"),
            ("4/19/2021 13:00:00", "2021-04-19T13:00:00Z"),
            ("4/19/2021 3:30", "2021-04-19T03:30:00Z"),
            ("4/19/2021", "2021-04-19T00:00:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_lr_param(input), Some(utc(want)), "{input}");
        }
        for bad in ["", "yesterday", "2021-13-45T99:99:99", "2021-04-19T", "12"] {
            assert_eq!(parse_lr_param(bad), None, "{bad}");
        }
    }
}
