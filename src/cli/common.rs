//! What `gfi run` and `gfi repl` share: choosing and building the backend, the run's
//! identity, the Lua limits.

use crate::backend::SharedBackend;
use crate::backend::local::{KubeAccess, LocalBackend, LocalOptions};
use crate::backend::sim::SimBackend;
use crate::backend::sim::config::SimConfig;
use crate::backend::sim::values::NvsConfig;
use crate::clock::RunClock;
use crate::lua::sandbox::Limits;
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

#[derive(Debug, Clone, Args)]
pub struct LuaArgs {
    /// Keep io, os.execute, loadfile, dofile and debug in the Lua state.
    #[arg(long)]
    pub allow_unsafe: bool,
    /// More directories where `require` looks for modules.
    #[arg(long = "lib-path", value_name = "DIR")]
    pub lib_paths: Vec<PathBuf>,
    /// Lua memory limit, e.g. 512MiB, 2GiB.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub memory_limit: usize,
    /// Lua instruction budget for the whole run (`gfi repl`: for each chunk).
    #[arg(long, value_name = "N", default_value_t = Limits::default().instructions)]
    pub instruction_limit: u64,
}

impl LuaArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.memory_limit,
            instructions: self.instruction_limit,
            allow_unsafe: self.allow_unsafe,
            interrupt: None,
        }
    }
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (expected e.g. 512MiB, 2GiB, 1048576)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use KiB, MiB or GiB)")),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes < (1 << 20) {
        return Err(format!("'{s}' is below the 1MiB minimum"));
    }
    Ok(bytes)
}

/// `--arg key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not key=value"))?;
    if k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "argument name '{k}' must be letters, digits, '_' or '-'"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The runtime scripts run on: one thread (Lua values are not `Send`), its clock paused on the
/// sim so that it jumps to the next timer whenever everything waits.
pub fn script_runtime(virtual_time: bool) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(virtual_time)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// A seed from the OS when none was given.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ std::process::id() as u64;
    }
    u64::from_le_bytes(b) >> 16
}

/// The run id in the provenance marker: from the seed on the sim (reproducible), from the seed
/// and the wall clock elsewhere (unique per run).
pub fn run_id(seed: u64, virtual_time: bool) -> String {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    if !virtual_time {
        x ^= std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
    }
    // splitmix64: spreads nearby seeds over the whole range.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    format!("r{:06x}", x & 0xff_ffff)
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
            let description = format!(
                "sim ({} GPU node{} x {} GPU{}{})",
                cfg.nodes,
                if cfg.nodes == 1 { "" } else { "s" },
                cfg.gpus_per_node,
                if cfg.gpus_per_node == 1 { "" } else { "s" },
                if cfg.cpu_nodes > 0 {
                    format!(", {} CPU nodes", cfg.cpu_nodes)
                } else {
                    String::new()
                }
            );
            let sim = SimBackend::start(cfg, nvs, seed, clock)?;
            Ok(BuiltBackend {
                backend: Arc::new(sim),
                description,
            })
        }
        BackendKind::Local => {
            let local = LocalBackend::new(LocalOptions {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert!(parse_size("12").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn kv() {
        assert_eq!(
            parse_kv("faults=10").unwrap(),
            ("faults".into(), "10".into())
        );
        assert_eq!(parse_kv("x=a=b").unwrap().1, "a=b");
        assert!(parse_kv("novalue").is_err());
        assert!(parse_kv("bad key=1").is_err());
    }

    #[test]
    fn run_ids_are_stable_on_the_sim() {
        assert_eq!(run_id(42, true), run_id(42, true));
        assert_ne!(run_id(42, true), run_id(43, true));
        assert!(run_id(1, true).starts_with('r'));
    }
}
