//! A run as the API shows it and the records keep it: who started it, where it stands, its
//! summary and journal.

use crate::journal::Entry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for a free slot (more runs than `max_concurrent` were asked for).
    Queued,
    Running,
    /// The script returned (its checks may still have failed: see the summary).
    Finished,
    /// The script raised, or the run could not start (`error` says why).
    Failed,
    /// Someone cancelled it (`cancelled_by`); its cleanups ran.
    Cancelled,
    /// The controller stopped while it ran: it may have left nodes cordoned.
    Interrupted,
    /// A guardrail or the real-fault tripwire stopped it (`error` says which and why); its
    /// cleanups ran.
    Stopped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Stopped => "stopped",
        }
    }

    /// Whether the run is over: its record no longer changes.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

/// The limits a run got: what the caller asked for, capped by the controller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    pub memory_bytes: usize,
    pub instructions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub status: RunStatus,
    /// The script as the client named it (`plans/day.lua`).
    pub script: String,
    /// The caller who submitted it (`anonymous` without an auth layer).
    pub started_by: String,
    #[serde(default)]
    pub cancelled_by: Option<String>,
    /// Wall-clock times, RFC 3339.
    pub submitted_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub ended_at: Option<String>,
    /// The seed asked for; the run's own seed is in the journal's `run.start` entry.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub args: Vec<(String, String)>,
    pub limits: RunLimits,
    /// Whether the run's times are virtual (a sim run).
    pub virtual_time: bool,
    /// The journal's summary (the `run.end` entry's data) once the run ended.
    #[serde(default)]
    pub summary: Option<Value>,
    /// Why the run failed or stopped, where the summary does not say (it could not start, the
    /// controller restarted).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub journal: Vec<Entry>,
}

impl RunRecord {
    /// The record without its journal, as lists show it.
    pub fn brief(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("journal");
            o.insert("events".into(), self.journal.len().into());
        }
        v
    }

    /// Nodes the run injected into or acted on: where a person should look (and `heal`)
    /// after it was interrupted.
    pub fn nodes_touched(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .journal
            .iter()
            .filter(|e| e.kind != crate::journal::EntryKind::Observe)
            .filter_map(|e| e.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }
}
