//! Id newtypes: an alarm id and a detection (ledger row) id are different
//! things, and the compiler keeps them apart. No I/O here; the ledger's
//! `ToSql`/`FromSql` impls live in `ledger/sql.rs`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id as the number the APIs and the ledger use.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                $name(v)
            }
        }

        impl From<$name> for i64 {
            fn from(v: $name) -> i64 {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse::<i64>().map($name)
            }
        }

        impl PartialEq<i64> for $name {
            fn eq(&self, other: &i64) -> bool {
                self.0 == *other
            }
        }
    };
}

id_newtype!(
    /// A LogRhythm alarm id (`alarmId`). Always a positive integer on a real system.
    AlarmId
);

id_newtype!(
    /// A detection's ledger row id (`detections.id`); lets the submitter report
    /// outcomes per item.
    DetectionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_id_text_and_json_forms() {
        // (text, parsed)
        let cases: &[(&str, Option<i64>)] = &[
            ("42", Some(42)),
            (" 7 ", Some(7)),
            ("-3", Some(-3)),
            ("x", None),
            ("", None),
            ("1.5", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                text.parse::<AlarmId>().ok().map(AlarmId::get),
                *want,
                "{text:?}"
            );
        }
        let id = AlarmId::from(1234);
        assert_eq!(id.to_string(), "1234");
        assert_eq!(serde_json::to_string(&id).unwrap(), "1234");
        assert_eq!(
            serde_json::from_str::<AlarmId>("99").unwrap(),
            AlarmId::from(99)
        );
        assert!(serde_json::from_str::<AlarmId>("\"99\"").is_err());
        assert_eq!(i64::from(DetectionId::from(5)), 5);
        assert_eq!(AlarmId::from(5), 5);
    }
}
