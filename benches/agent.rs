//! `cargo bench --bench agent`: the agent binary on loopback with a fake GPU tree and a file
//! standing in for /dev/kmsg, driven by a small keep-alive HTTP/1.1 load generator.
//!
//! Prints: time from process start to the first healthy answer; `GET /health` and
//! `POST /inject-xid` throughput with p50/p99 at 32 connections; `/health` p99 while
//! injections run; the agent's resident memory after the run. Targets are the seed's figures
//! on this kind of machine times 20 (health) and 50 (injections).
//!
//! The same load against a bare axum server (this binary again, in a process of its own with
//! the agent's runtime settings) that answers `/health` with the agent's body as a static
//! string gives the practical limit on this machine; the agent's `/health` throughput is
//! printed as a fraction of it, a figure that moves less with the machine than req/s do.
//!
//! `GFI_BENCH_SECS` sets each phase's length (default 5 s). The fault store is fsync'd as in
//! production; its state directory is a temporary directory on the default filesystem.

use gpu_fault_injector::node::testkit;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "bench-token-0123456789abcdef";
const CONNS: usize = 32;
/// Set in the bare server's environment: the address it listens on, and the body it answers.
const BARE_LISTEN: &str = "GFI_BENCH_BARE_LISTEN";
const BARE_BODY: &str = "GFI_BENCH_BARE_BODY";

/// A child process serving HTTP at `addr` (the agent, or the bare server), killed on drop.
struct Agent {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        testkit::write_gpu_tree(&dir.path().join("proc"), &testkit::fake_gpus(8)).unwrap();
        std::fs::write(dir.path().join("kmsg"), b"").unwrap();
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        Env { dir }
    }

    fn spawn(&self, state: &str) -> (Agent, Instant) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = self.dir.path();
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_gfi"))
            .arg("agent")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--node-name", "bench-node"])
            .arg("--proc-root")
            .arg(d.join("proc"))
            .arg("--kmsg-path")
            .arg(d.join("kmsg"))
            .arg("--allow-non-chardev")
            .arg("--token-file")
            .arg(d.join("token"))
            .arg("--state-dir")
            .arg(d.join(state))
            .args(["--rate-node", "0", "--rate-gpu", "0"])
            // Production logging (an audit line per injection), written nowhere.
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gfi binary starts");
        (
            Agent {
                child,
                addr: format!("127.0.0.1:{port}").parse().unwrap(),
            },
            started,
        )
    }
}

/// Serves `GET /health` with a fixed body, as `gfi agent` would with nothing to check: the
/// agent's runtime settings (two workers, eight blocking threads), none of its work.
fn bare_server(listen: &str, body: String) {
    let addr: SocketAddr = listen.parse().expect("GFI_BENCH_BARE_LISTEN is an address");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .expect("the bare server's runtime starts");
    rt.block_on(async move {
        let body: &'static str = body.leak();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the bare server binds");
        axum::serve(listener, app)
            .await
            .expect("the bare server serves");
    });
}

/// Starts [`bare_server`] in a child process answering `/health` with `body`, and waits
/// until it answers.
async fn spawn_bare(body: &str) -> Agent {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(std::env::current_exe().expect("the bench knows its own path"))
        .env(BARE_LISTEN, addr.to_string())
        .env(BARE_BODY, body)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bench binary starts again as the bare server");
    let req = health_req();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the bare server exited during start: {st}");
        }
        if let Ok(mut c) = Conn::open(addr).await
            && let Ok(200) = c.call(&req).await
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Agent { child, addr }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and reads its response; returns the status.
    async fn call(&mut self, req: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(req).await?;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap_or("");
                let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let total = end + 4 + len;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                self.buf.drain(..total);
                return Ok(status);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// The body of one `GET /health`, to serve the same bytes from the bare server.
async fn health_text(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("the agent accepts");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .await
        .expect("the request is sent");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("the answer arrives");
    let end = find(&raw, b"\r\n\r\n").expect("an HTTP answer") + 4;
    String::from_utf8_lossy(&raw[end..]).into_owned()
}

fn health_req() -> Vec<u8> {
    b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n".to_vec()
}

fn inject_req(gpu: usize) -> Vec<u8> {
    let body = format!(r#"{{"xid_type":79,"gpu_id":{gpu}}}"#);
    format!(
        "POST /inject-xid HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Default)]
struct Stats {
    lat_us: Vec<u32>,
    errors: u64,
    non_2xx: u64,
    /// Which statuses the non-2xx answers were, so a stray one can be told apart (a 429 from
    /// the rate limiter, a 503 from a full disk, a 500 that is a bug).
    statuses: BTreeMap<u16, u64>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.lat_us.extend(o.lat_us);
        self.errors += o.errors;
        self.non_2xx += o.non_2xx;
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
    }

    fn refused(&mut self, status: u16) {
        self.non_2xx += 1;
        *self.statuses.entry(status).or_default() += 1;
    }

    fn pct(&mut self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        self.lat_us.sort_unstable();
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us[i] as f64 / 1000.0
    }
}

/// One phase's figures.
struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    non_2xx: u64,
    statuses: BTreeMap<u16, u64>,
}

impl Stats {
    fn summary(mut self, elapsed: Duration) -> Summary {
        Summary {
            rps: self.lat_us.len() as f64 / elapsed.as_secs_f64(),
            p50: self.pct(0.5),
            p99: self.pct(0.99),
            errors: self.errors,
            non_2xx: self.non_2xx,
            statuses: self.statuses,
        }
    }
}

const WRK_INJECT: &str = r#"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"xid_type":79,"gpu_id":%d}', n % 8)
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer bench-token-0123456789abcdef",
    ["Content-Type"] = "application/json",
  }, body)
end
"#;

fn use_wrk() -> bool {
    std::env::var("GFI_BENCH_GENERATOR").as_deref() != Ok("builtin")
        && Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

/// `1.23ms`, `456.00us`, `1.2s` in milliseconds.
fn wrk_ms(v: &str) -> f64 {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().map(|n| n * scale).unwrap_or(f64::NAN)
}

/// Runs wrk (32 connections, 2 threads) against `path` for `phase`.
async fn run_wrk(addr: SocketAddr, path: &str, script: Option<&Path>, phase: Duration) -> Summary {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{CONNS}"),
        &format!("-d{}s", phase.as_secs()),
        "--latency",
    ]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(format!("http://{addr}{path}"));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let after = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|r| r.trim().to_string()))
    };
    let errors = after("Socket errors:")
        .map(|e| {
            e.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Summary {
        rps: after("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        p50: after("50%").map(|v| wrk_ms(&v)).unwrap_or(f64::NAN),
        p99: after("99%").map(|v| wrk_ms(&v)).unwrap_or(f64::NAN),
        errors,
        non_2xx: after("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        // wrk counts them without saying which.
        statuses: BTreeMap::new(),
    }
}

/// Runs `conns` connections sending `req(i)` until `until`.
async fn load(addr: SocketAddr, conns: usize, until: Instant, req: fn(usize) -> Vec<u8>) -> Stats {
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let bytes = req(i);
            tokio::spawn(async move {
                let mut s = Stats::default();
                let mut conn = match Conn::open(addr).await {
                    Ok(c) => c,
                    Err(_) => {
                        s.errors += 1;
                        return s;
                    }
                };
                while Instant::now() < until {
                    let t = Instant::now();
                    match conn.call(&bytes).await {
                        Ok(st) => {
                            s.lat_us.push(t.elapsed().as_micros() as u32);
                            if !(200..300).contains(&st) {
                                s.refused(st);
                            }
                        }
                        Err(_) => {
                            s.errors += 1;
                            match Conn::open(addr).await {
                                Ok(c) => conn = c,
                                Err(_) => break,
                            }
                        }
                    }
                }
                s
            })
        })
        .collect();
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await.unwrap());
    }
    all
}

/// `conns` connections each sending one `/health` every `every` until `until`.
async fn probe(addr: SocketAddr, conns: usize, until: Instant, every: Duration) -> Stats {
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = Stats::default();
                let req = health_req();
                let Ok(mut conn) = Conn::open(addr).await else {
                    s.errors += 1;
                    return s;
                };
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while Instant::now() < until {
                    tick.tick().await;
                    let t = Instant::now();
                    match conn.call(&req).await {
                        Ok(200) => s.lat_us.push(t.elapsed().as_micros() as u32),
                        Ok(st) => s.refused(st),
                        Err(_) => {
                            s.errors += 1;
                            break;
                        }
                    }
                }
                s
            })
        })
        .collect();
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await.unwrap());
    }
    all
}

fn rss_kb(pid: u32) -> (u64, u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:"),
    )
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/pid/stat (utime, stime), counted after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// How much of the recorded agent code layout (build.rs) this binary has: a low share means
/// `data/agent-hot.order` is stale and resident memory will grow.
fn layout_coverage() -> Option<String> {
    let order =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/agent-hot.order"))
            .ok()?;
    let out = Command::new("nm")
        .args(["--defined-only", env!("CARGO_BIN_EXE_gfi")])
        .output()
        .ok()?;
    let defined: std::collections::HashSet<&str> = std::str::from_utf8(&out.stdout)
        .ok()?
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let listed: Vec<&str> = order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let found = listed.iter().filter(|s| defined.contains(*s)).count();
    Some(format!(
        "agent code layout: {found} of the {} functions in data/agent-hot.order are in this binary (the list holds two builds' names; under about 1,500 found, re-record with tools/agent-hot-symbols)",
        listed.len()
    ))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

async fn ready_time(env: &Env, n: usize) -> Vec<f64> {
    let mut times = Vec::new();
    for i in 0..n {
        let (mut agent, started) = env.spawn(&format!("state-ready-{i}"));
        let req = health_req();
        loop {
            if let Ok(Some(st)) = agent.child.try_wait() {
                panic!("the agent exited during start: {st}");
            }
            if let Ok(mut c) = Conn::open(agent.addr).await
                && let Ok(200) = c.call(&req).await
            {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

fn main() {
    if let Ok(listen) = std::env::var(BARE_LISTEN) {
        return bare_server(&listen, std::env::var(BARE_BODY).unwrap_or_default());
    }
    // `cargo bench` passes --bench; any other argument is a filter we do not use.
    let secs: u64 = std::env::var("GFI_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let phase = Duration::from_secs(secs);
    // The load generator's threads (it shares the machine with the agent).
    let client_threads: usize = std::env::var("GFI_BENCH_CLIENT_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let rt = if client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(client_threads)
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(async move {
        let env = Env::new();
        println!("gfi agent benchmark: loopback, 8 fake GPUs, kmsg file target, {CONNS} connections, {secs} s per phase");
        let loadavg = || {
            std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        println!(
            "machine: {} CPUs, load average {} (other work on the machine skews every figure)",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            loadavg()
        );

        let mut ready = ready_time(&env, 5).await;
        ready.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let ready_med = ready[ready.len() / 2];

        let (agent, _) = env.spawn("state");
        let req = health_req();
        loop {
            if let Ok(mut c) = Conn::open(agent.addr).await
                && let Ok(200) = c.call(&req).await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let pid = agent.child.id();
        let wrk = use_wrk();
        println!(
            "load generator: {}",
            if wrk {
                "wrk (Debian's; 2 threads)"
            } else {
                "built in (install wrk for a lighter one; GFI_BENCH_GENERATOR=builtin forces this)"
            }
        );
        let script = env.dir.path().join("inject.lua");
        std::fs::write(&script, WRK_INJECT).unwrap();
        // Warm up.
        load(agent.addr, CONNS, Instant::now() + Duration::from_millis(500), |_| health_req()).await;

        let cpu0 = cpu_secs(pid);
        let t = Instant::now();
        let h = if wrk {
            run_wrk(agent.addr, "/health", None, phase).await
        } else {
            load(agent.addr, CONNS, t + phase, |_| health_req()).await.summary(t.elapsed())
        };
        let h_cpu = (cpu_secs(pid) - cpu0) / t.elapsed().as_secs_f64();

        // The practical limit, measured now, while the machine is as it was for the agent.
        let health_body = health_text(agent.addr).await;
        let bare = spawn_bare(&health_body).await;
        load(bare.addr, CONNS, Instant::now() + Duration::from_millis(500), |_| health_req()).await;
        let t = Instant::now();
        let b = if wrk {
            run_wrk(bare.addr, "/health", None, phase).await
        } else {
            load(bare.addr, CONNS, t + phase, |_| health_req()).await.summary(t.elapsed())
        };
        drop(bare);

        let cpu0 = cpu_secs(pid);
        let t = Instant::now();
        let inj = if wrk {
            run_wrk(agent.addr, "/inject-xid", Some(&script), phase).await
        } else {
            load(agent.addr, CONNS, t + phase, |i| inject_req(i % 8)).await.summary(t.elapsed())
        };
        let i_cpu = (cpu_secs(pid) - cpu0) / t.elapsed().as_secs_f64();

        // Probes while injections run at full speed on all 32 connections: one request every
        // 2 ms on each of 4 probe connections, from a thread of its own (in real life the
        // prober is another process: the kubelet).
        let t = Instant::now();
        let until = t + phase;
        let addr = agent.addr;
        let injectors = if wrk {
            let script = script.clone();
            tokio::spawn(async move { run_wrk(addr, "/inject-xid", Some(&script), phase).await })
        } else {
            tokio::spawn(async move {
                load(addr, CONNS, until, |i| inject_req(i % 8)).await.summary(phase)
            })
        };
        let prober = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(probe(addr, 4, until, Duration::from_millis(2)))
        });
        let bg = injectors.await.unwrap();
        let during = prober.join().unwrap().summary(phase);

        let (rss_busy, _, _, _) = rss_kb(agent.child.id());
        // After the run: once the agent is idle again (its health loop trims the allocator
        // every second).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (rss, hwm, anon, file) = rss_kb(agent.child.id());
        let lines = std::fs::read_to_string(env.dir.path().join("kmsg"))
            .map(|s| s.lines().count())
            .unwrap_or(0);

        println!();
        println!("{:<44} {:>12} {:>10} {:>10}  target", "", "req/s", "p50 ms", "p99 ms");
        println!(
            "{:<44} {:>12.0} {:>10.3} {:>10.3}  >= 46,000 req/s: {}",
            "GET /health (32 conns)", h.rps, h.p50, h.p99, verdict(h.rps >= 46_000.0)
        );
        println!(
            "{:<44} {:>12.0} {:>10.3} {:>10.3}  the practical limit",
            "  bare axum, same body (32 conns)", b.rps, b.p50, b.p99
        );
        println!(
            "{:<44} {:>12.2}",
            "  agent / bare axum",
            h.rps / b.rps
        );
        println!(
            "{:<44} {:>12.0} {:>10.3} {:>10.3}  >= 3,950 req/s: {}",
            "POST /inject-xid (32 conns)", inj.rps, inj.p50, inj.p99, verdict(inj.rps >= 3_950.0)
        );
        println!(
            "{:<44} {:>12.0} {:>10.3} {:>10.3}  p99 < 2 ms: {}",
            "GET /health while injecting (4 x 500/s)",
            during.rps,
            during.p50,
            during.p99,
            verdict(during.p99 < 2.0)
        );
        println!(
            "{:<44} {:>12.0} {:>10.3} {:>10.3}",
            "  (the 32 injecting conns meanwhile)", bg.rps, bg.p50, bg.p99
        );
        println!(
            "agent CPU use: {:.0} % during the health phase, {:.0} % during the injection phase (of {} CPUs shared with the load generator)",
            h_cpu * 100.0,
            i_cpu * 100.0,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!(
            "resident memory after the run: {:.1} MB ({:.1} MB at its end; peak {:.1} MB; now {:.1} MB heap and stacks, {:.1} MB mapped files: the binary and libc)  < 10 MB: {}",
            rss as f64 / 1024.0,
            rss_busy as f64 / 1024.0,
            hwm as f64 / 1024.0,
            anon as f64 / 1024.0,
            file as f64 / 1024.0,
            verdict(rss < 10 * 1024)
        );
        println!(
            "start to first healthy answer: median {:.1} ms of 5 starts (min {:.1}, max {:.1})  < 20 ms: {}",
            ready_med,
            ready[0],
            ready[ready.len() - 1],
            verdict(ready_med < 20.0)
        );
        println!(
            "errors: health {} / bare {} / inject {} / during {}+{}; non-2xx: {} / {} / {} / {}+{}; records written: {lines}",
            h.errors, b.errors, inj.errors, during.errors, bg.errors, h.non_2xx, b.non_2xx, inj.non_2xx, during.non_2xx, bg.non_2xx
        );
        let statuses: Vec<String> = [("health", &h), ("bare", &b), ("inject", &inj), ("during", &during), ("during, injecting", &bg)]
            .iter()
            .filter(|(_, s)| !s.statuses.is_empty())
            .map(|(phase, s)| {
                let codes: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{v} x {k}")).collect();
                format!("{phase}: {}", codes.join(", "))
            })
            .collect();
        if !statuses.is_empty() {
            println!("non-2xx statuses: {}", statuses.join("; "));
        }
        println!("load average at the end: {}", loadavg());
        if let Some(line) = layout_coverage() {
            println!("{line}");
        }
        let _ = std::io::stdout().flush();
    });
}
