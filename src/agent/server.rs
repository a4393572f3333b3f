//! Starting and stopping the agent: open the state, start the writer, bind, serve, refresh
//! the health report in the background, and shut down gracefully.

use super::auth::{AuthGate, TokenCheck, TokenFile};
use super::fault_store::{FaultStore, FaultStoreOptions};
use super::health::{self, HealthSnapshot};
use super::memory;
use super::metrics::Metrics;
use super::ratelimit::{Limit, RateLimiter};
use super::routes;
use super::state::AgentState;
use crate::node::inject::{GpuCache, Injector};
use crate::node::writer::{KmsgWriter, WriterConfig};
use crate::serve::Serving;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Bearer tokens from this file.
    TokenFile(PathBuf),
    /// No authentication (explicit `--insecure-no-auth`).
    Insecure,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub node_name: String,
    pub proc_root: PathBuf,
    pub writer: WriterConfig,
    pub auth: AuthMode,
    pub state_dir: PathBuf,
    pub fault_store: FaultStoreOptions,
    pub node_limit: Limit,
    pub gpu_limit: Limit,
    /// Serve `/metrics` without authentication.
    pub public_metrics: bool,
    pub max_body_bytes: usize,
    /// Injections processed at once; more wait their turn without using CPU, so a burst
    /// cannot crowd `/health` off the workers.
    pub max_concurrent_injections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Serve HTTPS with this PEM certificate chain and key (`--tls-cert`, `--tls-key`).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl AgentConfig {
    /// Defaults for everything but what must be chosen.
    pub fn new(
        node_name: String,
        proc_root: PathBuf,
        writer: WriterConfig,
        auth: AuthMode,
        state_dir: PathBuf,
    ) -> Self {
        AgentConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8083)),
            node_name,
            proc_root,
            writer,
            auth,
            state_dir,
            fault_store: FaultStoreOptions::default(),
            node_limit: Limit {
                rate: 20.0,
                burst: 40.0,
            },
            gpu_limit: Limit {
                rate: 5.0,
                burst: 10.0,
            },
            public_metrics: false,
            max_body_bytes: 16 * 1024,
            max_concurrent_injections: 32,
            shutdown_grace: Duration::from_secs(10),
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    FaultStore(#[from] super::fault_store::FaultStoreError),
    #[error("{0}")]
    Token(#[from] super::auth::TokenError),
    #[error("{0}")]
    Writer(#[from] crate::node::writer::StartError),
    #[error("{0}")]
    Listen(#[from] crate::serve::ListenError),
    #[error("{0}")]
    Tls(String),
}

/// A started agent.
pub struct RunningAgent {
    serving: Serving,
}

impl RunningAgent {
    /// The bound address (the real port when the config said port 0).
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// Stops accepting, lets requests in flight finish (up to the grace period), ends
    /// streams, and returns when the server is down.
    pub async fn stop(self) -> std::io::Result<()> {
        self.serving.stop().await
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully.
    pub(crate) async fn serve_until_signal(self) -> std::io::Result<()> {
        self.serving.serve_until_signal().await
    }
}

/// Opens the state, starts the writer, binds and serves in the background.
pub async fn start(mut config: AgentConfig) -> Result<RunningAgent, StartError> {
    // Every write and fault store append happens under an injection slot, so queues of that size
    // never refuse one; the writer's few extra places are for `/kmsg` readers and health checks.
    let slots = config.max_concurrent_injections.max(1);
    config.fault_store.queue = slots;
    config.writer.queue = slots + 16;
    let (fault_store, report) = FaultStore::open(&config.state_dir, config.fault_store.clone())?;
    for s in &report.skipped {
        tracing::warn!(journal = %fault_store.path().display(), "skipped a journal line: {s}");
    }
    let tokens = match &config.auth {
        AuthMode::TokenFile(p) => {
            let t = TokenFile::open(p)?;
            if let Some(warning) = t.short_token_warning() {
                tracing::warn!(path = %p.display(), "{warning}");
            }
            Some(Arc::new(t))
        }
        AuthMode::Insecure => {
            tracing::warn!(
                "--insecure-no-auth: anyone who can reach {} can write XID lines and get this node cordoned, drained and rebooted",
                config.listen
            );
            None
        }
    };
    let writer = {
        let cfg: WriterConfig = config.writer.clone();
        tokio::task::spawn_blocking(move || KmsgWriter::start(cfg))
            .await
            .map_err(|e| crate::node::writer::StartError {
                target: config.writer.target.describe(),
                reason: e.to_string(),
            })??
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key).map_err(StartError::Tls)?),
        None => None,
    };
    let listener = crate::serve::bind(config.listen).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let injector = Injector::new(
        config.node_name.clone(),
        GpuCache::new(config.proc_root.clone()),
        writer,
    );
    // Probes (the kubelet's, Prometheus's when allowed) come without a token.
    let mut open_routes = vec!["/health"];
    if config.public_metrics {
        open_routes.push("/metrics");
    }
    let checker = tokens.clone().map(|t| t as Arc<dyn TokenCheck>);
    let state = Arc::new(AgentState {
        node: config.node_name.clone(),
        injector,
        fault_store,
        auth: AuthGate::new(checker, open_routes),
        token_file: tokens,
        limiter: RateLimiter::new(config.node_limit, config.gpu_limit),
        metrics: Metrics::default(),
        health: RwLock::new(Arc::new(HealthSnapshot::starting(&config.node_name))),
        inflight: Mutex::new(HashMap::new()),
        max_body_bytes: config.max_body_bytes,
        injection_slots: tokio::sync::Semaphore::new(slots),
        shutdown: shutdown_rx,
    });
    let first = state.check_health().await;
    if !first.healthy {
        tracing::warn!(reasons = ?first.reasons, "starting degraded");
    }
    *state.health.write().expect("health lock") = Arc::new(first);
    spawn_health_refresher(state.clone());
    let app = routes::router(state.clone());
    let serving = Serving::start(listener, tls, app, shutdown_tx, config.shutdown_grace)?;
    tracing::info!(
        listen = %serving.addr(),
        scheme = serving.scheme(),
        node = %config.node_name,
        write_path = %state.injector.writer().describe(),
        proc_root = %config.proc_root.display(),
        journal = %state.fault_store.path().display(),
        faults_loaded = report.loaded,
        "gfi agent listening"
    );
    Ok(RunningAgent { serving })
}

/// Refreshes the health snapshot every [`health::REFRESH`] until shutdown.
fn spawn_health_refresher(st: Arc<AgentState>) {
    let mut shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(health::REFRESH);
        let mut requests_seen = st.metrics.requests_total();
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let snap = st.check_health().await;
            let was = st.health.read().expect("health lock").healthy;
            if was != snap.healthy {
                if snap.healthy {
                    tracing::info!("health: healthy again");
                } else {
                    tracing::warn!(reasons = ?snap.reasons, "health: degraded");
                }
            }
            *st.health.write().expect("health lock") = Arc::new(snap);
            // Trim only when quiet: under load freed memory is reused at once, and a trim
            // holds the allocator's lock while every worker wants it.
            let now = st.metrics.requests_total();
            if now.saturating_sub(requests_seen) < 50 {
                memory::release_free_memory();
            }
            requests_seen = now;
        }
    });
}
