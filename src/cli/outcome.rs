//! The exit code of a run, derived from its report alone (DESIGN.md section 2):
//! a failure that stopped the run keeps its own code; else 69 when an API was
//! unavailable, else 75 when the run was partial or interrupted, else 0. Pure.
//! The engine records the same code in the ledger's `runs` table.

use crate::engine::report::Outcome;
use crate::error::code;

/// The exit code for a run that ended as `o` says.
pub fn exit_code(o: &Outcome) -> u8 {
    if let Some(fatal) = o.fatal {
        fatal
    } else if o.unavailable {
        code::UNAVAILABLE
    } else if o.partial || o.interrupted {
        code::PARTIAL
    } else {
        code::OK
    }
}

/// The most severe of several runs' codes (the demo's two syncs): the highest
/// code, which orders the documented codes by severity.
pub fn worst(codes: &[u8]) -> u8 {
    codes.iter().copied().max().unwrap_or(code::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let o = |unavailable, partial, interrupted, fatal| Outcome {
            unavailable,
            partial,
            interrupted,
            fatal,
            problems: Vec::new(),
        };
        for (outcome, want) in [
            (o(false, false, false, None), code::OK),
            (o(false, true, false, None), code::PARTIAL),
            (o(false, false, true, None), code::PARTIAL),
            (o(true, false, false, None), code::UNAVAILABLE),
            (o(true, true, true, None), code::UNAVAILABLE),
            (o(false, false, false, Some(code::NO_PERM)), code::NO_PERM),
            (o(true, true, false, Some(code::CONFIG)), code::CONFIG),
            (o(false, false, false, Some(code::DATA)), code::DATA),
        ] {
            assert_eq!(exit_code(&outcome), want, "{outcome:?}");
        }
        assert_eq!(worst(&[]), code::OK);
        assert_eq!(worst(&[code::PARTIAL, code::OK]), code::PARTIAL);
    }
}
