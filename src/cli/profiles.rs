//! `--all-profiles`: runs the same command once per `[profile.NAME]` of the config
//! file, in turn, each as its own `lrci --profile NAME ...` process. So each profile
//! has its own settings, run lock, ledger and log directory (the child's logging
//! writes there), one failing profile never stops the others, and the exit code is
//! the most severe of them ([`super::most_severe`]).

use crate::cli::args::{Cli, Command, ConfigCommand};
use crate::error::{code, Fatal};
use std::ffi::OsString;

/// Whether the command line asks for every profile.
pub fn all_profiles(cli: &Cli) -> bool {
    match &cli.command {
        Some(Command::Sync(a)) => a.mode.all_profiles,
        Some(Command::Backfill(a)) => a.mode.all_profiles,
        Some(Command::Replay(a)) => a.mode.all_profiles,
        Some(Command::Doctor(a)) => a.sync.mode.all_profiles,
        Some(Command::Config(a)) => match &a.command {
            ConfigCommand::Show(s) | ConfigCommand::Check(s) => s.all_profiles,
        },
        _ => false,
    }
}

/// The child's arguments: `argv` without `--all-profiles`, with `--profile NAME`
/// in front (global flags may come first).
pub fn child_args(argv: &[OsString], profile: &str) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["--profile".into(), profile.into()];
    out.extend(
        argv.iter()
            .skip(1)
            .filter(|a| a.to_str() != Some("--all-profiles"))
            .cloned(),
    );
    out
}

/// Runs every profile in turn and returns the most severe exit code.
pub fn run_each(cli: &Cli, argv: &[OsString]) -> Result<u8, Fatal> {
    let profiles = crate::config::resolve_all(&super::settings::sources(cli))?;
    let exe = std::env::current_exe().map_err(|e| {
        Fatal::new(
            code::CONFIG,
            anyhow::Error::new(e).context("cannot find the lrci executable to run each profile"),
        )
    })?;
    let mut worst = code::OK;
    for (name, _) in &profiles {
        tracing::info!(profile = %name, "running profile {name}");
        let status = std::process::Command::new(&exe)
            .args(child_args(argv, name))
            .env_remove(crate::config::spec::PROFILE_VAR)
            .status();
        let exit = match status {
            // A child killed by a signal has no code: count it as a failure.
            Ok(s) => s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
            Err(e) => {
                tracing::error!(profile = %name, error = %e, "could not start the run of profile {name}");
                code::CONFIG
            }
        };
        if exit == code::OK {
            tracing::info!(profile = %name, "profile {name}: exit code 0");
        } else {
            tracing::warn!(profile = %name, exit_code = exit, "profile {name}: exit code {exit}");
        }
        worst = super::most_severe(worst, exit);
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_args_drop_all_profiles_and_name_the_profile() {
        let argv: Vec<OsString> = [
            "lrci",
            "--config",
            "c.toml",
            "sync",
            "--all-profiles",
            "--json",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let got: Vec<String> = child_args(&argv, "acme")
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            got,
            ["--profile", "acme", "--config", "c.toml", "sync", "--json"]
        );
    }
}
