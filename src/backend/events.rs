//! What a backend sees the cluster do, and how each run hears of it.
//!
//! A backend owns one [`EventHub`]; every run (a `gfi run`, a REPL session, each of the
//! controller's remote plans) subscribes to it for as long as it lives, and the subscription
//! ends when the run drops it. On `sim` the model publishes as it steps; on a real cluster one
//! node watcher publishes what changes on the nodes a run has targeted, between waits too.
//!
//! Delivery is synchronous and in order, to every subscriber, rather than through a channel:
//! the run journal then records an event at the instant (virtual on `sim`) and in the order the
//! cluster produced it, among the script's own entries, which is what makes a seeded `sim` run
//! byte-identical. Subscribers must therefore be quick and must not call back into the backend.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The kinds of thing a backend observes. Serialised as the short strings journals and the
/// progress display have always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The health monitor (re)started and chose where to read from.
    MonitorStart,
    /// The health monitor matched an XID line.
    Detected,
    /// A node condition changed (`SysLogsXIDError`).
    Condition,
    /// A Kubernetes Event was recorded about the node (non-fatal XIDs).
    Event,
    Cordoned,
    Uncordoned,
    /// The `dgxc.nvidia.com/nvsentinel-state` label changed.
    State,
    /// Quarantine decided something without cordoning (already cordoned, ignored, ...).
    Quarantine,
    /// The drainer evicted a pod.
    Evicted,
    /// The drainer gave up (its timeout passed with pods left).
    DrainFailed,
    /// A RebootNode custom resource was created or changed.
    Rebootnode,
    /// Remediation could not go on (maintenance failed, a CR could not be made).
    RemediationFailed,
    /// The janitor asked the provider to reboot.
    RebootSignal,
    RebootnodeComplete,
    RebootnodeTimeout,
    /// The janitor acted on a RebootNode.
    Janitor,
    /// The node went down for a reboot (or came back with a new boot id).
    Reboot,
    /// The node's OS is up again.
    Booted,
    /// The node's Ready condition changed.
    Ready,
    /// NVSentinel's circuit breaker changed state.
    Breaker,
    /// A module stopped processing (a tripped breaker halts quarantine).
    Halted,
    /// The cluster as configured would not do what a plan expects (no datastore, a version
    /// that cannot see injections, a setting the chart does not have).
    Warning,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MonitorStart => "monitor-start",
            EventKind::Detected => "detected",
            EventKind::Condition => "condition",
            EventKind::Event => "event",
            EventKind::Cordoned => "cordoned",
            EventKind::Uncordoned => "uncordoned",
            EventKind::State => "state",
            EventKind::Quarantine => "quarantine",
            EventKind::Evicted => "evicted",
            EventKind::DrainFailed => "drain-failed",
            EventKind::Rebootnode => "rebootnode",
            EventKind::RemediationFailed => "remediation-failed",
            EventKind::RebootSignal => "reboot-signal",
            EventKind::RebootnodeComplete => "rebootnode-complete",
            EventKind::RebootnodeTimeout => "rebootnode-timeout",
            EventKind::Janitor => "janitor",
            EventKind::Reboot => "reboot",
            EventKind::Booted => "booted",
            EventKind::Ready => "ready",
            EventKind::Breaker => "breaker",
            EventKind::Halted => "halted",
            EventKind::Warning => "warning",
        }
    }
}

/// Compares with the serialised name (`kind == "inject"`), as journals are read.
impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a backend observed in the cluster: a stage of NVSentinel's reaction, an Event,
/// a reboot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterEvent {
    pub node: String,
    pub kind: EventKind,
    /// One line for humans, without the node's name (the display puts it in front).
    pub message: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl ClusterEvent {
    pub fn new(node: &str, kind: EventKind, message: impl Into<String>) -> Self {
        ClusterEvent {
            node: node.to_string(),
            kind,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }
}

/// Receives a backend's events (the run journal, a test).
pub type Observer = Arc<dyn Fn(ClusterEvent) + Send + Sync>;

/// The subscribers of one backend.
#[derive(Default)]
pub struct EventHub {
    subscribers: Mutex<Vec<(u64, Observer)>>,
    next_id: AtomicU64,
}

impl EventHub {
    pub fn new() -> Arc<EventHub> {
        Arc::new(EventHub::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Observer)>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `observer` hears every event published from now until the subscription is dropped.
    pub fn subscribe(self: &Arc<Self>, observer: Observer) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, observer));
        Subscription {
            hub: Arc::downgrade(self),
            id,
        }
    }

    pub fn has_subscribers(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Hands `event` to every subscriber, in the order they subscribed.
    pub fn publish(&self, event: ClusterEvent) {
        // Called outside the lock, so a subscriber that subscribes or drops another does not
        // deadlock.
        let subscribers: Vec<Observer> = self.lock().iter().map(|(_, o)| o.clone()).collect();
        if let Some((last, rest)) = subscribers.split_last() {
            for s in rest {
                s(event.clone());
            }
            last(event);
        }
    }
}

/// A run's place on a backend's [`EventHub`]; dropping it unsubscribes.
#[must_use = "dropping the subscription unsubscribes at once"]
pub struct Subscription {
    hub: Weak<EventHub>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.lock().retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector() -> (Observer, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Arc::new(move |e: ClusterEvent| {
                s.lock().unwrap().push(format!("{} {}", e.node, e.kind))
            }),
            seen,
        )
    }

    #[test]
    fn each_subscriber_hears_events_until_it_drops_its_subscription() {
        let hub = EventHub::new();
        let (a, seen_a) = collector();
        let (b, seen_b) = collector();
        let sub_a = hub.subscribe(a);
        hub.publish(ClusterEvent::new("n1", EventKind::Detected, "XID 79"));
        let sub_b = hub.subscribe(b);
        hub.publish(ClusterEvent::new("n1", EventKind::Cordoned, "cordoned"));
        drop(sub_a);
        hub.publish(ClusterEvent::new("n2", EventKind::Reboot, "rebooting"));
        assert_eq!(*seen_a.lock().unwrap(), ["n1 detected", "n1 cordoned"]);
        assert_eq!(*seen_b.lock().unwrap(), ["n1 cordoned", "n2 reboot"]);
        assert!(hub.has_subscribers());
        drop(sub_b);
        assert!(!hub.has_subscribers());
    }

    #[test]
    fn kinds_serialise_to_the_journal_strings() {
        for k in [
            EventKind::Rebootnode,
            EventKind::RebootnodeComplete,
            EventKind::MonitorStart,
            EventKind::Halted,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
