//! `gfi controller`: the long-running server in the cluster that serves the seed's central API
//! (injections through the agents, fault records) and runs Lua plans remotely.
//!
//! The pieces, from the bottom up (each imports only those before it):
//! - [`caller`]: who made a request and what they may do, as the auth layer hands it to handlers.
//! - [`runs`]: remote runs of Lua plans (`/api/v1/runs`).
//! - [`auth`]: the tokens of the two scopes, and the seed's anonymous callers where allowed.
//! - [`request`]: decoding the central API's paths, bodies and queries into checked requests.
//! - [`faults`]: the central API's fault records, in the seed's shape and gfi's.
//! - [`records`]: durable records (faults and runs) as ConfigMaps, bounded by a retention.
//! - [`metrics`]: the Prometheus metrics; [`metered`]: the backend that feeds them.
//! - [`api`]: the seed's central API handlers.
//! - [`server`]: the configuration, the router and its gate, start and stop.

pub mod api;
pub(crate) mod auth;
pub mod caller;
pub mod faults;
pub mod metered;
pub mod metrics;
pub mod records;
pub mod request;
pub mod runs;
pub mod server;

pub use server::{
    ClusterRunRecords, ControllerBackend, ControllerConfig, ControllerState, RunningController,
    RunsSettings, start,
};
