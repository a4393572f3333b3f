//! The `local` backend's node-state calls against the Kubernetes API server double
//! (`tests/kube_double/`): reads, a watch-driven wait that sees a cordon arrive, a wait that
//! times out, pods, uncordon, a node that does not exist, the node's Events and NVSentinel's
//! circuit breaker.

#[allow(dead_code)]
#[path = "kube_double/mod.rs"]
mod kube_double;

use gpu_fault_injector::backend::local::{KubeAccess, LocalBackend, LocalOptions};
use gpu_fault_injector::backend::{Backend, BackendError, ClusterEvent, NodePredicate, keys};
use gpu_fault_injector::node::testkit;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use kube_double::{KubeDouble, Matcher, PatchType};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn typed<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

/// The double with gpu-1 (Ready, boot-1) and its two pods.
async fn cluster() -> KubeDouble {
    let d = KubeDouble::start().await;
    d.create::<Node>(&typed(json!({
        "metadata": {"name": "gpu-1", "labels": {"nvidia.com/gpu.present": "true"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"bootID": "boot-1", "architecture": "", "containerRuntimeVersion": "", "kernelVersion": "",
                                "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "operatingSystem": "",
                                "osImage": "", "systemUUID": ""}}
    })))
    .unwrap();
    for (ns, name, owner) in [
        ("dynamo", "worker-0", "ReplicaSet"),
        ("fault-injection-system", "gfi-agent-x", "DaemonSet"),
    ] {
        d.ensure_namespace(ns);
        d.create::<Pod>(&typed(json!({
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": format!("uid-{name}"), "controller": true}]},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "c", "image": "busybox:1"}]}
        })))
        .unwrap();
        d.patch_status::<Pod>(
            ns,
            name,
            PatchType::Merge,
            &json!({"status": {"phase": "Running"}}),
        )
        .unwrap();
    }
    d
}

/// NVSentinel's cordon, as one write: unschedulable, the state label, who cordoned.
fn cordon(d: &KubeDouble) {
    d.patch::<Node>(
        "",
        "gpu-1",
        PatchType::Merge,
        &json!({"spec": {"unschedulable": true},
                "metadata": {"labels": {keys::STATE: "quarantined", keys::CORDON_BY: "NVSentinel"}}}),
    )
    .unwrap();
}

/// Resolves once the backend watches the nodes: a write after it reaches the backend as a
/// watch event, not in its first list.
async fn backend_watches(d: &KubeDouble) {
    d.wait_for("the backend's watch on nodes", WAIT, |v| {
        v.open_watches("nodes") > 0
    })
    .await;
}

async fn backend(d: &KubeDouble) -> (LocalBackend, tempfile::TempDir) {
    backend_with(d.client().await)
}

fn backend_with(client: kube::Client) -> (LocalBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    testkit::write_gpu_tree(&dir.path().join("proc"), &testkit::fake_gpus(1)).unwrap();
    std::fs::write(dir.path().join("kmsg"), b"").unwrap();
    let b = LocalBackend::local(LocalOptions {
        node_name: Some("gpu-1".into()),
        proc_root: Some(dir.path().join("proc")),
        kmsg_path: Some(dir.path().join("kmsg")),
        allow_non_chardev: true,
        kube: KubeAccess::Client(client),
        ..Default::default()
    })
    .unwrap();
    (b, dir)
}

#[tokio::test]
async fn wait_node_follows_the_watch_and_reports_each_stage() {
    let d = Arc::new(cluster().await);
    let (b, _dir) = backend(&d).await;
    let seen: Arc<Mutex<Vec<ClusterEvent>>> = Arc::default();
    let seen2 = seen.clone();
    let _events = b.subscribe(Arc::new(move |e| seen2.lock().unwrap().push(e)));

    let n = b.node("gpu-1").await.unwrap();
    assert!(!n.unschedulable && n.ready);
    assert_eq!(n.boot_id, "boot-1");

    let waiter = {
        let d = d.clone();
        tokio::spawn(async move {
            // Once the backend watches, NVSentinel "cordons" the node.
            backend_watches(&d).await;
            cordon(&d);
        })
    };
    let out = b
        .wait_node("gpu-1", &NodePredicate::Cordoned, WAIT)
        .await
        .unwrap();
    waiter.await.unwrap();
    assert!(out.satisfied);
    assert!(out.node.unschedulable);
    assert_eq!(out.node.state(), Some("quarantined"));
    let kinds: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.kind.to_string())
        .collect();
    assert_eq!(kinds, ["cordoned", "state"], "{:?}", seen.lock().unwrap());
    // The node's name is the display's to add, not repeated in each message.
    for e in seen.lock().unwrap().iter() {
        assert!(!e.message.contains("gpu-1"), "{e:?}");
    }

    // Already true: answered from the first read, no watch needed.
    let out = b
        .wait_node("gpu-1", &NodePredicate::Cordoned, WAIT)
        .await
        .unwrap();
    assert!(out.satisfied);

    // Never true: the timeout is an answer, with the last facts seen.
    let out = b
        .wait_node(
            "gpu-1",
            &NodePredicate::State {
                value: Some("drain-succeeded".into()),
            },
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert!(!out.satisfied);
    assert_eq!(out.node.state(), Some("quarantined"));

    let pods = b.pods("gpu-1").await.unwrap();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0].namespace, "dynamo");
    assert_eq!(pods[1].owner.as_deref(), Some("DaemonSet"));
    let pod_lists: Vec<String> = d
        .requests()
        .into_iter()
        .filter(|r| r.resource == "pods")
        .map(|r| format!("{} {}", r.verb, r.namespace))
        .collect();
    assert_eq!(pod_lists, ["list "], "one list of pods across namespaces");

    let n = b.uncordon("gpu-1").await.unwrap();
    assert!(!n.unschedulable);
    let patches: Vec<Value> = d
        .requests()
        .into_iter()
        .filter(|r| r.verb == "patch")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(patches, [json!({"spec": {"unschedulable": false}})]);
    assert_eq!(
        d.get::<Node>("", "gpu-1")
            .unwrap()
            .spec
            .unwrap()
            .unschedulable,
        Some(false)
    );

    let err = b.node("gpu-9").await.unwrap_err();
    assert!(matches!(err, BackendError::NodeNotFound { .. }), "{err}");
    assert!(err.to_string().contains("gpu-1"), "{err}");
    let nodes = b.list_nodes(None).await.unwrap();
    assert_eq!(nodes.len(), 1);
}

#[tokio::test]
async fn a_wait_sees_a_state_that_lasts_no_time() {
    // fault-remediation writes `remediating`, creates the RebootNode and writes
    // `remediation-succeeded` at once: two versions, two watch events in one read. A wait for
    // the first must see it, though the node has already moved on when the wait runs.
    let d = Arc::new(cluster().await);
    let (b, _dir) = backend(&d).await;
    b.node("gpu-1").await.unwrap();
    let writer = {
        let d = d.clone();
        tokio::spawn(async move {
            backend_watches(&d).await;
            for state in ["remediating", "remediation-succeeded"] {
                d.patch::<Node>(
                    "",
                    "gpu-1",
                    PatchType::Merge,
                    &json!({"metadata": {"labels": {keys::STATE: state}}}),
                )
                .unwrap();
            }
        })
    };
    let state = |s: &str| NodePredicate::State {
        value: Some(s.into()),
    };
    let (remediating, succeeded) = (state("remediating"), state("remediation-succeeded"));
    let (first, second) = tokio::join!(
        b.wait_node("gpu-1", &remediating, WAIT),
        b.wait_node("gpu-1", &succeeded, WAIT)
    );
    writer.await.unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first.satisfied && second.satisfied);
    // Each answer is the version that satisfied it, not the latest.
    assert_eq!(first.node.state(), Some("remediating"));
    assert_eq!(second.node.state(), Some("remediation-succeeded"));
}

#[tokio::test]
async fn progress_follows_a_targeted_node_between_waits() {
    let d = cluster().await;
    let (b, _dir) = backend(&d).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ClusterEvent>();
    let _events = b.subscribe(Arc::new(move |e| {
        let _ = tx.send(e);
    }));
    // Reading the node targets it: from now on its changes reach every subscriber, with no
    // wait running.
    b.node("gpu-1").await.unwrap();
    backend_watches(&d).await;
    cordon(&d);
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        // A guard against a hang, not a timing assertion.
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the watcher publishes the change")
            .unwrap();
        assert_eq!(e.node, "gpu-1");
        kinds.push(e.kind.to_string());
    }
    assert_eq!(kinds, ["cordoned", "state"]);
}

#[tokio::test]
async fn an_unreachable_api_server_is_the_worlds_refusal() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let (b, _dir) = backend_with(kube::Client::try_from(config).unwrap());
    let err = b.node("gpu-1").await.unwrap_err();
    assert!(matches!(err, BackendError::Unreachable { .. }), "{err:?}");
    assert!(!err.is_script_error());
    assert!(
        err.to_string()
            .contains("reading the node failed: the Kubernetes API server is unreachable"),
        "{err}"
    );
}

#[tokio::test]
async fn events_are_the_nodes_own_oldest_first() {
    let d = cluster().await;
    // Newest first, and one new-style Event with only an eventTime: the backend orders them.
    // (An Event about a Node lives in `default`, or `kube-system` when it has an eventTime:
    // the API server refuses it anywhere else.)
    d.create::<Event>(&typed(json!({
        "metadata": {"name": "gpu-1.drain", "namespace": "kube-system"},
        "involvedObject": {"kind": "Node", "name": "gpu-1"},
        "reason": "NodeDraining", "message": "draining gpu-1", "type": "Normal",
        "eventTime": "2026-11-28T10:05:00.000000Z", "reportingComponent": "node-drainer",
        "reportingInstance": "node-drainer-0", "action": "Drain"
    })))
    .unwrap();
    d.create::<Event>(&typed(json!({
        "metadata": {"name": "gpu-1.xid", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "gpu-1"},
        "reason": "SysLogsXIDErrorIsNotHealthy", "message": "ErrorCode:13 PCI:0000:18:00 GPU_UUID:GPU-1",
        "type": "Warning", "source": {"component": "platform-connectors"},
        "firstTimestamp": "2026-11-28T10:00:00Z", "lastTimestamp": "2026-11-28T10:01:00Z"
    })))
    .unwrap();
    // Another node's Event is not gpu-1's.
    d.create::<Event>(&typed(json!({
        "metadata": {"name": "gpu-2.xid", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "gpu-2"},
        "reason": "SysLogsXIDErrorIsNotHealthy", "message": "ErrorCode:79", "type": "Warning",
        "lastTimestamp": "2026-11-28T10:02:00Z"
    })))
    .unwrap();
    let (b, _dir) = backend(&d).await;
    let evs = b.events("gpu-1").await.unwrap();
    let seen: Vec<(&str, &str, &str, &str, &str)> = evs
        .iter()
        .map(|e| {
            (
                e.namespace.as_str(),
                e.type_.as_str(),
                e.reason.as_str(),
                e.source.as_str(),
                e.time.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "default",
                "Warning",
                "SysLogsXIDErrorIsNotHealthy",
                "platform-connectors",
                "2026-11-28T10:01:00Z"
            ),
            (
                "kube-system",
                "Normal",
                "NodeDraining",
                "node-drainer",
                "2026-11-28T10:05:00Z"
            ),
        ]
    );
    assert_eq!(evs[0].message, "ErrorCode:13 PCI:0000:18:00 GPU_UUID:GPU-1");
}

#[tokio::test]
async fn circuit_breaker_reads_nvsentinels_configmap() {
    let d = cluster().await;
    d.ensure_namespace("nvsentinel");
    let (b, _dir) = backend(&d).await;
    let set = |status: &str| {
        let cm: ConfigMap = typed(
            json!({"metadata": {"name": "circuit-breaker", "namespace": "nvsentinel"},
                                          "data": {"status": status}}),
        );
        if d.get::<ConfigMap>("nvsentinel", "circuit-breaker")
            .is_some()
        {
            d.replace(&cm).unwrap();
        } else {
            d.create(&cm).unwrap();
        }
    };
    // No ConfigMap: closed (deleting it is how an operator resets the breaker).
    let closed = b.circuit_breaker().await.unwrap();
    assert_eq!(closed.status, "CLOSED");
    assert_eq!(
        closed.enabled, None,
        "the cluster does not show the Helm setting"
    );
    set("TRIPPED");
    assert_eq!(b.circuit_breaker().await.unwrap().status, "TRIPPED");
    set("closed");
    assert_eq!(b.circuit_breaker().await.unwrap().status, "CLOSED");
    set("HALF-OPEN");
    let err = b.circuit_breaker().await.unwrap_err().to_string();
    assert!(
        err.contains("\"HALF-OPEN\"") && err.contains("CLOSED or TRIPPED"),
        "{err}"
    );
    let first_read = d
        .requests()
        .into_iter()
        .find(|r| r.resource == "configmaps")
        .unwrap();
    assert_eq!(
        (
            first_read.verb.as_str(),
            first_read.namespace.as_str(),
            first_read.name.as_str()
        ),
        ("get", "nvsentinel", "circuit-breaker"),
        "the chart's namespace by default"
    );
    d.forbid(Matcher::default().resource("configmaps"));
    let err = b.circuit_breaker().await.unwrap_err().to_string();
    assert!(
        err.contains("forbidden") && err.contains("get on configmaps in NVSentinel's namespace"),
        "{err}"
    );
}
