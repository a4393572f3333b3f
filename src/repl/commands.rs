//! Dot-commands: what the REPL itself does, as opposed to Lua. A line starting with `.` is
//! never valid Lua, so they cannot be confused with code.

use super::pacer::Speed;
use super::{Flow, Repl};
use crate::lua::api::tasks::TaskResult;
use mlua::{MultiValue, Value};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Quit,
    /// Run a Lua file in this session.
    Load(PathBuf),
    Backend,
    Seed,
    /// Write the session's journal (default file name when none is given).
    Journal(Option<PathBuf>),
    /// Show or set the sim's speed.
    Speed(Option<Speed>),
    Time,
    Tasks,
}

pub const NAMES: &[&str] = &[
    ".backend", ".exit", ".help", ".journal", ".load", ".quit", ".seed", ".speed", ".tasks",
    ".time",
];

pub const HELP: &str = "\
REPL commands
  .help              this text (help() is the Lua API, help(inject_xid) one function)
  .load FILE         run a Lua file here; the globals it defines stay
  .backend           which cluster this is
  .seed              the seed, to reproduce this session's randomness
  .journal [FILE]    write everything so far (faults, waits, observations) as JSON
  .speed [N|max]     sim: virtual seconds per real second (max: waits return at once)
  .time              the session's clock
  .tasks             tasks started with spawn() and how they are doing
  .quit              leave (runs registered cleanups); also Ctrl-D, or Ctrl-C twice

Keys
  Tab                complete names, members, methods (n:), node names in strings, XIDs
  Up/Down, Ctrl-R    history (kept across sessions), reverse search
  Ctrl-C             cancel the running wait, or discard the line being typed
  Enter on an open chunk (function, do, {, ...) continues it on a >> line

Expressions print their value; `_` holds the last one. A top-level `local` stays
defined for later lines (as a REPL variable, without changing globals).";

/// Parses a line that starts with `.`.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let (name, rest) = match line.split_once(char::is_whitespace) {
        Some((n, r)) => (n, r.trim()),
        None => (line, ""),
    };
    let path = |what: &str| -> Result<PathBuf, String> {
        let p = unquote(rest);
        if p.is_empty() {
            return Err(format!("{name} needs {what}"));
        }
        Ok(PathBuf::from(p))
    };
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(format!("{name} takes no arguments"))
        }
    };
    match name {
        ".help" | ".h" | ".?" => no_args(Command::Help),
        ".quit" | ".exit" | ".q" => no_args(Command::Quit),
        ".load" | ".l" => path("a file: .load plan.lua").map(Command::Load),
        ".backend" => no_args(Command::Backend),
        ".seed" => no_args(Command::Seed),
        ".journal" => Ok(Command::Journal(
            (!rest.is_empty()).then(|| PathBuf::from(unquote(rest))),
        )),
        ".speed" => match rest {
            "" => Ok(Command::Speed(None)),
            s => s.parse().map(|s| Command::Speed(Some(s))),
        },
        ".time" => no_args(Command::Time),
        ".tasks" => no_args(Command::Tasks),
        other => {
            let close = super::help::suggest(other, NAMES.iter().copied());
            Err(match close.as_slice() {
                [] => format!("unknown command {other}; .help lists them"),
                c => format!("unknown command {other}; did you mean {}?", c.join(", ")),
            })
        }
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

impl Repl {
    pub(super) async fn load(&mut self, path: &Path) -> Flow {
        if !path.is_file() {
            return self.fail(&format!("{} not found (or not a file)", path.display()));
        }
        self.session.journal().record(
            crate::journal::EntryKind::ReplLoad,
            None,
            format!("loading {}", path.display()),
            serde_json::Value::Null,
        );
        let lua = self.session.host().lua().clone();
        let path = path.to_path_buf();
        let ran = self
            .run(async move {
                let source = std::fs::read_to_string(&path).map_err(|e| {
                    mlua::Error::runtime(format!("cannot read {}: {e}", path.display()))
                })?;
                let args: Value = lua.globals().get("args")?;
                lua.load(source)
                    .set_name(format!("@{}", path.display()))
                    .call_async::<MultiValue>(args)
                    .await
            })
            .await;
        self.after(ran).await
    }

    pub(super) async fn command(&mut self, text: &str) -> Flow {
        let cmd = match parse(text) {
            Ok(c) => c,
            Err(e) => return self.fail(&e),
        };
        match cmd {
            Command::Help => self.out.line(HELP),
            Command::Quit => return Flow::Quit,
            Command::Load(path) => return self.load(&path).await,
            Command::Backend => self.show_backend().await,
            Command::Seed => self.out.line(&format!(
                "seed {} (run {}): gfi repl --seed {} gives this session's randomness again",
                self.session.header().seed,
                self.session.header().run_id,
                self.session.header().seed
            )),
            Command::Journal(path) => {
                let path = path.unwrap_or_else(|| {
                    PathBuf::from(format!("gfi-repl-{}.json", self.session.header().run_id))
                });
                match self.write_journal(&path, "in progress") {
                    Ok(n) => self
                        .out
                        .line(&format!("wrote {n} journal entries to {}", path.display())),
                    Err(e) => return self.fail(&e),
                }
            }
            Command::Speed(None) => match &self.pacer {
                Some(p) => self.out.line(&format!("speed {}", p.speed())),
                None => self.out.line("real time (only the sim has a speed)"),
            },
            Command::Speed(Some(s)) => match &self.pacer {
                Some(p) => {
                    p.set(s);
                    self.out.set_show_wait_starts(s != Speed::Unlimited);
                    self.out.line(&format!("speed {s}"));
                }
                None => return self.fail("only the sim backend has a speed"),
            },
            Command::Time => {
                let t = self.session.clock().elapsed();
                self.out.line(&format!(
                    "{} into the session ({}{})",
                    crate::render::clock_text(t.as_secs_f64()),
                    self.session.clock().rfc3339(),
                    if self.session.clock().is_virtual() {
                        ", virtual"
                    } else {
                        ""
                    }
                ));
            }
            Command::Tasks => self.show_tasks(),
        }
        Flow::Continue
    }

    async fn show_backend(&mut self) {
        let mut text = self.session.description().to_string();
        match &self.pacer {
            Some(p) => text.push_str(&format!("\nvirtual time, speed {}", p.speed())),
            None => text.push_str("\nreal time"),
        }
        match self.session.host().ctx().backend.list_nodes(None).await {
            Ok(nodes) => {
                let cordoned = nodes.iter().filter(|n| n.unschedulable).count();
                let not_ready = nodes.iter().filter(|n| !n.ready).count();
                text.push_str(&format!(
                    "\n{} nodes now: {cordoned} cordoned, {not_ready} not ready",
                    nodes.len()
                ));
            }
            Err(e) => text.push_str(&format!("\ncannot list nodes: {e}")),
        }
        if self.pacer.is_some() {
            text.push_str("\nsim.config() shows its timings and NVSentinel settings");
        }
        self.out.line(&text);
    }

    fn show_tasks(&self) {
        let tasks = self.session.host().ctx().tasks.borrow();
        if tasks.is_empty() {
            self.out.line("no tasks (spawn(fn) starts one)");
            return;
        }
        let mut text = String::new();
        for t in tasks.iter() {
            let t = t.borrow();
            let status = match &t.result {
                TaskResult::Running => "running".to_string(),
                TaskResult::Done(_) => "done".to_string(),
                TaskResult::Failed(e) => format!("failed: {}", e.lines().next().unwrap_or("")),
                TaskResult::Cancelled => "cancelled".to_string(),
            };
            text.push_str(&format!("{:>3}  {:<20} {status}\n", t.id, t.name));
        }
        self.out.line(text.trim_end());
    }

    pub(super) fn write_journal(&self, path: &Path, outcome: &str) -> Result<usize, String> {
        let mut extra = serde_json::Map::new();
        extra.insert("outcome".into(), json!(outcome));
        extra.insert("chunks".into(), json!(self.chunks));
        extra.insert("failed_chunks".into(), json!(self.failures));
        let summary = self
            .session
            .summary(&crate::session::Outcome::Ended, &extra);
        self.session.write_journal(path, &summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse(".help"), Ok(Command::Help));
        assert_eq!(parse("  .quit  "), Ok(Command::Quit));
        assert_eq!(
            parse(".load 'my plan.lua'"),
            Ok(Command::Load(PathBuf::from("my plan.lua")))
        );
        assert!(parse(".load").unwrap_err().contains("needs a file"));
        assert_eq!(parse(".journal"), Ok(Command::Journal(None)));
        assert_eq!(
            parse(".journal out.json"),
            Ok(Command::Journal(Some(PathBuf::from("out.json"))))
        );
        assert_eq!(
            parse(".speed 60"),
            Ok(Command::Speed(Some(Speed::Paced(60.0))))
        );
        assert_eq!(parse(".speed"), Ok(Command::Speed(None)));
        assert!(parse(".speed warp").is_err());
        assert!(parse(".seed 4").unwrap_err().contains("takes no arguments"));
        assert!(
            parse(".jurnal")
                .unwrap_err()
                .contains("did you mean .journal")
        );
        assert!(parse(".zzz").unwrap_err().contains(".help lists them"));
    }
}
