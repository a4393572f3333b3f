//! Remote runs through the runs API on loopback (the controller's `routes` in this process).
//! Prints figures; asserts nothing about speed.
//!
//!   cargo bench --bench controller_runs
//!   cargo bench --bench controller_runs -- --runs 50 --in-flight 20
//!
//! Figures (issue 10): the time from `POST /api/v1/runs` to the first streamed event, for a
//! fresh sim per run and for a shared backend; the resident memory of this process (the
//! controller) with 10 runs in flight (waiting on a shared real-time sim, as runs on the
//! cluster wait on it).

#[path = "../tests/common/mod.rs"]
mod common;

use gpu_fault_injector::backend::sim::SimBackend;
use gpu_fault_injector::backend::sim::config::SimConfig;
use gpu_fault_injector::backend::sim::values::NvsConfig;
use gpu_fault_injector::clock::RunClock;
use gpu_fault_injector::controller::runs::{RunBackend, RunManager, RunManagerConfig, routes};
use http_body_util::BodyExt;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn serve(backend: RunBackend, max_concurrent: usize, state: &std::path::Path) -> SocketAddr {
    let mut config = RunManagerConfig::new(backend, state.to_path_buf());
    config.max_concurrent = max_concurrent;
    let manager = RunManager::new(config)
        .await
        .expect("the run manager starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, routes(manager)).await });
    addr
}

fn shared_sim() -> RunBackend {
    let sim = SimBackend::start(
        SimConfig::default(),
        NvsConfig::default(),
        1,
        RunClock::start(false),
    )
    .expect("the sim starts");
    RunBackend::Shared {
        backend: Arc::new(sim),
        description: "sim (shared, real time)".into(),
    }
}

async fn submit(addr: SocketAddr, source: &str) -> String {
    let body = json!({"script": "bench.lua", "source": source, "seed": 1}).to_string();
    let resp = common::post(addr, "/api/v1/runs", &body).await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()["id"].as_str().unwrap().to_string()
}

/// Reads a run's event stream until an event's text contains `needle`.
async fn until_event(addr: SocketAddr, id: &str, needle: &str) {
    let mut body = common::stream(addr, &format!("/api/v1/runs/{id}/events"))
        .await
        .into_body();
    let mut text = String::new();
    common::within(format!("'{needle}' in run {id}'s events"), async {
        while !text.contains(needle) {
            let frame = body.frame().await.expect("the stream goes on").unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn first_event_latency(label: &str, addr: SocketAddr, runs: usize) {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        let id = submit(addr, "print('hello')").await;
        until_event(addr, &id, "event: entry").await;
        times.push(t0.elapsed());
        // Let it end before the next, so each run starts with a free slot.
        until_event(addr, &id, "event: end").await;
    }
    times.sort();
    println!(
        "POST /api/v1/runs to the first streamed event, {label} ({runs} runs, one at a time): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let runs = arg("--runs", 30);
    let in_flight = arg("--in-flight", 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let per_run = serve(RunBackend::SimPerRun(Box::default()), 4, state.path()).await;
        first_event_latency("a fresh sim per run", per_run, runs).await;
        let shared = serve(shared_sim(), in_flight, state.path()).await;
        first_event_latency("a shared backend", shared, runs).await;

        let before = rss_kib();
        let wait = "print('waiting')\nwait_cordoned(gpu_nodes()[1], {timeout = '1h'})";
        let mut ids = Vec::new();
        for _ in 0..in_flight {
            ids.push(submit(shared, wait).await);
        }
        for id in &ids {
            until_event(shared, id, "waiting").await;
        }
        let during = rss_kib();
        println!(
            "resident memory with {in_flight} runs in flight (each waiting on the shared sim): {:.1} MiB, {:.1} MiB before them ({:.2} MiB a run; the process also holds this bench's client and {runs}x2 ended runs' records)",
            during as f64 / 1024.0,
            before as f64 / 1024.0,
            (during.saturating_sub(before)) as f64 / 1024.0 / in_flight as f64,
        );
        for id in &ids {
            let resp = common::post(shared, &format!("/api/v1/runs/{id}/cancel"), "").await;
            assert_eq!(resp.status, 202, "{}", resp.text());
        }
        for id in &ids {
            until_event(shared, id, "event: end").await;
        }
    });
}
