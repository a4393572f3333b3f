//! The `local` backend's node-state calls against a fake Kubernetes API server on loopback:
//! reads, a watch-driven wait that sees a cordon arrive, a wait that times out, pods, uncordon,
//! and a node that does not exist.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gpu_fault_injector::agent::testkit;
use gpu_fault_injector::backend::local::{KubeAccess, LocalBackend, LocalOptions};
use gpu_fault_injector::backend::{Backend, BackendError, ClusterEvent, NodePredicate, keys};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

struct Fake {
    node: Mutex<Value>,
    events: broadcast::Sender<Value>,
    watching: Notify,
    patches: Mutex<Vec<Value>>,
}

fn node_json(unschedulable: bool, state: Option<&str>, rv: u32) -> Value {
    let mut labels = json!({"nvidia.com/gpu.present": "true"});
    if let Some(s) = state {
        labels[keys::STATE] = json!(s);
        labels[keys::CORDON_BY] = json!("NVSentinel");
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "gpu-1", "resourceVersion": rv.to_string(), "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"bootID": "boot-1", "architecture": "", "containerRuntimeVersion": "", "kernelVersion": "",
                                "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "operatingSystem": "",
                                "osImage": "", "systemUUID": ""}}
    })
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("nodes \"{name}\" not found"), "reason": "NotFound", "code": 404}),
        ),
    )
        .into_response()
}

async fn get_node(State(f): State<Arc<Fake>>, Path(name): Path<String>) -> Response {
    if name != "gpu-1" {
        return not_found(&name);
    }
    axum::Json(f.node.lock().unwrap().clone()).into_response()
}

async fn patch_node(
    State(f): State<Arc<Fake>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if name != "gpu-1" {
        return not_found(&name);
    }
    let patch: Value = serde_json::from_slice(&body).unwrap();
    f.patches.lock().unwrap().push(patch.clone());
    let mut n = f.node.lock().unwrap();
    if let Some(u) = patch["spec"]["unschedulable"].as_bool() {
        n["spec"]["unschedulable"] = json!(u);
    }
    axum::Json(n.clone()).into_response()
}

async fn list_or_watch_nodes(
    State(f): State<Arc<Fake>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let wanted = q
        .get("fieldSelector")
        .and_then(|s| s.strip_prefix("metadata.name="))
        .map(str::to_string);
    let node = f.node.lock().unwrap().clone();
    let matches = wanted.as_deref().is_none_or(|w| w == "gpu-1");
    if q.get("watch").map(String::as_str) == Some("true")
        || q.get("watch").map(String::as_str) == Some("1")
    {
        let rx = f.events.subscribe();
        f.watching.notify_one();
        // One JSON object per line, as the API server streams watch events.
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let v = rx.recv().await.ok()?;
            let mut line = v.to_string();
            line.push('\n');
            Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(line)), rx))
        });
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let items = if matches { vec![node] } else { vec![] };
    axum::Json(json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "10"}, "items": items}))
        .into_response()
}

async fn list_pods(Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(
        q.get("fieldSelector").map(String::as_str),
        Some("spec.nodeName=gpu-1")
    );
    axum::Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "3"}, "items": [
        {"metadata": {"name": "worker-0", "namespace": "dynamo",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "w", "uid": "u", "controller": true}]},
         "status": {"phase": "Running"}},
        {"metadata": {"name": "gfi-agent-x", "namespace": "fault-injection-system",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "v", "controller": true}]},
         "status": {"phase": "Running"}}
    ]}))
    .into_response()
}

async fn fake_api() -> (Arc<Fake>, kube::Client) {
    let (events, _) = broadcast::channel(16);
    let fake = Arc::new(Fake {
        node: Mutex::new(node_json(false, None, 10)),
        events,
        watching: Notify::new(),
        patches: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/api/v1/nodes", get(list_or_watch_nodes))
        .route("/api/v1/nodes/{name}", get(get_node).patch(patch_node))
        .route("/api/v1/pods", get(list_pods))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    (fake, kube::Client::try_from(config).unwrap())
}

fn backend(client: kube::Client) -> (LocalBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    testkit::write_gpu_tree(&dir.path().join("proc"), &testkit::fake_gpus(1)).unwrap();
    std::fs::write(dir.path().join("kmsg"), b"").unwrap();
    let b = LocalBackend::new(LocalOptions {
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
    let (fake, client) = fake_api().await;
    let (b, _dir) = backend(client);
    let seen: Arc<Mutex<Vec<ClusterEvent>>> = Arc::default();
    let seen2 = seen.clone();
    b.set_observer(Arc::new(move |e| seen2.lock().unwrap().push(e)));

    let n = b.node("gpu-1").await.unwrap();
    assert!(!n.unschedulable && n.ready);
    assert_eq!(n.boot_id, "boot-1");

    let waiter = {
        let fake = fake.clone();
        tokio::spawn(async move {
            // Once the backend watches, NVSentinel "cordons" the node.
            fake.watching.notified().await;
            let cordoned = node_json(true, Some("quarantined"), 11);
            *fake.node.lock().unwrap() = cordoned.clone();
            fake.events
                .send(json!({"type": "MODIFIED", "object": cordoned}))
                .unwrap();
        })
    };
    let out = b
        .wait_node("gpu-1", &NodePredicate::Cordoned, Duration::from_secs(60))
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
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(kinds, ["cordoned", "state"], "{:?}", seen.lock().unwrap());

    // Already true: answered from the first read, no watch needed.
    let out = b
        .wait_node("gpu-1", &NodePredicate::Cordoned, Duration::from_secs(60))
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

    let n = b.uncordon("gpu-1").await.unwrap();
    assert!(!n.unschedulable);
    assert_eq!(
        fake.patches.lock().unwrap().as_slice(),
        [json!({"spec": {"unschedulable": false}})]
    );

    let err = b.node("gpu-9").await.unwrap_err();
    assert!(matches!(err, BackendError::NodeNotFound { .. }), "{err}");
    assert!(err.to_string().contains("gpu-1"), "{err}");
    let nodes = b.list_nodes(None).await.unwrap();
    assert_eq!(nodes.len(), 1);
}
