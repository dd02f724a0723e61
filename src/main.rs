//! The `lrci` binary: parse arguments, set up logging, run the command on a tokio
//! runtime, print an error once, exit with the documented code.

use clap::Parser;
use lrci::cli::{self, args::Cli};
use lrci::error::code;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv = cli::args::normalize_argv(std::env::args_os());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(code::USAGE));
        }
    };
    // chrono's `Utc::now` panics on a clock before 1970; no timestamp lrci
    // writes could be right then anyway.
    if std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .is_err()
    {
        eprintln!(
            "error: the system clock is set before 1970-01-01: fix the clock (NTP) and run again"
        );
        return ExitCode::from(code::CONFIG);
    }
    let log_dir = if cli::writes_ledger(&cli) {
        match lrci::config::ledger_path(&cli.global) {
            Ok(ledger) => Some(lrci::config::log_dir(&cli.global, &ledger)),
            Err(_) => None,
        }
    } else {
        None
    };
    // The demo prints its own account; its per-request logs would only bury it.
    let default_level = match cli.command {
        Some(cli::args::Command::Demo(_)) => cli::args::LogLevel::Warn,
        _ => cli::args::LogLevel::Info,
    };
    let level = cli.global.log_level.unwrap_or(default_level);
    let (_guard, file_error) =
        lrci::logging::init(level, log_dir.as_ref().map(|(d, _)| d.as_path()));
    if let (Some(e), Some((dir, explicit))) = (file_error, &log_dir) {
        if *explicit {
            eprintln!(
                "error: {}",
                lrci::logging::error_line(&format!(
                    "cannot use the log directory {} (LRCI_LOG_DIR): {e}",
                    dir.display()
                ))
            );
            return ExitCode::from(code::CANT_CREATE);
        }
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write log files; logging to stderr only");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(74);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(c) => ExitCode::from(c),
        Err(f) => {
            // The message may carry text from an API or a file: one safe line.
            eprintln!("error: {}", lrci::logging::error_line(&f.to_string()));
            ExitCode::from(f.code)
        }
    }
}
