//! `gfi run SCRIPT.lua`: runs a fault plan, shows its progress, writes its journal.

use super::common::{self, BackendArgs, BackendKind, LuaArgs};
use super::progress::{Progress, Style, Verbosity};
use crate::clock::RunClock;
use crate::journal::{Header, Journal};
use crate::lua::sandbox::Limits;
use crate::lua::{Host, HostOptions, describe_error};
use crate::signals::Interrupts;
use crate::xid::LineStyle;
use clap::{Args, ValueEnum};
use nix::sys::signal::Signal;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when the script finished but a check failed.
pub const EXIT_CHECKS_FAILED: u8 = 3;

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Lua fault plan to run.
    pub script: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub lua: LuaArgs,
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

enum Ending {
    Finished,
    Failed(String),
    Interrupted(Signal),
}

pub fn run(args: RunArgs) -> ExitCode {
    if !args.script.is_file() {
        eprintln!(
            "error: script {} not found (or not a file)",
            args.script.display()
        );
        return ExitCode::from(2);
    }
    // Before the runtime starts threads: they inherit the blocked signal mask.
    let interrupts = match Interrupts::install(&[Signal::SIGINT, Signal::SIGTERM]) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let virtual_time = args.backend.backend == BackendKind::Sim;
    let rt = match common::script_runtime(virtual_time) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run_async(args, virtual_time, interrupts))
}

async fn run_async(args: RunArgs, virtual_time: bool, mut interrupts: Interrupts) -> ExitCode {
    let wall = std::time::Instant::now();
    let seed = args.backend.seed.unwrap_or_else(common::random_seed);
    let clock = RunClock::start(virtual_time);
    let journal = Journal::new(clock);
    let built = match common::build_backend(&args.backend, seed, clock) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let backend = built.backend;
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
    journal.add_sink(progress.sink());
    backend.set_observer(journal.observer());

    let run_id = common::run_id(seed, virtual_time);
    let script = args.script.display().to_string();
    let header = Header {
        gfi: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.clone(),
        seed,
        backend: backend.name().to_string(),
        script: script.clone(),
        args: args.args.clone(),
        virtual_time,
        started_at: clock.rfc3339(),
    };
    journal.record(
        "run.start",
        None,
        format!(
            "gfi run {script}  seed={seed}  backend={}  run={run_id}",
            built.description
        ),
        json!({"seed": seed, "run_id": run_id, "backend": built.description}),
    );
    let opts = HostOptions {
        seed,
        run_id: run_id.clone(),
        limits: Limits {
            interrupt: Some(interrupts.flag.clone()),
            ..args.lua.limits()
        },
        script_dir: args.script.parent().map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        }),
        lib_paths: args.lua.lib_paths.clone(),
        args: args.args.clone(),
        line_style: args.line_style,
    };
    let host = match Host::new(opts, backend.clone(), journal.clone()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };

    let ending = tokio::select! {
        biased;
        r = host.run_file(&args.script) => match r {
            Ok(_) => Ending::Finished,
            Err(e) => Ending::Failed(describe_error(&e)),
        },
        sig = interrupts.next() => Ending::Interrupted(sig),
    };
    progress.clear_status();
    match &ending {
        Ending::Failed(msg) => {
            journal.record("run.error", None, msg.clone(), serde_json::Value::Null);
        }
        Ending::Interrupted(sig) => {
            eprintln!("\ninterrupted by {sig}: running cleanups (Ctrl-C again to abandon them)");
            journal.record(
                "run.interrupted",
                None,
                format!("interrupted by {sig}"),
                serde_json::Value::Null,
            );
        }
        Ending::Finished => {}
    }
    // Tasks first: a task still busy must not hold up the cleanups.
    let task_errors = host.finish_tasks();
    interrupts.clear();
    let cleanup_errors = tokio::select! {
        biased;
        errs = host.run_cleanups() => errs,
        sig = interrupts.next() => vec![format!("cleanups abandoned by {sig}")],
    };
    let checks = host.checks();
    let run_time = clock.elapsed();
    let summary = json!({
        "outcome": match &ending { Ending::Finished => "finished", Ending::Failed(_) => "failed", Ending::Interrupted(_) => "interrupted" },
        "error": match &ending { Ending::Failed(m) => json!(m), _ => json!(null) },
        "run_seconds": run_time.as_millis() as f64 / 1000.0,
        "injections": host.ctx().injections.get(),
        "checks": checks,
        "cleanup_errors": cleanup_errors,
        "task_errors": task_errors,
    });
    journal.record("run.end", None, "run ended", summary.clone());

    if let Some(path) = &args.journal
        && let Err(e) = std::fs::write(path, journal.to_json(&header, &summary))
    {
        eprintln!("error: cannot write the journal to {}: {e}", path.display());
    }

    let mut code = 0u8;
    if let Ending::Failed(msg) = &ending {
        eprintln!("\nerror: the script failed:\n{msg}");
        code = 1;
    }
    for e in cleanup_errors.iter().chain(task_errors.iter()) {
        eprintln!("error: {e}");
        code = 1;
    }
    let interrupted = matches!(ending, Ending::Interrupted(_));
    if let Ending::Interrupted(sig) = ending {
        code = crate::signals::exit_for(sig);
    }
    if code == 0 && checks.failed > 0 {
        code = EXIT_CHECKS_FAILED;
    }
    let time_note = if virtual_time {
        format!(
            "{} simulated in {:.2}s",
            crate::duration::format(run_time),
            wall.elapsed().as_secs_f64()
        )
    } else {
        crate::duration::format(run_time)
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
        _ => "failed",
    };
    println!(
        "{verdict}: {time_note}, {} injection{}{checks_note}{journal_note} (seed {seed})",
        host.ctx().injections.get(),
        if host.ctx().injections.get() == 1 {
            ""
        } else {
            "s"
        },
    );
    for f in &checks.failures {
        println!("  failed check: {f}");
    }
    ExitCode::from(code)
}
