//! Test support: a real HTTP client over TCP, and agents started in-process or as the built
//! `gfi` binary, on 127.0.0.1 with a fake GPU tree and a file standing in for /dev/kmsg.
#![allow(dead_code)]

use gpu_fault_injector::agent::ratelimit::Limit;
use gpu_fault_injector::agent::{self, AgentConfig, AuthMode, RunningAgent};
use gpu_fault_injector::node::testkit;
use gpu_fault_injector::node::writer::{WriteTarget, WriterConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn detail(&self) -> String {
        match &self.json()["detail"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

async fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("request")
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let resp = send_raw(addr, method, path, headers, body.to_vec()).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    let auth = bearer();
    request(addr, "GET", path, &[("authorization", &auth)], b"").await
}

pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    let auth = bearer();
    request(
        addr,
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

/// Opens a streaming GET and returns the response for reading frames.
pub async fn stream(addr: SocketAddr, path: &str) -> hyper::Response<Incoming> {
    let auth = bearer();
    send_raw(addr, "GET", path, &[("authorization", &auth)], Vec::new()).await
}

/// A node's worth of fakes in a temporary directory.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    /// `gpus` fake GPUs, an empty kmsg stand-in file and a token file.
    pub fn new(gpus: u32) -> Node {
        let dir = tempfile::tempdir().unwrap();
        testkit::write_gpu_tree(&dir.path().join("proc"), &testkit::fake_gpus(gpus)).unwrap();
        std::fs::write(dir.path().join("kmsg"), b"").unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        Node { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn kmsg(&self) -> String {
        std::fs::read_to_string(self.path("kmsg")).unwrap()
    }

    /// An in-process agent configuration writing to the kmsg stand-in, without rate limits.
    pub fn config(&self) -> AgentConfig {
        let mut w = WriterConfig::new(WriteTarget::Device {
            path: self.path("kmsg"),
        });
        w.allow_non_chardev = true;
        let mut c = AgentConfig::new(
            "gpu-node-001".into(),
            self.path("proc"),
            w,
            AuthMode::TokenFile(self.path("token")),
            self.path("state"),
        );
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.node_limit = Limit::UNLIMITED;
        c.gpu_limit = Limit::UNLIMITED;
        c.fault_store.sync = false;
        c
    }
}

pub async fn start(config: AgentConfig) -> RunningAgent {
    agent::start(config).await.expect("agent starts")
}

/// Starts an agent, retrying while a previous one on the same state dir still holds the lock
/// (its fault store's thread ends just after the server stops).
pub async fn restart(config: AgentConfig) -> RunningAgent {
    loop {
        match agent::start(config.clone()).await {
            Ok(a) => return a,
            Err(agent::server::StartError::FaultStore(
                agent::fault_store::FaultStoreError::Locked { .. },
            )) => tokio::task::yield_now().await,
            Err(e) => panic!("agent start failed: {e}"),
        }
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints why a test did not run. Written to the process's stderr directly, not through
/// `eprintln!`, so the test harness does not swallow it and CI logs show every skip.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The built `gfi` binary.
pub fn gfi_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gfi")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the agent on `addr` answers `/health`, or the process exits.
pub async fn wait_ready(addr: SocketAddr, child: &mut std::process::Child) {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the agent exited before it was ready: {status}");
        }
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            drop(s);
            let r = request(addr, "GET", "/health", &[], b"").await;
            if r.status == 200 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
