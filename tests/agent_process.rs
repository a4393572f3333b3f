//! The built `gfi agent` binary: configuration by environment, refusal to start without an
//! auth choice, JSON audit logs, graceful SIGTERM, and the fault store across a process restart.

mod common;

use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// The agent's command, listening on a port the kernel picks (its log says which).
fn agent_cmd(node: &Node) -> Command {
    let mut c = Command::new(gfi_bin());
    c.arg("agent")
        .env_clear()
        .env("GFI_LISTEN", "127.0.0.1:0")
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

/// A running `gfi agent` process, killed when the test ends, and its log.
struct AgentProcess {
    child: Reaper,
    addr: SocketAddr,
    log: Lines,
}

/// Starts the agent and reads its address from its "listening" log line: no port is
/// chosen before the agent binds it, so no other process can take it in between.
async fn spawn_agent(cmd: &mut Command) -> AgentProcess {
    let mut child = Reaper::new(cmd.spawn().unwrap());
    let mut log = Lines::new(child.stderr.take().unwrap());
    let line = log.until("the agent's 'gfi agent listening' log line", |l| {
        l.contains("gfi agent listening")
    });
    let v: Value = serde_json::from_str(&line).unwrap();
    let addr: SocketAddr = v["listen"].as_str().unwrap().parse().unwrap();
    wait_ready(addr, &mut child).await;
    AgentProcess { child, addr, log }
}

/// Runs a command that must end by itself: its exit status and its stderr.
fn run_to_exit(cmd: &mut Command, what: &str) -> (std::process::ExitStatus, String) {
    let mut child = Reaper::new(cmd.spawn().unwrap());
    let mut err = Lines::new(child.stderr.take().unwrap());
    let text = err.rest(what);
    (exit_status(&mut child, what), text)
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn refuses_to_start_without_an_auth_choice() {
    let node = Node::new(1);
    let (status, err) = run_to_exit(
        agent_cmd(&node).env_remove("GFI_TOKEN_FILE"),
        "an agent without an auth choice",
    );
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("--token-file") && err.contains("--insecure-no-auth"),
        "{err}"
    );
}

#[test]
fn refuses_an_empty_token_file() {
    let node = Node::new(1);
    std::fs::write(node.path("empty"), "\n").unwrap();
    let (status, err) = run_to_exit(
        agent_cmd(&node).env("GFI_TOKEN_FILE", node.path("empty")),
        "an agent with an empty token file",
    );
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("holds no token"), "{err}");
}

#[tokio::test]
async fn sigterm_is_graceful_and_the_fault_store_survives_the_process() {
    let node = Node::new(2);
    let mut a = spawn_agent(&mut agent_cmd(&node)).await;
    let addr = a.addr;
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
    let (status, err) = run_to_exit(&mut agent_cmd(&node), "a second agent on the state dir");
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("another gfi agent holds"), "{err}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    a.log.rest("the agent's log after SIGTERM");
    let status = exit_status(&mut a.child, "the agent after SIGTERM");
    assert!(status.success(), "exit status {status}");
    // JSON logs, one object per line, with the audit line of the injection.
    let lines = json_lines(&a.log.seen);
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

    let b = spawn_agent(&mut agent_cmd(&node)).await;
    let f = get(b.addr, "/faults").await.json();
    assert_eq!(f["active_faults"], serde_json::json!(["p-1"]));
    assert_eq!(f["faults"][0]["line"], node.kmsg().trim_end());
}

/// A client that hangs up while its injection is in flight: the line still reaches the fault
/// store, and the audit log records it. The write is held between the kernel write and its
/// read-back (a fake kernel behind a FIFO) until the agent has closed the connection.
#[tokio::test]
async fn a_client_that_hangs_up_mid_injection_still_gets_its_audit_line() {
    use std::io::{Read, Write};
    let node = Node::new(1);
    let kernel = FakeKernel::new(&node);
    let mut a = spawn_agent(
        agent_cmd(&node)
            .env("GFI_KMSG_PATH", &kernel.fifo)
            .env("GFI_KMSG_READ_PATH", &kernel.ring)
            .env("GFI_FILE_READBACK_MS", "60000"),
    )
    .await;
    let body = r#"{"fault_id":"hung-up-1","xid_type":79}"#;
    let mut client = std::net::TcpStream::connect(a.addr).unwrap();
    write!(
        client,
        "POST /inject-xid HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // The record reached the kernel: the injection is in flight. Now the client hangs up.
    let record = kernel.next_record().await;
    client.shutdown(std::net::Shutdown::Write).unwrap();
    // The agent closes the connection without an answer once it sees the hang-up.
    client.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = Vec::new();
    let read = client.read_to_end(&mut answer);
    assert!(
        matches!(&read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected the agent to close the connection of a client that hung up, got {read:?}: {}",
        String::from_utf8_lossy(&answer)
    );
    drop(client);
    // Only now does the record land.
    kernel.land(&record);
    let audit = a.log.until("the audit line of the hung-up injection", |l| {
        l.contains("\"gfi::audit\"") && l.contains("hung-up-1")
    });
    let audit: Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["outcome"], "injected", "{audit}");
    assert_eq!(audit["status"], 200, "{audit}");
    assert_eq!(audit["who"], "token#1", "{audit}");
    let f = get(a.addr, "/faults/hung-up-1").await;
    assert_eq!(f.status, 200, "{}", f.text());
    assert_eq!(f.json()["line"], record.trim_end());
}
