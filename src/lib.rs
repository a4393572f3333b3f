//! gpu-fault-injector (`gfi`): writes realistic fake GPU XID lines into a node's kernel log and
//! measures every stage of NVSentinel's reaction.
//!
//! Rooms: [`xid`] and [`kmsg`] (the core every role shares), [`node`] (one host's GPUs and
//! kernel log, under both the agent and the backends), [`agent`] (the per-node HTTP server),
//! [`backend`] (the clusters a script runs against), [`lua`] (the scripting host and its API),
//! [`cli`] (the `gfi` command), [`repl`] (the interactive shell).

pub mod agent;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod duration;
pub mod journal;
pub mod kmsg;
pub mod lua;
pub mod node;
pub mod render;
pub mod repl;
pub mod session;
pub mod signals;
pub mod xid;
