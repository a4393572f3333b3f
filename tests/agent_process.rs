//! The built `gfi agent` binary: configuration by environment, refusal to start without an
//! auth choice, JSON audit logs, graceful SIGTERM, and the fault store across a process restart.

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

fn agent_cmd(node: &Node, port: u16) -> Command {
    let mut c = Command::new(gfi_bin());
    c.arg("agent")
        .env_clear()
        .env("GFI_LISTEN", format!("127.0.0.1:{port}"))
        .env("NODE_NAME", "env-node")
        .env("GFI_PROC_ROOT", node.path("proc"))
        .env("GFI_KMSG_PATH", node.path("kmsg"))
        .env("GFI_ALLOW_NON_CHARDEV", "true")
        .env("GFI_TOKEN_FILE", node.path("token"))
        .env("GFI_STATE_DIR", node.path("state"))
        .env("GFI_LOG_FORMAT", "json")
        .env("GFI_RATE_NODE", "0")
        .env("GFI_RATE_GPU", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

#[test]
fn help_names_every_environment_variable() {
    let out = Command::new(gfi_bin())
        .args(["agent", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "GFI_LISTEN",
        "NODE_NAME",
        "GFI_PROC_ROOT",
        "GFI_HOST_PID",
        "GFI_KMSG_PATH",
        "GFI_TOKEN_FILE",
        "GFI_INSECURE_NO_AUTH",
        "GFI_STATE_DIR",
    ] {
        assert!(
            help.contains(&format!("env: {var}")),
            "--help lacks {var}:\n{help}"
        );
    }
    assert!(help.contains("0.0.0.0:8083") && help.contains("/var/lib/gfi"));
}

#[test]
fn refuses_to_start_without_an_auth_choice() {
    let node = Node::new(1);
    let out = agent_cmd(&node, free_port())
        .env_remove("GFI_TOKEN_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--token-file") && err.contains("--insecure-no-auth"),
        "{err}"
    );
}

#[test]
fn refuses_an_empty_token_file() {
    let node = Node::new(1);
    std::fs::write(node.path("empty"), "\n").unwrap();
    let out = agent_cmd(&node, free_port())
        .env("GFI_TOKEN_FILE", node.path("empty"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no token"));
}

#[tokio::test]
async fn sigterm_is_graceful_and_the_fault_store_survives_the_process() {
    let node = Node::new(2);
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = agent_cmd(&node, port).spawn().unwrap();
    wait_ready(addr, &mut child).await;
    let h = request(addr, "GET", "/health", &[], b"").await.json();
    assert_eq!(h["node"], "env-node");
    assert_eq!(h["status"], "healthy", "{h}");
    let r = post(
        addr,
        "/inject-xid",
        r#"{"fault_id":"p-1","xid_type":79,"gpu_id":1}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A second agent on the same state directory is refused while this one runs.
    let out = agent_cmd(&node, free_port()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another gfi agent holds"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    // JSON logs, one object per line, with the audit line of the injection.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let audit = lines
        .iter()
        .find(|l| l["target"] == "gfi::audit" && l["path"] == "/inject-xid")
        .expect("an audit line for the injection");
    assert_eq!(audit["who"], "token#1");
    assert_eq!(audit["fault_id"], "p-1");
    assert_eq!(audit["outcome"], "injected");
    assert_eq!(audit["status"], 200);
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "SIGTERM: shutting down")
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped"));

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = agent_cmd(&node, port).spawn().unwrap();
    wait_ready(addr, &mut child).await;
    let f = get(addr, "/faults").await.json();
    assert_eq!(f["active_faults"], serde_json::json!(["p-1"]));
    assert_eq!(f["faults"][0]["line"], node.kmsg().trim_end());
    child.kill().unwrap();
    child.wait().unwrap();
}
