//! The node agent (`gfi agent`): the privileged per-node process that performs the real
//! kernel log writes, answering the seed agent's HTTP API and more.
//!
//! GPU discovery, the kmsg writer, read-back and the injection itself are the node room's
//! ([`crate::node`]), shared with the `local` backend. Here, from the bottom up (each module
//! imports only those before it): [`http`] (JSON answers and route labels), [`auth`] (the
//! token gate), [`request`] (the body decoder), [`fault_store`] (durable fault records),
//! [`ratelimit`], [`metrics`], [`memory`] (allocator tuning), [`health`] (the checks),
//! [`state`] (what the handlers share), [`audit`] (the per-request gate), [`routes`] (the
//! handlers), [`server`] (start, stop, the health refresher).

pub(crate) mod audit;
pub(crate) mod auth;
pub mod fault_store;
pub(crate) mod health;
pub(crate) mod http;
pub(crate) mod memory;
pub(crate) mod metrics;
pub mod ratelimit;
pub(crate) mod request;
pub(crate) mod routes;
pub mod server;
pub(crate) mod state;

pub use server::{AgentConfig, AuthMode, RunningAgent, start};
