//! The `gfi` command line: one binary, several roles.

pub(crate) mod agent;
pub(crate) mod common;
pub(crate) mod controller;
mod docs;
pub(crate) mod guard_args;
pub(crate) mod progress;
pub(crate) mod remote;
pub(crate) mod repl;
mod report;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod scenario_args;
mod xids;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "gfi",
    version,
    about = "GPU fault injector: provoke NVSentinel with realistic XID errors and measure its reaction",
    long_about = "GPU fault injector: writes realistic NVIDIA XID lines into a node's kernel log and measures every stage of NVSentinel's reaction (detect, cordon, drain, reboot, uncordon). Fault plans are Lua scripts; `gfi run plan.lua` runs one on a built-in simulated cluster by default."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Lua fault plan (on the simulated cluster unless --backend says otherwise).
    Run(Box<run::RunArgs>),
    /// Interactive Lua shell with the fault API (piped input runs without prompts).
    Repl(Box<repl::ReplArgs>),
    /// Reports from a saved journal (summary, --html, --junit), or --compare two runs.
    Report(Box<report::ReportArgs>),
    /// Print the XID catalogue (what each XID means and what NVSentinel does about it).
    Xids(xids::XidsArgs),
    /// Print reference documentation (the Lua API as Markdown).
    Docs(docs::DocsArgs),
    /// Run the node agent: the HTTP API that writes XID lines into this node's kernel log.
    Agent(Box<agent::AgentArgs>),
    /// The runs on a gfi controller: list them, show one (live while it runs), cancel one.
    Runs(Box<runs::RunsArgs>),
    /// Run the controller: the seed's central API and remote runs, in the cluster.
    Controller(Box<controller::ControllerArgs>),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Repl(args) => repl::run(*args),
        Command::Report(args) => report::run(*args),
        Command::Xids(args) => xids::run(args),
        Command::Docs(args) => docs::run(args),
        Command::Agent(args) => agent::run(*args),
        Command::Runs(args) => runs::run(*args),
        Command::Controller(args) => controller::run(*args),
    }
}
