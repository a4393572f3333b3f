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

/// An injection on gpu-node-001 that must be refused: prints `ERR: <the error>`.
fn refused_injection(c: &Cluster) -> (Option<i32>, String) {
    let script = c.dir.path().join("inject.lua");
    std::fs::write(
        &script,
        "local f, err = inject_xid('gpu-node-001', 0, 79)\nassert(f == nil)\nprint('ERR: ' .. err)\n",
    )
    .unwrap();
    c.gfi_run(&[script.to_str().unwrap()])
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
    let (code, out) = refused_injection(&c);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ERR: inject_xid: node gpu-node-001: injecting is not possible now: its gfi agent is not Ready: gpu-fault-injector-kernel-00001 (Running, not Ready)"),
        "{out}"
    );
    assert_eq!(c.kmsg(0), "", "nothing was written");
}

/// A plan that makes every kind of API call the kube backend has: nodes, node facts, GPUs, an
/// injection (with its pre-flight and Event), the kernel log, a wait, pods, Events, the breaker
/// and an uncordon.
const EVERY_CALL: &str = r#"
local n = assert(gpu_nodes())[1]
assert(node_info(n))
assert(#assert(gpus(n)) == 8)
local f = assert(inject_xid(n, 1, 79))
assert(#assert(kmsg_tail(n, { limit = 5 })) >= 1)
assert(wait_cordoned(n, { timeout = "1m" }))
assert(wait_uncordoned(n, { timeout = "1m" }))
assert(pods(n))
assert(events(n))
assert(circuit_breaker())
assert(uncordon(n))
print("EVERY CALL MADE")
"#;

/// Whether a request is allowed by the ClusterRole, or by a Role of the request's namespace.
fn allowed(
    cluster: &[k8s_openapi::api::rbac::v1::PolicyRule],
    roles: &[k8s_openapi::api::rbac::v1::Role],
    r: &kube_double::RequestRecord,
) -> bool {
    kube_double::access::rbac_allows(cluster, r, false)
        || roles.iter().any(|role| {
            role.metadata.namespace.as_deref() == Some(r.namespace.as_str())
                && kube_double::access::rbac_allows(role.rules.as_deref().unwrap_or(&[]), r, false)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_roles_cover_exactly_the_calls_the_backend_makes() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
    let text = std::fs::read_to_string("deploy/base/rbac.yaml").unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let cluster_role: ClusterRole = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .map(|d| serde_yaml::from_value(d.clone()).unwrap())
        .unwrap();
    let roles: Vec<Role> = docs
        .iter()
        .filter(|d| d["kind"] == "Role")
        .map(|d| serde_yaml::from_value(d.clone()).unwrap())
        .collect();
    let cluster_rules = cluster_role.rules.clone().unwrap_or_default();

    let c = Cluster::start(1).await;
    let script = c.dir.path().join("every_call.lua");
    std::fs::write(&script, EVERY_CALL).unwrap();
    c.double.clear_requests();
    let (code, out) = c.gfi_run(&[script.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("EVERY CALL MADE"), "{out}");
    // The backend's requests, not the reactor's (the reactor plays NVSentinel with its own
    // rights): the reactor only patches nodes' status, creates RebootNodes and Events of
    // NVSentinel's.
    let made: Vec<kube_double::RequestRecord> = c
        .double
        .requests()
        .into_iter()
        .filter(|r| {
            !(r.subresource == "status"
                || r.resource == "rebootnodes" && r.verb == "create"
                || r.verb == "patch" && r.body.contains("nvsentinel-state")
                || r.verb == "create" && r.resource == "events" && !r.body.contains("XidInjected"))
        })
        .collect();
    for r in &made {
        assert!(
            allowed(&cluster_rules, &roles, r),
            "deploy/base/rbac.yaml does not allow a call the kube backend makes: {} {} {}/{} {:?}",
            r.verb,
            r.resource_path(),
            r.namespace,
            r.name,
            r.group
        );
    }
    // Nothing more: every verb of every rule is used by some call (watching RebootNodes is
    // wait_remediation's, which this plan does not call).
    let unused = |rules: &[PolicyRule], ns: Option<&str>| {
        let mut out = Vec::new();
        for rule in rules {
            for verb in &rule.verbs {
                for res in rule.resources.clone().unwrap_or_default() {
                    let used = made.iter().any(|r| {
                        r.verb == *verb
                            && r.resource_path() == res
                            && ns.is_none_or(|n| n == r.namespace)
                    });
                    if !used && res != "rebootnodes" {
                        out.push(format!("{verb} {res} in {}", ns.unwrap_or("the cluster")));
                    }
                }
            }
        }
        out
    };
    let mut extra = unused(&cluster_rules, None);
    for role in &roles {
        extra.extend(unused(
            role.rules.as_deref().unwrap_or(&[]),
            role.metadata.namespace.as_deref(),
        ));
    }
    assert!(
        extra.is_empty(),
        "deploy/base/rbac.yaml grants what no call uses: {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_pod_proxy_names_the_rule_to_grant() {
    let c = Cluster::start(1).await;
    c.double.forbid(
        kube_double::Matcher::default()
            .resource("pods")
            .subresource("proxy"),
    );
    let (code, out) = refused_injection(&c);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("forbidden: pods \"gpu-fault-injector-kernel-00001:")
            && out.contains(
                "(grant create and get on pods/proxy in namespace fault-injection-system"
            ),
        "{out}"
    );
    assert_eq!(c.kmsg(0), "", "nothing was written");
}

/// In front of a real agent: the first injection is passed on (the line is written), but its
/// answer is replaced by a 500, as when an agent fails after the write or a proxy drops the
/// answer. Everything else passes through.
async fn flaky_front(listen: std::net::SocketAddr, agent: std::net::SocketAddr) {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let failed_once = Arc::new(AtomicBool::new(false));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let client = client.clone();
        let failed_once = failed_once.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            let is_inject = parts.uri.path() == "/inject-xid";
            let pq = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            parts.uri = format!("http://{agent}{pq}").parse().unwrap();
            let bytes = body.collect().await.unwrap().to_bytes();
            let resp = client
                .request(http::Request::from_parts(parts, Body::from(bytes)))
                .await
                .unwrap();
            if is_inject && !failed_once.swap(true, Ordering::SeqCst) {
                return axum::response::Response::builder()
                    .status(500)
                    .header("content-type", "application/json")
                    .body(Body::from(r#"{"detail":"the answer was lost"}"#))
                    .unwrap();
            }
            let (p, b) = resp.into_parts();
            axum::response::Response::from_parts(p, Body::new(b))
        }
    });
    let l = tokio::net::TcpListener::bind(listen).await.unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_500_is_retried_with_the_same_fault_id_and_injects_once() {
    let c = Cluster::start(1).await;
    let front: std::net::SocketAddr = ([127, 0, 3, 2], c.port).into();
    flaky_front(front, ([127, 0, 1, 2], c.port).into()).await;
    c.set_pod_status(
        AGENT_NS,
        "gpu-fault-injector-kernel-00001",
        Some("127.0.3.2".into()),
        true,
    );
    let script = c.dir.path().join("inject.lua");
    std::fs::write(
        &script,
        "local f = assert(inject_xid('gpu-node-001', 0, 79, {preflight = false}))\nprint('SEQ ' .. tostring(f.seq))\n",
    )
    .unwrap();
    let (code, out) = c.gfi_run(&[script.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SEQ "), "{out}");
    assert_eq!(
        c.kmsg(0).lines().count(),
        1,
        "one write, whatever the retries: {}",
        c.kmsg(0)
    );
}

/// A wait in progress when its watch is cut, and then finds its resourceVersion expired
/// (410 Gone), still sees the cordon that comes after: kube-runtime's watcher re-lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_survives_a_cut_watch_and_410_gone() {
    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use std::time::Duration;
    let c = std::sync::Arc::new(Cluster::start(1).await);
    let script = c.dir.path().join("wait.lua");
    std::fs::write(
        &script,
        "local r = assert(wait_cordoned('gpu-node-001', { timeout = '60s' }))\nprint('CORDONED ' .. tostring(r.satisfied ~= false))\n",
    )
    .unwrap();
    let run = c.gfi_run_in_background(&[script.to_str().unwrap()]);
    c.double
        .wait_for("the wait's node watch", Duration::from_secs(30), |v| {
            v.open_watches("nodes") >= 1
        })
        .await;
    let lists_before = c
        .double
        .requests()
        .iter()
        .filter(|r| r.resource == "nodes" && r.verb == "list")
        .count();
    c.double.cut_watches();
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "bump", "namespace": "default"}}),
    )
    .unwrap();
    c.double.create(&cm).unwrap();
    c.double.compact();
    c.double
        .wait_for("a re-list after 410 Gone", Duration::from_secs(30), |v| {
            v.requests()
                .iter()
                .filter(|r| r.resource == "nodes" && r.verb == "list")
                .count()
                > lists_before
                && v.open_watches("nodes") >= 1
        })
        .await;
    c.double
        .patch::<Node>(
            "",
            "gpu-node-001",
            kube_double::PatchType::Merge,
            &serde_json::json!({"spec": {"unschedulable": true}}),
        )
        .unwrap();
    let (code, out) = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("gfi run ends")
        .unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("CORDONED true"), "{out}");
}

/// wait_drained, wait_remediation and heal on kube, as on sim.
const DRAIN_REMEDIATE_HEAL: &str = r#"
local n = node("gpu-node-001")
local fault = assert(inject_xid(n, 0, 79))
local d = assert(wait_drained(n, { since = fault, timeout = "1m" }))
print("EVICTED " .. #d.evicted .. " " .. d.evicted[1].namespace .. "/" .. d.evicted[1].name)
local r = assert(wait_remediation(n, { since = fault, timeout = "1m" }))
print("CR " .. r.kind .. " " .. r.name .. " NodeReady=" .. r.conditions.NodeReady.status)
assert(wait_uncordoned(n, { timeout = "1m" }))
-- creationTimestamp has whole seconds: a CR of the same second as `since` counts.
sleep(1.5)
local none, msg = wait_remediation(n, { since = now(), timeout = "1s" })
assert(none == nil)
print("NONE " .. msg)
assert(inject_xid(n, 1, 74))
assert(wait_state(n, "remediation-failed", { timeout = "1m" }))
local h = assert(heal(n))
print("HEALED " .. tostring(h.uncordoned) .. " " .. table.concat(h.removed_labels, ","))
assert(not n:cordoned() and n:labels()["dgxc.nvidia.com/nvsentinel-state"] == nil)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_remediation_and_heal_on_kube() {
    let c = Cluster::start(1).await;
    c.double.ensure_namespace("ml");
    c.add_pod(
        "ml",
        "trainer-0",
        "gpu-node-001",
        serde_json::json!({"app": "trainer"}),
        Some("10.0.0.9".into()),
        true,
    );
    let script = c.dir.path().join("drh.lua");
    std::fs::write(&script, DRAIN_REMEDIATE_HEAL).unwrap();
    let (code, out) = c.gfi_run(&[script.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("EVICTED 1 ml/trainer-0"), "{out}");
    assert!(
        out.contains("CR RebootNode maintenance-gpu-node-001-"),
        "{out}"
    );
    assert!(out.contains("NodeReady=True"), "{out}");
    assert!(
        out.contains("NONE wait_remediation: gpu-node-001 not RebootNode complete within 1s"),
        "{out}"
    );
    assert!(
        out.contains("HEALED true k8saas.nvidia.com/cordon-by,k8saas.nvidia.com/uncordon-by,k8saas.nvidia.com/uncordon-reason,dgxc.nvidia.com/nvsentinel-state"),
        "{out}"
    );
}

/// The schedule lines of a `--dry-run`'s output.
fn schedule_of(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("gpu-node-") && l.trim_end().ends_with("followed"))
        .map(|l| l.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_gives_the_same_schedule_on_kube_as_on_the_sim_and_injects_nothing() {
    let c = Cluster::start(3).await;
    let args = [
        "--seed",
        "7",
        "scripts/guarded_soak.lua",
        "--dry-run",
        "--arg",
        "duration=1h",
    ];
    let (code, kube_out) = c.gfi_run(&args);
    assert_eq!(code, Some(0), "{kube_out}");
    let sim = std::process::Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args(["run", "--backend", "sim", "--sim-nodes", "3"])
        .args(args)
        .env_remove("GFI_BACKEND")
        .output()
        .unwrap();
    let sim_out = String::from_utf8_lossy(&sim.stdout).to_string();
    assert!(sim.status.success(), "{sim_out}");
    let kube_schedule = schedule_of(&kube_out);
    assert!(kube_schedule.len() >= 3, "{kube_out}");
    assert_eq!(kube_schedule, schedule_of(&sim_out));
    assert!(c.kmsg(0).is_empty(), "a dry run wrote to the kernel log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardrail_stops_a_plan_on_kube_and_its_cleanup_runs() {
    let c = Cluster::start(2).await;
    let script = c.dir.path().join("guarded.lua");
    std::fs::write(
        &script,
        r#"guard { max_unavailable = 1 }
local ns = gpu_nodes()
cleanup(function()
  for _, n in ipairs(ns) do if n:cordoned() then uncordon(n) end end
  print("cleanup ran")
end, "uncordon")
assert(inject_xid(ns[1], 0, 79))
assert(wait_cordoned(ns[1], { timeout = "1m" }))
inject_xid(ns[2], 0, 79)
print("not reached")
"#,
    )
    .unwrap();
    let (code, out) = c.gfi_run(&["--agent-access", "direct", script.to_str().unwrap()]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("guardrail stop (max_unavailable)"), "{out}");
    assert!(
        out.contains("cleanup ran") && !out.contains("not reached"),
        "{out}"
    );
    assert!(
        c.kmsg(1).is_empty(),
        "the refused injection reached the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tripwire_stops_a_plan_on_kube_when_a_real_xid_appears_on_a_target() {
    use std::time::Duration;
    let c = std::sync::Arc::new(Cluster::start(2).await);
    let script = c.dir.path().join("watched.lua");
    std::fs::write(
        &script,
        r#"guard {}
cleanup(function() print("cleanup ran") end, "note")
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 13))
-- The node's condition turns True only for the real fault written beside the run's own line.
wait_condition(n, "SysLogsXIDError", { timeout = "60s" })
print("not reached")
"#,
    )
    .unwrap();
    let run = c.gfi_run_in_background(&["--agent-access", "direct", script.to_str().unwrap()]);
    // The reactor (NVSentinel's stand-in) has read the run's own line.
    let mut seen = c.reactor.as_ref().unwrap().seen.clone();
    tokio::time::timeout(
        Duration::from_secs(30),
        seen.wait_for(|v| v.iter().any(|r| r.xid == 13)),
    )
    .await
    .expect("the run's own line never landed")
    .unwrap();
    assert!(c.kmsg(0).contains("name=gfi:"));
    // What the driver itself writes: no provenance marker.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(c.kmsg_path(0))
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        b"<3>NVRM: NVRM: Xid (PCI:0000:3b:00): 79, pid=4242, name=python3, GPU has fallen off the bus.\n",
    )
    .unwrap();
    let (code, out) = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("gfi run ended")
        .unwrap();
    assert_eq!(code, Some(5), "{out}");
    assert!(
        out.contains("tripwire: possible real GPU fault: gpu-node-001: XID 79"),
        "{out}"
    );
    assert!(
        out.contains("name=python3") && out.contains("cleanup ran"),
        "{out}"
    );
    assert!(!out.contains("not reached"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_scripts_run_unchanged_on_kube() {
    let (_c, out) = runs_on_kube(
        2,
        &[
            "--agent-access",
            "direct",
            "scripts/xid79_recovery.lua",
            "--arg",
            "within=5m",
        ],
    )
    .await;
    assert!(out.contains("✓ check XID 79 fully recovered"), "{out}");
    let (_c, out) = runs_on_kube(
        2,
        &[
            "--agent-access",
            "direct",
            "scripts/burst_probe.lua",
            "--arg",
            "count=3",
            "--arg",
            "within=2s",
            "--arg",
            "hold=2s",
        ],
    )
    .await;
    assert!(
        out.contains("3 lines within 2s did not cordon; 2 lines did not cordon"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tripwire_also_sees_a_real_xid_on_a_node_already_held_for_the_runs_own() {
    use k8s_openapi::api::core::v1::Node;
    use std::time::Duration;
    let c = std::sync::Arc::new(Cluster::start(2).await);
    let script = c.dir.path().join("held.lua");
    std::fs::write(
        &script,
        r#"guard {}
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 79))
assert(wait_cordoned(n, { timeout = "60s" }))
wait_label(n, "never-set", "x", { timeout = "60s" })
print("not reached")
"#,
    )
    .unwrap();
    let run = c.gfi_run_in_background(&["--agent-access", "direct", script.to_str().unwrap()]);
    // The run's own XID holds the node: its condition is True before the real one lands.
    c.double
        .wait_for("gpu-node-001 cordoned", Duration::from_secs(30), |v| {
            v.list::<Node>().iter().any(|n| {
                n.metadata.name.as_deref() == Some("gpu-node-001")
                    && n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
            })
        })
        .await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(c.kmsg_path(0))
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        b"<3>NVRM: NVRM: Xid (PCI:0000:3b:00): 48, pid=4242, name=python3, DBE (Double Bit Error) ECC Error.\n",
    )
    .unwrap();
    let (code, out) = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("gfi run ended")
        .unwrap();
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("gpu-node-001: XID 48"), "{out}");
}

/// Asks gpu-node-001's agent for its GPUs: prints `GPUS n` or `ERR: <the error>`.
fn ask_gpus(c: &Cluster, extra: &[&str]) -> (Option<i32>, String) {
    let script = c.dir.path().join("gpus.lua");
    std::fs::write(
        &script,
        "local g, err = gpus('gpu-node-001')\nif g then print('GPUS ' .. #g) else print('ERR: ' .. err) end\n",
    )
    .unwrap();
    let mut args = vec![script.to_str().unwrap()];
    args.extend_from_slice(extra);
    c.gfi_run(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_serving_https_are_verified_against_the_agent_ca() {
    let c = Cluster::start_tls(1).await;
    let tls = c.tls.as_ref().unwrap();
    let (ca, other) = (tls.ca.to_str().unwrap(), tls.other_ca.to_str().unwrap());
    // Directly, verified: the whole chain runs as over HTTP.
    let (code, out) = c.gfi_run(&[
        "examples/01_first_injection.lua",
        "--agent-access",
        "direct",
        "--agent-ca",
        ca,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("cordoned after"), "{out}");
    assert!(
        out.contains(
            "reached directly at their pod IPs over HTTPS, verified as gfi-agent.fault-injection-system.svc"
        ),
        "{out}"
    );
    // A certificate from another CA, or for another name, is refused, and nothing is asked.
    let (_, out) = ask_gpus(&c, &["--agent-access", "direct", "--agent-ca", other]);
    assert!(out.contains("ERR: gpus: node gpu-node-001"), "{out}");
    assert!(
        out.contains("invalid peer certificate")
            && out.contains("its certificate is not trusted for the name gfi-agent.fault-injection-system.svc (check --agent-ca"),
        "{out}"
    );
    let (_, out) = ask_gpus(
        &c,
        &[
            "--agent-access",
            "direct",
            "--agent-ca",
            ca,
            "--agent-server-name",
            "agent.example.com",
        ],
    );
    assert!(
        out.contains("certificate not valid for name")
            && out.contains("not trusted for the name agent.example.com"),
        "{out}"
    );
    // Plain HTTP to an agent that serves HTTPS gets no answer, and the error says what to do.
    let (_, out) = ask_gpus(&c, &["--agent-access", "direct"]);
    assert!(
        out.contains("ERR: gpus: node gpu-node-001")
            && out.contains("if the agents serve HTTPS (gfi agent --tls-cert), give --agent-ca"),
        "{out}"
    );
    // Through the pod proxy the API server speaks TLS to the agent, and the banner says it
    // does not verify the agent.
    let (code, out) = ask_gpus(&c, &["--agent-access", "proxy", "--agent-ca", ca]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("GPUS 8"), "{out}");
    assert!(
        out.contains("the API server does not verify the agents' certificate"),
        "{out}"
    );
    // A CA file that holds no certificate stops the run before it starts.
    std::fs::write(c.dir.path().join("empty.crt"), "").unwrap();
    let (code, out) = ask_gpus(
        &c,
        &[
            "--agent-ca",
            c.dir.path().join("empty.crt").to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("--agent-ca") && out.contains("no PEM certificate"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_agents_that_serve_plain_http_says_so() {
    let c = Cluster::start(1).await;
    let ca = c.dir.path().join("ca.crt");
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&ca, pair.cert.pem()).unwrap();
    let (_, out) = ask_gpus(
        &c,
        &[
            "--agent-access",
            "direct",
            "--agent-ca",
            ca.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("ERR: gpus: node gpu-node-001")
            && out.contains(
                "the agent does not speak HTTPS (is it started with --tls-cert and --tls-key?)"
            ),
        "{out}"
    );
}
