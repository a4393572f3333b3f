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

/// Facts about the run, enough to reproduce and audit it. Fields added later default when an
/// older journal is read back (`gfi report`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Header {
    /// The gfi version that ran it.
    pub gfi: String,
    pub run_id: String,
    pub seed: u64,
    pub backend: String,
    pub script: String,
    /// sha256 of the script's source, as it ran (absent for the REPL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_sha256: Option<String>,
    pub args: Vec<(String, String)>,
    pub virtual_time: bool,
    pub started_at: String,
    #[serde(default)]
    pub target: Target,
    /// The NVSentinel configuration the run assumed: on the sim the values in force,
    /// elsewhere what was known (its namespace, a values file).
    #[serde(default)]
    pub nvsentinel: Value,
}

/// Where the run acted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Target {
    /// "sim (8 GPU nodes x 8 GPUs)", "kube (https://... (context prod) ...)".
    pub description: String,
    /// The kubeconfig context asked for (`--context`); absent: the kubeconfig's current one,
    /// which `description` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Nodes that `nodes()` lists, counted at the end of the run (absent when that failed).
    #[serde(default)]
    pub nodes: Option<usize>,
}

/// Lower-case hex sha256 of `bytes` (the script's hash in the header).
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Inner {
    /// Each entry as compact JSON. A run keeps every entry until it ends; as `Entry` values
    /// (a `serde_json` map allocates a whole B-tree node however few keys it has) a 10,000-node
    /// simulated day held over half a gigabyte, and freeing it at the end took longer than many
    /// of its steps. As text an entry is one allocation of a few hundred bytes.
    entries: Vec<Box<str>>,
    /// Entries recorded so far, kept or not (the next entry's `seq`).
    recorded: u64,
    /// Whether `entries` keeps them: not when only the sinks need them.
    keep: bool,
    sinks: Vec<Sink>,
}

#[derive(Clone)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
    clock: RunClock,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl Journal {
    pub fn new(clock: RunClock) -> Self {
        Journal {
            inner: Arc::new(Mutex::new(Inner {
                entries: Vec::new(),
                recorded: 0,
                keep: true,
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

    /// Stops keeping entries (those kept so far stay): for a run whose entries only its sinks
    /// read, such as `gfi run` without `--journal`, which then needs no memory per entry.
    pub fn stop_keeping(&self) {
        self.lock().keep = false;
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
                seq: inner.recorded,
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
            inner.recorded += 1;
            if inner.keep {
                inner.entries.push(compact(&entry));
            }
            sinks = inner.sinks.clone();
        }
        for s in sinks {
            s(&entry);
        }
    }

    /// Every entry so far, in order.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|e| out.push(e));
        out
    }

    /// Hands every entry so far to `f`, in order, one at a time (no copy of the whole journal).
    pub fn for_each(&self, mut f: impl FnMut(Entry)) {
        self.with_entries(|entries| entries.for_each(&mut f));
    }

    /// `f` reads every entry so far, in order, as an iterator that makes one at a time. Nothing
    /// can be recorded until `f` returns.
    pub fn with_entries<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = Entry>) -> R) -> R {
        let inner = self.lock();
        f(&mut inner.entries.iter().map(|text| expand(text)))
    }

    /// How many entries were recorded (kept or not).
    pub fn len(&self) -> usize {
        self.lock().recorded as usize
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

fn compact(entry: &Entry) -> Box<str> {
    // An entry is plain data (strings, numbers, a JSON value): it always serialises.
    serde_json::to_string(entry)
        .unwrap_or_else(|e| {
            format!(
                r#"{{"seq":{},"t":{},"time":"","kind":"run.error","message":"entry not recorded: {e}"}}"#,
                entry.seq, entry.t
            )
        })
        .into_boxed_str()
}

fn expand(text: &str) -> Entry {
    // Written by `compact` just above, so it reads back; the fallback keeps a reader going.
    serde_json::from_str(text).unwrap_or_else(|e| Entry {
        seq: 0,
        t: 0.0,
        time: String::new(),
        kind: EntryKind::RunError,
        node: None,
        message: format!("entry unreadable: {e}"),
        data: Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_exactly_as_recorded() {
        let clock = RunClock::start(false);
        let j = Journal::new(clock);
        let data = serde_json::json!({"xid": 79, "elapsed": 7.325, "nested": {"a": [1, 2.5, null]}, "s": "q\"uote"});
        j.record(
            EntryKind::Inject,
            Some("gpu-node-001"),
            "XID 79",
            data.clone(),
        );
        j.record(EntryKind::Print, None, "hello", Value::Null);
        let got = j.entries();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind, EntryKind::Inject);
        assert_eq!(got[0].node.as_deref(), Some("gpu-node-001"));
        assert_eq!(got[0].data, data);
        assert_eq!(got[1].seq, 1);
        assert_eq!(got[1].node, None);
        assert_eq!(got[1].data, Value::Null);
        let mut seen = 0;
        j.for_each(|e| {
            assert_eq!(e.seq, seen);
            seen += 1;
        });
        assert_eq!(seen, 2);
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

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
