//! Which backend a run uses and how it is built from the command line's flags (or a
//! caller's own settings): shared by `gfi run`, `gfi repl`, tests and benches.

use super::SharedBackend;
use super::kube::{KubeBackend, KubeOptions};
use super::kube_agents::{AgentAccess, KubeAgentOptions};
use super::kube_connect::KubeConnect;
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
    /// NVSentinel's Helm values (chart keys, or the seed's simplified form): the sim's
    /// configuration; on another backend, what the run's expectations and breaker warning assume.
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
    /// local, kube: the kubeconfig (default: KUBECONFIG, else ~/.kube/config, else the pod's
    /// ServiceAccount).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// local, kube: the kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// kube: the namespace of the gfi agent DaemonSet.
    #[arg(
        long,
        env = "GFI_AGENT_NAMESPACE",
        value_name = "NS",
        default_value = "fault-injection-system"
    )]
    pub agent_namespace: String,
    /// kube: the label selector of the agent pods.
    #[arg(
        long,
        env = "GFI_AGENT_SELECTOR",
        value_name = "SELECTOR",
        default_value = "app=gpu-fault-injector-kernel"
    )]
    pub agent_selector: String,
    /// kube: reach the agents through the API server's pod proxy, or at their pod IPs
    /// (default: direct in a pod, proxy from a workstation).
    #[arg(long, value_enum, value_name = "HOW")]
    pub agent_access: Option<AgentAccess>,
    /// kube: the agents' port.
    #[arg(long, value_name = "PORT", default_value_t = 8083)]
    pub agent_port: u16,
    /// kube: the agent token (default: the Secret gfi-agent-token in the agents' namespace).
    #[arg(long, env = "GFI_AGENT_TOKEN_FILE", value_name = "FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// kube: reach the agents over HTTPS (`gfi agent --tls-cert`), trusting this PEM CA bundle.
    #[arg(long, env = "GFI_AGENT_CA", value_name = "FILE")]
    pub agent_ca: Option<PathBuf>,
    /// kube: the name the agents' certificate must carry (default gfi-agent.<agent
    /// namespace>.svc).
    #[arg(
        long,
        env = "GFI_AGENT_SERVER_NAME",
        value_name = "NAME",
        requires = "agent_ca"
    )]
    pub agent_server_name: Option<String>,
    /// kube: calls to agents in flight at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_concurrency: usize,
    /// kube: the nodes `nodes()` lists when the script gives no selector ("" for all).
    #[arg(
        long,
        value_name = "SELECTOR",
        default_value = "nvidia.com/gpu.present=true"
    )]
    pub node_selector: String,
    /// local, tests only: accept a regular file or FIFO as the kmsg target.
    #[arg(long, env = "GFI_ALLOW_NON_CHARDEV", hide = true)]
    pub allow_non_chardev: bool,
}

impl BackendArgs {
    /// The Kubernetes client options of `local` and `kube`.
    pub fn connect(&self) -> KubeConnect {
        KubeConnect {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

/// Where the `local` backend's lines really go: a kernel log, or a plain file (tests) that
/// nothing reads as one.
fn local_destination(args: &BackendArgs, write_path: &str) -> String {
    use std::os::unix::fs::FileTypeExt;
    match (&args.kmsg_path, args.host_pid) {
        (Some(p), None) if std::fs::metadata(p).is_ok_and(|m| !m.file_type().is_char_device()) => {
            format!(
                "the file {} (not a kernel log: NVSentinel will not see them)",
                p.display()
            )
        }
        _ => format!("this host's kernel log ({write_path})"),
    }
}

pub struct BuiltBackend {
    pub backend: SharedBackend,
    /// One line for humans: "sim (8 GPU nodes x 8 GPUs)".
    pub description: String,
    /// The NVSentinel configuration the run assumes, for the journal: on the sim the values in
    /// force; elsewhere what the flags say (its namespace, a values file when given).
    pub nvsentinel: serde_json::Value,
}

/// What is known of NVSentinel on a real cluster: where it runs, and the values file the run
/// was told it uses (the sim's `--nvsentinel-values`), read as the sim reads it.
fn assumed_nvsentinel(args: &BackendArgs) -> Result<serde_json::Value, String> {
    let values = match &args.nvsentinel_values {
        Some(p) => serde_json::to_value(NvsConfig::load(p)?).map_err(|e| e.to_string())?,
        None => serde_json::Value::Null,
    };
    Ok(serde_json::json!({
        "namespace": args.nvsentinel_namespace,
        "values_file": args.nvsentinel_values,
        "values": values,
    }))
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
            let nvsentinel = serde_json::to_value(&nvs).map_err(|e| e.to_string())?;
            let sim = SimBackend::start(cfg, nvs, seed, clock)?;
            Ok(BuiltBackend {
                backend: Arc::new(sim),
                description,
                nvsentinel,
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
                kube: KubeAccess::Connect(args.connect()),
            })
            .map_err(|e| e.to_string())?;
            let description = format!(
                "local (node {}: XID lines go to {})",
                local.node_name(),
                local_destination(args, local.write_path())
            );
            Ok(BuiltBackend {
                backend: Arc::new(local),
                description,
                nvsentinel: assumed_nvsentinel(args)?,
            })
        }
        BackendKind::Kube => {
            let kube = KubeBackend::kube(KubeOptions {
                connect: args.connect(),
                agents: KubeAgentOptions {
                    namespace: args.agent_namespace.clone(),
                    selector: args.agent_selector.clone(),
                    access: args.agent_access,
                    port: args.agent_port,
                    token_file: args.agent_token_file.clone(),
                    max_concurrency: args.max_concurrency,
                    ca: args.agent_ca.clone(),
                    server_name: args.agent_server_name.clone(),
                },
                nvsentinel_namespace: args.nvsentinel_namespace.clone(),
                node_selector: args.node_selector.clone(),
            })
            .map_err(|e| e.to_string())?;
            let description = kube.describe();
            Ok(BuiltBackend {
                backend: Arc::new(kube),
                description,
                nvsentinel: assumed_nvsentinel(args)?,
            })
        }
    }
}
