//! fault-quarantine: the NVSentinel module that acts on fatal health events. It cordons the
//! node, applies the rule set's taint if one is configured, labels it (`cordon-by=NVSentinel`,
//! `cordon-reason=<rule set>`, `cordon-timestamp`, state `quarantined`) and keeps the events in
//! annotations. On the healthy event after a reboot it undoes all of that and labels the node
//! `uncordon-by=NVSentinel`, `uncordon-reason=<reason>-removed`; a `kubectl uncordon` by hand
//! counts as a cancel. Its circuit breaker (on by default) halts all processing, uncordons
//! included, once the nodes cordoned within a window (5 min) reach a share (50 %) of the nodes
//! labelled `nvidia.com/gpu.present=true`, until someone resets it.
//!
//! Modelled in full because cordon and uncordon are what a test waits on, and the breaker is
//! what a small test cluster runs into: on one or two GPU nodes the first cordon trips it, and
//! the node then stays cordoned after its reboot. The sim trips the breaker at the cordon that
//! reaches the share.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::sim::state::{HealthEvent, Quarantine};
use crate::backend::{Taint, keys};
use crate::clock::label_timestamp;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Breaker {
    pub(crate) tripped: bool,
    pub(crate) tripped_at: Option<String>,
    #[serde(skip)]
    pub(crate) recent_cordons: VecDeque<(Duration, String)>,
}

impl SimState {
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

    pub(super) fn quarantine(&mut self, node: usize, event: HealthEvent, now: Duration) {
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

    pub(super) fn unquarantine(&mut self, node: usize, generation: u64, now: Duration) {
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
    pub(crate) fn manual_uncordon(&mut self, node: usize, now: Duration) {
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
}

/// The taints fault-quarantine recorded as applied by it.
fn applied_taints(annotations: &BTreeMap<String, String>) -> Vec<Taint> {
    annotations
        .get(keys::ANN_APPLIED_TAINTS)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}
