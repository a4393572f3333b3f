//! `gfi agent`: the per-node agent (see [`crate::agent`]).

use crate::agent::fault_store::FaultStoreOptions;
use crate::agent::ratelimit::Limit;
use crate::agent::{AgentConfig, AuthMode};
use crate::cli::common::TlsArgs;
use crate::node::discovery::resolve_proc_root;
use crate::node::writer::WriterConfig;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Write path: --host-pid N writes <kmsg-path> (default /dev/kmsg) inside the mount namespace of \
process N (with hostPID, 1 is the host's init); otherwise --kmsg-path, else /host/dev/kmsg when it \
exists, else /dev/kmsg. The target must be the kmsg character device 1:11.

Authentication: every route but /health (and /metrics with --public-metrics) needs \
'Authorization: Bearer <token>', the token read from --token-file (reloaded when it changes; \
several tokens may be given one per line). Without a token file the agent refuses to start unless \
--insecure-no-auth is given.

HTTPS: --tls-cert and --tls-key (PEM; e.g. a kubernetes.io/tls Secret mounted as files) serve HTTPS instead of HTTP on the same port; a renewed certificate is taken up at the next connection. The kube backend verifies it with --agent-ca.

Logs go to stderr; RUST_LOG sets the filter (default info; audit lines have target gfi::audit).")]
pub struct AgentArgs {
    /// Address and port to listen on.
    #[arg(long, env = "GFI_LISTEN", default_value = "0.0.0.0:8083")]
    pub listen: SocketAddr,
    /// This node's Kubernetes name (default: the host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// The host's /proc (for the GPU tree); default /host/proc, falling back to /proc.
    #[arg(long, env = "GFI_PROC_ROOT")]
    pub proc_root: Option<PathBuf>,
    /// Write inside the mount namespace of this host process (needs hostPID and CAP_SYS_ADMIN).
    #[arg(long, env = "GFI_HOST_PID")]
    pub host_pid: Option<u32>,
    /// The kmsg device to write (inside the namespace with --host-pid).
    #[arg(long, env = "GFI_KMSG_PATH")]
    pub kmsg_path: Option<PathBuf>,
    /// File holding the bearer token(s), e.g. a mounted Secret.
    #[arg(long, env = "GFI_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve without authentication (anyone reaching the port can get the node rebooted).
    #[arg(long, env = "GFI_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Directory for the fault journal and the agent's lock (a hostPath in a DaemonSet).
    #[arg(long, env = "GFI_STATE_DIR", default_value = "/var/lib/gfi")]
    pub state_dir: PathBuf,
    /// Fault records kept in the journal (and recognised as repeats of a fault_id).
    // The flag keeps its first name for the scripts and manifests that use it.
    #[arg(long = "journal-retention", visible_alias = "fault-retention", env = "GFI_JOURNAL_RETENTION", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub fault_retention: u32,
    /// Injections per second for the whole node (0 = unlimited).
    #[arg(long, env = "GFI_RATE_NODE", default_value_t = 20.0)]
    pub rate_node: f64,
    /// Burst allowance for the node.
    #[arg(long, env = "GFI_BURST_NODE", default_value_t = 40.0)]
    pub burst_node: f64,
    /// Injections per second for one GPU (0 = unlimited).
    #[arg(long, env = "GFI_RATE_GPU", default_value_t = 5.0)]
    pub rate_gpu: f64,
    /// Burst allowance for one GPU.
    #[arg(long, env = "GFI_BURST_GPU", default_value_t = 10.0)]
    pub burst_gpu: f64,
    /// Injections processed at once (more wait their turn).
    #[arg(long, env = "GFI_MAX_CONCURRENT_INJECTIONS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_concurrent_injections: u16,
    /// Serve /metrics without authentication.
    #[arg(long, env = "GFI_PUBLIC_METRICS")]
    pub public_metrics: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Log format.
    #[arg(long, env = "GFI_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Worker threads of the HTTP server.
    #[arg(long, env = "GFI_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Seconds to let requests in flight finish on SIGTERM.
    #[arg(long, env = "GFI_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// TESTS ONLY: accept a regular file or FIFO as the kmsg target.
    #[arg(long, env = "GFI_ALLOW_NON_CHARDEV")]
    pub allow_non_chardev: bool,
    /// TESTS ONLY: read records back from this path instead of the target.
    #[arg(long, env = "GFI_KMSG_READ_PATH")]
    pub kmsg_read_path: Option<PathBuf>,
    /// TESTS ONLY: milliseconds a read-back from a regular file waits for the record.
    #[arg(long, env = "GFI_FILE_READBACK_MS", default_value_t = 2000)]
    pub file_readback_ms: u64,
    /// BENCHMARKS ONLY: do not fdatasync the journal.
    #[arg(long = "journal-no-sync", env = "GFI_JOURNAL_NO_SYNC")]
    pub fault_store_no_sync: bool,
}

fn limit(what: &str, rate: f64, burst: f64) -> Result<Limit, String> {
    if !rate.is_finite() || rate < 0.0 || !burst.is_finite() || burst < 0.0 {
        return Err(format!(
            "--rate-{what} and --burst-{what} must be numbers >= 0 (0 rate = unlimited)"
        ));
    }
    if rate > 0.0 && burst < 1.0 {
        return Err(format!(
            "--burst-{what} must be at least 1 when --rate-{what} is set"
        ));
    }
    Ok(Limit { rate, burst })
}

use crate::node::writer::choose_target as write_target;

/// Turns the flags into a configuration, or says what is wrong with them.
pub fn config(args: &AgentArgs) -> Result<AgentConfig, String> {
    let auth = match (&args.token_file, args.insecure_no_auth) {
        (Some(_), true) => {
            return Err("give either --token-file or --insecure-no-auth, not both".into());
        }
        (Some(p), false) => AuthMode::TokenFile(p.clone()),
        (None, true) => AuthMode::Insecure,
        (None, false) => {
            return Err("no authentication configured: give --token-file <file> (a mounted Secret holding the bearer token) or, knowingly, --insecure-no-auth".into());
        }
    };
    let node_name = match &args.node_name {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .ok_or("no --node-name / NODE_NAME and the host name cannot be read")?,
    };
    let mut writer = WriterConfig::new(write_target(args.host_pid, args.kmsg_path.as_deref()));
    writer.allow_non_chardev = args.allow_non_chardev;
    writer.read_path = args.kmsg_read_path.clone();
    writer.file_readback_timeout = Duration::from_millis(args.file_readback_ms);
    let mut cfg = AgentConfig::new(
        node_name,
        resolve_proc_root(args.proc_root.as_deref()),
        writer,
        auth,
        args.state_dir.clone(),
    );
    cfg.listen = args.listen;
    cfg.fault_store = FaultStoreOptions {
        retention: args.fault_retention as usize,
        sync: !args.fault_store_no_sync,
        ..FaultStoreOptions::default()
    };
    cfg.node_limit = limit("node", args.rate_node, args.burst_node)?;
    cfg.gpu_limit = limit("gpu", args.rate_gpu, args.burst_gpu)?;
    cfg.public_metrics = args.public_metrics;
    cfg.max_concurrent_injections = args.max_concurrent_injections as usize;
    cfg.shutdown_grace = Duration::from_secs(args.shutdown_grace);
    cfg.tls = args.tls.files();
    Ok(cfg)
}

pub(crate) fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: container logs and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn run(args: AgentArgs) -> ExitCode {
    crate::agent::memory::limit_allocator_arenas();
    init_logging(args.log_format);
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers as usize)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let agent = match crate::agent::start(cfg).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        match agent.serve_until_signal().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::writer::WriteTarget;
    use clap::Parser;
    use std::path::Path;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: AgentArgs,
    }

    fn parse(args: &[&str]) -> AgentArgs {
        T::try_parse_from(std::iter::once("gfi").chain(args.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn refuses_to_start_without_an_auth_choice() {
        let e = config(&parse(&["--node-name", "n"])).unwrap_err();
        assert!(
            e.contains("--token-file") && e.contains("--insecure-no-auth"),
            "{e}"
        );
        let e = config(&parse(&["--token-file", "/t", "--insecure-no-auth"])).unwrap_err();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn write_targets() {
        assert_eq!(
            write_target(Some(1), None),
            WriteTarget::Namespace {
                pid: 1,
                path: "/dev/kmsg".into()
            }
        );
        assert_eq!(
            write_target(None, Some(Path::new("/x/kmsg"))),
            WriteTarget::Device {
                path: "/x/kmsg".into()
            }
        );
    }

    #[test]
    fn limits_are_checked() {
        let a = parse(&["--insecure-no-auth", "--rate-gpu=-1"]);
        assert!(config(&a).unwrap_err().contains("--rate-gpu"));
        let a = parse(&[
            "--insecure-no-auth",
            "--rate-node",
            "0",
            "--burst-node",
            "0",
        ]);
        assert!(config(&a).unwrap().node_limit.is_unlimited());
    }

    #[test]
    fn fault_retention_takes_either_name() {
        for flag in ["--journal-retention", "--fault-retention"] {
            let a = parse(&["--insecure-no-auth", flag, "7", "--journal-no-sync"]);
            let c = config(&a).unwrap();
            assert_eq!((c.fault_store.retention, c.fault_store.sync), (7, false));
        }
    }
}
