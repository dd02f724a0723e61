//! Logging setup: stderr for people, and for the commands that change the ledger a
//! daily-rotated file in the log directory (14 kept). `LRCI_LOG` (an env filter)
//! overrides `--log-level`. Only `main` calls this; the returned guard must live
//! until the program ends so the file writer flushes.

use crate::cli::args::LogLevel;
use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

/// Log files kept by the daily rotation.
pub const MAX_LOG_FILES: usize = 14;

/// Keeps the file writer alive.
pub struct Guard {
    _file: Option<WorkerGuard>,
}

fn level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

/// Installs the subscriber. With a log directory, a file layer too; if that
/// directory cannot be used, the error is returned (the caller decides whether it
/// is fatal) and stderr logging is still installed.
pub fn init(lvl: LogLevel, log_dir: Option<&Path>) -> (Guard, Option<std::io::Error>) {
    let filter = || {
        EnvFilter::try_from_env("LRCI_LOG")
            .unwrap_or_else(|_| EnvFilter::new(format!("warn,lrci={}", level(lvl))))
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_filter(filter());
    let mut file_error = None;
    let mut guard = None;
    let file_layer = log_dir.and_then(|dir| match open_appender(dir) {
        Ok(appender) => {
            let (writer, g) = tracing_appender::non_blocking(appender);
            guard = Some(g);
            Some(
                fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_filter(filter()),
            )
        }
        Err(e) => {
            file_error = Some(e);
            None
        }
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    (Guard { _file: guard }, file_error)
}

fn open_appender(dir: &Path) -> std::io::Result<tracing_appender::rolling::RollingFileAppender> {
    if !dir.exists() {
        crate::ledger::create_private_dir(dir)?;
    }
    tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("lrci")
        .filename_suffix("log")
        .max_log_files(MAX_LOG_FILES)
        .build(dir)
        .map_err(std::io::Error::other)
}
