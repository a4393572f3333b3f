//! NVSentinel's reaction, step by step, as a discrete-event model.
//!
//! NVSentinel is a chain of services that hand work on to each other: syslog-health-monitor
//! detects an XID in the journal, platform-connectors records the health event on the node,
//! fault-quarantine cordons, node-drainer evicts the pods, fault-remediation asks for a reboot
//! with a `RebootNode`, janitor reboots, and once the node comes back on a new boot id the
//! monitor reports it healthy and fault-quarantine uncordons it. Each submodule models one of
//! them, and `node` the machine they wait on; this file holds what they share: the step queue
//! and its dispatch, the cluster state the steps change, and the helpers that report a change
//! (`emit`, the state label, Events).
//!
//! Every hand-off is a step at a virtual time; handling it changes the cluster and schedules
//! the next step. Steps carry the node's quarantine generation so a step made stale by a manual
//! uncordon or a recovery does nothing.

mod drainer;
mod janitor;
mod monitor;
mod node;
mod platform_connector;
mod quarantine;
mod remediation;

pub(crate) use node::boot_id;
pub(crate) use quarantine::{Breaker, BreakerCursor};

use super::config::SimConfig;
use super::state::{HealthEvent, KubeEvent, RebootNode, SimNode};
use super::values::NvsConfig;
use crate::backend::{ClusterEvent, EventHub, EventKind, keys};
use crate::clock::{RunClock, rfc3339};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) enum Step {
    MonitorPoll {
        node: usize,
    },
    PlatformConnect {
        node: usize,
        event: Box<HealthEvent>,
    },
    /// fault-quarantine consumes a stored event (of any kind: it evaluates its breaker first).
    FaultQuarantine {
        node: usize,
        event: Box<HealthEvent>,
    },
    DrainStart {
        node: usize,
        generation: u64,
    },
    PodGone {
        node: usize,
        generation: u64,
        pod: String,
        forced: bool,
    },
    DrainTimeout {
        node: usize,
        generation: u64,
    },
    Remediate {
        node: usize,
        generation: u64,
    },
    JanitorPickup {
        cr: String,
    },
    /// The provider accepted the reboot or terminate signal.
    JanitorSignal {
        cr: String,
    },
    /// janitor looks at the node again (30 s after the signal, then every 60 s).
    JanitorRequeue {
        cr: String,
    },
    NodeDown {
        node: usize,
    },
    NodeBoot {
        node: usize,
    },
    NodeReady {
        node: usize,
    },
    DriverReady {
        node: usize,
    },
    MonitorStart {
        node: usize,
    },
    /// A monitor's very first start: it seeks to the end of the journal.
    MonitorFirstStart {
        node: usize,
    },
}

struct Scheduled {
    at: Duration,
    seq: u64,
    step: Step,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    pub steps: u64,
    pub injections: u64,
    pub detections: u64,
    pub cordons: u64,
    pub drains: u64,
    pub reboot_nodes: u64,
    pub reboots: u64,
    pub uncordons: u64,
}

pub(crate) struct SimState {
    pub(crate) cfg: SimConfig,
    pub(crate) nvs: NvsConfig,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) by_name: BTreeMap<String, usize>,
    pub(crate) reboot_nodes: BTreeMap<String, RebootNode>,
    /// The names of each node's maintenance CRs, oldest first.
    pub(crate) reboot_nodes_by_node: BTreeMap<usize, Vec<String>>,
    pub(crate) breaker: Breaker,
    pub(crate) stats: SimStats,
    /// Nodes labelled `nvidia.com/gpu.present=true` (the breaker's denominator); the label
    /// never changes in the sim.
    pub(crate) gpu_node_count: usize,
    /// Every label write goes through it; it keeps the pools selectors pick.
    pub(crate) pools: super::pools::Pools,
    /// The nodes that are cordoned or not Ready, as of their last touch.
    pub(crate) unavailable: std::sync::Arc<super::pools::Unavailable>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) clock: RunClock,
    pub(crate) events: std::sync::Arc<EventHub>,
    /// The one step queue every module schedules on. Steps leave it in (time, order of
    /// scheduling) order and draw on the one seeded `rng` as they are handled, which is what
    /// makes a seed replay the same history byte for byte.
    queue: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
}

impl SimState {
    pub(crate) fn new(
        cfg: SimConfig,
        nvs: NvsConfig,
        nodes: Vec<SimNode>,
        rng: ChaCha8Rng,
        clock: RunClock,
    ) -> Self {
        let unavailable = std::sync::Arc::new(super::pools::Unavailable::default());
        let mut nodes = nodes;
        for (slot, n) in nodes.iter_mut().enumerate() {
            n.slot = slot;
            n.unavailable = unavailable.clone();
            unavailable.record(slot, n.unschedulable || !n.ready);
        }
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let gpu_node_count = nodes
            .iter()
            .filter(|n| n.labels.get(keys::GPU_PRESENT).map(String::as_str) == Some("true"))
            .count();
        SimState {
            cfg,
            nvs,
            nodes,
            by_name,
            reboot_nodes: BTreeMap::new(),
            reboot_nodes_by_node: BTreeMap::new(),
            breaker: Breaker::default(),
            stats: SimStats::default(),
            gpu_node_count,
            pools: Default::default(),
            unavailable,
            rng,
            clock,
            events: EventHub::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn next_due(&self) -> Option<Duration> {
        self.queue.peek().map(|s| s.0.at)
    }

    /// Handles every step due at or before `now`; returns how many.
    pub(crate) fn run_due(&mut self, now: Duration) -> u64 {
        let mut n = 0;
        while let Some(Reverse(s)) = self.queue.peek() {
            if s.at > now {
                break;
            }
            let Some(Reverse(s)) = self.queue.pop() else {
                break;
            };
            self.handle(s.at, s.step);
            n += 1;
        }
        self.stats.steps += n;
        n
    }

    pub(crate) fn schedule(&mut self, at: Duration, step: Step) {
        // Whole milliseconds: tokio's timers have that resolution, and rounding here keeps
        // every recorded time identical from run to run.
        let at = Duration::from_millis(at.as_nanos().div_ceil(1_000_000) as u64);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq, step }));
    }

    /// `base` with the configured seeded jitter.
    fn latency(&mut self, base: Duration) -> Duration {
        let j = self.cfg.timings.jitter;
        if j <= 0.0 || base.is_zero() {
            return base;
        }
        let f: f64 = self.rng.random_range(1.0 - j..=1.0 + j);
        base.mul_f64(f)
    }

    pub(crate) fn time(&self, at: Duration) -> String {
        rfc3339(self.clock.at(at))
    }

    fn emit(&self, node: &str, kind: EventKind, message: String, detail: serde_json::Value) {
        self.events.publish(ClusterEvent {
            node: node.to_string(),
            kind,
            message,
            detail,
        });
    }

    /// The `nvsentinel-state` label, which fault-quarantine, node-drainer and fault-remediation
    /// each move on in turn.
    fn set_state(&mut self, node: usize, value: &str, at: Duration) {
        let n = &mut self.nodes[node];
        n.labels.set(keys::STATE, value.into(), &mut self.pools);
        let name = n.name.clone();
        self.emit(
            &name,
            EventKind::State,
            format!("state={value}"),
            json!({"state": value, "t": at.as_secs_f64()}),
        );
        // A write of its own in NVSentinel (fault-quarantine's is part of the cordon's, which
        // touches again): a wait on a state that lasts no time still sees it.
        self.nodes[node].touch();
    }

    /// A core/v1 Event on the node, as platform-connectors and node-drainer post them; a
    /// repeat of the same (type, reason, message) bumps the count of the one there.
    fn kube_event(
        &mut self,
        node: usize,
        type_: &str,
        reason: &str,
        message: String,
        source: &str,
        at: Duration,
    ) {
        let time = self.time(at);
        let node_name = self.nodes[node].name.clone();
        let events = &mut self.nodes[node].events;
        if let Some(e) = events
            .iter_mut()
            .find(|e| e.type_ == type_ && e.reason == reason && e.message == message)
        {
            e.count += 1;
            e.time = time;
            return;
        }
        let ev = KubeEvent {
            namespace: "default".into(),
            node: node_name,
            type_: type_.into(),
            reason: reason.into(),
            message,
            source: source.into(),
            time,
            count: 1,
        };
        events.push(ev);
    }

    fn handle(&mut self, now: Duration, step: Step) {
        match step {
            Step::MonitorPoll { node } => self.monitor_poll(node, now),
            Step::PlatformConnect { node, event } => self.platform_connect(node, *event, now),
            Step::FaultQuarantine { node, event } => self.fault_quarantine(node, *event, now),
            Step::DrainStart { node, generation } => self.drain_start(node, generation, now),
            Step::PodGone {
                node,
                generation,
                pod,
                forced,
            } => self.pod_gone(node, generation, &pod, forced, now),
            Step::DrainTimeout { node, generation } => self.drain_timeout(node, generation, now),
            Step::Remediate { node, generation } => self.remediate(node, generation, now),
            Step::JanitorPickup { cr } => self.janitor_pickup(&cr, now),
            Step::JanitorSignal { cr } => self.janitor_signal(&cr, now),
            Step::JanitorRequeue { cr } => self.janitor_requeue(&cr, now),
            Step::NodeDown { node } => self.node_down(node, now),
            Step::NodeBoot { node } => self.node_boot(node, now),
            Step::NodeReady { node } => self.node_ready(node, now),
            Step::DriverReady { node } => self.driver_ready(node, now),
            Step::MonitorStart { node } => self.monitor_start(node, now),
            Step::MonitorFirstStart { node } => self.monitor_first_start(node, now),
        }
    }

    /// Whether a step scheduled for this quarantine still applies: a manual uncordon or a
    /// recovery bumps the generation, and the steps it left behind then do nothing.
    fn current(&self, node: usize, generation: u64) -> bool {
        let n = &self.nodes[node];
        n.generation == generation && n.quarantine.is_some()
    }
}
