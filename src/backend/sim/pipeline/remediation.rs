//! fault-remediation: the NVSentinel module that turns a quarantined node's health event, once
//! the node is drained, into a maintenance request, as the chart's `maintenance.actions` map
//! them: COMPONENT_RESET, RESTART_VM and RESTART_BM create a `RebootNode` (equivalence group
//! `restart`), REPLACE_VM a `TerminateNode` (group `terminate`), each named
//! `maintenance-<node>-<event id>`. The state label becomes `remediating`, then
//! `remediation-succeeded` as soon as the CR exists (not when the reboot is done), and
//! `latestFaultRemediationState` records the CR by equivalence group. Any other action
//! (CONTACT_SUPPORT, ...) has no remediation: the state goes from `drain-succeeded` straight to
//! `remediation-failed` and the node stays cordoned. janitor's admission webhook rejects a CR
//! for a node matching one of its exclusion selectors, and that too ends `remediation-failed`.
//! Under `global.dryRun` no CR is created, and the state still says `remediation-succeeded`.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::keys;
use crate::backend::sim::state::RebootNode;
use crate::xid::Action;
use serde_json::json;
use std::time::Duration;

impl SimState {
    pub(super) fn remediate(&mut self, node: usize, generation: u64, now: Duration) {
        if !self.current(node, generation) {
            return;
        }
        let Some(q) = self.nodes[node].quarantine.as_ref() else {
            return;
        };
        let chosen = q
            .events
            .iter()
            .find(|e| e.action.has_maintenance())
            .or_else(|| q.events.first())
            .cloned();
        let Some(event) = chosen else {
            return;
        };
        let name = self.nodes[node].name.clone();
        if !event.action.has_maintenance() {
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
            return;
        }
        self.set_state(node, "remediating", now);
        if self.nvs.dry_run {
            self.emit(
                &name,
                EventKind::Rebootnode,
                format!(
                    "fault-remediation (dry run): no CR created for {}",
                    event.action
                ),
                json!({"dry_run": true, "action": event.action}),
            );
            self.set_state(node, "remediation-succeeded", now);
            return;
        }
        let (kind, group) = if event.action == Action::ReplaceVm {
            ("TerminateNode", "terminate")
        } else {
            ("RebootNode", "restart")
        };
        let cr = format!("maintenance-{}-{}", name, event.id);
        let labels = &self.nodes[node].labels;
        if self.nvs.janitor
            && self
                .nvs
                .janitor_exclusions
                .iter()
                .any(|s| s.matches(labels))
        {
            self.emit(
                &name,
                EventKind::RemediationFailed,
                format!("fault-remediation: janitor's webhook rejected {kind} {cr}: node '{name}' is excluded from janitor operations"),
                json!({"kind": kind, "name": cr, "rejected": "excluded"}),
            );
            self.set_state(node, "remediation-failed", now);
            return;
        }
        let time = self.time(now);
        self.reboot_nodes.insert(
            cr.clone(),
            RebootNode {
                kind,
                name: cr.clone(),
                node: name.clone(),
                force: false,
                created: time.clone(),
                start_time: None,
                completion_time: None,
                conditions: Vec::new(),
                created_at: now,
                started_at: now,
                boot_id_at_signal: String::new(),
                done: false,
            },
        );
        self.reboot_nodes_by_node
            .entry(node)
            .or_default()
            .push(cr.clone());
        self.stats.reboot_nodes += 1;
        self.nodes[node].annotations.insert(
            keys::ANN_REMEDIATION_STATE.into(),
            json!({"equivalenceGroups": {group: {"maintenanceCR": cr, "createdAt": time, "actionName": event.action}}})
                .to_string(),
        );
        self.emit(
            &name,
            EventKind::Rebootnode,
            format!("fault-remediation: {kind} {cr} created ({})", event.action),
            json!({"kind": kind, "name": cr, "action": event.action}),
        );
        self.set_state(node, "remediation-succeeded", now);
        if self.nvs.janitor {
            let at = now + self.latency(self.cfg.timings.janitor_pickup);
            self.schedule(at, Step::JanitorPickup { cr });
        }
        self.nodes[node].touch();
    }
}
