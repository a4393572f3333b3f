//! The waits on one node, each tested against every version of the node as it is written,
//! not against whatever the node is when the waiting task next runs. A state that lasts no
//! time (NVSentinel writes `remediating`, creates the RebootNode, then writes
//! `remediation-succeeded`) is two versions on the API server and two watch events; a wait
//! woken through a channel that keeps only the latest value would see the second and miss the
//! first, on the sim and on a real cluster alike.

use super::{BackendResult, NodeInfo, NodePredicate, NodeView};
use std::time::Duration;
use tokio::sync::oneshot;

/// A wait after its first test: answered by the current version, or registered.
pub(crate) type Tested = Result<NodeInfo, oneshot::Receiver<NodeInfo>>;

/// Whether the wait was satisfied, and by which version; at the timeout, the node's latest
/// facts from `latest` (a future: only read when needed).
pub(crate) async fn settle(
    tested: Tested,
    timeout: Duration,
    latest: impl Future<Output = BackendResult<NodeInfo>>,
) -> BackendResult<(bool, NodeInfo)> {
    match tested {
        Ok(now) => Ok((true, now)),
        Err(rx) => match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(version)) => Ok((true, version)),
            // Timed out. (The sender cannot go first: the waiters live as long as the node's
            // record, in the sim's state or the watch's.)
            _ => Ok((false, latest.await?)),
        },
    }
}

#[derive(Debug, Default)]
pub(crate) struct NodeWaiters {
    waiting: Vec<(NodePredicate, oneshot::Sender<NodeInfo>)>,
}

impl NodeWaiters {
    /// Registers a wait; the receiver gets the first version for which `predicate` holds. The
    /// caller tests the current version itself, under the same lock, before registering.
    pub(crate) fn add(&mut self, predicate: NodePredicate) -> oneshot::Receiver<NodeInfo> {
        // Waits that gave up (timed out, or their run stopped) leave here.
        self.waiting.retain(|(_, tx)| !tx.is_closed());
        let (tx, rx) = oneshot::channel();
        self.waiting.push((predicate, tx));
        rx
    }

    /// Hands a new version of the node to the waits it satisfies; `answer` copies it, once,
    /// only when one does.
    pub(crate) fn offer<V: NodeView>(&mut self, node: &V, answer: impl FnOnce(&V) -> NodeInfo) {
        if self.waiting.is_empty() {
            return;
        }
        let mut copy: Option<NodeInfo> = None;
        let mut answer = Some(answer);
        let mut i = 0;
        while i < self.waiting.len() {
            let (predicate, tx) = &self.waiting[i];
            if tx.is_closed() || predicate.holds(node) {
                let (_, tx) = self.waiting.swap_remove(i);
                if !tx.is_closed() {
                    if copy.is_none() {
                        copy = answer.take().map(|f| f(node));
                    }
                    if let Some(info) = &copy {
                        let _ = tx.send(info.clone());
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(state: Option<&str>, cordoned: bool) -> NodeInfo {
        let mut n = NodeInfo {
            name: "n".into(),
            unschedulable: cordoned,
            ready: true,
            ..Default::default()
        };
        if let Some(s) = state {
            n.labels
                .insert(crate::backend::keys::STATE.into(), s.into());
        }
        n
    }

    fn state(s: &str) -> NodePredicate {
        NodePredicate::State {
            value: Some(s.into()),
        }
    }

    #[test]
    fn every_version_is_tested_even_one_that_is_gone_at_once() {
        let mut w = NodeWaiters::default();
        let mut remediating = w.add(state("remediating"));
        let mut succeeded = w.add(state("remediation-succeeded"));
        let mut cordoned = w.add(NodePredicate::Cordoned);
        let copies = std::cell::Cell::new(0);
        let copy = |n: &NodeInfo| {
            copies.set(copies.get() + 1);
            n.clone()
        };
        w.offer(&node(Some("remediating"), true), copy);
        w.offer(&node(Some("remediation-succeeded"), true), copy);
        let got = remediating.try_recv().unwrap();
        assert_eq!(
            got.labels[crate::backend::keys::STATE],
            "remediating",
            "the first version, not the latest"
        );
        assert!(got.unschedulable);
        assert_eq!(
            cordoned.try_recv().unwrap().labels[crate::backend::keys::STATE],
            "remediating"
        );
        assert_eq!(
            succeeded.try_recv().unwrap().labels[crate::backend::keys::STATE],
            "remediation-succeeded"
        );
        // One copy per version that satisfied a wait, however many it satisfied.
        assert_eq!(copies.get(), 2);
        assert!(w.is_empty());
    }

    #[test]
    fn waits_that_gave_up_are_dropped_and_others_kept() {
        let mut w = NodeWaiters::default();
        drop(w.add(state("draining")));
        let mut kept = w.add(NodePredicate::Uncordoned);
        w.offer(&node(Some("draining"), true), |n: &NodeInfo| {
            panic!("no wait is left for this version: {n:?}")
        });
        assert!(kept.try_recv().is_err());
        assert!(!w.is_empty());
        w.offer(&node(None, false), NodeInfo::clone);
        assert!(!kept.try_recv().unwrap().unschedulable);
        assert!(w.is_empty());
    }
}
