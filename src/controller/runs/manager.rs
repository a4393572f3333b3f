//! The runs the controller holds: submitted, queued for a slot, running, and finished ones
//! kept for a while. Each change of a run's status is saved through [`RunRecords`].

use super::bundle::{BundleError, BundleLimits, RunRequest};
use super::execute;
use super::record::{RunLimits, RunRecord, RunStatus};
use super::store::{MemoryRecords, RunRecords};
use crate::backend::SharedBackend;
use crate::backend::spec::BackendArgs;
use crate::journal::{Entry, EntryKind};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, watch};

/// Where runs act.
#[derive(Clone)]
pub enum RunBackend {
    /// A fresh simulated cluster for every run, from these settings and the run's seed; each
    /// run on its own paused (virtual-time) runtime, so a seed gives the same journal as
    /// `gfi run --seed N`.
    SimPerRun(Box<BackendArgs>),
    /// One backend that every run shares (the controller's cluster). Runs are driven by the
    /// controller's own runtime, where the backend's watchers live.
    Shared {
        backend: SharedBackend,
        description: String,
    },
}

pub struct RunManagerConfig {
    pub backend: RunBackend,
    /// Bundles are written to `state_dir/runs/<id>/` while their run lasts.
    pub state_dir: PathBuf,
    /// Runs at once; more wait in the queue.
    pub max_concurrent: usize,
    /// Runs waiting for a slot; a submission beyond them is refused with 429.
    pub max_queued: usize,
    /// The most a run may ask for (and what it gets when it asks for nothing).
    pub limits: RunLimits,
    pub bundle: BundleLimits,
    /// How long a cancelled or ended run's cleanups may take before they are abandoned.
    pub cleanup_timeout: Duration,
    /// Ended runs kept in memory (the oldest go first; the records store keeps its own).
    pub retain: usize,
    pub records: Arc<dyn RunRecords>,
}

impl RunManagerConfig {
    /// The defaults: 4 runs at once, 16 queued, `gfi run`'s limits, 5 minutes of cleanups,
    /// 100 ended runs, records in memory.
    pub fn new(backend: RunBackend, state_dir: PathBuf) -> RunManagerConfig {
        let limits = crate::lua::sandbox::Limits::default();
        RunManagerConfig {
            backend,
            state_dir,
            max_concurrent: 4,
            max_queued: 16,
            limits: RunLimits {
                memory_bytes: limits.memory_bytes,
                instructions: limits.instructions,
            },
            bundle: BundleLimits::default(),
            cleanup_timeout: Duration::from_secs(300),
            retain: 100,
            records: Arc::new(MemoryRecords::new()),
        }
    }
}

/// One run while the controller holds it.
pub(crate) struct Run {
    pub(crate) id: String,
    record: Mutex<RunRecord>,
    /// Bumped on every new journal entry and status change: what event streams wait on.
    pub(crate) changed: watch::Sender<u64>,
    /// Who cancelled it, once someone has.
    pub(crate) cancel: watch::Sender<Option<String>>,
    /// Makes busy Lua code give control back, so a cancel also stops a script computing.
    pub(crate) interrupt: Arc<AtomicBool>,
    /// The script's part is over (its cleanups may be running): a cancel no longer
    /// interrupts anything.
    pub(crate) script_over: Mutex<bool>,
    /// Nodes the saved record names already (see [`RunManager::record_entry`]).
    nodes_saved: Mutex<BTreeSet<String>>,
}

impl Run {
    pub(crate) fn lock(&self) -> MutexGuard<'_, RunRecord> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, entry: &Entry) {
        self.lock().journal.push(entry.clone());
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Why a submission was refused.
#[derive(Debug)]
pub enum SubmitError {
    Bundle(BundleError),
    /// 429: every slot and queue place is taken.
    Busy(String),
    /// 500: the controller could not store the bundle.
    Server(String),
}

/// Why a cancel was refused.
#[derive(Debug)]
pub enum CancelError {
    NotFound(String),
    /// 409: the run already ended.
    Over(String),
}

pub struct RunManager {
    pub(crate) config: RunManagerConfig,
    pub(crate) runtime: Handle,
    /// In submission order.
    runs: Mutex<Vec<Arc<Run>>>,
    slots: Arc<Semaphore>,
    saver: mpsc::UnboundedSender<Value>,
}

impl RunManager {
    /// Loads the stored records (a run that was queued or running when the controller
    /// stopped is marked `interrupted`) and starts saving. Call inside the controller's
    /// runtime.
    pub async fn new(config: RunManagerConfig) -> Result<Arc<RunManager>, String> {
        if config.max_concurrent == 0 {
            return Err("the maximum of concurrent runs must be at least 1".into());
        }
        let stored = config
            .records
            .load()
            .await
            .map_err(|e| format!("cannot load the run records: {e}"))?;
        let (saver, mut to_save) = mpsc::unbounded_channel::<Value>();
        let records = config.records.clone();
        // One saver, so a run's saves land in the order its changes happened.
        tokio::spawn(async move {
            while let Some(record) = to_save.recv().await {
                if let Err(e) = records.save(&record).await {
                    tracing::warn!(run = %record["id"], "cannot save the run record: {e}");
                }
            }
        });
        let manager = Arc::new(RunManager {
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            config,
            runtime: Handle::current(),
            runs: Mutex::new(Vec::new()),
            saver,
        });
        let mut loaded = Vec::new();
        for value in stored {
            let mut record: RunRecord = match serde_json::from_value(value) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("skipping a run record that does not read: {e}");
                    continue;
                }
            };
            if !record.status.is_terminal() {
                let nodes = record.nodes_touched();
                record.error = Some(format!(
                    "the controller stopped while the run was {}; {}",
                    record.status.as_str(),
                    if nodes.is_empty() {
                        "it had touched no node".to_string()
                    } else {
                        format!(
                            "it may have left these nodes cordoned (heal them): {}",
                            nodes.join(", ")
                        )
                    }
                ));
                record.status = RunStatus::Interrupted;
                let _ = manager
                    .saver
                    .send(serde_json::to_value(&record).unwrap_or_default());
            }
            loaded.push(record);
        }
        loaded.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at));
        {
            let mut runs = manager.lock_runs();
            for record in loaded {
                runs.push(Arc::new(new_run(record)));
            }
        }
        Ok(manager)
    }

    fn lock_runs(&self) -> MutexGuard<'_, Vec<Arc<Run>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn find(&self, id: &str) -> Option<Arc<Run>> {
        self.lock_runs().iter().find(|r| r.id == id).cloned()
    }

    /// Every run held, newest first, without journals.
    pub fn list(&self) -> Vec<Value> {
        let runs: Vec<Arc<Run>> = self.lock_runs().clone();
        runs.iter().rev().map(|r| r.lock().brief()).collect()
    }

    /// One run's whole record.
    pub fn get(&self, id: &str) -> Option<RunRecord> {
        self.find(id).map(|r| r.lock().clone())
    }

    /// The limits a run gets: what it asked for, capped by the controller's.
    fn limits_for(&self, req: &RunRequest) -> RunLimits {
        let cap = self.config.limits;
        RunLimits {
            memory_bytes: req
                .limits
                .memory_bytes
                .map_or(cap.memory_bytes, |m| m.min(cap.memory_bytes)),
            instructions: req
                .limits
                .instructions
                .map_or(cap.instructions, |n| n.min(cap.instructions)),
        }
    }

    /// Accepts a run: checks it, writes its bundle, queues it. Returns its record.
    pub fn submit(self: &Arc<Self>, req: RunRequest, by: &str) -> Result<RunRecord, SubmitError> {
        req.validate(&self.config.bundle)
            .map_err(SubmitError::Bundle)?;
        if let Some(m) = req.limits.memory_bytes
            && m < (1 << 20)
        {
            return Err(SubmitError::Bundle(BundleError::Invalid(format!(
                "limits.memory_bytes {m} is below the 1MiB minimum"
            ))));
        }
        let run = {
            let mut runs = self.lock_runs();
            let active = runs
                .iter()
                .filter(|r| !r.lock().status.is_terminal())
                .count();
            let room = self.config.max_concurrent + self.config.max_queued;
            if active >= room {
                return Err(SubmitError::Busy(format!(
                    "{active} runs are running or queued, the most this controller takes ({} at once, {} queued); try again when one ends",
                    self.config.max_concurrent, self.config.max_queued
                )));
            }
            let record = RunRecord {
                id: new_id(),
                status: RunStatus::Queued,
                script: req.script.clone(),
                started_by: by.to_string(),
                cancelled_by: None,
                submitted_at: now(),
                started_at: None,
                ended_at: None,
                seed: req.seed,
                args: req.args.clone(),
                limits: self.limits_for(&req),
                virtual_time: matches!(self.config.backend, RunBackend::SimPerRun(_)),
                summary: None,
                error: None,
                journal: Vec::new(),
            };
            let run = Arc::new(new_run(record));
            runs.push(run.clone());
            self.prune(&mut runs);
            run
        };
        if let Err(e) = req.write(&self.bundle_dir(&run.id)) {
            self.update(&run, |r| {
                r.status = RunStatus::Failed;
                r.error = Some(e.clone());
                r.ended_at = Some(now());
            });
            return Err(SubmitError::Server(e));
        }
        self.save(&run);
        let me = self.clone();
        let queued = run.clone();
        self.runtime.spawn(async move {
            let mut cancel = queued.cancel.subscribe();
            let permit = tokio::select! {
                biased;
                who = execute::cancelled(&mut cancel) => {
                    me.update(&queued, |r| {
                        r.status = RunStatus::Cancelled;
                        r.error = Some(format!("cancelled by {who} while queued"));
                        r.ended_at = Some(now());
                    });
                    me.remove_bundle(&queued.id);
                    return;
                }
                p = me.slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            execute::start(me, queued, req, permit);
        });
        let record = run.lock().clone();
        Ok(record)
    }

    /// Asks a run to stop: a queued one never starts; a running one is interrupted and its
    /// cleanups run. The record says who asked.
    pub fn cancel(&self, id: &str, by: &str) -> Result<RunRecord, CancelError> {
        let run = self
            .find(id)
            .ok_or_else(|| CancelError::NotFound(format!("no run with id '{id}'")))?;
        {
            let mut r = run.lock();
            if r.status.is_terminal() {
                return Err(CancelError::Over(format!(
                    "run {id} is already {}",
                    r.status.as_str()
                )));
            }
            let script_over = run.script_over.lock().unwrap_or_else(|e| e.into_inner());
            if *script_over {
                return Err(CancelError::Over(match &r.cancelled_by {
                    Some(who) => {
                        format!("run {id} was cancelled by {who}; its cleanups are running")
                    }
                    None => format!(
                        "run {id} has finished its script; its cleanups are running and end on their own"
                    ),
                }));
            }
            if r.cancelled_by.is_some() {
                // Already on its way out.
                return Ok(r.clone());
            }
            r.cancelled_by = Some(by.to_string());
            // Under both locks, so the run cannot be between its script and its cleanups.
            run.interrupt.store(true, Ordering::SeqCst);
            run.cancel.send_replace(Some(by.to_string()));
        }
        run.changed.send_modify(|n| *n += 1);
        self.save(&run);
        let record = run.lock().clone();
        Ok(record)
    }

    pub(crate) fn bundle_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("runs").join(id)
    }

    pub(crate) fn remove_bundle(&self, id: &str) {
        let dir = self.bundle_dir(id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(run = id, "cannot remove the bundle {}: {e}", dir.display());
        }
    }

    /// Changes a run's record, wakes its event streams and saves it.
    pub(crate) fn update(&self, run: &Run, change: impl FnOnce(&mut RunRecord)) {
        change(&mut run.lock());
        run.changed.send_modify(|n| *n += 1);
        self.save(run);
    }

    /// Adds a journal entry to the run and wakes its streams. The record is saved again when
    /// the run acts on a node it had not acted on before, so a controller that dies mid-run
    /// leaves a record that names every node the run may have left cordoned.
    pub(crate) fn record_entry(&self, run: &Run, entry: &Entry) {
        run.push(entry);
        if entry.kind != EntryKind::Observe
            && let Some(node) = &entry.node
            && run
                .nodes_saved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(node.clone())
        {
            self.save(run);
        }
    }

    fn save(&self, run: &Run) {
        let value = serde_json::to_value(&*run.lock()).unwrap_or_default();
        let _ = self.saver.send(value);
    }

    /// Forgets the oldest ended runs beyond `retain`.
    fn prune(&self, runs: &mut Vec<Arc<Run>>) {
        let ended = runs
            .iter()
            .filter(|r| r.lock().status.is_terminal())
            .count();
        let mut excess = ended.saturating_sub(self.config.retain);
        runs.retain(|r| {
            if excess > 0 && r.lock().status.is_terminal() {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

fn new_run(record: RunRecord) -> Run {
    let cancelled = record.cancelled_by.clone();
    Run {
        id: record.id.clone(),
        record: Mutex::new(record),
        changed: watch::Sender::new(0),
        cancel: watch::Sender::new(cancelled),
        interrupt: Arc::new(AtomicBool::new(false)),
        nodes_saved: Mutex::new(BTreeSet::new()),
        script_over: Mutex::new(false),
    }
}

/// Wall-clock now, RFC 3339.
pub(crate) fn now() -> String {
    crate::clock::rfc3339(chrono::Utc::now())
}

/// A run id: `run-` and 12 random hex digits.
fn new_id() -> String {
    format!(
        "run-{:012x}",
        crate::session::random_seed() & 0xffff_ffff_ffff
    )
}
