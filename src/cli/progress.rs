//! Live progress on the terminal, fed by the run journal: what is injected where, each stage
//! as it is reached, with the run time. On a terminal, a status line shows the wait in progress
//! and colours mark outcomes; piped, it prints plain lines.

use crate::journal::{Entry, EntryKind, Sink};
use crate::render::{self, Class, clock_text};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// Draw a transient status line during waits.
    pub status_line: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

struct State {
    status_shown: bool,
}

pub struct Progress {
    verbosity: Verbosity,
    style: Style,
    state: Mutex<State>,
}

impl Progress {
    pub fn new(verbosity: Verbosity, style: Style) -> Arc<Progress> {
        Arc::new(Progress {
            verbosity,
            style,
            state: Mutex::new(State {
                status_shown: false,
            }),
        })
    }

    pub fn sink(self: &Arc<Self>) -> Sink {
        let me = self.clone();
        Arc::new(move |e: &Entry| me.show(e))
    }

    /// Clears a status line so other output starts on a clean line.
    pub fn clear_status(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.status_shown {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            st.status_shown = false;
        }
    }

    fn show(&self, e: &Entry) {
        let s = self.style;
        let v = render::view(e);
        let node = v.node.unwrap_or("");
        let mark = |class| render::mark(class);
        let quiet = self.verbosity == Verbosity::Quiet;
        let line = match v.class {
            Class::Output => Some(v.text.to_string()),
            Class::WaitStart => {
                if s.status_line && !quiet {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    let mut out = std::io::stdout().lock();
                    let _ = write!(
                        out,
                        "\r\x1b[2K{} {} {} {}",
                        s.paint("2", &clock_text(e.t)),
                        s.paint("36", mark(Class::WaitStart)),
                        s.paint("1", node),
                        v.text
                    );
                    let _ = out.flush();
                    st.status_shown = true;
                    return;
                }
                (self.verbosity == Verbosity::Verbose)
                    .then(|| format!("{} {} {}", s.paint("2", "·"), node, v.text))
            }
            Class::Check { ok: false } => Some(format!(
                "{} check failed: {}",
                s.paint("31", mark(v.class)),
                v.text
            )),
            Class::Warning => Some(format!("{} {}", s.paint("33", "warning:"), v.text)),
            Class::Problem => Some(format!("{} {}", s.paint("31", mark(v.class)), v.text)),
            _ if quiet => None,
            Class::RunStart => Some(s.paint("1", &format!("{} {}", mark(v.class), v.text))),
            Class::Inject => Some(format!(
                "{} {} {}",
                s.paint("35", &format!("{} inject", mark(v.class))),
                s.paint("1", node),
                v.text
            )),
            // A timeout is an answer (scripts often expect one), not a failure.
            Class::WaitEnd { ok } => Some(format!(
                "{} {} {}",
                s.paint(if ok { "32" } else { "33" }, mark(v.class)),
                s.paint("1", node),
                v.text
            )),
            Class::Observe => Some(format!("  {} {}", s.paint("2", node), v.text)),
            Class::Check { ok: true } => {
                Some(format!("{} check {}", s.paint("32", mark(v.class)), v.text))
            }
            Class::Action => Some(format!(
                "{} {} {}",
                s.paint("36", mark(v.class)),
                node,
                v.text
            )),
            Class::Cleanup => Some(format!("{} {}", s.paint("36", mark(v.class)), v.text)),
            Class::Notice => Some(format!("{} {}", s.paint("33", mark(v.class)), v.text)),
            Class::Detail if e.kind == EntryKind::RunEnd => None,
            Class::Detail => (self.verbosity == Verbosity::Verbose).then(|| v.text.to_string()),
        };
        let Some(line) = line else { return };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        if st.status_shown {
            let _ = write!(out, "\r\x1b[2K");
            st.status_shown = false;
        }
        let stamp = s.paint("2", &clock_text(e.t));
        for (i, l) in line.lines().enumerate() {
            if i == 0 {
                let _ = writeln!(out, "{stamp} {l}");
            } else {
                let _ = writeln!(out, "{:width$} {l}", "", width = clock_text(e.t).len());
            }
        }
        if line.is_empty() {
            let _ = writeln!(out, "{stamp}");
        }
        let _ = out.flush();
    }
}
