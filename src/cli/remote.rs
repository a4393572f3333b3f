//! `gfi run --remote URL plan.lua`: the plan runs on a `gfi controller`. The script and the
//! local modules it requires travel as a bundle; the run's journal comes back as Server-Sent
//! Events and is shown by the same progress display as a local run, with the same exit codes.
//! Ctrl-C cancels the remote run and follows its cleanups to their end.

use super::progress::Progress;
use super::run::{Ending, RunArgs, conclude, progress_for};
use crate::journal::{Entry, EntryKind};
use crate::report::model::RunBuilder;
use crate::signals::Interrupts;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, Args)]
pub struct RemoteArgs {
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// With --remote: submit, print the run's id and exit (follow it with `gfi runs ID`).
    #[arg(long, requires = "remote")]
    pub detach: bool,
}

/// Which controller, and the token for it.
#[derive(Debug, Clone, Default, Args)]
pub struct ControllerArgs {
    /// Run on (or ask) a gfi controller at this URL (http://host:8080 or https://...).
    #[arg(long, value_name = "URL", env = "GFI_REMOTE", global = true)]
    pub remote: Option<String>,
    /// The controller's bearer token: the file's first token line.
    #[arg(long, value_name = "FILE", env = "GFI_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// With an https:// URL: also trust this PEM CA bundle (the system's CAs are trusted too).
    #[arg(long, value_name = "FILE", env = "GFI_REMOTE_CA", global = true)]
    pub remote_ca: Option<PathBuf>,
}

/// How long one request (not an event stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// An event stream with nothing on it this long is dropped and reconnected (the controller
/// sends a keep-alive every 15 seconds).
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// Reconnections of a dropped event stream in a row before giving up.
const RECONNECTS: u32 = 8;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A controller to talk to.
pub(crate) struct Controller {
    base: String,
    token: Option<String>,
    http: HttpClient,
}

impl Controller {
    pub(crate) fn new(args: &ControllerArgs) -> Result<Controller, String> {
        let url = args.remote.as_deref().unwrap_or_default();
        let token_file = args.token_file.as_deref();
        let base = url.trim_end_matches('/').to_string();
        let uri: Uri = base.parse().map_err(|e| {
            format!("--remote {url} is not a URL ({e}); expected e.g. http://gfi-controller:8080")
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "--remote {url} needs http:// or https:// and a host, e.g. http://gfi-controller:8080"
                ));
            }
        };
        if args.remote_ca.is_some() && !https {
            return Err(format!(
                "--remote-ca is for an https:// controller, and --remote {url} is plain http"
            ));
        }
        if uri.host().is_none() {
            return Err(format!(
                "--remote {url} has no host; expected e.g. http://gfi-controller:8080"
            ));
        }
        let token = match token_file {
            None => None,
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read the token file {}: {e}", f.display()))?;
                let token = crate::node::wire::token_lines(&text)
                    .next()
                    .ok_or_else(|| {
                        format!(
                            "the token file {} holds no token (blank and # lines are skipped)",
                            f.display()
                        )
                    })?;
                Some(token.to_string())
            }
        };
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        connector.enforce_http(false);
        let tls = if https {
            crate::tls::client_config(args.remote_ca.as_deref(), "--remote-ca", true)?
        } else {
            // Never used: the URL is plain http.
            crate::tls::client_config_trusting_nothing()
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Controller { base, token, http })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, String> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let payload = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| format!("cannot build the request {method} {path}: {e}"))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(format!(
                "cannot reach the controller at {}: {}",
                self.base,
                causes(&e)
            )),
            Err(_) => Err(format!(
                "the controller at {} did not answer {method} {path} within {}s",
                self.base,
                REQUEST_TIMEOUT.as_secs()
            )),
        }
    }

    /// A JSON request; a non-2xx answer is an error with the controller's `detail`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let resp = self.send(method.clone(), path, body, &[]).await?;
        let status = resp.status();
        let bytes = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| {
                format!(
                    "the controller's answer to {method} {path} did not arrive within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("cannot read the controller's answer to {method} {path}: {e}"))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"detail": String::from_utf8_lossy(&bytes)}));
        if status.is_success() {
            Ok(value)
        } else {
            let detail = value.get("detail").map_or_else(
                || value.to_string(),
                |d| d.as_str().map_or_else(|| d.to_string(), str::to_string),
            );
            Err(format!(
                "the controller refused {method} {path} ({status}): {detail}"
            ))
        }
    }

    /// The event stream from event `from`; an error says whether trying again may help (the
    /// network, the controller's own failure) or not (the controller refused: 4xx).
    async fn events(&self, id: &str, from: u64) -> Result<Response<Incoming>, (bool, String)> {
        let mut headers = vec![("accept", "text/event-stream".to_string())];
        if from > 0 {
            headers.push(("last-event-id", (from - 1).to_string()));
        }
        let path = format!("/api/v1/runs/{id}/events?from={from}");
        let resp = self
            .send(Method::GET, &path, None, &headers)
            .await
            .map_err(|e| (true, e))?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err((
                !status.is_client_error(),
                format!(
                    "the controller refused GET {path} ({status}): {}",
                    String::from_utf8_lossy(&body)
                ),
            ));
        }
        Ok(resp)
    }
}

/// An error with its causes, `outer: inner: innermost` (hyper's own message is only "client
/// error (Connect)").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The modules a script requires, found as `require` would find them from its directory and
/// the `--lib-path`s, by their path relative to the script's directory. Modules found nowhere
/// are the stdlib's (on the controller already) or missing (the run says so, as locally).
pub(crate) fn bundle_modules(
    source: &str,
    script_dir: &Path,
    lib_paths: &[PathBuf],
) -> Result<BTreeMap<String, String>, String> {
    let mut dirs = vec![script_dir.to_path_buf()];
    dirs.extend(lib_paths.iter().cloned());
    let mut modules = BTreeMap::new();
    let mut pending: Vec<String> = required(source);
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) || name.starts_with("gfi.") {
            continue;
        }
        let rel = name.replace('.', "/");
        let found = dirs.iter().find_map(|dir| {
            [format!("{rel}.lua"), format!("{rel}/init.lua")]
                .into_iter()
                .map(|r| (dir.join(&r), r))
                .find(|(p, _)| p.is_file())
        });
        if let Some((path, rel_path)) = found {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read module {}: {e}", path.display()))?;
            pending.extend(required(&text));
            modules.insert(rel_path, text);
        }
    }
    Ok(modules)
}

/// The module names of `require "x"`, `require("x")` and `require 'x'` calls in a source.
fn required(source: &str) -> Vec<String> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = PATTERN.get_or_init(|| {
        regex::Regex::new(r#"\brequire\s*\(?\s*["']([A-Za-z_][A-Za-z0-9_.\-]*)["']"#)
            .expect("the require pattern is valid")
    });
    re.captures_iter(source).map(|c| c[1].to_string()).collect()
}

/// `gfi run --remote`.
pub fn run(args: RunArgs) -> ExitCode {
    match prepare(&args) {
        Ok(body) => {
            let interrupts = match Interrupts::install(&[Signal::SIGINT, Signal::SIGTERM]) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            rt.block_on(submit_and_follow(args, body, interrupts))
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The request body, or why the command line cannot run remotely.
fn prepare(args: &RunArgs) -> Result<Value, String> {
    if args.lua.allow_unsafe {
        return Err(
            "--allow-unsafe is not allowed with --remote: remote runs are always sandboxed".into(),
        );
    }
    if args.journal.is_some() {
        return Err("--journal is not available with --remote: the run's record keeps its journal (`gfi runs ID --json`)".into());
    }
    let b = &args.backend;
    if b.sim_nodes.is_some()
        || b.sim_gpus.is_some()
        || b.sim_config.is_some()
        || b.nvsentinel_values.is_some()
    {
        return Err("--sim-* and --nvsentinel-values do not apply with --remote: the run uses the controller's cluster".into());
    }
    let Some(script) = &args.script else {
        return Err("--remote needs the plan to run: gfi run --remote URL PLAN.lua".into());
    };
    let source = std::fs::read_to_string(script)
        .map_err(|e| format!("script {} cannot be read: {e}", script.display()))?;
    let dir = match script.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let modules = bundle_modules(&source, &dir, &args.lua.lib_paths)?;
    let limits = args.lua.limits();
    Ok(json!({
        "script": script.display().to_string(),
        "source": source,
        "modules": modules,
        "args": args.args,
        "seed": b.seed,
        "limits": {"memory_bytes": limits.memory_bytes, "instructions": limits.instructions},
        "line_style": args.line_style.to_string(),
    }))
}

async fn submit_and_follow(args: RunArgs, body: Value, mut interrupts: Interrupts) -> ExitCode {
    let wall = Instant::now();
    let controller = match Controller::new(&args.remote.controller) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let submitted = match controller
        .call(Method::POST, "/api/v1/runs", Some(&body))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(id) = submitted
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        eprintln!("error: the controller's answer has no run id: {submitted}");
        return ExitCode::from(1);
    };
    if args.remote.detach {
        println!("{id}");
        return ExitCode::SUCCESS;
    }
    let progress = progress_for(&args);
    let followed = follow(&controller, &id, &progress, Some(&mut interrupts)).await;
    progress.clear_status();
    match followed {
        Ok(f) => ending(f, wall.elapsed()),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// What following a run saw.
pub(crate) struct Followed {
    /// The record at the end (without its journal).
    pub record: Value,
    /// The seed from the run's `run.start` entry.
    pub seed: Option<u64>,
    /// This client cancelled it (Ctrl-C, SIGTERM).
    pub signal: Option<Signal>,
    /// It was still going when this client stopped following (a second Ctrl-C).
    pub left_running: bool,
    /// The run as its entries told it, for the summary a local run prints.
    pub run: RunBuilder,
}

/// Shows a run's events from the first one to its end, reconnecting a dropped stream from
/// the last event seen. With `interrupts`, Ctrl-C cancels the run and goes on showing its
/// cleanups; a second one stops following.
pub(crate) async fn follow(
    controller: &Controller,
    id: &str,
    progress: &Arc<Progress>,
    mut interrupts: Option<&mut Interrupts>,
) -> Result<Followed, String> {
    let sink = progress.sink();
    let mut run = RunBuilder::default();
    let mut next: u64 = 0;
    let mut seed = None;
    let mut signal: Option<Signal> = None;
    let mut failures = 0u32;
    loop {
        let resp = match controller.events(id, next).await {
            Ok(r) => r,
            Err((true, e)) if failures < RECONNECTS => {
                failures += 1;
                tracing::debug!("reconnecting the event stream: {e}");
                tokio::time::sleep(Duration::from_millis(250 << failures.min(5))).await;
                continue;
            }
            Err((_, e)) => return Err(e),
        };
        let mut body = resp.into_body();
        let mut parser = SseParser::default();
        loop {
            let frame = tokio::select! {
                f = tokio::time::timeout(STREAM_SILENCE, body.frame()) => f,
                sig = next_signal(&mut interrupts) => {
                    if signal.is_some() {
                        eprintln!("\nstopped following run {id}: its cleanups go on on the controller (see `gfi runs {id}`)");
                        return Ok(Followed { record: json!({"id": id}), seed, signal, left_running: true, run });
                    }
                    signal = Some(sig);
                    progress.clear_status();
                    eprintln!(
                        "\ninterrupted by {}: cancelling run {id}; its cleanups run on the controller ({} again to stop following)",
                        crate::signals::spoken(sig),
                        crate::signals::spoken(sig)
                    );
                    if let Err(e) = controller.call(Method::POST, &format!("/api/v1/runs/{id}/cancel"), None).await {
                        eprintln!("error: {e}");
                    }
                    continue;
                }
            };
            let chunk = match frame {
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                // Ended, broken or silent: reconnect from the next event.
                Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
            };
            failures = 0;
            for event in parser.push(&chunk) {
                match event.kind.as_str() {
                    "entry" => {
                        let entry: Entry = serde_json::from_str(&event.data)
                            .map_err(|e| format!("the controller sent an event that does not read as a journal entry ({e}): {}", event.data))?;
                        if entry.seq < next {
                            continue;
                        }
                        next = entry.seq + 1;
                        if entry.kind == EntryKind::RunStart {
                            seed = entry.data.get("seed").and_then(Value::as_u64);
                        }
                        sink(&entry);
                        run.add(&entry);
                    }
                    "end" => {
                        let record: Value = serde_json::from_str(&event.data).map_err(|e| {
                            format!(
                                "the controller's end event does not read ({e}): {}",
                                event.data
                            )
                        })?;
                        return Ok(Followed {
                            record,
                            seed,
                            signal,
                            left_running: false,
                            run,
                        });
                    }
                    _ => {}
                }
            }
        }
        failures += 1;
        if failures > RECONNECTS {
            return Err(format!(
                "the event stream of run {id} kept dropping; follow it with `gfi runs {id}`"
            ));
        }
    }
}

async fn next_signal(interrupts: &mut Option<&mut Interrupts>) -> Signal {
    match interrupts {
        Some(i) => i.next().await,
        None => std::future::pending().await,
    }
}

/// The last lines of a followed run, as a local run prints them; its exit status.
pub(crate) fn ending(f: Followed, wall: Duration) -> ExitCode {
    if f.left_running {
        return ExitCode::from(crate::signals::exit_for(f.signal.unwrap_or(Signal::SIGINT)));
    }
    let record = &f.record;
    let status = record.get("status").and_then(Value::as_str).unwrap_or("");
    let Some(summary) = record.get("summary").filter(|s| s.is_object()) else {
        let why = record
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        eprintln!("error: the run {status}: {why}");
        return ExitCode::from(1);
    };
    let strings = |k: &str| -> Vec<String> {
        summary
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let stopped = match status {
        "cancelled" => {
            if f.signal.is_none() {
                let who = record
                    .get("cancelled_by")
                    .and_then(Value::as_str)
                    .unwrap_or("someone");
                eprintln!("the run was cancelled by {who}");
            }
            Some((
                "interrupted",
                crate::signals::exit_for(f.signal.unwrap_or(Signal::SIGINT)),
            ))
        }
        "interrupted" => Some(("interrupted", 1)),
        "stopped" => {
            let why = record.get("error").and_then(Value::as_str).unwrap_or("");
            eprintln!("\n{why} (cleanups ran)");
            let kind = match summary.get("outcome").and_then(Value::as_str) {
                Some("tripwire") => crate::guard::StopKind::Tripwire,
                _ => crate::guard::StopKind::Guardrail,
            };
            Some(super::run::stopped_by(kind))
        }
        _ => None,
    };
    let seconds = summary
        .get("run_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let run = f.run.finish(Default::default(), summary.clone());
    conclude(&Ending {
        summary: crate::report::text::summary(&run, run.injections.len() > 1),
        error: summary
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string),
        errors: strings("cleanup_errors")
            .into_iter()
            .chain(strings("task_errors"))
            .collect(),
        stopped,
        checks: summary
            .get("checks")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default(),
        injections: summary
            .get("injections")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        run_time: Duration::from_millis((seconds * 1000.0).round() as u64),
        virtual_time: record
            .get("virtual_time")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        wall,
        seed: f
            .seed
            .or_else(|| record.get("seed").and_then(Value::as_u64))
            .unwrap_or(0),
        journal: None,
    })
}

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
struct SseEvent {
    kind: String,
    data: String,
}

/// Splits a byte stream into events (blank-line separated blocks of `field: value` lines).
#[derive(Default)]
struct SseParser {
    buf: String,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf
            .push_str(&String::from_utf8_lossy(chunk).replace('\r', ""));
        let mut events = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut event = SseEvent {
                kind: "message".into(),
                data: String::new(),
            };
            let mut data_lines = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event.kind = value.to_string(),
                    "data" => data_lines.push(value),
                    _ => {}
                }
            }
            if !data_lines.is_empty() {
                event.data = data_lines.join("\n");
                events.push(event);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_are_found_in_every_spelling() {
        let src = "local a = require \"alpha\"\nlocal b = require('beta.gamma')\nrequire 'gfi.report'\nx = required('no')";
        assert_eq!(required(src), vec!["alpha", "beta.gamma", "gfi.report"]);
    }

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"id: 0\nevent: entry\nda").is_empty());
        let got = p.push(b"ta: {\"a\":1}\n\n: keep-alive\n\nevent: end\ndata: x\n\n");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    kind: "entry".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    kind: "end".into(),
                    data: "x".into()
                },
            ]
        );
    }

    #[test]
    fn modules_are_bundled_by_their_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let lib = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("util")).unwrap();
        std::fs::write(dir.path().join("util/init.lua"), "return require 'helpers'").unwrap();
        std::fs::write(lib.path().join("helpers.lua"), "return {}").unwrap();
        let m = bundle_modules(
            "local u = require 'util'\nrequire 'report'",
            dir.path(),
            &[lib.path().to_path_buf()],
        )
        .unwrap();
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            vec!["helpers.lua", "util/init.lua"]
        );
    }
}
