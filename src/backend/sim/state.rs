//! The simulated cluster's objects: nodes with their kernel log, pods, RebootNode CRs, Events.

use super::config::SimConfig;
use crate::backend::{GpuInfo, NodeCondition, NodeInfo, PodInfo, Taint, keys};
use crate::kmsg::KmsgRecord;
use crate::xid::{Action, PciAddress};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::sync::watch;

/// Records kept per node; the kernel's ring buffer holds a few thousand typical lines.
pub const KMSG_CAPACITY: usize = 4096;

pub struct SimPod {
    pub namespace: String,
    pub name: String,
    pub owner: String,
    /// When the pod finishes on its own (virtual offset), if ever.
    pub completes_at: Option<Duration>,
    pub shutdown: Duration,
    pub terminating: bool,
}

impl SimPod {
    pub fn info(&self) -> PodInfo {
        PodInfo {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            phase: "Running".into(),
            owner: Some(self.owner.clone()),
            terminating: self.terminating,
        }
    }

    pub fn is_daemonset(&self) -> bool {
        self.owner == "DaemonSet"
    }
}

/// A health event as platform-connectors stores it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthEvent {
    pub id: String,
    pub node: String,
    pub xid: u32,
    pub pci: String,
    pub gpu_uuid: String,
    pub message: String,
    pub action: Action,
    pub fatal: bool,
    #[serde(skip)]
    pub detected_at: Duration,
    pub detected_time: String,
}

/// NVSentinel's ongoing quarantine of a node.
pub struct Quarantine {
    pub events: Vec<HealthEvent>,
    pub cordoned_at: Duration,
    /// Pods the drain waits for.
    pub awaited_pods: Vec<String>,
    pub drain_done: bool,
}

pub struct Monitor {
    /// The pod is running (it stops while the node reboots).
    pub running: bool,
    /// Poll times are `phase + k * interval`.
    pub phase: Duration,
    pub poll_scheduled: bool,
    /// Journal entries written since the last poll.
    pub pending: Vec<JournalLine>,
    /// A boot-id change is waiting to be reported as healthy.
    pub report_healthy: bool,
    pub last_boot_id: String,
}

#[derive(Clone)]
pub struct JournalLine {
    pub message: String,
    pub transport_kernel: bool,
}

pub struct SimNode {
    pub name: String,
    pub index: usize,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub conditions: Vec<NodeCondition>,
    pub unschedulable: bool,
    pub ready: bool,
    /// Between the reboot signal taking effect and the new boot.
    pub down: bool,
    pub boot_id: String,
    pub boot_count: u32,
    pub booted_at: Duration,
    pub gpus: Vec<GpuInfo>,
    pub gpu_metadata: bool,
    pub kmsg: VecDeque<KmsgRecord>,
    pub next_seq: u64,
    pub monitor: Monitor,
    pub pods: Vec<SimPod>,
    pub quarantine: Option<Quarantine>,
    /// RebootNodes whose reboot signal was sent and that wait for this node to be Ready.
    pub pending_reboot_nodes: Vec<String>,
    /// Bumped when a quarantine ends or is cancelled, so stale scheduled steps do nothing.
    pub generation: u64,
    pub tx: watch::Sender<u64>,
}

impl SimNode {
    pub fn snapshot(&self) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            taints: self.taints.clone(),
            conditions: self.conditions.clone(),
            unschedulable: self.unschedulable,
            ready: self.ready,
            boot_id: self.boot_id.clone(),
        }
    }

    /// Wakes every wait on this node.
    pub fn touch(&self) {
        self.tx.send_modify(|v| *v += 1);
    }

    pub fn set_condition(
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

    pub fn state_label(&self) -> Option<&str> {
        self.labels.get(keys::STATE).map(String::as_str)
    }

    pub fn uptime_usec(&self, now: Duration) -> u64 {
        now.saturating_sub(self.booted_at).as_micros() as u64 + 5_000_000
    }

    /// Appends a record to the ring buffer, dropping the oldest when full.
    pub fn push_kmsg(&mut self, facility: u8, level: u8, text: String, now: Duration) -> u64 {
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

#[derive(Debug, Clone, Serialize)]
pub struct CrCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub time: String,
}

/// `RebootNode` (`janitor.dgxc.nvidia.com/v1alpha1`).
#[derive(Debug, Clone, Serialize)]
pub struct RebootNode {
    pub name: String,
    pub node: String,
    pub force: bool,
    pub created: String,
    pub start_time: Option<String>,
    pub completion_time: Option<String>,
    pub conditions: Vec<CrCondition>,
    #[serde(skip)]
    pub boot_id_at_signal: String,
    #[serde(skip)]
    pub done: bool,
}

/// A core/v1 Event.
#[derive(Debug, Clone, Serialize)]
pub struct KubeEvent {
    pub namespace: String,
    pub node: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub source: String,
    pub time: String,
}

/// A stable, realistic GPU UUID for a node/index pair.
pub fn gpu_uuid(rng: &mut ChaCha8Rng) -> String {
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

pub fn hex_id(rng: &mut ChaCha8Rng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// PCI buses of an 8-GPU HGX H100 board; larger nodes continue on further buses.
const HGX_BUSES: [u8; 8] = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];

pub fn gpu_pci(index: usize) -> PciAddress {
    let bus = HGX_BUSES
        .get(index)
        .copied()
        .unwrap_or(0x40u8.wrapping_add((index as u8).wrapping_mul(4)));
    PciAddress::new(0, bus, 0, 0)
}

pub fn node_name(cfg: &SimConfig, i: usize) -> String {
    let width = cfg.nodes.max(999).to_string().len();
    format!("{}{:0width$}", cfg.node_prefix, i + 1)
}
