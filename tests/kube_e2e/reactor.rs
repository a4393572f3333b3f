//! NVSentinel's reactions, played through the Kubernetes API for the kube end-to-end tests: a
//! stand-in that reads what each node's agent wrote (its kmsg file), detects an XID only where
//! the written bytes parse as journald and NVSentinel would parse them (the project's
//! `xid::detect`, as the simulator does), then acts on the Node as NVSentinel's modules do:
//! condition, cordon, state labels, a RebootNode, a reboot (new boot id, NotReady, Ready) and
//! the uncordon, or an Event for a non-fatal XID. It uses only the API a real cluster has
//! (patches, the status subresource, creates), so the same reactor could play NVSentinel
//! against a real kube-apiserver with no kubelet.
//!
//! It polls the files every few milliseconds and reacts a second after a line lands, as
//! NVSentinel's monitor finds lines at its next poll of the journal.

use gpu_fault_injector::backend::keys;
use gpu_fault_injector::xid::{Action, catalog, detect};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// What the reactor did, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub node: String,
    pub xid: u32,
    pub action: Action,
}

pub struct Reactor {
    task: tokio::task::JoinHandle<()>,
    pub seen: tokio::sync::watch::Receiver<Vec<Reaction>>,
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The RebootNode custom resource NVSentinel's fault-remediation creates.
pub fn rebootnode_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("janitor.dgxc.nvidia.com", "v1alpha1", "RebootNode"),
        "rebootnodes",
    )
}

const STEP: Duration = Duration::from_millis(30);
/// From the write to the first reaction: NVSentinel's monitor polls the journal (every 15 s
/// by default); a second here keeps the tests quick and every stage after the injection.
const DETECT: Duration = Duration::from_secs(1);

/// Follows `nodes` (name, kmsg file) and reacts on `client`.
pub fn start(client: kube::Client, nodes: Vec<(String, PathBuf)>) -> Reactor {
    let (tx, seen) = tokio::sync::watch::channel(Vec::new());
    let task = tokio::spawn(async move {
        let mut offsets = vec![0usize; nodes.len()];
        let mut boot = 1u32;
        loop {
            for (i, (node, path)) in nodes.iter().enumerate() {
                let Ok(bytes) = std::fs::read(path) else {
                    continue;
                };
                if bytes.len() <= offsets[i] {
                    continue;
                }
                let fresh = &bytes[offsets[i]..];
                let Some(end) = fresh.iter().rposition(|b| *b == b'\n') else {
                    continue;
                };
                let chunk = fresh[..=end].to_vec();
                offsets[i] += end + 1;
                for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let Some((entry, Some(m))) = detect::detect_write(line) else {
                        continue;
                    };
                    let info = catalog::lookup_or_generic(m.xid);
                    let action = if m.xid == 154 {
                        detect::xid154_action(&entry.message)
                    } else {
                        info.default_action()
                    };
                    let fatal = info.fatal();
                    tx.send_modify(|v| {
                        v.push(Reaction {
                            node: node.clone(),
                            xid: m.xid,
                            action,
                        })
                    });
                    boot += 1;
                    let (client, node, message, xid) =
                        (client.clone(), node.clone(), entry.message.clone(), m.xid);
                    tokio::spawn(async move {
                        // The monitor finds the line at its next poll, never at once.
                        tokio::time::sleep(DETECT).await;
                        if let Err(e) =
                            react(&client, &node, xid, fatal, action, &message, boot).await
                        {
                            eprintln!("reactor: {node}: XID {xid}: {e}");
                        }
                    });
                }
            }
            tokio::time::sleep(STEP).await;
        }
    });
    Reactor { task, seen }
}

async fn react(
    client: &kube::Client,
    node: &str,
    xid: u32,
    fatal: bool,
    action: Action,
    message: &str,
    boot: u32,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PatchParams::default();
    if !fatal {
        // platform-connectors: a non-fatal XID is an Event on the Node, its type the check's
        // name (not Warning), as `createK8sEvent` makes it.
        let events: Api<Event> = Api::namespaced(client.clone(), "default");
        let ev: Event = serde_json::from_value(json!({
            "metadata": {"generateName": format!("{node}.")},
            "involvedObject": {"kind": "Node", "name": node, "uid": node, "apiVersion": "v1"},
            "reason": keys::REASON_UNHEALTHY, "type": keys::COND_XID,
            "message": format!("ErrorCode:{xid} {message}"),
            "source": {"component": "syslog-health-monitor", "host": node},
            "reportingComponent": "syslog-health-monitor",
            "firstTimestamp": now(), "lastTimestamp": now(),
            "count": 1
        }))
        .unwrap();
        events.create(&PostParams::default(), &ev).await?;
        return Ok(());
    }
    let condition = |status: &str, reason: &str| {
        json!({"status": {"conditions": [{
            "type": keys::COND_XID, "status": status, "reason": reason,
            "message": format!("ErrorCode:{xid} {message}"),
            "lastTransitionTime": now(), "lastHeartbeatTime": now()
        }]}})
    };
    step().await;
    nodes
        .patch_status(
            node,
            &pp,
            &Patch::Strategic(condition("True", keys::REASON_UNHEALTHY)),
        )
        .await?;
    step().await;
    nodes
        .patch(
            node,
            &pp,
            &Patch::Merge(json!({
                "metadata": {"labels": {keys::CORDON_BY: keys::NVSENTINEL, keys::STATE: "quarantined"}},
                "spec": {"unschedulable": true}
            })),
        )
        .await?;
    step().await;
    set_state(&nodes, node, "draining").await?;
    evict(client, node).await?;
    step().await;
    set_state(&nodes, node, "drain-succeeded").await?;
    step().await;
    if !action.reboots() {
        return set_state(&nodes, node, "remediation-failed").await;
    }
    set_state(&nodes, node, "remediating").await?;
    let reboots: Api<DynamicObject> = Api::all_with(client.clone(), &rebootnode_resource());
    let name = format!("maintenance-{node}-{boot:024x}");
    let mut cr = DynamicObject::new(&name, &rebootnode_resource());
    cr.data = json!({"spec": {"nodeName": node, "force": false}});
    reboots.create(&PostParams::default(), &cr).await?;
    set_state(&nodes, node, "remediation-succeeded").await?;
    // The janitor reboots: NotReady, a new boot id, Ready again.
    step().await;
    nodes
        .patch_status(node, &pp, &Patch::Strategic(ready("False")))
        .await?;
    step().await;
    nodes
        .patch_status(
            node,
            &pp,
            &Patch::Merge(json!({"status": {"nodeInfo": {"bootID": format!("boot-{boot}")}}})),
        )
        .await?;
    nodes
        .patch_status(node, &pp, &Patch::Strategic(ready("True")))
        .await?;
    reboots
        .patch_status(
            &name,
            &pp,
            &Patch::Merge(json!({"status": {
                "startTime": now(), "completionTime": now(),
                "conditions": [
                    {"type": "SignalSent", "status": "True", "reason": "Succeeded", "lastTransitionTime": now(), "message": ""},
                    {"type": "NodeReady", "status": "True", "reason": "Succeeded", "lastTransitionTime": now(), "message": ""}
                ]}})),
        )
        .await?;
    // fault-quarantine: healthy again after the new boot, uncordon.
    step().await;
    nodes
        .patch_status(
            node,
            &pp,
            &Patch::Strategic(condition("False", keys::REASON_HEALTHY)),
        )
        .await?;
    nodes
        .patch(
            node,
            &pp,
            &Patch::Merge(json!({
                "metadata": {"labels": {
                    keys::CORDON_BY: null, keys::STATE: null,
                    keys::UNCORDON_BY: keys::NVSENTINEL,
                    keys::UNCORDON_REASON: "Syslog-fatal-error-ruleset-removed"
                }},
                "spec": {"unschedulable": false}
            })),
        )
        .await?;
    Ok(())
}

/// node-drainer: the node's pods go, but not the system namespaces' or DaemonSets'. (With no
/// kubelet to confirm, a deletion with grace period 0 is what removes a bound pod.)
async fn evict(client: &kube::Client, node: &str) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let system = regex::Regex::new(keys::SYSTEM_NAMESPACES).unwrap();
    let on_node = pods
        .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    for p in on_node.items {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let daemonset = p
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|os| os.iter().any(|o| o.kind == "DaemonSet"));
        if system.is_match(&ns) || daemonset {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        api.delete(
            p.metadata.name.as_deref().unwrap_or_default(),
            &kube::api::DeleteParams::default().grace_period(0),
        )
        .await?;
    }
    Ok(())
}

fn ready(status: &str) -> serde_json::Value {
    json!({"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": "KubeletReady", "message": "",
        "lastTransitionTime": now(), "lastHeartbeatTime": now()
    }]}})
}

async fn set_state(nodes: &Api<Node>, node: &str, state: &str) -> Result<(), kube::Error> {
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {keys::STATE: state}}})),
        )
        .await
        .map(|_| ())
}

/// Each stage a little after the one before, so waits see them one by one.
async fn step() {
    tokio::time::sleep(Duration::from_millis(40)).await;
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}
