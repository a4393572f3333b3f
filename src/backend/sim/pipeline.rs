//! NVSentinel's reaction, step by step, as a discrete-event model.
//!
//! Each step is an event at a virtual time; handling it changes the cluster and schedules the
//! next step (`../shared/reference/nvsentinel.md` §1-§5). Steps carry the node's quarantine
//! generation so a step made stale by a manual uncordon or a recovery does nothing.

use super::config::SimConfig;
use super::state::*;
use super::values::{DrainMode, NvsConfig};
use crate::backend::{ClusterEvent, EventHub, EventKind, Taint, keys};
use crate::clock::{RunClock, label_timestamp, rfc3339};
use crate::kmsg::LOG_KERN;
use crate::xid::catalog::{self, ActionRule};
use crate::xid::{Action, detect};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Step {
    MonitorPoll {
        node: usize,
    },
    PlatformConnect {
        node: usize,
        event: Box<HealthEvent>,
    },
    Quarantine {
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
    NodeDown {
        node: usize,
    },
    NodeBoot {
        node: usize,
    },
    NodeReady {
        node: usize,
    },
    MonitorStart {
        node: usize,
    },
    /// A monitor's very first start: it seeks to the end of the journal.
    MonitorFirstStart {
        node: usize,
    },
    Healthy {
        node: usize,
    },
    Unquarantine {
        node: usize,
        generation: u64,
    },
    RebootTimeout {
        cr: String,
    },
    PretendRebootDone {
        cr: String,
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

#[derive(Debug, Clone, Default, Serialize)]
pub struct Breaker {
    pub tripped: bool,
    pub tripped_at: Option<String>,
    #[serde(skip)]
    pub recent_cordons: VecDeque<(Duration, String)>,
}

pub struct SimState {
    pub cfg: SimConfig,
    pub nvs: NvsConfig,
    pub nodes: Vec<SimNode>,
    pub by_name: BTreeMap<String, usize>,
    pub reboot_nodes: BTreeMap<String, RebootNode>,
    pub kube_events: Vec<KubeEvent>,
    pub breaker: Breaker,
    pub stats: SimStats,
    /// Nodes labelled `nvidia.com/gpu.present=true` (the breaker's denominator); the label
    /// never changes in the sim.
    pub gpu_node_count: usize,
    pub rng: ChaCha8Rng,
    pub clock: RunClock,
    pub events: std::sync::Arc<EventHub>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
}

impl SimState {
    pub fn new(
        cfg: SimConfig,
        nvs: NvsConfig,
        nodes: Vec<SimNode>,
        rng: ChaCha8Rng,
        clock: RunClock,
    ) -> Self {
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
            kube_events: Vec::new(),
            breaker: Breaker::default(),
            stats: SimStats::default(),
            gpu_node_count,
            rng,
            clock,
            events: EventHub::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    pub fn next_due(&self) -> Option<Duration> {
        self.queue.peek().map(|s| s.0.at)
    }

    /// Handles every step due at or before `now`; returns how many.
    pub fn run_due(&mut self, now: Duration) -> u64 {
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

    pub fn schedule(&mut self, at: Duration, step: Step) {
        // Whole milliseconds: tokio's timers have that resolution, and rounding here keeps
        // every recorded time identical from run to run.
        let at = Duration::from_millis(at.as_nanos().div_ceil(1_000_000) as u64);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq, step }));
    }

    /// `base` with the configured seeded jitter.
    pub fn latency(&mut self, base: Duration) -> Duration {
        let j = self.cfg.timings.jitter;
        if j <= 0.0 || base.is_zero() {
            return base;
        }
        let f: f64 = self.rng.random_range(1.0 - j..=1.0 + j);
        base.mul_f64(f)
    }

    pub fn time(&self, at: Duration) -> String {
        rfc3339(self.clock.at(at))
    }

    pub fn emit(&self, node: &str, kind: EventKind, message: String, detail: serde_json::Value) {
        self.events.publish(ClusterEvent {
            node: node.to_string(),
            kind,
            message,
            detail,
        });
    }

    fn set_state(&mut self, node: usize, value: &str, at: Duration) {
        let n = &mut self.nodes[node];
        n.labels.insert(keys::STATE.into(), value.into());
        let name = n.name.clone();
        self.emit(
            &name,
            EventKind::State,
            format!("state={value}"),
            json!({"state": value, "t": at.as_secs_f64()}),
        );
    }

    fn kube_event(
        &mut self,
        node: usize,
        type_: &str,
        reason: &str,
        message: String,
        source: &str,
        at: Duration,
    ) {
        let ev = KubeEvent {
            namespace: "default".into(),
            node: self.nodes[node].name.clone(),
            type_: type_.into(),
            reason: reason.into(),
            message,
            source: source.into(),
            time: self.time(at),
        };
        self.kube_events.push(ev);
    }

    /// Next poll of a node's monitor at or after `now`.
    pub fn next_poll(&self, node: usize, now: Duration) -> Duration {
        let p = self.cfg.timings.poll_interval.as_nanos();
        let phase = self.nodes[node].monitor.phase;
        if now <= phase {
            return phase;
        }
        let k = (now - phase).as_nanos().div_ceil(p);
        phase + Duration::from_nanos((k * p) as u64)
    }

    /// A line landed in a node's journal: the monitor picks it up at its next poll.
    pub fn journal_append(&mut self, node: usize, line: JournalLine, now: Duration) {
        self.nodes[node].monitor.pending.push(line);
        self.ensure_poll(node, now);
    }

    fn ensure_poll(&mut self, node: usize, now: Duration) {
        let m = &self.nodes[node].monitor;
        if m.running && !m.poll_scheduled && (!m.pending.is_empty() || m.report_healthy) {
            self.nodes[node].monitor.poll_scheduled = true;
            let at = self.next_poll(node, now);
            self.schedule(at, Step::MonitorPoll { node });
        }
    }

    fn handle(&mut self, now: Duration, step: Step) {
        match step {
            Step::MonitorPoll { node } => self.monitor_poll(node, now),
            Step::PlatformConnect { node, event } => self.platform_connect(node, *event, now),
            Step::Quarantine { node, event } => self.quarantine(node, *event, now),
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
            Step::NodeDown { node } => self.node_down(node, now),
            Step::NodeBoot { node } => self.node_boot(node, now),
            Step::NodeReady { node } => self.node_ready(node, now),
            Step::MonitorStart { node } => self.monitor_start(node, now),
            Step::MonitorFirstStart { node } => self.monitor_first_start(node, now),
            Step::Healthy { node } => self.healthy(node, now),
            Step::Unquarantine { node, generation } => self.unquarantine(node, generation, now),
            Step::RebootTimeout { cr } => self.reboot_timeout(&cr, now),
            Step::PretendRebootDone { cr } => self.pretend_reboot_done(&cr, now),
        }
    }

    fn current(&self, node: usize, generation: u64) -> bool {
        let n = &self.nodes[node];
        n.generation == generation && n.quarantine.is_some()
    }

    // syslog-health-monitor -------------------------------------------------------------

    fn monitor_poll(&mut self, node: usize, now: Duration) {
        self.nodes[node].monitor.poll_scheduled = false;
        if !self.nodes[node].monitor.running || !self.nvs.syslog_health_monitor {
            return;
        }
        let lines = std::mem::take(&mut self.nodes[node].monitor.pending);
        for line in lines {
            if !line.transport_kernel {
                continue;
            }
            let Some(m) = detect::match_xid(&line.message) else {
                continue;
            };
            let event = self.health_event(node, &line.message, &m, now);
            self.stats.detections += 1;
            let name = self.nodes[node].name.clone();
            self.emit(
                &name,
                EventKind::Detected,
                format!(
                    "syslog-health-monitor: XID {} on {} → {}{}",
                    event.xid,
                    event.pci,
                    event.action,
                    if event.fatal { "" } else { " (non-fatal)" }
                ),
                json!({"xid": event.xid, "pci": event.pci, "gpu_uuid": event.gpu_uuid, "action": event.action, "fatal": event.fatal, "event_id": event.id}),
            );
            let at = now + self.latency(self.cfg.timings.platform_connector);
            self.schedule(
                at,
                Step::PlatformConnect {
                    node,
                    event: Box::new(event),
                },
            );
        }
        if self.nodes[node].monitor.report_healthy {
            self.nodes[node].monitor.report_healthy = false;
            let at = now + self.latency(self.cfg.timings.platform_connector);
            self.schedule(at, Step::Healthy { node });
        }
    }

    fn health_event(
        &mut self,
        node: usize,
        message: &str,
        m: &detect::XidMatch,
        now: Duration,
    ) -> HealthEvent {
        let n = &self.nodes[node];
        let gpu = m
            .pci
            .and_then(|p| n.gpus.iter().find(|g| g.pci.same_device(&p)));
        let uuid = gpu.map(|g| g.uuid.clone()).unwrap_or_default();
        let info = catalog::lookup_or_generic(m.xid);
        let base = match info.rule {
            ActionRule::Fixed(a) => a,
            ActionRule::FromLine => detect::xid154_action(message),
        };
        let mut action = self.nvs.action_for(m.xid, base);
        if action == Action::ComponentReset
            && (info.metadata_dependent || !info.known)
            && (!n.gpu_metadata || uuid.is_empty())
        {
            action = Action::RestartVm;
        }
        let text = line_text(message);
        let id = hex_id(&mut self.rng, 12);
        HealthEvent {
            id,
            node: n.name.clone(),
            xid: m.xid,
            pci: m.pci_text.clone(),
            gpu_uuid: uuid.clone(),
            message: format!(
                "ErrorCode:{} PCI:{} GPU_UUID:{} {} Recommended Action={};",
                m.xid, m.pci_text, uuid, text, action
            ),
            action,
            fatal: action.is_fatal(),
            detected_at: now,
            detected_time: self.time(now),
        }
    }

    fn monitor_start(&mut self, node: usize, now: Duration) {
        let n = &mut self.nodes[node];
        n.monitor.running = true;
        if n.monitor.last_boot_id != n.boot_id {
            n.monitor.last_boot_id = n.boot_id.clone();
            n.monitor.report_healthy = true;
        }
        self.ensure_poll(node, now);
    }

    /// A fresh monitor (first install, or its state wiped) starts at the end of the journal.
    pub fn monitor_first_start(&mut self, node: usize, now: Duration) {
        let n = &mut self.nodes[node];
        if n.down || !n.labels.contains_key(keys::GPU_PRESENT) {
            return;
        }
        let skipped = std::mem::take(&mut n.monitor.pending).len();
        n.monitor.running = true;
        n.monitor.last_boot_id = n.boot_id.clone();
        let name = n.name.clone();
        self.emit(
            &name,
            EventKind::MonitorStart,
            format!("syslog-health-monitor started fresh: seeks to the end of the journal ({skipped} unread line(s) never seen)"),
            json!({"skipped": skipped}),
        );
        self.ensure_poll(node, now);
    }

    // platform-connectors ---------------------------------------------------------------

    fn platform_connect(&mut self, node: usize, event: HealthEvent, now: Duration) {
        let name = self.nodes[node].name.clone();
        if event.fatal {
            let time = self.time(now);
            let n = &mut self.nodes[node];
            let message = match n.condition_message_if_true() {
                Some(prev) => format!("{prev}{}", event.message),
                None => event.message.clone(),
            };
            n.set_condition(
                keys::COND_XID,
                "True",
                keys::REASON_UNHEALTHY,
                message,
                &time,
            );
            n.touch();
            self.emit(
                &name,
                EventKind::Condition,
                format!("condition {}=True (XID {}, {})", keys::COND_XID, event.xid, event.action),
                json!({"type": keys::COND_XID, "status": "True", "xid": event.xid, "action": event.action}),
            );
            if self.nvs.fault_quarantine {
                let at = now + self.latency(self.cfg.timings.quarantine);
                self.schedule(
                    at,
                    Step::Quarantine {
                        node,
                        event: Box::new(event),
                    },
                );
            }
        } else {
            self.kube_event(
                node,
                "Warning",
                keys::REASON_UNHEALTHY,
                event.message.clone(),
                "nvsentinel-platform-connectors",
                now,
            );
            self.nodes[node].touch();
            self.emit(
                &name,
                EventKind::Event,
                format!(
                    "Event {} (XID {} is not fatal: no cordon)",
                    keys::REASON_UNHEALTHY,
                    event.xid
                ),
                json!({"reason": keys::REASON_UNHEALTHY, "xid": event.xid}),
            );
        }
    }

    fn healthy(&mut self, node: usize, now: Duration) {
        let name = self.nodes[node].name.clone();
        let time = self.time(now);
        let n = &mut self.nodes[node];
        let had = n.conditions.iter().any(|c| c.type_ == keys::COND_XID);
        if had {
            n.set_condition(
                keys::COND_XID,
                "False",
                keys::REASON_HEALTHY,
                "No Health Failures".into(),
                &time,
            );
            n.touch();
            self.emit(
                &name,
                EventKind::Condition,
                format!("condition {}=False (healthy after reboot)", keys::COND_XID),
                json!({"type": keys::COND_XID, "status": "False"}),
            );
        }
        if self.nvs.fault_quarantine && self.nodes[node].quarantine.is_some() {
            let generation = self.nodes[node].generation;
            let at = now + self.latency(self.cfg.timings.quarantine);
            self.schedule(at, Step::Unquarantine { node, generation });
        }
    }

    // fault-quarantine ------------------------------------------------------------------

    /// True when a tripped circuit breaker stops fault-quarantine from acting.
    fn breaker_halts(&mut self, node: usize, what: &str) -> bool {
        if !self.breaker.tripped {
            return false;
        }
        let name = self.nodes[node].name.clone();
        self.emit(
            &name,
            EventKind::Halted,
            format!("fault-quarantine: {what} halted (circuit breaker TRIPPED)"),
            json!({"halted": what}),
        );
        true
    }

    /// After a cordon: trips the breaker when the distinct nodes cordoned within the window
    /// reach the configured share of GPU nodes (on a 1-2 node cluster, the first cordon).
    fn breaker_count_cordon(&mut self, node: usize, now: Duration) {
        let name = self.nodes[node].name.clone();
        self.breaker.recent_cordons.push_back((now, name.clone()));
        if !self.nvs.breaker_enabled || self.breaker.tripped {
            return;
        }
        let window = self.nvs.breaker_window;
        while let Some((t, _)) = self.breaker.recent_cordons.front() {
            if now.saturating_sub(*t) > window {
                self.breaker.recent_cordons.pop_front();
            } else {
                break;
            }
        }
        let distinct: BTreeSet<&str> = self
            .breaker
            .recent_cordons
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        let cordoned = distinct.len();
        let total = self.gpu_node_count;
        let threshold = total as f64 * self.nvs.breaker_percentage / 100.0;
        if total > 0 && cordoned as f64 >= threshold {
            self.breaker.tripped = true;
            self.breaker.tripped_at = Some(self.time(now));
            self.emit(
                &name,
                EventKind::Breaker,
                format!(
                    "circuit breaker TRIPPED: {cordoned} of {total} GPU nodes cordoned within {}; fault-quarantine halts until it is reset",
                    crate::duration::format(window)
                ),
                json!({"status": "TRIPPED", "cordoned": cordoned, "nodes": total}),
            );
        }
    }

    fn quarantine(&mut self, node: usize, event: HealthEvent, now: Duration) {
        if self.breaker_halts(node, "quarantine") {
            return;
        }
        let name = self.nodes[node].name.clone();
        if let Some(q) = self.nodes[node].quarantine.as_mut() {
            q.events.push(event);
            let events = serde_json::to_string(&q.events).unwrap_or_default();
            self.nodes[node]
                .annotations
                .insert(keys::ANN_QUARANTINE_EVENT.into(), events);
            self.nodes[node].touch();
            self.emit(
                &name,
                EventKind::Quarantine,
                "already quarantined: health event added".into(),
                json!(null),
            );
            return;
        }
        let label_time = label_timestamp(self.clock.at(now));
        let ruleset = self.nvs.ruleset.clone();
        let cordon = self.nvs.cordon;
        let taint = self.nvs.taint.clone();
        let n = &mut self.nodes[node];
        if cordon {
            n.unschedulable = true;
        }
        let applied: Vec<_> = taint.into_iter().collect();
        for t in &applied {
            if !n.taints.contains(t) {
                n.taints.push(t.clone());
            }
        }
        for k in [
            keys::UNCORDON_BY,
            keys::UNCORDON_REASON,
            keys::UNCORDON_TIMESTAMP,
        ] {
            n.labels.remove(k);
        }
        n.annotations.remove(keys::ANN_UNCORDONED_MANUALLY);
        n.labels
            .insert(keys::CORDON_BY.into(), keys::NVSENTINEL.into());
        n.labels.insert(keys::CORDON_REASON.into(), ruleset.clone());
        n.labels.insert(keys::CORDON_TIMESTAMP.into(), label_time);
        n.annotations.insert(
            keys::ANN_QUARANTINE_EVENT.into(),
            serde_json::to_string(&[&event]).unwrap_or_default(),
        );
        n.annotations.insert(
            keys::ANN_IS_CORDONED.into(),
            if cordon { "True" } else { "False" }.into(),
        );
        n.annotations.insert(
            keys::ANN_APPLIED_TAINTS.into(),
            serde_json::to_string(&applied).unwrap_or_default(),
        );
        let xid = event.xid;
        n.quarantine = Some(Quarantine {
            events: vec![event],
            cordoned_at: now,
            awaited_pods: Vec::new(),
            drain_done: false,
        });
        let generation = n.generation;
        self.stats.cordons += 1;
        self.emit(
            &name,
            EventKind::Cordoned,
            format!("fault-quarantine: cordoned (rule set {ruleset}, XID {xid})"),
            json!({"ruleset": ruleset, "xid": xid}),
        );
        self.set_state(node, "quarantined", now);
        self.breaker_count_cordon(node, now);
        self.nodes[node].touch();
        if self.nvs.node_drainer {
            let at = now + self.latency(self.cfg.timings.drain_start);
            self.schedule(at, Step::DrainStart { node, generation });
        } else if self.nvs.fault_remediation {
            let at = now + self.latency(self.cfg.timings.remediation);
            self.schedule(at, Step::Remediate { node, generation });
        }
    }

    fn unquarantine(&mut self, node: usize, generation: u64, now: Duration) {
        if !self.current(node, generation) {
            return;
        }
        if self.breaker_halts(node, "uncordon") {
            return;
        }
        let label_time = label_timestamp(self.clock.at(now));
        let n = &mut self.nodes[node];
        let reason = n
            .labels
            .get(keys::CORDON_REASON)
            .cloned()
            .unwrap_or_else(|| "quarantine".into());
        let applied = applied_taints(&n.annotations);
        n.taints.retain(|t| !applied.contains(t));
        n.unschedulable = false;
        for k in [
            keys::CORDON_BY,
            keys::CORDON_REASON,
            keys::CORDON_TIMESTAMP,
            keys::STATE,
        ] {
            n.labels.remove(k);
        }
        for k in [
            keys::ANN_QUARANTINE_EVENT,
            keys::ANN_IS_CORDONED,
            keys::ANN_APPLIED_TAINTS,
        ] {
            n.annotations.remove(k);
        }
        n.labels
            .insert(keys::UNCORDON_BY.into(), keys::NVSENTINEL.into());
        n.labels.insert(keys::UNCORDON_TIMESTAMP.into(), label_time);
        n.labels
            .insert(keys::UNCORDON_REASON.into(), format!("{reason}-removed"));
        n.quarantine = None;
        n.generation += 1;
        n.touch();
        let name = n.name.clone();
        self.stats.uncordons += 1;
        self.emit(
            &name,
            EventKind::Uncordoned,
            "fault-quarantine: uncordoned (healthy)".into(),
            json!(null),
        );
    }

    /// `kubectl uncordon`: NVSentinel takes it as a cancel of the quarantine.
    pub fn manual_uncordon(&mut self, node: usize, now: Duration) {
        let n = &mut self.nodes[node];
        n.unschedulable = false;
        let name = n.name.clone();
        if n.quarantine.take().is_some() {
            let applied = applied_taints(&n.annotations);
            n.taints.retain(|t| !applied.contains(t));
            n.annotations.remove(keys::ANN_APPLIED_TAINTS);
            n.annotations.remove(keys::ANN_QUARANTINE_EVENT);
            n.annotations.remove(keys::ANN_IS_CORDONED);
            n.annotations
                .insert(keys::ANN_UNCORDONED_MANUALLY.into(), "True".into());
            n.labels.remove(keys::STATE);
            n.generation += 1;
            n.touch();
            self.emit(
                &name,
                EventKind::Uncordoned,
                "uncordoned by hand: NVSentinel treats it as a cancel (condition left in place)"
                    .into(),
                json!({"manual": true, "t": now.as_secs_f64()}),
            );
        } else {
            n.touch();
            self.emit(
                &name,
                EventKind::Uncordoned,
                "uncordoned by hand".into(),
                json!({"manual": true}),
            );
        }
    }

    // node-drainer ----------------------------------------------------------------------

    fn drain_start(&mut self, node: usize, generation: u64, now: Duration) {
        if !self.current(node, generation) {
            return;
        }
        self.stats.drains += 1;
        self.set_state(node, "draining", now);
        let detected_at = self.nodes[node]
            .quarantine
            .as_ref()
            .and_then(|q| q.events.first())
            .map(|e| e.detected_at)
            .unwrap_or(now);
        let eviction_timeout = self.nvs.eviction_timeout;
        let delete_after = self.nvs.delete_after_timeout;
        let mut plans = Vec::new();
        let mut awaiting = Vec::new();
        let mut force_wait = Vec::new();
        for pod in &mut self.nodes[node].pods {
            if pod.is_daemonset() || pod.terminating || pod.completes_at.is_some_and(|t| t <= now) {
                continue;
            }
            let Some(mode) = self.nvs.drain_mode(&pod.namespace) else {
                continue;
            };
            let qualified = format!("{}/{}", pod.namespace, pod.name);
            match mode {
                DrainMode::Immediate => {
                    pod.terminating = true;
                    plans.push((
                        now + pod.shutdown.min(eviction_timeout),
                        pod.name.clone(),
                        pod.shutdown > eviction_timeout,
                    ));
                }
                DrainMode::AllowCompletion => {
                    awaiting.push(qualified);
                    if let Some(t) = pod.completes_at {
                        plans.push((t.max(now), pod.name.clone(), false));
                    } else {
                        plans.push((Duration::MAX, pod.name.clone(), false));
                    }
                }
                DrainMode::DeleteAfterTimeout => {
                    force_wait.push(qualified);
                    let deadline = detected_at + delete_after;
                    match pod.completes_at {
                        Some(t) if t < deadline => {
                            plans.push((t.max(now), pod.name.clone(), false))
                        }
                        _ => plans.push((deadline.max(now), pod.name.clone(), true)),
                    }
                }
            }
        }
        if !awaiting.is_empty() {
            self.kube_event(
                node,
                "NodeDraining",
                "AwaitingPodCompletion",
                format!(
                    "Waiting for following pods to finish: [{}]",
                    awaiting.join(", ")
                ),
                "nvsentinel-node-drainer",
                now,
            );
        }
        if !force_wait.is_empty() {
            let deadline = self.time(detected_at + delete_after);
            self.kube_event(
                node,
                "NodeDraining",
                "WaitingBeforeForceDelete",
                format!(
                    "Waiting for following pods to finish: [{}] or they will be force deleted on: {deadline}",
                    force_wait.join(", ")
                ),
                "nvsentinel-node-drainer",
                now,
            );
        }
        let awaited: Vec<String> = plans.iter().map(|(_, p, _)| p.clone()).collect();
        if let Some(q) = self.nodes[node].quarantine.as_mut() {
            q.awaited_pods = awaited;
        }
        for (at, pod, forced) in plans {
            if at != Duration::MAX {
                self.schedule(
                    at,
                    Step::PodGone {
                        node,
                        generation,
                        pod,
                        forced,
                    },
                );
            }
        }
        if let Some(t) = self.nvs.drain_timeout {
            self.schedule(now + t, Step::DrainTimeout { node, generation });
        }
        self.nodes[node].touch();
        self.finish_drain_if_done(node, generation, now);
    }

    fn pod_gone(&mut self, node: usize, generation: u64, pod: &str, forced: bool, now: Duration) {
        let n = &mut self.nodes[node];
        let Some(i) = n.pods.iter().position(|p| p.name == pod) else {
            return;
        };
        let p = n.pods.remove(i);
        n.touch();
        let name = n.name.clone();
        let how = if forced {
            "force-deleted"
        } else if p.terminating {
            "evicted"
        } else {
            "completed"
        };
        self.emit(
            &name,
            EventKind::Evicted,
            format!("pod {}/{} {how}", p.namespace, p.name),
            json!({"pod": format!("{}/{}", p.namespace, p.name), "how": how}),
        );
        if self.current(node, generation)
            && let Some(q) = self.nodes[node].quarantine.as_mut()
        {
            q.awaited_pods.retain(|x| x != pod);
            self.finish_drain_if_done(node, generation, now);
        }
    }

    fn finish_drain_if_done(&mut self, node: usize, generation: u64, now: Duration) {
        let Some(q) = self.nodes[node].quarantine.as_mut() else {
            return;
        };
        if q.drain_done || !q.awaited_pods.is_empty() {
            return;
        }
        q.drain_done = true;
        self.set_state(node, "drain-succeeded", now);
        self.nodes[node].touch();
        if self.nvs.fault_remediation {
            let at = now + self.latency(self.cfg.timings.remediation);
            self.schedule(at, Step::Remediate { node, generation });
        }
    }

    fn drain_timeout(&mut self, node: usize, generation: u64, now: Duration) {
        if !self.current(node, generation) {
            return;
        }
        let Some(q) = self.nodes[node].quarantine.as_mut() else {
            return;
        };
        if q.drain_done {
            return;
        }
        q.drain_done = true;
        let left = q.awaited_pods.join(", ");
        self.set_state(node, "drain-failed", now);
        let name = self.nodes[node].name.clone();
        self.nodes[node].touch();
        self.emit(
            &name,
            EventKind::DrainFailed,
            format!("node-drainer: drain timed out waiting for [{left}]"),
            json!({"pods": left}),
        );
    }

    // fault-remediation -----------------------------------------------------------------

    fn remediate(&mut self, node: usize, generation: u64, now: Duration) {
        if !self.current(node, generation) {
            return;
        }
        self.set_state(node, "remediating", now);
        let Some(q) = self.nodes[node].quarantine.as_ref() else {
            return;
        };
        let chosen = q
            .events
            .iter()
            .find(|e| e.action.reboots())
            .or_else(|| q.events.first())
            .cloned();
        let Some(event) = chosen else {
            return;
        };
        let name = self.nodes[node].name.clone();
        let time = self.time(now);
        if event.action.reboots() {
            let cr = format!("maintenance-{}-{}", name, event.id);
            self.reboot_nodes.insert(
                cr.clone(),
                RebootNode {
                    name: cr.clone(),
                    node: name.clone(),
                    force: false,
                    created: time.clone(),
                    start_time: None,
                    completion_time: None,
                    conditions: Vec::new(),
                    boot_id_at_signal: String::new(),
                    done: false,
                },
            );
            self.stats.reboot_nodes += 1;
            self.nodes[node].annotations.insert(
                keys::ANN_REMEDIATION_STATE.into(),
                json!({"action": event.action, "crName": cr, "status": "Succeeded", "time": time})
                    .to_string(),
            );
            self.emit(
                &name,
                EventKind::Rebootnode,
                format!(
                    "fault-remediation: RebootNode {cr} created ({})",
                    event.action
                ),
                json!({"name": cr, "action": event.action}),
            );
            self.set_state(node, "remediation-succeeded", now);
            if self.nvs.janitor {
                let at = now + self.latency(self.cfg.timings.janitor_pickup);
                self.schedule(at, Step::JanitorPickup { cr });
            }
        } else {
            self.nodes[node].annotations.insert(
                keys::ANN_REMEDIATION_STATE.into(),
                json!({"action": event.action, "status": "Failed", "time": time}).to_string(),
            );
            self.emit(
                &name,
                EventKind::RemediationFailed,
                format!(
                    "fault-remediation: no remediation for {}; the node stays cordoned",
                    event.action
                ),
                json!({"action": event.action}),
            );
            self.set_state(node, "remediation-failed", now);
        }
        self.nodes[node].touch();
    }

    // janitor ---------------------------------------------------------------------------

    fn cr_condition(&mut self, cr: &str, type_: &str, status: &str, reason: &str, now: Duration) {
        let time = self.time(now);
        if let Some(r) = self.reboot_nodes.get_mut(cr) {
            r.conditions.retain(|c| c.type_ != type_);
            r.conditions.push(CrCondition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.into(),
                time,
            });
        }
    }

    fn janitor_pickup(&mut self, cr: &str, now: Duration) {
        let Some(r) = self.reboot_nodes.get(cr) else {
            return;
        };
        let node_name = r.node.clone();
        let Some(&node) = self.by_name.get(&node_name) else {
            return;
        };
        if self.nvs.janitor_exclusions.contains(&node_name) {
            self.cr_condition(cr, "SignalSent", "False", "NodeExcluded", now);
            self.emit(
                &node_name,
                EventKind::Janitor,
                "janitor: node is excluded; no reboot".into(),
                json!(null),
            );
            return;
        }
        if self.nvs.manual_mode {
            self.cr_condition(cr, "ManualMode", "True", "ManualModeEnabled", now);
            self.emit(
                &node_name,
                EventKind::Janitor,
                format!("janitor: manual mode; {cr} waits for an operator to reboot the node"),
                json!({"manual_mode": true}),
            );
            return;
        }
        let time = self.time(now);
        let boot_id = self.nodes[node].boot_id.clone();
        if let Some(r) = self.reboot_nodes.get_mut(cr) {
            r.start_time = Some(time);
            r.boot_id_at_signal = boot_id;
        }
        self.cr_condition(cr, "SignalSent", "True", "RebootSignalSent", now);
        self.nodes[node].pending_reboot_nodes.push(cr.to_string());
        let provider = self.nvs.provider.clone();
        self.emit(
            &node_name,
            EventKind::RebootSignal,
            format!("janitor: reboot signal sent (provider {provider})"),
            json!({"provider": provider, "cr": cr}),
        );
        self.schedule(
            now + self.nvs.reboot_timeout,
            Step::RebootTimeout { cr: cr.into() },
        );
        if provider == "kind" {
            let at = now + self.latency(Duration::from_secs(30));
            self.schedule(at, Step::PretendRebootDone { cr: cr.into() });
        } else {
            let at = now + self.latency(self.cfg.timings.shutdown);
            self.schedule(at, Step::NodeDown { node });
        }
    }

    fn pretend_reboot_done(&mut self, cr: &str, now: Duration) {
        let Some(r) = self.reboot_nodes.get_mut(cr) else {
            return;
        };
        if r.done {
            return;
        }
        r.done = true;
        let node = r.node.clone();
        r.completion_time = Some(rfc3339(self.clock.at(now)));
        self.cr_condition(cr, "NodeReady", "True", "NodeReady", now);
        self.emit(
            &node,
            EventKind::RebootnodeComplete,
            format!("janitor: {cr} complete, but provider kind only pretends: the boot id is unchanged and the node stays cordoned"),
            json!({"cr": cr, "pretend": true}),
        );
    }

    fn reboot_timeout(&mut self, cr: &str, now: Duration) {
        let Some(r) = self.reboot_nodes.get_mut(cr) else {
            return;
        };
        if r.done {
            return;
        }
        r.done = true;
        r.completion_time = Some(rfc3339(self.clock.at(now)));
        let node = r.node.clone();
        self.cr_condition(cr, "NodeReady", "False", "Timeout", now);
        let timeout = crate::duration::format(self.nvs.reboot_timeout);
        self.emit(
            &node,
            EventKind::RebootnodeTimeout,
            format!("janitor: {cr} timed out after {timeout}"),
            json!({"cr": cr}),
        );
    }

    /// Reboots a node now (the janitor's signal, or an operator's hand).
    pub fn begin_reboot(&mut self, node: usize, now: Duration) {
        self.schedule(now, Step::NodeDown { node });
    }

    fn node_down(&mut self, node: usize, now: Duration) {
        let time = self.time(now);
        let n = &mut self.nodes[node];
        if n.down {
            return;
        }
        n.down = true;
        n.ready = false;
        n.monitor.running = false;
        n.set_condition(
            "Ready",
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.".into(),
            &time,
        );
        n.pods.clear();
        n.touch();
        let name = n.name.clone();
        self.stats.reboots += 1;
        self.emit(
            &name,
            EventKind::Reboot,
            "node is rebooting (NotReady)".into(),
            json!(null),
        );
        let at = now + self.latency(self.cfg.timings.reboot);
        self.schedule(at, Step::NodeBoot { node });
    }

    fn node_boot(&mut self, node: usize, now: Duration) {
        let boot_id = boot_id(&mut self.rng);
        let n = &mut self.nodes[node];
        n.down = false;
        n.boot_id = boot_id.clone();
        n.boot_count += 1;
        n.booted_at = now;
        n.kmsg.clear();
        n.next_seq = 0;
        for line in boot_lines() {
            n.push_kmsg(LOG_KERN, 6, line.to_string(), now);
        }
        n.touch();
        let name = n.name.clone();
        self.emit(
            &name,
            EventKind::Booted,
            format!("booted (boot id {boot_id})"),
            json!({"boot_id": boot_id}),
        );
        let at = now + self.latency(self.cfg.timings.kubelet_ready);
        self.schedule(at, Step::NodeReady { node });
    }

    fn node_ready(&mut self, node: usize, now: Duration) {
        let time = self.time(now);
        let templates = self.cfg.pods.clone();
        let n = &mut self.nodes[node];
        n.ready = true;
        n.set_condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status".into(),
            &time,
        );
        let boot = n.boot_count;
        let index = n.index;
        for t in templates.iter().filter(|t| t.owner == "DaemonSet") {
            n.pods.push(SimPod {
                namespace: t.namespace.clone(),
                name: format!("{}-{:03}-b{boot}", t.name, index + 1),
                owner: t.owner.clone(),
                completes_at: None,
                shutdown: t.shutdown,
                terminating: false,
            });
        }
        n.touch();
        let name = n.name.clone();
        let boot_id = n.boot_id.clone();
        self.emit(&name, EventKind::Ready, "node is Ready".into(), json!(null));
        let pending: Vec<String> = std::mem::take(&mut self.nodes[node].pending_reboot_nodes)
            .into_iter()
            .filter(|cr| {
                self.reboot_nodes
                    .get(cr)
                    .is_some_and(|r| !r.done && r.boot_id_at_signal != boot_id)
            })
            .collect();
        for cr in pending {
            if let Some(r) = self.reboot_nodes.get_mut(&cr) {
                r.done = true;
                r.completion_time = Some(time.clone());
            }
            self.cr_condition(&cr, "NodeReady", "True", "NodeReady", now);
            self.emit(
                &name,
                EventKind::RebootnodeComplete,
                format!("janitor: {cr} complete (node Ready)"),
                json!({"cr": cr}),
            );
        }
        let at = now + self.latency(self.cfg.timings.monitor_start);
        self.schedule(at, Step::MonitorStart { node });
    }
}

impl SimNode {
    fn condition_message_if_true(&self) -> Option<String> {
        self.conditions
            .iter()
            .find(|c| c.type_ == keys::COND_XID && c.status == "True")
            .map(|c| c.message.clone())
    }
}

/// The taints fault-quarantine recorded as applied by it.
fn applied_taints(annotations: &BTreeMap<String, String>) -> Vec<Taint> {
    annotations
        .get(keys::ANN_APPLIED_TAINTS)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The text NVSentinel puts after the PCI/UUID fields: the line without its XID prefix and
/// `pid=`, `name=`, `Ch` fields.
fn line_text(message: &str) -> String {
    let after = message.split_once("): ").map(|(_, r)| r).unwrap_or(message);
    let mut parts = after.split(", ").skip(1).peekable();
    while let Some(p) = parts.peek() {
        if p.starts_with("pid=") || p.starts_with("name=") || p.starts_with("Ch ") {
            parts.next();
        } else {
            break;
        }
    }
    parts.collect::<Vec<_>>().join(", ")
}

/// A random boot id in the kernel's UUID form.
pub fn boot_id(rng: &mut ChaCha8Rng) -> String {
    let h = hex_id(rng, 16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn boot_lines() -> [&'static str; 4] {
    [
        "Linux version 6.8.0-1017-nvidia (buildd@lcy02-amd64-012) (x86_64-linux-gnu-gcc-12 (Ubuntu 12.3.0-1ubuntu1~22.04) 12.3.0) #17-Ubuntu SMP",
        "Command line: BOOT_IMAGE=/boot/vmlinuz-6.8.0-1017-nvidia root=UUID=5d2c2a4e ro console=ttyS0",
        "nvidia: loading out-of-tree module taints kernel.",
        "NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_text_drops_fields() {
        assert_eq!(
            line_text(
                "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=gfi:r1, GPU has fallen off the bus."
            ),
            "GPU has fallen off the bus."
        );
        assert_eq!(
            line_text("NVRM: Xid (PCI:0000:3b:00.0): 79, GPU has fallen off the bus"),
            "GPU has fallen off the bus"
        );
    }
}
