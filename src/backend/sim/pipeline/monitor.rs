//! syslog-health-monitor: NVSentinel's per-node DaemonSet that reads the host's journald files
//! (never /dev/kmsg), keeps only entries with `_TRANSPORT=kernel`, matches the XID regex in each
//! entry's `MESSAGE` and sends a health event carrying the catalogue's recommended action.
//!
//! The sim models what decides whether and when an injected line is seen, since that is the
//! first thing a test measures: the monitor polls every 15 s by default (on a per-node phase, so
//! detection waits for the next poll, not for the write); on its very first start it seeks to
//! the end of the journal, so lines written before it are lost; it is down while its node
//! reboots; and once it finds a new boot id it sends the healthy event that lets
//! fault-quarantine uncordon. The action is the catalogue's, after the values' XID mapping, and
//! COMPONENT_RESET becomes RESTART_VM where the GPU's UUID is not in the node's GPU metadata.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::keys;
use crate::backend::sim::state::{HealthEvent, JournalLine, hex_id};
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

    /// A line landed in a node's journal: the monitor picks it up at its next poll.
    pub(crate) fn journal_append(&mut self, node: usize, line: JournalLine, now: Duration) {
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

    pub(super) fn monitor_poll(&mut self, node: usize, now: Duration) {
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

    pub(super) fn monitor_start(&mut self, node: usize, now: Duration) {
        let n = &mut self.nodes[node];
        n.monitor.running = true;
        if n.monitor.last_boot_id != n.boot_id {
            n.monitor.last_boot_id = n.boot_id.clone();
            n.monitor.report_healthy = true;
        }
        self.ensure_poll(node, now);
    }

    /// A fresh monitor (first install, or its state wiped) starts at the end of the journal.
    pub(crate) fn monitor_first_start(&mut self, node: usize, now: Duration) {
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
