//! An honest `/health`: the GPU tree, the write path, the kernel's devkmsg switch, the journal
//! and the token file are checked, and any failure makes the status `degraded` with the reason.
//!
//! Checks run in the background once a second (and once before the server answers at all), so
//! a probe costs a lock and a small string, never a filesystem scan.

use super::server::AgentState;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How often the checks run.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

/// The outcome of one round of checks, with the response body pre-rendered around the live
/// `active_faults` count.
#[derive(Debug, Clone)]
pub struct HealthSnapshot {
    pub healthy: bool,
    pub gpu_count: usize,
    pub reasons: Vec<String>,
    pub checks: Vec<(&'static str, Check)>,
    head: String,
    tail: String,
}

impl HealthSnapshot {
    /// The seed's fields first (`status`, `node`, `gpu_count`, `dcgm_available`,
    /// `active_faults`), then what this agent adds.
    pub fn body(&self, active_faults: usize) -> String {
        format!("{}{}{}", self.head, active_faults, self.tail)
    }

    /// A snapshot taken before any check ran.
    pub fn starting(node: &str) -> HealthSnapshot {
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
        checks,
        head,
        tail,
    }
}

/// Runs every check once.
pub async fn evaluate(st: &AgentState) -> HealthSnapshot {
    let mut checks = Vec::new();
    let gpus = st.injector.gpus();
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
    let writer = st.injector.writer();
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
        "journal",
        match st.journal.last_error() {
            None => Check {
                ok: true,
                detail: format!("{}", st.journal.path().display()),
            },
            Some(e) => Check {
                ok: false,
                detail: format!("{}: last append failed: {e}", st.journal.path().display()),
            },
        },
    ));
    if let Some(tokens) = &st.tokens {
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
    render(&st.node, writer.describe(), gpu_count, checks)
}

/// Refreshes the snapshot every [`REFRESH`] until shutdown.
pub fn spawn_refresher(st: Arc<AgentState>) {
    let mut shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        let mut requests_seen = st.metrics.requests_total();
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let snap = evaluate(&st).await;
            let was = st.health.read().expect("health lock").healthy;
            if was != snap.healthy {
                if snap.healthy {
                    tracing::info!("health: healthy again");
                } else {
                    tracing::warn!(reasons = ?snap.reasons, "health: degraded");
                }
            }
            *st.health.write().expect("health lock") = Arc::new(snap);
            // Trim only when quiet: under load freed memory is reused at once, and a trim
            // holds the allocator's lock while every worker wants it.
            let now = st.metrics.requests_total();
            if now.saturating_sub(requests_seen) < 50 {
                release_free_memory();
            }
            requests_seen = now;
        }
    });
}

/// Hands memory freed by bursts of requests back to the kernel. glibc keeps freed memory in
/// per-thread arenas; an agent that idles between test runs should not sit on it.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// One glibc arena for all threads: the agent has a handful of threads and little heap, and
/// each extra arena keeps its own free memory resident.
pub fn limit_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called once at start.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}
