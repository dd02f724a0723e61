//! The run's own account in the log: a start line, where the settings came from
//! (never a value), and a finish line with the exit code and, for a non-zero exit,
//! the reason. The lines are written whatever fails, configuration errors
//! included, so the log file alone explains a scheduled run.

use crate::error::Fatal;
use std::sync::Mutex;

/// The reason the run's command gave for a non-zero exit (its summary's
/// problems), kept for the finish line.
static REASON: Mutex<Option<String>> = Mutex::new(None);

/// Records why the run ends as it does (`problems` of a summary); nothing when
/// there are none.
pub fn note_problems(problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    if let Ok(mut r) = REASON.lock() {
        *r = Some(problems.join("; "));
    }
}

fn noted() -> Option<String> {
    REASON.lock().ok().and_then(|mut r| r.take())
}

/// A fresh run id for the log lines: 16 hex digits.
pub fn new_run_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The start line.
pub fn started(ctx: &crate::logging::RunContext, origins: Option<&str>) {
    tracing::info!(
        run_id = %ctx.run_id,
        command = %ctx.command,
        profile = %ctx.profile,
        version = crate::cli::version::LONG,
        "run started"
    );
    if let Some(o) = origins {
        tracing::info!(origin = %o, "settings");
    }
}

/// The reason of a finished run: the error's text, else the problems the
/// command noted, else nothing for a success.
pub fn reason(result: &Result<u8, Fatal>) -> Option<String> {
    match result {
        Err(f) => Some(crate::logging::error_line(&f.to_string())),
        Ok(0) => None,
        Ok(_) => Some(noted().unwrap_or_else(|| "see the lines above".to_string())),
    }
}

/// The finish line: the exit code and, when it is not 0, the reason.
pub fn finished(ctx: &crate::logging::RunContext, code: u8, reason: Option<&str>, secs: f64) {
    match reason {
        None => tracing::info!(
            run_id = %ctx.run_id,
            exit_code = code,
            duration_seconds = secs,
            "run ended"
        ),
        Some(r) => tracing::error!(
            run_id = %ctx.run_id,
            exit_code = code,
            duration_seconds = secs,
            reason = %r,
            "run failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    #[test]
    fn the_reason_is_the_error_else_the_noted_problems() {
        let err: Result<u8, Fatal> = Err(Fatal::msg(code::CONFIG, "bad\nthing"));
        assert_eq!(reason(&err).as_deref(), Some("bad\\nthing"));
        assert_eq!(reason(&Ok(0)), None);
        note_problems(&[]);
        note_problems(&["LogRhythm rejected the key (401)".into(), "x".into()]);
        assert_eq!(
            reason(&Ok(77)).as_deref(),
            Some("LogRhythm rejected the key (401); x")
        );
        // Taken once.
        assert_eq!(reason(&Ok(75)).as_deref(), Some("see the lines above"));
        assert_eq!(new_run_id().len(), 16);
    }
}
