//! Command-line surface: the clap types and dispatch to each subcommand's `run`.

pub mod sim;

/// lrci: sends LogRhythm alarms to Recorded Future Collective Insights.
#[derive(Debug, clap::Parser)]
#[command(name = "lrci", version, about)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve a simulated LogRhythm Alarm API and Collective Insights API on loopback.
    Sim(sim::SimArgs),
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sim(args) => sim::run(args).await,
    }
}
