//! Per-request middleware: authentication, then one audit line (who, what, outcome) and the
//! request metrics.

use super::auth::Verdict;
use super::routes::{detail, route_label};
use super::server::AgentState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Who made a request, as the audit log names them (never the token itself).
#[derive(Debug, Clone)]
pub struct Identity(pub String);

/// What a handler did, for the audit line.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub fault_id: Option<String>,
    pub xid: Option<u32>,
    pub gpu: Option<String>,
    pub outcome: &'static str,
    pub detail: Option<String>,
}

fn exempt(st: &AgentState, path: &str) -> bool {
    path == "/health" || (path == "/metrics" && st.public_metrics)
}

/// Requires `Authorization: Bearer <token>` on every route but `/health` (and `/metrics`
/// when public).
pub async fn authenticate(
    State(st): State<Arc<AgentState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(tokens) = &st.tokens else {
        req.extensions_mut()
            .insert(Identity("unauthenticated (insecure-no-auth)".into()));
        return with_identity(next.run(req).await, "unauthenticated (insecure-no-auth)");
    };
    if exempt(&st, req.uri().path()) {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match tokens.check(header) {
        Verdict::Allowed { token } => {
            let who = format!("token#{token}");
            req.extensions_mut().insert(Identity(who.clone()));
            with_identity(next.run(req).await, &who)
        }
        Verdict::Denied(why) => {
            st.metrics.auth_failure(why.as_str());
            tracing::warn!(
                target: "gfi::audit",
                peer = %peer,
                method = %req.method(),
                path = %req.uri().path(),
                reason = why.as_str(),
                "authentication failed"
            );
            let mut resp = detail(StatusCode::UNAUTHORIZED, why.detail());
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gfi-agent\""),
            );
            resp.extensions_mut().insert(Identity(format!(
                "refused ({} token)",
                why.as_str()
            )));
            resp
        }
        Verdict::Unavailable(msg) => {
            st.metrics.auth_failure("unavailable");
            tracing::error!(target: "gfi::audit", peer = %peer, path = %req.uri().path(), "{msg}");
            detail(StatusCode::SERVICE_UNAVAILABLE, msg)
        }
    }
}

fn with_identity(mut resp: Response, who: &str) -> Response {
    if resp.extensions().get::<Identity>().is_none() {
        resp.extensions_mut().insert(Identity(who.to_string()));
    }
    resp
}

/// Counts the request and writes its audit line. Probes (`/health`, `/metrics`) are logged
/// at debug level: they come every few seconds from the kubelet and Prometheus.
pub async fn audit(
    State(st): State<Arc<AgentState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = route_label(req.uri().path());
    let resp = next.run(req).await.into_response();
    let status = resp.status().as_u16();
    st.metrics.request(route, status);
    let who = resp
        .extensions()
        .get::<Identity>()
        .map(|i| i.0.as_str())
        .unwrap_or("anonymous");
    let note = resp.extensions().get::<AuditNote>();
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    if route == "/health" || route == "/metrics" {
        tracing::debug!(target: "gfi::audit", peer = %peer, who, method = %method, path = route, status, ms, "request");
    } else if let Some(n) = note {
        tracing::info!(
            target: "gfi::audit",
            peer = %peer,
            who,
            method = %method,
            path = route,
            status,
            ms,
            fault_id = n.fault_id.as_deref().unwrap_or(""),
            xid = n.xid.unwrap_or(0),
            gpu = n.gpu.as_deref().unwrap_or(""),
            outcome = n.outcome,
            detail = n.detail.as_deref().unwrap_or(""),
            "request"
        );
    } else {
        tracing::info!(target: "gfi::audit", peer = %peer, who, method = %method, path = route, status, ms, "request");
    }
    resp
}
