//! Remote runs of Lua plans: `POST /api/v1/runs` with a script and the modules it requires,
//! then follow it (`GET /api/v1/runs/{id}/events`, Server-Sent Events of its journal) or
//! cancel it. Each run gets a fresh sandboxed Lua state with `gfi run`'s limits, capped by
//! the controller's.
//!
//! - [`bundle`]: the request, its checks, and the bundle on disk.
//! - [`record`]: a run as the API shows it and the store keeps it.
//! - [`store`]: where records outlive the process ([`RunRecords`]).
//! - [`manager`]: the runs held, the queue and its slots, cancel.
//! - `execute`: one run on its own thread.
//! - [`routes`](fn@routes): the HTTP API.

pub mod bundle;
mod execute;
pub mod manager;
pub mod record;
mod routes;
pub mod store;

pub use bundle::{BundleLimits, RunRequest};
pub use manager::{RunBackend, RunManager, RunManagerConfig};
pub use record::{RunLimits, RunRecord, RunStatus};
pub use routes::{body_limit, routes};
pub use store::{MemoryRecords, RunRecords};
