//! The kube backend end to end, through the `gfi` binary: plans run with `--backend kube`
//! against the Kubernetes API server double, with real `gfi agent` processes writing to files,
//! and NVSentinel's reactions played by a reactor that detects an XID only where the written
//! bytes parse as NVSentinel would parse them.

#[path = "kube_e2e/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "kube_double/mod.rs"]
mod kube_double;
#[path = "kube_e2e/reactor.rs"]
mod reactor;

use cluster::{AGENT_NS, Cluster};
use k8s_openapi::api::core::v1::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xid79_recovery_example_runs_unchanged_on_kube() {
    let c = Cluster::start(2).await;
    let (code, out) = c.gfi_run(&["--agent-access", "direct", "examples/02_xid79_recovery.lua"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("✓ check recovered within 15 minutes"), "{out}");
    assert!(
        out.contains("uncordon-reason: Syslog-fatal-error-ruleset-removed"),
        "{out}"
    );
    // The line the agent wrote is the one the reactor detected, with the run's provenance.
    let kmsg = c.kmsg(0);
    assert!(
        kmsg.contains("NVRM: Xid (PCI:") && kmsg.contains("): 79, "),
        "{kmsg}"
    );
    assert!(kmsg.contains("name=gfi:"), "{kmsg}");
    // The injection left its trace on the Node.
    let events: Vec<Event> = c.double.list();
    let ours: Vec<&Event> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("XidInjected"))
        .collect();
    assert_eq!(ours.len(), 1, "{events:?}");
    let e = ours[0];
    assert_eq!(e.involved_object.name.as_deref(), Some("gpu-node-001"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.reporting_component.as_deref(), Some("gfi"));
    let msg = e.message.clone().unwrap_or_default();
    assert!(msg.contains("XID 79 on GPU 0 (PCI 0000:"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xid_sweep_script_runs_unchanged_on_kube() {
    let c = Cluster::start(1).await;
    let (code, out) = c.gfi_run(&[
        "--agent-access",
        "direct",
        "scripts/xid_sweep.lua",
        "--arg",
        "only=79,13",
        "--arg",
        "hold=3s",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("XID 79"), "{out}");
    assert!(out.contains("XID 13"), "{out}");
    let seen = c.reactor.as_ref().unwrap().seen.borrow().clone();
    assert_eq!(
        seen.iter().map(|r| r.xid).collect::<Vec<_>>(),
        [13, 79],
        "{seen:?}"
    );
}

/// Runs `args` with `--backend kube` on a fresh cluster of `nodes` nodes; must exit 0.
async fn runs_on_kube(nodes: usize, args: &[&str]) -> (Cluster, String) {
    let c = Cluster::start(nodes).await;
    let (code, out) = c.gfi_run(args);
    assert_eq!(code, Some(0), "gfi run {args:?}:\n{out}");
    (c, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_01_first_injection_on_kube() {
    let (_c, out) = runs_on_kube(1, &["examples/01_first_injection.lua"]).await;
    assert!(out.contains("cordoned after"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_03_nonfatal_xid_on_kube() {
    let (_c, out) = runs_on_kube(2, &["examples/03_nonfatal_xid.lua", "--arg", "window=2s"]).await;
    assert!(out.contains("✓ check an Event was recorded"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_04_malformed_line_on_kube() {
    let (c, out) = runs_on_kube(4, &["examples/04_malformed_line.lua", "--arg", "window=2s"]).await;
    assert!(out.contains("✓ check the unguarded line is not"), "{out}");
    let seen = c.reactor.as_ref().unwrap().seen.borrow().clone();
    assert_eq!(
        seen.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(),
        ["gpu-node-003"],
        "only the guarded line parses as NVSentinel parses: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_05_concurrent_faults_on_kube() {
    let (_c, out) = runs_on_kube(
        3,
        &["examples/05_concurrent_faults.lua", "--arg", "hold=2s"],
    )
    .await;
    assert!(out.contains("✓ check gpu-node-003 XID 74"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_06_checks_and_cleanup_on_kube() {
    let (c, out) = runs_on_kube(
        5,
        &["examples/06_checks_and_cleanup.lua", "--arg", "hold=2s"],
    )
    .await;
    assert!(
        out.contains("✓ check XID 74 leaves the node cordoned"),
        "{out}"
    );
    let node: k8s_openapi::api::core::v1::Node = c.double.get("", "gpu-node-005").unwrap();
    assert_ne!(
        node.spec.and_then(|s| s.unschedulable),
        Some(true),
        "the cleanup uncordoned the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_random_day_on_kube() {
    let (_c, out) = runs_on_kube(
        3,
        &[
            "--seed",
            "42",
            "scripts/random_day.lua",
            "--arg",
            "duration=20s",
            "--arg",
            "faults=4",
            "--arg",
            "hold=2s",
        ],
    )
    .await;
    assert!(
        out.contains("✓ check every injected fault got the expected reaction"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_ready_agent_says_what_it_found() {
    let c = Cluster::start(1).await;
    c.set_pod_status(AGENT_NS, "gpu-fault-injector-kernel-00001", None, false);
    let script = c.dir.path().join("inject.lua");
    std::fs::write(
        &script,
        "local f, err = inject_xid('gpu-node-001', 0, 79)\nassert(f == nil)\nprint('ERR: ' .. err)\n",
    )
    .unwrap();
    let (code, out) = c.gfi_run(&[script.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ERR: inject_xid: node gpu-node-001: injecting is not possible now: its gfi agent is not Ready: gpu-fault-injector-kernel-00001 (Running, not Ready)"),
        "{out}"
    );
    assert_eq!(c.kmsg(0), "", "nothing was written");
}
