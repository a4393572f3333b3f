//! platform-connectors: the NVSentinel service that stores the monitors' health events and writes
//! them onto Kubernetes. A fatal event sets the node condition `SysLogsXIDError=True` (reason
//! `SysLogsXIDErrorIsNotHealthy`, message `ErrorCode:<xid> PCI:<pci> GPU_UUID:<uuid> <text>
//! Recommended Action=<ACTION>;`); a non-fatal one becomes a core/v1 Event in namespace
//! `default` and nothing else; the healthy event after a reboot sets the condition back to False
//! (`No Health Failures`).
//!
//! Modelled because the condition and the Event are the first things a test can see on the
//! node, and because the stored event is what fault-quarantine acts on: the sim hands a fatal
//! event on to the quarantine and a healthy one to the uncordon. The store between the services
//! is reduced to the `platform_connector` latency.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::keys;
use crate::backend::sim::state::{HealthEvent, SimNode};
use serde_json::json;
use std::time::Duration;

impl SimState {
    pub(super) fn platform_connect(&mut self, node: usize, event: HealthEvent, now: Duration) {
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

    pub(super) fn healthy(&mut self, node: usize, now: Duration) {
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
}

impl SimNode {
    fn condition_message_if_true(&self) -> Option<String> {
        self.conditions
            .iter()
            .find(|c| c.type_ == keys::COND_XID && c.status == "True")
            .map(|c| c.message.clone())
    }
}
