//! The per-request gate: authentication (by the state's [`AuthGate`](super::auth::AuthGate)),
//! request metrics and one audit line per request.

use super::auth::{self, Verdict};
use super::http::route_label;
use super::state::AgentState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Who made a request, as the audit log names them (never the token itself).
#[derive(Debug, Clone)]
pub(crate) struct Identity(pub String);

/// What a handler did, for the audit line.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditNote {
    pub(crate) fault_id: Option<String>,
    pub(crate) xid: Option<u32>,
    pub(crate) gpu: Option<String>,
    pub(crate) outcome: &'static str,
    pub(crate) detail: Option<String>,
}

/// The one middleware every request passes: authentication (every route but `/health`, and
/// `/metrics` when public, needs a token), then the request metrics and one audit line (who,
/// what, outcome). Probes (`/health`, `/metrics`) are logged at debug level: they come every
/// few seconds from the kubelet and Prometheus.
///
/// Anything but a read runs as a task of its own that this awaits: hyper drops a request's
/// future when its client hangs up, and a write that reached the kernel log must still reach
/// the fault store and the audit log.
pub(crate) async fn gate(
    State(st): State<Arc<AgentState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    super::http::despite_hangup(&method, authenticate_run_and_audit(st, peer, req, next)).await
}

async fn authenticate_run_and_audit(
    st: Arc<AgentState>,
    peer: SocketAddr,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    let resp = match st.auth.check(route, req.headers()) {
        None => next.run(req).await,
        Some(Verdict::Allowed { token }) => {
            let mut resp = next.run(req).await;
            resp.extensions_mut()
                .insert(Identity(format!("token#{token}")));
            resp
        }
        Some(Verdict::Denied(why)) => {
            st.metrics.auth_failure(why.as_str());
            tracing::warn!(
                target: "gfi::audit",
                peer = %peer,
                method = %method,
                path = %req.uri().path(),
                reason = why.as_str(),
                "authentication failed"
            );
            let mut resp = auth::unauthorized(why);
            resp.extensions_mut()
                .insert(Identity(format!("refused ({} token)", why.as_str())));
            resp
        }
        Some(Verdict::Unavailable(msg)) => {
            st.metrics.auth_failure("unavailable");
            tracing::error!(target: "gfi::audit", peer = %peer, path = %req.uri().path(), "{msg}");
            auth::unavailable(msg)
        }
    };
    let status = resp.status().as_u16();
    st.metrics.request(route, status);
    if route == "/health" || route == "/metrics" {
        tracing::debug!(target: "gfi::audit", peer = %peer, method = %method, path = route, status, "request");
        return resp;
    }
    let who = resp
        .extensions()
        .get::<Identity>()
        .map(|i| i.0.as_str())
        .unwrap_or(if st.auth.is_insecure() {
            INSECURE
        } else {
            "anonymous"
        });
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    if let Some(n) = resp.extensions().get::<AuditNote>() {
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

const INSECURE: &str = "unauthenticated (insecure-no-auth)";
