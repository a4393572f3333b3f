//! Dot-commands: what the REPL itself does, as opposed to Lua. A line starting with `.` is
//! never valid Lua, so they cannot be confused with code.

use super::pacer::Speed;
use std::path::PathBuf;

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
