//! The pods of one kind (a namespace and a label selector: the gfi agents, NVSentinel's
//! syslog monitors), by node, from one watch. An injection asks which agent serves a node and
//! whether the monitor there is ready without an API request of its own: one watch for the
//! whole run, whatever the number of nodes.
//!
//! The watch starts on first use; a question asked before its first list waits for that list
//! (up to [`SYNC_TIMEOUT`]). A list the API server refuses (403: the role lacks `list` or
//! `watch` on pods there) is answered as that error, not as "no pod".

use super::kube_nodes::api_error_needing;
use super::{BackendError, BackendResult};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a question waits for the watch's first list.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// One pod as the backend needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    pub name: String,
    pub node: String,
    /// `Pending`, `Running`, ...
    pub phase: String,
    /// Condition `Ready` is `True`.
    pub ready: bool,
    /// When `Ready` last changed, as the API server recorded it.
    pub ready_since: Option<Timestamp>,
    pub ip: Option<String>,
    pub deleting: bool,
}

impl PodFacts {
    fn of(p: &Pod) -> Option<PodFacts> {
        let status = p.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        Some(PodFacts {
            name: p.metadata.name.clone()?,
            node: p.spec.as_ref()?.node_name.clone()?,
            phase: status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into()),
            ready: ready.is_some_and(|c| c.status == "True"),
            ready_since: ready.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0)),
            ip: status
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty()),
            deleting: p.metadata.deletion_timestamp.is_some(),
        })
    }

    /// "gfi-agent-x (Running, not Ready)".
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({}", self.name, self.phase);
        if self.deleting {
            s.push_str(", terminating");
        } else if !self.ready {
            s.push_str(", not Ready");
        }
        s.push(')');
        s
    }
}

#[derive(Clone, PartialEq)]
enum Listing {
    Waiting,
    Listed,
    /// The watch cannot list: the API server's answer.
    Refused(String),
}

#[derive(Default)]
struct State {
    /// By pod name (one namespace).
    pods: HashMap<String, PodFacts>,
}

pub struct PodsByNode {
    api: Api<Pod>,
    server: String,
    namespace: String,
    selector: String,
    state: Arc<Mutex<State>>,
    sync: watch::Sender<Listing>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    last_error: Arc<Mutex<Option<kube::Error>>>,
}

impl Drop for PodsByNode {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

impl PodsByNode {
    /// The pods of `namespace` matching `selector` (label selector syntax). `server`: the API
    /// server as error messages name it.
    pub fn new(client: kube::Client, server: &str, namespace: &str, selector: &str) -> Self {
        PodsByNode {
            api: Api::namespaced(client, namespace),
            server: server.to_string(),
            namespace: namespace.to_string(),
            selector: selector.to_string(),
            state: Arc::default(),
            sync: watch::channel(Listing::Waiting).0,
            task: Mutex::new(None),
            last_error: Arc::default(),
        }
    }

    fn start(&self) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.is_some() {
            return;
        }
        let state = self.state.clone();
        let sync = self.sync.clone();
        let last_error = self.last_error.clone();
        let cfg = watcher::Config::default().labels(&self.selector);
        let mut stream = watcher::watcher(self.api.clone(), cfg)
            .default_backoff()
            .boxed();
        let handle = tokio::spawn(async move {
            let mut fresh: Option<HashMap<String, PodFacts>> = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Event::Init) => fresh = Some(HashMap::new()),
                    Ok(Event::InitApply(p)) => {
                        if let (Some(f), Some(facts)) = (fresh.as_mut(), PodFacts::of(&p)) {
                            f.insert(facts.name.clone(), facts);
                        }
                    }
                    Ok(Event::InitDone) => {
                        // A re-list (after 410 Gone) replaces what was known: pods deleted
                        // while the watch was down are gone.
                        state.lock().unwrap_or_else(|e| e.into_inner()).pods =
                            fresh.take().unwrap_or_default();
                        sync.send_replace(Listing::Listed);
                    }
                    Ok(Event::Apply(p)) => {
                        if let Some(facts) = PodFacts::of(&p) {
                            state
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .pods
                                .insert(facts.name.clone(), facts);
                        }
                    }
                    Ok(Event::Delete(p)) => {
                        if let Some(n) = &p.metadata.name {
                            state
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .pods
                                .remove(n);
                        }
                    }
                    Err(e) => {
                        tracing::warn!("pod watch error (retrying): {e}");
                        let refused = match &e {
                            watcher::Error::InitialListFailed(k)
                            | watcher::Error::WatchStartFailed(k)
                            | watcher::Error::WatchFailed(k) => match k {
                                kube::Error::Api(s) if matches!(s.code, 401 | 403 | 404) => Some(k),
                                _ => None,
                            },
                            _ => None,
                        };
                        if let Some(k) = refused {
                            *last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(clone_api_error(k));
                            if *sync.borrow() == Listing::Waiting {
                                sync.send_replace(Listing::Refused(k.to_string()));
                            }
                        }
                    }
                }
            }
        });
        *task = Some(handle.abort_handle());
    }

    /// The pods on `node`, once the watch has listed them.
    pub async fn on_node(&self, node: &str) -> BackendResult<Vec<PodFacts>> {
        self.start();
        let mut rx = self.sync.subscribe();
        let what = format!(
            "finding pods {} in namespace {}",
            self.selector, self.namespace
        );
        let synced =
            tokio::time::timeout(SYNC_TIMEOUT, rx.wait_for(|s| *s != Listing::Waiting)).await;
        let synced = synced.map(|r| r.map(|s| s.clone()));
        match synced {
            Ok(Ok(Listing::Listed)) => {}
            Ok(Ok(Listing::Refused(_))) => {
                let err = self
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(clone_api_error);
                return Err(match err {
                    Some(e) => api_error_needing(
                        &self.server,
                        Some(node),
                        &what,
                        &format!("list and watch on pods in namespace {}", self.namespace),
                        e,
                    ),
                    None => BackendError::failed(Some(node), what, "the pod watch was refused"),
                });
            }
            _ => {
                return Err(BackendError::Unreachable {
                    node: Some(node.to_string()),
                    what,
                    target: super::kube_nodes::api_server(&self.server),
                    reason: format!(
                        "no pod list within {}",
                        crate::duration::format(SYNC_TIMEOUT)
                    ),
                });
            }
        }
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut pods: Vec<PodFacts> = st
            .pods
            .values()
            .filter(|p| p.node == node)
            .cloned()
            .collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pods)
    }
}

fn clone_api_error(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(s) => kube::Error::Api(s.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_facts_read_readiness_and_the_ip() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a-1", "namespace": "ns"},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "podIP": "10.0.0.5",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        let f = PodFacts::of(&p).unwrap();
        assert_eq!(
            (f.ready, f.ip.as_deref(), f.describe().as_str()),
            (false, Some("10.0.0.5"), "a-1 (Running, not Ready)")
        );
        assert_eq!(f.ready_since.unwrap().to_string(), "2026-01-01T00:00:00Z");
        let unscheduled: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a-2"}, "spec": {"containers": []}
        }))
        .unwrap();
        assert_eq!(PodFacts::of(&unscheduled), None);
    }
}
