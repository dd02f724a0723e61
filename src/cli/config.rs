//! `lrci config show` and `lrci config check`: the effective settings with the
//! origin of each (keys never shown), and their validation with no network and no
//! ledger access (exit 78 naming the culprit, 66 for a named file that cannot be
//! read, 65 for a bad line in a filter file).

use crate::cli::args::{ConfigArgs, ConfigCommand};
use crate::config::{show, Settings};
use crate::error::{code, Fatal};
use std::io::Write;

/// Runs `config show` or `config check` on the resolved settings.
pub fn run(s: &Settings, args: &ConfigArgs) -> Result<u8, Fatal> {
    let text = match &args.command {
        ConfigCommand::Show(a) if a.json => format!("{}\n", show::json(s)),
        ConfigCommand::Show(_) => show::text(s),
        ConfigCommand::Check(a) => {
            check(s)?;
            let summary = summary(s);
            if a.json {
                format!(
                    "{}\n",
                    serde_json::json!({"ok": true, "profile": s.profile.as_ref().map(|p| p.value.clone()), "ledger": s.ledger().value.display().to_string()})
                )
            } else {
                summary
            }
        }
    };
    write_stdout(&text)?;
    Ok(code::OK)
}

/// Every check that needs neither network nor ledger: the URLs, both keys (read
/// from their files or variables), the CA bundle, the proxy variables and the
/// filter files.
pub fn check(s: &Settings) -> Result<(), Fatal> {
    s.api()?;
    s.filters()?;
    s.check_runtime()
}

fn summary(s: &Settings) -> String {
    let profile = s
        .profile
        .as_ref()
        .map_or(String::new(), |p| format!(" (profile {})", p.value));
    let file = s.config.as_ref().map_or("no config file".to_string(), |c| {
        format!("config file {}", c.value.display())
    });
    format!(
        "config ok{profile}: {file}; ledger {}; log directory {}\n",
        s.ledger().value.display(),
        s.log_dir().value.display()
    )
}

fn write_stdout(text: &str) -> Result<(), Fatal> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fatal::msg(code::IO, format!("cannot write to stdout: {e}"))),
    }
}
