//! lrci: a sync agent that sends LogRhythm SIEM alarms to Recorded Future
//! Collective Insights and keeps an SQLite ledger of everything it saw and sent.

pub mod extract;
pub mod model;
pub mod policy;
