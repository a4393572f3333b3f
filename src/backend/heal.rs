//! What `heal(node)` removes and what it leaves, the same on every backend: NVSentinel's
//! quarantine marks (labels, annotations, the taints fault-quarantine recorded as its own), not
//! the condition or the maintenance objects, which NVSentinel's modules own.

use super::{Taint, keys};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const LABELS: &[&str] = &[
    keys::CORDON_BY,
    keys::CORDON_REASON,
    keys::CORDON_TIMESTAMP,
    keys::UNCORDON_BY,
    keys::UNCORDON_REASON,
    keys::UNCORDON_TIMESTAMP,
    keys::STATE,
];

pub const ANNOTATIONS: &[&str] = &[
    keys::ANN_QUARANTINE_EVENT,
    keys::ANN_IS_CORDONED,
    keys::ANN_APPLIED_TAINTS,
    keys::ANN_CORDON_PRE_EXISTING,
    keys::ANN_UNCORDONED_MANUALLY,
    keys::ANN_REMEDIATION_STATE,
];

pub const LEAVES: &[&str] = &[
    "the SysLogsXIDError condition (platform-connectors owns it and sets it healthy after the node's next boot)",
    "RebootNode and TerminateNode objects (janitor's TTL controller deletes finished ones after 14 days)",
    "the health events in NVSentinel's datastore",
];

#[derive(Deserialize)]
struct Applied {
    #[serde(flatten)]
    taint: Taint,
    #[serde(rename = "preExisting", default)]
    pre_existing: bool,
}

/// The taints `quarantineHealthEventAppliedTaints` says fault-quarantine applied itself (a
/// taint that was there before is marked `preExisting` and stays).
pub fn applied_taints(annotations: &BTreeMap<String, String>) -> Vec<Taint> {
    annotations
        .get(keys::ANN_APPLIED_TAINTS)
        .and_then(|s| serde_json::from_str::<Vec<Applied>>(s).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !a.pre_existing)
        .map(|a| a.taint)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_existing_taints_stay() {
        let mut a = BTreeMap::new();
        a.insert(
            keys::ANN_APPLIED_TAINTS.to_string(),
            r#"[{"key":"AggregatedNodeHealth","value":"False","effect":"NoSchedule"},{"key":"mine","effect":"NoExecute","preExisting":true}]"#.to_string(),
        );
        let t = applied_taints(&a);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, "AggregatedNodeHealth");
        assert!(applied_taints(&BTreeMap::new()).is_empty());
    }
}
