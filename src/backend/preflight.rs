//! Before an injection on a real cluster: would NVSentinel see it? A line written where no
//! syslog monitor reads, or before the monitor's first poll, or on a node NVSentinel ignores,
//! is never detected, and a plan would wait out its timeouts for nothing. Each check says what
//! it found; a script that means it injects anyway with `preflight = false`.

use super::pods_by_node::PodFacts;
use super::{BackendError, NodeInfo};
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// NVSentinel's opt-out labels: a node with either set to `false` is ignored by quarantine
/// (every rule set of the chart has this Node rule).
pub const OPT_OUT_LABELS: [&str; 2] = [
    "nvsentinel.dgxc.nvidia.com/managed",
    "k8saas.nvidia.com/ManagedByNVSentinel",
];

/// The label of NVSentinel's syslog monitor pods (the chart's selector label).
pub const MONITOR_SELECTOR: &str = "app.kubernetes.io/name=syslog-health-monitor";

/// The monitor's default poll interval (`pollingInterval` of the chart, 15 s).
pub const MONITOR_POLL: Duration = Duration::from_secs(15);

const HINT: &str = "inject anyway with preflight = false";

/// The node opted out of NVSentinel?
pub fn opted_out(node: &NodeInfo, what: &str) -> Result<(), BackendError> {
    for key in OPT_OUT_LABELS {
        if node.labels.get(key).is_some_and(|v| v == "false") {
            return Err(BackendError::NodeUnavailable {
                node: node.name.clone(),
                what: what.to_string(),
                reason: format!(
                    "it is opted out of NVSentinel (label {key}=false): NVSentinel ignores its health events, so the XID would never be acted on; {HINT}"
                ),
            });
        }
    }
    Ok(())
}

/// A Ready syslog monitor on the node, up for at least one poll (a line written before its
/// first poll is never seen: on first start it seeks to the end of the journal).
pub fn monitor_ready(
    node: &str,
    what: &str,
    namespace: &str,
    pods: &[PodFacts],
    now: Timestamp,
    poll: Duration,
) -> Result<(), BackendError> {
    let unavailable = |reason: String| BackendError::NodeUnavailable {
        node: node.to_string(),
        what: what.to_string(),
        reason,
    };
    let live: Vec<&PodFacts> = pods.iter().filter(|p| !p.deleting).collect();
    let ready: Vec<&PodFacts> = live.iter().copied().filter(|p| p.ready).collect();
    let Some(best) = ready.iter().min_by_key(|p| p.ready_since) else {
        let found = if pods.is_empty() {
            format!(
                "no NVSentinel syslog monitor pod ({MONITOR_SELECTOR}) runs on it in namespace {namespace} (does the node have the label nvsentinel.dgxc.nvidia.com/driver.installed=true?)"
            )
        } else {
            format!(
                "NVSentinel's syslog monitor there is not Ready: {}",
                pods.iter()
                    .map(PodFacts::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(unavailable(format!(
            "{found}; the XID line would not be seen; {HINT}"
        )));
    };
    if let Some(since) = best.ready_since {
        let up = now.duration_since(since);
        let poll_signed = k8s_openapi::jiff::SignedDuration::try_from(poll).unwrap_or_default();
        if up < poll_signed {
            let up_s = up.as_secs_f64().max(0.0);
            return Err(unavailable(format!(
                "NVSentinel's syslog monitor {} has been Ready for {up_s:.0} s, less than one poll ({} s): a line written before its first poll is never seen; wait, or {HINT}",
                best.name,
                poll.as_secs()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool, since: &str) -> PodFacts {
        PodFacts {
            name: "syslog-health-monitor-regular-x".into(),
            node: "n1".into(),
            phase: "Running".into(),
            ready,
            ready_since: Some(since.parse().unwrap()),
            ip: None,
            deleting: false,
        }
    }

    #[test]
    fn opt_out_labels_refuse_with_the_label_named() {
        let mut n = NodeInfo {
            name: "n1".into(),
            ..Default::default()
        };
        assert!(opted_out(&n, "injecting").is_ok());
        n.labels.insert(
            "k8saas.nvidia.com/ManagedByNVSentinel".into(),
            "false".into(),
        );
        let e = opted_out(&n, "injecting").unwrap_err();
        assert!(matches!(e, BackendError::NodeUnavailable { .. }));
        assert!(
            e.to_string().contains(
                "opted out of NVSentinel (label k8saas.nvidia.com/ManagedByNVSentinel=false)"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_monitor_must_be_ready_for_one_poll() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let check = |pods: &[PodFacts]| {
            monitor_ready("n1", "injecting", "nvsentinel", pods, now, MONITOR_POLL)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(check(&[pod(true, "2026-12-01T09:59:00Z")]), None);
        let e = check(&[pod(true, "2026-12-01T09:59:55Z")]).unwrap();
        assert!(
            e.contains("Ready for 5 s, less than one poll (15 s)"),
            "{e}"
        );
        let e = check(&[pod(false, "2026-12-01T09:00:00Z")]).unwrap();
        assert!(
            e.contains("not Ready: syslog-health-monitor-regular-x (Running, not Ready)"),
            "{e}"
        );
        let e = check(&[]).unwrap();
        assert!(e.contains("no NVSentinel syslog monitor pod"), "{e}");
        assert!(e.contains("preflight = false"), "{e}");
    }
}
