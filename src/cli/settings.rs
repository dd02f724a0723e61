//! The only file that knows both the clap types and `config`: turns the parsed
//! command line into the flag layer (each value's origin is its flag) and resolves
//! the settings once. `config` never imports `cli`.

use crate::cli::args::{
    ApiArgs, CiApiArgs, Cli, Command, ConfigCommand, GlobalArgs, RunArgs, SettingArgs, SubmitArgs,
};
use crate::config::{self, Layer, Raw, Settings, Sources};
use crate::error::Fatal;
use std::path::{Path, PathBuf};

fn path(p: &Path) -> Raw {
    Raw::Str(p.to_string_lossy().into_owned())
}

fn int(n: impl Into<u64>) -> Raw {
    Raw::Int(i64::try_from(n.into()).unwrap_or(i64::MAX))
}

/// The global flags' part of the layer.
pub fn global_layer(g: &GlobalArgs, layer: &mut Layer) {
    if let Some(p) = &g.ledger {
        layer.flag("ledger", path(p));
    }
    if let Some(p) = &g.log_dir {
        layer.flag("log_dir", path(p));
    }
    if let Some(l) = g.log_level {
        layer.flag("log_level", Raw::Str(l.name().to_string()));
    }
    if let Some(f) = g.log_format {
        let name = match f {
            crate::cli::args::LogFormat::Text => "text",
            crate::cli::args::LogFormat::Json => "json",
        };
        layer.flag("log_format", Raw::Str(name.to_string()));
    }
    if let Some(p) = &g.metrics_file {
        layer.flag("metrics_file", path(p));
    }
}

fn ci_layer(a: &CiApiArgs, layer: &mut Layer) {
    if let Some(u) = &a.rf_url {
        layer.flag("rf_api_url", Raw::Str(u.clone()));
    }
    if let Some(p) = &a.rf_key_file {
        layer.flag("rf_api_key_file", path(p));
    }
    for (name, v) in [
        ("timeout", a.timeout),
        ("connect_timeout", a.connect_timeout),
        ("max_retries", a.max_retries.map(u64::from)),
    ] {
        if let Some(n) = v {
            layer.flag(name, int(n));
        }
    }
}

fn api_layer(a: &ApiArgs, layer: &mut Layer) {
    if let Some(u) = &a.lr_url {
        layer.flag("logrhythm_api_url", Raw::Str(u.clone()));
    }
    if let Some(p) = &a.lr_key_file {
        layer.flag("logrhythm_api_key_file", path(p));
    }
    if let Some(p) = &a.lr_ca_cert {
        layer.flag("lr_ca_cert", path(p));
    }
    if a.lr_insecure {
        layer.flag("lr_insecure", Raw::Bool(true));
    }
    ci_layer(&a.ci, layer);
}

fn submit_layer(a: &SubmitArgs, layer: &mut Layer) {
    if let Some(n) = a.batch_size {
        layer.flag("batch_size", int(n));
    }
    if let Some(n) = a.daily_budget {
        layer.flag("daily_budget", int(n));
    }
    if let Some(p) = &a.detection_types {
        layer.flag("detection_types_file", path(p));
    }
    if let Some(t) = &a.detection_type {
        layer.flag("detection_type", Raw::Str(t.clone()));
    }
    for (name, on) in [("mitre_codes", a.mitre_codes), ("malwares", a.malwares)] {
        if on {
            layer.flag(name, Raw::Bool(true));
        }
    }
}

fn run_layer(r: &RunArgs, layer: &mut Layer) {
    if let Some(n) = r.min_rbp {
        layer.flag("min_rbp", int(n));
    }
    for (name, on) in [("rf_only", r.rf_only), ("fetch_details", r.fetch_details)] {
        if on {
            layer.flag(name, Raw::Bool(true));
        }
    }
    for (name, p) in [
        ("exclude_rules_file", &r.exclude_rules),
        ("internal_domains_file", &r.internal_domains),
        ("exclude_indicators_file", &r.exclude_indicators),
    ] {
        if let Some(p) = p {
            layer.flag(name, path(p));
        }
    }
    if !r.internal_domain.is_empty() {
        layer.flag("internal_domains", Raw::List(r.internal_domain.clone()));
    }
    if !r.own_network.is_empty() {
        layer.flag("own_networks", Raw::List(r.own_network.clone()));
    }
    if !r.allow_domain.is_empty() {
        layer.flag("allow_domains", Raw::List(r.allow_domain.clone()));
    }
    if !r.allow_network.is_empty() {
        layer.flag("allow_networks", Raw::List(r.allow_network.clone()));
    }
    let numbers = [
        ("settle", r.settle),
        ("events_grace", r.events_grace),
        ("relist_horizon", r.relist_horizon),
        ("concurrency_max", r.concurrency_max.map(u64::from)),
        ("page_size", r.page_size.map(u64::from)),
        ("max_runtime", r.max_runtime),
    ];
    for (name, v) in numbers {
        if let Some(n) = v {
            layer.flag(name, int(n));
        }
    }
    if let Some(c) = &r.concurrency {
        layer.flag("concurrency", Raw::Str(c.clone()));
    }
    submit_layer(&r.submit, layer);
}

fn setting_layer(s: &SettingArgs, layer: &mut Layer) {
    api_layer(&s.api, layer);
    run_layer(&s.run, layer);
    if let Some(n) = s.lookback_days {
        layer.flag("lookback", int(n));
    }
    if let Some(n) = s.max_catchup_days {
        layer.flag("max_catchup", int(n));
    }
}

/// The flag layer of a parsed command line.
pub fn flag_layer(cli: &Cli) -> Layer {
    let mut layer = Layer::default();
    global_layer(&cli.global, &mut layer);
    match &cli.command {
        Some(Command::Sync(a)) => setting_layer(&a.settings, &mut layer),
        Some(Command::Backfill(a)) => setting_layer(&a.settings, &mut layer),
        Some(Command::Doctor(a)) => setting_layer(&a.sync.settings, &mut layer),
        Some(Command::Config(a)) => match &a.command {
            ConfigCommand::Show(s) | ConfigCommand::Check(s) => {
                setting_layer(&s.settings, &mut layer)
            }
        },
        Some(Command::Reconcile(a)) => ci_layer(&a.api, &mut layer),
        Some(Command::Replay(a)) => {
            ci_layer(&a.api, &mut layer);
            submit_layer(&a.submit, &mut layer);
        }
        Some(
            Command::Sim(_)
            | Command::Demo(_)
            | Command::Ledger(_)
            | Command::Completions(_)
            | Command::Man,
        )
        | None => {}
    }
    layer
}

/// Reads an environment variable; a value that is not UTF-8 counts as set to
/// text that fails validation, never as silently unset.
pub fn real_env(var: &str) -> Option<String> {
    std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
}

/// The sources of a parsed command line, with the real environment.
pub fn sources(cli: &Cli) -> Sources<'static> {
    sources_of(flag_layer(cli), &cli.global)
}

fn sources_of(flags: Layer, g: &GlobalArgs) -> Sources<'static> {
    Sources {
        flags,
        config: g.config.clone(),
        profile: g.profile.clone(),
        env: &real_env,
    }
}

/// Resolves the settings of a parsed command line once.
pub fn resolve(cli: &Cli) -> Result<Settings, Fatal> {
    config::resolve(&sources(cli))
}

/// The ledger path for commands that take only the global flags (the ledger
/// audit commands): the same resolution, with no setting flags.
pub fn ledger_path(g: &GlobalArgs) -> Result<PathBuf, Fatal> {
    let mut layer = Layer::default();
    global_layer(g, &mut layer);
    Ok(config::resolve(&sources_of(layer, g))?.ledger().value)
}

/// The indicator policy as configured, for commands that take only the global
/// flags (`ledger domains`, `ledger networks`, `ledger show`).
pub fn policy_for(g: &GlobalArgs) -> Result<crate::policy::Policy, Fatal> {
    let mut layer = Layer::default();
    global_layer(g, &mut layer);
    Ok(config::resolve(&sources_of(layer, g))?.filters()?.policy)
}

#[cfg(test)]
mod tests;
