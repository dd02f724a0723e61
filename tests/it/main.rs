//! The integration tests, in one binary (one link instead of one per file): one
//! module per area, and `harness` with what they share (the simulator, the `lrci`
//! binary runner and the independent oracle).

mod harness;

mod backfill_flow;
mod bad_input;
mod cli;
mod concurrency_flow;
mod disk_full;
mod doctor;
mod engine_flow;
mod extract_corpus;
mod fetch_pipeline;
mod fidelity;
mod fuzz_regressions;
mod hostile;
mod ledger_cli;
mod permissions;
mod privacy;
mod reconcile_flow;
pub(crate) mod reliability;
mod replay_flow;
mod run_log;
mod scheduled;
mod settings_flow;
mod sim_admin;
mod sim_ci;
mod sim_lr;
mod sync_flow;
mod tls;
