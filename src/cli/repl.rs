//! `gfi repl`: the interactive Lua shell (see [`crate::repl`]), with the same backend and Lua
//! flags as `gfi run`.

use super::common::{self, LuaArgs};
use super::run::ColorChoice;
use crate::backend::spec::BackendArgs;
use crate::repl::pacer::Speed;
use crate::repl::{self, history};
use crate::xid::LineStyle;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ReplArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub lua: LuaArgs,
    /// sim: virtual seconds per real second ("1" is real time, "60" a minute a second), or
    /// "max": waits return at once. Paced, waits take real time and Ctrl-C can cancel them.
    #[arg(long, value_name = "N|max", default_value = "max", value_parser = |s: &str| s.parse::<Speed>())]
    pub sim_speed: Speed,
    /// History file [default: $XDG_STATE_HOME/gfi/history or ~/.local/state/gfi/history].
    #[arg(long, value_name = "FILE", env = "GFI_HISTORY")]
    pub history: Option<PathBuf>,
    /// Keep no history file (history lives for this session only).
    #[arg(long)]
    pub no_history: bool,
    /// Run this Lua file before the first prompt. Repeatable.
    #[arg(long = "load", value_name = "FILE")]
    pub load: Vec<PathBuf>,
    /// Write the session's journal to this JSON file when it ends (.journal writes it any time).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// A script argument, readable as args.KEY or param("KEY", default). Repeatable.
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = common::parse_kv)]
    pub args: Vec<(String, String)>,
    /// Default style of injected lines: driver, seed or unguarded.
    #[arg(long, default_value = "driver", value_parser = |s: &str| s.parse::<LineStyle>())]
    pub line_style: LineStyle,
    /// Hide the cluster's reactions (NVSentinel's stages, injections, waits).
    #[arg(short, long)]
    pub quiet: bool,
    /// Colour: auto (when stdout is a terminal), always, never.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
    /// Piped input: stop at the first chunk that fails.
    #[arg(long)]
    pub stop_on_error: bool,
}

pub fn run(args: ReplArgs) -> ExitCode {
    let history = if args.no_history {
        None
    } else {
        args.history
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| history::default_path(|k| std::env::var(k).ok()))
    };
    let history = history.and_then(|p| match history::prepare(&p) {
        Ok(()) => Some(p),
        Err(e) => {
            eprintln!("warning: {e}; history is kept for this session only");
            None
        }
    });
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    repl::run(repl::Config {
        limits: args.lua.limits(),
        lib_paths: args.lua.lib_paths.clone(),
        backend: args.backend,
        args: args.args,
        line_style: args.line_style,
        color,
        quiet: args.quiet,
        history,
        speed: args.sim_speed,
        journal: args.journal,
        load: args.load,
        stop_on_error: args.stop_on_error,
    })
}
