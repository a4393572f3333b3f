//! The `gfi` command line: one binary, several roles.

pub mod agent;
mod xids;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "gfi",
    version,
    about = "GPU fault injector: provoke NVSentinel with realistic XID errors and measure its reaction"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the XID catalogue (what each XID means and what NVSentinel does about it).
    Xids(xids::XidsArgs),
    /// Run the node agent: the HTTP API that writes XID lines into this node's kernel log.
    Agent(Box<agent::AgentArgs>),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Xids(args) => xids::run(args),
        Command::Agent(args) => agent::run(*args),
    }
}
