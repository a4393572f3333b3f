//! Which backend a run uses and how it is built from the command line's flags (or a
//! caller's own settings): shared by `gfi run`, `gfi repl`, tests and benches.

use super::SharedBackend;
use super::local::{KubeAccess, LocalBackend, LocalOptions};
use super::sim::SimBackend;
use super::sim::config::SimConfig;
use super::sim::values::NvsConfig;
use crate::clock::RunClock;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum BackendKind {
    /// A simulated cluster with a model of NVSentinel, on a virtual clock.
    #[default]
    Sim,
    /// This host: its GPUs and /dev/kmsg (run on the node, e.g. in the agent pod).
    Local,
    /// A real cluster through the Kubernetes API and the gfi agents.
    Kube,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sim => "sim",
            BackendKind::Local => "local",
            BackendKind::Kube => "kube",
        }
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct BackendArgs {
    /// Where the script runs.
    #[arg(long, value_enum, default_value_t, env = "GFI_BACKEND")]
    pub backend: BackendKind,
    /// Seed for randomness (math.random, rand, the sim); random when absent, and printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// sim: number of GPU nodes.
    #[arg(long, value_name = "N")]
    pub sim_nodes: Option<usize>,
    /// sim: GPUs per node.
    #[arg(long, value_name = "M")]
    pub sim_gpus: Option<usize>,
    /// sim: cluster shape and timings from a YAML file (flags above override it).
    #[arg(long, value_name = "FILE")]
    pub sim_config: Option<PathBuf>,
    /// sim: NVSentinel's Helm values (chart keys, or the seed's simplified form).
    #[arg(long, value_name = "FILE")]
    pub nvsentinel_values: Option<PathBuf>,
    /// local: this node's name (default: the host name).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// local: the host's /proc (default /host/proc, falling back to /proc).
    #[arg(long, env = "GFI_PROC_ROOT", value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// local: write inside the mount namespace of this host process (1 with hostPID).
    #[arg(long, env = "GFI_HOST_PID", value_name = "PID")]
    pub host_pid: Option<u32>,
    /// local: the kmsg device to write (default as `gfi agent`).
    #[arg(long, env = "GFI_KMSG_PATH", value_name = "PATH")]
    pub kmsg_path: Option<PathBuf>,
    /// local: the namespace NVSentinel runs in (its circuit breaker's ConfigMap is there).
    #[arg(
        long,
        env = "GFI_NVSENTINEL_NAMESPACE",
        value_name = "NS",
        default_value = "nvsentinel"
    )]
    pub nvsentinel_namespace: String,
    /// local, tests only: accept a regular file or FIFO as the kmsg target.
    #[arg(long, env = "GFI_ALLOW_NON_CHARDEV", hide = true)]
    pub allow_non_chardev: bool,
}

pub struct BuiltBackend {
    pub backend: SharedBackend,
    /// One line for humans: "sim (8 GPU nodes x 8 GPUs)".
    pub description: String,
}

/// Builds the chosen backend. Must run inside the run's runtime.
pub fn build_backend(
    args: &BackendArgs,
    seed: u64,
    clock: RunClock,
) -> Result<BuiltBackend, String> {
    match args.backend {
        BackendKind::Sim => {
            let mut cfg = match &args.sim_config {
                Some(p) => SimConfig::load(p)?,
                None => SimConfig::default(),
            };
            if let Some(n) = args.sim_nodes {
                cfg.nodes = n;
            }
            if let Some(g) = args.sim_gpus {
                cfg.gpus_per_node = g;
            }
            let nvs = match &args.nvsentinel_values {
                Some(p) => NvsConfig::load(p)?,
                None => NvsConfig::default(),
            };
            let description = cfg.describe();
            let sim = SimBackend::start(cfg, nvs, seed, clock)?;
            Ok(BuiltBackend {
                backend: Arc::new(sim),
                description,
            })
        }
        BackendKind::Local => {
            let local = LocalBackend::local(LocalOptions {
                node_name: args.node_name.clone(),
                proc_root: args.proc_root.clone(),
                host_pid: args.host_pid,
                kmsg_path: args.kmsg_path.clone(),
                allow_non_chardev: args.allow_non_chardev,
                nvsentinel_namespace: args.nvsentinel_namespace.clone(),
                kube: KubeAccess::Auto,
            })
            .map_err(|e| e.to_string())?;
            let description = format!(
                "local (node {}: XID lines go to this host's kernel log)",
                local.node_name()
            );
            Ok(BuiltBackend {
                backend: Arc::new(local),
                description,
            })
        }
        BackendKind::Kube => Err(
            "the kube backend is not built yet (planned: a real cluster through kube-rs and the gfi agents); use --backend sim"
                .into(),
        ),
    }
}
