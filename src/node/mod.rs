//! The node room: what acts on one host's GPUs and kernel log, below both the agent's HTTP
//! server and the backends, so that the agent and the `local` backend write exactly alike and
//! neither has to import the other. Nothing here knows of HTTP routes or clusters: this room
//! imports neither `agent` nor `backend`.
//!
//! Rooms: [`gpu`] (a GPU and the ways to name one), [`discovery`] (GPUs from the driver's
//! procfs tree), [`writer`] and [`readback`] (one record per `write()` into the host's
//! `/dev/kmsg`, proven by reading it back), [`inject`] (GPU + line + write), [`wire`] (the agent's
//! HTTP bodies, for its server and its clients), [`testkit`] (a fake GPU tree for tests and
//! benchmarks).

pub mod discovery;
pub(crate) mod gpu;
pub(crate) mod inject;
pub mod readback;
pub mod testkit;
pub mod wire;
pub mod writer;
