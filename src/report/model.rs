//! A run as reports see it, read from its journal: the header, each injection with the stages
//! it reached, the checks, and what failed.

use super::stage::Stage;
use crate::journal::{Entry, EntryKind, Header};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// One XID line written, and how far NVSentinel's reaction got.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    pub id: String,
    pub node: String,
    pub gpu: Option<u64>,
    pub xid: Option<u64>,
    /// Run time of the injection, seconds.
    pub t: f64,
    /// Each stage reached, first time only, with seconds since the injection; in order of time.
    pub stages: Vec<(Stage, f64)>,
    /// How long its node was watched for it: until the next injection there, or the run's end.
    pub watched: f64,
}

impl Injection {
    pub fn reached(&self, stage: Stage) -> Option<f64> {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, t)| *t)
    }

    /// "gpu-node-001 GPU 0 XID 79".
    pub fn title(&self) -> String {
        let gpu = self.gpu.map(|g| format!(" GPU {g}")).unwrap_or_default();
        let xid = self.xid.map(|x| format!(" XID {x}")).unwrap_or_default();
        format!("{}{gpu}{xid}", self.node)
    }
}

/// A `check(...)`: the plan's expectations.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What the script said about it (the measured value, why it failed).
    pub detail: Option<String>,
    pub t: f64,
}

/// Something that went wrong, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub t: f64,
    /// "failed check", "script error", "interrupted", "injection refused", ...
    pub what: &'static str,
    pub node: Option<String>,
    pub why: String,
}

#[derive(Debug, Clone)]
pub struct Run {
    pub header: Header,
    pub summary: Value,
    pub injections: Vec<Injection>,
    pub checks: Vec<Check>,
    /// In order of time.
    pub failures: Vec<Failure>,
    /// "finished", "failed", "interrupted", ...
    pub outcome: String,
    pub run_seconds: f64,
}

/// A journal file as `--journal` writes it.
#[derive(Deserialize)]
struct Doc {
    #[serde(flatten)]
    header: Header,
    entries: Vec<Entry>,
    #[serde(default)]
    summary: Value,
}

impl Run {
    /// Reads a journal written by `gfi run --journal`.
    pub fn load(path: &Path) -> Result<Run, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the journal {}: {e}", path.display()))?;
        let doc: Doc = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a gfi journal (as `gfi run --journal` writes it): {e}",
                path.display()
            )
        })?;
        Ok(Run::from_entries(doc.header, &doc.entries, doc.summary))
    }

    pub fn from_entries<E: std::borrow::Borrow<Entry>>(
        header: Header,
        entries: impl IntoIterator<Item = E>,
        summary: Value,
    ) -> Run {
        let mut b = RunBuilder::default();
        for e in entries {
            b.add(e.borrow());
        }
        b.finish(header, summary)
    }

    /// Whether the run failed anything (a check, the script, a cleanup, an injection).
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// One word or three for the whole run, as `gfi run`'s last line begins.
    pub fn verdict(&self) -> &'static str {
        let only_checks = self.failures.iter().all(|f| f.what == "failed check");
        match self.outcome.as_str() {
            "interrupted" | "cancelled" => "interrupted",
            "failed" => "failed",
            _ if self.failures.is_empty() => "finished",
            _ if only_checks => "finished with failed checks",
            _ => "failed",
        }
    }
}

/// Which injection an observation belongs to: the latest one on its node at or before it, and
/// of the XID it names when it names one (two faults of different XIDs on one node).
fn attribute(
    e: &Entry,
    node: &str,
    by_node: &HashMap<String, Vec<usize>>,
    injections: &[Injection],
) -> Option<usize> {
    let candidates = by_node.get(node)?;
    let before = || {
        candidates
            .iter()
            .rev()
            .copied()
            .filter(|&i| injections[i].t <= e.t)
    };
    let xid = e
        .data
        .get("detail")
        .and_then(|d| d.get("xid"))
        .and_then(|v| v.as_u64());
    xid.and_then(|x| before().find(|&i| injections[i].xid == Some(x)))
        .or_else(|| before().next())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Journal times are to the millisecond; differences keep that.
fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A [`Run`] built one entry at a time: from a saved journal, or as a run records it (a sink),
/// so a run's reports need not keep its journal.
#[derive(Debug, Default)]
pub struct RunBuilder {
    injections: Vec<Injection>,
    /// Per node, the injections made there (indices into `injections`), oldest first.
    by_node: HashMap<String, Vec<usize>>,
    checks: Vec<Check>,
    failures: Vec<Failure>,
    end: f64,
}

impl RunBuilder {
    pub fn add(&mut self, e: &Entry) {
        self.end = e.t;
        let node = e.node.clone();
        let fail = |what: &'static str, why: String| Failure {
            t: e.t,
            what,
            node: node.clone(),
            why,
        };
        match e.kind {
            EntryKind::Inject => {
                let Some(node) = e.node.clone() else { return };
                let field = |k: &str| e.data.get(k);
                self.by_node
                    .entry(node.clone())
                    .or_default()
                    .push(self.injections.len());
                self.injections.push(Injection {
                    id: field("id")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    node,
                    gpu: field("gpu").and_then(|v| v.as_u64()),
                    xid: field("xid").and_then(|v| v.as_u64()),
                    t: e.t,
                    stages: Vec::new(),
                    watched: 0.0,
                });
            }
            EntryKind::Observe => {
                let (Some(stage), Some(node)) = (Stage::of(e), e.node.as_deref()) else {
                    return;
                };
                if let Some(i) = attribute(e, node, &self.by_node, &self.injections) {
                    let inj = &mut self.injections[i];
                    if inj.reached(stage).is_none() {
                        inj.stages.push((stage, round_ms(e.t - inj.t)));
                    }
                }
            }
            EntryKind::Check => {
                let name = e
                    .data
                    .get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or(&e.message)
                    .to_string();
                let ok = e.data.get("ok").and_then(|v| v.as_bool()) == Some(true);
                // The message is "name (detail)" when the script gave a detail.
                let detail = e
                    .message
                    .strip_prefix(name.as_str())
                    .and_then(|r| r.strip_prefix(" ("))
                    .and_then(|r| r.strip_suffix(')'))
                    .map(str::to_string);
                if !ok {
                    self.failures.push(fail(
                        "failed check",
                        match &detail {
                            Some(d) => format!("{name}: {d}"),
                            None => name.clone(),
                        },
                    ));
                }
                self.checks.push(Check {
                    name,
                    ok,
                    detail,
                    t: e.t,
                });
            }
            EntryKind::RunError => self.failures.push(fail("script error", e.message.clone())),
            EntryKind::RunInterrupted => self.failures.push(fail("interrupted", e.message.clone())),
            EntryKind::InjectFailed => self
                .failures
                .push(fail("injection refused", e.message.clone())),
            EntryKind::CallFailed => self.failures.push(fail("call refused", e.message.clone())),
            EntryKind::CleanupFailed => self
                .failures
                .push(fail("cleanup failed", e.message.clone())),
            EntryKind::TaskFailed => self.failures.push(fail("task failed", e.message.clone())),
            _ => {}
        }
    }

    pub fn finish(self, header: Header, summary: Value) -> Run {
        let RunBuilder {
            mut injections,
            by_node,
            checks,
            mut failures,
            end,
        } = self;
        for list in by_node.values() {
            for (k, &i) in list.iter().enumerate() {
                let until = list.get(k + 1).map_or(end, |&j| injections[j].t);
                injections[i].watched = round_ms(until - injections[i].t);
            }
        }
        // Cleanups abandoned by a second signal leave no entry of their own.
        for why in strings(summary.get("cleanup_errors")) {
            if !failures.iter().any(|f| f.why == why) {
                failures.push(Failure {
                    t: end,
                    what: "cleanup failed",
                    node: None,
                    why,
                });
            }
        }
        let outcome = summary
            .get("outcome")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string();
        let run_seconds = summary
            .get("run_seconds")
            .and_then(|v| v.as_f64())
            .unwrap_or(end);
        Run {
            header,
            summary,
            injections,
            checks,
            failures,
            outcome,
            run_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(seq: u64, t: f64, kind: EntryKind, node: Option<&str>, data: Value) -> Entry {
        Entry {
            seq,
            t,
            time: String::new(),
            kind,
            node: node.map(str::to_string),
            message: String::new(),
            data,
        }
    }

    fn observe(seq: u64, t: f64, node: &str, kind: &str, detail: Value) -> Entry {
        entry(
            seq,
            t,
            EntryKind::Observe,
            Some(node),
            json!({"kind": kind, "detail": detail}),
        )
    }

    fn header() -> Header {
        serde_json::from_value(json!({
            "gfi": "0", "run_id": "r1", "seed": 1, "backend": "sim", "script": "p.lua",
            "args": [], "virtual_time": true, "started_at": "2026-01-01T00:00:00.000Z"
        }))
        .expect("an older header without the newer fields still reads")
    }

    #[test]
    fn observations_go_to_the_injection_they_follow() {
        let inject = |seq, t, node: &str, xid| {
            entry(
                seq,
                t,
                EntryKind::Inject,
                Some(node),
                json!({"id": format!("f{seq}"), "gpu": 0, "xid": xid}),
            )
        };
        let entries = vec![
            inject(0, 0.0, "a", 79),
            inject(1, 1.0, "a", 13),
            inject(2, 2.0, "b", 79),
            // Names XID 79: the first injection on a, although the XID 13 one is newer.
            observe(3, 5.0, "a", "detected", json!({"xid": 79})),
            observe(4, 6.0, "a", "detected", json!({"xid": 13})),
            observe(5, 7.0, "a", "cordoned", json!({"xid": 79})),
            // Names no XID: the latest injection on the node.
            observe(6, 8.0, "b", "state", json!({"state": "draining"})),
            observe(7, 9.0, "b", "state", json!({"state": "draining"})),
            // A person's uncordon is not a stage.
            observe(8, 10.0, "b", "uncordoned", json!({"manual": true})),
            // The condition clearing is not a stage either.
            observe(9, 11.0, "b", "condition", json!({"status": "False"})),
            observe(10, 12.0, "c", "cordoned", Value::Null),
        ];
        let run = Run::from_entries(header(), &entries, json!({"outcome": "finished"}));
        let [a79, a13, b79] = &run.injections[..] else {
            panic!("three injections: {:?}", run.injections)
        };
        assert_eq!(
            a79.stages,
            vec![(Stage::Detected, 5.0), (Stage::Cordoned, 7.0)]
        );
        assert_eq!(a13.stages, vec![(Stage::Detected, 5.0)]);
        assert_eq!(b79.stages, vec![(Stage::Draining, 6.0)], "first time only");
        assert_eq!(run.verdict(), "finished");
    }
}
