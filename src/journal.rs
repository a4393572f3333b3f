//! The run journal: every fault, wait and observation with its time, in order.
//!
//! Times are run time (virtual on `sim`), so the same seed and script on `sim` give a
//! byte-identical journal. Sinks (the progress display) see each entry as it is recorded.
//!
//! "Journal" here always means this run log; the agent keeps a *fault store*, and the node's
//! log service is *journald*.

use crate::clock::RunClock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Every kind of journal entry. Serialised as the dotted strings journals have always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    #[serde(rename = "run.start")]
    RunStart,
    #[serde(rename = "run.error")]
    RunError,
    #[serde(rename = "run.interrupted")]
    RunInterrupted,
    #[serde(rename = "run.end")]
    RunEnd,
    /// `print(...)` from the script.
    #[serde(rename = "print")]
    Print,
    /// `log`, `info`, `warn`; `data.level` says which.
    #[serde(rename = "log")]
    Log,
    #[serde(rename = "inject")]
    Inject,
    #[serde(rename = "inject.failed")]
    InjectFailed,
    /// Another primitive that the world refused (it returned `nil, err`).
    #[serde(rename = "call.failed")]
    CallFailed,
    #[serde(rename = "wait.start")]
    WaitStart,
    #[serde(rename = "wait")]
    Wait,
    /// A cluster event; `data.kind` is its [`EventKind`](crate::backend::EventKind).
    #[serde(rename = "observe")]
    Observe,
    #[serde(rename = "check")]
    Check,
    #[serde(rename = "uncordon")]
    Uncordon,
    #[serde(rename = "sim.reboot")]
    SimReboot,
    #[serde(rename = "sim.reset_breaker")]
    SimResetBreaker,
    /// `heal(node)`: what it removed is in `data`.
    #[serde(rename = "heal")]
    Heal,
    /// The script changed a sim node by hand (`sim.cordon`, `sim.label`, `sim.taint`).
    #[serde(rename = "sim.action")]
    SimAction,
    #[serde(rename = "cleanup")]
    Cleanup,
    #[serde(rename = "cleanup.failed")]
    CleanupFailed,
    #[serde(rename = "task.failed")]
    TaskFailed,
    /// A guardrail or the real-fault tripwire stopped the run; `data` is the stop.
    #[serde(rename = "guard.stop")]
    GuardStop,
    #[serde(rename = "task.cancelled")]
    TaskCancelled,
    #[serde(rename = "repl.input")]
    ReplInput,
    #[serde(rename = "repl.error")]
    ReplError,
    #[serde(rename = "repl.load")]
    ReplLoad,
    #[serde(rename = "repl.cancelled")]
    ReplCancelled,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::RunStart => "run.start",
            EntryKind::RunError => "run.error",
            EntryKind::RunInterrupted => "run.interrupted",
            EntryKind::RunEnd => "run.end",
            EntryKind::Print => "print",
            EntryKind::Log => "log",
            EntryKind::Inject => "inject",
            EntryKind::InjectFailed => "inject.failed",
            EntryKind::CallFailed => "call.failed",
            EntryKind::WaitStart => "wait.start",
            EntryKind::Wait => "wait",
            EntryKind::Observe => "observe",
            EntryKind::Check => "check",
            EntryKind::Uncordon => "uncordon",
            EntryKind::SimReboot => "sim.reboot",
            EntryKind::SimResetBreaker => "sim.reset_breaker",
            EntryKind::Heal => "heal",
            EntryKind::SimAction => "sim.action",
            EntryKind::Cleanup => "cleanup",
            EntryKind::CleanupFailed => "cleanup.failed",
            EntryKind::TaskFailed => "task.failed",
            EntryKind::GuardStop => "guard.stop",
            EntryKind::TaskCancelled => "task.cancelled",
            EntryKind::ReplInput => "repl.input",
            EntryKind::ReplError => "repl.error",
            EntryKind::ReplLoad => "repl.load",
            EntryKind::ReplCancelled => "repl.cancelled",
        }
    }
}

/// Compares with the serialised name (`kind == "inject"`), as journals are read.
impl PartialEq<&str> for EntryKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Seconds since the run started, to the millisecond.
    pub t: f64,
    pub time: String,
    pub kind: EntryKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

pub type Sink = Arc<dyn Fn(&Entry) + Send + Sync>;

/// Facts about the run at its start.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub gfi: String,
    pub run_id: String,
    pub seed: u64,
    pub backend: String,
    pub script: String,
    pub args: Vec<(String, String)>,
    pub virtual_time: bool,
    pub started_at: String,
}

struct Inner {
    entries: Vec<Entry>,
    sinks: Vec<Sink>,
}

#[derive(Clone)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
    clock: RunClock,
}

impl Journal {
    pub fn new(clock: RunClock) -> Self {
        Journal {
            inner: Arc::new(Mutex::new(Inner {
                entries: Vec::new(),
                sinks: Vec::new(),
            })),
            clock,
        }
    }

    pub fn clock(&self) -> &RunClock {
        &self.clock
    }

    /// An observer for a backend's events: every cluster event becomes an `observe` entry.
    pub fn observer(&self) -> crate::backend::Observer {
        let journal = self.clone();
        Arc::new(move |ev: crate::backend::ClusterEvent| {
            journal.record(
                EntryKind::Observe,
                Some(&ev.node),
                ev.message,
                serde_json::json!({"kind": ev.kind, "detail": ev.detail}),
            );
        })
    }

    pub fn add_sink(&self, sink: Sink) {
        self.lock().sinks.push(sink);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(
        &self,
        kind: EntryKind,
        node: Option<&str>,
        message: impl Into<String>,
        data: Value,
    ) {
        let elapsed = self.clock.elapsed();
        let t = elapsed.as_millis() as f64 / 1000.0;
        let sinks;
        let entry;
        {
            let mut inner = self.lock();
            entry = Entry {
                seq: inner.entries.len() as u64,
                t,
                time: crate::clock::rfc3339(
                    self.clock
                        .at(std::time::Duration::from_millis(elapsed.as_millis() as u64)),
                ),
                kind,
                node: node.map(str::to_string),
                message: message.into(),
                data,
            };
            inner.entries.push(entry.clone());
            sinks = inner.sinks.clone();
        }
        for s in sinks {
            s(&entry);
        }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole journal as pretty JSON: header, entries, summary.
    pub fn to_json(&self, header: &Header, summary: &Value) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            #[serde(flatten)]
            header: &'a Header,
            entries: Vec<Entry>,
            summary: &'a Value,
        }
        let doc = Doc {
            header,
            entries: self.entries(),
            summary,
        };
        let mut s = serde_json::to_string_pretty(&doc)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialise_to_their_strings() {
        for k in [
            EntryKind::RunStart,
            EntryKind::SimResetBreaker,
            EntryKind::Observe,
            EntryKind::ReplCancelled,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
