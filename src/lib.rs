//! lrci: a sync agent that sends LogRhythm SIEM alarms to Recorded Future
//! Collective Insights and keeps an SQLite ledger of everything it saw and sent.
//!
//! Module map (dependencies point down; leaves do not import each other):
//! - [`cli`]: argument types and one module per command; `main` calls [`cli::run`].
//! - [`config`]: validated settings from flags and environment; [`logging`]: tracing setup.
//! - [`engine`]: the sync engine, the only module that uses every leaf: a thin I/O
//!   driver over pure decisions (plan, triage, submit, failure, report).
//! - Leaves: [`logrhythm`] and [`ci`] (HTTP clients over [`http`]), [`extract`] and
//!   [`policy`] (pure indicator extraction and judgement), [`ledger`] (all SQL).
//! - [`model`]: the domain types everyone shares. [`error`]: exit codes.
//! - [`clock`]: the wall clock every "now" is read from (settable for tests).
//! - [`text`] (the one unsafe-character table) and [`platform`] (file modes, lock
//!   holder, mounts, shutdown signals; unix and non-unix): usable by every module.
//! - [`sim`]: the simulator of both APIs used by tests, benchmarks and `demo`.
//! - `fuzzing` (hidden): entry points for the cargo-fuzz targets in `fuzz/`.

pub mod ci;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod extract;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ledger;
pub mod logging;
pub mod logrhythm;
pub mod model;
pub mod platform;
pub mod policy;
pub mod sim;
pub mod text;
