//! A backend over a real cluster: node state from the Kubernetes API ([`KubeNodes`], followed
//! by one [`NodeWatch`]) and the node side from a [`NodeAgent`]. `local` is this with the
//! agent of the host it runs on; `kube` is this with each node's agent over HTTP.

use super::kube_connect::{KubeConnect, KubeTarget};
use super::kube_nodes::KubeNodes;
use super::node_agent::NodeAgent;
use super::node_watch::NodeWatch;
use super::pods_by_node::PodsByNode;
use super::preflight;
use super::reboot_watch::RebootWatch;
use super::{
    Backend, BackendError, BackendResult, BreakerStatus, EventHub, FaultRecord, GpuInfo,
    InjectRequest, KubeEventInfo, LabelSelector, NodeInfo, NodePredicate, Observer, PodInfo,
    Subscription, TailOptions, WaitOutcome,
};
use super::{DrainOutcome, DrainScope, HealReport, MaintenanceInfo, RemediationOutcome, WaitSince};
use crate::kmsg::KmsgRecord;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// How a cluster backend reaches the Kubernetes API.
#[derive(Clone)]
pub enum KubeAccess {
    /// As kubectl does: this kubeconfig and context, else `KUBECONFIG` or `~/.kube/config`,
    /// else the pod's ServiceAccount; with none of them, node-state calls say so.
    Connect(KubeConnect),
    /// Never: node-state calls are unsupported.
    Disabled,
    /// This client (tests, or a caller that built its own).
    Client(kube::Client),
}

impl Default for KubeAccess {
    fn default() -> Self {
        KubeAccess::Connect(KubeConnect::default())
    }
}

/// A connected API: node facts and the one node watch of the backend.
pub struct Connected {
    pub nodes: KubeNodes,
    pub watch: NodeWatch,
}

enum Kube {
    Unavailable(String),
    /// Connected on first use, so a backend that never asks the API never needs it.
    Lazy(Box<KubeTarget>, OnceCell<Connected>),
    Ready(Connected),
}

/// The Kubernetes API of a cluster backend, shared by its node-state calls and its agents.
pub struct KubeApi {
    backend: &'static str,
    kube: Kube,
    hub: Arc<EventHub>,
}

impl KubeApi {
    /// Reads the kubeconfig now (a wrong path or context fails here); connects on first use.
    pub fn new(
        backend: &'static str,
        access: KubeAccess,
        hub: Arc<EventHub>,
    ) -> BackendResult<KubeApi> {
        let kube = match access {
            KubeAccess::Client(c) => Kube::Ready(Connected::new(c, "", &hub)),
            KubeAccess::Disabled => Kube::Unavailable("it was turned off".into()),
            KubeAccess::Connect(c) => match c.resolve()? {
                Some(target) => Kube::Lazy(Box::new(target), OnceCell::new()),
                None => Kube::Unavailable(KubeConnect::nothing_found()),
            },
        };
        Ok(KubeApi { backend, kube, hub })
    }

    /// Whether the API is the pod's own ServiceAccount's.
    pub fn in_cluster(&self) -> bool {
        matches!(&self.kube, Kube::Lazy(t, _) if t.in_cluster())
    }

    /// The API server, as messages name it; `None` when there is none.
    pub fn server(&self) -> Option<String> {
        match &self.kube {
            Kube::Lazy(t, _) => Some(t.description.clone()),
            Kube::Ready(c) => Some(c.nodes.server().to_string()).filter(|s| !s.is_empty()),
            Kube::Unavailable(_) => None,
        }
    }

    /// The connected API, or why `what` cannot have it.
    pub async fn connected(&self, what: &str) -> BackendResult<&Connected> {
        match &self.kube {
            Kube::Ready(k) => Ok(k),
            Kube::Lazy(target, cell) => {
                cell.get_or_try_init(|| async {
                    let client = target.connect().await?;
                    Ok(Connected::new(client, &target.description, &self.hub))
                })
                .await
            }
            Kube::Unavailable(why) => Err(BackendError::Unsupported {
                backend: self.backend,
                what: what.to_string(),
                why: format!("it needs the Kubernetes API, and {why}"),
            }),
        }
    }
}

pub struct ClusterBackend<A: NodeAgent> {
    name: &'static str,
    agent: A,
    api: Arc<KubeApi>,
    hub: Arc<EventHub>,
    nvsentinel_namespace: String,
    /// NVSentinel's syslog monitors, for the pre-flight check.
    monitors: OnceCell<PodsByNode>,
    /// What `nodes()` lists without a selector of its own.
    node_selector: Option<LabelSelector>,
    /// NVSentinel's RebootNodes, for `wait_remediation`.
    reboots: OnceCell<RebootWatch>,
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
    /// `agent` is built with the backend's API (the `kube` agents find their pods through
    /// it). `nvsentinel_namespace`: where NVSentinel runs (empty: the chart's `nvsentinel`).
    pub fn new(
        name: &'static str,
        access: KubeAccess,
        nvsentinel_namespace: &str,
        agent: impl FnOnce(&Arc<KubeApi>) -> BackendResult<A>,
    ) -> BackendResult<Self> {
        let nvsentinel_namespace = self::nvsentinel_namespace(nvsentinel_namespace)?;
        let hub = EventHub::new();
        let api = Arc::new(KubeApi::new(name, access, hub.clone())?);
        Ok(ClusterBackend {
            name,
            agent: agent(&api)?,
            api,
            hub,
            nvsentinel_namespace,
            monitors: OnceCell::new(),
            node_selector: None,
            reboots: OnceCell::new(),
        })
    }

    /// What `nodes()` lists when the script gives no selector (`None`: every node).
    pub fn set_node_selector(&mut self, selector: Option<LabelSelector>) {
        self.node_selector = selector;
    }

    pub fn agent(&self) -> &A {
        &self.agent
    }

    pub fn api(&self) -> &KubeApi {
        &self.api
    }

    async fn connected(&self, what: &str) -> BackendResult<&Connected> {
        self.api.connected(what).await
    }

    /// Would NVSentinel see a line on `node` now? See [`preflight`].
    async fn preflight(&self, k: &Connected, node: &str) -> BackendResult<()> {
        const WHAT: &str = "injecting";
        let facts = k.watch.facts(node).await?;
        preflight::opted_out(&facts, WHAT)?;
        let monitors = self
            .monitors
            .get_or_init(|| async {
                PodsByNode::new(
                    k.nodes.client().clone(),
                    k.nodes.server(),
                    &self.nvsentinel_namespace,
                    preflight::MONITOR_SELECTOR,
                )
            })
            .await;
        let pods = monitors.on_node(node).await?;
        preflight::monitor_ready(
            node,
            WHAT,
            &self.nvsentinel_namespace,
            &pods,
            k8s_openapi::jiff::Timestamp::now(),
            preflight::MONITOR_POLL,
        )
    }

    /// From now on, what happens to `node` shows in every run's progress. Without the API
    /// there is nothing to follow, and the call that needs it says so itself.
    async fn target(&self, node: &str, seen: Option<&NodeInfo>) {
        if let Ok(k) = self.connected("following a node").await {
            k.watch.target(node, seen);
        }
    }
}

impl Connected {
    fn new(client: kube::Client, server: &str, hub: &Arc<EventHub>) -> Connected {
        let nodes = KubeNodes::new(client, server);
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
        let selector = selector.or(self.node_selector.as_ref());
        self.connected("listing nodes")
            .await?
            .nodes
            .list(selector)
            .await
    }

    async fn node(&self, name: &str) -> BackendResult<NodeInfo> {
        let info = self
            .connected("reading a node")
            .await?
            .nodes
            .get(name)
            .await?;
        self.target(name, Some(&info)).await;
        Ok(info)
    }

    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>> {
        self.agent.gpus(node).await
    }

    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord> {
        // Without the API (`local` off-cluster) there is nothing to check or record.
        let api = self.connected("injecting").await.ok();
        if let (Some(k), true) = (api, req.preflight) {
            self.preflight(k, &req.node).await?;
        }
        let mut rec = self.agent.inject_xid(req).await?;
        if let Some(k) = api {
            if let Err(e) = k.nodes.record_injection(&rec, &req.provenance).await {
                rec.warnings.push(format!(
                    "the injection is not recorded as an Event on node {}: {e}",
                    req.node
                ));
            }
            k.watch.target(&req.node, None);
        }
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
        self.connected("waiting for a node")
            .await?
            .watch
            .wait(node, predicate, timeout)
            .await
    }

    async fn pods(&self, node: &str) -> BackendResult<Vec<PodInfo>> {
        self.connected("listing pods").await?.nodes.pods(node).await
    }

    async fn uncordon(&self, node: &str) -> BackendResult<NodeInfo> {
        self.connected("uncordoning")
            .await?
            .nodes
            .uncordon(node)
            .await
    }

    async fn events(&self, node: &str) -> BackendResult<Vec<KubeEventInfo>> {
        self.connected("reading Events")
            .await?
            .nodes
            .events(node)
            .await
    }

    async fn wait_remediation(
        &self,
        node: &str,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<RemediationOutcome> {
        let k = self.connected("waiting for a RebootNode").await?;
        // An unknown node is the script's mistake, not a wait that times out.
        k.watch.facts(node).await?;
        let watch = self
            .reboots
            .get_or_init(|| async { RebootWatch::new(k.nodes.client().clone(), k.nodes.server()) })
            .await;
        // creationTimestamp has whole seconds: a CR made in the injection's second counts.
        let since = window.since.map(|t| t.timestamp());
        let (satisfied, cr) = watch
            .wait(
                node,
                timeout,
                |crs| {
                    crs.iter()
                        .find(|m| {
                            since.is_none_or(|s| {
                                chrono::DateTime::parse_from_rfc3339(&m.created)
                                    .is_ok_and(|c| c.timestamp() >= s)
                            })
                        })
                        .cloned()
                },
                MaintenanceInfo::completed,
            )
            .await?;
        Ok(RemediationOutcome { satisfied, cr })
    }

    async fn wait_drained(
        &self,
        node: &str,
        scope: &DrainScope,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<DrainOutcome> {
        let k = self.connected("waiting for a drain").await?;
        k.watch.facts(node).await?;
        super::drain_watch::wait_drained(&k.nodes, node, scope, window, timeout).await
    }

    async fn heal(&self, node: &str) -> BackendResult<HealReport> {
        let report = self.connected("healing").await?.nodes.heal(node).await?;
        self.target(node, Some(&report.node)).await;
        Ok(report)
    }

    async fn circuit_breaker(&self) -> BackendResult<BreakerStatus> {
        self.connected("reading the circuit breaker")
            .await?
            .nodes
            .circuit_breaker(&self.nvsentinel_namespace)
            .await
    }
}
