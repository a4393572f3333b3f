//! Rate limits on injections: one token bucket for the node, one per GPU.
//!
//! Every accepted injection may get a node cordoned, drained and rebooted; a runaway script
//! should hit a wall with a clear answer (429 and when to retry), not the whole fleet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `rate` tokens per second, at most `burst` saved up. `rate == 0` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub rate: f64,
    pub burst: f64,
}

impl Limit {
    pub const UNLIMITED: Limit = Limit {
        rate: 0.0,
        burst: 0.0,
    };

    pub(crate) fn is_unlimited(&self) -> bool {
        self.rate <= 0.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(limit: Limit, now: Instant) -> Self {
        Bucket {
            tokens: limit.burst.max(1.0),
            at: now,
        }
    }

    fn refill(&mut self, limit: Limit, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * limit.rate).min(limit.burst.max(1.0));
        self.at = now;
    }

    /// Time until one token is available.
    fn wait(&self, limit: Limit) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / limit.rate)
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limited {
    /// `node` or `gpu`.
    pub(crate) scope: &'static str,
    pub(crate) limit: Limit,
    pub(crate) retry_after: Duration,
}

impl Limited {
    /// Whole seconds for the `Retry-After` header (at least 1: it has no fractions).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    pub(crate) fn detail(&self, gpu: u32) -> String {
        let who = if self.scope == "gpu" {
            format!("GPU {gpu}")
        } else {
            "this node".to_string()
        };
        format!(
            "Too many injections for {who}: the limit is {} per second with bursts of {}; retry in {:.2} s",
            self.limit.rate,
            self.limit.burst,
            self.retry_after.as_secs_f64()
        )
    }
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    node_limit: Limit,
    gpu_limit: Limit,
    state: Mutex<(Option<Bucket>, HashMap<u32, Bucket>)>,
}

impl RateLimiter {
    pub(crate) fn new(node_limit: Limit, gpu_limit: Limit) -> Self {
        RateLimiter {
            node_limit,
            gpu_limit,
            state: Mutex::new((None, HashMap::new())),
        }
    }

    /// Takes one token from the node's and the GPU's bucket, or neither.
    pub(crate) fn acquire(&self, gpu: u32) -> Result<(), Limited> {
        self.acquire_at(gpu, Instant::now())
    }

    fn acquire_at(&self, gpu: u32, now: Instant) -> Result<(), Limited> {
        let mut st = self.state.lock().expect("rate limiter lock");
        let (node, gpus) = &mut *st;
        let node_limit = self.node_limit;
        let gpu_limit = self.gpu_limit;
        let node_b = node.get_or_insert_with(|| Bucket::full(node_limit, now));
        let gpu_b = gpus
            .entry(gpu)
            .or_insert_with(|| Bucket::full(gpu_limit, now));
        if !node_limit.is_unlimited() {
            node_b.refill(node_limit, now);
        }
        if !gpu_limit.is_unlimited() {
            gpu_b.refill(gpu_limit, now);
        }
        let node_wait = if node_limit.is_unlimited() {
            Duration::ZERO
        } else {
            node_b.wait(node_limit)
        };
        let gpu_wait = if gpu_limit.is_unlimited() {
            Duration::ZERO
        } else {
            gpu_b.wait(gpu_limit)
        };
        if gpu_wait > Duration::ZERO && gpu_wait >= node_wait {
            return Err(Limited {
                scope: "gpu",
                limit: gpu_limit,
                retry_after: gpu_wait,
            });
        }
        if node_wait > Duration::ZERO {
            return Err(Limited {
                scope: "node",
                limit: node_limit,
                retry_after: node_wait,
            });
        }
        if !node_limit.is_unlimited() {
            node_b.tokens -= 1.0;
        }
        if !gpu_limit.is_unlimited() {
            gpu_b.tokens -= 1.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_burst_then_refill() {
        let rl = RateLimiter::new(
            Limit::UNLIMITED,
            Limit {
                rate: 2.0,
                burst: 3.0,
            },
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.acquire_at(0, t0).unwrap();
        }
        let e = rl.acquire_at(0, t0).unwrap_err();
        assert_eq!(e.scope, "gpu");
        assert_eq!(e.retry_after, Duration::from_millis(500));
        assert_eq!(e.retry_after_secs(), 1);
        assert!(e.detail(0).contains("GPU 0"));
        // Another GPU has its own bucket.
        rl.acquire_at(1, t0).unwrap();
        rl.acquire_at(0, t0 + Duration::from_millis(500)).unwrap();
    }

    #[test]
    fn node_limit_spans_gpus_and_refusal_takes_nothing() {
        let rl = RateLimiter::new(
            Limit {
                rate: 1.0,
                burst: 2.0,
            },
            Limit {
                rate: 1.0,
                burst: 1.0,
            },
        );
        let t0 = Instant::now();
        rl.acquire_at(0, t0).unwrap();
        rl.acquire_at(1, t0).unwrap();
        let e = rl.acquire_at(2, t0).unwrap_err();
        assert_eq!(e.scope, "node");
        // GPU 2's bucket was not charged by the refusal.
        rl.acquire_at(2, t0 + Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn unlimited_never_refuses() {
        let rl = RateLimiter::new(Limit::UNLIMITED, Limit::UNLIMITED);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            rl.acquire_at(0, t0).unwrap();
        }
    }
}
