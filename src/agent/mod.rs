//! The node agent (`gfi agent`): the privileged per-node process that performs the real
//! kernel log writes, answering the seed agent's HTTP API and more.
//!
//! GPU discovery, the kmsg writer, read-back and the injection itself are the node room's
//! ([`crate::node`]), shared with the `local` backend. Here: [`request`] (the body decoder),
//! [`journal`] (durable fault records), [`auth`], [`ratelimit`], [`metrics`], [`health`],
//! [`routes`] and [`audit`] (the HTTP API), [`server`] (start and stop).

pub mod audit;
pub mod auth;
pub mod health;
pub mod journal;
pub mod metrics;
pub mod ratelimit;
pub mod request;
pub mod routes;
pub mod server;

pub use server::{AgentConfig, AuthMode, RunningAgent, start};
