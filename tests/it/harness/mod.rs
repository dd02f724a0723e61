//! What the integration tests share: [`sim`] (an in-process simulator on
//! 127.0.0.1, requests to it, a trap listener), [`bin`] (the real `lrci` binary run
//! with a clean environment, the clear-error rule) and [`oracle`] (the independent
//! ground truth of what a correct agent sends), plus read-only looks at the files a
//! run leaves (ledger, modes). Every area imports `crate::harness::*`.
#![allow(dead_code)] // each area uses its own part

pub mod bin;
pub mod oracle;
pub mod sim;

pub use bin::*;
pub use oracle::*;
pub use sim::*;

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Opens the ledger read-only (never creates, never migrates).
pub fn ledger_ro(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Alarm ids in the ledger.
pub fn ledger_alarm_ids(path: &Path) -> BTreeSet<i64> {
    let c = ledger_ro(path);
    let mut st = c.prepare("SELECT alarm_id FROM alarms").unwrap();
    st.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Detection count per state in the ledger.
pub fn ledger_states(path: &Path) -> std::collections::BTreeMap<String, i64> {
    let c = ledger_ro(path);
    let mut st = c
        .prepare("SELECT state, count(*) FROM detections GROUP BY state")
        .unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Reads the ledger file and its WAL, if any.
pub fn ledger_bytes(home: &Home) -> (Vec<u8>, Option<Vec<u8>>) {
    let wal = home.dir.path().join("ledger.sqlite3-wal");
    (
        std::fs::read(home.ledger()).unwrap(),
        std::fs::read(wal).ok(),
    )
}

/// The permission bits of a file.
pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Root reads and writes through any permission bits, so the permission tests
/// only mean something for other users.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// An instant as a flag value (RFC 3339, whole seconds, `Z`).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
