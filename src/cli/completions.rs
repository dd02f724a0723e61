//! `lrci completions SHELL` and `lrci man`: generated from the clap definitions
//! in [`super::args`], printed on stdout.

use crate::cli::args::{Cli, CompletionsArgs};
use crate::error::{code, Fatal};
use clap::CommandFactory;

/// The completion script of `shell` as text.
pub fn script(shell: clap_complete::Shell) -> String {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lrci", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The man page (roff) as text.
pub fn page() -> Result<String, Fatal> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Fatal::msg(code::IO, format!("cannot render the man page: {e}")))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `lrci completions SHELL`.
pub fn completions(a: &CompletionsArgs) -> Result<u8, Fatal> {
    super::output::print(&script(a.shell)).map(|()| code::OK)
}

/// `lrci man`.
pub fn man() -> Result<u8, Fatal> {
    super::output::print(&page()?).map(|()| code::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::PowerShell,
            Shell::Elvish,
        ] {
            let s = script(shell);
            assert!(s.contains("backfill"), "{shell}");
            assert!(s.contains("lrci"), "{shell}");
        }
        let man = page().unwrap();
        assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
        assert!(man.contains("backfill"));
    }
}
