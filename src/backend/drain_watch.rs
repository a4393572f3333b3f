//! `wait_drained` on a real cluster: one watch of the node's pods (`spec.nodeName=<node>`,
//! every namespace) for the length of the wait. Done when no pod of a drained namespace is
//! left: the namespaces named, or else every namespace but node-drainer's system ones, and
//! never a DaemonSet's pod (node-drainer skips those). A pod that is terminating is still
//! there: it is gone when the API server deletes it.

use super::kube_nodes::{KubeNodes, pod_info};
use super::{
    BackendError, BackendResult, DrainOutcome, DrainScope, PodGone, PodInfo, WaitSince, keys,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::BTreeMap;
use std::time::Duration;

fn drained(scope: &DrainScope, system: &regex::Regex, p: &PodInfo) -> bool {
    if p.owner.as_deref() == Some("DaemonSet") {
        return false;
    }
    match &scope.namespaces {
        Some(list) => list.contains(&p.namespace),
        None => !system.is_match(&p.namespace),
    }
}

pub async fn wait_drained(
    nodes: &KubeNodes,
    node: &str,
    scope: &DrainScope,
    window: &WaitSince,
    timeout: Duration,
) -> BackendResult<DrainOutcome> {
    let _ = window; // a watch sees the pods that leave from now on; earlier ones are gone
    let system = regex::Regex::new(keys::SYSTEM_NAMESPACES).expect("static regex");
    let api: Api<Pod> = Api::all(nodes.client().clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pods: BTreeMap<(String, String), PodInfo> = BTreeMap::new();
    let mut fresh: Option<BTreeMap<(String, String), PodInfo>> = None;
    let mut listed = false;
    let mut evicted: Vec<PodGone> = Vec::new();
    let now = || k8s_openapi::jiff::Timestamp::now().to_string();
    loop {
        if listed {
            let remaining: Vec<PodInfo> = pods
                .values()
                .filter(|p| drained(scope, &system, p))
                .cloned()
                .collect();
            if remaining.is_empty() {
                return Ok(DrainOutcome {
                    satisfied: true,
                    evicted,
                    remaining,
                });
            }
        }
        let item = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => item,
            Ok(None) | Err(_) => {
                if !listed {
                    return Err(BackendError::Unreachable {
                        node: Some(node.to_string()),
                        what: "waiting for a drain".into(),
                        target: super::kube_nodes::api_server(nodes.server()),
                        reason: "no list of the node's pods before the deadline".into(),
                    });
                }
                let remaining = pods
                    .values()
                    .filter(|p| drained(scope, &system, p))
                    .cloned()
                    .collect();
                return Ok(DrainOutcome {
                    satisfied: false,
                    evicted,
                    remaining,
                });
            }
        };
        let key = |p: &Pod| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        };
        match item {
            Ok(Event::Init) => fresh = Some(BTreeMap::new()),
            Ok(Event::InitApply(p)) => {
                if let Some(f) = fresh.as_mut() {
                    f.insert(key(&p), pod_info(&p));
                }
            }
            Ok(Event::InitDone) => {
                let new = fresh.take().unwrap_or_default();
                // Pods gone while the watch was re-listing left too.
                if listed {
                    for (k, p) in &pods {
                        if !new.contains_key(k) && drained(scope, &system, p) {
                            evicted.push(PodGone {
                                namespace: p.namespace.clone(),
                                name: p.name.clone(),
                                how: "gone".into(),
                                time: now(),
                            });
                        }
                    }
                }
                pods = new;
                listed = true;
            }
            Ok(Event::Apply(p)) => {
                pods.insert(key(&p), pod_info(&p));
            }
            Ok(Event::Delete(p)) => {
                if let Some(info) = pods.remove(&key(&p))
                    && drained(scope, &system, &info)
                {
                    evicted.push(PodGone {
                        namespace: info.namespace,
                        name: info.name,
                        how: "gone".into(),
                        time: now(),
                    });
                }
            }
            Err(watcher::Error::InitialListFailed(e)) if !listed => {
                if let kube::Error::Api(s) = &e
                    && matches!(s.code, 401 | 403)
                {
                    return Err(nodes.api_error_needing(
                        Some(node),
                        "waiting for a drain",
                        "list and watch on pods",
                        e,
                    ));
                }
                tracing::warn!("pod watch error (retrying): {e}");
            }
            Err(e) => tracing::warn!("pod watch error (retrying): {e}"),
        }
    }
}
