//! What every command shares when it writes its result to stdout: a broken pipe
//! (`lrci ... | head`) is a quiet success, any other write error is exit 74.

use crate::error::{code, Fatal};
use std::io::{self, Write};

/// The outcome of writing a command's result: a broken pipe means the reader
/// has what it wanted (quiet success); any other error is exit 74.
pub fn pipe_exit(written: io::Result<()>) -> Result<(), Fatal> {
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fatal::msg(code::IO, format!("cannot write to stdout: {e}"))),
    }
}

/// Writes `text` to stdout and flushes it, through [`pipe_exit`].
pub fn print(text: &str) -> Result<(), Fatal> {
    let mut out = io::stdout().lock();
    pipe_exit(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

pub use crate::error::one_line as error_chain;

/// The width tables must fit: `COLUMNS` when set (a user's or a test's choice),
/// else the terminal's when stdout is one; `None` (no limit: whole rows for
/// `grep` and files) when stdout is a pipe or a file.
pub fn terminal_width() -> Option<u16> {
    width_from(
        std::env::var("COLUMNS").ok().as_deref(),
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
        || terminal_size::terminal_size().map(|(w, _)| w.0),
    )
}

fn width_from(columns: Option<&str>, tty: bool, size: impl Fn() -> Option<u16>) -> Option<u16> {
    if let Some(n) = columns.and_then(|c| c.trim().parse::<u16>().ok()) {
        return (n >= 20).then_some(n);
    }
    if tty {
        size().filter(|w| *w >= 20)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_table() {
        let size = || Some(100);
        for (columns, tty, want) in [
            (Some("80"), false, Some(80)),
            (Some("80"), true, Some(80)),
            (Some("junk"), true, Some(100)),
            (Some("5"), true, None),
            (None, true, Some(100)),
            (None, false, None),
        ] {
            assert_eq!(width_from(columns, tty, size), want, "{columns:?} {tty}");
        }
        assert_eq!(width_from(None, true, || None), None);
    }

    #[test]
    fn broken_pipe_is_quiet_success_other_errors_are_74() {
        // (write result, expected exit code on error)
        let cases: Vec<(io::Result<()>, Option<u8>)> = vec![
            (Ok(()), None),
            (Err(io::ErrorKind::BrokenPipe.into()), None),
            (Err(io::ErrorKind::StorageFull.into()), Some(code::IO)),
            (Err(io::ErrorKind::PermissionDenied.into()), Some(code::IO)),
        ];
        for (written, want) in cases {
            let got = pipe_exit(written).err().map(|f| f.code);
            assert_eq!(got, want);
        }
    }
}
