//! The node agent (`gfi agent`): the privileged per-node process that performs the real
//! kernel log writes, answering the seed agent's HTTP API and more.
//!
//! Rooms: [`discovery`] (GPUs from the driver's procfs tree), [`writer`] and [`readback`]
//! (one record per `write()` into the host's `/dev/kmsg`, proven by reading it back),
//! [`inject`] (GPU + line + write, shared with the `local` backend), [`request`] (the body
//! decoder), [`journal`] (durable fault records), [`auth`], [`ratelimit`], [`metrics`],
//! [`health`], [`routes`] and [`audit`] (the HTTP API), [`server`] (start and stop).

pub mod audit;
pub mod auth;
pub mod discovery;
pub mod health;
pub mod inject;
pub mod journal;
pub mod metrics;
pub mod ratelimit;
pub mod readback;
pub mod request;
pub mod routes;
pub mod server;
pub mod testkit;
pub mod writer;

pub use server::{AgentConfig, AuthMode, RunningAgent, start};
