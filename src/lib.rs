//! gpu-fault-injector (`gfi`): writes realistic fake GPU XID lines into a node's kernel log and
//! measures every stage of NVSentinel's reaction.
//!
//! The rooms, from the bottom up (each imports only those above it in this list):
//! - [`duration`], [`clock`], [`signals`], [`alloc`]: small shared pieces: durations as
//!   people write them, the run clock (virtual on `sim`), SIGINT/SIGTERM handling, the
//!   allocator chosen by role.
//! - [`kmsg`]: kernel log records (`/dev/kmsg` format) and how the kernel writes them.
//! - [`xid`]: the XID catalogue, NVSentinel's detection model and the exact line format.
//! - [`tls`], [`serve`]: HTTPS for servers (renewed certificates taken up) and clients (a CA
//!   bundle to trust); serving an HTTP API and stopping it gracefully.
//! - [`node`]: what acts on one node: GPU discovery, the kmsg writer, read-back, injection,
//!   and the agent's wire types.
//! - [`agent`]: `gfi agent`, the per-node HTTP server over [`node`].
//! - [`backend`]: the clusters a script runs against (`sim`, `local`, `kube`), their events
//!   and errors, behind one trait.
//! - [`journal`]: the run journal, every entry of a run in order.
//! - [`lua`]: the scripting host: a sandboxed Lua state, the API, the stdlib.
//! - [`session`]: one run wired once (backend, journal, host) and finished in one order.
//! - [`render`]: how a journal entry reads for a person, shared by the front ends.
//! - [`repl`]: `gfi repl`, the interactive shell.
//! - [`controller`]: `gfi controller`, the in-cluster server: the seed's central API and
//!   remote runs of Lua plans.
//! - [`cli`]: the `gfi` command and its subcommands.

pub mod agent;
pub mod alloc;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod duration;
pub mod guard;
pub mod journal;
pub mod kmsg;
pub mod lua;
pub mod node;
pub(crate) mod render;
pub(crate) mod repl;
pub mod report;
pub mod serve;
pub mod session;
pub mod signals;
pub mod tls;
pub mod xid;
