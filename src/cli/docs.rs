//! `gfi docs api`: the Lua API reference, `docs/api.md` as it should be
//! (`gfi docs api > docs/api.md` regenerates the page).

use crate::lua::docs;
use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Topic {
    /// The Lua API reference as Markdown: the page docs/api.md.
    Api,
    /// The short overview help() prints.
    Overview,
}

#[derive(Debug, Args)]
pub struct DocsArgs {
    #[arg(value_enum, default_value = "api")]
    pub topic: Topic,
}

pub fn run(args: DocsArgs) -> ExitCode {
    match args.topic {
        Topic::Api => print!("{}", docs::api_page()),
        Topic::Overview => print!("{}", docs::overview()),
    }
    ExitCode::SUCCESS
}
