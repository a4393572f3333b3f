//! One run of a fault plan, wired once: clock, journal, backend, its events, the Lua host, the
//! journal's header, and an ending that always goes tasks, cleanups, summary, journal.
//!
//! `gfi run`, the REPL, the tests and the benches each build a [`Session`]; the controller
//! will build one per remote plan. A session prints nothing and picks no exit code: what it
//! observed goes to the journal and its sinks, and [`Session::finish`] returns a [`Report`]
//! for the caller to present.

use crate::backend::sim::SimBackend;
use crate::backend::sim::config::SimConfig;
use crate::backend::sim::values::NvsConfig;
use crate::backend::spec::{BackendArgs, BackendKind, build_backend};
use crate::backend::{SharedBackend, Subscription};
use crate::clock::RunClock;
use crate::journal::{EntryKind, Header, Journal, Sink, Target};
use crate::lua::sandbox::Limits;
use crate::lua::{Checks, Host, HostOptions};
use crate::xid::LineStyle;
use nix::sys::signal::Signal;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where a session's backend comes from.
pub enum BackendSource {
    /// The command line's choice (`--backend`, `--sim-*`, ...).
    Args(Box<BackendArgs>),
    /// A simulated cluster of the caller's own making (tests, benches).
    Sim {
        config: Box<SimConfig>,
        values: Box<NvsConfig>,
    },
    /// A backend that outlives the session (the controller's cluster, shared by its runs).
    Shared {
        backend: SharedBackend,
        description: String,
    },
}

impl BackendSource {
    /// Whether the run's clock is virtual: the runtime must then start paused.
    pub fn virtual_time(&self) -> bool {
        match self {
            BackendSource::Args(a) => a.backend == BackendKind::Sim,
            BackendSource::Sim { .. } => true,
            BackendSource::Shared { .. } => false,
        }
    }
}

pub struct SessionOptions {
    pub backend: BackendSource,
    /// Random when absent (and recorded in the journal).
    pub seed: Option<u64>,
    /// The provenance marker's run id; derived from the seed when absent.
    pub run_id: Option<String>,
    /// What runs, for the journal's header: a script's path, `<repl>`.
    pub script: String,
    /// sha256 of the script's source ([`script_sha256`]), for the journal's header.
    pub script_sha256: Option<String>,
    /// How the journal's first line names the run: `gfi run plan.lua`, `gfi repl`.
    pub title: String,
    /// `--arg k=v`, in order.
    pub args: Vec<(String, String)>,
    pub limits: Limits,
    /// Where `require` looks first.
    pub script_dir: Option<PathBuf>,
    /// How errors name `script_dir` when it is not where the user keeps the script (a remote
    /// run's bundle).
    pub script_dir_shown: Option<PathBuf>,
    pub lib_paths: Vec<PathBuf>,
    pub line_style: LineStyle,
    /// The command line's guardrails; they arm the guard.
    pub guard: crate::guard::GuardConfig,
    /// `--dry-run`: nothing is injected, plans print their schedule.
    pub dry_run: bool,
    /// See every journal entry as it is recorded (the progress display).
    pub sinks: Vec<Sink>,
    /// Where [`Session::finish`] writes the journal.
    pub journal_path: Option<PathBuf>,
}

impl SessionOptions {
    pub fn new(backend: BackendSource) -> Self {
        SessionOptions {
            backend,
            seed: None,
            run_id: None,
            script: String::new(),
            script_sha256: None,
            title: "gfi".into(),
            args: Vec::new(),
            limits: Limits::default(),
            script_dir: None,
            script_dir_shown: None,
            lib_paths: Vec::new(),
            line_style: LineStyle::Driver,
            guard: Default::default(),
            dry_run: false,
            sinks: Vec::new(),
            journal_path: None,
        }
    }
}

/// Why a session could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// The backend's settings are wrong (the user's mistake).
    #[error("{0}")]
    Backend(String),
    /// The Lua state could not be set up.
    #[error("{0}")]
    Host(String),
}

/// How the script's part ended, before the session finishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The script returned.
    Finished,
    /// The script raised; the message as a person should read it.
    Failed(String),
    /// A signal stopped it (`None`: Ctrl-C at a REPL prompt).
    Interrupted(Option<Signal>),
    /// An interactive session ended (end of input, `.exit`).
    Ended,
    /// Someone asked for it to stop (a remote run's cancel); who, as the record shows it.
    Cancelled(String),
    /// A guardrail or the real-fault tripwire stopped it (the journal has a `guard.stop`).
    Stopped(Box<crate::guard::Stop>),
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::Failed(_) => "failed",
            Outcome::Interrupted(_) => "interrupted",
            Outcome::Ended => "ended",
            Outcome::Cancelled(_) => "cancelled",
            Outcome::Stopped(s) => match s.kind {
                crate::guard::StopKind::Guardrail => "guardrail-stop",
                crate::guard::StopKind::Tripwire => "tripwire",
            },
        }
    }
}

/// What a finished session did.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    /// The journal's summary (also the `run.end` entry's data).
    pub summary: Value,
    pub checks: Checks,
    pub injections: u64,
    /// Run time (virtual on `sim`).
    pub run_time: Duration,
    pub cleanup_errors: Vec<String>,
    pub task_errors: Vec<String>,
    /// The journal could not be written there.
    pub journal_error: Option<String>,
    /// The journal's header and the journal itself, for reports made from the run.
    pub header: Header,
    pub journal: Journal,
}

pub struct Session {
    host: Host,
    journal: Journal,
    backend: SharedBackend,
    description: String,
    header: Header,
    clock: RunClock,
    journal_path: Option<PathBuf>,
    _events: Subscription,
    _tripwire: Subscription,
}

impl Session {
    /// Builds the run. Must be called inside the run's runtime (see [`runtime`]) and on a
    /// `LocalSet`, which every script primitive needs.
    pub fn new(opts: SessionOptions) -> Result<Session, SessionError> {
        let virtual_time = opts.backend.virtual_time();
        let seed = opts.seed.unwrap_or_else(random_seed);
        let clock = RunClock::start(virtual_time);
        let journal = Journal::new(clock);
        let mut context = None;
        let mut values_file = None;
        let (backend, description, assumed): (SharedBackend, String, Value) = match opts.backend {
            BackendSource::Args(args) => {
                let built = build_backend(&args, seed, clock).map_err(SessionError::Backend)?;
                context = args.context.clone();
                values_file = args.nvsentinel_values.clone();
                (built.backend, built.description, built.nvsentinel)
            }
            BackendSource::Sim { config, values } => {
                let description = config.describe();
                let nvsentinel = serde_json::to_value(&*values)
                    .map_err(|e| SessionError::Backend(e.to_string()))?;
                let sim = SimBackend::start(*config, *values, seed, clock)
                    .map_err(SessionError::Backend)?;
                (Arc::new(sim), description, nvsentinel)
            }
            BackendSource::Shared {
                backend,
                description,
            } => (backend, description, Value::Null),
        };
        for sink in opts.sinks {
            journal.add_sink(sink);
        }
        // What the run assumes about NVSentinel: the sim's own values, or the values file a
        // real cluster's run was given (its expectations follow them).
        let nvsentinel = match backend.as_any().downcast_ref::<SimBackend>() {
            Some(sim) => Some(sim.values()),
            None => values_file
                .as_deref()
                .map(NvsConfig::load)
                .transpose()
                .map_err(SessionError::Backend)?,
        };
        let events = backend.subscribe(journal.observer());
        let run_id = opts.run_id.unwrap_or_else(|| run_id(seed, virtual_time));
        let header = Header {
            gfi: env!("CARGO_PKG_VERSION").to_string(),
            run_id: run_id.clone(),
            seed,
            backend: backend.name().to_string(),
            script: opts.script,
            script_sha256: opts.script_sha256,
            args: opts.args.clone(),
            virtual_time,
            started_at: clock.rfc3339(),
            target: Target {
                description: description.clone(),
                context,
                nodes: None,
            },
            nvsentinel: assumed,
        };
        journal.record(
            EntryKind::RunStart,
            None,
            format!(
                "{}  seed={seed}  backend={description}  run={run_id}",
                opts.title
            ),
            json!({"seed": seed, "run_id": run_id, "backend": description}),
        );
        let host = Host::new(
            HostOptions {
                seed,
                run_id,
                limits: opts.limits,
                script_dir: opts.script_dir,
                script_dir_shown: opts.script_dir_shown,
                lib_paths: opts.lib_paths,
                args: opts.args,
                line_style: opts.line_style,
                guard: opts.guard,
                dry_run: opts.dry_run,
                nvsentinel,
            },
            backend.clone(),
            journal.clone(),
        )
        .map_err(SessionError::Host)?;
        let tripwire = backend.subscribe(host.ctx().guard.observer());
        Ok(Session {
            host,
            journal,
            backend,
            description,
            header,
            clock,
            journal_path: opts.journal_path,
            _events: events,
            _tripwire: tripwire,
        })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn backend(&self) -> &SharedBackend {
        &self.backend
    }

    /// One line for humans: "sim (8 GPU nodes x 8 GPUs)".
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn seed(&self) -> u64 {
        self.header.seed
    }

    pub fn clock(&self) -> &RunClock {
        &self.clock
    }

    pub fn virtual_time(&self) -> bool {
        self.header.virtual_time
    }

    /// Runs a script file (its chunk receives the `args` table as `...`).
    /// A guard's stop ends it at once, whatever the script was doing.
    pub async fn run_file(&self, path: &Path) -> Outcome {
        match std::fs::read_to_string(path) {
            Ok(source) => self.run_source(&source, &path.display().to_string()).await,
            Err(e) => Outcome::Failed(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Runs a script's source (a file's, a built-in one's, a remote run's bundle); `name` is
    /// how the journal and errors name it.
    pub async fn run_source(&self, source: &str, name: &str) -> Outcome {
        let guard = &self.host.ctx().guard;
        let result = tokio::select! {
            biased;
            stop = guard.wait_stop() => return Outcome::Stopped(Box::new(stop)),
            r = self.host.run_source(source, name) => r,
        };
        // The script may have caught the refused injection's error: the stop still stands.
        if let Some(stop) = guard.stopped() {
            return Outcome::Stopped(Box::new(stop));
        }
        match result {
            Ok(_) => Outcome::Finished,
            Err(e) => Outcome::Failed(crate::lua::describe_error(&e)),
        }
    }

    /// The summary as it stands: the outcome, run time, injections, checks, and `extra`.
    pub fn summary(&self, outcome: &Outcome, extra: &Map<String, Value>) -> Value {
        let mut s = Map::new();
        s.insert("outcome".into(), json!(outcome.as_str()));
        s.insert(
            "error".into(),
            match outcome {
                Outcome::Failed(m) => json!(m),
                Outcome::Stopped(s) => json!(s.describe()),
                _ => Value::Null,
            },
        );
        s.insert(
            "run_seconds".into(),
            json!(self.clock.elapsed().as_millis() as f64 / 1000.0),
        );
        s.insert("injections".into(), json!(self.host.ctx().injections.get()));
        s.insert("checks".into(), json!(self.host.checks()));
        let guard = &self.host.ctx().guard;
        if guard.armed() {
            s.insert(
                "guard".into(),
                json!({"config": guard.effective(), "stop": guard.stopped(), "checks": guard.stats().checks}),
            );
        }
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
        Value::Object(s)
    }

    /// Writes the whole journal (header, entries, `summary`) to `path`; returns its entries.
    pub fn write_journal(&self, path: &Path, summary: &Value) -> Result<usize, String> {
        std::fs::write(path, self.journal.to_json(&self.header, summary))
            .map_err(|e| format!("cannot write the journal to {}: {e}", path.display()))?;
        Ok(self.journal.len())
    }

    /// Ends the run, always in this order: tasks still running are cancelled (a busy task
    /// must not hold up the cleanups), the cleanups run newest first (until `abandon`
    /// resolves, with the reason it gives), the summary is recorded, the journal written.
    pub async fn finish<F>(
        mut self,
        outcome: Outcome,
        extra: Map<String, Value>,
        abandon: F,
    ) -> Report
    where
        F: Future<Output = String>,
    {
        match &outcome {
            Outcome::Failed(msg) => {
                self.journal
                    .record(EntryKind::RunError, None, msg.clone(), Value::Null)
            }
            Outcome::Interrupted(sig) => self.journal.record(
                EntryKind::RunInterrupted,
                None,
                match sig {
                    Some(sig) => format!("interrupted by {sig}"),
                    None => "interrupted by Ctrl-C".into(),
                },
                Value::Null,
            ),
            Outcome::Cancelled(who) => self.journal.record(
                EntryKind::RunInterrupted,
                None,
                format!("cancelled by {who}"),
                json!({"cancelled_by": who}),
            ),
            // Recorded when it happened (`guard.stop`).
            Outcome::Stopped(_) | Outcome::Finished | Outcome::Ended => {}
        }
        let task_errors = self.host.finish_tasks();
        let cleanup_errors = tokio::select! {
            biased;
            errs = self.host.run_cleanups() => errs,
            why = abandon => vec![why],
        };
        let mut extra = extra;
        extra.insert("cleanup_errors".into(), json!(cleanup_errors));
        extra.insert("task_errors".into(), json!(task_errors));
        let summary = self.summary(&outcome, &extra);
        let end_message = match outcome {
            Outcome::Ended => "session ended",
            _ => "run ended",
        };
        self.journal
            .record(EntryKind::RunEnd, None, end_message, summary.clone());
        self.header.target.nodes = self.count_nodes().await;
        let journal_error = self
            .journal_path
            .as_deref()
            .and_then(|p| self.write_journal(p, &summary).err());
        Report {
            outcome,
            summary,
            checks: self.host.checks(),
            injections: self.host.ctx().injections.get(),
            run_time: self.clock.elapsed(),
            cleanup_errors,
            task_errors,
            journal_error,
            header: self.header,
            journal: self.journal,
        }
    }

    /// How many nodes `nodes()` lists now; `None` when the backend cannot say in time.
    async fn count_nodes(&self) -> Option<usize> {
        let list = self.backend.list_nodes(None);
        match tokio::time::timeout(Duration::from_secs(10), list).await {
            Ok(Ok(nodes)) => Some(nodes.len()),
            _ => None,
        }
    }
}

/// sha256 of a script file's bytes, for the journal's header.
pub fn script_sha256(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|b| crate::journal::sha256_hex(&b))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The runtime scripts run on: one thread (Lua values are not `Send`), its clock paused on the
/// sim so that it jumps to the next timer whenever everything waits.
pub fn runtime(virtual_time: bool) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(virtual_time)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// A script argument's name (`--arg NAME=value`, a remote run's `args`): what `args.NAME`
/// and `param("NAME")` can read.
pub fn check_arg_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "argument name '{name}' must be letters, digits, '_' or '-'"
        ));
    }
    Ok(())
}

/// A seed from the OS when none was given.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ std::process::id() as u64;
    }
    u64::from_le_bytes(b) >> 16
}

/// The run id in the provenance marker: from the seed on the sim (reproducible), from the seed
/// and the wall clock elsewhere (unique per run).
pub fn run_id(seed: u64, virtual_time: bool) -> String {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    if !virtual_time {
        x ^= std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
    }
    // splitmix64: spreads nearby seeds over the whole range.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    format!("r{:06x}", x & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_stable_on_the_sim() {
        assert_eq!(run_id(42, true), run_id(42, true));
        assert_ne!(run_id(42, true), run_id(43, true));
        assert!(run_id(1, true).starts_with('r'));
    }
}
