//! Central API injections through the controller, to real `gfi agent` processes on loopback
//! (the kube end-to-end harness: the API server double as the cluster, one agent per node
//! writing to a file, its journal fsynced as in production). Prints figures; asserts nothing
//! about speed.
//!
//!   cargo bench --bench controller
//!   cargo bench --bench controller -- --nodes 4 --serial 200 --concurrent 800 --in-flight 32
//!
//! Two ways of calling it: one by one, each on a fresh connection, as the seed's callers do
//! (`httpx.post` per fault), and many in flight at once.

#[allow(dead_code)]
#[path = "../tests/kube_e2e/cluster.rs"]
mod cluster;
#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/kube_double/mod.rs"]
mod kube_double;
#[allow(dead_code)]
#[path = "../tests/kube_e2e/reactor.rs"]
mod reactor;

use cluster::{Cluster, node_name};
use gpu_fault_injector::backend::cluster::KubeAccess;
use gpu_fault_injector::backend::kube::{KubeBackend, KubeOptions};
use gpu_fault_injector::backend::kube_agents::{AgentAccess, KubeAgentOptions};
use gpu_fault_injector::controller::{ControllerBackend, ControllerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-run-token-0123456789";

fn arg(name: &str, default: &str) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or_else(|| default.parse().unwrap())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One injection on a fresh connection; its latency.
async fn inject(addr: SocketAddr, node: &str, gpu: usize) -> Duration {
    let body = format!(r#"{{"node_name": "{node}", "gpu_id": {gpu}}}"#);
    let auth = format!("Bearer {TOKEN}");
    let t = Instant::now();
    let r = common::request(
        addr,
        "POST",
        "/api/v1/faults/gpu/inject/xid-79",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    t.elapsed()
}

fn report(what: &str, n: usize, wall: Duration, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "{what:<34} {n:>5} injections in {:>6.2}s: {:>7.1}/s  latency p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes = arg("--nodes", "4");
    let serial = arg("--serial", "200");
    let concurrent = arg("--concurrent", "800");
    let in_flight = arg("--in-flight", "32");
    let c = Cluster::start(nodes).await;
    let client = c.double.client().await;
    let backend = KubeBackend::kube_with(
        KubeAccess::Client(client.clone()),
        KubeOptions {
            agents: KubeAgentOptions {
                port: c.port,
                access: Some(AgentAccess::Direct),
                token_file: Some(c.dir.path().join("token")),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let tokens = c.dir.path().join("run-tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let mut cfg = ControllerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.token_file = Some(tokens);
    cfg.retention = serial + concurrent + 10;
    let ctl = gpu_fault_injector::controller::start(
        cfg,
        ControllerBackend {
            backend: Arc::new(backend),
            description: "kube (bench)".into(),
            kube: Some(client),
        },
    )
    .await
    .unwrap();
    let addr = ctl.addr();
    println!(
        "gfi controller -> {nodes} real gfi agents on loopback (API server double; each injection: pre-flight, agent write + read-back + fsynced journal, Node Event, record ConfigMap)"
    );
    // Warm the watches and connections.
    for i in 0..nodes {
        inject(addr, &node_name(i), 0).await;
    }

    let t = Instant::now();
    let mut lat = Vec::with_capacity(serial);
    for i in 0..serial {
        lat.push(inject(addr, &node_name(i % nodes), (i / nodes) % 8).await);
    }
    report(
        "one by one (as the seed's callers)",
        serial,
        t.elapsed(),
        lat,
    );

    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= concurrent {
                        return lat;
                    }
                    lat.push(inject(addr, &node_name(i % nodes), (i / nodes) % 8).await);
                }
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(concurrent);
    for w in workers {
        lat.extend(w.await.unwrap());
    }
    report(
        &format!("{in_flight} in flight"),
        concurrent,
        t.elapsed(),
        lat,
    );
    let records = ctl
        .state()
        .records
        .list(gpu_fault_injector::controller::records::RecordKind::Fault)
        .len();
    println!("fault records kept: {records}");
    ctl.stop().await.unwrap();
}
