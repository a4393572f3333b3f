//! `gfi controller`: the long-running server in the cluster that serves the seed's central API
//! (injections through the agents, fault records) and runs Lua plans remotely.
//!
//! The pieces, each in its own module:
//! - [`caller`]: who made a request and what they may do, as the auth layer hands it to handlers.
//! - [`runs`]: remote runs of Lua plans (`/api/v1/runs`).

pub mod caller;
pub mod runs;
