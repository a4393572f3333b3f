//! syslog-health-monitor: NVSentinel's per-node DaemonSet that reads the host's journald files
//! (never /dev/kmsg), keeps only entries with `_TRANSPORT=kernel`, matches the XID regex in each
//! entry's `MESSAGE` and sends a health event carrying the catalogue's recommended action.
//!
//! The sim models what decides whether and when an injected line is seen, since that is the
//! first thing a test measures:
//! - the DaemonSet runs only on nodes labelled `nvsentinel.dgxc.nvidia.com/driver.installed=true`
//!   (the labeler sets it once the driver pod is Ready, or always with
//!   `labeler.assumeDriverInstalled`): no label, no detection;
//! - it polls every 15 s (on a per-node phase, so detection waits for the next poll);
//! - started without a state file (first install, a restart with its state wiped, and after a
//!   reboot unless the state file survives it: its hostPath is tmpfs on most distributions) it
//!   seeks to the end of the journal at its first poll, so lines not read by then are lost;
//! - lines of a previous boot are never processed after a reboot;
//! - v1.13.0 kept only `SYSLOG_FACILITY=0`, which no `/dev/kmsg` write has;
//! - once it finds a new boot id it sends the healthy event that lets fault-quarantine uncordon.
//!
//! The action is the catalogue's; COMPONENT_RESET becomes RESTART_VM where the GPU's UUID is not
//! in the node's GPU metadata (a setting of the sim: `nodes_without_gpu_metadata`).

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::keys;
use crate::backend::sim::state::{HealthEvent, JournalLine};
use crate::backend::sim::values::Store;
use crate::xid::catalog::{self, ActionRule};
use crate::xid::{Action, detect};
use serde_json::json;
use std::time::Duration;

impl SimState {
    /// Next poll of a node's monitor at or after `now`.
    fn next_poll(&self, node: usize, now: Duration) -> Duration {
        let p = self.cfg.timings.poll_interval.as_nanos();
        let phase = self.nodes[node].monitor.phase;
        if now <= phase {
            return phase;
        }
        let k = (now - phase).as_nanos().div_ceil(p);
        phase + Duration::from_nanos((k * p) as u64)
    }

    /// The monitor pod runs on the node now: started, enabled, and scheduled there by the
    /// DaemonSet's node selector.
    fn monitor_active(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        n.monitor.running
            && self.nvs.syslog_health_monitor
            && n.labels.get(keys::DRIVER_INSTALLED).map(String::as_str) == Some("true")
    }

    /// A line landed in a node's journal: the monitor picks it up at its next poll.
    pub(crate) fn journal_append(&mut self, node: usize, line: JournalLine, now: Duration) {
        self.nodes[node].monitor.pending.push(line);
        self.ensure_poll(node, now);
    }

    pub(crate) fn ensure_poll(&mut self, node: usize, now: Duration) {
        let m = &self.nodes[node].monitor;
        if !m.poll_scheduled
            && (!m.pending.is_empty() || m.report_healthy || m.seek_tail)
            && self.monitor_active(node)
        {
            self.nodes[node].monitor.poll_scheduled = true;
            let at = self.next_poll(node, now);
            self.schedule(at, Step::MonitorPoll { node });
        }
    }

    pub(super) fn monitor_poll(&mut self, node: usize, now: Duration) {
        self.nodes[node].monitor.poll_scheduled = false;
        if !self.monitor_active(node) {
            return;
        }
        if std::mem::take(&mut self.nodes[node].monitor.seek_tail) {
            let skipped = std::mem::take(&mut self.nodes[node].monitor.pending).len();
            let name = self.nodes[node].name.clone();
            if skipped > 0 {
                self.emit(
                &name,
                EventKind::MonitorStart,
                format!("syslog-health-monitor has no state file: it seeks to the end of the journal ({skipped} unread line(s) never seen)"),
                json!({"skipped": skipped}),
            );
            }
        }
        let lines = std::mem::take(&mut self.nodes[node].monitor.pending);
        for line in lines {
            if !line.transport_kernel
                || (self.nvs.kernel_facility_only && line.facility != crate::kmsg::LOG_KERN)
            {
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
                json!({"xid": event.xid, "pci": event.pci, "gpu_uuid": event.gpu_uuid, "action": event.action, "fatal": event.fatal, "event_id": event.id, "line": event.message}),
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
        if std::mem::take(&mut self.nodes[node].monitor.report_healthy) {
            let event = self.healthy_event(node, now);
            let at = now + self.latency(self.cfg.timings.platform_connector);
            self.schedule(
                at,
                Step::PlatformConnect {
                    node,
                    event: Box::new(event),
                },
            );
        }
    }

    /// The datastore's id for a new document: a MongoDB ObjectID (24 hex) or a PostgreSQL UUID.
    fn document_id(&mut self) -> String {
        match self.nvs.store {
            Store::Postgresql => super::node::boot_id(&mut self.rng),
            _ => crate::backend::sim::state::hex_id(&mut self.rng, 12),
        }
    }

    fn generated(&self, now: Duration) -> (i64, u32) {
        let t = self.clock.at(now);
        (t.timestamp(), t.timestamp_subsec_nanos())
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
        // The UUID comes from NVSentinel's GPU metadata; without it the entity is left out.
        let uuid = gpu
            .filter(|_| n.gpu_metadata)
            .map(|g| g.uuid.clone())
            .unwrap_or_default();
        let info = catalog::lookup_or_generic(m.xid);
        let mut action = match info.rule {
            ActionRule::Fixed(a) => a,
            ActionRule::FromLine => detect::xid154_action(message),
        };
        if action == Action::ComponentReset && uuid.is_empty() {
            action = Action::RestartVm;
        }
        let name = n.name.clone();
        let pci = m.pci_text.split('.').next().unwrap_or_default().to_string();
        HealthEvent {
            id: self.document_id(),
            node: name,
            xid: m.xid,
            pci,
            gpu_uuid: uuid,
            message: message.to_string(),
            action,
            fatal: action.is_fatal(),
            healthy: false,
            detected_at: now,
            generated: self.generated(now),
        }
    }

    /// The event after a boot-id change: healthy, no entities, "No Health Failures".
    fn healthy_event(&mut self, node: usize, now: Duration) -> HealthEvent {
        HealthEvent {
            id: self.document_id(),
            node: self.nodes[node].name.clone(),
            xid: 0,
            pci: String::new(),
            gpu_uuid: String::new(),
            message: "No Health Failures".into(),
            action: Action::None,
            fatal: false,
            healthy: true,
            detected_at: now,
            generated: self.generated(now),
        }
    }

    /// The monitor pod is back after a reboot. Its state file is gone unless the sim says it
    /// survives, and then it seeks to the end at its first poll; either way a boot id that
    /// differs from the one it last saw (or none) makes it report healthy.
    pub(super) fn monitor_start(&mut self, node: usize, now: Duration) {
        let survives = self.cfg.monitor_state_survives_reboot;
        let n = &mut self.nodes[node];
        if n.down {
            return;
        }
        n.monitor.running = true;
        if n.monitor.last_boot_id != n.boot_id {
            n.monitor.last_boot_id = n.boot_id.clone();
            n.monitor.report_healthy = true;
        }
        if !survives {
            n.monitor.seek_tail = true;
        }
        self.ensure_poll(node, now);
    }

    /// A fresh monitor (first install, or its state wiped) starts at the end of the journal.
    pub(crate) fn monitor_first_start(&mut self, node: usize, now: Duration) {
        let n = &mut self.nodes[node];
        if n.down || !n.labels.contains_key(keys::GPU_PRESENT) {
            return;
        }
        n.monitor.running = true;
        n.monitor.last_boot_id = n.boot_id.clone();
        n.monitor.seek_tail = true;
        self.ensure_poll(node, now);
    }
}
