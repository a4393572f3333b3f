//! The stages of NVSentinel's reaction, as the journal's `observe` entries show them: the one
//! place that reads that vocabulary for reports (the terminal summary, JUnit, HTML, compare).

use crate::backend::EventKind;
use crate::journal::{Entry, EntryKind};

/// A stage an injection can reach, in the order a full recovery reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The health monitor matched the XID line.
    Detected,
    /// The node condition `SysLogsXIDError` became True.
    Condition,
    /// A Kubernetes Event instead of a condition (a non-fatal XID).
    Event,
    Cordoned,
    Draining,
    Drained,
    DrainFailed,
    /// The remediation CR (`RebootNode`) was created.
    RemediationCreated,
    Remediated,
    RemediationFailed,
    /// The node went down for a reboot.
    Rebooting,
    Booted,
    Ready,
    /// The remediation CR completed.
    RemediationCompleted,
    RemediationTimeout,
    Uncordoned,
}

impl Stage {
    pub const ALL: [Stage; 16] = [
        Stage::Detected,
        Stage::Condition,
        Stage::Event,
        Stage::Cordoned,
        Stage::Draining,
        Stage::Drained,
        Stage::DrainFailed,
        Stage::RemediationCreated,
        Stage::Remediated,
        Stage::RemediationFailed,
        Stage::Rebooting,
        Stage::Booted,
        Stage::Ready,
        Stage::RemediationCompleted,
        Stage::RemediationTimeout,
        Stage::Uncordoned,
    ];

    /// The short name reports and JSON use.
    pub fn key(self) -> &'static str {
        match self {
            Stage::Detected => "detected",
            Stage::Condition => "condition",
            Stage::Event => "event",
            Stage::Cordoned => "cordoned",
            Stage::Draining => "draining",
            Stage::Drained => "drained",
            Stage::DrainFailed => "drain-failed",
            Stage::RemediationCreated => "remediation-created",
            Stage::Remediated => "remediated",
            Stage::RemediationFailed => "remediation-failed",
            Stage::Rebooting => "rebooting",
            Stage::Booted => "booted",
            Stage::Ready => "ready",
            Stage::RemediationCompleted => "remediation-completed",
            Stage::RemediationTimeout => "remediation-timeout",
            Stage::Uncordoned => "uncordoned",
        }
    }

    /// What a person reads in a table.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Detected => "detected",
            Stage::Condition => "condition SysLogsXIDError",
            Stage::Event => "Event (no cordon)",
            Stage::Cordoned => "cordoned",
            Stage::Draining => "draining",
            Stage::Drained => "drained",
            Stage::DrainFailed => "drain failed",
            Stage::RemediationCreated => "RebootNode created",
            Stage::Remediated => "remediation succeeded",
            Stage::RemediationFailed => "remediation failed",
            Stage::Rebooting => "rebooting",
            Stage::Booted => "booted",
            Stage::Ready => "Ready",
            Stage::RemediationCompleted => "RebootNode completed",
            Stage::RemediationTimeout => "RebootNode timed out",
            Stage::Uncordoned => "uncordoned",
        }
    }

    pub fn from_key(key: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.key() == key)
    }

    /// A stage where NVSentinel gave up (which may still be what a plan expects: XID 74).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Stage::DrainFailed | Stage::RemediationFailed | Stage::RemediationTimeout
        )
    }

    /// The stage an `observe` entry shows, if any.
    pub fn of(entry: &Entry) -> Option<Stage> {
        if entry.kind != EntryKind::Observe {
            return None;
        }
        let kind = entry.data.get("kind").and_then(|k| k.as_str())?;
        let detail = entry.data.get("detail");
        let field = |k: &str| detail.and_then(|d| d.get(k)).and_then(|v| v.as_str());
        let is = |k: EventKind| k.as_str() == kind;
        // A person's (or the script's) cordon or uncordon is not NVSentinel's reaction.
        if detail
            .and_then(|d| d.get("manual"))
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            return None;
        }
        if is(EventKind::Detected) {
            Some(Stage::Detected)
        } else if is(EventKind::Condition) {
            // Only the condition raised; its clearing after a reboot is not a stage.
            (field("status") == Some("True")).then_some(Stage::Condition)
        } else if is(EventKind::Event) {
            Some(Stage::Event)
        } else if is(EventKind::Cordoned) {
            Some(Stage::Cordoned)
        } else if is(EventKind::Uncordoned) {
            Some(Stage::Uncordoned)
        } else if is(EventKind::State) {
            match field("state")? {
                "draining" => Some(Stage::Draining),
                "drain-succeeded" => Some(Stage::Drained),
                "drain-failed" => Some(Stage::DrainFailed),
                "remediation-succeeded" => Some(Stage::Remediated),
                "remediation-failed" => Some(Stage::RemediationFailed),
                _ => None,
            }
        } else if is(EventKind::DrainFailed) {
            Some(Stage::DrainFailed)
        } else if is(EventKind::Rebootnode) {
            Some(Stage::RemediationCreated)
        } else if is(EventKind::RemediationFailed) {
            Some(Stage::RemediationFailed)
        } else if is(EventKind::Reboot) {
            // The sim says when the node goes down and (kind `booted`) when it is up; the
            // Kubernetes backend sees only the new boot id once it is back.
            if entry.message.contains("new boot id") {
                Some(Stage::Booted)
            } else {
                Some(Stage::Rebooting)
            }
        } else if is(EventKind::Booted) {
            Some(Stage::Booted)
        } else if is(EventKind::Ready) {
            // The Kubernetes backend reports both directions under one kind.
            if entry.message.contains("NotReady") {
                Some(Stage::Rebooting)
            } else {
                Some(Stage::Ready)
            }
        } else if is(EventKind::RebootnodeComplete) {
            Some(Stage::RemediationCompleted)
        } else if is(EventKind::RebootnodeTimeout) {
            Some(Stage::RemediationTimeout)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_in_order() {
        for (i, s) in Stage::ALL.iter().enumerate() {
            assert_eq!(Stage::from_key(s.key()), Some(*s));
            if i > 0 {
                assert!(Stage::ALL[i - 1] < *s);
            }
        }
    }
}
