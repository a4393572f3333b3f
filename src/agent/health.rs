//! An honest `/health`: the GPU tree, the write path, the kernel's devkmsg switch, the fault store
//! and the token file are checked, and any failure makes the status `degraded` with the reason.
//!
//! Checks run in the background once a second (and once before the server answers at all), so
//! a probe costs a lock and a small string, never a filesystem scan.

use super::auth::TokenFile;
use super::fault_store::FaultStore;
use crate::node::inject::Injector;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// How often the checks run.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

/// The outcome of one round of checks, with the response body pre-rendered around the live
/// `active_faults` count.
#[derive(Debug, Clone)]
pub(crate) struct HealthSnapshot {
    pub(crate) healthy: bool,
    pub(crate) gpu_count: usize,
    pub(crate) reasons: Vec<String>,
    head: String,
    tail: String,
}

impl HealthSnapshot {
    /// The seed's fields first (`status`, `node`, `gpu_count`, `dcgm_available`,
    /// `active_faults`), then what this agent adds.
    pub(crate) fn body(&self, active_faults: usize) -> String {
        format!("{}{}{}", self.head, active_faults, self.tail)
    }

    /// A snapshot taken before any check ran.
    pub(crate) fn starting(node: &str) -> HealthSnapshot {
        render(
            node,
            "",
            0,
            vec![(
                "startup",
                Check {
                    ok: false,
                    detail: "checks have not run yet".into(),
                },
            )],
        )
    }
}

fn render(
    node: &str,
    write_path: &str,
    gpu_count: usize,
    checks: Vec<(&'static str, Check)>,
) -> HealthSnapshot {
    let reasons: Vec<String> = checks
        .iter()
        .filter(|(_, c)| !c.ok)
        .map(|(name, c)| format!("{name}: {}", c.detail))
        .collect();
    let healthy = reasons.is_empty();
    let head = format!(
        "{{\"status\":{},\"node\":{},\"gpu_count\":{gpu_count},\"dcgm_available\":false,\"active_faults\":",
        json!(if healthy { "healthy" } else { "degraded" }),
        json!(node),
    );
    let checks_obj: serde_json::Map<String, serde_json::Value> = checks
        .iter()
        .map(|(k, c)| (k.to_string(), json!(c)))
        .collect();
    let tail = format!(
        ",\"reasons\":{},\"checks\":{},\"write_path\":{},\"version\":{}}}",
        json!(reasons),
        serde_json::Value::Object(checks_obj),
        json!(write_path),
        json!(env!("CARGO_PKG_VERSION")),
    );
    HealthSnapshot {
        healthy,
        gpu_count,
        reasons,
        head,
        tail,
    }
}

/// Runs every check once: the GPU tree and write path of `injector`, the fault `store`, and the
/// token file when there is one.
pub(crate) async fn evaluate(
    node: &str,
    injector: &Injector,
    store: &FaultStore,
    tokens: Option<&TokenFile>,
) -> HealthSnapshot {
    let mut checks = Vec::new();
    let gpus = injector.gpus();
    let tree = gpus.proc_root().join(crate::node::discovery::GPU_TREE);
    let gpu_count = match gpus.refresh().await {
        Ok(d) if d.gpus.is_empty() => {
            checks.push((
                "gpu_tree",
                Check {
                    ok: false,
                    detail: format!("no usable GPU under {}", tree.display())
                        + &if d.warnings.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", d.warnings.join("; "))
                        },
                },
            ));
            0
        }
        Ok(d) => {
            checks.push((
                "gpu_tree",
                Check {
                    ok: true,
                    detail: format!("{} GPUs under {}", d.gpus.len(), tree.display()),
                },
            ));
            d.gpus.len()
        }
        Err(e) => {
            checks.push((
                "gpu_tree",
                Check {
                    ok: false,
                    detail: e.to_string(),
                },
            ));
            0
        }
    };
    let writer = injector.writer();
    let write = match tokio::time::timeout(Duration::from_secs(2), writer.check()).await {
        Ok(Ok(detail)) => Check { ok: true, detail },
        Ok(Err(detail)) => Check { ok: false, detail },
        Err(_) => Check {
            ok: false,
            detail: "the kmsg writer did not answer within 2 s".into(),
        },
    };
    checks.push(("write_path", write));
    let sysctl = gpus.proc_root().join("sys/kernel/printk_devkmsg");
    if let Ok(v) = tokio::fs::read_to_string(&sysctl).await {
        let v = v.trim().to_string();
        checks.push((
            "printk_devkmsg",
            if v == "off" {
                Check {
                    ok: false,
                    detail: "kernel.printk_devkmsg=off: the kernel refuses every write to /dev/kmsg (set it to ratelimit or on)".into(),
                }
            } else {
                Check {
                    ok: true,
                    detail: format!("kernel.printk_devkmsg={v}"),
                }
            },
        ));
    }
    checks.push((
        // The check's name is part of the /health body that probes and people read.
        "journal",
        match store.last_error() {
            None => Check {
                ok: true,
                detail: format!("{}", store.path().display()),
            },
            Some(e) => Check {
                ok: false,
                detail: format!("{}: last append failed: {e}", store.path().display()),
            },
        },
    ));
    if let Some(tokens) = tokens {
        checks.push((
            "auth",
            match tokens.refresh() {
                Ok(()) => Check {
                    ok: true,
                    detail: format!("token file {}", tokens.path().display()),
                },
                Err(e) => Check {
                    ok: false,
                    detail: format!("token file {}: {e}", tokens.path().display()),
                },
            },
        ));
    }
    render(node, writer.describe(), gpu_count, checks)
}
