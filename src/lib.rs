//! lrci: a sync agent that sends LogRhythm SIEM alarms to Recorded Future
//! Collective Insights and keeps an SQLite ledger of everything it saw and sent.

pub mod ci;
pub mod http;
pub mod logrhythm;
pub mod model;
