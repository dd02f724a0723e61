//! The version `--version` prints: the crate version, the git commit and the
//! build date that build.rs found ("unknown" commit on a build outside git).

/// The git commit lrci was built from, or "unknown".
pub const COMMIT: &str = env!("LRCI_GIT_COMMIT");
/// The build date (UTC, YYYY-MM-DD).
pub const BUILD_DATE: &str = env!("LRCI_BUILD_DATE");
/// `0.1.0 (commit abc1234, built 2026-01-01)`.
pub const LONG: &str = super::args::LONG_VERSION;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_version_names_version_commit_and_date() {
        assert!(LONG.starts_with(env!("CARGO_PKG_VERSION")), "{LONG}");
        assert!(LONG.contains(&format!("commit {COMMIT}")), "{LONG}");
        assert_eq!(BUILD_DATE.len(), 10, "{BUILD_DATE}");
        assert!(!COMMIT.is_empty());
    }
}
