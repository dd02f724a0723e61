//! `ToSql`/`FromSql` for the model's ids and state enums, and the row helpers
//! that turn a stored value this build cannot read into [`Error::BadValue`]
//! (exit 65) naming the table, the column and the value. A row is never
//! skipped because it does not parse.
//!
//! [`Error::BadValue`]: super::Error::BadValue

use super::parse_ts;
use crate::model::{AlarmDecision, AlarmId, DetectionId, DetectionState, IndicatorType};
use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, Type, ValueRef};
use rusqlite::{Row, RowIndex};

macro_rules! sql_id {
    ($name:ident) => {
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.get()))
            }
        }
        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                i64::column_result(value).map($name::from)
            }
        }
    };
}

macro_rules! sql_text {
    ($name:ident) => {
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse::<$name>()
                    .map_err(|e| FromSqlError::Other(e.into()))
            }
        }
    };
}

sql_id!(AlarmId);
sql_id!(DetectionId);
sql_text!(DetectionState);
sql_text!(AlarmDecision);
sql_text!(IndicatorType);

/// A stored value that does not parse, with the `table.column` it sits in.
#[derive(Debug, thiserror::Error)]
#[error("{column}: {detail}")]
struct BadColumn {
    column: &'static str,
    detail: String,
}

/// Reads column `idx` of `row` as `T`; a value that does not parse is an error
/// naming `column` (`table.column`) and the value.
pub(super) fn get<T: FromSql>(
    row: &Row<'_>,
    idx: impl RowIndex,
    column: &'static str,
) -> rusqlite::Result<T> {
    row.get(idx).map_err(|e| name_column(e, column))
}

/// Reads column `idx` of `row` as a stored RFC 3339 time.
pub(super) fn time(
    row: &Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = get(row, idx, column)?;
    parse_time(&text, idx, column)
}

/// Parses a stored time already read from column `idx`.
pub(super) fn parse_time(
    text: &str,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<DateTime<Utc>> {
    parse_ts(text).ok_or_else(|| {
        let detail = format!("{text:?} is not an RFC 3339 time");
        bad(idx, Type::Text, column, detail)
    })
}

/// A text value of column `idx` that does not parse, with why.
pub(super) fn bad_text(idx: usize, column: &'static str, detail: String) -> rusqlite::Error {
    bad(idx, Type::Text, column, detail)
}

fn bad(idx: usize, ty: Type, column: &'static str, detail: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(BadColumn { column, detail }))
}

fn name_column(e: rusqlite::Error, column: &'static str) -> rusqlite::Error {
    match e {
        rusqlite::Error::FromSqlConversionFailure(idx, ty, cause) if !cause.is::<BadColumn>() => {
            bad(idx, ty, column, cause.to_string())
        }
        rusqlite::Error::InvalidColumnType(idx, _, ty) => bad(
            idx,
            ty,
            column,
            format!("a stored {ty} where lrci expects another type"),
        ),
        rusqlite::Error::IntegralValueOutOfRange(idx, v) => {
            bad(idx, Type::Integer, column, format!("{v} is out of range"))
        }
        other => other,
    }
}

/// The message of [`super::Error::BadValue`] when `e` is a value that did not
/// parse; `None` for every other error.
pub(super) fn bad_value(e: &rusqlite::Error) -> Option<String> {
    match e {
        rusqlite::Error::FromSqlConversionFailure(_, _, cause) => Some(cause.to_string()),
        rusqlite::Error::InvalidColumnType(_, name, ty) => Some(format!(
            "column {name}: a stored {ty} where lrci expects another type"
        )),
        rusqlite::Error::IntegralValueOutOfRange(_, v) => Some(format!("{v} is out of range")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn round_trip<T: ToSql + FromSql>(c: &Connection, v: &T) -> T {
        c.query_row("SELECT ?1", [v], |r| r.get(0)).unwrap()
    }

    #[test]
    fn model_types_round_trip_through_sqlite() {
        let c = Connection::open_in_memory().unwrap();
        for id in [0, 1, i64::MAX, -5] {
            assert_eq!(round_trip(&c, &AlarmId::from(id)), AlarmId::from(id));
            assert_eq!(
                round_trip(&c, &DetectionId::from(id)),
                DetectionId::from(id)
            );
        }
        for s in DetectionState::ALL {
            assert_eq!(round_trip(&c, s), *s);
            let stored: String = c.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(stored, s.as_str());
        }
        for d in AlarmDecision::ALL {
            assert_eq!(round_trip(&c, d), *d);
        }
        for k in IndicatorType::ALL {
            assert_eq!(round_trip(&c, &k), k);
        }
    }

    #[test]
    fn a_stored_value_that_does_not_parse_names_column_and_value() {
        let c = Connection::open_in_memory().unwrap();
        // (SQL yielding one stored value, how it is read, expected message)
        type Read = fn(&Row<'_>) -> rusqlite::Result<()>;
        let cases: &[(&str, Read, &str)] = &[
            (
                "SELECT 'sen'",
                |r| get::<DetectionState>(r, 0, "detections.state").map(drop),
                "detections.state: unknown state \"sen\" (expected pending, sent, failed, rejected, unconfirmed or excluded)",
            ),
            (
                "SELECT 'maybe'",
                |r| get::<AlarmDecision>(r, 0, "alarms.decision").map(drop),
                "alarms.decision: unknown decision \"maybe\" (expected accepted, filtered or error)",
            ),
            (
                "SELECT 'ipv9'",
                |r| get::<IndicatorType>(r, 0, "detections.ioc_type").map(drop),
                "detections.ioc_type: unknown indicator type \"ipv9\" (expected ip, domain, url, vulnerability or hash)",
            ),
            (
                "SELECT 'x'",
                |r| get::<AlarmId>(r, 0, "alarms.alarm_id").map(drop),
                "alarms.alarm_id: a stored Text where lrci expects another type",
            ),
            (
                "SELECT 'yesterday'",
                |r| time(r, 0, "alarms.date_inserted").map(drop),
                "alarms.date_inserted: \"yesterday\" is not an RFC 3339 time",
            ),
            (
                "SELECT 3",
                |r| get::<DetectionState>(r, 0, "detections.state").map(drop),
                "detections.state: a stored Integer where lrci expects another type",
            ),
        ];
        for (sql, read, want) in cases {
            let e = c.query_row(sql, [], read).unwrap_err();
            assert_eq!(bad_value(&e).as_deref(), Some(*want), "{sql}");
        }
        assert_eq!(bad_value(&rusqlite::Error::QueryReturnedNoRows), None);
    }
}
