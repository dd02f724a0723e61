//! The ledger's status enums: what became of a detection, and what lrci decided
//! about an alarm. Their lower-case spellings are the ledger's `CHECK`
//! constraints (`schema.sql`) and the audit commands' output. No I/O here.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A stored or typed spelling that names none of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected {expected})")]
pub struct UnknownValue {
    /// What was being parsed, e.g. `state`.
    pub what: &'static str,
    pub value: String,
    /// The accepted spellings, for the message.
    pub expected: &'static str,
}

macro_rules! text_enum {
    (
        $(#[$doc:meta])* $name:ident, $what:literal, $expected:literal,
        { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The ledger and output spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        expected: $expected,
                    })
            }
        }
    };
}

text_enum!(
    /// Detection state in the ledger (DESIGN.md section 3).
    DetectionState, "state", "pending, sent, failed, rejected, unconfirmed or excluded",
    {
        /// Recorded, not yet accepted by CI (new, or a crash before the answer).
        Pending => "pending",
        /// CI answered 2xx.
        Sent => "sent",
        /// A transient failure after retries; `replay` and later runs retry it.
        Failed => "failed",
        /// CI answered 400 for this one item.
        Rejected => "rejected",
        /// CI answered 2xx without a recognisable result: maybe stored, maybe
        /// not. Never posted again blindly; the next sync (or `lrci reconcile`)
        /// looks it up in CI's search and settles it as `sent` or `pending`.
        Unconfirmed => "unconfirmed",
        /// The indicator policy kept it on site; never sent.
        Excluded => "excluded",
    }
);

text_enum!(
    /// What lrci decided about an alarm (`alarms.decision`).
    AlarmDecision, "decision", "accepted, filtered or error",
    {
        /// Details and events fetched; its indicators are in the ledger.
        Accepted => "accepted",
        /// A rule filter or `--min-rbp` said no.
        Filtered => "filtered",
        /// Details or events could not be fetched; later runs fetch it again.
        Error => "error",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips_and_others_are_refused() {
        let states = [
            ("pending", Some(DetectionState::Pending)),
            ("sent", Some(DetectionState::Sent)),
            ("failed", Some(DetectionState::Failed)),
            ("rejected", Some(DetectionState::Rejected)),
            ("excluded", Some(DetectionState::Excluded)),
            ("Sent", None),
            ("unconfirmed", Some(DetectionState::Unconfirmed)),
            ("Unconfirmed", None),
            ("", None),
        ];
        for (text, want) in states {
            assert_eq!(text.parse::<DetectionState>().ok(), want, "{text:?}");
            if let Some(s) = want {
                assert_eq!(s.as_str(), text);
            }
        }
        let decisions = [
            ("accepted", Some(AlarmDecision::Accepted)),
            ("filtered", Some(AlarmDecision::Filtered)),
            ("error", Some(AlarmDecision::Error)),
            ("errors", None),
        ];
        for (text, want) in decisions {
            assert_eq!(text.parse::<AlarmDecision>().ok(), want, "{text:?}");
            if let Some(d) = want {
                assert_eq!(d.to_string(), text);
            }
        }
        let e = "sen".parse::<DetectionState>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown state \"sen\" (expected pending, sent, failed, rejected, unconfirmed or excluded)"
        );
    }
}
