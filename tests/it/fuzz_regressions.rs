//! Every input the cargo-fuzz targets (fuzz/) ever found a failure with, replayed
//! through the same entry points (`lrci::fuzzing`), which panic on a broken
//! invariant. Files live in `tests/fixtures/fuzz/<target>/`; add each new
//! finding there.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails again", path.display());
        n += 1;
    }
    n
}

/// 2026-11-27, `extract`: an over-long invalid value (10 000 IPs in one
/// `originIP`) was stored as `safe_raw` text whose truncation marker held a
/// space (`…[2821 bytes]`), a character no stored or sent value may hold.
#[test]
fn extract_findings_stay_fixed() {
    assert!(replay("extract", lrci::fuzzing::extract) >= 1);
}

#[test]
fn parser_findings_stay_fixed() {
    // No findings yet for these targets; the replay runs whatever is added.
    replay("lr_list_page", lrci::fuzzing::lr_list_page);
    replay("lr_events", lrci::fuzzing::lr_events);
    replay("ci_response", lrci::fuzzing::ci_response);
    replay("lists", lrci::fuzzing::lists);
}
