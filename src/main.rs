//! The `lrci` binary: parse arguments, run the command, print an error once, exit
//! with the documented code. Everything else lives in [`lrci::cli`].

use clap::Parser;
use lrci::cli::{self, args::Cli};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv = cli::args::normalize_argv(std::env::args_os());
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match cli::run(cli, argv) {
        Ok(c) => ExitCode::from(c),
        Err(f) => {
            // The message may carry text from an API or a file: one safe line.
            // Written, not `eprintln!`: stderr on a pipe nobody reads (`lrci
            // ... 2>&1 | head -1`) must not turn the documented code into a
            // panic's 101; the log file has the line too.
            let line = format!("error: {}\n", lrci::logging::error_line(&f.to_string()));
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            ExitCode::from(f.code)
        }
    }
}
