//! fault-quarantine: the NVSentinel module that acts on the stored health events. For a fatal
//! event it cordons the node, applies the rule set's taint if one is configured, labels it
//! (`cordon-by=NVSentinel`, `cordon-reason=<rule set>`, `cordon-timestamp`, state
//! `quarantined`) and keeps the events in annotations. On the healthy event after a reboot it
//! undoes all of that and labels the node `uncordon-by=NVSentinel`,
//! `uncordon-reason=<reason>-removed`; a `kubectl uncordon` by hand counts as a cancel.
//!
//! What decides whether a test's node comes back, each as NVSentinel's source has it:
//! - a node already unschedulable when quarantined is marked pre-existing
//!   (`quarantineHealthEventCordonPreExisting=True`, no cordon labels) and is never uncordoned;
//!   a taint identical to the rule set's that was already there is `preExisting` and stays;
//! - nodes labelled `k8saas.nvidia.com/ManagedByNVSentinel=false` or
//!   `nvsentinel.dgxc.nvidia.com/managed=false` are ignored (every shipped rule set says so);
//! - the circuit breaker (on by default) counts each cordon and is evaluated before each next
//!   event of any kind: when the distinct nodes cordoned within the window (5 min) reach the
//!   lower of `ceil(percentage x GPU nodes)` (50 %) and `maxNodes`, it trips, and
//!   fault-quarantine stops processing (uncordons included) until its pod restarts; the reset
//!   is the ConfigMap set back to CLOSED with a cursor (`RESUME` replays the events that
//!   arrived meanwhile, `CREATE` skips them) plus a restart;
//! - under `global.dryRun` it writes the event annotation and changes nothing else.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::sim::state::{HealthEvent, Quarantine};
use crate::backend::{Taint, keys};
use crate::clock::label_timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Breaker {
    pub(crate) tripped: bool,
    pub(crate) tripped_at: Option<String>,
    /// Cordons by time and node, within the window of the newest evaluation.
    #[serde(skip)]
    pub(crate) recent_cordons: VecDeque<(Duration, usize)>,
    /// Events fault-quarantine did not consume while halted (replayed with cursor RESUME).
    #[serde(skip)]
    pub(crate) backlog: Vec<(usize, HealthEvent)>,
}

/// A taint as `quarantineHealthEventAppliedTaints` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AppliedTaint {
    #[serde(flatten)]
    taint: Taint,
    #[serde(rename = "preExisting", default)]
    pre_existing: bool,
}

/// How an operator resets a tripped breaker: the ConfigMap's `cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerCursor {
    /// Resume from the stored change-stream token: the events that arrived while halted are
    /// processed now.
    Resume,
    /// Delete the token and start from new events: those are never processed.
    Create,
}

impl SimState {
    /// fault-quarantine consumes one stored event.
    pub(super) fn fault_quarantine(&mut self, node: usize, event: HealthEvent, now: Duration) {
        if self.breaker_halts(node, now) {
            self.breaker.backlog.push((node, event));
            return;
        }
        if self.opted_out(node) {
            let name = self.nodes[node].name.clone();
            self.emit(
                &name,
                EventKind::Quarantine,
                "fault-quarantine: health event ignored (the node is opted out of NVSentinel)"
                    .into(),
                json!({"ignored": "opted out"}),
            );
            return;
        }
        if event.healthy {
            self.unquarantine(node, now);
        } else if event.fatal {
            self.quarantine(node, event, now);
        }
    }

    /// A node labelled out of NVSentinel's management.
    pub(crate) fn opted_out(&self, node: usize) -> bool {
        let labels = &self.nodes[node].labels;
        [keys::MANAGED_BY_NVSENTINEL, keys::MANAGED]
            .iter()
            .any(|k| labels.get(*k).map(String::as_str) == Some("false"))
    }

    /// Evaluates the breaker before an event (NVSentinel's `checkCircuitBreakerAndHalt`).
    /// Returns true when fault-quarantine is halted (the event then waits in the backlog).
    fn breaker_halts(&mut self, node: usize, now: Duration) -> bool {
        if !self.nvs.breaker_enabled {
            return false;
        }
        if !self.breaker.tripped {
            let window = self.nvs.breaker_window;
            while let Some((t, _)) = self.breaker.recent_cordons.front() {
                if now.saturating_sub(*t) > window {
                    self.breaker.recent_cordons.pop_front();
                } else {
                    break;
                }
            }
            let distinct: BTreeSet<usize> = self
                .breaker
                .recent_cordons
                .iter()
                .map(|(_, n)| *n)
                .collect();
            let cordoned = distinct.len();
            let total = self.gpu_node_count;
            let threshold = self.nvs.breaker_threshold(total);
            if threshold == 0 || cordoned < threshold {
                return false;
            }
            self.breaker.tripped = true;
            self.breaker.tripped_at = Some(self.time(now));
            let name = self.nodes[node].name.clone();
            self.emit(
                &name,
                EventKind::Breaker,
                format!(
                    "circuit breaker TRIPPED: {cordoned} of {total} GPU nodes cordoned within {} (threshold {threshold}); fault-quarantine stops processing until it is reset and restarted",
                    crate::duration::format(window)
                ),
                json!({"status": "TRIPPED", "cordoned": cordoned, "nodes": total, "threshold": threshold}),
            );
        }
        let name = self.nodes[node].name.clone();
        self.emit(
            &name,
            EventKind::Halted,
            "fault-quarantine: event not processed (circuit breaker TRIPPED)".into(),
            json!({"halted": "fault-quarantine"}),
        );
        true
    }

    /// The operator's reset: ConfigMap `status: CLOSED` with `cursor`, then a restart of
    /// fault-quarantine, whose in-memory window starts empty.
    pub(crate) fn reset_breaker(&mut self, cursor: BreakerCursor, now: Duration) {
        self.breaker.tripped = false;
        self.breaker.tripped_at = None;
        self.breaker.recent_cordons.clear();
        let backlog = std::mem::take(&mut self.breaker.backlog);
        if cursor == BreakerCursor::Resume {
            for (node, event) in backlog {
                self.schedule(
                    now,
                    Step::FaultQuarantine {
                        node,
                        event: Box::new(event),
                    },
                );
            }
        }
    }

    fn quarantine(&mut self, node: usize, event: HealthEvent, now: Duration) {
        let name = self.nodes[node].name.clone();
        if let Some(q) = self.nodes[node].quarantine.as_mut() {
            q.events.push(event);
            let events = events_annotation(&q.events);
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
        let dry_run = self.nvs.dry_run;
        let cordon = self.nvs.cordon && !dry_run;
        let taint = self.nvs.taint.clone().filter(|_| !dry_run);
        let n = &mut self.nodes[node];
        let pre_existing = n.unschedulable;
        n.annotations.insert(
            keys::ANN_QUARANTINE_EVENT.into(),
            events_annotation(std::slice::from_ref(&event)),
        );
        let xid = event.xid;
        n.quarantine = Some(Quarantine {
            events: vec![event],
            awaited_pods: Vec::new(),
            drain_done: false,
            pre_existing_cordon: pre_existing,
        });
        let generation = n.generation;
        if dry_run {
            n.touch();
            self.emit(
                &name,
                EventKind::Quarantine,
                format!(
                    "fault-quarantine (dry run): XID {xid} recorded; no cordon, taint or label"
                ),
                json!({"dry_run": true, "xid": xid}),
            );
        } else {
            if let Some(t) = taint {
                let pre = n.taints.contains(&t);
                if !pre {
                    n.taints.push(t.clone());
                }
                n.annotations.insert(
                    keys::ANN_APPLIED_TAINTS.into(),
                    serde_json::to_string(&[AppliedTaint {
                        taint: t,
                        pre_existing: pre,
                    }])
                    .unwrap_or_default(),
                );
            }
            for k in [
                keys::UNCORDON_BY,
                keys::UNCORDON_REASON,
                keys::UNCORDON_TIMESTAMP,
            ] {
                n.labels.remove(k, &mut self.pools);
            }
            n.annotations.remove(keys::ANN_UNCORDONED_MANUALLY);
            if pre_existing {
                n.annotations
                    .insert(keys::ANN_CORDON_PRE_EXISTING.into(), "True".into());
            } else if cordon {
                n.unschedulable = true;
                n.labels
                    .set(keys::CORDON_BY, keys::NVSENTINEL.into(), &mut self.pools);
                n.labels
                    .set(keys::CORDON_REASON, ruleset.clone(), &mut self.pools);
                n.labels
                    .set(keys::CORDON_TIMESTAMP, label_time, &mut self.pools);
                n.annotations
                    .insert(keys::ANN_IS_CORDONED.into(), "True".into());
            }
            self.stats.cordons += 1;
            self.emit(
                &name,
                EventKind::Cordoned,
                if pre_existing {
                    format!("fault-quarantine: quarantined; the node was already cordoned (pre-existing: it will not be uncordoned) (XID {xid})")
                } else {
                    format!("fault-quarantine: cordoned (rule set {ruleset}, XID {xid})")
                },
                json!({"ruleset": ruleset, "xid": xid, "pre_existing": pre_existing}),
            );
            self.set_state(node, "quarantined", now);
            if cordon || pre_existing {
                self.breaker.recent_cordons.push_back((now, node));
            }
            self.nodes[node].touch();
        }
        if self.nvs.node_drainer {
            let at = now + self.latency(self.cfg.timings.drain_start);
            self.schedule(at, Step::DrainStart { node, generation });
        } else if self.nvs.fault_remediation {
            let at = now + self.latency(self.cfg.timings.remediation);
            self.schedule(at, Step::Remediate { node, generation });
        }
    }

    fn unquarantine(&mut self, node: usize, now: Duration) {
        let label_time = label_timestamp(self.clock.at(now));
        let n = &mut self.nodes[node];
        let Some(q) = n.quarantine.take() else {
            return;
        };
        let reason = n
            .labels
            .get(keys::CORDON_REASON)
            .cloned()
            .unwrap_or_else(|| self.nvs.ruleset.clone());
        let applied = applied_taints(&n.annotations);
        n.taints
            .retain(|t| !applied.iter().any(|a| !a.pre_existing && &a.taint == t));
        let uncordon = !q.pre_existing_cordon && n.unschedulable && !self.nvs.dry_run;
        for k in [
            keys::CORDON_BY,
            keys::CORDON_REASON,
            keys::CORDON_TIMESTAMP,
            keys::STATE,
        ] {
            n.labels.remove(k, &mut self.pools);
        }
        for k in [
            keys::ANN_QUARANTINE_EVENT,
            keys::ANN_IS_CORDONED,
            keys::ANN_APPLIED_TAINTS,
            keys::ANN_CORDON_PRE_EXISTING,
        ] {
            n.annotations.remove(k);
        }
        if uncordon {
            n.unschedulable = false;
            n.labels
                .set(keys::UNCORDON_BY, keys::NVSENTINEL.into(), &mut self.pools);
            n.labels
                .set(keys::UNCORDON_TIMESTAMP, label_time, &mut self.pools);
            n.labels.set(
                keys::UNCORDON_REASON,
                uncordon_reason(&reason),
                &mut self.pools,
            );
        }
        n.generation += 1;
        n.touch();
        let name = n.name.clone();
        if uncordon {
            self.stats.uncordons += 1;
            self.emit(
                &name,
                EventKind::Uncordoned,
                "fault-quarantine: uncordoned (healthy)".into(),
                json!(null),
            );
        } else {
            self.emit(
                &name,
                EventKind::Quarantine,
                "fault-quarantine: quarantine cleared (healthy); the cordon was pre-existing and stays".into(),
                json!({"pre_existing": true}),
            );
        }
    }

    /// `kubectl uncordon`: NVSentinel takes it as a cancel of the quarantine.
    pub(crate) fn manual_uncordon(&mut self, node: usize, now: Duration) {
        let n = &mut self.nodes[node];
        n.unschedulable = false;
        let name = n.name.clone();
        if n.quarantine.take().is_some() {
            let applied = applied_taints(&n.annotations);
            n.taints
                .retain(|t| !applied.iter().any(|a| !a.pre_existing && &a.taint == t));
            for k in [
                keys::ANN_APPLIED_TAINTS,
                keys::ANN_QUARANTINE_EVENT,
                keys::ANN_IS_CORDONED,
                keys::ANN_CORDON_PRE_EXISTING,
            ] {
                n.annotations.remove(k);
            }
            n.annotations
                .insert(keys::ANN_UNCORDONED_MANUALLY.into(), "True".into());
            n.labels.remove(keys::STATE, &mut self.pools);
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

/// `quarantineHealthEvent`: the list of events in NVSentinel's own JSON.
fn events_annotation(events: &[HealthEvent]) -> String {
    let list: Vec<serde_json::Value> = events.iter().map(HealthEvent::nvsentinel_json).collect();
    serde_json::to_string(&list).unwrap_or_default()
}

/// `<reason>-removed`, the reason cut to 55 characters so the label stays within 63.
fn uncordon_reason(reason: &str) -> String {
    let cut: String = reason.chars().take(55).collect();
    format!("{cut}-removed")
}

/// The taints fault-quarantine recorded as applied.
fn applied_taints(annotations: &BTreeMap<String, String>) -> Vec<AppliedTaint> {
    annotations
        .get(keys::ANN_APPLIED_TAINTS)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}
