//! `gfi docs api`: the Lua API reference, `docs/api.md` as it should be
//! (`gfi docs api > docs/api.md` regenerates the page); `gfi docs --lua-types DIR`: the same
//! entries as LuaLS definition files.

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
    /// Write LuaLS (lua-language-server) definition files of the whole API and stdlib into
    /// DIR (created if missing), for editor completion and type checks.
    #[arg(long, value_name = "DIR")]
    pub lua_types: Option<std::path::PathBuf>,
}

pub fn run(args: DocsArgs) -> ExitCode {
    if let Some(dir) = &args.lua_types {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return ExitCode::from(2);
        }
        for (name, text) in crate::lua::luals::files() {
            let path = dir.join(&name);
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
            println!("wrote {}", path.display());
        }
        return ExitCode::SUCCESS;
    }
    match args.topic {
        Topic::Api => print!("{}", docs::api_page()),
        Topic::Overview => print!("{}", docs::overview()),
    }
    ExitCode::SUCCESS
}
