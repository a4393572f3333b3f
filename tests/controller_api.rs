//! `gfi controller` end to end: the built binary serving the seed's central API against the
//! Kubernetes API server double, with real `gfi agent` processes writing to files and a reactor
//! playing NVSentinel (the kube end-to-end harness). Every route; the seed's README curl call
//! and its pytest client's `httpx.post(...)` byte for byte; tokens, scopes and limits; records
//! that survive a restart of the controller.

#[allow(dead_code)]
#[path = "kube_e2e/cluster.rs"]
mod cluster;
mod common;
#[allow(dead_code)]
#[path = "kube_double/mod.rs"]
mod kube_double;
#[allow(dead_code)]
#[path = "kube_e2e/reactor.rs"]
mod reactor;

use cluster::{AGENT_NS, Cluster, Killed, NVSENTINEL_NS, node_name};
use common::{Lines, Resp, https_get, request};
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RUN_TOKEN: &str = "run-token-0123456789abcdef";
const READ_TOKEN: &str = "read-token-0123456789abcdef";

struct Controller {
    _child: Killed,
    addr: SocketAddr,
    logs: Lines,
}

impl Controller {
    async fn get(&self, path: &str, token: &str) -> Resp {
        let auth = format!("Bearer {token}");
        request(self.addr, "GET", path, &[("authorization", &auth)], b"").await
    }

    async fn post(&self, path: &str, token: &str, body: &str) -> Resp {
        let auth = format!("Bearer {token}");
        request(
            self.addr,
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await
    }

    /// The next audit line that contains all of `words`.
    fn audit_line(&mut self, words: &[&str]) -> String {
        tokio::task::block_in_place(|| {
            self.logs
                .until(&format!("an audit line with {words:?}"), |l| {
                    l.contains("gfi::audit") && words.iter().all(|w| l.contains(w))
                })
        })
    }
}

/// A started `gfi controller`, its address read from its listening line.
fn spawn_controller(mut cmd: Command) -> Controller {
    let mut child = cmd
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("POD_NAMESPACE")
        .env_remove("GFI_BACKEND")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning gfi controller");
    let mut logs = Lines::new(child.stderr.take().unwrap());
    let line = tokio::task::block_in_place(|| {
        logs.until("the controller's listening line", |l| {
            l.contains("gfi controller listening")
        })
    });
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no listen= in {line}"));
    Controller {
        _child: Killed(child),
        addr,
        logs,
    }
}

/// `gfi controller --backend kube` against the cluster, its tokens in files, on a free port.
fn start_controller(c: &Cluster, extra: &[&str]) -> Controller {
    let run = c.dir.path().join("run-tokens");
    let read = c.dir.path().join("read-tokens");
    std::fs::write(&run, format!("{RUN_TOKEN}\n")).unwrap();
    std::fs::write(&read, format!("{READ_TOKEN}\n")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gfi"));
    cmd.arg("controller")
        .args(["--backend", "kube", "--kubeconfig"])
        .arg(c.kubeconfig())
        .args([
            "--agent-access",
            "direct",
            "--agent-port",
            &c.port.to_string(),
        ])
        .args(["--listen", "127.0.0.1:0", "--namespace", AGENT_NS])
        .arg("--token-file")
        .arg(&run)
        .arg("--read-token-file")
        .arg(&read)
        .args(extra);
    spawn_controller(cmd)
}

/// One request written to the socket exactly as given; the answer's status and body.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> (u16, Value) {
    common::within("a raw HTTP exchange", async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed mid-answer: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if buf.len() >= end + 4 + len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                let body = serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap();
                return (status, body);
            }
        }
    })
    .await
}

/// A node whose "agent" is a stand-in that answers every call with `status` and `detail`, as
/// a gfi agent that refuses a request would.
async fn add_refusing_node(c: &Cluster, name: &str, ip: &str, status: u16, detail: &str) {
    add_stand_in_node(c, name, ip, Some((status, detail))).await
}

/// A node whose "agent" is a stand-in that answers every call with `answer` (status, detail),
/// or never answers at all.
async fn add_stand_in_node(c: &Cluster, name: &str, ip: &str, answer: Option<(u16, &str)>) {
    use axum::http::StatusCode;
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.present": "true",
            "nvsentinel.dgxc.nvidia.com/driver.installed": "true"}},
        "spec": {}
    }))
    .unwrap();
    c.double.create(&node).unwrap();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    c.double
        .patch_status::<Node>(
            "",
            name,
            kube_double::PatchType::Merge,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "", "lastTransitionTime": now, "lastHeartbeatTime": now}],
                "nodeInfo": {"bootID": "boot-1", "architecture": "amd64", "containerRuntimeVersion": "",
                "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "",
                "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}}),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind((ip, c.port)).await.unwrap();
    let answer = answer.map(|(status, detail)| {
        (
            StatusCode::from_u16(status).unwrap(),
            json!({ "detail": detail }).to_string(),
        )
    });
    let app = axum::Router::new().fallback(move || {
        let answer = answer.clone();
        async move {
            match answer {
                Some((code, body)) => (code, [("content-type", "application/json")], body),
                None => std::future::pending().await,
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    c.add_pod(
        AGENT_NS,
        &format!("gpu-fault-injector-kernel-{name}"),
        name,
        json!({"app": "gpu-fault-injector-kernel"}),
        Some(ip.to_string()),
        true,
    );
    c.add_pod(
        NVSENTINEL_NS,
        &format!("syslog-health-monitor-regular-{name}"),
        name,
        json!({"app.kubernetes.io/name": "syslog-health-monitor"}),
        Some(ip.to_string()),
        true,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_central_api_route_against_real_agents() {
    let c = Cluster::start(2).await;
    // Made before the controller starts, so its agent pod is in the controller's first view.
    add_refusing_node(
        &c,
        "gpu-node-409",
        "127.0.1.200",
        409,
        "fault_id x was already used for a different request",
    )
    .await;
    let mut ctl = start_controller(&c, &["--seed-compat-anonymous"]);
    let node = node_name(0);

    // The seed's README: curl -X POST http://fault-injection-api:8080/api/v1/faults/gpu/inject/xid-79
    //   -H "Content-Type: application/json" -d '{"node_name": "gpu-node-001", "gpu_id": 0}'
    let body = r#"{"node_name": "gpu-node-001", "gpu_id": 0}"#;
    let curl = format!(
        "POST /api/v1/faults/gpu/inject/xid-79 HTTP/1.1\r\nHost: fault-injection-api:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, a) = raw(ctl.addr, curl.as_bytes()).await;
    assert_eq!(status, 200, "{a}");
    for field in [
        "fault_id",
        "status",
        "fault_type",
        "target",
        "injected_at",
        "message",
    ] {
        assert!(a.get(field).is_some(), "{field} missing: {a}");
    }
    assert_eq!(a["status"], "injected");
    assert_eq!(a["fault_type"], "gpu_xid_79");
    assert_eq!(a["target"], "gpu-node-001/gpu0");
    let curl_id = a["fault_id"].as_str().unwrap().to_string();
    assert!(curl_id.starts_with("gpu_xid_79-"), "{curl_id}");
    // What gfi knows besides, and the line really in the node's kernel log.
    assert_eq!(
        a["agent_pod"],
        "fault-injection-system/gpu-fault-injector-kernel-00001"
    );
    assert!(a["kmsg_seq"].is_u64(), "{a}");
    assert!(a["pci"].is_string(), "{a}");
    assert_eq!(a["requested_by"], "anonymous");
    let line = a["line"].as_str().unwrap();
    assert!(c.kmsg(0).contains(line), "{line} not in {}", c.kmsg(0));
    assert!(line.contains(&format!("name=gfi:{curl_id}")), "{line}");
    ctl.audit_line(&["who=\"anonymous\"", "status=200", &curl_id]);

    // The seed's pytest client: httpx.post(f"{api_url}/api/v1/faults/gpu/inject/xid-79",
    //   json={"node_name": node_name, "gpu_id": gpu_id}, timeout=30); 200; response.json()["fault_id"].
    let body = r#"{"node_name":"gpu-node-001","gpu_id":0}"#;
    let httpx = format!(
        "POST /api/v1/faults/gpu/inject/xid-79 HTTP/1.1\r\nHost: fault-injection-api.fault-injection-system:8080\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\nUser-Agent: python-httpx/0.28.1\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{body}",
        body.len()
    );
    let (status, a) = raw(ctl.addr, httpx.as_bytes()).await;
    assert_eq!(status, 200, "{a}");
    let httpx_id = a["fault_id"].as_str().unwrap().to_string();
    assert_ne!(httpx_id, curl_id);

    // Any catalogue XID, not only the seed's eight; the path wins over the body's xid_type.
    let r = ctl
        .post(
            "/api/v1/faults/gpu/inject/xid-13",
            RUN_TOKEN,
            &format!(
                r#"{{"node_name": "{}", "gpu_id": 3, "xid_type": 79}}"#,
                node_name(1)
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["fault_type"], "gpu_xid_13");
    assert!(a["line"].as_str().unwrap().contains("): 13, "), "{a}");
    assert!(
        a["warnings"][0]
            .as_str()
            .unwrap()
            .contains("xid_type 79 was ignored"),
        "{a}"
    );
    assert_eq!(a["requested_by"], "run-token#1");
    let xid13 = a["fault_id"].as_str().unwrap().to_string();

    // The XID list: the whole catalogue, in the seed's shape.
    let r = ctl.get("/api/v1/faults/gpu/xid-types", READ_TOKEN).await;
    assert_eq!(r.status, 200);
    let types = r.json();
    let list = types["xid_types"].as_array().unwrap();
    assert_eq!(list.len(), gpu_fault_injector::xid::catalog::all().len());
    let x79 = list.iter().find(|t| t["code"] == 79).unwrap();
    assert_eq!(x79["severity"], "critical");
    assert!(x79["name"].is_string() && x79["description"].is_string());

    // The records: the seed's list shape, one record, active only.
    let r = ctl.get("/api/v1/faults", READ_TOKEN).await;
    assert_eq!(r.status, 200);
    let all = r.json();
    assert_eq!(all["count"], 3, "{all}");
    let ids: Vec<&str> = all["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [curl_id.as_str(), &httpx_id, &xid13]);
    let r = ctl
        .get(&format!("/api/v1/faults/{curl_id}"), READ_TOKEN)
        .await;
    assert_eq!(r.status, 200);
    let f = r.json();
    assert_eq!(f["type"], "gpu_xid_79");
    assert_eq!(f["details"]["xid_code"], 79);
    assert_eq!(f["node_name"], node);
    let r = ctl.get("/api/v1/faults/no-such-fault", READ_TOKEN).await;
    assert_eq!(r.status, 404);
    assert!(r.detail().contains("no-such-fault"), "{}", r.text());

    // Recover without heal reports the node; with heal it heals it.
    let r = ctl
        .post(&format!("/api/v1/faults/{xid13}/recover"), RUN_TOKEN, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = r.json();
    assert_eq!(rec["healed"], false);
    assert_eq!(rec["node"]["name"], node_name(1));
    // NVSentinel (the reactor) cordons the node of the XID 79; heal undoes it.
    c.double
        .wait_for(
            "the reactor to cordon gpu-node-001",
            common::DEADLINE,
            |d| {
                d.get::<Node>("", &node)
                    .and_then(|n| n.spec.and_then(|s| s.unschedulable))
                    == Some(true)
            },
        )
        .await;
    let r = ctl
        .post(
            &format!("/api/v1/faults/{curl_id}/recover"),
            RUN_TOKEN,
            r#"{"heal": true}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = r.json();
    assert_eq!(rec["healed"], true);
    assert_eq!(rec["status"], "recovered");
    assert_eq!(rec["heal"]["uncordoned"], true, "{rec}");
    assert_eq!(rec["node"]["cordoned"], false);
    assert!(rec["recovered_at"].is_string());
    let n: Node = c.double.get("", &node).unwrap();
    assert_ne!(n.spec.unwrap().unschedulable, Some(true));
    let r = ctl.get("/api/v1/faults?active_only=true", READ_TOKEN).await;
    let active: Vec<String> = r.json()["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!active.contains(&curl_id), "{active:?}");
    assert!(active.contains(&httpx_id), "{active:?}");

    // Errors pass through with their status: an unknown node or GPU, an agent's own refusal.
    let r = ctl
        .post(
            "/api/v1/faults/gpu/inject/xid-79",
            RUN_TOKEN,
            r#"{"node_name": "gpu-node-404", "gpu_id": 0}"#,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.detail().contains("gpu-node-404"), "{}", r.text());
    let r = ctl
        .post(
            "/api/v1/faults/gpu/inject/xid-79",
            RUN_TOKEN,
            &format!(r#"{{"node_name": "{node}", "gpu_id": 42}}"#),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.detail().contains("GPU 42"), "{}", r.text());
    let r = ctl
        .post(
            "/api/v1/faults/gpu/inject/xid-79",
            RUN_TOKEN,
            r#"{"node_name": "gpu-node-409", "gpu_id": 0}"#,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.detail()
            .contains("was already used for a different request"),
        "{}",
        r.text()
    );
    // A failed injection is a record too, and says so.
    let all = ctl.get("/api/v1/faults", READ_TOKEN).await.json();
    let failed: Vec<&Value> = all["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 3, "{all}");
    let r = ctl
        .post(
            &format!(
                "/api/v1/faults/{}/recover",
                failed[0]["id"].as_str().unwrap()
            ),
            RUN_TOKEN,
            "",
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // Health is open; metrics need a token and count what happened.
    let r = request(ctl.addr, "GET", "/health", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["service"], "fault-injection-api");
    assert_eq!(
        request(ctl.addr, "GET", "/metrics", &[], b"").await.status,
        401
    );
    let m = ctl.get("/metrics", READ_TOKEN).await.text();
    for want in [
        "gfi_controller_injections_total{xid=\"79\",outcome=\"injected\"} 2",
        "gfi_controller_injections_total{xid=\"13\",outcome=\"injected\"} 1",
        "gfi_controller_injections_total{xid=\"79\",outcome=\"node_not_found\"} 1",
        "gfi_controller_agent_errors_total{node=\"gpu-node-409\",kind=\"agent\"} 1",
        "gfi_controller_records{kind=\"fault\"} 6",
    ] {
        assert!(m.contains(want), "{want} missing from\n{m}");
    }
}

/// The stage histograms' counts in a `/metrics` text: stage -> count.
fn stage_counts(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    let re =
        regex::Regex::new(r#"gfi_controller_stage_seconds_count\{stage="(\w+)"\} (\d+)"#).unwrap();
    re.captures_iter(metrics)
        .map(|c| (c[1].to_string(), c[2].parse().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_latencies_follow_a_central_api_injection_through_nvsentinels_reaction() {
    let c = Cluster::start(1).await;
    let ctl = start_controller(&c, &[]);
    let before = stage_counts(&ctl.get("/metrics", READ_TOKEN).await.text());
    assert!(before.values().all(|n| *n == 0), "{before:?}");
    let r = ctl
        .post(
            "/api/v1/faults/gpu/inject/xid-79",
            RUN_TOKEN,
            r#"{"node_name": "gpu-node-001", "gpu_id": 0}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The reactor plays NVSentinel's whole chain (condition, cordon, drain, reboot, uncordon)
    // with no wait running: the controller's one watcher over the node it injected on sees it.
    let want: std::collections::BTreeMap<String, u64> = [
        "cordoned",
        "detected",
        "drained",
        "remediated",
        "uncordoned",
    ]
    .iter()
    .map(|s| (s.to_string(), 1))
    .collect();
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let (counts, text) = loop {
        let text = ctl.get("/metrics", READ_TOKEN).await.text();
        let counts = stage_counts(&text);
        if counts == want || std::time::Instant::now() > deadline {
            break (counts, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(counts, want, "{text}");
    // Each stage came after the injection and in NVSentinel's order: the sums grow.
    let sum = |stage: &str| -> f64 {
        let re = regex::Regex::new(&format!(
            r#"gfi_controller_stage_seconds_sum\{{stage="{stage}"\}} ([0-9.e+-]+)"#
        ))
        .unwrap();
        re.captures(&text).unwrap()[1].parse().unwrap()
    };
    let order = [
        "detected",
        "cordoned",
        "drained",
        "remediated",
        "uncordoned",
    ];
    for pair in order.windows(2) {
        assert!(
            sum(pair[0]) > 0.0 && sum(pair[0]) <= sum(pair[1]),
            "{} then {}:\n{text}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_and_bad_requests_get_clear_4xx() {
    let c = Cluster::start(1).await;
    let mut ctl = start_controller(&c, &[]);
    let inject = "/api/v1/faults/gpu/inject/xid-79";
    let good = r#"{"node_name": "gpu-node-001", "gpu_id": 0}"#;

    // Without --seed-compat-anonymous the seed's routes need a token too.
    let r = request(
        ctl.addr,
        "POST",
        inject,
        &[("content-type", "application/json")],
        good.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    ctl.audit_line(&["refused (missing token)", "status=401"]);
    // A wrong token.
    let r = ctl.post(inject, "not-the-token-0123456789", good).await;
    assert_eq!(r.status, 401);
    assert!(r.detail().contains("not valid"), "{}", r.text());
    // A read token reads but does not inject.
    let r = ctl.post(inject, READ_TOKEN, good).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.detail().contains("needs scope run"), "{}", r.text());
    ctl.audit_line(&["who=\"read-token#1\"", "status=403"]);
    assert_eq!(ctl.get("/api/v1/faults", READ_TOKEN).await.status, 200);
    assert!(c.kmsg(0).is_empty(), "nothing was injected: {}", c.kmsg(0));

    // An oversized body.
    let big = format!(
        r#"{{"node_name": "gpu-node-001", "pad": "{}"}}"#,
        "x".repeat(70_000)
    );
    let r = ctl.post(inject, RUN_TOKEN, &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.detail().contains("at most"), "{}", r.text());
    // Malformed JSON, wrong types, a missing field: 422 naming each field.
    let r = ctl
        .post(inject, RUN_TOKEN, r#"{"node_name": "gpu-node-001", "#)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["detail"][0]["type"], "json_invalid");
    let r = ctl
        .post(
            inject,
            RUN_TOKEN,
            r#"{"node_name": ["x"], "gpu_id": "zero"}"#,
        )
        .await;
    assert_eq!(r.status, 422);
    let locs: Vec<Value> = r.json()["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"][1].clone())
        .collect();
    assert_eq!(locs, [json!("node_name"), json!("gpu_id")]);
    let r = ctl.post(inject, RUN_TOKEN, r#"{"gpu_id": 0}"#).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["type"], "missing");
    // An XID the catalogue does not have, or no number at all.
    for path in [
        "/api/v1/faults/gpu/inject/xid-999",
        "/api/v1/faults/gpu/inject/xid-abc",
    ] {
        let r = ctl.post(path, RUN_TOKEN, good).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.detail().contains("xid-types"), "{}", r.text());
    }
    // A bad query and a bad recover body.
    let r = ctl
        .get("/api/v1/faults?active_only=perhaps", READ_TOKEN)
        .await;
    assert_eq!(r.status, 422);
    let r = ctl.post(inject, RUN_TOKEN, good).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["fault_id"].as_str().unwrap().to_string();
    let r = ctl
        .post(
            &format!("/api/v1/faults/{id}/recover"),
            RUN_TOKEN,
            r#"{"heal": "yes"}"#,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    // An unknown route, a known one with the wrong method.
    assert_eq!(ctl.get("/api/v2/nothing", READ_TOKEN).await.status, 404);
    let r = ctl.get(inject, READ_TOKEN).await;
    assert_eq!(r.status, 405);
    assert!(r.detail().contains("GET"), "{}", r.text());
    // A rotated token works at once, and the old one stops.
    let run = c.dir.path().join("run-tokens");
    let tmp = c.dir.path().join("run-tokens.new");
    std::fs::write(&tmp, "rotated-run-token-0123456789\n").unwrap();
    std::fs::rename(&tmp, &run).unwrap();
    assert_eq!(ctl.post(inject, RUN_TOKEN, good).await.status, 401);
    assert_eq!(
        ctl.post(inject, "rotated-run-token-0123456789", good)
            .await
            .status,
        200
    );
}

fn record_maps(c: &Cluster, kind: &str) -> Vec<ConfigMap> {
    c.double
        .list::<ConfigMap>()
        .into_iter()
        .filter(|cm| {
            cm.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("gfi.dev/record"))
                .map(String::as_str)
                == Some(kind)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_restart_and_a_run_in_flight_is_marked_interrupted() {
    let c = Cluster::start(1).await;
    let node = node_name(0);
    let ctl = start_controller(&c, &["--retention", "2"]);
    let mut ids = Vec::new();
    for gpu in 0..3 {
        let r = ctl
            .post(
                "/api/v1/faults/gpu/inject/xid-79",
                RUN_TOKEN,
                &format!(r#"{{"node_name": "{node}", "gpu_id": {gpu}}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()["fault_id"].as_str().unwrap().to_string());
    }
    // The retention keeps the newest two, in the cluster too.
    let maps = record_maps(&c, "fault");
    assert_eq!(maps.len(), 2, "{maps:?}");
    let cm = &maps[0];
    assert_eq!(
        cm.metadata.labels.as_ref().unwrap()["gfi.dev/status"],
        "injected"
    );
    // A run the run manager was running when the controller died, as its record was kept.
    let run = json!({
        "id": "r00abc1", "status": "running", "script": "plan.lua", "started_by": "run-token#1",
        "journal": [{"kind": "inject", "node": node, "message": "XID 79"}]
    });
    let run_cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "gfi-run-r00abc1", "namespace": AGENT_NS,
            "labels": {"gfi.dev/record": "run", "gfi.dev/status": "running"}},
        "data": {"record.json": run.to_string()}
    }))
    .unwrap();
    c.double.create(&run_cm).unwrap();
    c.double
        .wait_for("the reactor to cordon the node", common::DEADLINE, |d| {
            d.get::<Node>("", &node)
                .and_then(|n| n.spec.and_then(|s| s.unschedulable))
                == Some(true)
        })
        .await;
    // An injection under way: its node's agent never answers.
    add_stand_in_node(&c, "gpu-node-hang", "127.0.1.201", None).await;
    let addr = ctl.addr;
    let hanging = tokio::spawn(async move {
        request(
            addr,
            "POST",
            "/api/v1/faults/gpu/inject/xid-48",
            &[
                ("authorization", &format!("Bearer {RUN_TOKEN}")),
                ("content-type", "application/json"),
            ],
            br#"{"node_name": "gpu-node-hang", "gpu_id": 1}"#,
        )
        .await
    });
    let injecting = |maps: Vec<ConfigMap>| {
        maps.into_iter().find(|cm| {
            cm.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("gfi.dev/status").map(String::as_str) == Some("injecting"))
        })
    };
    c.double
        .wait_for(
            "the record of the injection under way",
            common::DEADLINE,
            |d| injecting(d.list()).is_some(),
        )
        .await;
    let hung_id = injecting(c.double.list())
        .unwrap()
        .metadata
        .annotations
        .unwrap()["gfi.dev/id"]
        .clone();
    hanging.abort();
    drop(ctl); // killed: a crash, not a graceful stop

    let ctl = start_controller(&c, &["--retention", "2"]);
    // The injection under way is on record, interrupted, saying where to look.
    let r = ctl
        .get(&format!("/api/v1/faults/{hung_id}"), READ_TOKEN)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f = r.json();
    assert_eq!(f["status"], "interrupted", "{f}");
    assert_eq!(f["node_name"], "gpu-node-hang");
    assert!(
        f["error"].as_str().unwrap().contains(&format!(
            "whether the line was written is unknown: look for fault_id {hung_id} in the kernel log of gpu-node-hang"
        )),
        "{f}"
    );
    let all = ctl.get("/api/v1/faults", READ_TOKEN).await.json();
    let kept: Vec<&str> = all["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    // The retention (2) kept the newest two, counting the injection under way.
    assert_eq!(kept, [ids[2].as_str(), &hung_id]);
    let r = ctl
        .get(&format!("/api/v1/faults/{}", ids[2]), READ_TOKEN)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["gpu_id"], 2);
    // The run: interrupted, with the node it injected on and whether it is cordoned now.
    let cm: ConfigMap = c.double.get(AGENT_NS, "gfi-run-r00abc1").unwrap();
    assert_eq!(
        cm.metadata.labels.as_ref().unwrap()["gfi.dev/status"],
        "interrupted"
    );
    let rec: Value = serde_json::from_str(&cm.data.unwrap()["record.json"]).unwrap();
    assert_eq!(rec["status"], "interrupted");
    assert_eq!(rec["interrupted"]["was"], "running");
    assert_eq!(
        rec["interrupted"]["nodes"],
        json!([{"node": node, "cordoned": true}])
    );
    assert!(rec["error"].as_str().unwrap().contains(&node), "{rec}");
    let m = ctl.get("/metrics", READ_TOKEN).await.text();
    assert!(
        m.contains("gfi_controller_runs_total{outcome=\"interrupted\"} 1"),
        "{m}"
    );
}

fn rules_of(file: &str) -> Vec<(Option<String>, Vec<k8s_openapi::api::rbac::v1::PolicyRule>)> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .map(|d| {
            let ns = d["metadata"]["namespace"].as_str().map(str::to_string);
            let rules = serde_yaml::from_value(d["rules"].clone()).unwrap();
            (ns, rules)
        })
        .collect()
}

/// What deploy/base/controller.yaml grants covers every call the controller makes, and grants
/// nothing else but what its plans' kube backend calls (deploy/base/rbac.yaml, checked against
/// those calls by tests/kube_e2e.rs): no pod proxy, no Secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_role_covers_exactly_its_calls() {
    let granted = rules_of("deploy/base/controller.yaml");
    let operator = rules_of("deploy/base/rbac.yaml");
    let c = Cluster::start(1).await;
    let node = node_name(0);
    let run_cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "gfi-run-r1", "namespace": AGENT_NS,
            "labels": {"gfi.dev/record": "run", "gfi.dev/status": "running"}},
        "data": {"record.json": json!({"id": "r1", "status": "running",
            "journal": [{"kind": "inject", "node": node}]}).to_string()}
    }))
    .unwrap();
    c.double.create(&run_cm).unwrap();
    c.double.clear_requests();
    let token = c.dir.path().join("token");
    let ctl = start_controller(
        &c,
        &[
            "--retention",
            "1",
            "--agent-token-file",
            token.to_str().unwrap(),
        ],
    );
    let mut ids = Vec::new();
    for gpu in 0..2 {
        let r = ctl
            .post(
                "/api/v1/faults/gpu/inject/xid-79",
                RUN_TOKEN,
                &format!(r#"{{"node_name": "{node}", "gpu_id": {gpu}}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()["fault_id"].as_str().unwrap().to_string());
    }
    for body in ["", r#"{"heal": true}"#] {
        let r = ctl
            .post(
                &format!("/api/v1/faults/{}/recover", ids[1]),
                RUN_TOKEN,
                body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The controller's requests, not the reactor's (it plays NVSentinel with its own rights).
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
    let allows = |rules: &[(Option<String>, Vec<k8s_openapi::api::rbac::v1::PolicyRule>)],
                  r: &kube_double::RequestRecord| {
        rules.iter().any(|(ns, rules)| {
            ns.as_deref().is_none_or(|n| n == r.namespace)
                && kube_double::access::rbac_allows(rules, r, false)
        })
    };
    for r in &made {
        assert!(
            allows(&granted, r),
            "deploy/base/controller.yaml does not allow a call the controller makes: {} {} {}/{}",
            r.verb,
            r.resource_path(),
            r.namespace,
            r.name
        );
    }
    for verb in ["list", "create", "update", "delete"] {
        assert!(
            made.iter()
                .any(|r| r.resource == "configmaps" && r.verb == verb && r.namespace == AGENT_NS),
            "the records need {verb} on configmaps: {made:?}"
        );
    }
    // Nothing more than its own calls and its plans' (the operator's, less proxy and Secrets).
    for (ns, rules) in &granted {
        for rule in rules {
            for res in rule.resources.clone().unwrap_or_default() {
                assert!(res != "pods/proxy" && res != "secrets", "{res} granted");
                for verb in &rule.verbs {
                    let used = made.iter().any(|r| {
                        &r.verb == verb
                            && r.resource_path() == res
                            && ns.as_deref().is_none_or(|n| n == r.namespace)
                    });
                    let plans_need = operator.iter().any(|(ons, orules)| {
                        ons == ns
                            && orules.iter().any(|o| {
                                o.verbs.contains(verb)
                                    && o.resources.clone().unwrap_or_default().contains(&res)
                            })
                    });
                    assert!(
                        used || plans_need,
                        "deploy/base/controller.yaml grants {verb} {res} in {ns:?}, which no call uses"
                    );
                }
            }
        }
    }
}

/// `--backend sim`: the same API over the simulated cluster (a demo without a cluster), its
/// records in memory, its NVSentinel on the wall clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_backend_serves_the_same_api() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gfi"));
    cmd.args([
        "controller",
        "--backend",
        "sim",
        "--sim-nodes",
        "2",
        "--seed",
        "3",
        "--seed-compat-anonymous",
        "--listen",
        "127.0.0.1:0",
    ]);
    let ctl = spawn_controller(cmd);
    let body = r#"{"node_name": "gpu-node-002", "gpu_id": 5}"#;
    let r = request(
        ctl.addr,
        "POST",
        "/api/v1/faults/gpu/inject/xid-48",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["target"], "gpu-node-002/gpu5");
    assert!(a["line"].as_str().unwrap().contains("): 48, "), "{a}");
    let id = a["fault_id"].as_str().unwrap();
    let health = request(ctl.addr, "GET", "/health", &[], b"").await.json();
    assert!(
        health["records"].as_str().unwrap().contains("memory"),
        "{health}"
    );
    let r = request(ctl.addr, "GET", "/api/v1/faults", &[], b"").await;
    assert_eq!(r.json()["count"], 1);
    let r = request(
        ctl.addr,
        "POST",
        &format!("/api/v1/faults/{id}/recover"),
        &[("content-type", "application/json")],
        br#"{"heal": true}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "recovered");
    // The run routes are not the seed's: no anonymous caller there.
    assert_eq!(
        request(ctl.addr, "GET", "/api/v1/runs", &[], b"")
            .await
            .status,
        401
    );
    let r = request(
        ctl.addr,
        "POST",
        "/api/v1/faults/gpu/inject/xid-48",
        &[("content-type", "application/json")],
        br#"{"node_name": "gpu-node-002", "gpu_id": 8}"#,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// `gfi controller --backend sim` serving HTTPS with a fresh self-signed certificate for
/// `localhost`, and a run token: (controller, the certificate and key, the files in `dir`:
/// cert, key, run-token file).
fn https_controller(
    dir: &std::path::Path,
) -> (
    Controller,
    rcgen::CertifiedKey,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    let run = dir.join("run");
    std::fs::write(&run, format!("{RUN_TOKEN}\n")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gfi"));
    cmd.args(["controller", "--backend", "sim", "--listen", "127.0.0.1:0"])
        .arg("--token-file")
        .arg(&run)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key);
    (spawn_controller(cmd), pair, cert, key, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gfi_run_remote_and_gfi_runs_reach_an_https_controller_trusting_remote_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ctl, _, cert, _, run) = https_controller(dir.path());
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_ca = dir.path().join("other.crt");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let url = format!("https://localhost:{}", ctl.addr.port());
    let gfi = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gfi"))
            .args(args)
            .arg("--token-file")
            .arg(&run)
            .env_remove("GFI_REMOTE")
            .env_remove("GFI_REMOTE_CA")
            .env("NO_COLOR", "1")
            .output()
            .expect("running gfi");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let plan = "examples/01_first_injection.lua";
    let ca = cert.to_str().unwrap();
    let (code, out) = tokio::task::block_in_place(|| {
        gfi(&[
            "run",
            "--remote",
            &url,
            "--remote-ca",
            ca,
            plan,
            "--seed",
            "3",
        ])
    });
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("cordoned after"), "{out}");
    let (code, out) =
        tokio::task::block_in_place(|| gfi(&["runs", "--remote", &url, "--remote-ca", ca]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("finished"), "{out}");
    // A controller whose certificate is not trusted is refused before anything is sent.
    let (code, out) = tokio::task::block_in_place(|| {
        gfi(&[
            "run",
            "--remote",
            &url,
            "--remote-ca",
            other_ca.to_str().unwrap(),
            plan,
        ])
    });
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("invalid peer certificate"), "{out}");
    // --remote-ca with a plain http URL is a mistake, said at once.
    let (code, out) = tokio::task::block_in_place(|| {
        gfi(&[
            "run",
            "--remote",
            "http://127.0.0.1:9",
            "--remote-ca",
            ca,
            plan,
        ])
    });
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("--remote-ca is for an https:// controller"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_serves_https_with_tls_cert_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ctl, pair, cert, key, run) = https_controller(dir.path());
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let r = https_get(ctl.addr, &pair.cert.pem(), "localhost", "/health")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["service"], "fault-injection-api");
    // Tokens still apply over TLS.
    let r = https_get(ctl.addr, &pair.cert.pem(), "localhost", "/api/v1/faults")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // A client that trusts another certificate refuses the server; plain HTTP gets no answer.
    let Err(e) = https_get(ctl.addr, &other.cert.pem(), "localhost", "/health").await else {
        panic!("a client that trusts another certificate was answered");
    };
    assert!(e.contains("handshake"), "{e}");
    let mut s = tokio::net::TcpStream::connect(ctl.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = common::within("the plain-HTTP connection to end", s.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&buf)
    );
    // Files that do not make a pair stop the controller at start, saying why.
    std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args(["controller", "--backend", "sim", "--listen", "127.0.0.1:0"])
        .arg("--token-file")
        .arg(&run)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env_remove("GFI_BACKEND")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-cert and --tls-key"), "{err}");
}

/// Remote runs through the real controller: `gfi run --remote` of an example prints what the
/// same run prints locally (the controller gives each run its own simulated cluster on
/// `--backend sim`), a read token cannot start one, and runs need a token even where the
/// seed's anonymous callers are let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_run_through_the_controller_prints_what_a_local_run_prints() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-tokens");
    let read = dir.path().join("read-tokens");
    std::fs::write(&run, format!("{RUN_TOKEN}\n")).unwrap();
    std::fs::write(&read, format!("{READ_TOKEN}\n")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gfi"));
    cmd.args(["controller", "--backend", "sim", "--listen", "127.0.0.1:0"])
        .arg("--token-file")
        .arg(&run)
        .arg("--read-token-file")
        .arg(&read)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--seed-compat-anonymous");
    let ctl = spawn_controller(cmd);
    let url = format!("http://{}", ctl.addr);
    let gfi = |args: &[&str], token: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_gfi"))
            .args(args)
            .arg("--token-file")
            .arg(token)
            .env_remove("GFI_REMOTE")
            .env("NO_COLOR", "1")
            .output()
            .expect("running gfi");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    // Wall time is the one figure that differs between two runs of a seed.
    let wall = regex::Regex::new(r"simulated in \d+\.\d\ds").unwrap();
    let blank = |s: &str| wall.replace_all(s, "simulated in (wall)").into_owned();
    let plan = "examples/01_first_injection.lua";
    let (code, remote) =
        tokio::task::block_in_place(|| gfi(&["run", "--remote", &url, plan, "--seed", "3"], &run));
    assert_eq!(code, Some(0), "{remote}");
    let local = Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args(["run", plan, "--seed", "3"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let local = String::from_utf8_lossy(&local.stdout).to_string();
    assert_eq!(blank(&remote), blank(&local));
    assert!(remote.contains("cordoned after"), "{remote}");
    assert!(remote.contains("finished: "), "{remote}");
    // The run is on record, and a read token may see it but not start another.
    let runs = request(
        ctl.addr,
        "GET",
        "/api/v1/runs",
        &[("authorization", &format!("Bearer {READ_TOKEN}"))],
        b"",
    )
    .await;
    assert_eq!(runs.status, 200, "{}", runs.text());
    assert!(runs.text().contains("\"finished\""), "{}", runs.text());
    let (code, _) =
        tokio::task::block_in_place(|| gfi(&["run", "--remote", &url, plan, "--seed", "3"], &read));
    assert_ne!(code, Some(0), "a read token must not start a run");
    let refused = request(
        ctl.addr,
        "POST",
        "/api/v1/runs",
        &[("content-type", "application/json")],
        br#"{"script": "p.lua", "source": "print(1)"}"#,
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.text());
}
