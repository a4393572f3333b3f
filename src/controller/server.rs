//! Starting and stopping the controller: load the records, mark the runs a previous controller
//! left running as interrupted, bind, serve every route behind one gate (authentication and
//! scope, body size, audit line, request metrics), and shut down gracefully.

use super::api::{self, AuditNote};
use super::auth::{ControllerAuth, needed_scope};
use super::caller::Caller;
use super::metered::MeteredBackend;
use super::metrics::Metrics;
use super::records::{Backing, RecordKind, RecordStore, nodes_touched};
use crate::agent::http::detail;
use crate::backend::SharedBackend;
use crate::serve::Serving;
use crate::xid::LineStyle;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub listen: SocketAddr,
    /// The `run` tokens.
    pub token_file: Option<PathBuf>,
    /// The `read` tokens.
    pub read_token_file: Option<PathBuf>,
    /// Anonymous callers may use the seed's central API routes (scope `run`).
    pub seed_compat_anonymous: bool,
    /// Serve `/metrics` without a token.
    pub public_metrics: bool,
    /// Where the record ConfigMaps live (the controller's own namespace).
    pub namespace: String,
    /// Records kept of each kind.
    pub retention: usize,
    pub record_max_bytes: usize,
    pub max_body_bytes: usize,
    /// The style of the lines the central API injects.
    pub line_style: LineStyle,
    pub shutdown_grace: Duration,
    /// Serve HTTPS with this PEM certificate chain and key (plain HTTP when `None`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Remote runs of plans (`/api/v1/runs`); `None`: the routes answer 404.
    pub runs: Option<RunsSettings>,
}

/// How the controller runs plans for its callers.
#[derive(Debug, Clone)]
pub struct RunsSettings {
    /// Each run's bundle is written under `state_dir/runs/<id>/` while it runs.
    pub state_dir: PathBuf,
    /// Runs at once; more wait in a queue of `max_queued`, and beyond it a submission gets 429.
    pub max_concurrent: usize,
    pub max_queued: usize,
    /// `Some`: every run gets a fresh simulated cluster from these settings and its own seed
    /// (a demo or test controller); `None`: runs share the controller's cluster.
    pub sim_per_run: Option<Box<crate::backend::spec::BackendArgs>>,
}

impl ControllerConfig {
    pub fn new(listen: SocketAddr) -> ControllerConfig {
        ControllerConfig {
            listen,
            token_file: None,
            read_token_file: None,
            seed_compat_anonymous: false,
            public_metrics: false,
            namespace: "fault-injection-system".into(),
            retention: 500,
            record_max_bytes: super::records::MAX_RECORD_BYTES,
            max_body_bytes: super::request::MAX_BODY_BYTES,
            line_style: LineStyle::Driver,
            shutdown_grace: Duration::from_secs(10),
            tls: None,
            runs: None,
        }
    }
}

/// The cluster the controller serves: a backend, how to name it, and the Kubernetes client
/// its records go through (`None`: records in memory).
pub struct ControllerBackend {
    pub backend: SharedBackend,
    pub description: String,
    pub kube: Option<kube::Client>,
}

/// What the handlers share.
pub struct ControllerState {
    /// The backend, metered: the central API and the runs inject through it.
    pub backend: SharedBackend,
    pub description: String,
    pub(crate) auth: ControllerAuth,
    pub records: Arc<RecordStore>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    pub max_body_bytes: usize,
    /// The larger limit of a run's submission (its bundle).
    pub max_run_body_bytes: usize,
    pub public_metrics: bool,
    pub line_style: LineStyle,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Token(#[from] crate::agent::auth::TokenError),
    #[error("{0}")]
    Records(#[from] super::records::RecordError),
    #[error("{0}")]
    Tls(String),
    #[error("remote runs: {0}")]
    Runs(String),
    #[error("{0}")]
    Listen(#[from] crate::serve::ListenError),
    #[error(
        "no way to authenticate callers: give --token-file (run tokens) and/or --read-token-file (read tokens), or --seed-compat-anonymous for the seed's unauthenticated callers"
    )]
    NoAuth,
}

/// The route a request belongs to, as a bounded label (metrics must not grow with the paths
/// clients invent), and whether it is one of the seed's central API routes.
pub fn route_label(path: &str) -> (&'static str, bool) {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match seg.as_slice() {
        ["health"] => ("/health", false),
        ["metrics"] => ("/metrics", false),
        ["api", "v1", "faults"] => ("/api/v1/faults", true),
        ["api", "v1", "faults", "gpu", "xid-types"] => ("/api/v1/faults/gpu/xid-types", true),
        ["api", "v1", "faults", "gpu", "inject", _] => ("/api/v1/faults/gpu/inject/xid-{n}", true),
        ["api", "v1", "faults", _, "recover"] => ("/api/v1/faults/{id}/recover", true),
        ["api", "v1", "faults", _] => ("/api/v1/faults/{id}", true),
        ["api", "v1", "runs"] => ("/api/v1/runs", false),
        ["api", "v1", "runs", _] => ("/api/v1/runs/{id}", false),
        ["api", "v1", "runs", _, "events"] => ("/api/v1/runs/{id}/events", false),
        ["api", "v1", "runs", _, "cancel"] => ("/api/v1/runs/{id}/cancel", false),
        _ => ("other", false),
    }
}

/// Every route of the controller. `runs`: the remote-run routes (absolute paths, their state
/// applied), served behind the same gate.
pub fn router(st: Arc<ControllerState>, runs: Option<Router>) -> Router {
    let mut app = Router::new()
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/faults", get(api::list))
        .route("/api/v1/faults/gpu/xid-types", get(api::xid_types))
        .route("/api/v1/faults/gpu/inject/{xid}", post(api::inject))
        .route("/api/v1/faults/{id}", get(api::get))
        .route("/api/v1/faults/{id}/recover", post(api::recover))
        .fallback(|| async {
            detail(
                StatusCode::NOT_FOUND,
                "Not Found (the controller serves /api/v1/faults..., /api/v1/runs..., /health and /metrics)",
            )
        })
        .method_not_allowed_fallback(|method: Method| async move {
            detail(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("Method Not Allowed: {method} is not one of this route's methods (see docs/controller.md)"),
            )
        })
        .with_state(st.clone());
    if let Some(runs) = runs {
        app = app.merge(runs);
    }
    app.layer(DefaultBodyLimit::max(st.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(st, gate))
}

/// The one middleware every request passes: the body's declared size, authentication and
/// scope (every route but `/health`, and `/metrics` when public), then the request metrics
/// and one audit line (who, what, outcome).
///
/// Anything but a read runs as a task of its own that this awaits: hyper drops a request's
/// future when its client hangs up, and an injection that reached a node must still reach
/// its record and the audit log.
async fn gate(
    State(st): State<Arc<ControllerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    crate::agent::http::despite_hangup(&method, check_run_and_audit(st, peer, req, next)).await
}

async fn check_run_and_audit(
    st: Arc<ControllerState>,
    peer: SocketAddr,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let (route, seed_route) = route_label(req.uri().path());
    let method = req.method().clone();
    let open = route == "/health" || (route == "/metrics" && st.public_metrics);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut who = "anonymous".to_string();
    let limit = if route == "/api/v1/runs" {
        st.max_run_body_bytes
    } else {
        st.max_body_bytes
    };
    let resp = if declared.is_some_and(|n| n > limit as u64) {
        detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is {} bytes; the controller accepts at most {limit} on {route}",
                declared.unwrap_or(0),
            ),
        )
    } else if open {
        next.run(req).await
    } else {
        match st.auth.authenticate(&method, seed_route, req.headers()) {
            Ok(caller) => {
                who = caller.name.clone();
                req.extensions_mut().insert::<Caller>(caller);
                next.run(req).await
            }
            Err(refusal) => {
                who = refusal.who();
                st.metrics.auth_failure(match refusal.status() {
                    401 => "unauthenticated",
                    403 => "forbidden",
                    _ => "unavailable",
                });
                tracing::warn!(
                    target: "gfi::audit",
                    peer = %peer,
                    who,
                    method = %method,
                    path = route,
                    needed = needed_scope(&method).as_str(),
                    "refused"
                );
                let mut r = detail(
                    StatusCode::from_u16(refusal.status())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    refusal.detail(&method, route),
                );
                if let Some(c) = refusal.challenge() {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, c);
                }
                r
            }
        }
    };
    let status = resp.status().as_u16();
    st.metrics.request(route, status);
    if open {
        tracing::debug!(target: "gfi::audit", peer = %peer, method = %method, path = route, status, "request");
        return resp;
    }
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let note = resp
        .extensions()
        .get::<AuditNote>()
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        target: "gfi::audit",
        peer = %peer,
        who,
        method = %method,
        path = route,
        status,
        ms,
        fault_id = note.fault_id.as_deref().unwrap_or(""),
        xid = note.xid.unwrap_or(0),
        node = note.node.as_deref().unwrap_or(""),
        outcome = note.outcome,
        "request"
    );
    resp
}

/// The run manager's durable records: the store's run records, and the runs' outcomes counted
/// as they end. Implements the run manager's `RunRecords` (`save`/`load` of JSON records keyed
/// by their `id`).
pub struct ClusterRunRecords {
    pub store: Arc<RecordStore>,
    pub metrics: Arc<Metrics>,
}

impl ClusterRunRecords {
    pub async fn save(&self, record: &Value) -> Result<(), String> {
        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
        let status = record
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let was = self
            .store
            .get(RecordKind::Run, id)
            .and_then(|r| r.get("status").and_then(Value::as_str).map(str::to_string));
        let ended = |s: &str| !matches!(s, "" | "queued" | "running");
        if ended(status) && !was.as_deref().is_some_and(ended) {
            self.metrics.run_ended(status);
        }
        self.store.save_run(record).await
    }

    pub async fn load(&self) -> Result<Vec<Value>, String> {
        self.store.load_runs().await
    }
}

/// Marks the runs a previous controller left queued or running as `interrupted`, with the
/// nodes each touched and whether each is cordoned now, so a person can heal them.
async fn mark_interrupted(st: &ControllerState) -> usize {
    for fault in st.records.live(RecordKind::Fault) {
        let Ok(mut fault) = serde_json::from_value::<super::faults::Fault>(fault) else {
            continue;
        };
        fault.interrupted(&crate::clock::rfc3339(chrono::Utc::now()));
        tracing::warn!(fault_id = %fault.id, node = %fault.node_name, "an injection was interrupted by the controller's restart");
        if let Err(e) = st.records.save_fault(&fault).await {
            tracing::error!("marking an interrupted injection: {e}");
        }
    }
    let live = st.records.live(RecordKind::Run);
    let n = live.len();
    for mut run in live {
        let was = run["status"].as_str().unwrap_or("running").to_string();
        let mut nodes = Vec::new();
        for node in nodes_touched(&run) {
            let cordoned = match st.backend.node(&node).await {
                Ok(info) => json!(info.unschedulable),
                Err(e) => json!(format!("unknown: {e}")),
            };
            nodes.push(json!({ "node": node, "cordoned": cordoned }));
        }
        let cordoned: Vec<&str> = nodes
            .iter()
            .filter(|n| n["cordoned"] == true)
            .filter_map(|n| n["node"].as_str())
            .collect();
        let at = crate::clock::rfc3339(chrono::Utc::now());
        run["error"] = json!(format!(
            "the controller stopped while this run was {was}; it was marked interrupted when the controller started again at {at}{}",
            if cordoned.is_empty() {
                String::new()
            } else {
                format!(
                    "; nodes cordoned now: {} (heal them: POST /api/v1/faults/<id>/recover {{\"heal\": true}}, or heal(node) in a plan)",
                    cordoned.join(", ")
                )
            }
        ));
        run["interrupted"] = json!({ "at": at, "was": was, "nodes": nodes });
        run["status"] = json!("interrupted");
        if run.get("ended_at").is_none_or(Value::is_null) {
            run["ended_at"] = json!(at);
        }
        st.metrics.run_ended("interrupted");
        if let Err(e) = st.records.save(RecordKind::Run, &run).await {
            tracing::error!("marking an interrupted run: {e}");
        }
        tracing::warn!(run = %run["id"], was, nodes = ?cordoned, "a run was interrupted by the controller's restart");
    }
    n
}

/// A started controller.
pub struct RunningController {
    state: Arc<ControllerState>,
    serving: Serving,
}

impl RunningController {
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    pub fn state(&self) -> &Arc<ControllerState> {
        &self.state
    }

    /// Stops accepting, lets requests in flight finish (up to the grace period).
    pub async fn stop(self) -> std::io::Result<()> {
        self.serving.stop().await
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully.
    pub async fn serve_until_signal(self) -> std::io::Result<()> {
        self.serving.serve_until_signal().await
    }
}

/// Builds the remote-run routes over the controller's shared state.
#[async_trait::async_trait]
impl super::runs::RunRecords for ClusterRunRecords {
    async fn save(&self, record: &Value) -> Result<(), String> {
        ClusterRunRecords::save(self, record).await
    }
    async fn load(&self) -> Result<Vec<Value>, String> {
        ClusterRunRecords::load(self).await
    }
}

/// The run manager of a controller: its runs inject through the metered backend (so they are
/// counted) and keep their records beside the faults'.
async fn run_manager(
    state: &Arc<ControllerState>,
    settings: RunsSettings,
) -> Result<Arc<super::runs::RunManager>, StartError> {
    use super::runs::{RunBackend, RunManager, RunManagerConfig};
    let backend = match settings.sim_per_run {
        Some(args) => RunBackend::SimPerRun(args),
        None => RunBackend::Shared {
            backend: state.backend.clone(),
            description: state.description.clone(),
        },
    };
    let mut config = RunManagerConfig::new(backend, settings.state_dir);
    config.max_concurrent = settings.max_concurrent;
    config.max_queued = settings.max_queued;
    config.records = Arc::new(ClusterRunRecords {
        store: state.records.clone(),
        metrics: state.metrics.clone(),
    });
    RunManager::new(config).await.map_err(StartError::Runs)
}

/// Loads the records, binds and serves in the background.
pub async fn start(
    config: ControllerConfig,
    cluster: ControllerBackend,
) -> Result<RunningController, StartError> {
    if config.token_file.is_none()
        && config.read_token_file.is_none()
        && !config.seed_compat_anonymous
    {
        return Err(StartError::NoAuth);
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key).map_err(StartError::Tls)?),
        None => None,
    };
    let auth = ControllerAuth::open(
        config.token_file.as_deref(),
        config.read_token_file.as_deref(),
        config.seed_compat_anonymous,
    )?;
    if config.seed_compat_anonymous {
        tracing::warn!(
            "--seed-compat-anonymous: anyone who can reach {} can inject XIDs through the seed's routes, and get nodes cordoned, drained and rebooted",
            config.listen
        );
    }
    let backing = match cluster.kube {
        Some(client) => Backing::ConfigMaps {
            api: Box::new(kube::Api::namespaced(client, &config.namespace)),
            namespace: config.namespace.clone(),
        },
        None => Backing::Memory,
    };
    let records = Arc::new(RecordStore::new(
        backing,
        config.retention,
        config.record_max_bytes,
    ));
    let loaded = records.load().await?;
    let metrics = Arc::new(Metrics::default());
    let backend: SharedBackend = Arc::new(MeteredBackend::new(cluster.backend, metrics.clone()));
    let state = Arc::new(ControllerState {
        backend,
        description: cluster.description,
        auth,
        records,
        metrics,
        started: Instant::now(),
        max_body_bytes: config.max_body_bytes,
        max_run_body_bytes: super::runs::body_limit(&Default::default()),
        public_metrics: config.public_metrics,
        line_style: config.line_style,
    });
    let interrupted = mark_interrupted(&state).await;
    let listener = crate::serve::bind(config.listen).await?;
    let runs = match config.runs {
        Some(settings) => Some(super::runs::routes(run_manager(&state, settings).await?)),
        None => None,
    };
    let app = router(state.clone(), runs);
    let (shutdown, _) = watch::channel(false);
    let serving = Serving::start(listener, tls, app, shutdown, config.shutdown_grace)?;
    tracing::info!(
        listen = %serving.addr(),
        scheme = serving.scheme(),
        backend = %state.description,
        records = %state.records.describe(),
        records_loaded = loaded,
        runs_interrupted = interrupted,
        "gfi controller listening"
    );
    Ok(RunningController { state, serving })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded_and_know_the_seeds_routes() {
        assert_eq!(
            route_label("/api/v1/faults/gpu/inject/xid-79"),
            ("/api/v1/faults/gpu/inject/xid-{n}", true)
        );
        assert_eq!(route_label("/api/v1/faults"), ("/api/v1/faults", true));
        assert_eq!(
            route_label("/api/v1/faults/gpu_xid_79-1/recover"),
            ("/api/v1/faults/{id}/recover", true)
        );
        assert_eq!(
            route_label("/api/v1/faults/gpu/xid-types"),
            ("/api/v1/faults/gpu/xid-types", true)
        );
        assert_eq!(
            route_label("/api/v1/runs/r1/events"),
            ("/api/v1/runs/{id}/events", false)
        );
        assert_eq!(route_label("/api/v1/runs"), ("/api/v1/runs", false));
        assert_eq!(route_label("/health"), ("/health", false));
        assert_eq!(route_label("/../etc/passwd"), ("other", false));
    }
}
