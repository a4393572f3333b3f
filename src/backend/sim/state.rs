//! The simulated cluster's objects: nodes with their kernel log, pods, RebootNode CRs, Events.

use super::config::SimConfig;
use crate::backend::{GpuInfo, NodeCondition, NodeInfo, PodInfo, Taint};
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

/// A health event as platform-connectors stores it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HealthEvent {
    pub(crate) id: String,
    pub(crate) node: String,
    pub(crate) xid: u32,
    pub(crate) pci: String,
    pub(crate) gpu_uuid: String,
    pub(crate) message: String,
    pub(crate) action: Action,
    pub(crate) fatal: bool,
    #[serde(skip)]
    pub(crate) detected_at: Duration,
    pub(crate) detected_time: String,
}

/// NVSentinel's ongoing quarantine of a node.
pub(crate) struct Quarantine {
    pub(crate) events: Vec<HealthEvent>,
    /// Pods the drain waits for.
    pub(crate) awaited_pods: Vec<String>,
    pub(crate) drain_done: bool,
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
}

#[derive(Clone)]
pub(crate) struct JournalLine {
    pub(crate) message: String,
    pub(crate) transport_kernel: bool,
}

pub(crate) struct SimNode {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) labels: BTreeMap<String, String>,
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
    /// RebootNodes whose reboot signal was sent and that wait for this node to be Ready.
    pub(crate) pending_reboot_nodes: Vec<String>,
    /// Bumped when a quarantine ends or is cancelled, so stale scheduled steps do nothing.
    pub(crate) generation: u64,
    pub(crate) tx: watch::Sender<u64>,
}

impl SimNode {
    pub(crate) fn snapshot(&self) -> NodeInfo {
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
    pub(crate) fn touch(&self) {
        self.tx.send_modify(|v| *v += 1);
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

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CrCondition {
    #[serde(rename = "type")]
    pub(crate) type_: String,
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) time: String,
}

/// `RebootNode` (`janitor.dgxc.nvidia.com/v1alpha1`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RebootNode {
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) force: bool,
    pub(crate) created: String,
    pub(crate) start_time: Option<String>,
    pub(crate) completion_time: Option<String>,
    pub(crate) conditions: Vec<CrCondition>,
    #[serde(skip)]
    pub(crate) boot_id_at_signal: String,
    #[serde(skip)]
    pub(crate) done: bool,
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
