//! janitor: the NVSentinel controller that carries out a `RebootNode` or `TerminateNode`.
//!
//! As its reconciler does: the first reconcile sets `startTime`, `SignalSent=Unknown` and
//! `NodeReady=Unknown` (reason `Initializing`); the provider's answer to the signal sets
//! `SignalSent=True` (reason `Succeeded`, message the provider's request id, empty for `kind`
//! and `generic`); then it requeues 30 s after the signal and every 60 s after that, and only
//! then looks at the node: `NodeReady=True` (`Succeeded`, "Node reached ready state
//! post-reboot") and `completionTime` once the provider says ready and the node is Ready (so
//! the CR lags the node by up to a minute), or `NodeReady=False` (`Timeout`) once the reboot
//! timeout (25 min) has passed. In `manualMode` it sets `ManualMode=True`
//! (`OutsideActorRequired`) and waits for an operator. Provider `generic` reboots the node (a
//! privileged Job) and is ready on a new boot id; `kind` only pretends (its readiness check is
//! a 95 % coin), so the boot id never changes and the node stays cordoned. A `TerminateNode`
//! takes the node down for good (`NodeTerminated=True`).

use super::{SimState, Step};
use crate::backend::CrConditionInfo;
use crate::backend::EventKind;
use rand::RngExt;
use serde_json::json;
use std::time::Duration;

const FIRST_REQUEUE: Duration = Duration::from_secs(30);
const REQUEUE: Duration = Duration::from_secs(60);

impl SimState {
    fn cr_condition(
        &mut self,
        cr: &str,
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
        now: Duration,
    ) {
        let time = self.time(now);
        if let Some(r) = self.reboot_nodes.get_mut(cr) {
            match r.conditions.iter_mut().find(|c| c.type_ == type_) {
                Some(c) => {
                    if c.status != status {
                        c.time = time;
                    }
                    c.status = status.into();
                    c.reason = reason.into();
                    c.message = message.into();
                }
                None => r.conditions.push(CrConditionInfo {
                    type_: type_.into(),
                    status: status.into(),
                    reason: reason.into(),
                    message: message.into(),
                    time,
                }),
            }
        }
        if let Some(&node) = self
            .reboot_nodes
            .get(cr)
            .and_then(|r| self.by_name.get(&r.node))
        {
            self.nodes[node].touch();
        }
    }

    pub(super) fn janitor_pickup(&mut self, cr: &str, now: Duration) {
        let Some(r) = self.reboot_nodes.get(cr) else {
            return;
        };
        let node_name = r.node.clone();
        let terminate = r.kind == "TerminateNode";
        if self.nvs.manual_mode {
            self.cr_condition(
                cr,
                "ManualMode",
                "True",
                "OutsideActorRequired",
                "Manual mode is enabled: an operator must act on the node",
                now,
            );
            self.emit(
                &node_name,
                EventKind::Janitor,
                format!("janitor: manual mode; {cr} waits for an operator"),
                json!({"manual_mode": true}),
            );
            return;
        }
        let time = self.time(now);
        if let Some(r) = self.reboot_nodes.get_mut(cr) {
            r.start_time = Some(time);
            r.started_at = now;
        }
        let (signal, ready) = if terminate {
            ("SignalSent", "NodeTerminated")
        } else {
            ("SignalSent", "NodeReady")
        };
        self.cr_condition(
            cr,
            signal,
            "Unknown",
            "Initializing",
            "Reboot signal not yet sent",
            now,
        );
        self.cr_condition(cr, ready, "Unknown", "Initializing", "", now);
        // The provider takes a few seconds to accept the signal (kind sleeps 3-5 s).
        let delay = Duration::from_millis(self.rng.random_range(3000..=5000));
        self.schedule(now + delay, Step::JanitorSignal { cr: cr.into() });
    }

    pub(super) fn janitor_signal(&mut self, cr: &str, now: Duration) {
        let Some(r) = self.reboot_nodes.get(cr) else {
            return;
        };
        let node_name = r.node.clone();
        let terminate = r.kind == "TerminateNode";
        let Some(&node) = self.by_name.get(&node_name) else {
            return;
        };
        let boot_id = self.nodes[node].boot_id.clone();
        if let Some(r) = self.reboot_nodes.get_mut(cr) {
            r.boot_id_at_signal = boot_id;
        }
        self.cr_condition(cr, "SignalSent", "True", "Succeeded", "", now);
        let provider = self.nvs.provider.clone();
        self.emit(
            &node_name,
            EventKind::RebootSignal,
            format!(
                "janitor: {} signal sent (provider {provider})",
                if terminate { "terminate" } else { "reboot" }
            ),
            json!({"provider": provider, "cr": cr}),
        );
        if terminate {
            self.nodes[node].terminated = true;
            let at = now + self.latency(self.cfg.timings.shutdown);
            self.schedule(at, Step::NodeDown { node });
        } else if provider != "kind" {
            let at = now + self.latency(self.cfg.timings.shutdown);
            self.schedule(at, Step::NodeDown { node });
        }
        self.schedule(now + FIRST_REQUEUE, Step::JanitorRequeue { cr: cr.into() });
    }

    pub(super) fn janitor_requeue(&mut self, cr: &str, now: Duration) {
        let Some(r) = self.reboot_nodes.get(cr) else {
            return;
        };
        if r.done {
            return;
        }
        let (node_name, started_at, boot_at_signal) =
            (r.node.clone(), r.started_at, r.boot_id_at_signal.clone());
        let terminate = r.kind == "TerminateNode";
        let Some(&node) = self.by_name.get(&node_name) else {
            return;
        };
        let n = &self.nodes[node];
        let kind = self.nvs.provider == "kind";
        let done = if terminate {
            n.down
        } else if kind {
            n.ready && self.rng.random_range(0..100) > 5
        } else {
            n.ready && n.boot_id != boot_at_signal
        };
        if done {
            let time = self.time(now);
            if let Some(r) = self.reboot_nodes.get_mut(cr) {
                r.done = true;
                r.completion_time = Some(time);
            }
            if terminate {
                self.cr_condition(
                    cr,
                    "NodeTerminated",
                    "True",
                    "Succeeded",
                    "Node terminated",
                    now,
                );
            } else {
                self.cr_condition(
                    cr,
                    "NodeReady",
                    "True",
                    "Succeeded",
                    "Node reached ready state post-reboot",
                    now,
                );
            }
            let message = if terminate {
                format!("janitor: {cr} complete (node terminated)")
            } else if kind {
                format!(
                    "janitor: {cr} complete, but provider kind only pretends: the boot id is unchanged and the node stays cordoned"
                )
            } else {
                format!("janitor: {cr} complete (node Ready)")
            };
            self.emit(
                &node_name,
                EventKind::RebootnodeComplete,
                message,
                json!({"cr": cr, "pretend": kind && !terminate}),
            );
            return;
        }
        if now.saturating_sub(started_at) >= self.nvs.reboot_timeout {
            let time = self.time(now);
            if let Some(r) = self.reboot_nodes.get_mut(cr) {
                r.done = true;
                r.completion_time = Some(time);
            }
            let timeout = crate::duration::format(self.nvs.reboot_timeout);
            self.cr_condition(
                cr,
                if terminate {
                    "NodeTerminated"
                } else {
                    "NodeReady"
                },
                "False",
                "Timeout",
                &format!("Node did not reach ready state within {timeout}"),
                now,
            );
            self.emit(
                &node_name,
                EventKind::RebootnodeTimeout,
                format!("janitor: {cr} timed out after {timeout}"),
                json!({"cr": cr}),
            );
            return;
        }
        self.schedule(now + REQUEUE, Step::JanitorRequeue { cr: cr.into() });
    }
}
