//! Exit codes as the CLI reports them: a run's code comes from its report
//! ([`Outcome::exit_code`]); several runs (the demo, `--all-profiles`) end with
//! the most severe. Pure.

use crate::engine::report::Outcome;
use crate::error::code;

/// The exit code for a run that ended as `o` says ([`Outcome::exit_code`]).
pub fn exit_code(o: &Outcome) -> u8 {
    o.exit_code()
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
    fn worst_is_the_highest_code() {
        assert_eq!(worst(&[]), code::OK);
        assert_eq!(worst(&[code::PARTIAL, code::OK]), code::PARTIAL);
    }
}
