//! The controller's Prometheus metrics, rendered by hand in the text exposition format
//! (version 0.0.4), as the agent's are: requests by route and status, injections by XID and
//! outcome, runs by outcome, errors of the node agents by node, and how long NVSentinel took
//! to reach each stage after an injection.

use crate::backend::{ClusterEvent, EventKind, keys};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The stages whose latency (seconds from the injection) is measured, in NVSentinel's order.
pub const STAGES: [&str; 5] = [
    "detected",
    "cordoned",
    "drained",
    "remediated",
    "uncordoned",
];

/// Upper bounds (seconds) of the stage histograms: NVSentinel takes seconds to detect and
/// cordon, minutes to drain and reboot.
pub const STAGE_BUCKETS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; STAGE_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in STAGE_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// Which stage an event marks, if any.
pub fn stage_of(e: &ClusterEvent) -> Option<&'static str> {
    match e.kind {
        EventKind::Detected => Some("detected"),
        // On a real cluster detection shows as platform-connectors' node condition.
        EventKind::Condition
            if e.detail.get("type").and_then(|t| t.as_str()) == Some(keys::COND_XID)
                && e.detail.get("status").and_then(|s| s.as_str()) == Some("True") =>
        {
            Some("detected")
        }
        EventKind::Cordoned => Some("cordoned"),
        EventKind::State if e.message.ends_with("drain-succeeded") => Some("drained"),
        EventKind::State if e.message.ends_with("remediation-succeeded") => Some("remediated"),
        EventKind::Uncordoned => Some("uncordoned"),
        _ => None,
    }
}

/// The last injection on a node and the stages seen since.
struct Pending {
    at: Instant,
    seen: Vec<&'static str>,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    injections: BTreeMap<(u32, String), u64>,
    runs: BTreeMap<String, u64>,
    agent_errors: BTreeMap<(String, &'static str), u64>,
    stages: BTreeMap<&'static str, Histogram>,
    pending: HashMap<String, Pending>,
    auth_failures: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn request(&self, route: &'static str, status: u16) {
        *self.lock().requests.entry((route, status)).or_default() += 1;
    }

    pub fn auth_failure(&self, why: &'static str) {
        *self.lock().auth_failures.entry(why).or_default() += 1;
    }

    /// An injection through the controller (central API or a run): `outcome` is `injected` or
    /// the error's kind. A landed one starts the stage clocks of its node.
    pub fn injection(&self, node: &str, xid: u32, outcome: &str) {
        let mut m = self.lock();
        *m.injections.entry((xid, outcome.to_string())).or_default() += 1;
        if outcome == "injected" {
            m.pending.insert(
                node.to_string(),
                Pending {
                    at: Instant::now(),
                    seen: Vec::new(),
                },
            );
        }
    }

    pub fn agent_error(&self, node: &str, kind: &'static str) {
        *self
            .lock()
            .agent_errors
            .entry((node.to_string(), kind))
            .or_default() += 1;
    }

    /// A run ended with this outcome (`finished`, `failed`, `cancelled`, `interrupted`).
    pub fn run_ended(&self, outcome: &str) {
        *self.lock().runs.entry(outcome.to_string()).or_default() += 1;
    }

    /// What the backend saw: the first time each stage follows a node's injection, its
    /// latency is recorded.
    pub fn cluster_event(&self, e: &ClusterEvent) {
        let Some(stage) = stage_of(e) else { return };
        let mut m = self.lock();
        let Some(p) = m.pending.get_mut(&e.node) else {
            return;
        };
        if p.seen.contains(&stage) {
            return;
        }
        p.seen.push(stage);
        let secs = p.at.elapsed().as_secs_f64();
        if stage == "uncordoned" {
            m.pending.remove(&e.node);
        }
        m.stages.entry(stage).or_default().observe(secs);
    }

    /// The stage latency of `node` as recorded so far, for tests.
    pub fn stage_count(&self, stage: &str) -> u64 {
        self.lock().stages.get(stage).map(|h| h.count).unwrap_or(0)
    }

    pub fn render(&self, uptime: Duration, records: &[(&str, usize)]) -> String {
        let m = self.lock();
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP gfi_controller_http_requests_total Requests answered, by route and status.\n# TYPE gfi_controller_http_requests_total counter"
        );
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "gfi_controller_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_controller_auth_failures_total Requests refused by authentication, by reason.\n# TYPE gfi_controller_auth_failures_total counter"
        );
        for (why, n) in &m.auth_failures {
            let _ = writeln!(
                out,
                "gfi_controller_auth_failures_total{{reason=\"{why}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_controller_injections_total XID injections through the controller (central API and runs), by XID and outcome (injected, or the error's kind).\n# TYPE gfi_controller_injections_total counter"
        );
        for ((xid, outcome), n) in &m.injections {
            let _ = writeln!(
                out,
                "gfi_controller_injections_total{{xid=\"{xid}\",outcome=\"{}\"}} {n}",
                escape(outcome)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_controller_runs_total Remote runs ended, by outcome.\n# TYPE gfi_controller_runs_total counter"
        );
        for (outcome, n) in &m.runs {
            let _ = writeln!(
                out,
                "gfi_controller_runs_total{{outcome=\"{}\"}} {n}",
                escape(outcome)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_controller_agent_errors_total Failed calls to the gfi agents, by node and error kind.\n# TYPE gfi_controller_agent_errors_total counter"
        );
        for ((node, kind), n) in &m.agent_errors {
            let _ = writeln!(
                out,
                "gfi_controller_agent_errors_total{{node=\"{}\",kind=\"{kind}\"}} {n}",
                escape(node)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_controller_stage_seconds Seconds from an injection to each stage of NVSentinel's reaction on its node.\n# TYPE gfi_controller_stage_seconds histogram"
        );
        for stage in STAGES {
            let h = m.stages.get(stage).cloned().unwrap_or_default();
            for (i, b) in STAGE_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gfi_controller_stage_seconds_bucket{{stage=\"{stage}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "gfi_controller_stage_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}\ngfi_controller_stage_seconds_sum{{stage=\"{stage}\"}} {}\ngfi_controller_stage_seconds_count{{stage=\"{stage}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_controller_records Records kept, by kind.\n# TYPE gfi_controller_records gauge"
        );
        for (kind, n) in records {
            let _ = writeln!(out, "gfi_controller_records{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP gfi_controller_uptime_seconds Seconds since the controller started.\n# TYPE gfi_controller_uptime_seconds gauge\ngfi_controller_uptime_seconds {:.3}",
            uptime.as_secs_f64()
        );
        out
    }
}

/// A label value as the exposition format writes it.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_follow_an_injection_once_each() {
        let m = Metrics::default();
        let ev = |kind, msg: &str| ClusterEvent::new("n1", kind, msg);
        // Before any injection nothing is measured.
        m.cluster_event(&ev(EventKind::Cordoned, "cordoned"));
        assert_eq!(m.stage_count("cordoned"), 0);
        m.injection("n1", 79, "injected");
        let mut cond = ev(EventKind::Condition, "condition SysLogsXIDError=True");
        cond.detail = json!({"type": "SysLogsXIDError", "status": "True"});
        m.cluster_event(&cond);
        m.cluster_event(&ev(EventKind::Cordoned, "cordoned"));
        m.cluster_event(&ev(EventKind::Cordoned, "cordoned"));
        m.cluster_event(&ev(EventKind::State, "state=drain-succeeded"));
        m.cluster_event(&ev(
            EventKind::State,
            "dgxc.nvidia.com/nvsentinel-state: drain-succeeded -> remediation-succeeded",
        ));
        m.cluster_event(&ev(EventKind::Uncordoned, "uncordoned"));
        for s in STAGES {
            assert_eq!(m.stage_count(s), 1, "{s}");
        }
        m.cluster_event(&ev(EventKind::Uncordoned, "uncordoned"));
        assert_eq!(m.stage_count("uncordoned"), 1);
        m.injection("n2", 48, "node_unavailable");
        m.agent_error("n2", "node_unavailable");
        m.run_ended("finished");
        let text = m.render(Duration::from_secs(3), &[("fault", 2)]);
        for want in [
            "gfi_controller_injections_total{xid=\"79\",outcome=\"injected\"} 1",
            "gfi_controller_injections_total{xid=\"48\",outcome=\"node_unavailable\"} 1",
            "gfi_controller_agent_errors_total{node=\"n2\",kind=\"node_unavailable\"} 1",
            "gfi_controller_runs_total{outcome=\"finished\"} 1",
            "gfi_controller_stage_seconds_count{stage=\"drained\"} 1",
            "gfi_controller_records{kind=\"fault\"} 2",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
