//! Pools of sim nodes: which nodes a label selector picks, and which nodes are unavailable,
//! each kept as the nodes change rather than found by visiting every node. The guard's
//! `max_unavailable` asks for both before every injection; testing every node against the
//! selector made each ask cost as much as the cluster was large (652 us at 10,000 nodes), and
//! even reading every member's two flags was a walk over megabytes of nodes.
//!
//! A label can only be changed by handing the write to the [`Pools`], so a pool is recomputed
//! only after a write to a key its selector names, which the default pool
//! (`nvidia.com/gpu.present=true`) never sees in the sim. A node's availability is recorded
//! in [`Unavailable`] at each touch, the point where a change becomes a new version of the
//! node that waits and watchers see.

use crate::backend::LabelSelector;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Deref;
use std::sync::Mutex;

/// Read like the map it holds; written only through [`Labels::set`] and [`Labels::remove`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Labels(BTreeMap<String, String>);

impl Labels {
    pub(crate) fn new(map: BTreeMap<String, String>) -> Self {
        Labels(map)
    }

    pub(crate) fn set(&mut self, key: &str, value: String, pools: &mut Pools) {
        if self.0.get(key) != Some(&value) {
            pools.written(key);
            self.0.insert(key.to_string(), value);
        }
    }

    pub(crate) fn remove(&mut self, key: &str, pools: &mut Pools) -> Option<String> {
        let old = self.0.remove(key);
        if old.is_some() {
            pools.written(key);
        }
        old
    }
}

impl Deref for Labels {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// More selectors than a run uses (the guard's pool, a plan's selectors); past it the cache
/// starts over rather than grow without bound.
const MAX_POOLS: usize = 64;

/// The nodes each selector picked, and when each label key was last written. The sim's node
/// list is fixed at the start, so only label writes can change a pool.
#[derive(Debug, Default)]
pub(crate) struct Pools {
    writes: HashMap<String, u64>,
    pools: HashMap<String, Pool>,
}

#[derive(Debug)]
struct Pool {
    /// For each key the selector names, its write count when `members` was computed.
    seen: Vec<(String, u64)>,
    members: Vec<usize>,
}

impl Pools {
    fn written(&mut self, key: &str) {
        match self.writes.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.writes.insert(key.to_string(), 1);
            }
        }
    }

    fn writes_of(&self, key: &str) -> u64 {
        self.writes.get(key).copied().unwrap_or(0)
    }

    /// The indices of the nodes whose labels `selector` matches, in node order. `labels_of`
    /// reads node `i`'s labels; `count` is how many nodes there are.
    pub(crate) fn members<'a>(
        &mut self,
        selector: &LabelSelector,
        count: usize,
        labels_of: impl Fn(usize) -> &'a Labels,
    ) -> &[usize] {
        let name = selector.to_string();
        let fresh = self
            .pools
            .get(&name)
            .is_some_and(|p| p.seen.iter().all(|(k, n)| self.writes_of(k) == *n));
        if !fresh {
            if self.pools.len() >= MAX_POOLS {
                self.pools.clear();
            }
            let seen = selector
                .keys()
                .map(|k| (k.to_string(), self.writes_of(k)))
                .collect();
            let members = (0..count)
                .filter(|&i| selector.matches(labels_of(i)))
                .collect();
            self.pools.insert(name.clone(), Pool { seen, members });
        }
        &self.pools[&name].members
    }
}

/// The nodes that are cordoned or not Ready, by index; shared by every node of a sim, which
/// records itself at each touch.
#[derive(Debug, Default)]
pub(crate) struct Unavailable(Mutex<BTreeSet<usize>>);

impl Unavailable {
    pub(crate) fn record(&self, node: usize, unavailable: bool) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if unavailable {
            set.insert(node);
        } else {
            set.remove(&node);
        }
    }

    /// In index order.
    pub(crate) fn nodes(&self) -> Vec<usize> {
        let set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn members(pools: &mut Pools, sel: &str, nodes: &[Labels]) -> Vec<usize> {
        let sel = LabelSelector::parse(sel).unwrap();
        pools.members(&sel, nodes.len(), |i| &nodes[i]).to_vec()
    }

    #[test]
    fn a_pool_follows_writes_to_the_keys_its_selector_names() {
        let mut pools = Pools::default();
        let mut nodes = vec![
            node(&[("gpu", "true"), ("zone", "a")]),
            node(&[("gpu", "true"), ("zone", "b")]),
            node(&[("zone", "a")]),
        ];
        assert_eq!(members(&mut pools, "gpu=true", &nodes), [0, 1]);
        assert_eq!(members(&mut pools, "zone=a,gpu", &nodes), [0]);
        assert_eq!(members(&mut pools, "!gpu", &nodes), [2]);
        nodes[2].set("gpu", "true".into(), &mut pools);
        assert_eq!(members(&mut pools, "gpu=true", &nodes), [0, 1, 2]);
        assert_eq!(members(&mut pools, "zone=a,gpu", &nodes), [0, 2]);
        assert_eq!(members(&mut pools, "!gpu", &nodes), Vec::<usize>::new());
        nodes[0].set("zone", "b".into(), &mut pools);
        assert_eq!(members(&mut pools, "zone=a,gpu", &nodes), [2]);
        assert_eq!(nodes[1].remove("gpu", &mut pools).as_deref(), Some("true"));
        assert_eq!(members(&mut pools, "gpu=true", &nodes), [0, 2]);
        assert_eq!(members(&mut pools, "gpu!=true", &nodes), [1]);
        // A write to a key no selector names, or of the value already there, keeps the pools.
        nodes[1].set("other", "x".into(), &mut pools);
        nodes[0].set("gpu", "true".into(), &mut pools);
        assert_eq!(pools.writes_of("gpu"), 2);
        assert_eq!(members(&mut pools, "gpu=true", &nodes), [0, 2]);
    }

    #[test]
    fn unavailable_nodes_are_kept_in_index_order() {
        let u = Unavailable::default();
        u.record(7, true);
        u.record(2, true);
        u.record(7, true);
        u.record(4, false);
        assert_eq!(u.nodes(), [2, 7]);
        u.record(2, false);
        assert_eq!(u.nodes(), [7]);
    }

    #[test]
    fn the_cache_starts_over_past_its_bound() {
        let mut pools = Pools::default();
        let nodes = vec![node(&[("k", "0")])];
        for i in 0..MAX_POOLS + 5 {
            let want: &[usize] = if i == 0 { &[0] } else { &[] };
            assert_eq!(members(&mut pools, &format!("k={i}"), &nodes), want);
            // Kept while under the bound, so a run's few selectors are each computed once.
            let kept = if i < MAX_POOLS {
                i + 1
            } else {
                i + 1 - MAX_POOLS
            };
            assert_eq!(pools.pools.len(), kept);
        }
    }
}
