//! platform-connectors: the NVSentinel service that stores the monitors' health events and writes
//! them onto Kubernetes. Its transformers run first: the `OverrideTransformer`'s CEL rules are
//! the supported way to change an XID's action. A fatal event sets the node condition
//! `SysLogsXIDError=True` (reason `SysLogsXIDErrorIsNotHealthy`, message `ErrorCode:<xid>
//! PCI:<pci> GPU_UUID:<uuid> <journal MESSAGE> Recommended Action=<ACTION>;`, `GPU_UUID` only
//! when known, identical entries not repeated, at most 1,024 bytes); a non-fatal one becomes a
//! core/v1 Event of type `SysLogsXIDError` from `syslog-health-monitor` in namespace `default`
//! (a repeat bumps its count); the healthy event after a reboot sets the condition back to
//! False (`No Health Failures`). With `processingStrategy: STORE_ONLY` events are stored and
//! nothing else happens.
//!
//! Every stored event reaches fault-quarantine through the datastore's change stream, non-fatal
//! and healthy ones too, which is when its circuit breaker is evaluated; the store between the
//! services is reduced to the `quarantine` latency.

use super::{SimState, Step};
use crate::backend::EventKind;
use crate::backend::keys;
use crate::backend::sim::state::HealthEvent;
use serde_json::json;
use std::time::Duration;

/// `maxNodeConditionMessageLength`.
const CONDITION_MESSAGE_MAX: usize = 1024;
/// What each entry is cut to when the whole would not fit.
const COMPACT_ENTRY: usize = 72;

impl SimState {
    pub(super) fn platform_connect(&mut self, node: usize, mut event: HealthEvent, now: Duration) {
        let name = self.nodes[node].name.clone();
        if self.nvs.store_only {
            self.emit(
                &name,
                EventKind::Quarantine,
                "health event stored only (processingStrategy STORE_ONLY): no condition, no action"
                    .into(),
                json!({"store_only": true}),
            );
            return;
        }
        if event.healthy {
            self.condition_healthy(node, now);
        } else {
            event.action = self.nvs.action_for(event.xid, event.action);
            event.fatal = event.action.is_fatal();
            if event.fatal {
                self.condition_unhealthy(node, &event, now);
            } else {
                let message = event.condition_text();
                self.kube_event(
                    node,
                    keys::COND_XID,
                    keys::REASON_UNHEALTHY,
                    message,
                    "syslog-health-monitor",
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
        if self.nvs.fault_quarantine && self.nvs.has_store() {
            let at = now + self.latency(self.cfg.timings.quarantine);
            self.schedule(
                at,
                Step::FaultQuarantine {
                    node,
                    event: Box::new(event),
                },
            );
        }
    }

    fn condition_unhealthy(&mut self, node: usize, event: &HealthEvent, now: Duration) {
        let time = self.time(now);
        let n = &mut self.nodes[node];
        let entry = event.condition_text();
        if !n.condition_entries.contains(&entry) {
            n.condition_entries.push(entry);
        }
        let message = condition_message(&n.condition_entries);
        n.set_condition(
            keys::COND_XID,
            "True",
            keys::REASON_UNHEALTHY,
            message,
            &time,
        );
        n.touch();
        let name = n.name.clone();
        self.emit(
            &name,
            EventKind::Condition,
            format!(
                "condition {}=True (XID {}, {})",
                keys::COND_XID,
                event.xid,
                event.action
            ),
            json!({"type": keys::COND_XID, "status": "True", "xid": event.xid, "action": event.action}),
        );
    }

    fn condition_healthy(&mut self, node: usize, now: Duration) {
        let time = self.time(now);
        let n = &mut self.nodes[node];
        n.condition_entries.clear();
        if n.conditions.iter().any(|c| c.type_ == keys::COND_XID) {
            n.set_condition(
                keys::COND_XID,
                "False",
                keys::REASON_HEALTHY,
                "No Health Failures".into(),
                &time,
            );
            n.touch();
            let name = n.name.clone();
            self.emit(
                &name,
                EventKind::Condition,
                format!("condition {}=False (healthy after reboot)", keys::COND_XID),
                json!({"type": keys::COND_XID, "status": "False"}),
            );
        }
    }
}

/// The entries joined; past the limit each is cut to a short form, then the oldest go.
fn condition_message(entries: &[String]) -> String {
    let whole: String = entries.concat();
    if whole.len() <= CONDITION_MESSAGE_MAX {
        return whole;
    }
    let compact: Vec<String> = entries
        .iter()
        .map(|e| {
            if e.len() <= COMPACT_ENTRY {
                e.clone()
            } else {
                let mut cut = COMPACT_ENTRY;
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}...;", &e[..cut])
            }
        })
        .collect();
    let mut start = 0;
    while compact[start..].iter().map(String::len).sum::<usize>() > CONDITION_MESSAGE_MAX
        && start + 1 < compact.len()
    {
        start += 1;
    }
    compact[start..].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_message_stays_within_1024_bytes() {
        let entry = |i: usize| {
            format!(
                "ErrorCode:79 PCI:0000:18:00 {} Recommended Action=RESTART_BM;",
                "x".repeat(100 + i)
            )
        };
        let few: Vec<String> = (0..2).map(entry).collect();
        assert_eq!(condition_message(&few), few.concat());
        let many: Vec<String> = (0..40).map(entry).collect();
        let m = condition_message(&many);
        assert!(m.len() <= CONDITION_MESSAGE_MAX, "{}", m.len());
        assert!(m.starts_with("ErrorCode:79 PCI:0000:18:00 xxx"), "{m}");
    }
}
