//! What every request handler, the request gate and the background checks share. Its own
//! module, below all of them, so that none of them imports another to reach it.

use super::auth::{AuthGate, TokenFile};
use super::fault_store::FaultStore;
use super::health::HealthSnapshot;
use super::metrics::Metrics;
use super::ratelimit::RateLimiter;
use crate::node::inject::Injector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// The outcome a request with the same fault id is waiting for.
pub(crate) type Outcome = Arc<(axum::http::StatusCode, String)>;

pub(crate) struct InFlight {
    pub(crate) fingerprint: String,
    pub(crate) done: watch::Receiver<Option<Outcome>>,
}

/// Everything the handlers share.
pub(crate) struct AgentState {
    pub(crate) node: String,
    pub(crate) injector: Injector,
    pub(crate) fault_store: FaultStore,
    pub(crate) auth: AuthGate,
    /// The same checker the gate holds, for the health check that re-reads it.
    pub(crate) token_file: Option<Arc<TokenFile>>,
    pub(crate) limiter: RateLimiter,
    pub(crate) metrics: Metrics,
    pub(crate) health: RwLock<Arc<HealthSnapshot>>,
    pub(crate) inflight: Mutex<HashMap<String, InFlight>>,
    pub(crate) max_body_bytes: usize,
    pub(crate) injection_slots: tokio::sync::Semaphore,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl AgentState {
    /// Runs every health check once.
    pub(crate) async fn check_health(&self) -> HealthSnapshot {
        super::health::evaluate(
            &self.node,
            &self.injector,
            &self.fault_store,
            self.token_file.as_deref(),
        )
        .await
    }
}
