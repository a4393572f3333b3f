//! The one interface every backend (`sim`, `local`, `kube`) implements and the Lua API calls.
//!
//! Everything a script learns about a node is fetched again on each call: a node cordoned or
//! rebooted mid-script gives fresh facts, a vanished one a clear error.

mod agent_api;
pub mod cluster;
mod drain_watch;
mod events;
pub mod heal;
pub mod kube;
pub mod kube_agents;
pub mod kube_connect;
pub(crate) mod kube_nodes;
pub mod local;
pub mod node_agent;
pub(crate) mod node_waiters;
mod node_watch;
mod pods_by_node;
pub mod preflight;
mod reboot_watch;
pub mod sim;
pub mod spec;
mod types;

pub use events::*;
pub use types::*;

use crate::kmsg::KmsgRecord;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

#[async_trait]
pub trait Backend: Send + Sync {
    /// `sim`, `local` or `kube`.
    fn name(&self) -> &'static str;

    /// `observer` hears what the backend sees the cluster do, from now until the subscription
    /// is dropped; each run subscribes once.
    fn subscribe(&self, observer: Observer) -> Subscription;

    /// Nodes matching `selector` (all nodes when `None`), sorted by name.
    async fn list_nodes(&self, selector: Option<&LabelSelector>) -> BackendResult<Vec<NodeInfo>>;

    /// Fresh facts about one node.
    async fn node(&self, name: &str) -> BackendResult<NodeInfo>;

    /// How many nodes match `selector`, and the names of those unavailable (cordoned or not
    /// Ready): what a guard counts before every injection. The default lists the nodes; a
    /// backend that holds them counts without copying each.
    async fn unavailable(
        &self,
        selector: Option<&LabelSelector>,
    ) -> BackendResult<(usize, Vec<String>)> {
        let nodes = self.list_nodes(selector).await?;
        let down = nodes
            .iter()
            .filter(|n| n.unschedulable || !n.ready)
            .map(|n| n.name.clone())
            .collect();
        Ok((nodes.len(), down))
    }

    /// The GPUs of a node, by index.
    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>>;

    /// Writes one XID line for a GPU of a node and proves it landed.
    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord>;

    /// Recent kernel log records of a node.
    async fn kmsg_tail(&self, node: &str, opts: &TailOptions) -> BackendResult<Vec<KmsgRecord>>;

    /// Waits until `predicate` holds for `node`, or `timeout` passes. Watch-driven.
    /// A timeout is not an error: the outcome says `satisfied: false`.
    async fn wait_node(
        &self,
        node: &str,
        predicate: &NodePredicate,
        timeout: Duration,
    ) -> BackendResult<WaitOutcome>;

    /// Pods scheduled on a node.
    async fn pods(&self, node: &str) -> BackendResult<Vec<PodInfo>>;

    /// Marks a node schedulable again (`kubectl uncordon`).
    async fn uncordon(&self, node: &str) -> BackendResult<NodeInfo>;

    /// Kubernetes Events about a node (non-fatal XIDs, drain progress).
    async fn events(&self, node: &str) -> BackendResult<Vec<KubeEventInfo>> {
        let _ = node;
        Err(BackendError::Unsupported {
            backend: self.name(),
            what: "events()".into(),
            why: "this backend does not read Kubernetes Events yet".into(),
        })
    }

    /// NVSentinel's circuit breaker (ConfigMap `circuit-breaker`).
    async fn circuit_breaker(&self) -> BackendResult<BreakerStatus> {
        Err(BackendError::Unsupported {
            backend: self.name(),
            what: "circuit_breaker()".into(),
            why: "this backend does not read NVSentinel's ConfigMaps yet".into(),
        })
    }

    /// Waits until a `RebootNode` (`janitor.dgxc.nvidia.com/v1alpha1`) for `node`, created
    /// at or after `window.since`, appears and completes (`completionTime` set), or `timeout`
    /// passes. Watch-driven (a Kubernetes backend watches RebootNodes with a field or label
    /// filter on the node). A timeout is not an error: `satisfied: false`, with the CR as far
    /// as it got.
    async fn wait_remediation(
        &self,
        node: &str,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<RemediationOutcome> {
        let _ = (node, window, timeout);
        Err(BackendError::Unsupported {
            backend: self.name(),
            what: "wait_remediation()".into(),
            why: "this backend does not watch NVSentinel's RebootNodes yet".into(),
        })
    }

    /// Waits until no pod of the drained namespaces (`scope`) is left on `node`, or
    /// `timeout` passes; reports the pods that left within `window`. Watch-driven (a
    /// Kubernetes backend watches Pods with `spec.nodeName=<node>`). A timeout is not an
    /// error: `satisfied: false`, with what remains.
    async fn wait_drained(
        &self,
        node: &str,
        scope: &DrainScope,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<DrainOutcome> {
        let _ = (node, scope, window, timeout);
        Err(BackendError::Unsupported {
            backend: self.name(),
            what: "wait_drained()".into(),
            why: "this backend does not watch pods yet".into(),
        })
    }

    /// Undoes what a test left on a node, as an operator would: uncordons it (fault-quarantine
    /// takes that as a cancel), then removes NVSentinel's quarantine labels
    /// (`k8saas.nvidia.com/cordon-*`, `uncordon-*`, `dgxc.nvidia.com/nvsentinel-state`), its
    /// annotations (`quarantineHealthEvent*`, `quarantinedNodeUncordonedManually`,
    /// `latestFaultRemediationState`) and the taints that annotation lists as applied by it
    /// (not pre-existing ones). It leaves the `SysLogsXIDError` condition (platform-connectors
    /// owns it and sets it healthy after the node's next boot), the RebootNodes (janitor's TTL
    /// deletes them) and the events in NVSentinel's datastore.
    async fn heal(&self, node: &str) -> BackendResult<HealReport> {
        let _ = node;
        Err(BackendError::Unsupported {
            backend: self.name(),
            what: "heal()".into(),
            why: "this backend does not patch NVSentinel's labels and annotations yet".into(),
        })
    }

    /// For backend-specific extras (the sim's controls).
    fn as_any(&self) -> &dyn std::any::Any;
}

pub type SharedBackend = Arc<dyn Backend>;
