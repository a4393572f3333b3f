//! The `kube` backend: a real cluster through the Kubernetes API (node state, watch-driven
//! waits, Events, NVSentinel's circuit breaker) and each node's `gfi agent` (GPUs, kernel log,
//! injections), from a workstation with a kubeconfig or from a pod in the cluster.

use super::cluster::{ClusterBackend, KubeAccess};
use super::kube_agents::{KubeAgentOptions, KubeAgents};
use super::kube_connect::KubeConnect;
use super::{BackendError, BackendResult, LabelSelector};

/// The `kube` backend: a cluster backend whose node agents are the gfi agent pods.
pub type KubeBackend = ClusterBackend<KubeAgents>;

/// The default of `nodes()`: the GPU nodes, as GPU feature discovery labels them.
pub const DEFAULT_NODE_SELECTOR: &str = "nvidia.com/gpu.present=true";

/// Options for [`KubeBackend::kube`].
#[derive(Debug, Clone)]
pub struct KubeOptions {
    pub connect: KubeConnect,
    pub agents: KubeAgentOptions,
    /// Where NVSentinel runs (empty: the chart's `nvsentinel`).
    pub nvsentinel_namespace: String,
    /// What `nodes()` lists when the script gives no selector (empty: every node).
    pub node_selector: String,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            connect: KubeConnect::default(),
            agents: KubeAgentOptions::default(),
            nvsentinel_namespace: String::new(),
            node_selector: DEFAULT_NODE_SELECTOR.into(),
        }
    }
}

impl ClusterBackend<KubeAgents> {
    /// Reads the kubeconfig (a wrong path or context fails here) and prepares, without
    /// connecting, the client.
    pub fn kube(opts: KubeOptions) -> BackendResult<KubeBackend> {
        Self::kube_with(KubeAccess::Connect(opts.connect.clone()), opts)
    }

    /// As [`kube`](Self::kube), over a client the caller built (tests).
    pub fn kube_with(access: KubeAccess, opts: KubeOptions) -> BackendResult<KubeBackend> {
        let selector = if opts.node_selector.trim().is_empty() {
            None
        } else {
            Some(
                LabelSelector::parse(&opts.node_selector)
                    .map_err(|e| BackendError::invalid("--node-selector", e.to_string()))?,
            )
        };
        if matches!(&access, KubeAccess::Connect(c) if c.resolve()?.is_none()) {
            return Err(BackendError::invalid(
                "Kubernetes client configuration",
                format!(
                    "{}; the kube backend needs a cluster",
                    KubeConnect::nothing_found()
                ),
            ));
        }
        let agents = opts.agents.clone();
        let mut backend = ClusterBackend::new("kube", access, &opts.nvsentinel_namespace, |api| {
            KubeAgents::new(api.clone(), agents)
        })?;
        backend.set_node_selector(selector);
        Ok(backend)
    }

    /// "kube (https://... (context x of ~/.kube/config); agents in fault-injection-system via proxy)".
    pub fn describe(&self) -> String {
        let o = self.agent().options();
        format!(
            "kube ({}; agents {} in {}, reached {})",
            self.api()
                .server()
                .unwrap_or_else(|| "no API server".into()),
            o.selector,
            o.namespace,
            self.agent().describe_access()
        )
    }
}
