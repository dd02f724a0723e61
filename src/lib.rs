//! lrci: a sync agent that sends LogRhythm SIEM alarms to Recorded Future
//! Collective Insights and keeps an SQLite ledger of everything it saw and sent.
//!
//! Modules: `model` (shared domain types), `sim` (the loopback simulator of both
//! APIs), `cli` (command-line surface).

pub mod cli;
pub mod model;
pub mod sim;
