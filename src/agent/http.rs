//! What every part of the agent's HTTP API answers with: JSON bodies, FastAPI's
//! `{"detail": ...}` errors, and the bounded route labels that metrics and audit lines use.
//! Its own module so the request gate and the handlers share it without importing each other.

use crate::node::wire::{Detail, ErrorBody};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The route a path belongs to, as a static label (metrics must not grow with the paths
/// clients invent).
pub(crate) fn route_label(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/inject-xid" => "/inject-xid",
        "/faults" => "/faults",
        "/gpus" => "/gpus",
        "/kmsg" => "/kmsg",
        "/metrics" => "/metrics",
        "/version" => "/version",
        p if p.starts_with("/faults/") => "/faults/{fault_id}",
        _ => "other",
    }
}

/// `{"detail": ...}`, FastAPI's error shape.
pub(crate) fn detail(status: StatusCode, detail: impl Into<Detail>) -> Response {
    json_response(
        status,
        &ErrorBody {
            detail: detail.into(),
        },
    )
}

pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    // The bodies are structs and string-keyed maps, which always serialise.
    json_text(status, serde_json::to_string(v).unwrap_or_default())
}

/// A body that is JSON already (a stored answer, a pre-rendered health report).
pub(crate) fn json_text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Runs one request's handling to its end even if the client hangs up: hyper drops a
/// request's future when its connection closes, so anything but a read (GET, HEAD) runs as a
/// task of its own that this awaits, and a write that reached a node still reaches its record
/// and the audit log. The agent's gate and the controller's share it.
pub(crate) async fn despite_hangup(
    method: &axum::http::Method,
    handling: impl std::future::Future<Output = Response> + Send + 'static,
) -> Response {
    if matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD) {
        return handling.await;
    }
    match tokio::spawn(handling).await {
        Ok(resp) => resp,
        Err(e) => detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's task failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(route_label("/faults/abc"), "/faults/{fault_id}");
        assert_eq!(route_label("/../../etc/passwd"), "other");
    }
}
