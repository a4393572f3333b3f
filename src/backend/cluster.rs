//! A backend over a real cluster: node state from the Kubernetes API ([`KubeNodes`], followed
//! by one [`NodeWatch`]) and the node side from a [`NodeAgent`]. `local` is this with the
//! agent of the host it runs on; `kube` is this with each node's agent over HTTP.

use super::kube_nodes::KubeNodes;
use super::node_agent::NodeAgent;
use super::node_watch::NodeWatch;
use super::{
    Backend, BackendError, BackendResult, BreakerStatus, EventHub, FaultRecord, GpuInfo,
    InjectRequest, KubeEventInfo, LabelSelector, NodeInfo, NodePredicate, Observer, PodInfo,
    Subscription, TailOptions, WaitOutcome,
};
use crate::kmsg::KmsgRecord;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// How a cluster backend reaches the Kubernetes API.
#[derive(Clone, Default)]
pub enum KubeAccess {
    /// The in-cluster config when `KUBERNETES_SERVICE_HOST` is set, else none.
    #[default]
    Auto,
    /// Never: node-state calls are unsupported.
    Disabled,
    /// This client (tests, or a caller that built its own).
    Client(kube::Client),
}

struct Connected {
    nodes: KubeNodes,
    watch: NodeWatch,
}

enum Kube {
    Unavailable(String),
    /// Connected on first use, so a backend that never asks the API never needs it.
    Config(Box<kube::Config>, OnceCell<Connected>),
    Ready(Connected),
}

pub struct ClusterBackend<A: NodeAgent> {
    name: &'static str,
    agent: A,
    kube: Kube,
    hub: Arc<EventHub>,
    nvsentinel_namespace: String,
}

/// A namespace name as Kubernetes accepts it (a DNS label), or the chart's default.
pub fn nvsentinel_namespace(ns: &str) -> Result<String, BackendError> {
    let ns = ns.trim();
    if ns.is_empty() {
        return Ok("nvsentinel".into());
    }
    let label = ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if label {
        Ok(ns.to_string())
    } else {
        Err(BackendError::invalid(
            "NVSentinel namespace",
            format!(
                "{ns:?} is not a namespace name (lower-case letters, digits and '-', at most 63, e.g. nvsentinel)"
            ),
        ))
    }
}

impl<A: NodeAgent> ClusterBackend<A> {
    /// `nvsentinel_namespace`: where NVSentinel's circuit breaker ConfigMap is read (empty:
    /// the chart's `nvsentinel`).
    pub fn new(
        name: &'static str,
        agent: A,
        access: KubeAccess,
        nvsentinel_namespace: &str,
    ) -> BackendResult<Self> {
        let hub = EventHub::new();
        let kube = match access {
            KubeAccess::Client(c) => Kube::Ready(Connected::new(c, &hub)),
            KubeAccess::Disabled => Kube::Unavailable("it was turned off".into()),
            KubeAccess::Auto => match std::env::var("KUBERNETES_SERVICE_HOST") {
                Ok(h) if !h.is_empty() => match kube::Config::incluster() {
                    Ok(cfg) => Kube::Config(Box::new(cfg), OnceCell::new()),
                    Err(e) => Kube::Unavailable(format!(
                        "KUBERNETES_SERVICE_HOST is set but the in-cluster config is unusable: {e}"
                    )),
                },
                _ => Kube::Unavailable(
                    "there is no in-cluster Kubernetes config (KUBERNETES_SERVICE_HOST is not set): run gfi inside a pod with a ServiceAccount, such as the agent's, or use the kube backend".into(),
                ),
            },
        };
        Ok(ClusterBackend {
            name,
            agent,
            kube,
            hub,
            nvsentinel_namespace: self::nvsentinel_namespace(nvsentinel_namespace)?,
        })
    }

    pub fn agent(&self) -> &A {
        &self.agent
    }

    async fn kube(&self, what: &str) -> BackendResult<&Connected> {
        match &self.kube {
            Kube::Ready(k) => Ok(k),
            Kube::Config(cfg, cell) => {
                cell.get_or_try_init(|| async {
                    kube::Client::try_from((**cfg).clone())
                        .map(|c| Connected::new(c, &self.hub))
                        .map_err(|e| {
                            BackendError::failed(None, "connecting to the Kubernetes API", e)
                        })
                })
                .await
            }
            Kube::Unavailable(why) => Err(BackendError::Unsupported {
                backend: self.name,
                what: what.to_string(),
                why: format!("it needs the Kubernetes API, and {why}"),
            }),
        }
    }

    /// From now on, what happens to `node` shows in every run's progress. Without the API
    /// there is nothing to follow, and the call that needs it says so itself.
    async fn target(&self, node: &str, seen: Option<&NodeInfo>) {
        if let Ok(k) = self.kube("following a node").await {
            k.watch.target(node, seen);
        }
    }
}

impl Connected {
    fn new(client: kube::Client, hub: &Arc<EventHub>) -> Connected {
        let nodes = KubeNodes::new(client);
        Connected {
            watch: NodeWatch::new(nodes.clone(), hub.clone()),
            nodes,
        }
    }
}

#[async_trait]
impl<A: NodeAgent> Backend for ClusterBackend<A> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn subscribe(&self, observer: Observer) -> Subscription {
        self.hub.subscribe(observer)
    }

    async fn list_nodes(&self, selector: Option<&LabelSelector>) -> BackendResult<Vec<NodeInfo>> {
        self.kube("listing nodes").await?.nodes.list(selector).await
    }

    async fn node(&self, name: &str) -> BackendResult<NodeInfo> {
        let info = self.kube("reading a node").await?.nodes.get(name).await?;
        self.target(name, Some(&info)).await;
        Ok(info)
    }

    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>> {
        self.agent.gpus(node).await
    }

    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord> {
        let rec = self.agent.inject_xid(req).await?;
        self.target(&req.node, None).await;
        Ok(rec)
    }

    async fn kmsg_tail(&self, node: &str, opts: &TailOptions) -> BackendResult<Vec<KmsgRecord>> {
        self.agent.kmsg_tail(node, opts).await
    }

    async fn wait_node(
        &self,
        node: &str,
        predicate: &NodePredicate,
        timeout: Duration,
    ) -> BackendResult<WaitOutcome> {
        self.kube("waiting for a node")
            .await?
            .watch
            .wait(node, predicate, timeout)
            .await
    }

    async fn pods(&self, node: &str) -> BackendResult<Vec<PodInfo>> {
        self.kube("listing pods").await?.nodes.pods(node).await
    }

    async fn uncordon(&self, node: &str) -> BackendResult<NodeInfo> {
        self.kube("uncordoning").await?.nodes.uncordon(node).await
    }

    async fn events(&self, node: &str) -> BackendResult<Vec<KubeEventInfo>> {
        self.kube("reading Events").await?.nodes.events(node).await
    }

    async fn circuit_breaker(&self) -> BackendResult<BreakerStatus> {
        self.kube("reading the circuit breaker")
            .await?
            .nodes
            .circuit_breaker(&self.nvsentinel_namespace)
            .await
    }
}
