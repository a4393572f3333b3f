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
use std::process::Child;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// How long any one wait in a test may take before it fails saying what it waited for.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How long a whole child process run (a plan on the sim, a REPL session) may take.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(300);

/// Awaits `fut`, or fails the test after [`DEADLINE`] naming `what` it was waiting for.
pub async fn within<T>(
    what: impl std::fmt::Display,
    fut: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("waited {DEADLINE:?} for {what}"),
    }
}

#[derive(Debug)]
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
    within(
        format!("the answer to {method} {path} from {addr}"),
        send_raw_now(addr, method, path, headers, body),
    )
    .await
}

async fn send_raw_now(
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
    let body = within(
        format!("the body of the answer to {method} {path}"),
        resp.into_body().collect(),
    )
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

/// A GET over HTTPS, trusting only `ca_pem`, to the name `host`.
pub async fn https_get(
    addr: SocketAddr,
    ca_pem: &str,
    host: &str,
    path: &str,
) -> Result<Resp, String> {
    use http_body_util::BodyExt;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    within("an HTTPS exchange", async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from(host.to_string()).unwrap();
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header("host", host)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    })
    .await
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
    let deadline = Instant::now() + DEADLINE;
    loop {
        match agent::start(config.clone()).await {
            Ok(a) => return a,
            Err(agent::server::StartError::FaultStore(
                agent::fault_store::FaultStoreError::Locked { .. },
            )) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("restarting the agent (waited up to {DEADLINE:?}): {e}"),
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

/// True under `CI=true` (or `CI=1`), as CI services set it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A requirement CI provides (root, the real `/dev/kmsg`, `unshare`, journald,
/// `GFI_TEST_REAL_KMSG=1`) is missing. Elsewhere the test skips with the reason; under CI it
/// fails, so that a check cannot vanish while the run stays green.
pub fn requirement_missing(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: {why}; CI=true promises this, so the test fails instead of skipping");
    }
    skip(test, why)
}

/// A spawned process that is killed and reaped when the test ends, pass or fail.
pub struct Reaper(Option<Child>);

impl Reaper {
    pub fn new(child: Child) -> Reaper {
        Reaper(Some(child))
    }

    /// Closes stdin, collects the rest of stdout and stderr and the exit status, or fails
    /// naming `what` after [`PROCESS_DEADLINE`] (the child is then killed).
    pub fn output(mut self, what: &str) -> std::process::Output {
        let child = self.0.take().expect("the child");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(PROCESS_DEADLINE) {
            Ok(out) => out.expect("the child's output"),
            Err(_) => {
                // Not reaped yet (the thread is still waiting), so the pid is still this child's.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                panic!("waited {PROCESS_DEADLINE:?} for {what} to finish; killed it")
            }
        }
    }
}

impl std::ops::Deref for Reaper {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("the child")
    }
}

impl std::ops::DerefMut for Reaper {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child")
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The lines a child writes to one of its pipes, read on a thread of their own so that every
/// wait for a line has a deadline.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(pipe: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line that satisfies `pred`, or a failure naming `what` after [`DEADLINE`] or
    /// when the pipe closes first.
    pub fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                    "waited {DEADLINE:?} for {what}; the output so far:\n{}",
                    self.seen.join("\n")
                ),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "the output ended before {what}; it was:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything up to the end of the output (the child closed the pipe), within
    /// [`DEADLINE`].
    pub fn rest(&mut self, what: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let from = self.seen.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return self.seen[from..].iter().map(|l| format!("{l}\n")).collect();
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                    "waited {DEADLINE:?} for the end of {what}; the output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// Waits for a child to exit, or fails naming `what` after [`DEADLINE`] (the [`Reaper`]
/// then kills it).
pub fn exit_status(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "waited {DEADLINE:?} for {what} to exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The built `gfi` binary.
pub fn gfi_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gfi")
}

/// Waits until the agent on `addr` answers `/health`, or fails if the process exits first or
/// after [`DEADLINE`].
pub async fn wait_ready(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the agent exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "waited {DEADLINE:?} for the agent on {addr} to answer /health"
        );
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            drop(s);
            let r = request(addr, "GET", "/health", &[], b"").await;
            if r.status == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A fake kernel behind a FIFO: the agent writes records into `fifo`, the test receives each
/// one (`next_record`) and decides when it lands in `ring`, where the agent reads back. Until
/// then the injection stays in flight, between its kernel write and its read-back.
pub struct FakeKernel {
    pub fifo: PathBuf,
    pub ring: PathBuf,
    records: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl FakeKernel {
    pub fn new(node: &Node) -> FakeKernel {
        use std::io::BufRead;
        let fifo = node.path("kmsg.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let ring = node.path("ring");
        std::fs::write(&ring, b"").unwrap();
        let (records_tx, records) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (opened_tx, opened) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            // Read-write keeps the FIFO open between the agent's per-record opens.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let _ = opened_tx.send(());
            for line in std::io::BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                if records_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // A FIFO without a reader refuses the write (ENXIO).
        opened
            .recv_timeout(DEADLINE)
            .expect("the fake kernel opened its FIFO");
        FakeKernel {
            fifo,
            ring,
            records: tokio::sync::Mutex::new(records),
        }
    }

    /// The next record the agent wrote (without its newline).
    pub async fn next_record(&self) -> String {
        let mut records = self.records.lock().await;
        within("the agent to write a record", records.recv())
            .await
            .expect("the fake kernel's FIFO is open")
    }

    /// Makes a record visible to the agent's read-back.
    pub fn land(&self, record: &str) {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.ring)
            .and_then(|mut f| writeln!(f, "{record}"))
            .unwrap();
    }

    /// An in-process agent configuration writing to this fake kernel, its read-back waiting
    /// up to a minute for a record to land.
    pub fn config(&self, node: &Node) -> AgentConfig {
        let mut cfg = node.config();
        cfg.writer.target = WriteTarget::Device {
            path: self.fifo.clone(),
        };
        cfg.writer.read_path = Some(self.ring.clone());
        cfg.writer.file_readback_timeout = DEADLINE;
        cfg
    }
}

/// NVSentinel's XID pattern as its source writes it (pkg/patterns/xid.go), copied as text from
/// the reference (`nvsentinel.md`), not taken from `src/xid/detect.rs`: a second, independent
/// implementation, so that a mistake shared by the line formatter and the project's detection
/// model cannot pass both.
pub const NVSENTINEL_XID_PATTERN: &str = r"NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+)(?:, pid=(\d+))?(?:, name=([^,]+))?(?:, Ch ([0-9a-fA-F]+))?";

/// What NVSentinel's regex captures from a journal `MESSAGE`: the PCI text and the XID.
pub fn nvsentinel_sees(message: &str) -> Option<(String, u32)> {
    static RE: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(NVSENTINEL_XID_PATTERN).unwrap());
    let c = RE.captures(message)?;
    Some((c[1].to_string(), c[2].parse().ok()?))
}

/// The journal `MESSAGE` of a record a userspace process wrote to /dev/kmsg, by systemd's
/// documented rules rather than the project's model: the kernel drops the `<N>` prefix, and
/// journald takes a leading `word:` token (with one following blank) as SYSLOG_IDENTIFIER.
pub fn journald_message(record: &str) -> String {
    static PREFIX: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^<\d+>").unwrap());
    static IDENT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[ \t\n\r]*[^ \t\n\r]*:(?:[ \t\n\r]|$)").unwrap()
    });
    let text = PREFIX.replace(record.trim_end_matches('\n'), "");
    IDENT.replace(&text, "").into_owned()
}
