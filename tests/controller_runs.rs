//! Remote runs end to end: the runs API (`controller::runs::routes`) served over a real socket
//! in this process, and the real `gfi` binary as its client (`gfi run --remote`, `gfi runs`).

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

use common::{Reaper, Resp};
use gpu_fault_injector::backend::sim::SimBackend;
use gpu_fault_injector::backend::sim::config::SimConfig;
use gpu_fault_injector::backend::sim::values::NvsConfig;
use gpu_fault_injector::clock::RunClock;
use gpu_fault_injector::controller::caller::{Caller, Scope};
use gpu_fault_injector::controller::runs::{
    BundleLimits, MemoryRecords, RunBackend, RunManager, RunManagerConfig, RunRecords, routes,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

/// The name the stand-in auth layer gives a request that carries [`common::TOKEN`].
const CALLER: &str = "ci-token#1";

/// The runs API on 127.0.0.1, on a runtime of its own (the tests drive `gfi` processes).
struct Server {
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
}

impl Server {
    fn start(configure: impl FnOnce(&mut RunManagerConfig), backend: Backend) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let state_dir = state.path().to_path_buf();
        let addr = rt.block_on(async move {
            let backend = match backend {
                Backend::SimPerRun => RunBackend::SimPerRun(Box::default()),
                Backend::SharedRealTime => {
                    // A sim on the wall clock, shared by every run: waits take real time, so
                    // a run can be caught mid-wait.
                    let sim = SimBackend::start(
                        SimConfig::default(),
                        NvsConfig::default(),
                        1,
                        RunClock::start(false),
                    )
                    .unwrap();
                    RunBackend::Shared {
                        backend: Arc::new(sim),
                        description: "sim (shared, real time)".into(),
                    }
                }
                Backend::Kube(flags) => {
                    #[derive(clap::Parser)]
                    struct Flags {
                        #[command(flatten)]
                        backend: gpu_fault_injector::backend::spec::BackendArgs,
                    }
                    let flags = <Flags as clap::Parser>::try_parse_from(
                        std::iter::once("gfi".to_string()).chain(flags),
                    )
                    .unwrap();
                    let built = gpu_fault_injector::backend::spec::build_backend(
                        &flags.backend,
                        1,
                        RunClock::start(false),
                    )
                    .unwrap();
                    RunBackend::Shared {
                        backend: built.backend,
                        description: built.description,
                    }
                }
            };
            let mut config = RunManagerConfig::new(backend, state_dir);
            configure(&mut config);
            let manager = RunManager::new(config).await.unwrap();
            let app = routes(manager).layer(axum::middleware::from_fn(stand_in_auth));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            addr
        });
        Server {
            addr,
            rt,
            _state: state,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn get(&self, path: &str) -> Resp {
        self.rt.block_on(common::get(self.addr, path))
    }

    fn post(&self, path: &str, body: &str) -> Resp {
        self.rt.block_on(common::post(self.addr, path, body))
    }

    /// The run's record once it has ended (followed through its event stream).
    fn ended(&self, id: &str) -> Value {
        let events = self.events(id, &[]);
        assert_eq!(events.last().unwrap().0, "end", "{events:?}");
        self.get(&format!("/api/v1/runs/{id}")).json()
    }

    /// A run's whole event stream: (event, id, data) until the stream ends.
    fn events(&self, id: &str, headers: &[(&str, &str)]) -> Vec<(String, Option<u64>, Value)> {
        self.events_at(&format!("/api/v1/runs/{id}/events"), headers)
    }

    fn events_at(&self, path: &str, headers: &[(&str, &str)]) -> Vec<(String, Option<u64>, Value)> {
        let auth = common::bearer();
        let mut h = vec![("authorization", auth.as_str())];
        h.extend_from_slice(headers);
        let resp = self
            .rt
            .block_on(common::request(self.addr, "GET", path, &h, b""));
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        parse_sse(&resp.text())
    }
}

enum Backend {
    SimPerRun,
    SharedRealTime,
    /// The kube backend on these flags, built once and shared by every run (as the
    /// controller's).
    Kube(Vec<String>),
}

/// What the controller's auth layer does (h-ctl's, not under test here): a request with the
/// test token gets a [`Caller`].
async fn stand_in_auth(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(common::bearer().as_str());
    if ok {
        req.extensions_mut().insert(Caller {
            name: CALLER.into(),
            scope: Scope::Run,
        });
    }
    next.run(req).await
}

fn parse_sse(text: &str) -> Vec<(String, Option<u64>, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut kind = None;
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse().unwrap());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            Some((kind?, id, data?))
        })
        .collect()
}

fn token_file(dir: &Path) -> String {
    let path = dir.join("token");
    std::fs::write(
        &path,
        format!("# the controller's run token\n{}\n", common::TOKEN),
    )
    .unwrap();
    path.display().to_string()
}

fn gfi(args: &[&str]) -> Output {
    Reaper::new(
        Command::new(common::gfi_bin())
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("GFI_BACKEND")
            .env_remove("GFI_REMOTE")
            .env_remove("GFI_TOKEN_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gfi runs"),
    )
    .output(&format!("gfi {}", args.join(" ")))
}

/// Output with the only thing that may differ, the wall time of a simulated run, blanked.
fn steady(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let re = regex::Regex::new(r"simulated in \d+\.\d\ds").unwrap();
    re.replace_all(&text, "simulated in (wall)").into_owned()
}

#[test]
fn a_remote_run_shows_what_the_same_local_run_shows_with_its_exit_status() {
    let server = Server::start(|_| {}, Backend::SimPerRun);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    for (outcome, code) in [("pass", 0), ("check", 3), ("raise", 1), ("module", 1)] {
        let arg = format!("outcome={outcome}");
        let plan = [
            "run",
            "tests/remote/plan.lua",
            "--seed",
            "7",
            "--arg",
            &arg,
            "--color",
            "never",
        ];
        let local = gfi(&plan);
        let url = server.url();
        let mut remote_args = plan.to_vec();
        remote_args.extend(["--remote", &url, "--token-file", &token]);
        let remote = gfi(&remote_args);
        assert_eq!(local.status.code(), Some(code), "{}", steady(&local.stderr));
        assert_eq!(
            remote.status.code(),
            Some(code),
            "{}",
            steady(&remote.stderr)
        );
        assert_eq!(
            steady(&remote.stdout),
            steady(&local.stdout),
            "outcome={outcome}"
        );
        assert_eq!(
            steady(&remote.stderr),
            steady(&local.stderr),
            "outcome={outcome}"
        );
        // The local modules travelled in the bundle.
        assert!(steady(&remote.stdout).contains("note: cleanup for gpu-node-002"));
    }
    let runs = server.get("/api/v1/runs").json();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    // Newest first.
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[1]["status"], "failed");
    assert_eq!(runs[2]["status"], "finished");
    assert_eq!(runs[3]["status"], "finished");
    assert!(runs.iter().all(|r| r["started_by"] == CALLER), "{runs:?}");
    let id = runs[2]["id"].as_str().unwrap();
    let record = server.get(&format!("/api/v1/runs/{id}")).json();
    assert_eq!(record["summary"]["checks"]["failed"], 1);
    assert_eq!(record["journal"][0]["kind"], "run.start");
    assert_eq!(record["args"], json!([["outcome", "check"]]));
}

#[test]
fn the_event_stream_resumes_from_an_event_number() {
    let server = Server::start(|_| {}, Backend::SimPerRun);
    let source = std::fs::read_to_string("tests/remote/plan.lua").unwrap();
    let modules = json!({
        "lib/steps.lua": std::fs::read_to_string("tests/remote/lib/steps.lua").unwrap(),
        "lib/util.lua": std::fs::read_to_string("tests/remote/lib/util.lua").unwrap(),
    });
    let resp = server.post(
        "/api/v1/runs",
        &json!({"script": "plan.lua", "source": source, "modules": modules, "seed": 3}).to_string(),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let id = resp.json()["id"].as_str().unwrap().to_string();
    let all = server.events(&id, &[]);
    let (last, entries) = all.split_last().unwrap();
    assert_eq!(last.0, "end");
    assert_eq!(last.2["status"], "finished");
    assert!(entries.len() > 8, "{entries:?}");
    for (i, (kind, seq, data)) in entries.iter().enumerate() {
        assert_eq!(kind, "entry");
        assert_eq!(*seq, Some(i as u64));
        assert_eq!(data["seq"], i as u64);
    }
    // From an event number, and after the last one a client saw (what EventSource sends).
    let from5 = server.events_at(&format!("/api/v1/runs/{id}/events?from=5"), &[]);
    assert_eq!(from5.first().unwrap().1, Some(5));
    assert_eq!(&from5[..from5.len() - 1], &entries[5..]);
    let after6 = server.events(&id, &[("last-event-id", "6")]);
    assert_eq!(after6.first().unwrap().1, Some(7));
    assert_eq!(after6.len(), entries.len() - 7 + 1);
    // Past the end: only the end.
    let past = server.events_at(&format!("/api/v1/runs/{id}/events?from=100000"), &[]);
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].0, "end");
    let bad = server.get(&format!("/api/v1/runs/{id}/events?from=soon"));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.detail().contains("from=soon"), "{}", bad.detail());
    assert_eq!(server.get("/api/v1/runs/run-nope/events").status, 404);
}

#[test]
fn bad_bundles_are_refused_with_what_would_be_right() {
    let server = Server::start(
        |c| {
            c.bundle = BundleLimits {
                max_bytes: 4096,
                max_modules: 2,
            }
        },
        Backend::SimPerRun,
    );
    let submit = |body: Value| server.post("/api/v1/runs", &body.to_string());
    let with_module = |path: &str| json!({"script": "plan.lua", "source": "print(1)", "modules": {path: "return {}"}});
    for (path, says) in [
        ("../outside.lua", "'..'"),
        ("lib/../../outside.lua", "'..'"),
        ("/etc/passwd.lua", "absolute"),
        ("lib/util.txt", ".lua"),
        (".hidden.lua", "starts with '.'"),
    ] {
        let r = submit(with_module(path));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.detail().contains(says), "{path}: {}", r.detail());
        assert!(
            r.detail().contains("relative to the script"),
            "{}",
            r.detail()
        );
    }
    let big = submit(json!({"script": "plan.lua", "source": "x".repeat(5000)}));
    assert_eq!(big.status, 413, "{}", big.text());
    assert!(big.detail().contains("at most 4096"), "{}", big.detail());
    let huge = submit(json!({"script": "plan.lua", "source": "x".repeat(200_000)}));
    assert_eq!(huge.status, 413, "{}", huge.text());
    let many = submit(
        json!({"script": "p.lua", "source": "", "modules": {"a.lua": "", "b.lua": "", "c.lua": ""}}),
    );
    assert_eq!(many.status, 413, "{}", many.text());
    assert!(many.detail().contains("3 modules"), "{}", many.detail());
    let malformed = server.post("/api/v1/runs", "{\"script\": ");
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.detail().contains("not a run request"),
        "{}",
        malformed.detail()
    );
    let unknown = submit(json!({"script": "p.lua", "source": "", "allow_unsafe": true}));
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    assert!(
        unknown.detail().contains("allow_unsafe"),
        "{}",
        unknown.detail()
    );
    let bad_arg = submit(json!({"script": "p.lua", "source": "", "args": [["bad key", "1"]]}));
    assert_eq!(bad_arg.status, 400, "{}", bad_arg.text());
    let tiny = submit(json!({"script": "p.lua", "source": "", "limits": {"memory_bytes": 10}}));
    assert_eq!(tiny.status, 400, "{}", tiny.text());
    // Nothing was accepted.
    assert_eq!(server.get("/api/v1/runs").json()["runs"], json!([]));
    assert_eq!(server.post("/api/v1/runs/run-nope/cancel", "").status, 404);
    let url = server.url();
    let shown = gfi(&["runs", "run-nope", "--remote", &url]);
    assert_eq!(shown.status.code(), Some(1));
    let err = steady(&shown.stderr);
    assert!(
        err.contains("404") && err.contains("no run with id 'run-nope'"),
        "{err}"
    );
}

#[test]
fn limits_are_capped_by_the_controllers_and_the_sandbox_stays() {
    let server = Server::start(|c| c.limits.instructions = 5_000_000, Backend::SimPerRun);
    let resp = server.post(
        "/api/v1/runs",
        &json!({
            "script": "busy.lua",
            "source": "assert(io == nil, 'io is sandboxed away')\nwhile true do end",
            "limits": {"instructions": 1_000_000_000_000u64},
        })
        .to_string(),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.json()["limits"]["instructions"], 5_000_000);
    let id = resp.json()["id"].as_str().unwrap().to_string();
    let record = server.ended(&id);
    assert_eq!(record["status"], "failed", "{record}");
    assert!(
        record["error"].as_str().unwrap().contains("instruction"),
        "{record}"
    );
}

impl Server {
    /// Follows a run's live event stream until an entry satisfies `pred` (within the deadline).
    fn wait_for_entry(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) {
        use http_body_util::BodyExt;
        let path = format!("/api/v1/runs/{id}/events");
        self.rt.block_on(common::within(what, async {
            let mut body = common::stream(self.addr, &path).await.into_body();
            let mut text = String::new();
            loop {
                let frame = body.frame().await.expect("the stream goes on").unwrap();
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                text.push_str(&String::from_utf8_lossy(&data));
                if parse_sse(&text).iter().any(|(_, _, e)| pred(e)) {
                    return;
                }
                assert!(
                    !text.contains("event: end"),
                    "run {id} ended before {what}: {text}"
                );
            }
        }));
    }

    fn status(&self, id: &str) -> String {
        self.get(&format!("/api/v1/runs/{id}")).json()["status"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn is_waiting(e: &Value) -> bool {
    e["message"] == "waiting for a cordon that never comes"
}

#[test]
fn ctrl_c_cancels_the_remote_run_mid_wait_and_follows_its_cleanup() {
    let server = Server::start(|_| {}, Backend::SharedRealTime);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let url = server.url();
    let mut child = Reaper::new(
        Command::new(common::gfi_bin())
            .args(["run", "tests/remote/wait.lua", "--color", "never"])
            .args(["--remote", &url, "--token-file", &token])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = common::Lines::new(child.stdout.take().unwrap());
    let mut err = common::Lines::new(child.stderr.take().unwrap());
    out.until("the plan's wait to start", |l| {
        l.contains("waiting for a cordon")
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest = out.rest("the client's output");
    let errors = err.rest("the client's errors");
    let status = common::exit_status(&mut child, "the client");
    assert_eq!(status.code(), Some(130), "{rest}\n{errors}");
    assert!(errors.contains("cancelling run"), "{errors}");
    assert!(rest.contains("cleanup ran for gpu-node-001"), "{rest}");
    assert!(rest.contains("interrupted: "), "{rest}");
    assert!(
        !rest.contains("the wait ended"),
        "the wait was cut short: {rest}"
    );
    let runs = server.get("/api/v1/runs").json();
    let id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    let record = server.ended(&id);
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["cancelled_by"], CALLER);
    assert_eq!(record["summary"]["outcome"], "cancelled");
    let kinds: Vec<&str> = record["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let cancelled = kinds.iter().position(|k| *k == "run.interrupted").unwrap();
    let cleanup = kinds.iter().position(|k| *k == "cleanup").unwrap();
    assert!(
        cancelled < cleanup && kinds.last() == Some(&"run.end"),
        "{kinds:?}"
    );
}

#[test]
fn runs_over_the_limit_queue_then_get_429_and_gfi_runs_lists_shows_and_cancels() {
    let server = Server::start(
        |c| {
            c.max_concurrent = 1;
            c.max_queued = 1;
        },
        Backend::SharedRealTime,
    );
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let url = server.url();
    let remote = ["--remote", url.as_str(), "--token-file", token.as_str()];
    let detach = || {
        let mut a = vec!["run", "tests/remote/wait.lua", "--detach"];
        a.extend(remote);
        let o = gfi(&a);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            steady(&o.stderr),
        )
    };
    let (code, first, _) = detach();
    assert_eq!(code, Some(0));
    assert!(first.starts_with("run-"), "{first}");
    server.wait_for_entry(&first, "the first run's wait", is_waiting);
    let (_, second, _) = detach();
    assert_eq!(server.status(&second), "queued");
    let (code, _, refused) = detach();
    assert_eq!(code, Some(1));
    assert!(
        refused.contains("429") && refused.contains("1 at once, 1 queued"),
        "{refused}"
    );

    // A queued run cancelled never starts.
    let mut cancel = vec!["runs", "cancel", second.as_str()];
    cancel.extend(remote);
    assert_eq!(gfi(&cancel).status.code(), Some(0));
    let record = server.ended(&second);
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["journal"], json!([]));
    assert!(
        record["error"].as_str().unwrap().contains("while queued"),
        "{record}"
    );

    // That freed a place in the queue.
    let (_, third, _) = detach();
    assert_eq!(server.status(&third), "queued");
    let mut list = vec!["runs"];
    list.extend(remote);
    let listed = steady(&gfi(&list).stdout);
    for (id, status) in [
        (&first, "running"),
        (&second, "cancelled"),
        (&third, "queued"),
    ] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(id.as_str()) && l.contains(status)),
            "{id} {status}:\n{listed}"
        );
    }

    // Cancelling the running one runs its cleanup and lets the queued one start.
    let mut cancel = vec!["runs", "cancel", first.as_str()];
    cancel.extend(remote);
    assert_eq!(gfi(&cancel).status.code(), Some(0));
    let mut show = vec!["runs", first.as_str(), "--color", "never"];
    show.truncate(2);
    show.extend(remote);
    let shown = gfi(&show);
    assert_eq!(shown.status.code(), Some(130));
    let shown_out = steady(&shown.stdout);
    assert!(
        shown_out.contains("cleanup ran for gpu-node-001"),
        "{shown_out}"
    );
    assert!(
        steady(&shown.stderr).contains(&format!("the run was cancelled by {CALLER}")),
        "{}",
        steady(&shown.stderr)
    );
    server.wait_for_entry(&third, "the third run's wait", is_waiting);
    let again = gfi(&cancel);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        steady(&again.stderr).contains("already cancelled"),
        "{}",
        steady(&again.stderr)
    );
    let resp = server.post(&format!("/api/v1/runs/{third}/cancel"), "");
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(server.ended(&third)["status"], "cancelled");
}

/// A TCP proxy in front of the server that drops the first event stream through it just
/// after its third entry, as a flaky network would. Returns its address and the request
/// lines of the event streams it saw.
fn dropping_proxy(server: &Server) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = server.addr;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = seen.clone();
    let addr = server.rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (log, cut) = (log.clone(), cut.clone());
                tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let mut request = vec![0u8; 64 << 10];
                    let n = client.read(&mut request).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&request[..n]).to_string();
                    let line = head.lines().next().unwrap_or("").to_string();
                    let events = line.contains("/events");
                    if events {
                        log.lock().unwrap().push(line);
                    }
                    // One request per connection, so that every request is seen here.
                    let request = String::from_utf8_lossy(&request[..n]).replacen(
                        "\r\n",
                        "\r\nconnection: close\r\n",
                        1,
                    );
                    server.write_all(request.as_bytes()).await.unwrap();
                    let drop_this = events && !cut.swap(true, std::sync::atomic::Ordering::SeqCst);
                    if !drop_this {
                        let (mut cr, mut cw) = client.split();
                        let (mut sr, mut sw) = server.split();
                        let _ = tokio::join!(
                            tokio::io::copy(&mut cr, &mut sw),
                            tokio::io::copy(&mut sr, &mut cw)
                        );
                        return;
                    }
                    // Forward up to the end of the third entry event, then hang up.
                    let mut passed = Vec::new();
                    let mut buf = vec![0u8; 16 << 10];
                    loop {
                        let n = server.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        passed.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&passed).to_string();
                        if let Some((i, _)) = text.match_indices("event: entry").nth(2)
                            && let Some(end) = text[i..].find("\n\n")
                        {
                            let _ = client.write_all(&passed[..i + end + 2]).await;
                            return;
                        }
                    }
                });
            }
        });
        addr
    });
    (addr, seen)
}

#[test]
fn a_dropped_event_stream_is_picked_up_where_it_broke() {
    let server = Server::start(|_| {}, Backend::SimPerRun);
    let (proxy, seen) = dropping_proxy(&server);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let plan = [
        "run",
        "tests/remote/plan.lua",
        "--seed",
        "9",
        "--color",
        "never",
    ];
    let local = gfi(&plan);
    let url = format!("http://{proxy}");
    let mut remote_args = plan.to_vec();
    remote_args.extend(["--remote", &url, "--token-file", &token]);
    let remote = gfi(&remote_args);
    assert_eq!(remote.status.code(), Some(0), "{}", steady(&remote.stderr));
    assert_eq!(steady(&remote.stdout), steady(&local.stdout));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("?from=0 "), "{seen:?}");
    assert!(seen[1].contains("?from=3 "), "{seen:?}");
}

/// Records in memory that say when a save lands (the manager saves in the background).
#[derive(Default)]
struct WatchedRecords {
    inner: MemoryRecords,
    saves: tokio::sync::watch::Sender<u64>,
}

#[async_trait::async_trait]
impl RunRecords for WatchedRecords {
    async fn save(&self, record: &Value) -> Result<(), String> {
        self.inner.save(record).await?;
        self.saves.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn load(&self) -> Result<Vec<Value>, String> {
        self.inner.load().await
    }
}

impl WatchedRecords {
    /// Waits until the stored record of `id` satisfies `pred`.
    fn wait_for(
        &self,
        rt: &tokio::runtime::Runtime,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) {
        let mut saves = self.saves.subscribe();
        rt.block_on(common::within(what, async {
            loop {
                saves.borrow_and_update();
                let stored = self.inner.load().await.unwrap();
                if stored.iter().any(|r| r["id"] == id && pred(r)) {
                    return;
                }
                saves.changed().await.unwrap();
            }
        }));
    }
}

#[test]
fn a_restarted_controller_marks_the_run_it_was_running_interrupted_and_keeps_ended_ones() {
    let records = Arc::new(WatchedRecords::default());
    let store = records.clone();
    let first = Server::start(move |c| c.records = store, Backend::SharedRealTime);
    let submit = |server: &Server, source: &str| {
        let body = json!({"script": "restart.lua", "source": source}).to_string();
        let resp = server.post("/api/v1/runs", &body);
        assert_eq!(resp.status, 201, "{}", resp.text());
        resp.json()["id"].as_str().unwrap().to_string()
    };
    let done = submit(&first, "print('done')");
    assert_eq!(first.ended(&done)["status"], "finished");
    let busy = submit(
        &first,
        "assert(inject_xid('gpu-node-003', 0, 79))\n\
         print('waiting for a cordon that never comes')\n\
         sleep('1h')",
    );
    first.wait_for_entry(&busy, "the busy run's wait", is_waiting);
    records.wait_for(&first.rt, &busy, "the busy run's injection saved", |r| {
        r["journal"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "inject")
    });
    records.wait_for(&first.rt, &done, "the ended run saved", |r| {
        r["status"] == "finished"
    });

    // A second controller on the same records, as after a restart.
    let store = records.clone();
    let second = Server::start(move |c| c.records = store, Backend::SharedRealTime);
    let record = second.get(&format!("/api/v1/runs/{busy}")).json();
    assert_eq!(record["status"], "interrupted", "{record}");
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("while the run was running"), "{error}");
    assert!(
        error.contains("left these nodes cordoned (heal them): gpu-node-003"),
        "{error}"
    );
    let kept = second.get(&format!("/api/v1/runs/{done}")).json();
    assert_eq!(kept["status"], "finished");
    assert_eq!(kept["journal"][1]["message"], "done");
    records.wait_for(&second.rt, &busy, "the interrupted status saved", |r| {
        r["status"] == "interrupted"
    });
    // The stream of an interrupted run ends.
    assert_eq!(
        second.events(&busy, &[]).last().unwrap().2["status"],
        "interrupted"
    );

    // The first controller is still running it: stop it there, cleanly.
    assert_eq!(
        first
            .post(&format!("/api/v1/runs/{busy}/cancel"), "")
            .status,
        202
    );
    assert_eq!(first.ended(&busy)["status"], "cancelled");
}

#[test]
fn a_cancel_during_the_cleanups_is_refused_and_a_slow_cleanup_is_abandoned_at_the_timeout() {
    let server = Server::start(
        |c| c.cleanup_timeout = std::time::Duration::from_secs(1),
        Backend::SharedRealTime,
    );
    let source = "cleanup(function() print('cleaning up') sleep('1h') end, 'slow cleanup')\n\
                  print('waiting for a cordon that never comes')\n\
                  sleep('1h')";
    let resp = server.post(
        "/api/v1/runs",
        &json!({"script": "slow.lua", "source": source}).to_string(),
    );
    let id = resp.json()["id"].as_str().unwrap().to_string();
    server.wait_for_entry(&id, "the run's wait", is_waiting);
    let cancel = format!("/api/v1/runs/{id}/cancel");
    assert_eq!(server.post(&cancel, "").status, 202);
    server.wait_for_entry(&id, "the cleanup", |e| e["message"] == "cleaning up");
    let again = server.post(&cancel, "");
    assert_eq!(again.status, 409, "{}", again.text());
    assert!(
        again.detail().contains("its cleanups are running"),
        "{}",
        again.detail()
    );
    let record = server.ended(&id);
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["cancelled_by"], CALLER);
    assert_eq!(
        record["summary"]["cleanup_errors"],
        json!(["cleanups abandoned after 1s (the controller's cleanup timeout)"])
    );
}

#[test]
fn runs_share_the_controllers_kube_backend_whose_watches_outlive_each_run() {
    // The cluster (API server double, agents, the reactor playing NVSentinel) on a runtime of
    // its own, as a real cluster is outside the controller.
    let cluster_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = cluster_rt.block_on(cluster::Cluster::start(2));
    let flags = vec![
        "--backend".to_string(),
        "kube".into(),
        "--kubeconfig".into(),
        c.kubeconfig().display().to_string(),
        "--agent-port".into(),
        c.port.to_string(),
        "--agent-access".into(),
        "direct".into(),
    ];
    let server = Server::start(|_| {}, Backend::Kube(flags));
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let url = server.url();
    // The second run waits on the watches the first one started: they must have outlived it.
    for node in ["gpu-node-001", "gpu-node-002"] {
        let arg = format!("node={node}");
        let o = gfi(&[
            "run",
            "examples/02_xid79_recovery.lua",
            "--arg",
            &arg,
            "--color",
            "never",
            "--remote",
            &url,
            "--token-file",
            &token,
        ]);
        let out = format!("{}{}", steady(&o.stdout), steady(&o.stderr));
        assert_eq!(o.status.code(), Some(0), "{node}: {out}");
        assert!(
            out.contains("✓ check recovered within 15 minutes"),
            "{node}: {out}"
        );
        assert!(
            out.contains(&format!("inject {node} XID 79")),
            "{node}: {out}"
        );
    }
    let kmsg = c.kmsg(1);
    assert!(kmsg.contains("): 79, "), "{kmsg}");
    drop(server);
    drop(c);
}

#[test]
fn what_cannot_run_remotely_is_refused_before_anything_is_sent() {
    // Nothing listens there: each refusal comes before a connection.
    let url = "http://127.0.0.1:9";
    for (extra, says) in [
        (
            vec!["--remote", url, "--allow-unsafe"],
            "--allow-unsafe is not allowed with --remote",
        ),
        (
            vec!["--remote", url, "--journal", "j.json"],
            "--journal is not available with --remote",
        ),
        (
            vec!["--remote", url, "--sim-nodes", "3"],
            "do not apply with --remote",
        ),
        (
            vec!["--remote", url, "--remote-ca", "ca.crt"],
            "--remote-ca is for an https:// controller",
        ),
        (
            vec![
                "--remote",
                "https://127.0.0.1:9",
                "--remote-ca",
                "missing.crt",
            ],
            "--remote-ca missing.crt",
        ),
        (vec!["--remote", "controller:8080"], "needs http://"),
    ] {
        let mut args = vec!["run", "tests/remote/plan.lua"];
        args.extend(extra.iter());
        let o = gfi(&args);
        let err = steady(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    let o = gfi(&["run", "tests/remote/plan.lua", "--detach"]);
    assert_eq!(o.status.code(), Some(2), "--detach needs --remote");
}
