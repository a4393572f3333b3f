//! The simulated cluster's shape and the timings of everything NVSentinel's chart does not set.
//!
//! From flags (`--sim-nodes`, `--sim-gpus`) or a small YAML file (`--sim-config`).

use crate::duration;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// GPU nodes (`gpu-node-001`, ...), labelled `nvidia.com/gpu.present=true`.
    pub nodes: usize,
    pub gpus_per_node: usize,
    /// Nodes without GPUs (`cpu-node-001`, ...), which NVSentinel ignores.
    pub cpu_nodes: usize,
    pub node_prefix: String,
    pub gpu_model: String,
    /// Pods placed on every GPU node.
    pub pods: Vec<PodTemplate>,
    /// Nodes whose GPUs are missing from NVSentinel's `gpu_metadata.json` (COMPONENT_RESET
    /// becomes RESTART_VM there).
    pub nodes_without_gpu_metadata: Vec<String>,
    /// Nodes whose NVIDIA driver pod never becomes Ready (a host-installed driver): NVSentinel's
    /// labeler does not set `nvsentinel.dgxc.nvidia.com/driver.installed=true` there unless
    /// `labeler.assumeDriverInstalled`, so no syslog-health-monitor runs on them.
    pub nodes_without_driver: Vec<String>,
    /// Extra labels per node, e.g. `{gpu-node-002: {nvsentinel.dgxc.nvidia.com/managed: "false"}}`.
    pub node_labels: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// Nodes cordoned (by a person) before the run starts.
    pub cordoned_nodes: Vec<String>,
    /// Whether the monitor's state file (`/var/run/syslog_monitor/state.json`, on the host's
    /// `/var/run/nvsentinel`) survives a reboot. Default false: that is tmpfs on most
    /// distributions, so after a reboot the monitor seeks to the end of the journal and lines
    /// written before its first poll are lost; true: it scans the new boot from its start.
    pub monitor_state_survives_reboot: bool,
    pub timings: SimTimings,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 8,
            gpus_per_node: 8,
            cpu_nodes: 0,
            node_prefix: "gpu-node-".into(),
            gpu_model: "NVIDIA H100 80GB HBM3".into(),
            pods: PodTemplate::defaults(),
            nodes_without_gpu_metadata: Vec::new(),
            nodes_without_driver: Vec::new(),
            node_labels: Default::default(),
            cordoned_nodes: Vec::new(),
            monitor_state_survives_reboot: false,
            timings: SimTimings::default(),
        }
    }
}

/// A kind of pod on every GPU node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodTemplate {
    pub namespace: String,
    /// Name prefix; pods are named `<name>-<node index>-<n>`.
    pub name: String,
    /// Owner kind: `DaemonSet` (never drained, back after a reboot), `ReplicaSet`, `Job`, ...
    #[serde(default = "default_owner")]
    pub owner: String,
    #[serde(default = "one")]
    pub count: usize,
    /// A pod that finishes on its own after this long (a batch job); never when absent.
    #[serde(default, with = "opt_duration")]
    pub runs_for: Option<Duration>,
    /// How long the pod takes to exit after SIGTERM.
    #[serde(default = "default_shutdown", with = "duration_serde")]
    pub shutdown: Duration,
}

fn default_owner() -> String {
    "ReplicaSet".into()
}
fn one() -> usize {
    1
}
fn default_shutdown() -> Duration {
    Duration::from_secs(20)
}

impl PodTemplate {
    fn new(ns: &str, name: &str, owner: &str, count: usize, runs_for: Option<u64>) -> Self {
        PodTemplate {
            namespace: ns.into(),
            name: name.into(),
            owner: owner.into(),
            count,
            runs_for: runs_for.map(Duration::from_secs),
            shutdown: default_shutdown(),
        }
    }

    fn defaults() -> Vec<PodTemplate> {
        vec![
            PodTemplate::new("kube-system", "kube-proxy", "DaemonSet", 1, None),
            PodTemplate::new("gpu-operator", "nvidia-device-plugin", "DaemonSet", 1, None),
            PodTemplate::new("nvsentinel", "syslog-health-monitor", "DaemonSet", 1, None),
            PodTemplate::new(
                "fault-injection-system",
                "gpu-fault-injector-kernel",
                "DaemonSet",
                1,
                None,
            ),
            PodTemplate::new("dynamo", "vllm-worker", "ReplicaSet", 2, None),
            PodTemplate::new("default", "train-job", "Job", 1, Some(6 * 3600)),
        ]
    }
}

/// Latencies of the simulated components. Each gets a seeded jitter of `jitter` (a fraction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimTimings {
    /// syslog-health-monitor's journal poll interval.
    #[serde(with = "duration_serde")]
    pub poll_interval: Duration,
    /// Health event to node condition / Event (platform-connectors).
    #[serde(with = "duration_serde")]
    pub platform_connector: Duration,
    /// Node condition to cordon, and healthy event to uncordon (fault-quarantine).
    #[serde(with = "duration_serde")]
    pub quarantine: Duration,
    /// Cordon to the start of the drain (node-drainer).
    #[serde(with = "duration_serde")]
    pub drain_start: Duration,
    /// Drain finished to the remediation decision (fault-remediation).
    #[serde(with = "duration_serde")]
    pub remediation: Duration,
    /// RebootNode created to the janitor acting on it.
    #[serde(with = "duration_serde")]
    pub janitor_pickup: Duration,
    /// Reboot signal to the node going NotReady.
    #[serde(with = "duration_serde")]
    pub shutdown: Duration,
    /// NotReady to the new boot (the CSP's reboot).
    #[serde(with = "duration_serde")]
    pub reboot: Duration,
    /// Boot to kubelet reporting Ready.
    #[serde(with = "duration_serde")]
    pub kubelet_ready: Duration,
    /// Ready to the NVIDIA driver pod being Ready (the labeler then sets the driver label).
    #[serde(with = "duration_serde")]
    pub driver_ready: Duration,
    /// Driver label to the monitor pod running again.
    #[serde(with = "duration_serde")]
    pub monitor_start: Duration,
    /// When the monitors first start (NVSentinel installed during the run). A monitor's first
    /// start seeks to the end of the journal: lines written before it are never seen.
    #[serde(with = "duration_serde")]
    pub monitor_first_start: Duration,
    /// Relative jitter applied to every latency above (0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for SimTimings {
    fn default() -> Self {
        SimTimings {
            poll_interval: Duration::from_secs(15),
            platform_connector: Duration::from_secs(1),
            quarantine: Duration::from_secs(1),
            drain_start: Duration::from_secs(2),
            remediation: Duration::from_secs(3),
            janitor_pickup: Duration::from_secs(2),
            shutdown: Duration::from_secs(20),
            reboot: Duration::from_secs(240),
            kubelet_ready: Duration::from_secs(40),
            driver_ready: Duration::from_secs(30),
            monitor_start: Duration::from_secs(25),
            monitor_first_start: Duration::ZERO,
            jitter: 0.2,
        }
    }
}

impl SimConfig {
    /// One line for humans: "sim (8 GPU nodes x 8 GPUs)".
    pub fn describe(&self) -> String {
        format!(
            "sim ({} GPU node{} x {} GPU{}{})",
            self.nodes,
            if self.nodes == 1 { "" } else { "s" },
            self.gpus_per_node,
            if self.gpus_per_node == 1 { "" } else { "s" },
            if self.cpu_nodes > 0 {
                format!(", {} CPU nodes", self.cpu_nodes)
            } else {
                String::new()
            }
        )
    }

    pub(crate) fn load(path: &Path) -> Result<SimConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read sim config {}: {e}", path.display()))?;
        let cfg: SimConfig = serde_yaml::from_str(&text)
            .map_err(|e| format!("sim config {}: {e}", path.display()))?;
        cfg.validate()
            .map_err(|e| format!("sim config {}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 && self.cpu_nodes == 0 {
            return Err("the cluster needs at least one node (nodes: 1 or more)".into());
        }
        if self.nodes > 100_000 {
            return Err(format!(
                "nodes: {} is more than the 100000 supported",
                self.nodes
            ));
        }
        if self.gpus_per_node > 64 {
            return Err(format!(
                "gpus_per_node: {} is more than the 64 supported",
                self.gpus_per_node
            ));
        }
        if !(0.0..=0.9).contains(&self.timings.jitter) {
            return Err(format!(
                "timings.jitter: {} must be within 0..0.9",
                self.timings.jitter
            ));
        }
        if self.timings.poll_interval.is_zero() {
            return Err("timings.poll_interval must be above zero".into());
        }
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        if !valid_name(&self.node_prefix) {
            return Err(format!(
                "node_prefix '{}' must be lower-case letters, digits, '-' or '.'",
                self.node_prefix
            ));
        }
        for p in &self.pods {
            if !valid_name(&p.namespace) || !valid_name(&p.name) {
                return Err(format!(
                    "pod template {}/{}: names must be lower-case letters, digits, '-' or '.'",
                    p.namespace, p.name
                ));
            }
        }
        Ok(())
    }
}

mod duration_serde {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&duration::format(*d))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        value_to_duration(&v).map_err(serde::de::Error::custom)
    }
}

mod opt_duration {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&duration::format(*d)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        value_to_duration(&v)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// A YAML scalar as a duration: a number is seconds, a string is parsed (`"5m"`).
pub(crate) fn value_to_duration(v: &serde_yaml::Value) -> Result<Duration, String> {
    match v {
        serde_yaml::Value::Number(n) => {
            duration::from_secs(n.as_f64().unwrap_or(-1.0)).map_err(|e| e.to_string())
        }
        serde_yaml::Value::String(s) => duration::parse(s),
        other => Err(format!("expected a duration, got {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_config() {
        let cfg: SimConfig = serde_yaml::from_str(
            "nodes: 3\ngpus_per_node: 4\ntimings:\n  reboot: 10m\n  poll_interval: 30\npods:\n  - {namespace: ml, name: trainer, runs_for: 1h}\n",
        )
        .unwrap();
        assert_eq!(cfg.nodes, 3);
        assert_eq!(cfg.timings.reboot, Duration::from_secs(600));
        assert_eq!(cfg.timings.poll_interval, Duration::from_secs(30));
        assert_eq!(cfg.pods[0].runs_for, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.pods[0].owner, "ReplicaSet");
        cfg.validate().unwrap();
    }

    #[test]
    fn typos_are_errors() {
        let e = serde_yaml::from_str::<SimConfig>("node: 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `node`"), "{e}");
        let bad = SimConfig {
            nodes: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
