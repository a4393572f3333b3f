//! The agent's HTTP API over a real socket: the seed's calls verbatim, validation, auth,
//! idempotency, rate limits, the fault store across restarts, read-back failures, health under
//! load, and the extra routes.

mod common;

use common::*;
use gpu_fault_injector::agent::ratelimit::Limit;
use gpu_fault_injector::xid::detect;
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// The seed's curl examples, byte for byte, with the seed's response fields.
#[tokio::test]
async fn seed_curl_examples_verbatim() {
    let node = Node::new(8);
    let a = start(node.config()).await;
    let addr = a.addr();

    // curl http://localhost:8083/health
    let h = request(addr, "GET", "/health", &[], b"").await;
    assert_eq!(h.status, 200);
    let h = h.json();
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["node"], "gpu-node-001");
    assert_eq!(h["gpu_count"], 8);
    assert_eq!(h["dcgm_available"], false);
    assert_eq!(h["active_faults"], 0);

    // curl -X POST http://<agent-pod-ip>:8083/inject-xid -H "Content-Type: application/json"
    //   -d '{"fault_id": "test-001", "xid_type": 79, "gpu_id": 0}'
    let r = post(
        addr,
        "/inject-xid",
        r#"{"fault_id": "test-001", "xid_type": 79, "gpu_id": 0}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "injected");
    assert_eq!(v["node"], "gpu-node-001");
    assert_eq!(v["fault_id"], "test-001");
    assert_eq!(v["xid_type"], 79);
    assert_eq!(v["gpu_id"], 0);
    assert_eq!(
        v["message"],
        "XID 79 injected for GPU 0 (PCI: 0000:18:00.0) → NVSentinel"
    );
    let ts = v["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert!(
        ts.ends_with("+00:00") && ts.len() == "2026-11-28T10:26:54.202831+00:00".len(),
        "{ts}"
    );
    // What landed is exactly the reported line, and NVSentinel parses it to XID 79 on GPU 0.
    let line = v["line"].as_str().unwrap();
    assert_eq!(node.kmsg(), format!("{line}\n"));
    assert_eq!(v["kmsg_seq"], 0);
    let (entry, m) = detect::detect_write(node.kmsg().as_bytes()).unwrap();
    assert_eq!(entry.transport, "kernel");
    let m = m.expect("NVSentinel matches the line");
    assert_eq!(m.xid, 79);
    assert!(m.pci.unwrap().same_device(&"0000:18:00.0".parse().unwrap()));
    // And NVSentinel's own pattern, applied independently, agrees.
    assert_eq!(
        nvsentinel_sees(&journald_message(line)),
        Some(("0000:18:00".to_string(), 79))
    );

    // The seed's own body shape with "duration": null.
    let r = post(
        addr,
        "/inject-xid",
        r#"{"fault_id":"test-002","xid_type":48,"gpu_id":3,"duration":null}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["gpu_id"], 3);

    // curl http://localhost:8083/faults
    let f = get(addr, "/faults").await;
    assert_eq!(f.status, 200);
    let f = f.json();
    assert_eq!(f["node"], "gpu-node-001");
    assert_eq!(f["active_faults"], json!(["test-001", "test-002"]));
    assert_eq!(f["count"], 2);
    assert_eq!(
        request(addr, "GET", "/health", &[], b"").await.json()["active_faults"],
        2
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn the_seed_style_line_is_byte_identical_to_the_seeds() {
    let node = Node::new(1);
    let a = start(node.config()).await;
    let r = post(
        a.addr(),
        "/inject-xid",
        r#"{"xid_type": 79, "style": "seed"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        node.kmsg(),
        "<3>NVRM: NVRM: Xid (PCI:0000:18:00.0): 79, GPU has fallen off the bus\n"
    );
    let id = r.json()["fault_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("gpu_xid_79-"), "{id}");
    a.stop().await.unwrap();
}

#[tokio::test]
async fn every_validation_error_is_clear() {
    let node = Node::new(2);
    let a = start(node.config()).await;
    let addr = a.addr();
    // (body, status, words the detail must contain)
    let cases: &[(&str, u16, &[&str])] = &[
        (
            r#"{"fault_id":"x","xid_type":0}"#,
            400,
            &["out of range", "1..1000"],
        ),
        (
            r#"{"fault_id":"x","xid_type":1001}"#,
            400,
            &["out of range"],
        ),
        (r#"{"fault_id":"x","xid_type":-3}"#, 400, &["out of range"]),
        (r#"{"fault_id":"x"}"#, 422, &["xid_type", "Field required"]),
        (
            r#"{"xid_type":"seventy-nine"}"#,
            422,
            &["xid_type", "whole number"],
        ),
        (r#"{"xid_type":79.5}"#, 422, &["xid_type", "whole number"]),
        (r#"{"xid_type":true}"#, 422, &["true/false"]),
        (
            r#"{"xid_type":79,"gpu_id":-1}"#,
            422,
            &["gpu_id", "between 0"],
        ),
        (r#"{"xid_type":79,"gpu_id":"zero"}"#, 422, &["gpu_id"]),
        (
            r#"{"xid_type":79,"fault_id":""}"#,
            422,
            &["fault_id", "1-60"],
        ),
        (
            r#"{"xid_type":79,"fault_id":"a;rm -rf /"}"#,
            422,
            &["fault_id", "letters, digits"],
        ),
        (
            r#"{"xid_type":79,"fault_id":42}"#,
            422,
            &["fault_id must be a string"],
        ),
        (r#"{"xid_type":79,"duration":-1}"#, 422, &["duration"]),
        (r#"{"xid_type":79,"duration":"1h"}"#, 422, &["duration"]),
        (
            r#"{"xid_type":79,"style":"fancy"}"#,
            422,
            &["style", "driver, seed or unguarded"],
        ),
        (
            r#"{"xid_type":79,"level":8}"#,
            422,
            &["level", "between 0 and 7"],
        ),
        (
            r#"{"xid_type":79,"text":"a\nb"}"#,
            422,
            &["text", "control character"],
        ),
        (
            r#"{"xid_type":79,"process_name":"a,b"}"#,
            422,
            &["process_name"],
        ),
        (
            r#"{"xid_type":79,"style":"seed","pid":5}"#,
            422,
            &["seed style"],
        ),
        (
            r#"{"xid_type":79,"gpu_id":1,"gpu_uuid":"GPU-1"}"#,
            422,
            &["only one"],
        ),
        (
            r#"{"xid_type":79,"gpu_pci":"zz"}"#,
            422,
            &["gpu_pci", "PCI address"],
        ),
        (r#"{"xid_type":79,"run_id":"a b"}"#, 422, &["run_id"]),
        (
            r#"{"xid_type":79,"node_name":"other-node"}"#,
            400,
            &["gpu-node-001", "other-node"],
        ),
        // An unknown GPU is the caller's mistake: 404 with the seed's text listing the GPUs.
        (
            r#"{"xid_type":79,"gpu_id":9}"#,
            404,
            &["GPU 9 not found", "Available Device Minors: [0, 1]"],
        ),
        (
            r#"{"xid_type":79,"gpu_uuid":"GPU-nope"}"#,
            404,
            &["GPU-nope not found"],
        ),
        (
            r#"{"xid_type":79,"xid_type":48}"#,
            422,
            &["xid_type is given more than once"],
        ),
        (
            r#"{"xid_type":79,"xid":48}"#,
            422,
            &["xid and xid_type name different XIDs (48 and 79)"],
        ),
        (
            r#"{"xid_type":79,"text":"GPU has fallen \u202eoff the bus"}"#,
            422,
            &["text", "U+202E", "invisible"],
        ),
        (
            r#"{"xid_type":79,"text":"GPU has fallen\u2028off the bus"}"#,
            422,
            &["text", "U+2028", "invisible"],
        ),
        (
            r#"{"xid_type":79,"text":""}"#,
            422,
            &["text: must not be empty"],
        ),
        (
            r#"{"xid_type":79,"text":"   "}"#,
            422,
            &["text: must not be empty"],
        ),
        ("{not json", 422, &["JSON decode error"]),
        ("[79]", 422, &["JSON object"]),
        ("", 422, &["JSON decode error"]),
    ];
    for (body, status, words) in cases {
        let r = post(addr, "/inject-xid", body).await;
        assert_eq!(r.status, *status, "{body}: {}", r.text());
        let d = r.detail();
        for w in *words {
            assert!(d.contains(w), "{body}: detail {d:?} lacks {w:?}");
        }
        if *status == 422 {
            // FastAPI's shape: a list of {type, loc, msg}.
            let list = &r.json()["detail"];
            assert!(list.is_array(), "{body}: {list}");
            assert_eq!(list[0]["loc"][0], "body");
        }
    }
    // Nothing was written by any of them.
    assert_eq!(node.kmsg(), "");
    // Too large a body: 413, nothing read beyond the limit.
    let big = format!(r#"{{"xid_type":79,"text":"{}"}}"#, "x".repeat(20_000));
    let r = post(addr, "/inject-xid", &big).await;
    assert_eq!(r.status, 413);
    assert!(r.detail().contains("larger than"));
    // An XID missing from the catalogue is accepted with the generic text and a warning.
    let r = post(addr, "/inject-xid", r#"{"xid_type":999}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let w = r.json()["warnings"].to_string();
    assert!(
        w.contains("not in the catalogue") && w.contains("CONTACT_SUPPORT"),
        "{w}"
    );
    assert!(node.kmsg().contains("999, pid='<unknown>'"));
    // Unknown fields are reported, not fatal (FastAPI ignores them too).
    let r = post(addr, "/inject-xid", r#"{"xid_type":79,"proces_name":"x"}"#).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["warnings"].to_string().contains("proces_name"));
    // Routes and methods that do not exist.
    assert_eq!(get(addr, "/nope").await.status, 404);
    assert_eq!(get(addr, "/nope").await.detail(), "Not Found");
    let r = get(addr, "/inject-xid").await;
    assert_eq!((r.status, r.detail().as_str()), (405, "Method Not Allowed"));
    a.stop().await.unwrap();
}

#[tokio::test]
async fn custom_line_fields_reach_the_line() {
    let node = Node::new(2);
    let a = start(node.config()).await;
    let r = post(
        a.addr(),
        "/inject-xid",
        r#"{"xid_type":"13","gpu_pci":"00000000:19:00.0","pid":4242,"process_name":"python3","channel":8,"level":4,"text":"Graphics SM Warp Exception"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        node.kmsg(),
        "<4>NVRM: NVRM: Xid (PCI:0000:19:00): 13, pid=4242, name=python3, Ch 00000008, Graphics SM Warp Exception\n"
    );
    assert_eq!(r.json()["gpu_id"], 1);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn authentication_missing_wrong_and_rotated() {
    let node = Node::new(1);
    let a = start(node.config()).await;
    let addr = a.addr();
    let body = br#"{"fault_id":"auth-1","xid_type":79}"#;
    let r = request(addr, "POST", "/inject-xid", &[], body).await;
    assert_eq!(r.status, 401);
    assert!(
        r.detail().contains("Authorization: Bearer"),
        "{}",
        r.detail()
    );
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = request(
        addr,
        "POST",
        "/inject-xid",
        &[("authorization", "Bearer wrong-token-000000000")],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.detail().contains("not valid"));
    let r = request(
        addr,
        "POST",
        "/inject-xid",
        &[("authorization", TOKEN)],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.detail().contains("must be 'Bearer"));
    for path in [
        "/faults",
        "/gpus",
        "/kmsg",
        "/metrics",
        "/version",
        "/faults/x",
    ] {
        assert_eq!(
            request(addr, "GET", path, &[], b"").await.status,
            401,
            "{path}"
        );
    }
    // /health stays open for probes.
    assert_eq!(request(addr, "GET", "/health", &[], b"").await.status, 200);
    assert_eq!(node.kmsg(), "", "nothing written without a token");

    // Rotate the Secret the way the kubelet does: a new file renamed over the old one.
    let tmp = node.path("token.new");
    std::fs::write(&tmp, "rotated-token-abcdefghijklmnop\n").unwrap();
    std::fs::rename(&tmp, node.path("token")).unwrap();
    let r = post(addr, "/inject-xid", std::str::from_utf8(body).unwrap()).await;
    assert_eq!(r.status, 401, "the old token stops working at once");
    let r = request(
        addr,
        "POST",
        "/inject-xid",
        &[("authorization", "Bearer rotated-token-abcdefghijklmnop")],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Failures were counted.
    let m = request(
        addr,
        "GET",
        "/metrics",
        &[("authorization", "Bearer rotated-token-abcdefghijklmnop")],
        b"",
    )
    .await;
    let text = m.text();
    assert!(
        text.contains("gfi_agent_auth_failures_total{reason=\"missing\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("gfi_agent_auth_failures_total{reason=\"wrong\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("gfi_agent_auth_failures_total{reason=\"malformed\"} 1"),
        "{text}"
    );
    // A token file that disappears refuses everything (fail closed) and /health says why.
    std::fs::remove_file(node.path("token")).unwrap();
    let r = request(
        addr,
        "GET",
        "/faults",
        &[("authorization", "Bearer rotated-token-abcdefghijklmnop")],
        b"",
    )
    .await;
    assert_eq!(r.status, 503);
    assert!(r.detail().contains("token file"));
    a.stop().await.unwrap();
}

#[tokio::test]
async fn insecure_mode_needs_no_token() {
    let node = Node::new(1);
    let mut cfg = node.config();
    cfg.auth = gpu_fault_injector::agent::AuthMode::Insecure;
    let a = start(cfg).await;
    let r = request(a.addr(), "POST", "/inject-xid", &[], br#"{"xid_type":79}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    a.stop().await.unwrap();
}

#[tokio::test]
async fn idempotent_repeat_and_conflict() {
    let node = Node::new(2);
    let a = start(node.config()).await;
    let addr = a.addr();
    let body = r#"{"fault_id":"rep-1","xid_type":79,"gpu_id":1}"#;
    let first = post(addr, "/inject-xid", body).await;
    assert_eq!(first.status, 200);
    // The same request, even spelled differently, returns the first answer and writes nothing.
    let again = post(
        addr,
        "/inject-xid",
        r#"{"gpu_id":"1","xid_type":"79","fault_id":"rep-1"}"#,
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.headers["gfi-idempotent-replay"], "true");
    assert_eq!(node.kmsg().lines().count(), 1);
    // A different request under the same id is a conflict that says what the id was for.
    let r = post(
        addr,
        "/inject-xid",
        r#"{"fault_id":"rep-1","xid_type":48,"gpu_id":1}"#,
    )
    .await;
    assert_eq!(r.status, 409);
    let d = r.detail();
    assert!(
        d.contains("rep-1") && d.contains("XID 79") && d.contains("new fault_id"),
        "{d}"
    );
    assert_eq!(node.kmsg().lines().count(), 1);
    // Concurrent identical requests: exactly one line.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        tasks.push(tokio::spawn(async move {
            post(
                addr,
                "/inject-xid",
                r#"{"fault_id":"rep-2","xid_type":74,"gpu_id":0}"#,
            )
            .await
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        bodies.push(r.json());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(node.kmsg().lines().count(), 2);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let node = Node::new(2);
    let mut cfg = node.config();
    // A refill so slow the test cannot race it.
    cfg.gpu_limit = Limit {
        rate: 0.001,
        burst: 2.0,
    };
    cfg.node_limit = Limit {
        rate: 0.001,
        burst: 3.0,
    };
    let a = start(cfg).await;
    let addr = a.addr();
    for _ in 0..2 {
        assert_eq!(
            post(addr, "/inject-xid", r#"{"xid_type":79,"gpu_id":0}"#)
                .await
                .status,
            200
        );
    }
    let r = post(addr, "/inject-xid", r#"{"xid_type":79,"gpu_id":0}"#).await;
    assert_eq!(r.status, 429);
    assert!(
        r.detail().contains("GPU 0") && r.detail().contains("retry in"),
        "{}",
        r.detail()
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // GPU 1 has its own budget, until the node's runs out.
    assert_eq!(
        post(addr, "/inject-xid", r#"{"xid_type":79,"gpu_id":1}"#)
            .await
            .status,
        200
    );
    let r = post(addr, "/inject-xid", r#"{"xid_type":79,"gpu_id":1}"#).await;
    assert_eq!(r.status, 429);
    assert!(r.detail().contains("this node"), "{}", r.detail());
    assert_eq!(node.kmsg().lines().count(), 3);
    // A refused fault id may be retried later: it was not recorded.
    let r = post(
        addr,
        "/inject-xid",
        r#"{"fault_id":"later","xid_type":79,"gpu_id":0}"#,
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(get(addr, "/faults/later").await.status == 404);
    let m = get(addr, "/metrics").await.text();
    assert!(
        m.contains("gfi_agent_rate_limited_total{scope=\"gpu\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("gfi_agent_rate_limited_total{scope=\"node\"} 1"),
        "{m}"
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn faults_survive_a_restart() {
    let node = Node::new(2);
    let cfg = node.config();
    let a = start(cfg.clone()).await;
    for i in 0..3 {
        let r = post(
            a.addr(),
            "/inject-xid",
            &format!(r#"{{"fault_id":"keep-{i}","xid_type":79,"gpu_id":1}}"#),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let before = get(a.addr(), "/faults").await.json();
    let one = get(a.addr(), "/faults/keep-1").await.json();
    a.stop().await.unwrap();

    let b = restart(cfg).await;
    let after = get(b.addr(), "/faults").await.json();
    assert_eq!(after, before);
    assert_eq!(
        after["active_faults"],
        json!(["keep-0", "keep-1", "keep-2"])
    );
    assert_eq!(get(b.addr(), "/faults/keep-1").await.json(), one);
    // Idempotency holds across the restart: a retry after a crash writes nothing new.
    let r = post(
        b.addr(),
        "/inject-xid",
        r#"{"fault_id":"keep-1","xid_type":79,"gpu_id":1}"#,
    )
    .await;
    assert_eq!(r.json(), one);
    let r = post(
        b.addr(),
        "/inject-xid",
        r#"{"fault_id":"keep-1","xid_type":79,"gpu_id":0}"#,
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(node.kmsg().lines().count(), 3);
    assert_eq!(
        request(b.addr(), "GET", "/health", &[], b"").await.json()["active_faults"],
        3
    );
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_dropped_record_fails_the_injection() {
    let node = Node::new(1);
    let mut cfg = node.config();
    // The agent writes the target but reads back another log that never gets the record,
    // exactly what a rate-limited or printk_devkmsg=off kernel looks like from userspace.
    std::fs::write(node.path("log"), b"").unwrap();
    cfg.writer.read_path = Some(node.path("log"));
    cfg.writer.file_readback_timeout = std::time::Duration::from_millis(50);
    let a = start(cfg).await;
    let r = post(
        a.addr(),
        "/inject-xid",
        r#"{"fault_id":"lost-1","xid_type":79}"#,
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.text());
    let d = r.detail();
    assert!(
        d.contains("dropped") && d.contains("not in the kernel log"),
        "{d}"
    );
    // Not recorded: the same id may be retried.
    assert_eq!(get(a.addr(), "/faults").await.json()["count"], 0);
    let m = get(a.addr(), "/metrics").await.text();
    assert!(
        m.contains("gfi_agent_injections_total{xid=\"79\",outcome=\"dropped\"} 1"),
        "{m}"
    );
    a.stop().await.unwrap();
}

/// A fake kernel: reads raw writes from a FIFO and appends the ones it keeps to a log file;
/// it drops records containing "drop-me", like a rate limiter would.
#[tokio::test]
async fn fifo_target_with_a_fake_kernel_that_drops_some() {
    let node = Node::new(1);
    let fifo = node.path("kmsg.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let log = node.path("ring");
    std::fs::write(&log, b"").unwrap();
    let (fifo2, log2) = (fifo.clone(), log.clone());
    let (opened_tx, opened) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        // Opening read-write keeps the FIFO open between the agent's per-record opens.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo2)
            .unwrap();
        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .open(&log2)
            .unwrap();
        let _ = opened_tx.send(());
        for line in std::io::BufReader::new(f).lines() {
            let line = line.unwrap();
            if !line.contains("drop-me") {
                writeln!(out, "{line}").unwrap();
            }
        }
    });
    // A FIFO without a reader refuses the write (ENXIO): on a busy machine the thread above
    // may not have opened it yet.
    opened.recv().unwrap();
    let mut cfg = node.config();
    cfg.writer.target = gpu_fault_injector::node::writer::WriteTarget::Device { path: fifo };
    cfg.writer.read_path = Some(log.clone());
    cfg.writer.file_readback_timeout = std::time::Duration::from_secs(30);
    let a = start(cfg).await;
    let r = post(
        a.addr(),
        "/inject-xid",
        r#"{"fault_id":"kept","xid_type":79,"text":"kept line"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "fifo");
    assert_eq!(r.json()["kmsg_seq"], 0);
    assert!(std::fs::read_to_string(&log).unwrap().contains("kept line"));
    a.stop().await.unwrap();

    let mut cfg = node.config();
    cfg.writer.target = gpu_fault_injector::node::writer::WriteTarget::Device {
        path: node.path("kmsg.fifo"),
    };
    cfg.writer.read_path = Some(log.clone());
    cfg.writer.file_readback_timeout = std::time::Duration::from_millis(200);
    let b = restart(cfg).await;
    let r = post(
        b.addr(),
        "/inject-xid",
        r#"{"xid_type":79,"text":"drop-me please"}"#,
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.detail().contains("dropped"), "{}", r.detail());
    b.stop().await.unwrap();
}

#[tokio::test]
async fn health_answers_while_injections_run() {
    let node = Node::new(8);
    let a = start(node.config()).await;
    let addr = a.addr();
    let injectors: Vec<_> = (0..8)
        .map(|g| {
            tokio::spawn(async move {
                for i in 0..25 {
                    let r = post(
                        addr,
                        "/inject-xid",
                        &format!(r#"{{"fault_id":"load-{g}-{i}","xid_type":79,"gpu_id":{g}}}"#),
                    )
                    .await;
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            })
        })
        .collect();
    let mut healthy = 0;
    while injectors.iter().any(|t| !t.is_finished()) {
        let h = request(addr, "GET", "/health", &[], b"").await;
        assert_eq!(h.status, 200);
        assert_eq!(h.json()["status"], "healthy");
        healthy += 1;
    }
    for t in injectors {
        t.await.unwrap();
    }
    assert!(healthy > 0);
    assert_eq!(node.kmsg().lines().count(), 200);
    assert_eq!(get(addr, "/faults").await.json()["count"], 200);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn health_is_honest_about_a_missing_gpu_tree_and_write_path() {
    let node = Node::new(1);
    let mut cfg = node.config();
    cfg.proc_root = node.path("no-such-proc");
    cfg.writer.target = gpu_fault_injector::node::writer::WriteTarget::Device {
        path: node.path("missing-kmsg"),
    };
    let a = start(cfg).await;
    let h = request(a.addr(), "GET", "/health", &[], b"").await;
    assert_eq!(h.status, 200, "probes keep the seed's 200");
    let v = h.json();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["gpu_count"], 0);
    let reasons = v["reasons"].to_string();
    assert!(
        reasons.contains("no-such-proc/driver/nvidia/gpus"),
        "{reasons}"
    );
    assert!(reasons.contains("missing-kmsg"), "{reasons}");
    let strict = request(a.addr(), "GET", "/health?strict=true", &[], b"").await;
    assert_eq!(strict.status, 503);
    let r = get(a.addr(), "/gpus").await;
    assert_eq!(r.status, 503);
    assert!(r.detail().contains("no-such-proc/driver/nvidia/gpus"));
    let r = post(a.addr(), "/inject-xid", r#"{"xid_type":79}"#).await;
    assert_eq!(r.status, 503);
    assert!(r.detail().contains("NVIDIA GPU tree"), "{}", r.detail());
    a.stop().await.unwrap();
}

#[tokio::test]
async fn gpus_kmsg_version_and_metrics_routes() {
    let node = Node::new(3);
    let a = start(node.config()).await;
    let addr = a.addr();
    let g = get(addr, "/gpus").await.json();
    assert_eq!(g["count"], 3);
    assert_eq!(g["gpus"][2]["index"], 2);
    assert_eq!(g["gpus"][2]["pci_bus_id"], "0000:1a:00.0");
    assert_eq!(g["gpus"][2]["pci"], "00000000:1A:00.0");
    assert_eq!(
        g["gpus"][2]["uuid"],
        "GPU-00000000-0000-0000-0000-000000000002"
    );
    for (i, x) in [(0, 79), (1, 48), (2, 13)] {
        let r = post(
            addr,
            "/inject-xid",
            &format!(r#"{{"xid_type":{x},"gpu_id":{i}}}"#),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(node.path("kmsg"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"<6>an unrelated line\n"))
        .unwrap();
    let k = get(addr, "/kmsg?limit=2").await.json();
    assert_eq!(k["count"], 2);
    assert_eq!(k["records"][1]["text"], "an unrelated line");
    let k = get(addr, "/kmsg?xid=true").await.json();
    assert_eq!(k["count"], 3);
    assert_eq!(k["records"][1]["nvsentinel"]["xid"], 48);
    assert_eq!(k["records"][1]["nvsentinel"]["pci"], "0000:19:00");
    let k = get(addr, "/kmsg?grep=Double%20Bit").await.json();
    assert_eq!(k["count"], 1);
    let seq = k["records"][0]["seq"].as_u64().unwrap();
    assert_eq!(
        get(addr, &format!("/kmsg?since_seq={seq}")).await.json()["count"],
        3
    );
    let r = get(addr, "/kmsg?limit=0").await;
    assert_eq!(r.status, 400);
    assert!(r.detail().contains("limit must be"));
    assert_eq!(get(addr, "/kmsg?colour=red").await.status, 400);

    let v = get(addr, "/version").await.json();
    assert_eq!(v["name"], "gfi");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    let m = get(addr, "/metrics").await;
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = m.text();
    assert!(
        m.contains("gfi_agent_injections_total{xid=\"48\",outcome=\"injected\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("gfi_agent_injection_duration_seconds_count 3"),
        "{m}"
    );
    assert!(m.contains("gfi_agent_gpus 3"), "{m}");
    assert!(
        m.contains("gfi_agent_http_requests_total{route=\"/inject-xid\",status=\"200\"} 3"),
        "{m}"
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn kmsg_follow_streams_json_lines_until_shutdown() {
    let node = Node::new(1);
    let a = start(node.config()).await;
    let addr = a.addr();
    post(addr, "/inject-xid", r#"{"xid_type":79,"text":"before"}"#).await;
    let resp = stream(addr, "/kmsg?follow=true&xid=true").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut body = resp.into_body();
    let mut buf = String::new();
    let mut lines: Vec<Value> = Vec::new();
    async fn next_line(body: &mut hyper::body::Incoming, buf: &mut String) -> Value {
        loop {
            if let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                return serde_json::from_str(line.trim()).unwrap();
            }
            let frame = body.frame().await.expect("stream open").expect("frame");
            if let Ok(data) = frame.into_data() {
                buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
    // The backlog first.
    lines.push(next_line(&mut body, &mut buf).await);
    // Then a line that is no XID (filtered out) and a new injection.
    std::fs::OpenOptions::new()
        .append(true)
        .open(node.path("kmsg"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"<6>noise\n"))
        .unwrap();
    let r = post(addr, "/inject-xid", r#"{"xid_type":48,"text":"after"}"#).await;
    assert_eq!(r.status, 200);
    lines.push(next_line(&mut body, &mut buf).await);
    assert!(lines[0]["text"].as_str().unwrap().ends_with("before"));
    assert!(
        lines[1]["text"].as_str().unwrap().ends_with("after"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[1]["nvsentinel"]["xid"], 48);
    // Shutdown ends the stream.
    a.stop().await.unwrap();
    while let Some(f) = body.frame().await {
        if f.is_err() {
            break;
        }
    }
}

/// Decodes a body into a client type and checks that writing it again gives the same bytes:
/// the client type holds everything the server said, in the server's order.
fn decode_exactly<T>(r: &Resp) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let v: T = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("status {}: {e}: {}", r.status, r.text()));
    assert_eq!(serde_json::to_string(&v).unwrap(), r.text());
    v
}

/// What the server writes, read with the types a client (the kube backend) uses.
#[tokio::test]
async fn every_body_decodes_into_the_client_types() {
    use gpu_fault_injector::backend::{FaultRecord, GpuInfo, GpuSelector};
    use gpu_fault_injector::node::wire::{
        Detail, ErrorBody, GpusResponse, InjectXidRequest, InjectXidResponse, KmsgEntry,
        KmsgResponse,
    };
    use gpu_fault_injector::xid::LineOptions;

    let node = Node::new(2);
    let a = start(node.config()).await;
    let addr = a.addr();

    // A request as the client writes it, answered as the seed's clients expect.
    let mut req = InjectXidRequest::new(
        79,
        &GpuSelector::Pci("0000:19:00.0".parse().unwrap()),
        &LineOptions {
            pid: Some(4242),
            ..LineOptions::default()
        },
    );
    req.fault_id = Some("wire-1".into());
    req.node_name = Some("gpu-node-001".into());
    let r = post(addr, "/inject-xid", &serde_json::to_string(&req).unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: InjectXidResponse = decode_exactly(&r);
    assert_eq!((answer.fault_id.as_str(), answer.gpu_id), ("wire-1", 1));
    assert_eq!(node.kmsg(), format!("{}\n", answer.line));
    assert!(answer.line.contains("pid=4242"), "{}", answer.line);
    let replay: InjectXidResponse = decode_exactly(&get(addr, "/faults/wire-1").await);
    assert_eq!(replay, answer);
    let record = FaultRecord::from(answer.clone());
    assert_eq!(
        (record.id.as_str(), record.gpu, record.xid, record.seq),
        ("wire-1", 1, 79, answer.kmsg_seq)
    );
    assert!(record.pci.same_device(&"0000:19:00.0".parse().unwrap()));
    assert_eq!(record.line, answer.line);

    // Errors: a sentence, or one entry per field.
    let missing: ErrorBody =
        decode_exactly(&post(addr, "/inject-xid", r#"{"xid_type":79,"gpu_id":9}"#).await);
    assert!(
        matches!(&missing.detail, Detail::Message(m) if m.contains("GPU 9 not found")),
        "{missing:?}"
    );
    let invalid: ErrorBody = decode_exactly(&post(addr, "/inject-xid", r#"{"gpu_id":-1}"#).await);
    let Detail::Fields(fields) = &invalid.detail else {
        panic!("{invalid:?}")
    };
    assert_eq!(fields[0].kind, "missing");
    assert_eq!(fields[0].loc, [json!("body"), json!("xid_type")]);
    let too_long: ErrorBody = decode_exactly(
        &post(
            addr,
            "/inject-xid",
            &format!(r#"{{"xid_type":79,"text":"{}"}}"#, "x".repeat(1500)),
        )
        .await,
    );
    assert!(
        matches!(&too_long.detail, Detail::Fields(f) if f[0].loc[1] == "text"),
        "{too_long:?}"
    );
    let not_found: ErrorBody = decode_exactly(&get(addr, "/nope").await);
    assert_eq!(not_found.detail, Detail::Message("Not Found".into()));

    let gpus: GpusResponse = decode_exactly(&get(addr, "/gpus").await);
    assert_eq!(gpus.count, 2);
    let info = GpuInfo::from(gpus.gpus[1].clone());
    assert_eq!(info.pci.sysfs(), "0000:19:00.0");

    let kmsg: KmsgResponse = decode_exactly(&get(addr, "/kmsg").await);
    assert_eq!(kmsg.count, 1);
    assert_eq!(kmsg.records[0].nvsentinel.as_ref().map(|m| m.xid), Some(79));
    let resp = stream(addr, "/kmsg?follow=true").await;
    let mut body = resp.into_body();
    let mut text = String::new();
    while !text.contains('\n') {
        let frame = body.frame().await.expect("stream open").expect("frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    let line = text.lines().next().unwrap();
    let entry: KmsgEntry = serde_json::from_str(line).unwrap();
    assert_eq!(serde_json::to_string(&entry).unwrap(), line);
    assert_eq!(entry, kmsg.records[0]);
    drop(body);
    a.stop().await.unwrap();
}

/// Every catalogue XID in every style, checked against NVSentinel's regex as literal text
/// (an implementation independent of `src/xid/detect.rs`): the guarded styles are seen with
/// their XID and GPU, the unguarded one is not.
#[tokio::test]
async fn nvsentinels_own_pattern_sees_every_guarded_line() {
    let node = Node::new(2);
    let a = start(node.config()).await;
    for info in gpu_fault_injector::xid::catalog::all() {
        for (style, seen_pci) in [
            ("driver", Some("0000:19:00")),
            ("seed", Some("0000:19:00.0")),
            ("unguarded", None),
        ] {
            let body = json!({"xid_type": info.xid, "gpu_id": 1, "style": style}).to_string();
            let r = post(a.addr(), "/inject-xid", &body).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text());
            let record = node.kmsg().lines().last().unwrap().to_string();
            assert_eq!(r.json()["line"], record.as_str());
            let seen = nvsentinel_sees(&journald_message(&record));
            assert_eq!(
                seen,
                seen_pci.map(|p| (p.to_string(), info.xid)),
                "{style} line {record:?}"
            );
            // The project's model says the same.
            let model = detect::detect_write(format!("{record}\n").as_bytes())
                .unwrap()
                .1
                .map(|m| (m.pci_text, m.xid));
            assert_eq!(model, seen, "{record:?}");
        }
    }
    a.stop().await.unwrap();
}

/// The Kubernetes API server's pod proxy removes `Authorization`: the agent's own header
/// carries the same token.
#[tokio::test]
async fn the_agent_token_header_authenticates_like_the_bearer_token() {
    let node = Node::new(1);
    let a = start(node.config()).await;
    let addr = a.addr();
    let body = br#"{"fault_id":"via-proxy","xid_type":79}"#;
    let json = ("content-type", "application/json");
    let r = request(
        addr,
        "POST",
        "/inject-xid",
        &[("x-gfi-agent-token", TOKEN), json],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for path in [
        "/faults",
        "/faults/via-proxy",
        "/gpus",
        "/kmsg",
        "/metrics",
        "/version",
    ] {
        let r = request(addr, "GET", path, &[("X-Gfi-Agent-Token", TOKEN)], b"").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("x-gfi-agent-token", "wrong-token-000000000")],
            "not valid",
        ),
        (
            &[("x-gfi-agent-token", "")],
            "X-Gfi-Agent-Token the token alone",
        ),
        (
            &[("x-gfi-agent-token", "Bearer test-token-0123456789abcdef")],
            "X-Gfi-Agent-Token the token alone",
        ),
        // Both headers: both must be right.
        (
            &[
                ("authorization", "Bearer test-token-0123456789abcdef"),
                ("x-gfi-agent-token", "wrong-token-000000000"),
            ],
            "not valid",
        ),
        (
            &[
                ("authorization", "Bearer wrong-token-000000000"),
                ("x-gfi-agent-token", TOKEN),
            ],
            "not valid",
        ),
        (&[], "X-Gfi-Agent-Token: <token>"),
    ];
    for (headers, words) in cases {
        let mut h = headers.to_vec();
        h.push(json);
        let r = request(addr, "POST", "/inject-xid", &h, br#"{"xid_type":48}"#).await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.text());
        assert!(r.detail().contains(words), "{headers:?}: {}", r.detail());
    }
    assert_eq!(
        node.kmsg().lines().count(),
        1,
        "only the authenticated write"
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let node = Node::new(1);
    let a = start(node.config()).await;
    let addr = a.addr();
    let auth = bearer();
    let body = br#"{"xid_type":79}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "",
    ] {
        let r = request(
            addr,
            "POST",
            "/inject-xid",
            &[("authorization", &auth), ("content-type", ct)],
            body,
        )
        .await;
        assert_eq!(r.status, 415, "{ct:?}: {}", r.text());
        let d = r.detail();
        assert!(
            d.contains("Content-Type: application/json") && d.contains(&format!("{ct:?}")),
            "{ct:?}: {d}"
        );
    }
    assert_eq!(node.kmsg(), "", "nothing written for a refused media type");
    // JSON by any of its names, or no Content-Type at all (as FastAPI reads it).
    for ct in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        Some("application/vnd.gfi+json"),
        None,
    ] {
        let mut h = vec![("authorization", auth.as_str())];
        if let Some(ct) = ct {
            h.push(("content-type", ct));
        }
        let r = request(addr, "POST", "/inject-xid", &h, body).await;
        assert_eq!(r.status, 200, "{ct:?}: {}", r.text());
    }
    a.stop().await.unwrap();
}

#[tokio::test]
async fn query_mistakes_are_400_and_say_what_is_wrong() {
    let node = Node::new(1);
    let a = start(node.config()).await;
    let addr = a.addr();
    let cases: &[(&str, &str)] = &[
        ("/kmsg?limit=1&limit=2", "\"limit\" is given more than once"),
        ("/kmsg?limit=0", "limit must be 1-10000, got \"0\""),
        ("/kmsg?limit=10001", "limit must be 1-10000"),
        (
            "/kmsg?since_seq=-5",
            "since_seq must be a kmsg sequence number, got \"-5\"",
        ),
        (
            "/kmsg?follow=maybe",
            "follow must be true or false, got \"maybe\"",
        ),
        ("/kmsg?xid=2", "xid must be true or false"),
        (
            "/kmsg?bogus=1",
            "unknown query parameter \"bogus\" (known: limit",
        ),
        (
            "/health?strict=maybe",
            "strict must be true or false, got \"maybe\"",
        ),
        (
            "/health?strict=1&strict=0",
            "\"strict\" is given more than once",
        ),
        (
            "/health?verbose=1",
            "unknown query parameter \"verbose\" (known: strict)",
        ),
    ];
    for (path, words) in cases {
        let r = get(addr, path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.detail().contains(words), "{path}: {}", r.detail());
    }
    for path in [
        "/health?strict=true",
        "/health?strict",
        "/health?strict=no",
        "/kmsg?limit=1",
    ] {
        assert_eq!(get(addr, path).await.status, 200, "{path}");
    }
    a.stop().await.unwrap();
}

/// HEAD is GET without the body; any other method a route does not serve is 405 with the
/// `Allow` header that says which it does.
#[tokio::test]
async fn head_and_delete_on_every_route() {
    let node = Node::new(1);
    let a = start(node.config()).await;
    let addr = a.addr();
    assert_eq!(
        post(addr, "/inject-xid", r#"{"fault_id":"f-1","xid_type":79}"#)
            .await
            .status,
        200
    );
    let auth = bearer();
    let with_token = [("authorization", auth.as_str())];
    let reads = [
        "/health",
        "/faults",
        "/faults/f-1",
        "/gpus",
        "/kmsg",
        "/metrics",
        "/version",
    ];
    for path in reads {
        let get = request(addr, "GET", path, &with_token, b"").await;
        let head = request(addr, "HEAD", path, &with_token, b"").await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.headers.get("content-type"),
            get.headers.get("content-type"),
            "HEAD {path}"
        );
        let del = request(addr, "DELETE", path, &with_token, b"").await;
        assert_eq!(del.status, 405, "DELETE {path}: {}", del.text());
        assert_eq!(del.detail(), "Method Not Allowed");
        assert_eq!(del.headers["allow"], "GET,HEAD", "DELETE {path}");
    }
    for method in ["HEAD", "DELETE", "GET", "PUT"] {
        let r = request(addr, method, "/inject-xid", &with_token, b"").await;
        assert_eq!(r.status, 405, "{method} /inject-xid");
        assert_eq!(r.headers["allow"], "POST", "{method} /inject-xid");
    }
    // Without a token a protected route says so before anything else.
    let r = request(addr, "DELETE", "/faults/f-1", &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(request(addr, "HEAD", "/faults", &[], b"").await.status, 401);
    // A path that does not exist is 404 whatever the method.
    for method in ["GET", "HEAD", "DELETE", "POST"] {
        assert_eq!(
            request(addr, method, "/nope", &with_token, b"")
                .await
                .status,
            404,
            "{method} /nope"
        );
    }
    // The fault is still there: DELETE removed nothing.
    assert_eq!(get(addr, "/faults/f-1").await.status, 200);
    a.stop().await.unwrap();
}

/// A fault id reused while its first request is still in flight: the same request waits for
/// the first one's answer, a different one is a conflict at once.
#[tokio::test]
async fn a_different_request_on_an_in_flight_fault_id_is_409() {
    let node = Node::new(2);
    let kernel = FakeKernel::new(&node);
    let a = start(kernel.config(&node)).await;
    let addr = a.addr();
    let first = tokio::spawn(async move {
        post(
            addr,
            "/inject-xid",
            r#"{"fault_id":"busy-1","xid_type":79,"gpu_id":1}"#,
        )
        .await
    });
    // Written, not yet read back: in flight.
    let record = kernel.next_record().await;
    for other in [
        r#"{"fault_id":"busy-1","xid_type":48,"gpu_id":1}"#,
        r#"{"fault_id":"busy-1","xid_type":79,"gpu_id":0}"#,
        r#"{"fault_id":"busy-1","xid_type":79,"gpu_id":1,"text":"other words"}"#,
    ] {
        let r = post(addr, "/inject-xid", other).await;
        assert_eq!(r.status, 409, "{other}: {}", r.text());
        let d = r.detail();
        assert!(
            d.contains("busy-1") && d.contains("XID 79 on GPU index 1"),
            "{other}: {d}"
        );
    }
    let again = tokio::spawn(async move {
        post(
            addr,
            "/inject-xid",
            r#"{"gpu_id":1,"fault_id":"busy-1","xid_type":"79"}"#,
        )
        .await
    });
    kernel.land(&record);
    let first = within("the first injection's answer", first).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let again = within("the repeat's answer", again).await.unwrap();
    assert_eq!((again.status, again.json()), (200, first.json()));
    a.stop().await.unwrap();
}

/// Same fault id, same XID and GPU, another line: a different request (409), never a replay.
#[tokio::test]
async fn the_line_options_are_part_of_the_request() {
    let node = Node::new(2);
    let a = start(node.config()).await;
    let addr = a.addr();
    let r = post(addr, "/inject-xid", r#"{"fault_id":"opt-1","xid_type":79}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for other in [
        r#"{"fault_id":"opt-1","xid_type":79,"text":"other words"}"#,
        r#"{"fault_id":"opt-1","xid_type":79,"style":"seed"}"#,
        r#"{"fault_id":"opt-1","xid_type":79,"pid":1234}"#,
        r#"{"fault_id":"opt-1","xid_type":79,"level":4}"#,
        r#"{"fault_id":"opt-1","xid_type":79,"process_name":"python3"}"#,
        r#"{"fault_id":"opt-1","xid_type":79,"channel":2}"#,
    ] {
        let r = post(addr, "/inject-xid", other).await;
        assert_eq!(r.status, 409, "{other}: {}", r.text());
        assert!(r.detail().contains("already used for a different request"));
    }
    assert_eq!(node.kmsg().lines().count(), 1);
    a.stop().await.unwrap();
}
