//! What a journal entry is, for a person: one place that reads the journal's vocabulary, so
//! `gfi run`'s progress and the REPL show the same entries the same way. Each front end lays
//! the [`View`] out in its own style (a stamp first and a status line for `gfi run`; dimmed,
//! indented cluster lines above the prompt for the REPL).

use crate::journal::{Entry, EntryKind};

/// What kind of line an entry makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The run's first line.
    RunStart,
    /// What the script printed.
    Output,
    /// `warn(...)` from the script.
    Warning,
    /// An XID line written.
    Inject,
    /// Something the cluster did (a stage of NVSentinel's reaction).
    Observe,
    /// A wait began (`what` it waits for).
    WaitStart,
    /// A wait ended: `ok` false is a timeout, an answer rather than a failure.
    WaitEnd {
        ok: bool,
    },
    Check {
        ok: bool,
    },
    /// The script acted on the cluster itself (uncordon, a sim reboot, a breaker reset).
    Action,
    Cleanup,
    /// Something went wrong and the run goes on (a refused call, a failed cleanup or task).
    Problem,
    /// Worth a note (a task cancelled at the end).
    Notice,
    /// Shown only when asked for everything.
    Detail,
}

/// An entry as a person reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct View<'a> {
    pub class: Class,
    /// The node it is about; never repeated in `text`.
    pub node: Option<&'a str>,
    pub text: &'a str,
    /// What a wait waits for (`cordoned`, `state=draining`).
    pub waiting_for: &'a str,
}

/// The mark each front end puts before a class (a timeout's mark is the front end's choice).
pub fn mark(class: Class) -> &'static str {
    match class {
        Class::RunStart => "▶",
        Class::Inject => "⚡",
        Class::Observe => "·",
        Class::WaitStart => "…",
        Class::WaitEnd { ok: true } | Class::Check { ok: true } => "✓",
        Class::WaitEnd { ok: false } => "○",
        Class::Check { ok: false } | Class::Problem => "✗",
        Class::Action => "↻",
        Class::Cleanup => "⟲",
        Class::Notice => "!",
        Class::Output | Class::Warning | Class::Detail => "",
    }
}

/// `0:00:12.3` (hours:minutes:seconds.tenths).
pub fn clock_text(t: f64) -> String {
    let tenths = (t * 10.0).round() as u64;
    let (h, rest) = (tenths / 36000, tenths % 36000);
    format!(
        "{h}:{:02}:{:02}.{}",
        rest / 600,
        (rest % 600) / 10,
        rest % 10
    )
}

pub fn view(e: &Entry) -> View<'_> {
    let flag = |k: &str| e.data.get(k).and_then(|v| v.as_bool());
    let class = match e.kind {
        EntryKind::RunStart => Class::RunStart,
        EntryKind::Print => Class::Output,
        EntryKind::Log if e.data.get("level").and_then(|v| v.as_str()) == Some("warn") => {
            Class::Warning
        }
        EntryKind::Log => Class::Output,
        EntryKind::Inject => Class::Inject,
        // The cluster as configured will not do what a plan expects (sim: no datastore, ...).
        EntryKind::Observe if e.data.get("kind").and_then(|v| v.as_str()) == Some("warning") => {
            Class::Warning
        }
        EntryKind::Observe => Class::Observe,
        EntryKind::WaitStart => Class::WaitStart,
        EntryKind::Wait => Class::WaitEnd {
            ok: flag("ok") == Some(true),
        },
        EntryKind::Check => Class::Check {
            ok: flag("ok") == Some(true),
        },
        EntryKind::Uncordon
        | EntryKind::SimReboot
        | EntryKind::SimResetBreaker
        | EntryKind::Heal
        | EntryKind::SimAction => Class::Action,
        EntryKind::Cleanup => Class::Cleanup,
        EntryKind::InjectFailed
        | EntryKind::CallFailed
        | EntryKind::CleanupFailed
        | EntryKind::TaskFailed
        | EntryKind::GuardStop => Class::Problem,
        EntryKind::TaskCancelled => Class::Notice,
        EntryKind::RunError
        | EntryKind::RunInterrupted
        | EntryKind::RunEnd
        | EntryKind::ReplInput
        | EntryKind::ReplError
        | EntryKind::ReplLoad
        | EntryKind::ReplCancelled => Class::Detail,
    };
    View {
        class,
        node: e.node.as_deref(),
        text: &e.message,
        waiting_for: e.data.get("for").and_then(|v| v.as_str()).unwrap_or(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock() {
        assert_eq!(clock_text(0.0), "0:00:00.0");
        assert_eq!(clock_text(12.34), "0:00:12.3");
        assert_eq!(clock_text(3723.96), "1:02:04.0");
    }
}
