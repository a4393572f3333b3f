//! janitor: the NVSentinel controller that carries out a `RebootNode`. It sends the reboot
//! signal through the cloud provider (condition `SignalSent`) and completes the CR (condition
//! `NodeReady`, `completionTime`) once the node is Ready again on a new boot id, or fails it
//! when the reboot timeout (25 min by default) runs out first. In `manualMode` it only sets
//! `ManualMode=True` and waits for an operator; provider `kind` pretends: the CR completes but
//! nothing reboots; nodes on its exclusion list are never rebooted.
//!
//! Modelled because these are the ways a test cluster ends up never rebooting, and a node that
//! does not reboot stays cordoned.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::sim::state::CrCondition;
use crate::clock::rfc3339;
use serde_json::json;
use std::time::Duration;

impl SimState {
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

    pub(super) fn janitor_pickup(&mut self, cr: &str, now: Duration) {
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

    pub(super) fn pretend_reboot_done(&mut self, cr: &str, now: Duration) {
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

    pub(super) fn reboot_timeout(&mut self, cr: &str, now: Duration) {
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

    /// The node is Ready: every RebootNode whose signal went out on an older boot id is done.
    pub(super) fn complete_reboot_nodes(&mut self, node: usize, now: Duration) {
        let time = self.time(now);
        let name = self.nodes[node].name.clone();
        let boot_id = self.nodes[node].boot_id.clone();
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
    }
}
