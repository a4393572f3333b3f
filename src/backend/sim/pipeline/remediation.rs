//! fault-remediation: the NVSentinel module that turns a quarantined node's health event, once
//! the node is drained, into a maintenance request. For COMPONENT_RESET, RESTART_VM and
//! RESTART_BM it creates a `RebootNode` named `maintenance-<node>-<event id>`, records it in the
//! `latestFaultRemediationState` annotation and sets the state label to `remediation-succeeded`
//! as soon as the CR exists, not when the reboot is done. Any other action (CONTACT_SUPPORT, ...)
//! has no remediation: the state becomes `remediation-failed` and the node stays cordoned.
//!
//! Modelled because this is where it is decided whether a fault ends in a reboot, and so in an
//! uncordon, or leaves the node cordoned for a person to look at.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::keys;
use crate::backend::sim::state::RebootNode;
use serde_json::json;
use std::time::Duration;

impl SimState {
    pub(super) fn remediate(&mut self, node: usize, generation: u64, now: Duration) {
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
}
