//! A seeded 24-hour randomized fault plan on a simulated 1,000-node x 8-GPU cluster, with the
//! full NVSentinel pipeline for every fault, then the same day at 1k, 2k, 4k, 8k and 16k nodes
//! (1.2 faults per node), each in a process of its own so its peak memory is its own. Prints
//! figures; asserts nothing about speed.
//!
//!   cargo bench --bench sim_day
//!   cargo bench --bench sim_day -- --nodes 200 --faults 300
//!   cargo bench --bench sim_day -- --no-scaling --no-calls
//!   cargo bench --bench sim_day -- --guard-only
//!
//! The 1,000-node day runs twice: as it always has, then with guardrails armed (max 10 %
//! unavailable, a window, the breaker check) and the real-fault tripwire on, which prints
//! the wall time and what the checks before each injection cost.
//!
//! Targets: the 1,000-node day under 2 s wall with at least 1,000 injections (issue 2); time
//! linear in nodes x faults, 10,000 nodes under 5 s and 250 MB (issue 12).

use gpu_fault_injector::backend::sim::SimBackend;
use gpu_fault_injector::backend::sim::config::SimConfig;
use gpu_fault_injector::guard::GuardConfig;
use gpu_fault_injector::guard::rules::{Limit, Window};
use gpu_fault_injector::session::{BackendSource, Outcome, Session, SessionOptions};
use std::path::Path;
use std::time::{Duration, Instant};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// What one day measured.
struct DayFigures {
    wall: Duration,
    injections: u64,
    steps: u64,
}

/// The guardrails of the guarded day: what a careful soak on a real cluster would set.
fn guardrails() -> GuardConfig {
    GuardConfig {
        max_unavailable: Some(Limit::Percent(10.0)),
        window: Some(Window::parse("Mon-Sun 00:00-24:00 UTC").expect("window")),
        ..Default::default()
    }
}

fn day(nodes: usize, faults: usize, seed: u64, quiet: bool) -> DayFigures {
    day_with(nodes, faults, seed, quiet, GuardConfig::default())
}

fn day_with(nodes: usize, faults: usize, seed: u64, quiet: bool, guard: GuardConfig) -> DayFigures {
    let guarded = !guard.is_empty();
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let wall = Instant::now();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/random_day.lua");
        let session = Session::new(SessionOptions {
            seed: Some(seed),
            run_id: Some("rbench".into()),
            script: script.display().to_string(),
            args: vec![
                ("faults".into(), faults.to_string()),
                ("duration".into(), "24h".into()),
            ],
            script_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")),
            guard,
            ..SessionOptions::new(BackendSource::Sim {
                config: Box::new(SimConfig {
                    nodes,
                    gpus_per_node: 8,
                    ..Default::default()
                }),
                values: Box::default(),
            })
        })
        .expect("session");
        // As `gfi run` without `--journal`: entries are counted and streamed, not kept.
        session.journal().stop_keeping();
        let setup = wall.elapsed();
        let outcome = session.run_file(&script).await;
        let stats = session
            .backend()
            .as_any()
            .downcast_ref::<SimBackend>()
            .expect("a sim")
            .stats();
        let (instructions, entries, clock) = (
            session.host().instructions(),
            session.journal().len(),
            *session.clock(),
        );
        let guard_stats = session.host().ctx().guard.stats();
        let report = session
            .finish(outcome, Default::default(), std::future::pending())
            .await;
        let wall = wall.elapsed();
        match &report.outcome {
            Outcome::Failed(e) => println!("script failed: {e}"),
            Outcome::Stopped(s) => println!("the guard stopped the day: {}", s.describe()),
            _ => {}
        }
        assert!(
            report.cleanup_errors.is_empty(),
            "{:?}",
            report.cleanup_errors
        );
        let checks = &report.checks;
        let figures = DayFigures {
            wall,
            injections: stats.injections,
            steps: stats.steps,
        };
        if quiet {
            return figures;
        }
        println!(
            "sim_day: {nodes} nodes x 8 GPUs, 24h plan, {faults} faults planned, seed {seed}{}",
            if guarded {
                ", guardrails (max 10% unavailable, a window, the breaker) and the tripwire on"
            } else {
                ""
            }
        );
        if guarded {
            println!(
                "  guard checks         {:>10}   {:.1} us per injection ({:.3} s in all, {:.1} % of the wall time)",
                guard_stats.checks,
                guard_stats.check_seconds * 1e6 / guard_stats.checks.max(1) as f64,
                guard_stats.check_seconds,
                guard_stats.check_seconds * 100.0 / wall.as_secs_f64()
            );
        }
        println!(
            "  wall time            {:>10.3} s   (cluster set-up {:.3} s)",
            wall.as_secs_f64(),
            setup.as_secs_f64()
        );
        println!(
            "  virtual time         {:>10}",
            gpu_fault_injector::duration::format(clock.elapsed())
        );
        println!("  injections           {:>10}", stats.injections);
        println!(
            "  detections           {:>10}   cordons {}  reboots {}  uncordons {}",
            stats.detections, stats.cordons, stats.reboots, stats.uncordons
        );
        println!(
            "  simulated steps      {:>10}   ({:.0} steps/s)",
            stats.steps,
            stats.steps as f64 / wall.as_secs_f64()
        );
        println!(
            "  injections/s (wall)  {:>10.0}",
            stats.injections as f64 / wall.as_secs_f64()
        );
        println!("  journal entries      {:>10}", entries);
        println!("  Lua instructions     {:>10}", instructions);
        println!(
            "  checks               {:>10}   passed, {} failed {:?}",
            checks.passed, checks.failed, checks.failures
        );
        println!("  peak RSS             {:>10.1} MiB", peak_rss_mib());
        let target = Duration::from_secs(2);
        println!(
            "  target               {:>10}   (< 2 s wall with >= 1000 injections)",
            if wall < target && stats.injections >= 1000 {
                "MET"
            } else {
                "MISSED"
            }
        );
        figures
    })
}

/// One row of the scaling table, from a child process running one size.
fn scaling_row(nodes: usize, seed: u64) -> Option<(f64, f64, u64, u64)> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args([
            "--row",
            "--nodes",
            &nodes.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("row "))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
        f.get(4)?.parse().ok()?,
    ))
}

fn scaling(seed: u64) {
    println!(
        "scaling: the same 24h day, 1.2 faults per node, 8 GPUs per node, one process per size"
    );
    println!(
        "  {:>6}  {:>7}  {:>9}  {:>9}  {:>10}  {:>11}  {:>10}",
        "nodes", "faults", "wall s", "RSS MiB", "ms/1k nodes", "KiB/node", "steps"
    );
    for nodes in [1000, 2000, 4000, 8000, 16000] {
        match scaling_row(nodes, seed) {
            Some((wall, rss, injections, steps)) => println!(
                "  {nodes:>6}  {injections:>7}  {wall:>9.2}  {rss:>9.0}  {:>10.0}  {:>11.1}  {steps:>10}",
                wall * 1000.0 / (nodes as f64 / 1000.0),
                rss * 1024.0 / nodes as f64
            ),
            None => println!("  {nodes:>6}  (the run failed)"),
        }
    }
}

fn primitive_cost() {
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let session = Session::new(SessionOptions {
            seed: Some(1),
            ..SessionOptions::new(BackendSource::Sim {
                config: Box::default(),
                values: Box::default(),
            })
        })
        .expect("session");
        let host = session.host();
        let n = 1_000_000;
        for (what, body) in [
            (
                "empty Lua loop (baseline)",
                "local x = 0 for i = 1, N do x = x + i end",
            ),
            (
                "sync primitive now()",
                "local now = now for i = 1, N do now() end",
            ),
            (
                "sync primitive xid(79)",
                "local xid = xid for i = 1, N do xid(79) end",
            ),
            (
                "async primitive node_info(n)",
                "local f, n = node_info, 'gpu-node-001' for i = 1, N / 10 do f(n) end",
            ),
        ] {
            let code = body.replace("N", &n.to_string());
            let calls = if what.contains("async") { n / 10 } else { n };
            let start = Instant::now();
            host.eval(&code, "=bench").await.expect("bench chunk");
            let per = start.elapsed().as_nanos() as f64 / calls as f64;
            println!("  {what:<32} {per:>8.0} ns/call");
        }
    });
}

/// The shipped binary's allocator (src/alloc.rs), so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: gpu_fault_injector::alloc::ByRole = gpu_fault_injector::alloc::ByRole;

fn main() {
    gpu_fault_injector::alloc::use_mimalloc();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let nodes = arg("--nodes", 1000);
    let faults = arg("--faults", nodes * 6 / 5);
    let seed = arg("--seed", 42) as u64;
    let flag = |f: &str| std::env::args().any(|a| a == f);
    if flag("--row") {
        let d = day(nodes, faults, seed, true);
        println!(
            "row {:.3} {:.1} {} {}",
            d.wall.as_secs_f64(),
            peak_rss_mib(),
            d.injections,
            d.steps
        );
        return;
    }
    if flag("--guard-only") {
        day_with(nodes, faults, seed, false, guardrails());
        return;
    }
    if !flag("--calls-only") {
        day(nodes, faults, seed, false);
        day_with(nodes, faults, seed, false, guardrails());
        if !flag("--no-scaling") {
            scaling(seed);
        }
    }
    if !flag("--no-calls") {
        println!("Lua -> Rust primitive call cost:");
        primitive_cost();
    }
}
