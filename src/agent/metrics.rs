//! Prometheus metrics, rendered by hand in the text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the injection latency histogram.
pub(crate) const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Route labels counted by `gfi_agent_http_requests_total` (see `routes::route_label`).
pub(crate) const ROUTES: [&str; 9] = [
    "/health",
    "/inject-xid",
    "/faults",
    "/faults/{fault_id}",
    "/gpus",
    "/kmsg",
    "/metrics",
    "/version",
    "other",
];
/// Status codes counted one by one; anything else is counted as its class (`2xx`, ...).
const STATUSES: [u16; 13] = [200, 400, 401, 404, 405, 409, 413, 422, 429, 500, 503, 0, 1];

/// Request counters without a lock: `/health` at tens of thousands per second must not
/// queue on a mutex shared with injections.
struct RequestCounters([[AtomicU64; STATUSES.len()]; ROUTES.len()]);

impl Default for RequestCounters {
    fn default() -> Self {
        RequestCounters(std::array::from_fn(|_| {
            std::array::from_fn(|_| AtomicU64::new(0))
        }))
    }
}

impl std::fmt::Debug for RequestCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestCounters")
    }
}

fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(if status < 400 { 11 } else { 12 })
}

fn status_label(slot: usize) -> String {
    match STATUSES[slot] {
        0 => "other_ok".into(),
        1 => "other_error".into(),
        s => s.to_string(),
    }
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    injections: Mutex<BTreeMap<(u32, &'static str), u64>>,
    latency: Mutex<Histogram>,
    requests: RequestCounters,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    fault_store_errors: AtomicU64,
    repeats: AtomicU64,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    *m.lock().expect("metrics lock").entry(k).or_insert(0) += 1;
}

/// Escapes a label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Outcome: `injected`, `dropped`, `failed`, `rejected`, `rate_limited`.
    pub(crate) fn injection(&self, xid: u32, outcome: &'static str) {
        bump(&self.injections, (xid, outcome));
    }

    pub(crate) fn injection_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut h = self.latency.lock().expect("metrics lock");
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// Requests answered so far, all routes together.
    pub(crate) fn requests_total(&self) -> u64 {
        self.requests
            .0
            .iter()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// `route` is one of [`ROUTES`].
    pub(crate) fn request(&self, route: &'static str, status: u16) {
        let r = ROUTES
            .iter()
            .position(|x| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        self.requests.0[r][status_slot(status)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn auth_failure(&self, reason: &'static str) {
        bump(&self.auth_failures, reason);
    }

    pub(crate) fn rate_limited(&self, scope: &'static str) {
        bump(&self.rate_limited, scope);
    }

    pub(crate) fn fault_store_error(&self) {
        self.fault_store_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn repeat(&self) {
        self.repeats.fetch_add(1, Ordering::Relaxed);
    }

    // Only the tests want the sum; `/metrics` lists the counters per reason.
    #[cfg(test)]
    pub(crate) fn auth_failures_total(&self) -> u64 {
        self.auth_failures
            .lock()
            .expect("metrics lock")
            .values()
            .sum()
    }

    /// The exposition text. `gauges` are extra `name value` pairs (GPU count, health).
    pub(crate) fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP gfi_agent_build_info Version of the running agent."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_build_info gauge");
        let _ = writeln!(
            out,
            "gfi_agent_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP gfi_agent_injections_total XID injections by XID and outcome."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_injections_total counter");
        for ((xid, outcome), n) in self.injections.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "gfi_agent_injections_total{{xid=\"{xid}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_agent_injection_duration_seconds Time to write, read back and journal one injection."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_injection_duration_seconds histogram");
        {
            let h = self.latency.lock().expect("metrics lock");
            for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gfi_agent_injection_duration_seconds_bucket{{le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "gfi_agent_injection_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "gfi_agent_injection_duration_seconds_sum {}", h.sum);
            let _ = writeln!(
                out,
                "gfi_agent_injection_duration_seconds_count {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_agent_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_http_requests_total counter");
        for (r, route) in ROUTES.iter().enumerate() {
            for slot in 0..STATUSES.len() {
                let n = self.requests.0[r][slot].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "gfi_agent_http_requests_total{{route=\"{}\",status=\"{}\"}} {n}",
                        esc(route),
                        status_label(slot)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP gfi_agent_auth_failures_total Refused authentication attempts by reason."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_auth_failures_total counter");
        for (reason, n) in self.auth_failures.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "gfi_agent_auth_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gfi_agent_rate_limited_total Injections refused by a rate limit, by scope."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_rate_limited_total counter");
        for (scope, n) in self.rate_limited.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "gfi_agent_rate_limited_total{{scope=\"{scope}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP gfi_agent_idempotent_repeats_total Repeated fault ids answered from the journal."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_idempotent_repeats_total counter");
        let _ = writeln!(
            out,
            "gfi_agent_idempotent_repeats_total {}",
            self.repeats.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP gfi_agent_journal_errors_total Failed journal appends."
        );
        let _ = writeln!(out, "# TYPE gfi_agent_journal_errors_total counter");
        let _ = writeln!(
            out,
            "gfi_agent_journal_errors_total {}",
            self.fault_store_errors.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.injection(79, "injected");
        m.injection(79, "injected");
        m.injection(48, "dropped");
        m.injection_latency(Duration::from_micros(700));
        m.request("/inject-xid", 200);
        m.auth_failure("wrong");
        let text = m.render(&[("gfi_agent_gpus", "GPUs found.", 8.0)]);
        assert!(text.contains("gfi_agent_injections_total{xid=\"79\",outcome=\"injected\"} 2"));
        assert!(text.contains("gfi_agent_injections_total{xid=\"48\",outcome=\"dropped\"} 1"));
        assert!(text.contains("gfi_agent_injection_duration_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(text.contains("gfi_agent_injection_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("gfi_agent_injection_duration_seconds_count 1"));
        assert!(
            text.contains("gfi_agent_http_requests_total{route=\"/inject-xid\",status=\"200\"} 1")
        );
        assert!(text.contains("gfi_agent_auth_failures_total{reason=\"wrong\"} 1"));
        assert!(text.contains("gfi_agent_gpus 8"));
        assert_eq!(m.auth_failures_total(), 1);
    }
}
