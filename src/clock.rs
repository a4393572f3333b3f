//! The run's clock: a tokio instant (virtual on `sim`, where tokio's time is paused and
//! auto-advances) anchored to a wall-clock epoch.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use std::time::Duration;
use tokio::time::Instant;

/// Where virtual time starts on `sim`: fixed, so a seed gives byte-identical journals.
pub const SIM_EPOCH_SECS: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// A current-thread runtime with tokio's time paused, as `sim` runs: for unit tests.
#[cfg(test)]
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
    epoch: DateTime<Utc>,
    virtual_time: bool,
}

impl RunClock {
    /// Starts the clock now. Must be called inside the runtime that drives the run, so a
    /// paused runtime's virtual time is what it measures.
    pub fn start(virtual_time: bool) -> Self {
        let epoch = if virtual_time {
            Utc.timestamp_opt(SIM_EPOCH_SECS, 0)
                .single()
                .unwrap_or_default()
        } else {
            Utc::now()
        };
        RunClock {
            start: Instant::now(),
            epoch,
            virtual_time,
        }
    }

    pub fn is_virtual(&self) -> bool {
        self.virtual_time
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    pub fn start_instant(&self) -> Instant {
        self.start
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.at(self.elapsed())
    }

    /// The wall-clock time `offset` after the start.
    pub fn at(&self, offset: Duration) -> DateTime<Utc> {
        self.epoch + chrono::Duration::from_std(offset).unwrap_or_default()
    }

    /// RFC 3339 with milliseconds: `2026-01-01T00:00:12.345Z`.
    pub fn rfc3339(&self) -> String {
        rfc3339(self.now())
    }

    pub fn epoch_secs_f64(&self) -> f64 {
        let now = self.now();
        now.timestamp() as f64 + now.timestamp_subsec_millis() as f64 / 1000.0
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// NVSentinel's label timestamp format (`2006-01-02T15-04-05Z`): label values cannot hold `:`.
pub fn label_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H-%M-%SZ").to_string()
}
