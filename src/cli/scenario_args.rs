//! `gfi run`'s scenario flags: `--list [DIR]`, `--category EXPR`, `--help-args`, `--dry-run`,
//! and what SCRIPT names (a file, `builtin:NAME`, or a directory of scenarios).

use crate::lua::meta::{self, BUILTIN_PREFIX, category::Expr};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Default, Args)]
pub struct ScenarioArgs {
    /// List the built-in scenarios and scripts, and those in DIR, with categories and args.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub list: Option<Option<PathBuf>>,
    /// Only scenarios whose categories match, e.g. 'safe and not reboots-node' (with a
    /// directory as SCRIPT: run each, in name order; with --list: list them).
    #[arg(long, value_name = "EXPR")]
    pub category: Option<String>,
    /// Print the script's args (name, default, description) and exit.
    #[arg(long)]
    pub help_args: bool,
    /// Print the schedule the seed gives (time, node, GPU, XID) and inject nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One script to run.
pub struct Script {
    /// As the journal and messages name it: a path or `builtin:NAME`.
    pub name: String,
    pub source: String,
    /// Where its `require`s look first.
    pub dir: Option<PathBuf>,
}

pub enum Resolved {
    /// Nothing to run: the listing or the args were printed, or the input was wrong.
    Done(ExitCode),
    Run(Vec<Script>),
}

fn usage(msg: String) -> Resolved {
    eprintln!("error: {msg}");
    Resolved::Done(ExitCode::from(2))
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn builtin_names() -> String {
    meta::BUILTIN
        .iter()
        .map(|(n, _)| format!("{BUILTIN_PREFIX}{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn resolve(script: Option<&Path>, a: &ScenarioArgs) -> Resolved {
    let expr = match a.category.as_deref().map(Expr::parse).transpose() {
        Ok(e) => e,
        Err(e) => return usage(e),
    };
    let selected = |m: &meta::ScriptMeta| {
        expr.as_ref()
            .is_none_or(|e| m.scenario && e.matches(&m.categories))
    };
    if let Some(dir) = &a.list {
        let dir = dir.as_deref().or(script);
        return match meta::list(dir) {
            Ok(items) => {
                let items: Vec<_> = items.into_iter().filter(|m| selected(m)).collect();
                print!("{}", meta::render_list(&items));
                Resolved::Done(ExitCode::SUCCESS)
            }
            Err(e) => usage(e),
        };
    }
    let Some(script) = script else {
        return usage("gfi run needs a SCRIPT: a .lua file, builtin:NAME, or a directory with --category (gfi run --list shows what there is)".into());
    };
    let text = script.to_string_lossy();
    let scripts: Vec<Script> = if let Some(name) = text.strip_prefix(BUILTIN_PREFIX) {
        match meta::builtin_source(name) {
            Some(src) => vec![Script {
                name: text.to_string(),
                source: src.into_owned(),
                dir: None,
            }],
            None => {
                return usage(format!(
                    "no built-in script '{name}' (built-in: {})",
                    builtin_names()
                ));
            }
        }
    } else if script.is_dir() {
        let Some(e) = &expr else {
            return usage(format!(
                "{} is a directory: give --category EXPR to run the scenarios in it that match, or --list to see them",
                script.display()
            ));
        };
        let files = match meta::lua_files(script) {
            Ok(f) => f,
            Err(e) => return usage(e),
        };
        let mut out = Vec::new();
        for f in files {
            let Ok(src) = std::fs::read_to_string(&f) else {
                return usage(format!("cannot read {}", f.display()));
            };
            let m = meta::read(&src, &f.display().to_string(), Some(dir_of(&f)));
            if m.scenario && e.matches(&m.categories) {
                out.push(Script {
                    name: f.display().to_string(),
                    source: src,
                    dir: Some(dir_of(&f)),
                });
            }
        }
        if out.is_empty() {
            return usage(format!(
                "no scenario in {} matches the categories '{}'",
                script.display(),
                a.category.as_deref().unwrap_or_default()
            ));
        }
        out
    } else if script.is_file() {
        match std::fs::read_to_string(script) {
            Ok(src) => vec![Script {
                name: script.display().to_string(),
                source: src,
                dir: Some(dir_of(script)),
            }],
            Err(e) => return usage(format!("cannot read {}: {e}", script.display())),
        }
    } else {
        return usage(format!(
            "script {} not found (or not a file)",
            script.display()
        ));
    };
    if a.help_args {
        for s in &scripts {
            print!(
                "{}",
                meta::render_args(&meta::read(&s.source, &s.name, s.dir.clone()))
            );
        }
        return Resolved::Done(ExitCode::SUCCESS);
    }
    Resolved::Run(scripts)
}
