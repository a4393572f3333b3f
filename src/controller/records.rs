//! Durable records: the central API's faults and the remote runs, one ConfigMap each in the
//! controller's namespace, so they survive a restart and a move to another node. `kubectl get
//! cm -l gfi.dev/record=run` lists the runs; the label `gfi.dev/status` says where each stands.
//!
//! The store keeps every record in memory too (the API answers from there) and writes through
//! to the cluster on every change, in order per record. It is bounded: at most `retention`
//! records of each kind (the oldest finished ones go first) and `max_bytes` per record (a
//! run's journal loses its oldest entries first, and says how many). Without a cluster (the
//! `sim` backend) the records live in memory only.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const LABEL_RECORD: &str = "gfi.dev/record";
pub const LABEL_STATUS: &str = "gfi.dev/status";
pub const ANNOTATION_ID: &str = "gfi.dev/id";
/// The ConfigMap key holding the record's JSON.
pub const DATA_KEY: &str = "record.json";
/// A ConfigMap holds at most 1 MiB; the rest is room for its metadata.
pub const MAX_RECORD_BYTES: usize = 900 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    Fault,
    Run,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Fault => "fault",
            RecordKind::Run => "run",
        }
    }

    fn parse(s: &str) -> Option<RecordKind> {
        match s {
            "fault" => Some(RecordKind::Fault),
            "run" => Some(RecordKind::Run),
            _ => None,
        }
    }
}

/// Run statuses whose record still changes: never pruned, and `interrupted` after a restart.
const LIVE_RUN_STATUSES: [&str; 2] = ["queued", "running"];
/// The fault status whose record still changes, the same way.
const LIVE_FAULT_STATUS: &str = "injecting";

fn status_of(record: &Value) -> &str {
    record.get("status").and_then(Value::as_str).unwrap_or("")
}

fn is_live(kind: RecordKind, record: &Value) -> bool {
    match kind {
        RecordKind::Run => LIVE_RUN_STATUSES.contains(&status_of(record)),
        RecordKind::Fault => status_of(record) == LIVE_FAULT_STATUS,
    }
}

/// `gfi-run-r1a2b3c`, `gfi-fault-gpu-xid-79-1a2b3c4d`: a DNS subdomain made from the id (the id
/// itself is kept in an annotation and in the record).
pub fn object_name(kind: RecordKind, id: &str) -> String {
    let mut name: String = format!("gfi-{}-", kind.as_str());
    name.extend(id.chars().map(|c| match c.to_ascii_lowercase() {
        c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
        _ => '-',
    }));
    name.truncate(253);
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

/// A label value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Cuts a record to `max` bytes of JSON: a run's journal loses its oldest entries (the count
/// goes in `journal_truncated`). `None` when it cannot be made to fit.
pub fn bounded(mut record: Value, max: usize) -> Option<(Value, String)> {
    let mut text = record.to_string();
    if text.len() <= max {
        return Some((record, text));
    }
    let journal_len = record
        .get("journal")
        .and_then(Value::as_array)
        .map(Vec::len)?;
    // Drop about the share that is too much, then step until it fits.
    let mut dropped = 0usize;
    while text.len() > max {
        let over = text.len() - max;
        let journal = record.get_mut("journal")?.as_array_mut()?;
        if journal.is_empty() {
            return None;
        }
        let avg = (text.len() / (journal.len() + 1)).max(1);
        let n = (over / avg).clamp(1, journal.len());
        journal.drain(..n);
        dropped += n;
        record["journal_truncated"] = json!(dropped);
        text = record.to_string();
    }
    debug_assert!(dropped <= journal_len);
    Some((record, text))
}

type RecordKey = (RecordKind, String);

struct Entry {
    seq: u64,
    record: Value,
}

#[derive(Default)]
struct Table {
    next_seq: u64,
    entries: HashMap<(RecordKind, String), Entry>,
}

/// Where records go beyond this process.
#[derive(Clone)]
pub enum Backing {
    Memory,
    ConfigMaps {
        api: Box<kube::Api<ConfigMap>>,
        namespace: String,
    },
}

pub struct RecordStore {
    backing: Backing,
    retention: usize,
    max_bytes: usize,
    table: Mutex<Table>,
    /// Writes of one record happen in order; of different records, at once.
    write_locks: Mutex<HashMap<RecordKey, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

impl RecordStore {
    pub fn new(backing: Backing, retention: usize, max_bytes: usize) -> RecordStore {
        RecordStore {
            backing,
            retention: retention.max(1),
            max_bytes: max_bytes.min(MAX_RECORD_BYTES),
            table: Mutex::new(Table::default()),
            write_locks: Mutex::new(HashMap::new()),
        }
    }

    /// "ConfigMaps in namespace X" or "memory only".
    pub fn describe(&self) -> String {
        match &self.backing {
            Backing::Memory => "memory only (lost when the controller stops)".into(),
            Backing::ConfigMaps { namespace, .. } => {
                format!("ConfigMaps labelled {LABEL_RECORD} in namespace {namespace}")
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads every record the cluster holds (at start). Records that do not parse are skipped
    /// with a warning, not fatal: a person may have edited one.
    pub async fn load(&self) -> Result<usize, RecordError> {
        let Backing::ConfigMaps { api, namespace } = &self.backing else {
            return Ok(0);
        };
        let list = api
            .list(&ListParams::default().labels(LABEL_RECORD))
            .await
            .map_err(|e| {
                RecordError(format!(
                    "listing the record ConfigMaps in namespace {namespace}: {} (the controller's ServiceAccount needs list on configmaps there; see deploy/base/controller.yaml)",
                    crate::backend::kube_nodes::error_chain(&e)
                ))
            })?;
        let mut found: Vec<(String, String, RecordKind, Value)> = Vec::new();
        for cm in list.items {
            let name = cm.metadata.name.clone().unwrap_or_default();
            let kind = cm
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_RECORD))
                .and_then(|k| RecordKind::parse(k));
            let parsed = cm
                .data
                .as_ref()
                .and_then(|d| d.get(DATA_KEY))
                .map(|t| serde_json::from_str::<Value>(t));
            match (kind, parsed) {
                (Some(kind), Some(Ok(v))) if v.get("id").and_then(Value::as_str).is_some() => {
                    // The record's own time has milliseconds; creationTimestamp only seconds.
                    let created = ["created_at", "submitted_at"]
                        .iter()
                        .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_string))
                        .or_else(|| {
                            cm.metadata
                                .creation_timestamp
                                .as_ref()
                                .map(|t| t.0.to_string())
                        })
                        .unwrap_or_default();
                    found.push((created, name, kind, v));
                }
                (_, Some(Err(e))) => {
                    tracing::warn!(configmap = %name, "skipping a record that is not JSON: {e}")
                }
                _ => {
                    tracing::warn!(configmap = %name, "skipping a ConfigMap that is not a gfi record (no {LABEL_RECORD} label of fault or run, or no {DATA_KEY} with an id)")
                }
            }
        }
        found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        // Older first, so the retention prunes the oldest.
        let n = found.len();
        let mut t = self.table();
        for (_, _, kind, v) in found {
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let seq = t.next_seq;
            t.next_seq += 1;
            t.entries.insert((kind, id), Entry { seq, record: v });
        }
        Ok(n)
    }

    /// Every record of a kind, oldest first.
    pub fn list(&self, kind: RecordKind) -> Vec<Value> {
        let t = self.table();
        let mut v: Vec<&Entry> = t
            .entries
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, e)| e)
            .collect();
        v.sort_by_key(|e| e.seq);
        v.into_iter().map(|e| e.record.clone()).collect()
    }

    pub fn get(&self, kind: RecordKind, id: &str) -> Option<Value> {
        self.table()
            .entries
            .get(&(kind, id.to_string()))
            .map(|e| e.record.clone())
    }

    /// [`RecordStore::save`] of a fault record.
    pub async fn save_fault(&self, fault: &super::faults::Fault) -> Result<(), RecordError> {
        // A struct of strings, numbers and string-keyed maps: it always serialises.
        let record = serde_json::to_value(fault).unwrap_or_default();
        self.save(RecordKind::Fault, &record).await
    }

    /// Keeps `record` (its `id` field names it), in memory and in the cluster, and prunes the
    /// oldest finished records beyond the retention.
    pub async fn save(&self, kind: RecordKind, record: &Value) -> Result<(), RecordError> {
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                RecordError(format!(
                    "a {} record needs a string `id` field",
                    kind.as_str()
                ))
            })?
            .to_string();
        let (record, text) = bounded(record.clone(), self.max_bytes).ok_or_else(|| {
            RecordError(format!(
                "{} record {id} is larger than {} bytes and has no journal to shorten",
                kind.as_str(),
                self.max_bytes
            ))
        })?;
        let lock = {
            let mut locks = self.write_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry((kind, id.clone())).or_default().clone()
        };
        let _in_order = lock.lock().await;
        let (existed, pruned) = {
            let mut t = self.table();
            let seq = t.next_seq;
            t.next_seq += 1;
            let key = (kind, id.clone());
            let existed = match t.entries.get_mut(&key) {
                Some(e) => {
                    e.record = record.clone();
                    true
                }
                None => {
                    t.entries.insert(
                        key,
                        Entry {
                            seq,
                            record: record.clone(),
                        },
                    );
                    false
                }
            };
            (existed, self.prune(&mut t, kind))
        };
        self.write(kind, &id, &record, &text, existed).await?;
        for (pk, pid) in pruned {
            self.write_locks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(pk, pid.clone()));
            self.delete(pk, &pid).await;
        }
        Ok(())
    }

    /// Takes the oldest finished records of `kind` beyond the retention out of the table.
    fn prune(&self, t: &mut Table, kind: RecordKind) -> Vec<(RecordKind, String)> {
        let mut of_kind: Vec<(u64, String, bool)> = t
            .entries
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, id), e)| (e.seq, id.clone(), is_live(kind, &e.record)))
            .collect();
        if of_kind.len() <= self.retention {
            return Vec::new();
        }
        of_kind.sort();
        let mut over = of_kind.len() - self.retention;
        let mut out = Vec::new();
        for (_, id, live) in of_kind {
            if over == 0 {
                break;
            }
            if !live {
                t.entries.remove(&(kind, id.clone()));
                out.push((kind, id));
                over -= 1;
            }
        }
        out
    }

    fn object(&self, kind: RecordKind, id: &str, record: &Value, text: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(object_name(kind, id));
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(LABEL_RECORD.to_string(), kind.as_str().to_string());
        labels.insert(
            "app.kubernetes.io/managed-by".into(),
            "gfi-controller".into(),
        );
        let status = label_value(status_of(record));
        if !status.is_empty() {
            labels.insert(LABEL_STATUS.to_string(), status);
        }
        cm.metadata.labels = Some(labels);
        cm.metadata.annotations = Some([(ANNOTATION_ID.to_string(), id.to_string())].into());
        cm.data = Some([(DATA_KEY.to_string(), text.to_string())].into());
        cm
    }

    async fn write(
        &self,
        kind: RecordKind,
        id: &str,
        record: &Value,
        text: &str,
        existed: bool,
    ) -> Result<(), RecordError> {
        let Backing::ConfigMaps { api, namespace } = &self.backing else {
            return Ok(());
        };
        let cm = self.object(kind, id, record, text);
        let name = object_name(kind, id);
        let pp = PostParams::default();
        let is_status =
            |e: &kube::Error, code: u16| matches!(e, kube::Error::Api(s) if s.code == code);
        // An update without a resourceVersion replaces whatever is there: this process is the
        // only writer of its records.
        let result = if existed {
            match api.replace(&name, &pp, &cm).await {
                Err(e) if is_status(&e, 404) => api.create(&pp, &cm).await,
                other => other,
            }
        } else {
            match api.create(&pp, &cm).await {
                Err(e) if is_status(&e, 409) => api.replace(&name, &pp, &cm).await,
                other => other,
            }
        };
        result.map(|_| ()).map_err(|e| {
            RecordError(format!(
                "keeping {} record {id} as ConfigMap {namespace}/{name}: {}",
                kind.as_str(),
                crate::backend::kube_nodes::error_chain(&e)
            ))
        })
    }

    async fn delete(&self, kind: RecordKind, id: &str) {
        let Backing::ConfigMaps { api, namespace } = &self.backing else {
            return;
        };
        let name = object_name(kind, id);
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(
                configmap = %format!("{namespace}/{name}"),
                "pruning a record beyond the retention failed: {}",
                crate::backend::kube_nodes::error_chain(&e)
            ),
        }
    }

    /// Records a previous controller was still changing when it stopped: runs `queued` or
    /// `running`, faults `injecting`.
    pub fn live(&self, kind: RecordKind) -> Vec<Value> {
        self.list(kind)
            .into_iter()
            .filter(|r| is_live(kind, r))
            .collect()
    }

    /// [`RunRecords::save`](crate::controller) for the run manager: the record's `id` names it.
    pub async fn save_run(&self, record: &Value) -> Result<(), String> {
        self.save(RecordKind::Run, record)
            .await
            .map_err(|e| e.to_string())
    }

    /// `RunRecords::load` for the run manager: every run record, oldest first (those that were
    /// running when the controller stopped are `interrupted` by then).
    pub async fn load_runs(&self) -> Result<Vec<Value>, String> {
        Ok(self.list(RecordKind::Run))
    }
}

/// The nodes a run record's journal names (entries other than observations): where a person
/// should look after an interrupted run.
pub fn nodes_touched(run: &Value) -> Vec<String> {
    let mut nodes: Vec<String> = run
        .get("journal")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.get("kind").and_then(Value::as_str) != Some("observe"))
        .filter_map(|e| e.get("node").and_then(Value::as_str).map(str::to_string))
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_subdomains() {
        assert_eq!(
            object_name(RecordKind::Fault, "gpu_xid_79-1a2b3c4d"),
            "gfi-fault-gpu-xid-79-1a2b3c4d"
        );
        assert_eq!(object_name(RecordKind::Run, "R1_"), "gfi-run-r1");
        assert_eq!(label_value("running"), "running");
        assert_eq!(label_value("-x y-"), "xy");
    }

    #[test]
    fn large_runs_lose_their_oldest_journal_entries() {
        let journal: Vec<Value> = (0..1000)
            .map(|i| json!({"seq": i, "message": "x".repeat(100)}))
            .collect();
        let run = json!({"id": "r1", "status": "finished", "journal": journal});
        let (cut, text) = bounded(run, 20_000).unwrap();
        assert!(text.len() <= 20_000);
        let kept = cut["journal"].as_array().unwrap();
        assert_eq!(
            kept.len() + cut["journal_truncated"].as_u64().unwrap() as usize,
            1000
        );
        assert_eq!(kept.last().unwrap()["seq"], 999, "the newest entries stay");
        assert!(bounded(json!({"id": "f", "x": "y".repeat(100)}), 50).is_none());
    }

    #[tokio::test]
    async fn retention_prunes_the_oldest_finished_records() {
        let s = RecordStore::new(Backing::Memory, 2, MAX_RECORD_BYTES);
        s.save(RecordKind::Run, &json!({"id": "a", "status": "running"}))
            .await
            .unwrap();
        for id in ["b", "c", "d"] {
            s.save(RecordKind::Run, &json!({"id": id, "status": "finished"}))
                .await
                .unwrap();
        }
        s.save(
            RecordKind::Fault,
            &json!({"id": "f1", "status": "injected"}),
        )
        .await
        .unwrap();
        let ids: Vec<String> = s
            .list(RecordKind::Run)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        // The running one stays, whatever its age; of the finished, the newest.
        assert_eq!(ids, ["a", "d"]);
        assert_eq!(s.list(RecordKind::Fault).len(), 1);
        assert_eq!(s.live(RecordKind::Run).len(), 1);
        // An update keeps the record's place.
        s.save(RecordKind::Run, &json!({"id": "a", "status": "finished"}))
            .await
            .unwrap();
        assert_eq!(s.get(RecordKind::Run, "a").unwrap()["status"], "finished");
        assert!(
            s.save(RecordKind::Run, &json!({"status": "x"}))
                .await
                .is_err()
        );
    }

    #[test]
    fn the_nodes_a_run_touched() {
        let run = json!({"journal": [
            {"kind": "inject", "node": "n2"},
            {"kind": "observe", "node": "n9"},
            {"kind": "wait", "node": "n1"},
            {"kind": "inject", "node": "n2"},
            {"kind": "print"}
        ]});
        assert_eq!(nodes_touched(&run), ["n1", "n2"]);
    }
}
