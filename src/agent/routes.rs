//! The HTTP API. The seed's routes (`/health`, `/inject-xid`, `/faults`) keep the seed's
//! fields, status codes and `{"detail": ...}` errors; the rest is added.

use super::audit::{self, AuditNote};
use super::fault_store::StoredFault;
use super::http::{detail, json_response, json_text};
use super::request::{self, BodyError, InjectBody};
use super::state::{AgentState, InFlight, Outcome};
use crate::node::inject::{InjectError, InjectSpec, Injection};
use crate::node::readback::{self, Filter, ReadSource};
use crate::node::wire::{
    Detail, ErrorBody, FieldError, GpuEntry, GpusResponse, InjectXidResponse, KmsgEntry,
    KmsgResponse,
};
use crate::node::writer::WriteError;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) fn router(st: Arc<AgentState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/inject-xid", post(inject_xid))
        .route("/faults", get(faults))
        .route("/faults/{fault_id}", get(fault))
        .route("/gpus", get(gpus))
        .route("/kmsg", get(kmsg))
        .route("/metrics", get(metrics))
        .route("/version", get(version))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            audit::gate,
        ))
        .with_state(st)
}

fn with_note(mut resp: Response, note: AuditNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> Response {
    detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

async fn health(State(st): State<Arc<AgentState>>, uri: axum::http::Uri) -> Response {
    let snap = st.health.read().expect("health lock").clone();
    // Probes call this every few seconds and benchmarks far more often: no query parsing
    // unless there is a query.
    let strict = match uri.query() {
        None => false,
        Some(_) => match health_strict(&uri) {
            Ok(s) => s,
            Err(msg) => return detail(StatusCode::BAD_REQUEST, msg),
        },
    };
    let status = if strict && !snap.healthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        snap.body(st.fault_store.len()),
    )
        .into_response()
}

fn health_strict(uri: &axum::http::Uri) -> Result<bool, String> {
    let mut strict = false;
    for (k, v) in query_pairs(uri)? {
        match k.as_str() {
            "strict" => strict = parse_bool(&k, &v)?,
            other => return Err(unknown_parameter(other, "strict")),
        }
    }
    Ok(strict)
}

/// The query's `name=value` pairs, decoded; a name given twice is refused, since which one
/// counts would be a guess.
fn query_pairs(uri: &axum::http::Uri) -> Result<Vec<(String, String)>, String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| format!("the query string cannot be read: {}", e.body_text()))?;
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(format!(
                "query parameter {:?} is given more than once; give it once",
                k.chars().take(40).collect::<String>()
            ));
        }
    }
    Ok(pairs)
}

fn unknown_parameter(name: &str, known: &str) -> String {
    format!(
        "unknown query parameter {:?} (known: {known})",
        name.chars().take(40).collect::<String>()
    )
}

async fn version(State(st): State<Arc<AgentState>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "name": "gfi",
            "component": "agent",
            "version": env!("CARGO_PKG_VERSION"),
            "api": 1,
            "node": st.node,
            "write_path": st.injector.writer().describe(),
        }),
    )
}

async fn metrics(State(st): State<Arc<AgentState>>) -> Response {
    let snap = st.health.read().expect("health lock").clone();
    let text = st.metrics.render(&[
        (
            "gfi_agent_gpus",
            "GPUs found in the driver's tree at the last health check.",
            snap.gpu_count as f64,
        ),
        (
            "gfi_agent_healthy",
            "1 when every health check passed.",
            if snap.healthy { 1.0 } else { 0.0 },
        ),
        (
            "gfi_agent_faults_retained",
            "Fault records in the journal.",
            st.fault_store.len() as f64,
        ),
    ]);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn gpus(State(st): State<Arc<AgentState>>) -> Response {
    match st.injector.gpus().refresh().await {
        Ok(d) => json_response(
            StatusCode::OK,
            &GpusResponse {
                count: d.gpus.len(),
                gpus: d.gpus.iter().map(GpuEntry::from).collect(),
                node: st.node.clone(),
                proc_root: st.injector.gpus().proc_root().display().to_string(),
                warnings: d.warnings.clone(),
            },
        ),
        Err(e) => detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn fault_summary(f: &StoredFault) -> Value {
    let r = &f.response_json();
    json!({
        "fault_id": f.fault_id,
        "xid_type": r.get("xid_type"),
        "gpu_id": r.get("gpu_id"),
        "pci_bus_id": r.get("pci_bus_id"),
        "timestamp": r.get("timestamp"),
        "kmsg_seq": r.get("kmsg_seq"),
        "line": r.get("line"),
        "recorded_at": f.recorded_at,
    })
}

async fn faults(State(st): State<Arc<AgentState>>) -> Response {
    let list = st.fault_store.list();
    json_response(
        StatusCode::OK,
        &json!({
            "node": st.node,
            "active_faults": list.iter().map(|f| f.fault_id.clone()).collect::<Vec<_>>(),
            "count": list.len(),
            "faults": list.iter().map(|f| fault_summary(f)).collect::<Vec<_>>(),
        }),
    )
}

async fn fault(State(st): State<Arc<AgentState>>, Path(id): Path<String>) -> Response {
    match st.fault_store.get(&id) {
        Some(f) => json_text(StatusCode::OK, f.response.clone()),
        None => detail(
            StatusCode::NOT_FOUND,
            format!(
                "fault {:?} not found on node {} (the journal keeps the newest records; GET /faults lists them)",
                id.chars().take(80).collect::<String>(),
                st.node
            ),
        ),
    }
}

fn new_fault_id(xid: u32) -> String {
    let n: u32 = rand::random();
    format!("gpu_xid_{xid}-{n:08x}")
}

/// Releases a fault id's in-flight slot however the request ends.
struct InFlightGuard {
    st: Arc<AgentState>,
    id: String,
    done: Option<watch::Sender<Option<Outcome>>>,
}

impl InFlightGuard {
    fn finish(mut self, outcome: Outcome) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(Some(outcome));
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.st
            .inflight
            .lock()
            .expect("inflight lock")
            .remove(&self.id);
    }
}

fn conflict(id: &str, earlier: &str) -> Response {
    detail(
        StatusCode::CONFLICT,
        format!(
            "fault_id {id:?} was already used for a different request ({}); send the same request to get its result again, or use a new fault_id",
            describe_request(earlier)
        ),
    )
}

fn describe_request(fp: &str) -> String {
    let fp: Value = serde_json::from_str(fp).unwrap_or(Value::Null);
    let gpu = fp
        .get("gpu")
        .and_then(|g| g.as_object())
        .and_then(|o| o.iter().next())
        .map(|(k, v)| format!("{k} {v}"))
        .unwrap_or_else(|| "?".into());
    format!(
        "XID {} on GPU {}",
        fp.get("xid").cloned().unwrap_or(Value::Null),
        gpu
    )
}

/// The body must be JSON: `application/json` or any `application/*+json`, or no
/// `Content-Type` at all (FastAPI, the seed, reads that as JSON too).
fn json_content_type(headers: &axum::http::HeaderMap) -> Result<(), String> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = v.to_str().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(format!(
            "the body must be JSON (Content-Type: application/json), got Content-Type {:?}",
            text.chars().take(80).collect::<String>()
        ))
    }
}

async fn inject_xid(
    State(st): State<Arc<AgentState>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    if let Err(msg) = json_content_type(&headers) {
        st.metrics.injection(0, "rejected");
        return with_note(
            detail(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg.clone()),
            AuditNote {
                outcome: "rejected",
                detail: Some(msg),
                ..Default::default()
            },
        );
    }
    let bytes = match axum::body::to_bytes(body, st.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return with_note(
                detail(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is larger than {} bytes; an injection request is a small JSON object",
                        st.max_body_bytes
                    ),
                ),
                AuditNote {
                    outcome: "rejected",
                    ..Default::default()
                },
            );
        }
    };
    let (resp, note) = match st.injection_slots.acquire().await {
        Ok(_permit) => inject_inner(st.clone(), bytes).await,
        Err(_) => (
            detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent is shutting down",
            ),
            AuditNote {
                outcome: "failed",
                ..Default::default()
            },
        ),
    };
    with_note(resp, note)
}

async fn inject_inner(st: Arc<AgentState>, bytes: Bytes) -> (Response, AuditNote) {
    let mut note = AuditNote {
        outcome: "rejected",
        ..Default::default()
    };
    let body = match request::decode(&bytes) {
        Ok(b) => b,
        Err(BodyError::XidOutOfRange(msg)) => {
            st.metrics.injection(0, "rejected");
            note.detail = Some(msg.clone());
            return (detail(StatusCode::BAD_REQUEST, msg), note);
        }
        Err(BodyError::Invalid(errs)) => {
            st.metrics.injection(0, "rejected");
            note.detail = Some(
                errs.iter()
                    .map(|e| e.msg.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            return (detail(StatusCode::UNPROCESSABLE_ENTITY, errs), note);
        }
    };
    note.xid = Some(body.xid);
    note.gpu = Some(body.gpu.to_string());
    if let Some(n) = &body.node_name
        && n != &st.node
    {
        st.metrics.injection(body.xid, "rejected");
        let msg = format!(
            "this agent runs on node {:?}, but the request is for node {:?}; send it to that node's agent",
            st.node, n
        );
        note.detail = Some(msg.clone());
        return (detail(StatusCode::BAD_REQUEST, msg), note);
    }
    let fault_id = body
        .fault_id
        .clone()
        .unwrap_or_else(|| new_fault_id(body.xid));
    note.fault_id = Some(fault_id.clone());
    let fingerprint = body.fingerprint();

    // A repeat of a recorded request gets the recorded answer; a different request under the
    // same id is a conflict.
    if let Some(stored) = st.fault_store.get(&fault_id) {
        if stored.request == fingerprint {
            st.metrics.repeat();
            note.outcome = "repeat";
            let mut resp = json_text(StatusCode::OK, stored.response.clone());
            resp.headers_mut()
                .insert("gfi-idempotent-replay", HeaderValue::from_static("true"));
            return (resp, note);
        }
        note.outcome = "conflict";
        return (conflict(&fault_id, &stored.request), note);
    }
    // The same id may be in flight right now.
    enum Slot {
        Mine(InFlightGuard),
        Wait(watch::Receiver<Option<Outcome>>),
        Conflict(String),
    }
    let slot = {
        let mut inflight = st.inflight.lock().expect("inflight lock");
        match inflight.get(&fault_id) {
            Some(f) if f.fingerprint == fingerprint => Slot::Wait(f.done.clone()),
            Some(f) => Slot::Conflict(f.fingerprint.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                inflight.insert(
                    fault_id.clone(),
                    InFlight {
                        fingerprint: fingerprint.clone(),
                        done: rx,
                    },
                );
                Slot::Mine(InFlightGuard {
                    st: st.clone(),
                    id: fault_id.clone(),
                    done: Some(tx),
                })
            }
        }
    };
    match slot {
        // The request gate runs a write in its own task: a client that hangs up cuts
        // neither the fault store append nor the audit line.
        Slot::Mine(guard) => {
            run_injection(st.clone(), body, fault_id.clone(), fingerprint, guard).await
        }
        Slot::Wait(mut rx) => {
            note.outcome = "repeat";
            let outcome = rx
                .wait_for(|o| o.is_some())
                .await
                .ok()
                .and_then(|o| o.clone());
            match outcome {
                Some(o) => {
                    st.metrics.repeat();
                    (json_text(o.0, o.1.clone()), note)
                }
                None => (
                    detail(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the first request with this fault_id did not finish (rate limited or interrupted); retry",
                    ),
                    note,
                ),
            }
        }
        Slot::Conflict(earlier) => {
            note.outcome = "conflict";
            (conflict(&fault_id, &earlier), note)
        }
    }
}

fn inject_error_response(e: &InjectError) -> (StatusCode, &'static str, Detail) {
    let failed =
        |what: &dyn std::fmt::Display| Detail::from(format!("Failed to inject XID: {what}"));
    match e {
        InjectError::Line(crate::xid::line::LineError::Invalid { field, reason }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            vec![FieldError::new(
                "value_error",
                field,
                format!("{field}: {reason}"),
            )]
            .into(),
        ),
        InjectError::Line(l @ crate::xid::line::LineError::TooLong { .. }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            vec![FieldError::new("value_error", "text", l.to_string())].into(),
        ),
        // The seed answered 500 here; an unknown GPU is the caller's mistake, and a 500 is what
        // retry policies and alerts read as the agent failing. The seed's text stays.
        InjectError::GpuNotFound { .. } => (StatusCode::NOT_FOUND, "rejected", failed(e)),
        InjectError::Discovery(_) => (StatusCode::SERVICE_UNAVAILABLE, "failed", failed(e)),
        InjectError::Write(w @ WriteError::Dropped { .. }) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "dropped", failed(w))
        }
        InjectError::Write(w) if w.is_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, "failed", failed(w))
        }
        InjectError::Write(w) => (StatusCode::INTERNAL_SERVER_ERROR, "failed", failed(w)),
    }
}

async fn run_injection(
    st: Arc<AgentState>,
    body: InjectBody,
    fault_id: String,
    fingerprint: String,
    guard: InFlightGuard,
) -> (Response, AuditNote) {
    let started = Instant::now();
    let mut note = AuditNote {
        fault_id: Some(fault_id.clone()),
        xid: Some(body.xid),
        gpu: Some(body.gpu.to_string()),
        outcome: "rejected",
        detail: None,
    };
    let provenance = crate::xid::line::provenance_name(body.run_id.as_deref().unwrap_or(&fault_id));
    let spec = InjectSpec {
        gpu: body.gpu.clone(),
        xid: body.xid,
        line: body.line.clone(),
        provenance,
    };
    let fail = |e: InjectError, note: &mut AuditNote| {
        let (status, outcome, detail) = inject_error_response(&e);
        note.outcome = outcome;
        note.detail = Some(e.to_string());
        st.metrics.injection(body.xid, outcome);
        let text = serde_json::to_string(&ErrorBody { detail }).unwrap_or_default();
        (status, text)
    };
    let (gpu, record) = match st.injector.prepare(&spec).await {
        Ok(p) => p,
        Err(e) => {
            let (status, text) = fail(e, &mut note);
            guard.finish(Arc::new((status, text.clone())));
            return (json_text(status, text), note);
        }
    };
    note.gpu = Some(gpu.index.to_string());
    if let Err(limited) = st.limiter.acquire(gpu.index) {
        st.metrics.rate_limited(limited.scope);
        st.metrics.injection(body.xid, "rate_limited");
        note.outcome = "rate_limited";
        let msg = limited.detail(gpu.index);
        note.detail = Some(msg.clone());
        let mut resp = detail(StatusCode::TOO_MANY_REQUESTS, msg);
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(limited.retry_after_secs()),
        );
        // Not recorded as an outcome for waiters: a retry may succeed.
        drop(guard);
        return (resp, note);
    }
    let inj = match st.injector.write_prepared(&spec, gpu, record).await {
        Ok(i) => i,
        Err(e) => {
            let (status, text) = fail(e, &mut note);
            guard.finish(Arc::new((status, text.clone())));
            return (json_text(status, text), note);
        }
    };
    let mut response = injected(&st.node, &fault_id, &body, inj);
    let mut text = serde_json::to_string(&response).unwrap_or_default();
    let stored = StoredFault {
        fault_id: fault_id.clone(),
        request: fingerprint,
        response: text.clone(),
        recorded_at: chrono::Utc::now().to_rfc3339(),
    };
    if let Err(e) = st.fault_store.append(stored).await {
        // The line is in the kernel log: answering 500 would invite a retry and a second
        // line. Say it plainly instead, and let /health report the fault store.
        st.metrics.fault_store_error();
        tracing::error!(fault_id = %fault_id, "journal append failed: {e}");
        response.warnings.push(format!(
            "the line was written but the journal append failed: {e}"
        ));
        text = serde_json::to_string(&response).unwrap_or_default();
    }
    st.metrics.injection(body.xid, "injected");
    st.metrics.injection_latency(started.elapsed());
    note.outcome = "injected";
    note.detail = response.kmsg_seq.map(|s| format!("kmsg seq {s}"));
    guard.finish(Arc::new((StatusCode::OK, text.clone())));
    (json_text(StatusCode::OK, text), note)
}

/// The answer to an injection that landed: the seed's fields, then what this agent adds.
fn injected(node: &str, fault_id: &str, body: &InjectBody, inj: Injection) -> InjectXidResponse {
    let mut warnings = inj.warnings;
    for f in &body.unknown_fields {
        warnings.push(format!("unknown field {f:?} was ignored"));
    }
    if body.duration.is_some() {
        warnings.push(
            "duration is recorded but has no effect: an XID line cannot be taken back".into(),
        );
    }
    let gpu = inj.gpu;
    InjectXidResponse {
        status: "injected".into(),
        node: node.to_string(),
        fault_id: fault_id.to_string(),
        xid_type: inj.xid,
        gpu_id: gpu.index,
        message: format!(
            "XID {} injected for GPU {} (PCI: {}) → NVSentinel",
            inj.xid,
            gpu.index,
            gpu.pci.sysfs()
        ),
        timestamp: inj.time.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
        pci: gpu.pci,
        pci_bus_id: gpu.pci.sysfs(),
        gpu_uuid: gpu.uuid,
        gpu_model: gpu.model,
        line: inj.line,
        style: body.line.style,
        kmsg_seq: inj.landed.seq,
        kmsg_usec: inj.landed.usec,
        target: inj.landed.target,
        write_path: inj.write_path,
        readback: inj.landed.readback,
        nvsentinel_action: inj.info.default_action(),
        fatal: inj.info.fatal(),
        xid_name: inj.info.mnemonic,
        xid_description: inj.info.description,
        duration: body.duration,
        warnings,
    }
}

/// Query of `GET /kmsg`.
#[derive(Debug, Clone, PartialEq)]
struct KmsgQuery {
    filter: Filter,
    limit: usize,
    follow: bool,
}

const MAX_KMSG_LIMIT: usize = 10_000;
const MAX_GREP: usize = 256;

fn parse_bool(k: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{k} must be true or false, got {v:?}")),
    }
}

fn parse_kmsg_query(q: &[(String, String)]) -> Result<KmsgQuery, String> {
    let mut out = KmsgQuery {
        filter: Filter::default(),
        limit: 100,
        follow: false,
    };
    for (k, v) in q {
        match k.as_str() {
            "limit" => {
                out.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_KMSG_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit must be 1-{MAX_KMSG_LIMIT}, got {v:?}"))?
            }
            "since_seq" => {
                out.filter.since_seq =
                    Some(v.parse().map_err(|_| {
                        format!("since_seq must be a kmsg sequence number, got {v:?}")
                    })?)
            }
            "grep" => {
                if v.len() > MAX_GREP {
                    return Err(format!("grep must be at most {MAX_GREP} bytes"));
                }
                out.filter.grep = Some(v.clone())
            }
            "xid" => out.filter.xid_only = parse_bool(k, v)?,
            "follow" => out.follow = parse_bool(k, v)?,
            other => {
                return Err(unknown_parameter(
                    other,
                    "limit, since_seq, grep, xid, follow",
                ));
            }
        }
    }
    Ok(out)
}

async fn kmsg(State(st): State<Arc<AgentState>>, uri: axum::http::Uri) -> Response {
    let q = match query_pairs(&uri).and_then(|q| parse_kmsg_query(&q)) {
        Ok(q) => q,
        Err(msg) => return detail(StatusCode::BAD_REQUEST, msg),
    };
    let source = match st.injector.writer().open_reader().await {
        Ok(s) => s,
        Err(e) => return detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let filter = q.filter.clone();
    let limit = q.limit;
    let joined = tokio::task::spawn_blocking(move || {
        let mut source = source;
        let recs = readback::tail(&mut source, &filter, limit);
        (source, recs)
    })
    .await;
    let (source, records) = match joined {
        Ok((s, Ok(r))) => (s, r),
        Ok((_, Err(e))) => {
            return detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the kernel log failed: {e}"),
            );
        }
        Err(e) => return detail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if !q.follow {
        return json_response(
            StatusCode::OK,
            &KmsgResponse {
                count: records.len(),
                node: st.node.clone(),
                records: records.iter().map(KmsgEntry::from).collect(),
                source: st.injector.writer().describe().to_string(),
            },
        );
    }
    follow(st, source, q.filter, records)
}

/// Streams the tail, then every new matching record, as JSON lines until the client goes
/// away or the agent shuts down.
fn follow(
    st: Arc<AgentState>,
    source: ReadSource,
    filter: Filter,
    backlog: Vec<crate::kmsg::KmsgRecord>,
) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        let line = |r: &crate::kmsg::KmsgRecord| {
            let mut s = serde_json::to_string(&KmsgEntry::from(r)).unwrap_or_default();
            s.push('\n');
            Bytes::from(s)
        };
        for r in &backlog {
            if tx.send(line(r)).await.is_err() {
                return;
            }
        }
        let send_all = |recs: Vec<crate::kmsg::KmsgRecord>| {
            let tx = tx.clone();
            let filter = filter.clone();
            async move {
                for r in recs.iter().filter(|r| filter.keeps(r)) {
                    if tx.send(line(r)).await.is_err() {
                        return false;
                    }
                }
                true
            }
        };
        match source {
            ReadSource::Device(file) => {
                // SAFETY: the File owns its descriptor and keeps it open, unchanged, for as
                // long as the AsyncFd that owns the File lives.
                let Ok(mut fd) = (unsafe { tokio::io::unix::AsyncFd::register(file) }) else {
                    return;
                };
                loop {
                    let mut guard = tokio::select! {
                        g = fd.readable_mut() => match g { Ok(g) => g, Err(_) => return },
                        _ = shutdown.changed() => return,
                        _ = tx.closed() => return,
                    };
                    let mut recs = Vec::new();
                    let mut buf = vec![0u8; readback::RECORD_BUF];
                    let res = readback::next_device_record(guard.get_inner_mut(), &mut buf);
                    match res {
                        Ok(Some(r)) => {
                            recs.push(r);
                            while let Ok(Some(r)) =
                                readback::next_device_record(guard.get_inner_mut(), &mut buf)
                            {
                                recs.push(r);
                            }
                            guard.clear_ready();
                        }
                        Ok(None) => guard.clear_ready(),
                        Err(_) => return,
                    }
                    if !send_all(recs).await {
                        return;
                    }
                }
            }
            ReadSource::RawFile(file) => {
                // A regular file cannot be polled for readiness; a file stand-in is only
                // used by tests, so a short poll is fine here.
                let mut offset = file.metadata().map(|m| m.len()).unwrap_or(0);
                let file = Arc::new(file);
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = shutdown.changed() => return,
                        _ = tx.closed() => return,
                    }
                    let f = file.clone();
                    let from = offset;
                    let Ok(Ok((recs, next))) =
                        tokio::task::spawn_blocking(move || readback::raw_records_from(&f, from))
                            .await
                    else {
                        return;
                    };
                    offset = next;
                    if !send_all(recs).await {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_query_errors_are_clear() {
        let q = |pairs: &[(&str, &str)]| {
            parse_kmsg_query(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(q(&[]).unwrap().limit, 100);
        assert!(q(&[("follow", "true")]).unwrap().follow);
        assert!(q(&[("limit", "0")]).unwrap_err().contains("1-10000"));
        assert!(q(&[("since_seq", "x")]).unwrap_err().contains("since_seq"));
        assert!(
            q(&[("follow", "maybe")])
                .unwrap_err()
                .contains("true or false")
        );
        assert!(q(&[("bogus", "1")]).unwrap_err().contains("known: limit"));
    }
}
