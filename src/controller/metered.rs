//! The controller's backend: the chosen one, with every injection and every failed call to a
//! node agent counted, and NVSentinel's stages timed from what the backend observes. The
//! central API and the remote runs share it, so the metrics cover both.

use super::metrics::Metrics;
use crate::backend::{
    Backend, BackendError, BackendResult, BreakerStatus, DrainOutcome, DrainScope, FaultRecord,
    GpuInfo, HealReport, InjectRequest, KubeEventInfo, LabelSelector, NodeInfo, NodePredicate,
    Observer, PodInfo, RemediationOutcome, SharedBackend, Subscription, TailOptions, WaitOutcome,
    WaitSince,
};
use crate::kmsg::KmsgRecord;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

pub struct MeteredBackend {
    inner: SharedBackend,
    metrics: Arc<Metrics>,
    _events: Subscription,
}

impl MeteredBackend {
    pub fn new(inner: SharedBackend, metrics: Arc<Metrics>) -> MeteredBackend {
        let m = metrics.clone();
        let events = inner.subscribe(Arc::new(move |e| m.cluster_event(&e)));
        MeteredBackend {
            inner,
            metrics,
            _events: events,
        }
    }

    /// Counts a failed call to a node's agent (not the script's mistakes: an unknown node).
    fn agent_call<T>(&self, node: &str, r: BackendResult<T>) -> BackendResult<T> {
        if let Err(e) = &r
            && !matches!(
                e,
                BackendError::NodeNotFound { .. }
                    | BackendError::GpuNotFound { .. }
                    | BackendError::Invalid { .. }
                    | BackendError::Unsupported { .. }
            )
        {
            self.metrics.agent_error(node, e.kind());
        }
        r
    }
}

#[async_trait]
impl Backend for MeteredBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn subscribe(&self, observer: Observer) -> Subscription {
        self.inner.subscribe(observer)
    }

    async fn list_nodes(&self, selector: Option<&LabelSelector>) -> BackendResult<Vec<NodeInfo>> {
        self.inner.list_nodes(selector).await
    }

    async fn node(&self, name: &str) -> BackendResult<NodeInfo> {
        self.inner.node(name).await
    }

    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>> {
        let r = self.inner.gpus(node).await;
        self.agent_call(node, r)
    }

    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord> {
        let r = self.inner.inject_xid(req).await;
        let outcome = match &r {
            Ok(_) => "injected",
            Err(e) => e.kind(),
        };
        self.metrics.injection(&req.node, req.xid, outcome);
        self.agent_call(&req.node, r)
    }

    async fn kmsg_tail(&self, node: &str, opts: &TailOptions) -> BackendResult<Vec<KmsgRecord>> {
        let r = self.inner.kmsg_tail(node, opts).await;
        self.agent_call(node, r)
    }

    async fn wait_node(
        &self,
        node: &str,
        predicate: &NodePredicate,
        timeout: Duration,
    ) -> BackendResult<WaitOutcome> {
        self.inner.wait_node(node, predicate, timeout).await
    }

    async fn pods(&self, node: &str) -> BackendResult<Vec<PodInfo>> {
        self.inner.pods(node).await
    }

    async fn uncordon(&self, node: &str) -> BackendResult<NodeInfo> {
        self.inner.uncordon(node).await
    }

    async fn events(&self, node: &str) -> BackendResult<Vec<KubeEventInfo>> {
        self.inner.events(node).await
    }

    async fn circuit_breaker(&self) -> BackendResult<BreakerStatus> {
        self.inner.circuit_breaker().await
    }

    async fn wait_remediation(
        &self,
        node: &str,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<RemediationOutcome> {
        self.inner.wait_remediation(node, window, timeout).await
    }

    async fn wait_drained(
        &self,
        node: &str,
        scope: &DrainScope,
        window: &WaitSince,
        timeout: Duration,
    ) -> BackendResult<DrainOutcome> {
        self.inner.wait_drained(node, scope, window, timeout).await
    }

    async fn heal(&self, node: &str) -> BackendResult<HealReport> {
        self.inner.heal(node).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self.inner.as_any()
    }
}
