//! Node facts from the Kubernetes API: read, list, watch-driven waits, pods, uncordon, the
//! node's Events and NVSentinel's circuit breaker.
//!
//! Shared by every backend that talks to a real cluster (`local` now, `kube` next). Waits and
//! progress come from [`super::node_watch`], which follows these nodes with one watch.

use super::{
    BackendError, BackendResult, BreakerStatus, ClusterEvent, EventKind, KubeEventInfo,
    LabelSelector, NodeCondition, NodeInfo, PodInfo, Taint, keys,
};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The facts a script sees about a node.
pub fn node_info(n: &Node) -> NodeInfo {
    let meta = &n.metadata;
    let spec = n.spec.as_ref();
    let status = n.status.as_ref();
    let conditions: Vec<NodeCondition> = status
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| NodeCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                    last_transition: c
                        .last_transition_time
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let ready = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    NodeInfo {
        name: meta.name.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .map(|ts| {
                ts.iter()
                    .map(|t| Taint {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        conditions,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        ready,
        boot_id: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.boot_id.clone())
            .unwrap_or_default(),
    }
}

/// The facts a script sees about a pod.
pub fn pod_info(p: &Pod) -> PodInfo {
    PodInfo {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        phase: p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        owner: p.metadata.owner_references.as_ref().and_then(|os| {
            os.iter()
                .find(|o| o.controller == Some(true))
                .or_else(|| os.first())
                .map(|o| o.kind.clone())
        }),
        terminating: p.metadata.deletion_timestamp.is_some(),
    }
}

/// What changed between two observations of a node, as the events the progress display and
/// the run journal record. Messages leave the node's name to the display.
pub fn changes(old: &NodeInfo, new: &NodeInfo) -> Vec<ClusterEvent> {
    let n = &new.name;
    let mut out = Vec::new();
    if !old.unschedulable && new.unschedulable {
        let by = new
            .labels
            .get(keys::CORDON_BY)
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        out.push(ClusterEvent::new(
            n,
            EventKind::Cordoned,
            format!("cordoned{by}"),
        ));
    }
    if old.unschedulable && !new.unschedulable {
        out.push(ClusterEvent::new(n, EventKind::Uncordoned, "uncordoned"));
    }
    if old.state() != new.state() {
        out.push(ClusterEvent::new(
            n,
            EventKind::State,
            format!(
                "{}: {} -> {}",
                keys::STATE,
                old.state().unwrap_or("<none>"),
                new.state().unwrap_or("<none>")
            ),
        ));
    }
    for c in &new.conditions {
        let before = old.condition(&c.type_);
        // A new entry in the XID condition's message is news too: another XID on a node
        // already held (the real-fault tripwire reads the entries).
        let changed = before.is_none_or(|b| {
            b.status != c.status || (c.type_ == keys::COND_XID && b.message != c.message)
        });
        if changed && c.type_ != "Ready" {
            let mut e = ClusterEvent::new(
                n,
                EventKind::Condition,
                format!("condition {}={} ({})", c.type_, c.status, c.reason),
            );
            e.detail = json!({ "type": c.type_, "status": c.status, "reason": c.reason, "message": c.message });
            out.push(e);
        }
    }
    if old.ready != new.ready {
        out.push(ClusterEvent::new(
            n,
            EventKind::Ready,
            if new.ready { "Ready" } else { "NotReady" },
        ));
    }
    if !old.boot_id.is_empty() && !new.boot_id.is_empty() && old.boot_id != new.boot_id {
        out.push(ClusterEvent::new(
            n,
            EventKind::Reboot,
            "rebooted (new boot id)",
        ));
    }
    out
}

/// "the Kubernetes API server at https://... (context c of F)", as errors name it; `server`
/// is empty for a client a caller built.
pub fn api_server(server: &str) -> String {
    if server.is_empty() {
        "the Kubernetes API server".into()
    } else {
        format!("the Kubernetes API server at {server}")
    }
}

/// The API server's answer as a [`BackendError`] of the right kind. `server`: which API
/// server, as [`super::kube_connect::KubeTarget::description`] says; `needs`: the RBAC rule a
/// 403 means is missing.
pub fn api_error_needing(
    server: &str,
    node: Option<&str>,
    what: &str,
    needs: &str,
    e: kube::Error,
) -> BackendError {
    let node = node.map(str::to_string);
    let what = what.to_string();
    let target = api_server(server);
    match e {
        kube::Error::Api(s) if s.code == 401 => BackendError::Unauthorized {
            node,
            what,
            target,
            reason: s.message.clone(),
        },
        kube::Error::Api(s) if s.code == 403 => BackendError::Forbidden {
            node,
            what,
            reason: s.message.clone(),
            needs: needs.to_string(),
        },
        kube::Error::Api(s) if s.code == 429 => BackendError::Throttled {
            node,
            what,
            reason: s.message.clone(),
            // The API server says how long in the Status (`details.retryAfterSeconds`);
            // 0 means it did not say.
            retry_after: s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s.into())),
        },
        kube::Error::Api(s) => BackendError::Failed {
            node,
            what,
            reason: format!("{} ({})", s.message, s.code),
        },
        e @ (kube::Error::Service(_) | kube::Error::HyperError(_)) => BackendError::Unreachable {
            node,
            what,
            target,
            reason: error_chain(&e),
        },
        other => BackendError::Failed {
            node,
            what,
            reason: other.to_string(),
        },
    }
}

/// An error with its causes ("client error (Connect): tcp connect error: Connection refused"):
/// the cause is what a person acts on.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = String::new();
    for c in causes(e) {
        let t = c.to_string();
        if s.is_empty() {
            s = t;
        } else if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
    }
    s
}

/// An error and its causes, looking inside `io::Error`s too: their `source()` skips the error
/// they wrap (a TLS failure reaches the HTTP client as `io::Error`s, nested, around a
/// `rustls::Error`).
pub(crate) fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(c) = next {
        out.push(c);
        next = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    out.into_iter()
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

const BREAKER_CONFIGMAP: &str = "circuit-breaker";
/// Where gfi records its injections as Events: Node Events live in `default`.
pub const INJECTION_EVENT_NAMESPACE: &str = "default";
pub const INJECTION_EVENT_REASON: &str = "XidInjected";

/// Who recorded an Event: this host and process.
fn reporting_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{host}/{}", std::process::id())
}

/// An Event's time: the latest the API gives: the last occurrence, the event time of a
/// new-style Event, the first occurrence, or its creation.
fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// An Event as scripts see it, at [`event_time`].
pub fn event_info(e: &Event) -> KubeEventInfo {
    let time = event_time(e).map(|t| t.to_string()).unwrap_or_default();
    let source = e
        .source
        .as_ref()
        .and_then(|s| s.component.clone())
        .filter(|c| !c.is_empty())
        .or_else(|| e.reporting_component.clone())
        .unwrap_or_default();
    KubeEventInfo {
        namespace: e.metadata.namespace.clone().unwrap_or_default(),
        type_: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
        source,
        time,
        count: e.count.unwrap_or(1).max(1) as u32,
    }
}

/// Node operations over one API client.
#[derive(Clone)]
pub struct KubeNodes {
    client: Client,
    server: Arc<str>,
}

impl KubeNodes {
    /// `server`: the API server as error messages name it.
    pub fn new(client: Client, server: &str) -> Self {
        KubeNodes {
            client,
            server: server.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API server as error messages name it.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// An API error of a call on nodes or pods.
    fn api_error(&self, node: Option<&str>, what: &str, e: kube::Error) -> BackendError {
        self.api_error_needing(
            node,
            what,
            "get, list, watch and patch on nodes and list on pods",
            e,
        )
    }

    pub fn api_error_needing(
        &self,
        node: Option<&str>,
        what: &str,
        needs: &str,
        e: kube::Error,
    ) -> BackendError {
        api_error_needing(&self.server, node, what, needs, e)
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    async fn not_found(&self, name: &str) -> BackendError {
        let known: Vec<String> = match self.nodes().list(&ListParams::default()).await {
            Ok(l) => l
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        BackendError::node_not_found(name, &known)
    }

    pub async fn list(&self, selector: Option<&LabelSelector>) -> BackendResult<Vec<NodeInfo>> {
        let mut lp = ListParams::default();
        let sel = selector.map(|s| s.to_string()).unwrap_or_default();
        if !sel.is_empty() {
            lp = lp.labels(&sel);
        }
        let list = self
            .nodes()
            .list(&lp)
            .await
            .map_err(|e| self.api_error(None, "listing nodes", e))?;
        let mut out: Vec<NodeInfo> = list
            .items
            .iter()
            .map(node_info)
            .filter(|n| selector.is_none_or(|s| s.matches(&n.labels)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn get(&self, name: &str) -> BackendResult<NodeInfo> {
        match self.nodes().get(name).await {
            Ok(n) => Ok(node_info(&n)),
            Err(e) if is_not_found(&e) => Err(self.not_found(name).await),
            Err(e) => Err(self.api_error(Some(name), "reading the node", e)),
        }
    }

    pub async fn pods(&self, node: &str) -> BackendResult<Vec<PodInfo>> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let list = pods
            .list(&lp)
            .await
            .map_err(|e| self.api_error(Some(node), "listing pods", e))?;
        if list.items.is_empty() {
            // No pods, or no such node: say which, as `node_info` does.
            self.get(node).await?;
        }
        let mut out: Vec<PodInfo> = list.items.iter().map(pod_info).collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }

    /// The node's Events (all namespaces: NVSentinel records non-fatal XIDs in `default`),
    /// oldest first.
    pub async fn events(&self, node: &str) -> BackendResult<Vec<KubeEventInfo>> {
        let events: Api<Event> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!(
            "involvedObject.kind=Node,involvedObject.name={node}"
        ));
        let list = events.list(&lp).await.map_err(|e| {
            self.api_error_needing(Some(node), "listing Events", "list on events", e)
        })?;
        if list.items.is_empty() {
            // No Events, or no such node: say which, as `node_info` does.
            self.get(node).await?;
        }
        let mut items = list.items;
        // As times, not as text: "…:35.5Z" sorts before "…:35Z" of the same second as text.
        items.sort_by_key(event_time);
        Ok(items.iter().map(event_info).collect())
    }

    /// NVSentinel's circuit breaker: `data.status` of the ConfigMap `circuit-breaker` in its
    /// namespace. No ConfigMap means closed (deleting it is how an operator resets it).
    pub async fn circuit_breaker(&self, namespace: &str) -> BackendResult<BreakerStatus> {
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("reading ConfigMap {namespace}/{BREAKER_CONFIGMAP}");
        let cm = maps.get_opt(BREAKER_CONFIGMAP).await.map_err(|e| {
            self.api_error_needing(
                None,
                &what,
                "get on configmaps in NVSentinel's namespace",
                e,
            )
        })?;
        let status = match cm.as_ref().and_then(|c| c.data.as_ref()?.get("status")) {
            None => "CLOSED".to_string(),
            Some(s) => match s.trim().to_ascii_uppercase().as_str() {
                s @ ("CLOSED" | "TRIPPED") => s.to_string(),
                _ => {
                    return Err(BackendError::failed(
                        None,
                        &what,
                        format!("status is {s:?}; NVSentinel writes CLOSED or TRIPPED"),
                    ));
                }
            },
        };
        Ok(BreakerStatus {
            enabled: None,
            status,
            since: None,
        })
    }

    /// Records an injection as a Warning Event on the Node (reason `XidInjected`), so
    /// `kubectl describe node` shows who injected what. Node Events live in `default`, with
    /// the node's name as the involved object's uid, as the kubelet's do (that is what
    /// `kubectl describe node` looks up).
    pub async fn record_injection(
        &self,
        rec: &super::FaultRecord,
        provenance: &str,
    ) -> BackendResult<()> {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        let run = provenance.strip_prefix("gfi:").unwrap_or(provenance);
        let event = Event {
            metadata: kube::api::ObjectMeta {
                generate_name: Some(format!("{}.gfi-", rec.node)),
                namespace: Some(INJECTION_EVENT_NAMESPACE.into()),
                ..Default::default()
            },
            involved_object: k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(rec.node.clone()),
                uid: Some(rec.node.clone()),
                ..Default::default()
            },
            reason: Some(INJECTION_EVENT_REASON.into()),
            type_: Some("Warning".into()),
            message: Some(format!(
                "gfi injected XID {} on GPU {} (PCI {}, UUID {}): fault {}, run {run}",
                rec.xid,
                rec.gpu,
                rec.pci.sysfs(),
                if rec.uuid.is_empty() {
                    "unknown"
                } else {
                    &rec.uuid
                },
                rec.id
            )),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some("gfi".into()),
                host: Some(rec.node.clone()),
            }),
            reporting_component: Some("gfi".into()),
            reporting_instance: Some(reporting_instance()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), INJECTION_EVENT_NAMESPACE);
        events
            .create(&kube::api::PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(|e| {
                self.api_error_needing(
                    Some(&rec.node),
                    "recording the injection Event",
                    "create on events in namespace default",
                    e,
                )
            })
    }

    /// Undoes NVSentinel's quarantine marks on a node as an operator would (see
    /// [`super::heal`]): one merge patch, made against the version read, so a change in
    /// between is not overwritten (a conflict is read again and retried).
    pub async fn heal(&self, name: &str) -> BackendResult<super::HealReport> {
        for _ in 0..3 {
            let n = match self.nodes().get(name).await {
                Ok(n) => n,
                Err(e) if is_not_found(&e) => return Err(self.not_found(name).await),
                Err(e) => return Err(self.api_error(Some(name), "healing", e)),
            };
            let before = node_info(&n);
            let removed_labels: Vec<String> = super::heal::LABELS
                .iter()
                .filter(|k| before.labels.contains_key(**k))
                .map(|k| k.to_string())
                .collect();
            let removed_annotations: Vec<String> = super::heal::ANNOTATIONS
                .iter()
                .filter(|k| before.annotations.contains_key(**k))
                .map(|k| k.to_string())
                .collect();
            let applied = super::heal::applied_taints(&before.annotations);
            let removed_taints: Vec<super::Taint> = before
                .taints
                .iter()
                .filter(|t| applied.contains(t))
                .cloned()
                .collect();
            let mut patch = json!({
                "metadata": {"resourceVersion": n.metadata.resource_version},
                "spec": {"unschedulable": false},
            });
            for k in &removed_labels {
                patch["metadata"]["labels"][k] = serde_json::Value::Null;
            }
            for k in &removed_annotations {
                patch["metadata"]["annotations"][k] = serde_json::Value::Null;
            }
            if !removed_taints.is_empty() {
                let kept: Vec<&k8s_openapi::api::core::v1::Taint> = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .map(|ts| {
                        ts.iter()
                            .filter(|t| {
                                !removed_taints.iter().any(|r| {
                                    r.key == t.key && r.effect == t.effect && r.value == t.value
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                patch["spec"]["taints"] = serde_json::to_value(kept).unwrap_or_default();
            }
            match self
                .nodes()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(after) => {
                    return Ok(super::HealReport {
                        uncordoned: before.unschedulable,
                        removed_labels,
                        removed_annotations,
                        removed_taints,
                        left: super::heal::LEAVES.iter().map(|s| s.to_string()).collect(),
                        node: node_info(&after),
                    });
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(self.api_error(Some(name), "healing", e)),
            }
        }
        Err(BackendError::failed(
            Some(name),
            "healing",
            "the node kept changing under three attempts (409 Conflict); try again",
        ))
    }

    pub async fn uncordon(&self, name: &str) -> BackendResult<NodeInfo> {
        let patch = json!({ "spec": { "unschedulable": false } });
        match self
            .nodes()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(n) => Ok(node_info(&n)),
            Err(e) if is_not_found(&e) => Err(self.not_found(name).await),
            Err(e) => Err(self.api_error(Some(name), "uncordoning", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::NodePredicate;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn node_facts() {
        let n = node(json!({
            "metadata": {"name": "gpu-1", "labels": {keys::STATE: "draining"}},
            "spec": {"unschedulable": true, "taints": [{"key": "AggregatedNodeHealth", "value": "False", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": keys::COND_XID, "status": "True", "reason": keys::REASON_UNHEALTHY, "message": "ErrorCode:79 PCI:0000:18:00"}
                ],
                "nodeInfo": {"bootID": "b1", "architecture": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "operatingSystem": "", "osImage": "", "systemUUID": ""}
            }
        }));
        let i = node_info(&n);
        assert!(i.unschedulable && i.ready);
        assert_eq!(i.state(), Some("draining"));
        assert_eq!(i.boot_id, "b1");
        assert_eq!(i.taints[0].key, "AggregatedNodeHealth");
        assert!(
            NodePredicate::Condition {
                type_: keys::COND_XID.into(),
                status: "True".into()
            }
            .holds(&i)
        );
    }

    #[test]
    fn changes_name_each_stage() {
        let before = node_info(&node(
            json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        ));
        let mut after = before.clone();
        after.unschedulable = true;
        after
            .labels
            .insert(keys::CORDON_BY.into(), "NVSentinel".into());
        after
            .labels
            .insert(keys::STATE.into(), "quarantined".into());
        after.conditions.push(NodeCondition {
            type_: keys::COND_XID.into(),
            status: "True".into(),
            reason: keys::REASON_UNHEALTHY.into(),
            message: String::new(),
            last_transition: String::new(),
        });
        let kinds: Vec<_> = changes(&before, &after)
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [EventKind::Cordoned, EventKind::State, EventKind::Condition]
        );
        for e in changes(&before, &after) {
            assert!(!e.message.starts_with("n "), "{}", e.message);
        }
        assert!(changes(&after, &after).is_empty());
        let mut again = after.clone();
        for c in again
            .conditions
            .iter_mut()
            .filter(|c| c.type_ == keys::COND_XID)
        {
            c.message = "ErrorCode:79 NVRM: Xid (PCI:0000:3b:00): 79, ...".into();
        }
        let kinds: Vec<_> = changes(&after, &again)
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, [EventKind::Condition]);
    }

    #[test]
    fn api_errors_keep_their_kind() {
        let status = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: format!("said {code}"),
                ..Default::default()
            }))
        };
        let e = api_error_needing("S", Some("n"), "reading", "get on nodes", status(403));
        assert!(matches!(&e, BackendError::Forbidden { needs, .. } if needs == "get on nodes"));
        assert_eq!(
            e.to_string(),
            "node n: reading failed: forbidden: said 403 (grant get on nodes; the roles gfi needs are in deploy/base/rbac.yaml)"
        );
        let e = api_error_needing("S", None, "listing nodes", "list", status(401));
        assert!(matches!(e, BackendError::Unauthorized { .. }), "{e}");
        let e = api_error_needing("S", None, "listing nodes", "list", status(429));
        assert!(matches!(e, BackendError::Throttled { .. }), "{e}");
        let e = api_error_needing("S", None, "listing nodes", "list", status(500));
        assert!(matches!(e, BackendError::Failed { .. }), "{e}");
    }

    #[test]
    fn pod_facts() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "w", "namespace": "dynamo", "deletionTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "w", "uid": "u", "controller": true}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let i = pod_info(&p);
        assert_eq!(
            (i.owner.as_deref(), i.terminating, i.phase.as_str()),
            (Some("ReplicaSet"), true, "Running")
        );
    }
}
