//! `gfi run SCRIPT.lua`: runs a fault plan, shows its progress, writes its journal.

use super::common::{self, LuaArgs};
use super::progress::{Progress, Style, Verbosity};
use crate::backend::spec::{BackendArgs, BackendKind};
use crate::journal::{Entry, Sink};
use crate::lua::sandbox::Limits;
use crate::report::model::RunBuilder;
use crate::session::{self, BackendSource, Outcome, Session, SessionError, SessionOptions};
use crate::signals::Interrupts;
use crate::xid::LineStyle;
use clap::{Args, ValueEnum};
use nix::sys::signal::Signal;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

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
    /// Write a JUnit XML report (one test case per check) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report (timeline, latencies, failures) to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
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
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

pub fn run(args: RunArgs) -> ExitCode {
    if args.remote.controller.remote.is_some() {
        return super::remote::run(args);
    }
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
    let progress = progress_for(&args);
    let script = scripts
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    // One script: its file's sha256. Several (a directory's scenarios): of their sources in
    // order, each followed by a NUL.
    let script_sha256 = match scripts.as_slice() {
        [one] => crate::journal::sha256_hex(one.source.as_bytes()),
        many => {
            let mut all = Vec::new();
            for s in many {
                all.extend_from_slice(s.source.as_bytes());
                all.push(0);
            }
            crate::journal::sha256_hex(&all)
        }
    };
    // The reports are built as the run records, so the journal is kept only to be written.
    let builder = Arc::new(Mutex::new(RunBuilder::default()));
    let run_sink: Sink = {
        let b = builder.clone();
        Arc::new(move |e: &Entry| b.lock().unwrap_or_else(|p| p.into_inner()).add(e))
    };
    let session = match Session::new(SessionOptions {
        seed: args.backend.seed,
        title: format!("gfi run {script}"),
        script,
        script_sha256: Some(script_sha256),
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
        sinks: vec![progress.sink(), run_sink.clone()],
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
    if args.journal.is_none() {
        session.journal().stop_keeping();
    }
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
    let run = std::mem::take(&mut *builder.lock().unwrap_or_else(|p| p.into_inner()))
        .finish(report.header.clone(), report.summary.clone());
    let outputs = crate::report::Outputs {
        junit: args.junit.clone(),
        html: args.report.clone(),
    };
    for e in crate::report::write(&run, &outputs) {
        eprintln!("error: {e}");
    }

    let checks = report.checks.clone();
    conclude(&Ending {
        // One injection's stages are all on the lines above; the table is for several.
        summary: crate::report::text::summary(&run, run.injections.len() > 1),
        error: match &report.outcome {
            Outcome::Failed(msg) => Some(msg.clone()),
            _ => None,
        },
        errors: report
            .cleanup_errors
            .iter()
            .chain(report.task_errors.iter())
            .cloned()
            .collect(),
        stopped: match &report.outcome {
            Outcome::Interrupted(Some(sig)) => {
                Some(("interrupted", crate::signals::exit_for(*sig)))
            }
            Outcome::Stopped(stop) => {
                eprintln!("\n{} (cleanups ran)", stop.describe());
                Some(stopped_by(stop.kind))
            }
            _ => None,
        },
        checks,
        injections: report.injections,
        run_time: report.run_time,
        virtual_time,
        wall: wall.elapsed(),
        seed,
        journal: args.journal.clone(),
    })
}

/// A guard's stop as the last line words it, and its exit status.
pub(crate) fn stopped_by(kind: crate::guard::StopKind) -> (&'static str, u8) {
    match kind {
        crate::guard::StopKind::Guardrail => ("stopped by a guardrail", EXIT_GUARDRAIL_STOP),
        crate::guard::StopKind::Tripwire => (
            "stopped by the tripwire (possible real GPU fault)",
            EXIT_TRIPWIRE,
        ),
    }
}

/// The progress display `--quiet`, `--verbose` and `--color` ask for.
pub(crate) fn progress_for(args: &RunArgs) -> std::sync::Arc<Progress> {
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
    Progress::new(
        verbosity,
        Style {
            color,
            status_line: tty,
        },
    )
}

/// How a run ended, for its last lines (a local run's report, a remote run's record).
pub(crate) struct Ending {
    /// The failures and the stage table, printed before the verdict.
    pub summary: String,
    /// The script raised: its message.
    pub error: Option<String>,
    /// Cleanups and tasks that failed.
    pub errors: Vec<String>,
    /// Stopped before its end (a signal, a cancel): the verdict and the exit status.
    pub stopped: Option<(&'static str, u8)>,
    pub checks: crate::lua::Checks,
    pub injections: u64,
    pub run_time: std::time::Duration,
    pub virtual_time: bool,
    /// How long it took on this machine's clock.
    pub wall: std::time::Duration,
    pub seed: u64,
    pub journal: Option<PathBuf>,
}

/// Prints a run's errors, verdict line and failed checks; returns its exit status.
pub(crate) fn conclude(end: &Ending) -> ExitCode {
    let mut code = 0u8;
    if let Some(msg) = &end.error {
        eprintln!("\nerror: the script failed:\n{msg}");
        code = 1;
    }
    for e in &end.errors {
        eprintln!("error: {e}");
        code = 1;
    }
    if let Some((_, stopped)) = end.stopped {
        code = stopped;
    }
    let checks = &end.checks;
    if code == 0 && checks.failed > 0 {
        code = EXIT_CHECKS_FAILED;
    }
    let time_note = if end.virtual_time {
        format!(
            "{} simulated in {:.2}s",
            crate::duration::format(end.run_time),
            end.wall.as_secs_f64()
        )
    } else {
        crate::duration::format(end.run_time)
    };
    let checks_note = if checks.passed + checks.failed > 0 {
        format!(
            ", checks {} passed / {} failed",
            checks.passed, checks.failed
        )
    } else {
        String::new()
    };
    let journal_note = end
        .journal
        .as_ref()
        .map(|p| format!(", journal {}", p.display()))
        .unwrap_or_default();
    let verdict = match (end.stopped, code) {
        (Some((verdict, _)), _) => verdict,
        (None, 0) => "finished",
        (None, EXIT_CHECKS_FAILED) => "finished with failed checks",
        _ => "failed",
    };
    print!("{}", end.summary);
    println!(
        "{verdict}: {time_note}, {} injection{}{checks_note}{journal_note} (seed {})",
        end.injections,
        if end.injections == 1 { "" } else { "s" },
        end.seed,
    );
    ExitCode::from(code)
}
