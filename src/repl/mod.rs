//! `gfi repl`: the Lua API and stdlib of `gfi run`, one chunk at a time, against any backend.
//!
//! The session owns one Lua state on a current-thread runtime (a `LocalSet`); lines come from
//! a reader thread ([`input`]), so the cluster, a paced sim clock ([`pacer`]) and background
//! tasks keep going while a person types. Everything printed goes through [`output`].

pub mod catch;
pub mod chunk;
pub mod commands;
pub mod complete;
pub mod context;
pub mod errors;
pub mod help;
pub mod helper;
pub mod history;
pub mod input;
pub mod lex;
pub mod names;
pub mod output;
pub mod pacer;
pub mod pretty;

pub mod tab;

use crate::backend::NodeInfo;
use crate::backend::spec::{BackendArgs, BackendKind};
use crate::lua::Host;
use crate::lua::api::handles::NodeHandle;
use crate::lua::api::tasks::TaskResult;
use crate::lua::sandbox::Limits;
use crate::session::{self, BackendSource, Outcome, Session, SessionError, SessionOptions};
use crate::signals::Interrupts;
use crate::xid::LineStyle;
use chunk::{Compiled, ReplEnv};
use input::{Input, InputSource};
use mlua::{Function, MultiValue, Value};
use names::ApiNames;
use output::{Output, Tone};
use pacer::{Pacer, Speed};
use serde_json::json;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub const PROMPT: &str = "> ";
pub const CONTINUE_PROMPT: &str = ">> ";

/// Exit status of a piped session in which a chunk failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status when Ctrl-C ended a piped session (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Scheduler rounds given to ready tasks before reading input (each gets one poll a round).
const SETTLE_ROUNDS: usize = 16;

/// What `gfi repl` was asked for.
pub struct Config {
    pub backend: BackendArgs,
    pub limits: Limits,
    pub lib_paths: Vec<PathBuf>,
    pub args: Vec<(String, String)>,
    pub line_style: LineStyle,
    pub color: bool,
    pub quiet: bool,
    /// `None`: history in memory only.
    pub history: Option<PathBuf>,
    pub speed: Speed,
    pub journal: Option<PathBuf>,
    pub load: Vec<PathBuf>,
    pub stop_on_error: bool,
}

/// Runs a session to its end.
pub fn run(cfg: Config) -> ExitCode {
    let interactive = std::io::stdin().is_terminal();
    use nix::sys::signal::Signal;
    // SIGTERM (a supervisor) and SIGHUP (a closed terminal) end the session the way Ctrl-D
    // does, cleanups included; SIGINT is Ctrl-C.
    let interrupts = match Interrupts::install(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP]) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let virtual_time = cfg.backend.backend == BackendKind::Sim;
    if !virtual_time && cfg.speed != Speed::Unlimited {
        eprintln!("error: --sim-speed applies to the sim backend only");
        return ExitCode::from(2);
    }
    let rt = match session::runtime(virtual_time) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, start(cfg, interrupts, interactive, virtual_time))
}

async fn start(
    cfg: Config,
    interrupts: Interrupts,
    interactive: bool,
    virtual_time: bool,
) -> ExitCode {
    let out = Output::new(cfg.color, !interactive, cfg.quiet);
    let mut limits = cfg.limits.clone();
    limits.interrupt = Some(interrupts.flag.clone());
    let run = match Session::new(SessionOptions {
        seed: cfg.backend.seed,
        script: "<repl>".into(),
        title: "gfi repl".into(),
        args: cfg.args.clone(),
        limits,
        script_dir: Some(PathBuf::from(".")),
        lib_paths: cfg.lib_paths.clone(),
        line_style: cfg.line_style,
        sinks: vec![out.sink()],
        journal_path: cfg.journal.clone(),
        ..SessionOptions::new(BackendSource::Args(Box::new(cfg.backend.clone())))
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
    let env = match ReplEnv::new(run.host().lua()).and_then(|env| {
        install_help(run.host(), &out)?;
        Ok(env)
    }) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("error: cannot set up the REPL: {e}");
            return ExitCode::from(1);
        }
    };
    let pacer = virtual_time.then(|| Pacer::start(cfg.speed));
    out.set_show_wait_starts(!virtual_time || cfg.speed != Speed::Unlimited);
    // The terminal's settings before the line editor changes them: a session ended by a
    // signal while the editor waits for a key restores them itself.
    let saved_termios = if interactive {
        nix::sys::termios::tcgetattr(std::io::stdin()).ok()
    } else {
        None
    };
    let input = if interactive {
        match InputSource::terminal(cfg.history.clone(), out.clone()) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        InputSource::piped()
    };
    let mut lib_dirs = vec![PathBuf::from(".")];
    lib_dirs.extend(cfg.lib_paths.iter().cloned());
    let mut session = Repl {
        session: run,
        env,
        out,
        interrupts,
        input: Some(input),
        pacer,
        lib_dirs,
        pending: Vec::new(),
        pending_line: 0,
        line_no: 0,
        chunks: 0,
        failures: 0,
        interrupted: false,
        saved_termios,
        interactive,
        stop_on_error: cfg.stop_on_error,
        cluster_cache: None,
    };
    if interactive {
        session.banner();
    }
    let mut quit = false;
    for file in &cfg.load {
        if session.load(file).await == Flow::Quit {
            quit = true;
            break;
        }
    }
    if !quit {
        session.main_loop().await;
    }
    session.finish().await
}

/// `help` (and `gfi.help`) in the REPL: the shared reference, printed in order with the rest.
fn install_help(host: &Host, out: &Arc<Output>) -> mlua::Result<()> {
    let lua = host.lua();
    let out = out.clone();
    let f = lua.create_function(move |lua, args: MultiValue| {
        let text = match args.front() {
            None => help::help_text(&ApiNames::scan(lua), &Value::Nil),
            Some(Value::Nil) => {
                "help got nil: is the name defined? help() lists the API, help(\"name\") explains one entry".to_string()
            }
            Some(v) => help::help_text(&ApiNames::scan(lua), v),
        };
        let text = text.trim_end();
        match text.split_once('\n') {
            Some((first, rest)) if first.contains('(') || first.starts_with("gfi ") => {
                out.line(&format!("{}\n{rest}", out.paint(Tone::Bold, first)));
            }
            _ => out.line(text),
        }
        Ok(())
    })?;
    lua.globals().set("help", f.clone())?;
    let gfi: mlua::Table = lua.globals().get("gfi")?;
    gfi.set("help", f)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

enum Read {
    Line(String),
    Interrupted {
        had_text: bool,
    },
    Eof,
    /// Ctrl-C while reading a pipe.
    Signal,
}

enum Ran {
    Values(MultiValue),
    Failed(mlua::Error),
    Cancelled,
}

struct Repl {
    session: Session,
    env: ReplEnv,
    out: Arc<Output>,
    interrupts: Interrupts,
    /// Taken at the end, to stop the reader.
    input: Option<InputSource>,
    pacer: Option<Pacer>,
    lib_dirs: Vec<PathBuf>,
    /// Lines of a chunk not complete yet.
    pending: Vec<String>,
    /// Input line where the pending chunk started (for piped errors).
    pending_line: usize,
    line_no: usize,
    chunks: u64,
    failures: u64,
    interrupted: bool,
    /// See `start`; `None` when not a terminal, or once restored.
    saved_termios: Option<nix::sys::termios::Termios>,
    interactive: bool,
    stop_on_error: bool,
    cluster_cache: Option<(std::time::Instant, Vec<NodeInfo>)>,
}

impl Repl {
    fn input(&mut self) -> &mut InputSource {
        self.input
            .as_mut()
            .expect("the input source lives until the session ends")
    }

    fn banner(&self) {
        let o = &self.out;
        o.line(&format!(
            "{} · {} · seed {} · run {}",
            o.paint(Tone::Bold, "gfi repl"),
            self.session.description(),
            self.session.header().seed,
            self.session.header().run_id
        ));
        let time = match &self.pacer {
            Some(p) if p.speed() == Speed::Unlimited => {
                "virtual time, full speed: waits return at once (.speed 60 to watch them happen)"
                    .to_string()
            }
            Some(p) => format!("virtual time at speed {}", p.speed()),
            None => "real time".to_string(),
        };
        o.toned(Tone::Dim, &time);
        o.toned(
            Tone::Dim,
            "help() lists the API, .help the REPL; Tab completes; Ctrl-D exits",
        );
    }

    async fn main_loop(&mut self) {
        let mut ctrl_c_once = false;
        loop {
            self.report_task_failures();
            let prompt = if self.pending.is_empty() {
                PROMPT
            } else {
                CONTINUE_PROMPT
            };
            match self.read(prompt).await {
                Read::Line(line) => {
                    ctrl_c_once = false;
                    if self.feed(line).await == Flow::Quit {
                        break;
                    }
                }
                Read::Interrupted { had_text } => {
                    if had_text || !self.pending.is_empty() {
                        self.pending.clear();
                        ctrl_c_once = false;
                    } else if ctrl_c_once {
                        break;
                    } else {
                        ctrl_c_once = true;
                        self.out.toned(
                            Tone::Dim,
                            "(Ctrl-C again or Ctrl-D to exit, .help for help)",
                        );
                    }
                }
                Read::Eof => {
                    if !self.pending.is_empty() {
                        let text = self.pending.join("\n");
                        self.pending.clear();
                        // Lua's own words for what is missing ("'end' expected").
                        let why = match self
                            .session
                            .host()
                            .lua()
                            .load(&text)
                            .set_name(chunk::CHUNK_NAME)
                            .into_function()
                        {
                            Err(e) => errors::describe(&e),
                            Ok(_) => "the chunk is not finished".to_string(),
                        };
                        self.fail(&format!("input ended inside a chunk: {why}"));
                    }
                    break;
                }
                Read::Signal => {
                    self.interrupted = true;
                    break;
                }
            }
        }
    }

    /// The next line, answering completion requests meanwhile.
    async fn read(&mut self, prompt: &str) -> Read {
        // Ctrl-C between two prompts (the terminal is not the line editor's then, so it came
        // as a signal) counts as one at the prompt.
        let fired = self.interrupts.take();
        // SIGTERM or SIGHUP, even one that came while the last chunk was finishing (and was
        // taken by the clean-up after it), ends the session before another read.
        if self.interrupts.ending().is_some() {
            return Read::Signal;
        }
        if fired {
            return if self.interactive {
                Read::Interrupted { had_text: false }
            } else {
                Read::Signal
            };
        }
        self.input().request_line(prompt);
        // At full speed the sim's clock stands still while a person thinks.
        let freeze = self.pacer.as_ref().and_then(Pacer::freeze);
        // Tasks the last chunk woke (a `spawn`ed wait starting, say) run before the next input
        // is taken, not whenever that input happens to arrive: a session replays exactly.
        for _ in 0..SETTLE_ROUNDS {
            tokio::task::yield_now().await;
        }
        let interactive = self.interactive;
        self.out.set_prompt_active(interactive);
        let read = loop {
            let input = self.input.as_mut().expect("input lives until the end");
            tokio::select! {
                biased;
                Some(req) = input.completions.recv() => self.answer_completion(req).await,
                line = input.lines.recv() => match line {
                    Some(Input::Notice(n)) => self.out.warning(&n),
                    Some(Input::Line(l)) => {
                        self.line_no += 1;
                        break Read::Line(l);
                    }
                    Some(Input::Interrupted { had_text }) => break Read::Interrupted { had_text },
                    Some(Input::Eof) | None => break Read::Eof,
                },
                _ = self.interrupts.next() => {
                    if !interactive {
                        break Read::Signal;
                    }
                    if self.interrupts.ending().is_some() {
                        // The line editor still waits for a key and holds the terminal.
                        self.release_terminal();
                        break Read::Signal;
                    }
                    // `kill -INT` at a prompt: counted at the next one, like any Ctrl-C
                    // between prompts.
                }
            }
        };
        self.out.set_prompt_active(false);
        drop(freeze);
        read
    }

    /// Gives the terminal back its settings from before the line editor (which is left
    /// waiting for a key that will never be read) and starts a fresh line.
    fn release_terminal(&mut self) {
        // From here on output goes straight to the terminal, not through the editor (which
        // would draw its prompt again after each line).
        self.out.set_prompt_active(false);
        if let Some(t) = self.saved_termios.take() {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                &t,
            );
            // The editor turned bracketed paste on for its read; a shell would otherwise get
            // paste markers around everything pasted into it.
            let mut stdout = std::io::stdout();
            let _ = std::io::Write::write_all(&mut stdout, b"\x1b[?2004l\r\n");
            let _ = std::io::Write::flush(&mut stdout);
        }
        if let Some(input) = self.input.take() {
            input.abandon();
        }
    }

    async fn feed(&mut self, line: String) -> Flow {
        if self.pending.is_empty() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                return Flow::Continue;
            }
            // `.load x` is a command; `.5 + 1` is Lua.
            let command = trimmed
                .strip_prefix('.')
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()));
            self.pending_line = self.line_no;
            if command {
                let cmd = trimmed.to_string();
                self.input().add_history(&cmd);
                return self.command(&cmd).await;
            }
        }
        self.pending.push(line);
        let text = self.pending.join("\n");
        match chunk::compile(self.session.host().lua(), &self.env, &text) {
            Compiled::Incomplete => Flow::Continue,
            Compiled::Error(e) => {
                self.pending.clear();
                self.input().add_history(&text);
                self.fail(&errors::describe(&e))
            }
            Compiled::Ready { func, declares } => {
                self.pending.clear();
                self.input().add_history(&text);
                if let Err(e) = self.env.declare(&declares) {
                    return self.fail(&errors::describe(&e));
                }
                self.session.journal().record(
                    crate::journal::EntryKind::ReplInput,
                    None,
                    text.clone(),
                    serde_json::Value::Null,
                );
                let ran = self.run(func.call_async::<MultiValue>(())).await;
                self.after(ran).await
            }
        }
    }

    /// Runs Lua until it finishes or Ctrl-C cancels it (the future is dropped).
    async fn run(&mut self, fut: impl Future<Output = mlua::Result<MultiValue>>) -> Ran {
        self.chunks += 1;
        // --instruction-limit is per chunk here: a long session must not run out.
        self.session.host().reset_instructions();
        // No clearing of Ctrl-C here: one pressed just after Enter cancels what was entered.
        self.out.begin_chunk();
        let result = tokio::select! {
            biased;
            r = catch::CatchPanic::new(fut) => Some(r),
            _ = self.interrupts.next() => None,
        };
        let interrupted = self.interrupts.fired();
        self.interrupts.clear();
        match result {
            Some(Ok(v)) => Ran::Values(v),
            Some(Err(_)) if interrupted => Ran::Cancelled,
            Some(Err(e)) => Ran::Failed(e),
            None => Ran::Cancelled,
        }
    }

    async fn after(&mut self, ran: Ran) -> Flow {
        match ran {
            Ran::Values(v) => {
                self.show(v).await;
                Flow::Continue
            }
            Ran::Failed(e) => {
                let mut text = errors::describe(&e);
                let names = self.identifiers();
                if let Some(h) = errors::hint_for(&text, names.iter().map(String::as_str)) {
                    text.push('\n');
                    text.push_str(&h);
                }
                self.fail(&text)
            }
            Ran::Cancelled => {
                let by = crate::signals::spoken(
                    self.interrupts
                        .ending()
                        .unwrap_or(nix::sys::signal::Signal::SIGINT),
                );
                let what = match self.out.active_wait() {
                    Some(w) => format!("cancelled the wait for {w} ({by})"),
                    None => format!("cancelled ({by})"),
                };
                self.session.journal().record(
                    crate::journal::EntryKind::ReplCancelled,
                    None,
                    what.clone(),
                    serde_json::Value::Null,
                );
                // On a terminal, write over the `^C` it echoed.
                let lead = if self.interactive { "\r" } else { "" };
                self.out.toned(Tone::Warn, &format!("{lead}{what}"));
                if self.interactive && self.interrupts.ending().is_none() {
                    Flow::Continue
                } else {
                    self.interrupted = true;
                    Flow::Quit
                }
            }
        }
    }

    fn fail(&mut self, text: &str) -> Flow {
        self.failures += 1;
        self.session.journal().record(
            crate::journal::EntryKind::ReplError,
            None,
            text,
            serde_json::Value::Null,
        );
        if self.interactive {
            self.out.error(text);
            Flow::Continue
        } else {
            self.out
                .error(&format!("line {}: {text}", self.pending_line.max(1)));
            if self.stop_on_error {
                Flow::Quit
            } else {
                Flow::Continue
            }
        }
    }

    /// Names a mistyped global could have meant: REPL variables and globals.
    fn identifiers(&self) -> Vec<String> {
        let mut names = Vec::new();
        for t in [&self.env.vars, &self.session.host().lua().globals()] {
            let _ = t.for_each::<Value, Value>(|k, _| {
                if let Value::String(s) = k {
                    names.push(s.to_string_lossy());
                }
                Ok(())
            });
        }
        names
    }

    async fn show(&mut self, values: MultiValue) {
        let values = values.into_vec();
        let Some(first) = values.first() else {
            return;
        };
        let _ = self.env.set_last(first.clone());
        let lua = self.session.host().lua();
        let names = ApiNames::scan(lua);
        let name_of = |f: &Function| names.name_of(f);
        let opts = pretty::Options {
            color: self.out.color(),
            width: self.out.width(),
            ..pretty::Options::default()
        };
        let mut text = pretty::Printer::new(lua, opts, &name_of).values(&values);
        // A node on its own: say how it is doing right now.
        let node = match (&values[..], first) {
            ([_], Value::UserData(ud)) => ud.borrow::<NodeHandle>().ok().map(|n| n.name.clone()),
            _ => None,
        };
        if let Some(name) = node {
            let facts = match self.session.host().ctx().backend.node(&name).await {
                Ok(info) => info.summary(),
                Err(e) => e.to_string(),
            };
            text = format!(
                "{text}  {}",
                self.out.paint(Tone::Dim, &format!("-- {facts}"))
            );
        }
        self.out.line(&text);
    }

    /// Failures of background tasks, said once, as soon as the REPL sees them (piped, they
    /// fail the session as a failed chunk does).
    fn report_task_failures(&mut self) {
        let mut failed = Vec::new();
        for t in self.session.host().ctx().tasks.borrow().iter() {
            let mut inner = t.borrow_mut();
            if let TaskResult::Failed(e) = &inner.result
                && !inner.observed
            {
                failed.push(format!("task '{}' failed: {e}", inner.name));
                inner.observed = true;
            }
        }
        for msg in failed {
            self.failures += 1;
            self.session.journal().record(
                crate::journal::EntryKind::TaskFailed,
                None,
                msg.clone(),
                serde_json::Value::Null,
            );
        }
    }

    /// Ends the run (tasks, cleanups, which Ctrl-C abandons, summary, journal), then the
    /// input.
    async fn finish(mut self) -> ExitCode {
        self.interrupts.clear();
        let outcome = if self.interrupted {
            Outcome::Interrupted(self.interrupts.ending())
        } else {
            Outcome::Ended
        };
        let mut extra = serde_json::Map::new();
        extra.insert("chunks".into(), json!(self.chunks));
        extra.insert("failed_chunks".into(), json!(self.failures));
        let (interrupts, out) = (&mut self.interrupts, &self.out);
        let abandon = async {
            let sig = interrupts.next().await;
            let msg = format!("cleanups abandoned by {}", crate::signals::spoken(sig));
            out.error(&msg);
            msg
        };
        let report = self.session.finish(outcome, extra, abandon).await;
        let mut code = 0;
        if let Some(e) = &report.journal_error {
            self.out.error(e);
            code = EXIT_FAILED;
        }
        if let Some(input) = self.input.take() {
            input.shutdown();
        }
        if !report.cleanup_errors.is_empty() || !report.task_errors.is_empty() {
            code = EXIT_FAILED;
        }
        if !self.interactive && self.failures > 0 {
            code = EXIT_FAILED;
        }
        if self.interrupted {
            code = self
                .interrupts
                .ending()
                .map_or(EXIT_INTERRUPTED, crate::signals::exit_for);
        }
        ExitCode::from(code)
    }
}
