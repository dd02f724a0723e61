//! The one error type that reaches `main`: a message with its cause chain and the
//! documented exit code (DESIGN.md section 2). Only `main` prints it.

use std::fmt;

/// Exit codes, sysexits-style, for schedulers to alert on.
pub mod code {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 2;
    /// Corrupt or newer ledger, bad exclusions line.
    pub const DATA: u8 = 65;
    /// Input file missing or unreadable.
    pub const NO_INPUT: u8 = 66;
    /// An API unavailable; work left for later.
    pub const UNAVAILABLE: u8 = 69;
    /// Cannot create the ledger or logs.
    pub const CANT_CREATE: u8 = 73;
    /// Ledger I/O error.
    pub const IO: u8 = 74;
    /// Partial: saturated slice, budget reached, some work failed; or the lock is held.
    pub const PARTIAL: u8 = 75;
    /// Credentials rejected.
    pub const NO_PERM: u8 = 77;
    /// Configuration error.
    pub const CONFIG: u8 = 78;
}

/// A failure with its exit code. Displays as one line: the message and its causes.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Fatal {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Fatal {
        Fatal {
            code,
            error: error.into(),
        }
    }

    pub fn msg(code: u8, msg: impl fmt::Display) -> Fatal {
        Fatal {
            code,
            error: anyhow::anyhow!("{msg}"),
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e: &(dyn std::error::Error + 'static) = self.error.as_ref();
        f.write_str(&one_line(e))
    }
}

impl From<crate::ledger::Error> for Fatal {
    fn from(e: crate::ledger::Error) -> Fatal {
        Fatal::new(e.exit_code(), e)
    }
}

/// An error and its causes on one line, without repeating a cause whose text
/// the message before it already shows (a message that embeds its source, a
/// transparent wrapper).
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    text
}

/// Attaches an exit code to any error.
pub trait WithCode<T> {
    fn code(self, code: u8) -> Result<T, Fatal>;
}

impl<T, E: Into<anyhow::Error>> WithCode<T> for Result<T, E> {
    fn code(self, code: u8) -> Result<T, Fatal> {
        self.map_err(|e| Fatal::new(code, e))
    }
}
