//! `gfi controller`: the in-cluster server (see [`crate::controller`]).

use super::agent::{LogFormat, init_logging};
use super::common::TlsArgs;
use crate::backend::kube::KubeBackend;
use crate::backend::spec::{BackendArgs, BackendKind, build_backend};
use crate::clock::RunClock;
use crate::controller::{ControllerBackend, ControllerConfig, RunsSettings};
use crate::xid::LineStyle;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    mut_arg("backend", |a| a.default_value("kube")),
    after_help = "\
Serves the seed's central API (POST /api/v1/faults/gpu/inject/xid-<N>, GET /api/v1/faults, ...) \
and remote runs on --listen (the Service fault-injection-api, port 8080). Injections go through the \
chosen backend: kube (default; the agents in --agent-namespace, reached at their pod IPs in a pod) \
or sim (a simulated cluster on the wall clock, for demos and tests).

Authentication: every route but /health (and /metrics with --public-metrics) needs \
'Authorization: Bearer <token>': a token of --token-file (scope run: everything) or of \
--read-token-file (scope read: GETs only). The files are re-read when they change. \
--seed-compat-anonymous lets callers without a token use the seed's central API routes.

Records of faults and runs are ConfigMaps in --namespace (kubectl get cm -l gfi.dev/record=run); \
on sim they live in memory. Logs go to stderr (audit lines have target gfi::audit)."
)]
pub struct ControllerArgs {
    /// Address and port to listen on.
    #[arg(long, env = "GFI_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// File holding the run-scope bearer token(s), one per line (a mounted Secret).
    #[arg(long, env = "GFI_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// File holding the read-scope bearer token(s): GETs only.
    #[arg(long, env = "GFI_READ_TOKEN_FILE", value_name = "FILE")]
    pub read_token_file: Option<PathBuf>,
    /// Let callers without a token use the seed's central API routes (as the seed did).
    #[arg(long, env = "GFI_SEED_COMPAT_ANONYMOUS")]
    pub seed_compat_anonymous: bool,
    /// Serve /metrics without a token.
    #[arg(long, env = "GFI_PUBLIC_METRICS")]
    pub public_metrics: bool,
    /// The namespace of the record ConfigMaps (the controller's own).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        value_name = "NS",
        default_value = "fault-injection-system"
    )]
    pub namespace: String,
    /// Records kept of each kind (faults, runs); the oldest finished ones go first.
    #[arg(long, env = "GFI_RETENTION", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub retention: u32,
    /// Style of the lines the central API injects: driver, seed or unguarded.
    #[arg(long, default_value = "driver", value_parser = |s: &str| s.parse::<LineStyle>())]
    pub line_style: LineStyle,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Log format.
    #[arg(long, env = "GFI_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Worker threads of the server.
    #[arg(long, env = "GFI_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Seconds to let requests in flight finish on SIGTERM.
    #[arg(long, env = "GFI_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Where remote runs' bundles are written while they run (an emptyDir in the pod).
    #[arg(
        long,
        env = "GFI_STATE_DIR",
        value_name = "DIR",
        default_value = "/tmp/gfi-controller"
    )]
    pub state_dir: PathBuf,
    /// Remote runs at once; more wait in the queue.
    #[arg(long, env = "GFI_MAX_RUNS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_runs: u32,
    /// Remote runs waiting for a free slot; a submission beyond them is refused with 429.
    #[arg(long, env = "GFI_MAX_QUEUED_RUNS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_queued_runs: u32,
    /// Serve no remote runs (/api/v1/runs answers 404): the seed's central API only.
    #[arg(long, env = "GFI_NO_RUNS")]
    pub no_runs: bool,
}

/// Turns the flags into a configuration, or says what is wrong with them.
pub fn config(args: &ControllerArgs) -> Result<ControllerConfig, String> {
    if args.token_file.is_none() && args.read_token_file.is_none() && !args.seed_compat_anonymous {
        return Err("no authentication configured: give --token-file <file> (run tokens; a mounted Secret) and/or --read-token-file <file>, or, knowingly, --seed-compat-anonymous".into());
    }
    if args.backend.backend == BackendKind::Local {
        return Err(
            "the controller serves a cluster: --backend kube (or sim for a demo), not local".into(),
        );
    }
    let mut c = ControllerConfig::new(args.listen);
    c.token_file = args.token_file.clone();
    c.read_token_file = args.read_token_file.clone();
    c.seed_compat_anonymous = args.seed_compat_anonymous;
    c.public_metrics = args.public_metrics;
    c.namespace = crate::backend::cluster::nvsentinel_namespace(&args.namespace).map_err(|_| {
        format!(
            "--namespace {:?} is not a namespace name (lower-case letters, digits and '-')",
            args.namespace
        )
    })?;
    c.retention = args.retention as usize;
    c.line_style = args.line_style;
    c.shutdown_grace = Duration::from_secs(args.shutdown_grace);
    c.tls = args.tls.files();
    if !args.no_runs {
        c.runs = Some(RunsSettings {
            state_dir: args.state_dir.clone(),
            max_concurrent: args.max_runs as usize,
            max_queued: args.max_queued_runs as usize,
            // On the simulated cluster each run gets its own, on virtual time: a plan's hours
            // take milliseconds, and a seed gives the journal `gfi run --seed` gives.
            sim_per_run: (args.backend.backend == BackendKind::Sim)
                .then(|| Box::new(args.backend.clone())),
        });
    }
    Ok(c)
}

/// Builds the backend the controller serves. The sim runs on the wall clock here: the
/// controller's runtime is not paused, and its callers wait in real time.
async fn cluster(args: &BackendArgs) -> Result<ControllerBackend, String> {
    let seed = args.seed.unwrap_or_else(crate::session::random_seed);
    let built = build_backend(args, seed, RunClock::start(false))?;
    let kube = match built.backend.as_any().downcast_ref::<KubeBackend>() {
        Some(k) => Some(
            k.api()
                .connected("keeping the controller's records")
                .await
                .map_err(|e| e.to_string())?
                .nodes
                .client()
                .clone(),
        ),
        None => None,
    };
    Ok(ControllerBackend {
        backend: built.backend,
        description: built.description,
        kube,
    })
}

pub fn run(args: ControllerArgs) -> ExitCode {
    // The controller keeps glibc's allocator (crate::alloc); one arena for its many threads.
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
        let cluster = match cluster(&args.backend).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let controller = match crate::controller::start(cfg, cluster).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        match controller.serve_until_signal().await {
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
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ControllerArgs,
    }

    fn parse(args: &[&str]) -> ControllerArgs {
        T::try_parse_from(std::iter::once("gfi").chain(args.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn refuses_to_start_without_an_auth_choice() {
        let e = config(&parse(&[])).unwrap_err();
        assert!(
            e.contains("--token-file") && e.contains("--seed-compat-anonymous"),
            "{e}"
        );
        assert!(config(&parse(&["--seed-compat-anonymous"])).is_ok());
    }

    #[test]
    fn the_backend_defaults_to_kube_and_local_is_refused() {
        assert_eq!(parse(&[]).backend.backend, BackendKind::Kube);
        let e = config(&parse(&["--token-file", "/t", "--backend", "local"])).unwrap_err();
        assert!(e.contains("not local"), "{e}");
        let c = config(&parse(&[
            "--token-file",
            "/t",
            "--retention",
            "7",
            "--listen",
            "127.0.0.1:0",
        ]))
        .unwrap();
        assert_eq!((c.retention, c.listen.port()), (7, 0));
        assert!(config(&parse(&["--token-file", "/t", "--namespace", "Bad_NS"])).is_err());
    }
}
