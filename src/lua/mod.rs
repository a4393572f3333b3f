//! The Lua scripting host: a fresh sandboxed state per run, the API, the stdlib, `require`.
//!
//! Every primitive is async: on `sim` the runtime's paused clock makes a two-hour wait take
//! microseconds. Scripts run on a `LocalSet` (Lua values are not `Send`), and `spawn` runs Lua
//! functions as local tasks.

pub(crate) mod api;
pub(crate) mod convert;
pub mod docs;
pub(crate) mod error;
pub mod luals;
pub mod meta;
pub(crate) mod modules;
pub mod sandbox;

use crate::backend::SharedBackend;
use crate::clock::RunClock;
use crate::journal::Journal;
use crate::xid::LineStyle;
use api::tasks::TaskInner;
use mlua::{Function, Lua, MultiValue, Table, Value};
use sandbox::{InstructionCounter, Limits};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HostOptions {
    pub seed: u64,
    pub run_id: String,
    pub limits: Limits,
    /// Where `require` looks first (the script's directory).
    pub script_dir: Option<PathBuf>,
    /// How chunk names and errors show `script_dir` when the modules are read from elsewhere
    /// (a remote run's bundle: as the client's directory).
    pub script_dir_shown: Option<PathBuf>,
    pub lib_paths: Vec<PathBuf>,
    /// `--arg k=v`, in order.
    pub args: Vec<(String, String)>,
    /// Line style for injections that do not choose one.
    pub line_style: LineStyle,
    /// The command line's guardrails (`--max-unavailable`, ...): they arm the guard.
    pub guard: crate::guard::GuardConfig,
    /// `--dry-run`: plans print their schedule, `inject_xid` refuses.
    pub dry_run: bool,
    /// The NVSentinel configuration the run assumes (the values the sim reads, or
    /// `--nvsentinel-values` on another backend); `None`: unknown, the catalogue decides.
    pub nvsentinel: Option<crate::backend::sim::values::NvsConfig>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            seed: 1,
            run_id: "r1".into(),
            limits: Limits::default(),
            script_dir: None,
            script_dir_shown: None,
            lib_paths: Vec::new(),
            args: Vec::new(),
            line_style: LineStyle::Driver,
            guard: Default::default(),
            dry_run: false,
            nvsentinel: None,
        }
    }
}

/// Results of `check()` calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checks {
    pub passed: u64,
    pub failed: u64,
    pub failures: Vec<String>,
}

/// What every primitive shares.
pub struct Ctx {
    pub backend: SharedBackend,
    pub journal: Journal,
    pub clock: RunClock,
    pub run_id: String,
    pub seed: u64,
    pub line_style: LineStyle,
    pub fault_seq: Cell<u64>,
    pub injections: Cell<u64>,
    pub tasks: RefCell<Vec<Rc<RefCell<TaskInner>>>>,
    pub checks: RefCell<Checks>,
    /// Checked before every injection; the tripwire's state.
    pub guard: crate::guard::Guard,
    pub dry_run: bool,
    pub nvsentinel: Option<crate::backend::sim::values::NvsConfig>,
}

impl Ctx {
    pub fn get(lua: &Lua) -> mlua::Result<Rc<Ctx>> {
        lua.app_data_ref::<Rc<Ctx>>()
            .map(|c| c.clone())
            .ok_or_else(|| convert::err("gfi host context is missing (a bug)"))
    }

    /// Seconds since the run started (virtual on `sim`).
    pub fn now(&self) -> f64 {
        self.clock.elapsed().as_millis() as f64 / 1000.0
    }
}

pub struct Host {
    lua: Lua,
    ctx: Rc<Ctx>,
    counter: InstructionCounter,
}

/// How long one cleanup function may take before the next one runs.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Host {
    pub fn new(
        opts: HostOptions,
        backend: SharedBackend,
        journal: Journal,
    ) -> Result<Host, String> {
        let (lua, counter) = sandbox::new_state(&opts.limits)
            .map_err(|e| format!("cannot create the Lua state: {e}"))?;
        let guard = crate::guard::Guard::new(
            opts.guard.clone(),
            journal.clone(),
            crate::xid::line::provenance_name(&opts.run_id),
        );
        let ctx = Rc::new(Ctx {
            backend,
            clock: *journal.clock(),
            journal,
            run_id: opts.run_id.clone(),
            seed: opts.seed,
            line_style: opts.line_style,
            fault_seq: Cell::new(0),
            injections: Cell::new(0),
            tasks: RefCell::new(Vec::new()),
            checks: RefCell::new(Checks::default()),
            guard,
            dry_run: opts.dry_run,
            nvsentinel: opts.nvsentinel.clone(),
        });
        lua.set_app_data(ctx.clone());
        let setup = || -> mlua::Result<()> {
            modules::install(
                &lua,
                opts.script_dir.clone(),
                opts.script_dir_shown.clone(),
                opts.lib_paths.clone(),
            )?;
            let math: Table = lua.globals().get("math")?;
            let randomseed: Function = math.get("randomseed")?;
            randomseed.call::<()>(opts.seed as i64)?;
            let args = lua.create_table()?;
            for (k, v) in &opts.args {
                args.set(k.as_str(), v.as_str())?;
            }
            lua.globals().set("args", args)?;
            api::register(&lua, &ctx)?;
            let prelude = modules::stdlib_source("prelude").unwrap_or_default();
            lua.load(prelude.as_ref())
                .set_name("@stdlib/prelude.lua")
                .exec()?;
            Ok(())
        };
        setup().map_err(|e| format!("cannot set up the Lua API: {}", describe_error(&e)))?;
        Ok(Host { lua, ctx, counter })
    }

    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    pub fn ctx(&self) -> &Rc<Ctx> {
        &self.ctx
    }

    pub fn instructions(&self) -> u64 {
        self.counter.get()
    }

    /// Gives the instruction budget back in full (the REPL does, before each chunk).
    pub fn reset_instructions(&self) {
        self.counter.reset();
    }

    /// Runs a script file; its chunk receives the `args` table as `...`.
    pub async fn run_file(&self, path: &Path) -> mlua::Result<MultiValue> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| convert::err(format!("cannot read {}: {e}", path.display())))?;
        self.run_source(&source, &path.display().to_string()).await
    }

    /// Runs a script's source (a file's, a built-in one's, or a remote run's, named as the
    /// client knows it) as if read from a file named `name`; its chunk receives the `args`
    /// table as `...`. A script that returns a scenario (`return scenario.define {...}`) has
    /// its phases run.
    pub async fn run_source(&self, source: &str, name: &str) -> mlua::Result<MultiValue> {
        let args: Value = self.lua.globals().get("args")?;
        let out: MultiValue = self
            .lua
            .load(source)
            .set_name(format!("@{name}"))
            .call_async(args)
            .await?;
        match out.front() {
            Some(Value::Table(t)) if t.raw_get::<bool>("__scenario").unwrap_or(false) => {
                let run: Function = self
                    .lua
                    .load("return require('scenario').run_defined")
                    .set_name("=scenario")
                    .eval()?;
                run.call_async(t.clone()).await
            }
            _ => Ok(out),
        }
    }

    /// Runs a chunk of source (the REPL, tests).
    pub async fn eval(&self, source: &str, name: &str) -> mlua::Result<MultiValue> {
        self.lua.load(source).set_name(name).call_async(()).await
    }

    /// Runs the registered cleanups, newest first; returns the errors.
    pub async fn run_cleanups(&self) -> Vec<String> {
        api::tasks::run_cleanups(&self.lua, &self.ctx).await
    }

    /// Cancels tasks still running and returns the errors of failed tasks nobody waited for.
    pub fn finish_tasks(&self) -> Vec<String> {
        api::tasks::finish(&self.ctx)
    }

    pub fn checks(&self) -> Checks {
        self.ctx.checks.borrow().clone()
    }
}

/// An error as a person should read it: the message, then the Lua traceback.
pub fn describe_error(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::SyntaxError { message, .. } => format!("syntax error: {message}"),
        mlua::Error::MemoryError(_) => {
            "memory limit exceeded: the script used more memory than allowed (raise it with --memory-limit)".into()
        }
        mlua::Error::WithContext { context, cause } => format!("{context}: {}", describe_error(cause)),
        mlua::Error::CallbackError { cause, traceback } => {
            // The innermost traceback is the one that reaches the failing line.
            let (mut root, mut trace) = (cause, traceback);
            while let mlua::Error::CallbackError { cause, traceback } = root.as_ref() {
                root = cause;
                trace = traceback;
            }
            format!("{}\n{}", describe_error(root), trace.trim_end())
        }
        other => other.to_string(),
    }
}
