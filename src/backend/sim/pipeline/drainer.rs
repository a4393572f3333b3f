//! node-drainer: the NVSentinel module that empties a quarantined node. It evicts pods by their
//! namespace's mode: `Immediate` evicts at once, `AllowCompletion` waits for the pods to finish
//! on their own, `DeleteAfterTimeout` waits, then force-deletes them a set time after the event
//! was detected. DaemonSet pods and system namespaces are left alone. It moves the state label
//! to `draining` when it has pods to evict or wait for (with none it goes straight on), then
//! `drain-succeeded` (which hands the node to fault-remediation) or `drain-failed`. Under
//! `global.dryRun` its evictions are dry runs: nothing leaves the node.
//!
//! Modelled because the drain decides how long a node waits between cordon and reboot, and an
//! `AllowCompletion` namespace with a long-running pod can keep a test's node from ever reaching
//! remediation. An evicted pod takes its shutdown time, cut short (force-deleted) at the
//! eviction timeout; the waits are announced with the Events node-drainer posts.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::sim::values::DrainMode;
use serde_json::json;
use std::time::Duration;

impl SimState {
    pub(super) fn drain_start(&mut self, node: usize, generation: u64, now: Duration) {
        if !self.current(node, generation) {
            return;
        }
        self.stats.drains += 1;
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
        let dry_run = self.nvs.dry_run;
        for pod in &mut self.nodes[node].pods {
            if dry_run
                || pod.is_daemonset()
                || pod.terminating
                || pod.completes_at.is_some_and(|t| t <= now)
            {
                continue;
            }
            let Some(mode) = self.nvs.drain_mode(&pod.namespace) else {
                continue;
            };
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
                    awaiting.push(format!("{}/{}", pod.namespace, pod.name));
                    if let Some(t) = pod.completes_at {
                        plans.push((t.max(now), pod.name.clone(), false));
                    } else {
                        plans.push((Duration::MAX, pod.name.clone(), false));
                    }
                }
                DrainMode::DeleteAfterTimeout => {
                    force_wait.push((pod.namespace.clone(), pod.name.clone()));
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
        if !plans.is_empty() {
            self.set_state(node, "draining", now);
        }
        // node-drainer formats these lists with Go's %v: `[a b]`.
        if !awaiting.is_empty() {
            self.kube_event(
                node,
                "NodeDraining",
                "AwaitingPodCompletion",
                format!(
                    "Waiting for following pods to finish: [{}]",
                    awaiting.join(" ")
                ),
                "nvsentinel-node-drainer",
                now,
            );
        }
        if !force_wait.is_empty() {
            let deadline = self
                .clock
                .at(detected_at + delete_after)
                .format("%Y-%m-%d %H:%M:%S %z UTC")
                .to_string();
            let names: Vec<&str> = force_wait.iter().map(|(_, p)| p.as_str()).collect();
            let mut namespaces: Vec<&str> = force_wait.iter().map(|(ns, _)| ns.as_str()).collect();
            namespaces.dedup();
            self.kube_event(
                node,
                "NodeDraining",
                "WaitingBeforeForceDelete",
                format!(
                    "Waiting for following pods to finish: [{}] in namespace: [{}] or they will be force deleted on: {deadline}",
                    names.join(" "),
                    namespaces.join(" ")
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

    pub(super) fn pod_gone(
        &mut self,
        node: usize,
        generation: u64,
        pod: &str,
        forced: bool,
        now: Duration,
    ) {
        let n = &mut self.nodes[node];
        let Some(i) = n.pods.iter().position(|p| p.name == pod) else {
            return;
        };
        let p = n.pods.remove(i);
        let how = if forced {
            "force-deleted"
        } else if p.terminating {
            "evicted"
        } else {
            "completed"
        };
        let time = crate::clock::rfc3339(self.clock.at(now));
        let n = &mut self.nodes[node];
        n.pods_gone.push(crate::backend::PodGone {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            how: how.into(),
            time,
        });
        n.touch();
        let name = n.name.clone();
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
        if self.nvs.fault_remediation {
            let at = now + self.latency(self.cfg.timings.remediation);
            self.schedule(at, Step::Remediate { node, generation });
        }
    }

    pub(super) fn drain_timeout(&mut self, node: usize, generation: u64, now: Duration) {
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
}
