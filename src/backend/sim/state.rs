//! The simulated cluster's objects: nodes with their kernel log, pods, RebootNode CRs, Events.

use super::config::SimConfig;
use crate::backend::{
    CrConditionInfo, GpuInfo, MaintenanceInfo, NodeCondition, NodeInfo, PodGone, PodInfo, Taint,
};
use crate::kmsg::KmsgRecord;
use crate::xid::{Action, PciAddress};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::sync::watch;

/// Records kept per node; the kernel's ring buffer holds a few thousand typical lines.
pub(crate) const KMSG_CAPACITY: usize = 4096;

pub(crate) struct SimPod {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) owner: String,
    /// When the pod finishes on its own (virtual offset), if ever.
    pub(crate) completes_at: Option<Duration>,
    pub(crate) shutdown: Duration,
    pub(crate) terminating: bool,
}

impl SimPod {
    pub(crate) fn info(&self) -> PodInfo {
        PodInfo {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            phase: "Running".into(),
            owner: Some(self.owner.clone()),
            terminating: self.terminating,
        }
    }

    pub(crate) fn is_daemonset(&self) -> bool {
        self.owner == "DaemonSet"
    }
}

/// A health event as syslog-health-monitor sends it and platform-connectors stores it: an
/// XID (fatal or not) or the healthy event after a boot-id change.
#[derive(Debug, Clone)]
pub(crate) struct HealthEvent {
    /// The datastore's document id (24 hex for MongoDB, a UUID for PostgreSQL).
    pub(crate) id: String,
    pub(crate) node: String,
    /// 0 for the healthy event.
    pub(crate) xid: u32,
    /// The PCI address as NVSentinel normalises it (no `.function`); empty when healthy.
    pub(crate) pci: String,
    /// Empty when the GPU is not in NVSentinel's GPU metadata.
    pub(crate) gpu_uuid: String,
    /// The journal entry's whole `MESSAGE`, or `No Health Failures`.
    pub(crate) message: String,
    pub(crate) action: Action,
    pub(crate) fatal: bool,
    pub(crate) healthy: bool,
    pub(crate) detected_at: Duration,
    /// `generatedTimestamp` (seconds, nanos since the epoch).
    pub(crate) generated: (i64, u32),
}

impl HealthEvent {
    /// platform-connectors' `constructHealthEventMessage`: `ErrorCode:<code> ` + one
    /// `<type>:<value> ` per entity + the message with `;` made `.` + `Recommended Action=<A>;`.
    pub(crate) fn condition_text(&self) -> String {
        let mut s = format!("ErrorCode:{} ", self.xid);
        if !self.pci.is_empty() {
            s.push_str(&format!("PCI:{} ", self.pci));
        }
        if !self.gpu_uuid.is_empty() {
            s.push_str(&format!("GPU_UUID:{} ", self.gpu_uuid));
        }
        s.push_str(&self.message.replace(';', "."));
        s.push_str(&format!(" Recommended Action={};", self.action));
        s
    }

    /// The event as fault-quarantine stores it in `quarantineHealthEvent`: `json.Marshal` of
    /// NVSentinel's protobuf struct, enums as numbers.
    pub(crate) fn nvsentinel_json(&self) -> serde_json::Value {
        let mut entities = Vec::new();
        if !self.pci.is_empty() {
            entities.push(serde_json::json!({"entityType": "PCI", "entityValue": self.pci}));
        }
        if !self.gpu_uuid.is_empty() {
            entities
                .push(serde_json::json!({"entityType": "GPU_UUID", "entityValue": self.gpu_uuid}));
        }
        serde_json::json!({
            "version": 1,
            "agent": "syslog-health-monitor",
            "componentClass": "GPU",
            "checkName": crate::backend::keys::COND_XID,
            "isFatal": self.fatal,
            "isHealthy": self.healthy,
            "message": self.message,
            "recommendedAction": self.action.code(),
            "errorCode": if self.healthy { vec![] } else { vec![self.xid.to_string()] },
            "entitiesImpacted": entities,
            "metadata": {},
            "generatedTimestamp": {"seconds": self.generated.0, "nanos": self.generated.1},
            "nodeName": self.node,
            "processingStrategy": 1,
            "id": self.id,
        })
    }
}

/// NVSentinel's ongoing quarantine of a node.
pub(crate) struct Quarantine {
    pub(crate) events: Vec<HealthEvent>,
    /// Pods the drain waits for.
    pub(crate) awaited_pods: Vec<String>,
    pub(crate) drain_done: bool,
    /// The node was already cordoned: fault-quarantine never uncordons it.
    pub(crate) pre_existing_cordon: bool,
}

pub(crate) struct Monitor {
    /// The pod is running (it stops while the node reboots).
    pub(crate) running: bool,
    /// Poll times are `phase + k * interval`.
    pub(crate) phase: Duration,
    pub(crate) poll_scheduled: bool,
    /// Journal entries written since the last poll.
    pub(crate) pending: Vec<JournalLine>,
    /// A boot-id change is waiting to be reported as healthy.
    pub(crate) report_healthy: bool,
    pub(crate) last_boot_id: String,
    /// Started without a state file: the next poll seeks to the end of the journal first, so
    /// the lines not read by then are never seen.
    pub(crate) seek_tail: bool,
}

#[derive(Clone)]
pub(crate) struct JournalLine {
    pub(crate) message: String,
    pub(crate) transport_kernel: bool,
    /// `SYSLOG_FACILITY` (0 kernel; a userspace `/dev/kmsg` write is 1, user).
    pub(crate) facility: u8,
}

pub(crate) struct SimNode {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) labels: super::pools::Labels,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) taints: Vec<Taint>,
    pub(crate) conditions: Vec<NodeCondition>,
    pub(crate) unschedulable: bool,
    pub(crate) ready: bool,
    /// Between the reboot signal taking effect and the new boot.
    pub(crate) down: bool,
    pub(crate) boot_id: String,
    pub(crate) boot_count: u32,
    pub(crate) booted_at: Duration,
    pub(crate) gpus: Vec<GpuInfo>,
    pub(crate) gpu_metadata: bool,
    pub(crate) kmsg: VecDeque<KmsgRecord>,
    pub(crate) next_seq: u64,
    pub(crate) monitor: Monitor,
    pub(crate) pods: Vec<SimPod>,
    pub(crate) quarantine: Option<Quarantine>,
    /// Pods that left the node, oldest first (what `wait_drained` reports).
    pub(crate) pods_gone: Vec<PodGone>,
    /// Kubernetes Events about the node, oldest first.
    pub(crate) events: Vec<KubeEvent>,
    /// Terminated by janitor (a TerminateNode): down for good.
    pub(crate) terminated: bool,
    /// The entries of the `SysLogsXIDError` message while it is True.
    pub(crate) condition_entries: Vec<String>,
    /// Bumped when a quarantine ends or is cancelled, so stale scheduled steps do nothing.
    pub(crate) generation: u64,
    pub(crate) tx: watch::Sender<u64>,
    /// Waits on the node, tested at each [`SimNode::touch`]: every version of the node, as a
    /// watch on a real API server delivers them.
    pub(crate) waiters: crate::backend::node_waiters::NodeWaiters,
    /// The sim's set of unavailable nodes, which this node keeps itself in or out of under
    /// its `slot`, its place in the sim's node list (set by `SimState::new`).
    pub(crate) unavailable: std::sync::Arc<super::pools::Unavailable>,
    pub(crate) slot: usize,
}

impl crate::backend::NodeView for SimNode {
    fn unschedulable(&self) -> bool {
        self.unschedulable
    }
    fn ready(&self) -> bool {
        self.ready
    }
    fn boot_id(&self) -> &str {
        &self.boot_id
    }
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
    fn condition_status(&self, type_: &str) -> Option<&str> {
        self.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.as_str())
    }
}

impl SimNode {
    pub(crate) fn snapshot(&self) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            labels: (*self.labels).clone(),
            annotations: self.annotations.clone(),
            taints: self.taints.clone(),
            conditions: self.conditions.clone(),
            unschedulable: self.unschedulable,
            ready: self.ready,
            boot_id: self.boot_id.clone(),
        }
    }

    /// A new version of the node, what one write to the API server would make: recorded as
    /// available or not, and offered to every wait on the node.
    pub(crate) fn touch(&mut self) {
        self.unavailable
            .record(self.slot, self.unschedulable || !self.ready);
        self.tx.send_modify(|v| *v += 1);
        if !self.waiters.is_empty() {
            let mut waiters = std::mem::take(&mut self.waiters);
            waiters.offer(&*self, SimNode::snapshot);
            self.waiters = waiters;
        }
    }

    pub(crate) fn set_condition(
        &mut self,
        type_: &str,
        status: &str,
        reason: &str,
        message: String,
        time: &str,
    ) {
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition = time.to_string();
                }
                c.status = status.into();
                c.reason = reason.into();
                c.message = message;
            }
            None => self.conditions.push(NodeCondition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.into(),
                message,
                last_transition: time.to_string(),
            }),
        }
    }

    pub(crate) fn uptime_usec(&self, now: Duration) -> u64 {
        now.saturating_sub(self.booted_at).as_micros() as u64 + 5_000_000
    }

    /// Appends a record to the ring buffer, dropping the oldest when full.
    pub(crate) fn push_kmsg(
        &mut self,
        facility: u8,
        level: u8,
        text: String,
        now: Duration,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.kmsg.len() >= KMSG_CAPACITY {
            self.kmsg.pop_front();
        }
        self.kmsg.push_back(KmsgRecord {
            facility,
            level,
            seq,
            usec: self.uptime_usec(now),
            flags: '-',
            extra: vec![],
            text,
            dict: vec![],
        });
        seq
    }
}

/// `RebootNode` or `TerminateNode` (`janitor.dgxc.nvidia.com/v1alpha1`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RebootNode {
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) force: bool,
    pub(crate) created: String,
    pub(crate) start_time: Option<String>,
    pub(crate) completion_time: Option<String>,
    pub(crate) conditions: Vec<CrConditionInfo>,
    #[serde(skip)]
    pub(crate) created_at: Duration,
    #[serde(skip)]
    pub(crate) started_at: Duration,
    #[serde(skip)]
    pub(crate) boot_id_at_signal: String,
    #[serde(skip)]
    pub(crate) done: bool,
}

impl RebootNode {
    pub(crate) fn info(&self) -> MaintenanceInfo {
        MaintenanceInfo {
            kind: self.kind.to_string(),
            name: self.name.clone(),
            node: self.node.clone(),
            created: self.created.clone(),
            start_time: self.start_time.clone(),
            completion_time: self.completion_time.clone(),
            conditions: self.conditions.clone(),
        }
    }
}

/// A core/v1 Event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KubeEvent {
    pub(crate) namespace: String,
    pub(crate) node: String,
    #[serde(rename = "type")]
    pub(crate) type_: String,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) source: String,
    pub(crate) time: String,
    /// Repeats of the same (type, reason, message) bump this instead of adding an Event.
    pub(crate) count: u32,
}

/// A stable, realistic GPU UUID for a node/index pair.
pub(crate) fn gpu_uuid(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 16] = rng.random();
    format!(
        "GPU-{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

pub(crate) fn hex_id(rng: &mut ChaCha8Rng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// PCI buses of an 8-GPU HGX H100 board; larger nodes continue on further buses.
const HGX_BUSES: [u8; 8] = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];

pub(crate) fn gpu_pci(index: usize) -> PciAddress {
    let bus = HGX_BUSES
        .get(index)
        .copied()
        .unwrap_or(0x40u8.wrapping_add((index as u8).wrapping_mul(4)));
    PciAddress::new(0, bus, 0, 0)
}

pub(crate) fn node_name(cfg: &SimConfig, i: usize) -> String {
    let width = cfg.nodes.max(999).to_string().len();
    format!("{}{:0width$}", cfg.node_prefix, i + 1)
}
