//! The `local` backend's node-state calls against a fake Kubernetes API server on loopback:
//! reads, a watch-driven wait that sees a cordon arrive, a wait that times out, pods, uncordon,
//! a node that does not exist, the node's Events and NVSentinel's circuit breaker.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gpu_fault_injector::backend::local::{KubeAccess, LocalBackend, LocalOptions};
use gpu_fault_injector::backend::{Backend, BackendError, ClusterEvent, NodePredicate, keys};
use gpu_fault_injector::node::testkit;
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
    /// The `circuit-breaker` ConfigMap's data; `None`: there is none. Reads are recorded as
    /// `namespace/name`.
    breaker: Mutex<Option<Value>>,
    breaker_reads: Mutex<Vec<String>>,
    /// Answer 403 to ConfigMap reads.
    forbid_configmaps: std::sync::atomic::AtomicBool,
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

async fn list_events(Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(
        q.get("fieldSelector").map(String::as_str),
        Some("involvedObject.kind=Node,involvedObject.name=gpu-1")
    );
    // Newest first, and one new-style Event with only an eventTime: the backend orders them.
    axum::Json(json!({"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": "7"}, "items": [
        {"metadata": {"name": "gpu-1.drain", "namespace": "nvsentinel"},
         "involvedObject": {"kind": "Node", "name": "gpu-1"},
         "reason": "NodeDraining", "message": "draining gpu-1", "type": "Normal",
         "eventTime": "2026-11-28T10:05:00.000000Z", "reportingComponent": "node-drainer"},
        {"metadata": {"name": "gpu-1.xid", "namespace": "default"},
         "involvedObject": {"kind": "Node", "name": "gpu-1"},
         "reason": "SysLogsXIDErrorIsNotHealthy", "message": "ErrorCode:13 PCI:0000:18:00 GPU_UUID:GPU-1",
         "type": "Warning", "source": {"component": "platform-connectors"},
         "firstTimestamp": "2026-11-28T10:00:00Z", "lastTimestamp": "2026-11-28T10:01:00Z"}
    ]}))
    .into_response()
}

async fn get_configmap(
    State(f): State<Arc<Fake>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    f.breaker_reads.lock().unwrap().push(format!("{ns}/{name}"));
    if f.forbid_configmaps
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("configmaps \"{name}\" is forbidden: User \"system:serviceaccount:x:y\" cannot get resource \"configmaps\" in the namespace \"{ns}\""),
                "reason": "Forbidden", "code": 403})),
        )
            .into_response();
    }
    match (name.as_str(), f.breaker.lock().unwrap().clone()) {
        ("circuit-breaker", Some(data)) => axum::Json(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data
        }))
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("configmaps \"{name}\" not found"), "reason": "NotFound", "code": 404})),
        )
            .into_response(),
    }
}

async fn fake_api() -> (Arc<Fake>, kube::Client) {
    let (events, _) = broadcast::channel(16);
    let fake = Arc::new(Fake {
        node: Mutex::new(node_json(false, None, 10)),
        events,
        watching: Notify::new(),
        patches: Mutex::new(Vec::new()),
        breaker: Mutex::new(None),
        breaker_reads: Mutex::new(Vec::new()),
        forbid_configmaps: std::sync::atomic::AtomicBool::new(false),
    });
    let app = Router::new()
        .route("/api/v1/nodes", get(list_or_watch_nodes))
        .route("/api/v1/nodes/{name}", get(get_node).patch(patch_node))
        .route("/api/v1/pods", get(list_pods))
        .route("/api/v1/events", get(list_events))
        .route(
            "/api/v1/namespaces/{ns}/configmaps/{name}",
            get(get_configmap),
        )
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
    let (fake, client) = fake_api().await;
    let (b, _dir) = backend(client);
    let seen: Arc<Mutex<Vec<ClusterEvent>>> = Arc::default();
    let seen2 = seen.clone();
    let _events = b.subscribe(Arc::new(move |e| seen2.lock().unwrap().push(e)));

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
        .map(|e| e.kind.to_string())
        .collect();
    assert_eq!(kinds, ["cordoned", "state"], "{:?}", seen.lock().unwrap());
    // The node's name is the display's to add, not repeated in each message.
    for e in seen.lock().unwrap().iter() {
        assert!(!e.message.contains("gpu-1"), "{e:?}");
    }

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

#[tokio::test]
async fn progress_follows_a_targeted_node_between_waits() {
    let (fake, client) = fake_api().await;
    let (b, _dir) = backend(client);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ClusterEvent>();
    let _events = b.subscribe(Arc::new(move |e| {
        let _ = tx.send(e);
    }));
    // Reading the node targets it: from now on its changes reach every subscriber, with no
    // wait running.
    b.node("gpu-1").await.unwrap();
    fake.watching.notified().await;
    let cordoned = node_json(true, Some("quarantined"), 11);
    *fake.node.lock().unwrap() = cordoned.clone();
    fake.events
        .send(json!({"type": "MODIFIED", "object": cordoned}))
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        // A guard against a hang, not a timing assertion.
        let e = tokio::time::timeout(Duration::from_secs(60), rx.recv())
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
    let (b, _dir) = backend(kube::Client::try_from(config).unwrap());
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
    let (_fake, client) = fake_api().await;
    let (b, _dir) = backend(client);
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
                "nvsentinel",
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
    let (fake, client) = fake_api().await;
    let (b, _dir) = backend(client);
    // No ConfigMap: closed (deleting it is how an operator resets the breaker).
    let closed = b.circuit_breaker().await.unwrap();
    assert_eq!(closed.status, "CLOSED");
    assert_eq!(
        closed.enabled, None,
        "the cluster does not show the Helm setting"
    );
    *fake.breaker.lock().unwrap() = Some(json!({"status": "TRIPPED"}));
    assert_eq!(b.circuit_breaker().await.unwrap().status, "TRIPPED");
    *fake.breaker.lock().unwrap() = Some(json!({"status": "closed"}));
    assert_eq!(b.circuit_breaker().await.unwrap().status, "CLOSED");
    *fake.breaker.lock().unwrap() = Some(json!({"status": "HALF-OPEN"}));
    let err = b.circuit_breaker().await.unwrap_err().to_string();
    assert!(
        err.contains("\"HALF-OPEN\"") && err.contains("CLOSED or TRIPPED"),
        "{err}"
    );
    assert_eq!(
        fake.breaker_reads.lock().unwrap()[0],
        "nvsentinel/circuit-breaker",
        "the chart's namespace by default"
    );
    fake.forbid_configmaps
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = b.circuit_breaker().await.unwrap_err().to_string();
    assert!(
        err.contains("forbidden") && err.contains("get on configmaps in NVSentinel's namespace"),
        "{err}"
    );
}
