//! The flag layer: each flag lands on its declared setting with its flag origin,
//! and every declared flag exists on the command line.

use super::*;
use crate::cli::args::normalize_argv;
use crate::config::spec::SETTINGS;
use crate::config::Origin;
use clap::{CommandFactory, Parser};

fn layer_of(args: &[&str]) -> Layer {
    let cli = Cli::try_parse_from(normalize_argv(args.iter().map(|s| s.into()))).unwrap();
    flag_layer(&cli)
}

#[test]
fn flags_become_the_flag_layer_with_their_origins() {
    let rows: [(&[&str], &str, Raw); 8] = [
        (&["lrci", "-rbp", "40"], "min_rbp", Raw::Int(40)),
        (&["lrci", "-lb", "3"], "lookback", Raw::Int(3)),
        (&["lrci", "-rf"], "rf_only", Raw::Bool(true)),
        (
            &["lrci", "-ef", "r.txt"],
            "exclude_rules_file",
            Raw::Str("r.txt".into()),
        ),
        (
            &["lrci", "-l", "DEBUG"],
            "log_level",
            Raw::Str("debug".into()),
        ),
        (
            &["lrci", "replay", "--daily-budget", "9"],
            "daily_budget",
            Raw::Int(9),
        ),
        (
            &["lrci", "config", "show", "--own-network", "198.51.100.0/24"],
            "own_networks",
            Raw::List(vec!["198.51.100.0/24".into()]),
        ),
        (
            &["lrci", "doctor", "--rf-url", "https://x"],
            "rf_api_url",
            Raw::Str("https://x".into()),
        ),
    ];
    for (args, name, raw) in rows {
        let l = layer_of(args);
        let (got, origin) = l.entries.get(name).unwrap_or_else(|| panic!("{args:?}"));
        assert_eq!(got, &raw, "{args:?}");
        let flag = crate::config::spec::spec(name).unwrap().flag;
        assert_eq!(origin, &Origin::Flag(flag));
    }
    // Nothing given, nothing in the layer: the other layers decide.
    assert!(layer_of(&["lrci", "sync"]).entries.is_empty());
}

#[test]
fn every_declared_flag_exists_on_sync() {
    let cmd = Cli::command();
    let sync = cmd.find_subcommand("sync").unwrap();
    for s in SETTINGS {
        let long = s.flag.trim_start_matches("--");
        let found = sync.get_arguments().any(|a| a.get_long() == Some(long))
            || cmd.get_arguments().any(|a| a.get_long() == Some(long));
        assert!(found, "{} has no {} flag", s.name, s.flag);
    }
}
