//! The seed's central API: the same paths, fields and status codes as the seed's
//! `fault-injection-api`, for any catalogue XID, over the controller's backend (on `kube`, the
//! same pre-flight, Event and retries with one `fault_id` as `gfi run --backend kube`).

use super::caller::Caller;
use super::faults::{Fault, FaultStatus, new_fault_id};
use super::records::RecordKind;
use super::request::{self, RequestError};
use super::server::ControllerState;
use crate::agent::http::{detail, json_response};
use crate::backend::{BackendError, InjectRequest, NodeInfo, keys};
use crate::node::gpu::GpuSelector;
use crate::xid::catalog;
use crate::xid::line::LineOptions;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::sync::Arc;

/// What a handler did, for the request's audit line.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub fault_id: Option<String>,
    pub xid: Option<u32>,
    pub node: Option<String>,
    pub outcome: String,
}

fn noted(mut resp: Response, note: AuditNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A request error as FastAPI answers it.
fn request_error(e: RequestError) -> Response {
    match e {
        RequestError::Bad(msg) => detail(StatusCode::BAD_REQUEST, msg),
        RequestError::Invalid(fields) => detail(StatusCode::UNPROCESSABLE_ENTITY, fields),
    }
}

/// A body that could not be read: too large (413), or cut off.
pub fn body_error(e: BytesRejection) -> Response {
    let code = e.status();
    let msg = if code == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the request body is larger than the controller accepts ({} bytes)",
            request::MAX_BODY_BYTES
        )
    } else {
        format!("the request body could not be read: {e}")
    };
    detail(code, msg)
}

/// A backend error with the status its kind maps to; a throttled call says when to retry.
pub fn backend_error(e: &BackendError) -> Response {
    let mut resp = detail(status(e.http_status()), e.to_string());
    if let BackendError::Throttled { retry_after, .. } = e {
        let secs = retry_after
            .map(|d| d.as_secs_f64().ceil() as u64)
            .unwrap_or(1)
            .max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

fn now() -> String {
    crate::clock::rfc3339(chrono::Utc::now())
}

/// `POST /api/v1/faults/gpu/inject/xid-{N}`.
pub async fn inject(
    State(st): State<Arc<ControllerState>>,
    Extension(caller): Extension<Caller>,
    Path(segment): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    let xid = match request::path_xid(&segment) {
        Ok(x) => x,
        Err(e) => return request_error(e),
    };
    let b = match request::inject_body(&body, xid) {
        Ok(b) => b,
        Err(e) => return request_error(e),
    };
    let id = new_fault_id(xid);
    let mut fault = Fault::new(
        id.clone(),
        &b.node_name,
        b.gpu_id,
        xid,
        b.duration,
        &caller.name,
        now(),
    );
    if let Some(other) = b.overridden_xid {
        fault.warnings.push(format!(
            "the body's xid_type {other} was ignored: the path names XID {xid}"
        ));
    }
    for f in &b.unknown_fields {
        fault.warnings.push(format!(
            "unknown field {f:?} ignored (known: node_name, gpu_id, xid_type, duration)"
        ));
    }
    let req = InjectRequest {
        node: b.node_name.clone(),
        gpu: GpuSelector::Index(b.gpu_id),
        xid,
        line: LineOptions {
            style: st.line_style,
            ..LineOptions::default()
        },
        fault_id: id.clone(),
        provenance: format!("gfi:{id}"),
        preflight: true,
    };
    // On record while the agent is called, so a controller that dies before the answer leaves
    // a trace (marked interrupted at its next start). Side by side rather than first: an
    // injection costs one API round trip more in writes, not in latency.
    let (kept, result) = tokio::join!(st.records.save_fault(&fault), st.backend.inject_xid(&req));
    if let Err(e) = kept {
        tracing::warn!(fault_id = %id, "the record of an injection under way was not kept: {e}");
    }
    let mut note = AuditNote {
        fault_id: Some(id.clone()),
        xid: Some(xid),
        node: Some(b.node_name.clone()),
        outcome: String::new(),
    };
    let error = match &result {
        Ok(rec) => {
            fault.injected(rec);
            None
        }
        Err(e) => {
            fault.failed(e.http_status(), &e.to_string());
            Some(e.clone())
        }
    };
    if let Err(e) = st.records.save_fault(&fault).await {
        tracing::error!(fault_id = %id, "{e}");
        fault
            .warnings
            .push(format!("the fault record was not kept: {e}"));
    }
    match error {
        None => {
            note.outcome = "injected".into();
            noted(json_response(StatusCode::OK, &fault.answer()), note)
        }
        Some(e) => {
            note.outcome = e.kind().into();
            noted(backend_error(&e), note)
        }
    }
}

/// `GET /api/v1/faults/gpu/xid-types`: the whole catalogue, in the seed's shape
/// (`code`, `name`, `severity`, `description`) plus NVSentinel's action.
pub async fn xid_types() -> Response {
    let types: Vec<Value> = catalog::all()
        .iter()
        .map(|i| {
            let action = i.default_action();
            let severity = if action.reboots() {
                "critical"
            } else if i.fatal() {
                "high"
            } else {
                "low"
            };
            json!({
                "code": i.xid,
                "name": if i.description.is_empty() { &i.mnemonic } else { &i.description },
                "severity": severity,
                "description": if i.seed_text.is_empty() { &i.description } else { &i.seed_text },
                "mnemonic": i.mnemonic,
                "group": i.group,
                "nvsentinel_action": action.as_str(),
                "fatal": i.fatal(),
                "route": format!("/api/v1/faults/gpu/inject/xid-{}", i.xid),
            })
        })
        .collect();
    let count = types.len();
    Json(json!({ "xid_types": types, "count": count, "catalogue": catalog::VERSION }))
        .into_response()
}

/// `GET /api/v1/faults[?active_only=true]`: `{"faults": [...], "count": N}`, oldest first.
pub async fn list(State(st): State<Arc<ControllerState>>, RawQuery(q): RawQuery) -> Response {
    let active = match request::active_only(q.as_deref()) {
        Ok(a) => a,
        Err(e) => return request_error(e),
    };
    let faults: Vec<Value> = st
        .records
        .list(RecordKind::Fault)
        .into_iter()
        .filter(|f| {
            !active
                || serde_json::from_value::<FaultStatus>(f["status"].clone())
                    .is_ok_and(FaultStatus::is_active)
        })
        .collect();
    let count = faults.len();
    Json(json!({ "faults": faults, "count": count })).into_response()
}

fn not_found(id: &str) -> Response {
    detail(
        StatusCode::NOT_FOUND,
        format!(
            "Fault {} not found (GET /api/v1/faults lists the faults kept)",
            id.chars().take(80).collect::<String>()
        ),
    )
}

/// `GET /api/v1/faults/{id}`.
pub async fn get(State(st): State<Arc<ControllerState>>, Path(id): Path<String>) -> Response {
    match st.records.get(RecordKind::Fault, &id) {
        Some(f) => Json(f).into_response(),
        None => not_found(&id),
    }
}

/// What `recover` reports about a node.
fn node_report(n: &NodeInfo) -> Value {
    json!({
        "name": n.name,
        "cordoned": n.unschedulable,
        "ready": n.ready,
        "state": n.state(),
        "quarantined": n.annotations.contains_key(keys::ANN_QUARANTINE_EVENT),
        "summary": n.summary(),
    })
}

/// NVSentinel is done with the node: schedulable, and no quarantine left on it.
fn back_to_normal(n: &NodeInfo) -> bool {
    !n.unschedulable && !n.annotations.contains_key(keys::ANN_QUARANTINE_EVENT)
}

/// `POST /api/v1/faults/{id}/recover`: an XID line cannot be taken back; what can be done is
/// to say where the node stands and, with `{"heal": true}`, to undo what NVSentinel did to it
/// (the backend's `heal`: uncordon, remove its labels, annotations and taints).
pub async fn recover(
    State(st): State<Arc<ControllerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    let heal = match request::recover_body(&body) {
        Ok(h) => h,
        Err(e) => return request_error(e),
    };
    let Some(record) = st.records.get(RecordKind::Fault, &id) else {
        return not_found(&id);
    };
    let mut fault: Fault = match serde_json::from_value(record) {
        Ok(f) => f,
        Err(e) => {
            return detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("fault record {id} is unreadable: {e}"),
            );
        }
    };
    let mut note = AuditNote {
        fault_id: Some(id.clone()),
        xid: Some(fault.xid),
        node: Some(fault.node_name.clone()),
        outcome: String::new(),
    };
    if fault.status == FaultStatus::Failed {
        note.outcome = "nothing to recover".into();
        return noted(
            detail(
                StatusCode::CONFLICT,
                format!(
                    "fault {id} was never injected ({}); there is nothing to recover",
                    fault.error.as_deref().unwrap_or("it failed")
                ),
            ),
            note,
        );
    }
    if fault.status == FaultStatus::Injecting {
        note.outcome = "still injecting".into();
        return noted(
            detail(
                StatusCode::CONFLICT,
                format!("fault {id} is still being injected; recover it once it is answered"),
            ),
            note,
        );
    }
    let node = &fault.node_name;
    let (healed, report, node_info) = if heal {
        match st.backend.heal(node).await {
            Ok(r) => {
                let info = r.node.clone();
                (true, serde_json::to_value(&r).unwrap_or_default(), info)
            }
            Err(e) => {
                note.outcome = format!("heal failed: {}", e.kind());
                return noted(backend_error(&e), note);
            }
        }
    } else {
        match st.backend.node(node).await {
            Ok(n) => (false, Value::Null, n),
            Err(e) => {
                note.outcome = format!("node state unavailable: {}", e.kind());
                return noted(backend_error(&e), note);
            }
        }
    };
    let recovered = healed || back_to_normal(&node_info);
    let message = if healed {
        format!(
            "node {node} healed: {}",
            if report["uncordoned"] == true {
                "uncordoned, NVSentinel's quarantine removed"
            } else {
                "it was not cordoned; NVSentinel's quarantine marks removed"
            }
        )
    } else if recovered {
        format!(
            "node {node} is back to normal: schedulable and not quarantined ({})",
            node_info.summary()
        )
    } else {
        format!(
            "an XID line cannot be taken back; node {node} is {}: wait for NVSentinel, or POST {{\"heal\": true}} to heal it now",
            node_info.summary()
        )
    };
    let at = now();
    if recovered && fault.status != FaultStatus::Recovered {
        fault.status = FaultStatus::Recovered;
        fault.recovered_at = Some(at.clone());
    }
    fault.recovery = Some(json!({
        "at": at,
        "by": caller.name,
        "healed": healed,
        "node": node_report(&node_info),
        "heal": report,
    }));
    if let Err(e) = st.records.save_fault(&fault).await {
        tracing::error!(fault_id = %id, "{e}");
    }
    note.outcome = if healed {
        "healed".into()
    } else if recovered {
        "recovered".into()
    } else {
        "reported".into()
    };
    noted(
        Json(json!({
            "fault_id": id,
            "status": fault.status,
            "recovered_at": fault.recovered_at,
            "message": message,
            "healed": healed,
            "node": node_report(&node_info),
            "heal": report,
        }))
        .into_response(),
        note,
    )
}

/// `GET /health`: the seed's fields, and which backend and record store this is.
pub async fn health(State(st): State<Arc<ControllerState>>) -> Response {
    Json(json!({
        "status": "healthy",
        "service": "fault-injection-api",
        "timestamp": now(),
        "version": env!("CARGO_PKG_VERSION"),
        "backend": st.description,
        "records": st.records.describe(),
        "seed_compat_anonymous": st.auth.seed_compat_anonymous(),
    }))
    .into_response()
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<Arc<ControllerState>>) -> Response {
    let records = [
        ("fault", st.records.list(RecordKind::Fault).len()),
        ("run", st.records.list(RecordKind::Run).len()),
    ];
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        st.metrics.render(st.started.elapsed(), &records),
    )
        .into_response()
}
