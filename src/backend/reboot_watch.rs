//! NVSentinel's RebootNodes (`janitor.dgxc.nvidia.com/v1alpha1`, cluster-scoped), from one
//! watch started by the first `wait_remediation`: every wait is answered from its state and
//! woken by its changes, never by polling. RebootNodes cannot be filtered by `spec.nodeName`
//! on the server (a custom resource has only the `metadata` field selectors), so the watch
//! takes them all and the wait picks the node's.

use super::kube_nodes::api_error_needing;
use super::{BackendError, BackendResult, CrConditionInfo, MaintenanceInfo};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub fn rebootnodes() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("janitor.dgxc.nvidia.com", "v1alpha1", "RebootNode"),
        "rebootnodes",
    )
}

/// A RebootNode as plain data (its `status.conditions` as the janitor writes them).
pub fn maintenance_info(o: &DynamicObject) -> Option<MaintenanceInfo> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let status = &o.data["status"];
    Some(MaintenanceInfo {
        kind: "RebootNode".into(),
        name: o.metadata.name.clone()?,
        node: text(&o.data["spec"]["nodeName"])?,
        created: o
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        start_time: text(&status["startTime"]),
        completion_time: text(&status["completionTime"]),
        conditions: status["conditions"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| CrConditionInfo {
                        type_: text(&c["type"]).unwrap_or_default(),
                        status: text(&c["status"]).unwrap_or_default(),
                        reason: text(&c["reason"]).unwrap_or_default(),
                        message: text(&c["message"]).unwrap_or_default(),
                        time: text(&c["lastTransitionTime"]).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[derive(Clone, PartialEq)]
enum Listing {
    Waiting,
    Listed,
    Refused(String),
}

pub struct RebootWatch {
    api: Api<DynamicObject>,
    server: String,
    crs: Arc<Mutex<HashMap<String, MaintenanceInfo>>>,
    /// Bumped on every change; waits wake on it.
    changed: watch::Sender<u64>,
    listing: watch::Sender<Listing>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for RebootWatch {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

impl RebootWatch {
    pub fn new(client: kube::Client, server: &str) -> RebootWatch {
        RebootWatch {
            api: Api::all_with(client, &rebootnodes()),
            server: server.to_string(),
            crs: Arc::default(),
            changed: watch::channel(0).0,
            listing: watch::channel(Listing::Waiting).0,
            task: Mutex::new(None),
        }
    }

    fn start(&self) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.is_some() {
            return;
        }
        let (crs, changed, listing) =
            (self.crs.clone(), self.changed.clone(), self.listing.clone());
        let mut stream = watcher::watcher(self.api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        let handle = tokio::spawn(async move {
            let mut fresh: Option<HashMap<String, MaintenanceInfo>> = None;
            while let Some(item) = stream.next().await {
                let mut touched = true;
                match item {
                    Ok(Event::Init) => {
                        fresh = Some(HashMap::new());
                        touched = false;
                    }
                    Ok(Event::InitApply(o)) => {
                        if let (Some(f), Some(m)) = (fresh.as_mut(), maintenance_info(&o)) {
                            f.insert(m.name.clone(), m);
                        }
                        touched = false;
                    }
                    Ok(Event::InitDone) => {
                        *crs.lock().unwrap_or_else(|e| e.into_inner()) =
                            fresh.take().unwrap_or_default();
                        listing.send_replace(Listing::Listed);
                    }
                    Ok(Event::Apply(o)) => {
                        if let Some(m) = maintenance_info(&o) {
                            crs.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(m.name.clone(), m);
                        }
                    }
                    Ok(Event::Delete(o)) => {
                        if let Some(n) = &o.metadata.name {
                            crs.lock().unwrap_or_else(|e| e.into_inner()).remove(n);
                        }
                    }
                    Err(e) => {
                        touched = false;
                        tracing::warn!("RebootNode watch error (retrying): {e}");
                        if let watcher::Error::InitialListFailed(kube::Error::Api(s)) = &e
                            && *listing.borrow() == Listing::Waiting
                        {
                            listing.send_replace(Listing::Refused(format!(
                                "{} ({})",
                                s.message, s.code
                            )));
                        }
                    }
                }
                if touched {
                    changed.send_modify(|v| *v += 1);
                }
            }
        });
        *task = Some(handle.abort_handle());
    }

    /// Waits until `done` holds for the node's RebootNodes (newest first), or `timeout`
    /// passes; returns whether it held and the newest one `pick` chose.
    pub async fn wait(
        &self,
        node: &str,
        timeout: Duration,
        pick: impl Fn(&[MaintenanceInfo]) -> Option<MaintenanceInfo>,
        done: impl Fn(&MaintenanceInfo) -> bool,
    ) -> BackendResult<(bool, Option<MaintenanceInfo>)> {
        self.start();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut listing = self.listing.subscribe();
        let listed =
            tokio::time::timeout_at(deadline, listing.wait_for(|l| *l != Listing::Waiting))
                .await
                .map(|r| r.map(|l| l.clone()));
        match listed {
            Ok(Ok(Listing::Listed)) => {}
            Ok(Ok(Listing::Refused(why))) => {
                return Err(BackendError::Forbidden {
                    node: Some(node.to_string()),
                    what: "watching RebootNodes".into(),
                    reason: why,
                    needs: "get, list and watch on rebootnodes.janitor.dgxc.nvidia.com (and NVSentinel's janitor CRDs installed)".into(),
                });
            }
            _ => {
                return Err(api_error_needing(
                    &self.server,
                    Some(node),
                    "watching RebootNodes",
                    "list and watch on rebootnodes.janitor.dgxc.nvidia.com",
                    kube::Error::Service("no list of RebootNodes before the deadline".into()),
                ));
            }
        }
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            let mut mine: Vec<MaintenanceInfo> = self
                .crs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .filter(|m| m.node == node)
                .cloned()
                .collect();
            // RFC 3339 times of the API server's one clock: text order is time order only
            // for one precision, so compare as times.
            mine.sort_by_key(|m| {
                std::cmp::Reverse(m.created.parse::<k8s_openapi::jiff::Timestamp>().ok())
            });
            let chosen = pick(&mine);
            if chosen.as_ref().is_some_and(&done) {
                return Ok((true, chosen));
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Ok((false, chosen));
            }
        }
    }
}
