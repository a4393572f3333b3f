//! One watch over the cluster's nodes for a real-cluster backend: it publishes what changes on
//! the nodes a run has targeted (so progress shows NVSentinel's stages between waits too) and
//! answers every wait from the same stream (waits never poll, and never open watches of their
//! own).
//!
//! The watcher (kube-runtime's, which re-lists after a `410 Gone` and backs off on errors)
//! starts when the first node is targeted and keeps the last facts of every node it has seen,
//! so a node targeted later is compared with what it was, not with nothing. For each change,
//! the events are published first and the node's new facts handed to waiters after, so a wait
//! that returns has its stages in the journal already.

use super::kube_nodes::{KubeNodes, changes, node_info};
use super::node_waiters::{NodeWaiters, settle};
use super::{BackendResult, EventHub, NodeInfo, NodePredicate, WaitOutcome};
use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    targets: BTreeSet<String>,
    /// Last facts of every node seen, targeted or not.
    last: HashMap<String, NodeInfo>,
    /// The waits on each node, tested against every version the watch delivers.
    waiters: HashMap<String, NodeWaiters>,
}

struct Shared {
    hub: Arc<EventHub>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, node: NodeInfo) {
        let events = {
            let mut st = self.lock();
            let targeted = st.targets.contains(&node.name);
            let old = st.last.insert(node.name.clone(), node.clone());
            match (&old, targeted) {
                (Some(old), true) => changes(old, &node),
                _ => Vec::new(),
            }
        };
        for e in events {
            self.hub.publish(e);
        }
        // After the events, so a wait that returns has its stages in the journal already.
        if let Some(w) = self.lock().waiters.get_mut(&node.name) {
            w.offer(&node, NodeInfo::clone);
        }
    }
}

pub struct NodeWatch {
    kube: KubeNodes,
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for NodeWatch {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

impl NodeWatch {
    pub fn new(kube: KubeNodes, hub: Arc<EventHub>) -> NodeWatch {
        NodeWatch {
            kube,
            shared: Arc::new(Shared {
                hub,
                state: Mutex::new(State::default()),
            }),
            task: Mutex::new(None),
        }
    }

    /// From now on, changes of `node` are published. `seen`: facts just read, the baseline
    /// when the watch has not seen the node yet.
    pub fn target(&self, node: &str, seen: Option<&NodeInfo>) {
        {
            let mut st = self.shared.lock();
            st.targets.insert(node.to_string());
            if let Some(seen) = seen {
                st.last
                    .entry(node.to_string())
                    .or_insert_with(|| seen.clone());
            }
        }
        self.start();
    }

    fn start(&self) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let api = self.kube.nodes();
        let handle = tokio::spawn(async move {
            let mut stream = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Event::Apply(n) | Event::InitApply(n)) => shared.apply(node_info(&n)),
                    // A rebooting node may leave the API and come back: keep its last facts.
                    Ok(Event::Delete(n)) => {
                        tracing::warn!(node = ?n.metadata.name, "node deleted from the API")
                    }
                    Ok(Event::Init | Event::InitDone) => {}
                    Err(e) => tracing::warn!("node watch error (retrying): {e}"),
                }
            }
        });
        *task = Some(handle.abort_handle());
    }

    /// The node's latest facts: the watch's, else read now (a node that does not exist is an
    /// error here). The node is targeted from now on.
    pub async fn facts(&self, node: &str) -> BackendResult<NodeInfo> {
        let known = self.shared.lock().last.get(node).cloned();
        let first = match known {
            Some(n) => n,
            None => self.kube.get(node).await?,
        };
        self.target(node, Some(&first));
        Ok(first)
    }

    /// Waits until `predicate` holds for `node`, or `timeout` passes, following the watch.
    pub async fn wait(
        &self,
        node: &str,
        predicate: &NodePredicate,
        timeout: Duration,
    ) -> BackendResult<WaitOutcome> {
        let started = Instant::now();
        let first = self.facts(node).await?;
        let answer = {
            let mut st = self.shared.lock();
            let current = st.last.get(node).cloned().unwrap_or(first);
            if predicate.holds(&current) {
                Ok(current)
            } else {
                Err(st
                    .waiters
                    .entry(node.to_string())
                    .or_default()
                    .add(predicate.clone()))
            }
        };
        let (satisfied, node) = settle(answer, timeout, self.facts(node)).await?;
        Ok(WaitOutcome {
            satisfied,
            node,
            elapsed: started.elapsed(),
        })
    }
}
