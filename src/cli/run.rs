//! `gfi run SCRIPT.lua`: runs a fault plan, shows its progress, writes its journal.

use super::common::{self, LuaArgs};
use super::progress::{Progress, Style, Verbosity};
use crate::backend::spec::{BackendArgs, BackendKind};
use crate::lua::sandbox::Limits;
use crate::session::{self, BackendSource, Outcome, Session, SessionError, SessionOptions};
use crate::signals::Interrupts;
use crate::xid::LineStyle;
use clap::{Args, ValueEnum};
use nix::sys::signal::Signal;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when the script finished but a check failed.
pub const EXIT_CHECKS_FAILED: u8 = 3;
/// Exit status when a guardrail stopped the run (after its cleanups).
pub const EXIT_GUARDRAIL_STOP: u8 = 4;
/// Exit status when the tripwire stopped the run: a possible real GPU fault.
pub const EXIT_TRIPWIRE: u8 = 5;

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Lua fault plan to run: a file, builtin:NAME, or a directory with --category.
    pub script: Option<PathBuf>,
    #[command(flatten)]
    pub scenarios: super::scenario_args::ScenarioArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub lua: LuaArgs,
    #[command(flatten)]
    pub guard: super::guard_args::GuardArgs,
    /// A script argument, readable as args.KEY or param("KEY", default). Repeatable.
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = common::parse_kv)]
    pub args: Vec<(String, String)>,
    /// Write the run journal (every fault, wait and observation) to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Default style of injected lines: driver, seed or unguarded.
    #[arg(long, default_value = "driver", value_parser = |s: &str| s.parse::<LineStyle>())]
    pub line_style: LineStyle,
    /// Only the script's output, warnings, failures and the summary.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also every wait as it starts.
    #[arg(short, long)]
    pub verbose: bool,
    /// Colour and status line: auto (when stdout is a terminal), always, never.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
}

pub fn run(args: RunArgs) -> ExitCode {
    let scripts = match super::scenario_args::resolve(args.script.as_deref(), &args.scenarios) {
        super::scenario_args::Resolved::Done(code) => return code,
        super::scenario_args::Resolved::Run(s) => s,
    };
    // Before the runtime starts threads: they inherit the blocked signal mask.
    let interrupts = match Interrupts::install(&[Signal::SIGINT, Signal::SIGTERM]) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let virtual_time = args.backend.backend == BackendKind::Sim;
    let rt = match session::runtime(virtual_time) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run_async(args, scripts, interrupts))
}

async fn run_async(
    args: RunArgs,
    scripts: Vec<super::scenario_args::Script>,
    mut interrupts: Interrupts,
) -> ExitCode {
    let wall = std::time::Instant::now();
    let tty = std::io::stdout().is_terminal();
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none(),
    };
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let progress = Progress::new(
        verbosity,
        Style {
            color,
            status_line: tty,
        },
    );
    let script = scripts
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let session = match Session::new(SessionOptions {
        seed: args.backend.seed,
        title: format!("gfi run {script}"),
        script,
        args: args.args.clone(),
        limits: Limits {
            interrupt: Some(interrupts.flag.clone()),
            ..args.lua.limits()
        },
        script_dir: scripts.first().and_then(|s| s.dir.clone()),
        lib_paths: args.lua.lib_paths.clone(),
        line_style: args.line_style,
        guard: args.guard.config(),
        dry_run: args.scenarios.dry_run,
        sinks: vec![progress.sink()],
        journal_path: args.journal.clone(),
        ..SessionOptions::new(BackendSource::Args(Box::new(args.backend.clone())))
    }) {
        Ok(s) => s,
        Err(e @ SessionError::Backend(_)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e @ SessionError::Host(_)) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let seed = session.seed();
    let virtual_time = session.virtual_time();

    // Several scripts (a directory's scenarios) run one after another until one does not
    // finish.
    let run_all = async {
        let mut outcome = Outcome::Finished;
        for s in &scripts {
            outcome = session.run_source(&s.source, &s.name).await;
            if outcome != Outcome::Finished {
                break;
            }
        }
        outcome
    };
    let outcome = tokio::select! {
        biased;
        o = run_all => o,
        sig = interrupts.next() => Outcome::Interrupted(Some(sig)),
    };
    progress.clear_status();
    if let Outcome::Interrupted(Some(sig)) = &outcome {
        eprintln!("\ninterrupted by {sig}: running cleanups (Ctrl-C again to abandon them)");
    }
    interrupts.clear();
    let abandon = async {
        let sig = interrupts.next().await;
        format!("cleanups abandoned by {sig}")
    };
    let report = session.finish(outcome, Default::default(), abandon).await;
    if let Some(e) = &report.journal_error {
        eprintln!("error: {e}");
    }

    let mut code = 0u8;
    if let Outcome::Failed(msg) = &report.outcome {
        eprintln!("\nerror: the script failed:\n{msg}");
        code = 1;
    }
    for e in report
        .cleanup_errors
        .iter()
        .chain(report.task_errors.iter())
    {
        eprintln!("error: {e}");
        code = 1;
    }
    if let Outcome::Stopped(stop) = &report.outcome {
        eprintln!("\n{} (cleanups ran)", stop.describe());
        code = match stop.kind {
            crate::guard::StopKind::Guardrail => EXIT_GUARDRAIL_STOP,
            crate::guard::StopKind::Tripwire => EXIT_TRIPWIRE,
        };
    }
    let interrupted = matches!(report.outcome, Outcome::Interrupted(_));
    if let Outcome::Interrupted(Some(sig)) = report.outcome {
        code = crate::signals::exit_for(sig);
    }
    let checks = &report.checks;
    if code == 0 && checks.failed > 0 {
        code = EXIT_CHECKS_FAILED;
    }
    let time_note = if virtual_time {
        format!(
            "{} simulated in {:.2}s",
            crate::duration::format(report.run_time),
            wall.elapsed().as_secs_f64()
        )
    } else {
        crate::duration::format(report.run_time)
    };
    let checks_note = if checks.passed + checks.failed > 0 {
        format!(
            ", checks {} passed / {} failed",
            checks.passed, checks.failed
        )
    } else {
        String::new()
    };
    let journal_note = args
        .journal
        .as_ref()
        .map(|p| format!(", journal {}", p.display()))
        .unwrap_or_default();
    let verdict = match code {
        _ if interrupted => "interrupted",
        0 => "finished",
        EXIT_CHECKS_FAILED => "finished with failed checks",
        EXIT_GUARDRAIL_STOP => "stopped by a guardrail",
        EXIT_TRIPWIRE => "stopped by the tripwire (possible real GPU fault)",
        _ => "failed",
    };
    println!(
        "{verdict}: {time_note}, {} injection{}{checks_note}{journal_note} (seed {seed})",
        report.injections,
        if report.injections == 1 { "" } else { "s" },
    );
    for f in &checks.failures {
        println!("  failed check: {f}");
    }
    ExitCode::from(code)
}
