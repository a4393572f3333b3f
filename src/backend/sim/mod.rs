//! `sim`: a simulated GPU cluster with a model of NVSentinel, on a virtual clock.
//!
//! The run's tokio runtime is paused and auto-advances, so a step scheduled hours ahead
//! happens as soon as everything else is idle: hours of plan run in milliseconds, and one seed
//! gives one history. A driver task owns the step queue; waits watch per-node channels.

pub mod config;
mod pipeline;
mod pools;
mod state;
pub mod values;

use crate::backend::*;
use crate::clock::RunClock;
use crate::kmsg::{self, KmsgRecord, LOG_KERN};
use crate::xid::detect;
use crate::xid::line::format_line;
use async_trait::async_trait;
use config::SimConfig;
pub(crate) use pipeline::BreakerCursor;
pub use pipeline::SimStats;
use pipeline::{SimState, boot_id};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use state::*;
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use values::NvsConfig;

struct Shared {
    state: Mutex<SimState>,
    wake: Notify,
    clock: RunClock,
}

pub struct SimBackend {
    shared: Arc<Shared>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for SimBackend {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A summary of the simulated cluster for the start of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SimSummary {
    gpu_nodes: usize,
    cpu_nodes: usize,
    gpus_per_node: usize,
    nvsentinel: NvsConfig,
    timings: config::SimTimings,
}

impl SimBackend {
    /// Builds the cluster and starts its driver. Must run inside the run's runtime.
    pub fn start(
        cfg: SimConfig,
        nvs: NvsConfig,
        seed: u64,
        clock: RunClock,
    ) -> Result<Self, String> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_edc1_u64);
        let nodes = build_nodes(&cfg, &nvs, &mut rng, &clock);
        for name in cfg
            .node_labels
            .keys()
            .chain(&cfg.cordoned_nodes)
            .chain(&cfg.nodes_without_driver)
            .chain(&cfg.nodes_without_gpu_metadata)
        {
            if !nodes.iter().any(|n| &n.name == name) {
                return Err(format!(
                    "sim config names node '{name}', which the cluster does not have (nodes are {}..{})",
                    nodes.first().map(|n| n.name.as_str()).unwrap_or(""),
                    nodes.last().map(|n| n.name.as_str()).unwrap_or("")
                ));
            }
        }
        let mut state = SimState::new(cfg, nvs, nodes, rng, clock);
        if !state.cfg.timings.monitor_first_start.is_zero() {
            let at = state.cfg.timings.monitor_first_start;
            for node in 0..state.nodes.len() {
                state.schedule(at, pipeline::Step::MonitorFirstStart { node });
            }
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Notify::new(),
            clock,
        });
        let driver = tokio::spawn(drive(shared.clone()));
        Ok(SimBackend { shared, driver })
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock is a bug in the model; keep serving what is there.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        self.shared.clock.elapsed()
    }

    fn node_index(st: &SimState, name: &str) -> BackendResult<usize> {
        st.by_name.get(name).copied().ok_or_else(|| {
            let known: Vec<String> = st.by_name.keys().cloned().collect();
            BackendError::node_not_found(name, &known)
        })
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    pub(crate) fn summary(&self) -> SimSummary {
        let st = self.lock();
        SimSummary {
            gpu_nodes: st.cfg.nodes,
            cpu_nodes: st.cfg.cpu_nodes,
            gpus_per_node: st.cfg.gpus_per_node,
            nvsentinel: st.nvs.clone(),
            timings: st.cfg.timings.clone(),
        }
    }

    /// The maintenance CRs of one kind (`RebootNode`, `TerminateNode`), by name.
    pub(crate) fn reboot_nodes(&self, kind: &str) -> Vec<RebootNode> {
        self.lock()
            .reboot_nodes
            .values()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect()
    }

    /// Resets a tripped circuit breaker as NVSentinel's runbook says: the ConfigMap back to
    /// `CLOSED` with `cursor`, and fault-quarantine restarted.
    pub(crate) fn reset_breaker(&self, cursor: pipeline::BreakerCursor) {
        let now = self.now();
        self.lock().reset_breaker(cursor, now);
        self.shared.wake.notify_one();
    }

    /// Cordons a node by hand (`kubectl cordon`), as a person or a tool does before a test.
    /// Writes an XID line into a node's kernel log, as an injection does; `real_xid` writes
    /// one the way the driver would, which is not counted as an injection.
    fn write_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord> {
        let now = self.now();
        let mut st = self.lock();
        let i = Self::node_index(&st, &req.node)?;
        if st.nodes[i].down {
            return Err(BackendError::node_unavailable(
                &req.node,
                "injection",
                "the node is rebooting: its agent is down and its kernel log cannot be written until it is back",
            ));
        }
        let gpu = req.gpu.resolve(&req.node, &st.nodes[i].gpus)?.clone();
        let line = format_line(&gpu.pci, req.xid, &req.line, &req.provenance)
            .map_err(|e| BackendError::invalid("line", e.to_string()))?;
        let written = kmsg::kernel_write(line.as_bytes())
            .map_err(|e| BackendError::failed(Some(&req.node), "kmsg write", e))?;
        let seq = st.nodes[i].push_kmsg(written.facility, written.level, written.text.clone(), now);
        let entry = detect::journal_entry(written.facility, written.level, &written.text);
        st.journal_append(
            i,
            JournalLine {
                message: entry.message,
                transport_kernel: entry.transport == "kernel",
                facility: entry.facility,
            },
            now,
        );
        let time = st.time(now);
        drop(st);
        self.shared.wake.notify_one();
        Ok(FaultRecord {
            id: req.fault_id.clone(),
            node: req.node.clone(),
            gpu: gpu.index,
            pci: gpu.pci,
            uuid: gpu.uuid,
            xid: req.xid,
            line: line.trim_end_matches('\n').to_string(),
            time,
            seq: Some(seq),
            write_path: "sim: one write() to the node's /dev/kmsg".into(),
            agent_pod: None,
            warnings: Vec::new(),
        })
    }

    /// The NVSentinel values the sim runs with.
    pub(crate) fn values(&self) -> NvsConfig {
        self.lock().nvs.clone()
    }

    /// A real GPU fault: the driver's own line (no provenance marker, a real process name),
    /// for testing what a plan does when the cluster fails by itself.
    pub(crate) fn real_xid(
        &self,
        node: &str,
        gpu: crate::backend::GpuSelector,
        xid: u32,
    ) -> BackendResult<FaultRecord> {
        self.write_xid(&InjectRequest {
            node: node.to_string(),
            gpu,
            xid,
            line: crate::xid::LineOptions {
                pid: Some(48_213),
                process_name: Some("python3".into()),
                ..Default::default()
            },
            fault_id: format!("real-{xid}"),
            provenance: String::new(),
            preflight: false,
        })
    }

    pub(crate) fn cordon(&self, node: &str) -> BackendResult<NodeInfo> {
        let mut st = self.lock();
        let i = Self::node_index(&st, node)?;
        st.nodes[i].unschedulable = true;
        st.nodes[i].touch();
        Ok(st.nodes[i].snapshot())
    }

    /// Sets (`Some`) or removes (`None`) a label by hand (`kubectl label`). A driver label
    /// that appears lets the monitor run (and read what it has not read yet).
    pub(crate) fn label(
        &self,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> BackendResult<NodeInfo> {
        let now = self.now();
        let mut guard = self.lock();
        let st = &mut *guard;
        let i = Self::node_index(st, node)?;
        match value {
            Some(v) => st.nodes[i].labels.set(key, v.into(), &mut st.pools),
            None => drop(st.nodes[i].labels.remove(key, &mut st.pools)),
        };
        st.nodes[i].touch();
        st.ensure_poll(i, now);
        let info = st.nodes[i].snapshot();
        drop(guard);
        self.shared.wake.notify_one();
        Ok(info)
    }

    /// Adds a taint by hand (`kubectl taint`).
    pub(crate) fn taint(&self, node: &str, taint: Taint) -> BackendResult<NodeInfo> {
        let mut st = self.lock();
        let i = Self::node_index(&st, node)?;
        if !st.nodes[i].taints.contains(&taint) {
            st.nodes[i].taints.push(taint);
        }
        st.nodes[i].touch();
        Ok(st.nodes[i].snapshot())
    }

    /// Restarts a node's monitor with no saved state: it seeks to the end of the journal, so
    /// lines it has not read yet are never seen.
    pub(crate) fn restart_monitor(&self, node: &str) -> BackendResult<()> {
        let now = self.now();
        let mut st = self.lock();
        let i = Self::node_index(&st, node)?;
        st.monitor_first_start(i, now);
        drop(st);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Reboots a node by hand, as an operator would after a manual-mode RebootNode.
    pub(crate) fn reboot(&self, node: &str) -> BackendResult<()> {
        let now = self.now();
        let mut st = self.lock();
        let i = Self::node_index(&st, node)?;
        if st.nodes[i].down {
            return Err(BackendError::node_unavailable(
                node,
                "reboot",
                "the node is already rebooting",
            ));
        }
        st.begin_reboot(i, now);
        drop(st);
        self.shared.wake.notify_one();
        Ok(())
    }
}

async fn drive(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = shared.clock.elapsed();
            st.run_due(now);
            st.next_due()
        };
        match next {
            Some(at) => {
                let deadline = shared.clock.start_instant() + at;
                tokio::select! {
                    biased;
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

fn build_nodes(
    cfg: &SimConfig,
    nvs: &NvsConfig,
    rng: &mut ChaCha8Rng,
    clock: &RunClock,
) -> Vec<SimNode> {
    let start_time = crate::clock::rfc3339(clock.at(Duration::ZERO));
    let mut nodes = Vec::with_capacity(cfg.nodes + cfg.cpu_nodes);
    let poll_ns = cfg.timings.poll_interval.as_nanos() as u64;
    for i in 0..cfg.nodes + cfg.cpu_nodes {
        let gpu_node = i < cfg.nodes;
        let name = if gpu_node {
            node_name(cfg, i)
        } else {
            let c = SimConfig {
                node_prefix: "cpu-node-".into(),
                nodes: cfg.cpu_nodes,
                ..SimConfig::default()
            };
            node_name(&c, i - cfg.nodes)
        };
        let mut labels = BTreeMap::new();
        labels.insert("kubernetes.io/hostname".to_string(), name.clone());
        labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
        labels.insert(
            "node.kubernetes.io/instance-type".to_string(),
            if gpu_node {
                "p5.48xlarge"
            } else {
                "m7i.4xlarge"
            }
            .to_string(),
        );
        labels.insert(
            "topology.kubernetes.io/zone".to_string(),
            format!("zone-{}", (b'a' + (i % 3) as u8) as char),
        );
        let gpus = if gpu_node {
            labels.insert(keys::GPU_PRESENT.to_string(), "true".to_string());
            labels.insert(
                "nvidia.com/gpu.count".to_string(),
                cfg.gpus_per_node.to_string(),
            );
            labels.insert(
                "nvidia.com/gpu.product".to_string(),
                cfg.gpu_model.replace(' ', "-"),
            );
            if nvs.assume_driver_installed || !cfg.nodes_without_driver.contains(&name) {
                labels.insert(keys::DRIVER_INSTALLED.to_string(), "true".to_string());
            }
            (0..cfg.gpus_per_node)
                .map(|g| GpuInfo {
                    index: g as u32,
                    pci: gpu_pci(g),
                    uuid: gpu_uuid(rng),
                    model: cfg.gpu_model.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut pods = Vec::new();
        if gpu_node {
            for t in &cfg.pods {
                for k in 0..t.count {
                    let suffix = if t.owner == "DaemonSet" {
                        format!("{:03}", i + 1)
                    } else {
                        format!("{:03}-{k}", i + 1)
                    };
                    // Batch pods started at different times before the run: a seeded share of
                    // their run time is already done.
                    let completes_at = t.runs_for.map(|d| d.mul_f64(rng.random_range(0.05..1.0)));
                    pods.push(SimPod {
                        namespace: t.namespace.clone(),
                        name: format!("{}-{suffix}", t.name),
                        owner: t.owner.clone(),
                        completes_at,
                        shutdown: t.shutdown.mul_f64(rng.random_range(0.25..1.0)),
                        terminating: false,
                    });
                }
            }
        }
        if let Some(extra) = cfg.node_labels.get(&name) {
            labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let boot_id = boot_id(rng);
        let (tx, _) = watch::channel(0u64);
        let mut node = SimNode {
            name: name.clone(),
            index: i,
            labels: pools::Labels::new(labels),
            annotations: BTreeMap::new(),
            taints: Vec::new(),
            conditions: vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "KubeletReady".into(),
                message: "kubelet is posting ready status".into(),
                last_transition: start_time.clone(),
            }],
            unschedulable: cfg.cordoned_nodes.contains(&name),
            ready: true,
            down: false,
            boot_id: boot_id.clone(),
            boot_count: 0,
            booted_at: Duration::ZERO,
            gpus,
            gpu_metadata: !cfg.nodes_without_gpu_metadata.contains(&name),
            kmsg: VecDeque::new(),
            next_seq: 0,
            monitor: Monitor {
                running: gpu_node && cfg.timings.monitor_first_start.is_zero(),
                phase: Duration::from_nanos(rng.random_range(0..poll_ns.max(1))),
                poll_scheduled: false,
                pending: Vec::new(),
                report_healthy: false,
                last_boot_id: boot_id,
                seek_tail: false,
            },
            pods,
            quarantine: None,
            pods_gone: Vec::new(),
            events: Vec::new(),
            terminated: false,
            condition_entries: Vec::new(),
            generation: 0,
            tx,
            waiters: Default::default(),
            unavailable: Default::default(),
            slot: 0,
        };
        for line in [
            "Linux version 6.8.0-1017-nvidia (buildd@lcy02-amd64-012) #17-Ubuntu SMP",
            "NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build",
        ] {
            node.push_kmsg(LOG_KERN, 6, line.to_string(), Duration::ZERO);
        }
        nodes.push(node);
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

#[async_trait]
impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    /// A run hears the values' warnings first: what a real NVSentinel with these values would
    /// not do is said at the start of the run, before the script acts.
    fn subscribe(&self, observer: Observer) -> Subscription {
        let st = self.lock();
        for text in &st.nvs.warnings {
            observer(ClusterEvent {
                node: String::new(),
                kind: EventKind::Warning,
                message: text.clone(),
                detail: serde_json::json!({"warning": true}),
            });
        }
        st.events.subscribe(observer)
    }

    async fn list_nodes(&self, selector: Option<&LabelSelector>) -> BackendResult<Vec<NodeInfo>> {
        let st = self.lock();
        Ok(st
            .nodes
            .iter()
            .filter(|n| selector.is_none_or(|s| s.matches(&n.labels)))
            .map(SimNode::snapshot)
            .collect())
    }

    async fn unavailable(
        &self,
        selector: Option<&LabelSelector>,
    ) -> BackendResult<(usize, Vec<String>)> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let nodes = &st.nodes;
        let mut down = st.unavailable.nodes();
        // Every change of the two flags is followed by a touch, which records it; the tests
        // run debug builds, where this holds the sim to that.
        debug_assert_eq!(
            down,
            (0..nodes.len())
                .filter(|&i| nodes[i].unschedulable || !nodes[i].ready)
                .collect::<Vec<_>>(),
            "a node's availability changed without a touch"
        );
        let pool = match selector {
            Some(s) => {
                let members = st.pools.members(s, nodes.len(), |i| &nodes[i].labels);
                down.retain(|i| members.binary_search(i).is_ok());
                members.len()
            }
            None => nodes.len(),
        };
        Ok((
            pool,
            down.into_iter().map(|i| nodes[i].name.clone()).collect(),
        ))
    }

    async fn node(&self, name: &str) -> BackendResult<NodeInfo> {
        let st = self.lock();
        let i = Self::node_index(&st, name)?;
        Ok(st.nodes[i].snapshot())
    }

    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>> {
        let st = self.lock();
        let i = Self::node_index(&st, node)?;
        Ok(st.nodes[i].gpus.clone())
    }

    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord> {
        let rec = self.write_xid(req)?;
        self.lock().stats.injections += 1;
        Ok(rec)
    }

    async fn kmsg_tail(&self, node: &str, opts: &TailOptions) -> BackendResult<Vec<KmsgRecord>> {
        let st = self.lock();
        let i = Self::node_index(&st, node)?;
        let n = &st.nodes[i];
        if n.down {
            return Err(BackendError::node_unavailable(
                node,
                "kmsg read",
                "the node is rebooting",
            ));
        }
        let mut out: Vec<KmsgRecord> = n
            .kmsg
            .iter()
            .filter(|r| opts.since_seq.is_none_or(|s| r.seq >= s))
            .filter(|r| opts.grep.as_deref().is_none_or(|g| r.text.contains(g)))
            .cloned()
            .collect();
        if let Some(limit) = opts.limit
            && out.len() > limit
        {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }

    async fn wait_node(
        &self,
        node: &str,
        predicate: &NodePredicate,
        timeout: Duration,
    ) -> BackendResult<WaitOutcome> {
        let started = self.now();
        let answer = {
            let mut st = self.lock();
            let i = Self::node_index(&st, node)?;
            let n = &mut st.nodes[i];
            // Tested on the node itself: a copy of it is made only for the answer.
            if predicate.holds(&*n) {
                Ok(n.snapshot())
            } else {
                Err(n.waiters.add(predicate.clone()))
            }
        };
        let (satisfied, node) =
            crate::backend::node_waiters::settle(answer, timeout, self.node(node)).await?;
        Ok(WaitOutcome {
            satisfied,
            node,
            elapsed: self.now() - started,
        })
    }

    async fn pods(&self, node: &str) -> BackendResult<Vec<PodInfo>> {
        let now = self.now();
        let st = self.lock();
        let i = Self::node_index(&st, node)?;
        Ok(st.nodes[i]
            .pods
            .iter()
            .filter(|p| p.completes_at.is_none_or(|t| t > now))
            .map(SimPod::info)
            .collect())
    }

    async fn uncordon(&self, node: &str) -> BackendResult<NodeInfo> {
        let now = self.now();
        let mut st = self.lock();
        let i = Self::node_index(&st, node)?;
        st.manual_uncordon(i, now);
        Ok(st.nodes[i].snapshot())
    }

    async fn events(&self, node: &str) -> BackendResult<Vec<KubeEventInfo>> {
        let st = self.lock();
        let i = Self::node_index(&st, node)?;
        Ok(st.nodes[i]
            .events
            .iter()
            .map(|e| KubeEventInfo {
                namespace: e.namespace.clone(),
                type_: e.type_.clone(),
                reason: e.reason.clone(),
                message: e.message.clone(),
                source: e.source.clone(),
                time: e.time.clone(),
                count: e.count,
            })
            .collect())
    }

    async fn wait_remediation(
        &self,
        node: &str,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<RemediationOutcome> {
        let since = window.since.map(|t| self.offset_of(t));
        let (satisfied, cr) = self
            .watch_node(node, timeout, |st, i| {
                let cr = Self::newest_cr(st, i, since);
                (cr.as_ref().is_some_and(MaintenanceInfo::completed), cr)
            })
            .await?;
        Ok(RemediationOutcome { satisfied, cr })
    }

    async fn wait_drained(
        &self,
        node: &str,
        scope: &DrainScope,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<DrainOutcome> {
        let since = window.since.map(crate::clock::rfc3339);
        let now = self.now();
        let (satisfied, (evicted, remaining)) = self
            .watch_node(node, timeout, |st, i| {
                let drained = |ns: &str| match &scope.namespaces {
                    Some(list) => list.iter().any(|n| n == ns),
                    None => st.nvs.drain_mode(ns).is_some(),
                };
                let n = &st.nodes[i];
                let remaining: Vec<PodInfo> = n
                    .pods
                    .iter()
                    .filter(|p| !p.is_daemonset() && drained(&p.namespace))
                    .filter(|p| p.completes_at.is_none_or(|t| t > now))
                    .map(SimPod::info)
                    .collect();
                // RFC 3339 times of one clock, all with milliseconds: text order is time order.
                let evicted: Vec<PodGone> = n
                    .pods_gone
                    .iter()
                    .filter(|g| drained(&g.namespace))
                    .filter(|g| since.as_ref().is_none_or(|s| &g.time >= s))
                    .cloned()
                    .collect();
                (remaining.is_empty(), (evicted, remaining))
            })
            .await?;
        Ok(DrainOutcome {
            satisfied,
            evicted,
            remaining,
        })
    }

    async fn heal(&self, node: &str) -> BackendResult<HealReport> {
        let now = self.now();
        let mut st = self.lock();
        let i = Self::node_index(&st, node)?;
        let uncordoned = st.nodes[i].unschedulable;
        let removed_taints: Vec<Taint> =
            crate::backend::heal::applied_taints(&st.nodes[i].annotations)
                .into_iter()
                .filter(|t| st.nodes[i].taints.contains(t))
                .collect();
        if uncordoned || st.nodes[i].quarantine.is_some() {
            st.manual_uncordon(i, now);
        }
        let st = &mut *st;
        let n = &mut st.nodes[i];
        n.taints.retain(|t| !removed_taints.contains(t));
        let mut removed_labels = Vec::new();
        for k in crate::backend::heal::LABELS {
            if n.labels.remove(k, &mut st.pools).is_some() {
                removed_labels.push(k.to_string());
            }
        }
        let mut removed_annotations = Vec::new();
        for k in crate::backend::heal::ANNOTATIONS {
            if n.annotations.remove(*k).is_some() {
                removed_annotations.push(k.to_string());
            }
        }
        n.touch();
        Ok(HealReport {
            uncordoned,
            removed_labels,
            removed_annotations,
            removed_taints,
            left: crate::backend::heal::LEAVES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            node: n.snapshot(),
        })
    }

    async fn circuit_breaker(&self) -> BackendResult<BreakerStatus> {
        let st = self.lock();
        Ok(BreakerStatus {
            enabled: Some(st.nvs.breaker_enabled),
            status: if st.breaker.tripped {
                "TRIPPED"
            } else {
                "CLOSED"
            }
            .into(),
            since: st.breaker.tripped_at.clone(),
        })
    }
}

impl SimBackend {
    /// The node's newest maintenance CR of `kind` created at or after `since`.
    fn newest_cr(st: &SimState, node: usize, since: Option<Duration>) -> Option<MaintenanceInfo> {
        st.reboot_nodes_by_node
            .get(&node)?
            .iter()
            .rev()
            .filter_map(|name| st.reboot_nodes.get(name))
            .find(|r| r.kind == "RebootNode" && since.is_none_or(|s| r.created_at >= s))
            .map(RebootNode::info)
    }

    /// A wall-clock time as the run's offset (before the start: zero).
    fn offset_of(&self, t: chrono::DateTime<chrono::Utc>) -> Duration {
        (t - self.shared.clock.at(Duration::ZERO))
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// Watches a node's change channel until `check` says done or `timeout` passes;
    /// returns the last answer and whether it was done.
    async fn watch_node<T>(
        &self,
        node: &str,
        timeout: Duration,
        mut check: impl FnMut(&SimState, usize) -> (bool, T),
    ) -> BackendResult<(bool, T)> {
        let (i, mut rx) = {
            let st = self.lock();
            let i = Self::node_index(&st, node)?;
            (i, st.nodes[i].tx.subscribe())
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (done, value) = check(&self.lock(), i);
            if done {
                return Ok((true, value));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => {
                    return Err(BackendError::failed(
                        Some(node),
                        "wait",
                        "the node disappeared",
                    ));
                }
                Err(_) => return Ok((false, check(&self.lock(), i).1)),
            }
        }
    }
}

#[cfg(test)]
mod tests;
