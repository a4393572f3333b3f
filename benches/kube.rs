//! The kube backend at fleet size, against the Kubernetes API server double: 1,000 GPU nodes,
//! 1,000 agent pods and 1,000 syslog monitors, and one process serving the 1,000 agent
//! endpoints (one loopback address each, as pod IPs). Prints figures; asserts nothing about
//! speed.
//!
//!   cargo bench --bench kube
//!   cargo bench --bench kube -- --nodes 200 --access direct
//!
//! Targets (issue 9): one injection fanned out to all 1,000 nodes in under 1 s; from a Node
//! update on the API server to the return of `wait_cordoned`, p99 under 50 ms (the seed's tests
//! poll every 5 s); API requests per injection: 1 to the agent + 1 Event.

#[path = "../tests/kube_double/mod.rs"]
mod kube_double;

use gpu_fault_injector::backend::cluster::KubeAccess;
use gpu_fault_injector::backend::kube::{KubeBackend, KubeOptions};
use gpu_fault_injector::backend::kube_agents::{AgentAccess, KubeAgentOptions};
use gpu_fault_injector::backend::{Backend, GpuSelector, InjectRequest, NodePredicate};
use gpu_fault_injector::xid::LineOptions;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube_double::{KubeDouble, PatchType};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10 + (i / 250) as u8, (i % 250) as u8, 2)
}

fn node_name(i: usize) -> String {
    format!("gpu-node-{i:04}")
}

fn ago(secs: i64) -> String {
    (k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(secs))
        .to_string()
}

/// The agent endpoints: one axum app answering `POST /inject-xid` as the agent does, on every
/// pod IP. Counts the injections it answered.
async fn serve_agents(n: usize, port: u16, answered: Arc<AtomicUsize>) {
    let app = axum::Router::new().route(
        "/inject-xid",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let answered = answered.clone();
            async move {
                answered.fetch_add(1, Ordering::Relaxed);
                let b = body.0;
                axum::Json(json!({
                    "status": "injected", "node": b["node_name"], "fault_id": b["fault_id"],
                    "xid_type": b["xid_type"], "gpu_id": 0,
                    "message": "XID injected", "timestamp": k8s_openapi::jiff::Timestamp::now().to_string(),
                    "pci": "00000000:18:00.0", "pci_bus_id": "0000:18:00.0",
                    "gpu_uuid": "GPU-0", "gpu_model": "H100",
                    "line": "<3>NVRM: NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=gfi:bench, GPU has fallen off the bus.",
                    "style": "driver", "kmsg_seq": 1, "kmsg_usec": 1, "target": "kmsg_device",
                    "write_path": "/dev/kmsg", "readback": "read back", "xid_name": "GPU_HAS_FALLEN_OFF_THE_BUS",
                    "xid_description": "GPU has fallen off the bus", "nvsentinel_action": "RESTART_VM",
                    "fatal": true, "duration": null, "warnings": []
                }))
            }
        }),
    );
    for i in 0..n {
        let l = tokio::net::TcpListener::bind(SocketAddr::from((ip(i), port)))
            .await
            .unwrap_or_else(|e| panic!("binding {}:{port}: {e}", ip(i)));
        let app = app.clone();
        tokio::spawn(async move { axum::serve(l, app).await });
    }
}

fn add_pod(
    double: &KubeDouble,
    ns: &str,
    name: &str,
    node: &str,
    labels: serde_json::Value,
    ip: Ipv4Addr,
) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "gfi"}]}
    }))
    .unwrap();
    double.create(&pod).unwrap();
    double
        .patch_status::<Pod>(
            ns,
            name,
            PatchType::Merge,
            &json!({"status": {"phase": "Running", "podIP": ip.to_string(),
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ago(3600)}]}}),
        )
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = arg("--nodes", "1000").parse().unwrap();
    let waits: usize = arg("--waits", "200").parse().unwrap();
    let access = match arg("--access", "proxy").as_str() {
        "direct" => AgentAccess::Direct,
        _ => AgentAccess::Proxy,
    };
    let t0 = Instant::now();
    let double = KubeDouble::start().await;
    double.ensure_namespace("fault-injection-system");
    double.ensure_namespace("nvsentinel");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gfi-agent-token", "namespace": "fault-injection-system"},
        "stringData": {"token": "bench-token"}
    }))
    .unwrap();
    double.create(&secret).unwrap();
    let port = {
        let l = std::net::TcpListener::bind((ip(0), 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    for i in 0..n {
        let name = node_name(i);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.present": "true"}}, "spec": {}
        }))
        .unwrap();
        double.create(&node).unwrap();
        double
            .patch_status::<Node>("", &name, PatchType::Merge, &json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ago(3600), "lastHeartbeatTime": ago(1)}]}}))
            .unwrap();
        add_pod(
            &double,
            "fault-injection-system",
            &format!("agent-{i:04}"),
            &name,
            json!({"app": "gpu-fault-injector-kernel"}),
            ip(i),
        );
        add_pod(
            &double,
            "nvsentinel",
            &format!("monitor-{i:04}"),
            &name,
            json!({"app.kubernetes.io/name": "syslog-health-monitor"}),
            ip(i),
        );
    }
    let answered = Arc::new(AtomicUsize::new(0));
    serve_agents(n, port, answered.clone()).await;
    let setup = t0.elapsed();

    let backend = KubeBackend::kube_with(
        KubeAccess::Client(double.client().await),
        KubeOptions {
            agents: KubeAgentOptions {
                port,
                access: Some(access),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let nodes = backend.list_nodes(None).await.unwrap();
    assert_eq!(nodes.len(), n);

    let inject = |i: usize, round: &str| InjectRequest {
        node: node_name(i),
        gpu: GpuSelector::Index(0),
        xid: 79,
        line: LineOptions::default(),
        fault_id: format!("bench-{round}-{i:04}"),
        provenance: "gfi:bench".into(),
        preflight: true,
    };
    // A first fan-out warms the watches (agents, monitors, nodes) and the connections.
    let cold_reqs: Vec<InjectRequest> = (0..n).map(|i| inject(i, "cold")).collect();
    let warm_reqs: Vec<InjectRequest> = (0..n).map(|i| inject(i, "warm")).collect();
    let cold = Instant::now();
    let results = futures::future::join_all(cold_reqs.iter().map(|r| backend.inject_xid(r))).await;
    let cold = cold.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {e}");
    }

    double.clear_requests();
    let before = answered.load(Ordering::Relaxed);
    let warm = Instant::now();
    let results = futures::future::join_all(warm_reqs.iter().map(|r| backend.inject_xid(r))).await;
    let warm = warm.elapsed();
    let failed_warm = results.iter().filter(|r| r.is_err()).count();
    let reqs = double.requests();
    let agent_calls = answered.load(Ordering::Relaxed) - before;
    let proxied = reqs.iter().filter(|r| r.subresource == "proxy").count();
    let api_requests = reqs.len() - proxied;
    let events = reqs
        .iter()
        .filter(|r| r.resource == "events" && r.verb == "create")
        .count();

    // From a Node update on the API server to the return of wait_cordoned.
    let mut lat = Vec::with_capacity(waits);
    for k in 0..waits {
        let name = node_name(k % n);
        let wait = {
            let backend = &backend;
            let name = name.clone();
            async move {
                let r = backend
                    .wait_node(&name, &NodePredicate::Cordoned, Duration::from_secs(10))
                    .await
                    .unwrap();
                (Instant::now(), r.satisfied)
            }
        };
        let patch = async {
            // Let the wait subscribe before the update.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let at = Instant::now();
            double
                .patch::<Node>(
                    "",
                    &name,
                    PatchType::Merge,
                    &json!({"spec": {"unschedulable": true}}),
                )
                .unwrap();
            at
        };
        let ((done, ok), at) = tokio::join!(wait, patch);
        assert!(ok, "wait_cordoned saw the cordon");
        lat.push(done.saturating_duration_since(at));
        double
            .patch::<Node>(
                "",
                &name,
                PatchType::Merge,
                &json!({"spec": {"unschedulable": false}}),
            )
            .unwrap();
    }
    lat.sort();

    println!(
        "kube: {n} nodes, {n} agent endpoints, agents reached {}",
        access.as_str()
    );
    println!(
        "  set-up                      {:>8.3} s",
        setup.as_secs_f64()
    );
    println!(
        "  fan-out, first (cold)       {:>8.3} s   ({failed} failed; starts the watches)",
        cold.as_secs_f64()
    );
    println!(
        "  fan-out, one XID to all     {:>8.3} s   ({failed_warm} failed)  target < 1 s: {}",
        warm.as_secs_f64(),
        if warm < Duration::from_secs(1) && failed_warm == 0 {
            "MET"
        } else {
            "MISSED"
        }
    );
    println!(
        "  requests per injection      {:>8.2} to the agent ({:.2} through the API server's proxy) + {:.2} other API requests ({:.2} Event creates)  target 1 + 1 Event: {}",
        agent_calls as f64 / n as f64,
        proxied as f64 / n as f64,
        api_requests as f64 / n as f64,
        events as f64 / n as f64,
        if agent_calls == n && api_requests == n && events == n {
            "MET"
        } else {
            "MISSED"
        }
    );
    println!(
        "  update -> wait_cordoned     p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {waits}  target p99 < 50 ms: {}",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
        if percentile(&lat, 0.99) < Duration::from_millis(50) {
            "MET"
        } else {
            "MISSED"
        }
    );
}
