//! The sim's clock in the REPL.
//!
//! The runtime's clock is tokio's paused clock, which jumps to the next timer whenever nothing
//! else can run ("auto-advance"): a six-minute recovery returns at once. That is the default
//! (`--sim-speed max`), and then the clock also stands still while the prompt waits for a
//! person ([`Freeze`]), so nothing happens between two lines.
//!
//! `--sim-speed N` makes virtual time run at N virtual seconds per real second instead, so a
//! wait takes real time (and Ctrl-C can cancel it) and the cluster keeps moving at the prompt.
//! The pacer keeps auto-advance, so every timer still fires at its exact virtual instant, but
//! never lets the clock get more than one short step ahead of the wall clock: it sleeps one
//! step in virtual time (auto-advance stops at its timer at the latest), then holds the clock
//! with a blocking task (tokio does not auto-advance while one runs) until the wall clock has
//! caught up. I/O, signals and channels are served meanwhile.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::Notify;

/// Real time per pacing step: short enough that waits finish close to their wall-clock time.
pub const STEP: Duration = Duration::from_millis(20);

/// The fastest pace that still means something (a year per second).
pub const MAX_SPEED: f64 = 366.0 * 24.0 * 3600.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as the simulation computes (waits return at once).
    Unlimited,
    /// Virtual seconds per real second.
    Paced(f64),
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Speed, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "max" | "unlimited" | "inf" => return Ok(Speed::Unlimited),
            "realtime" | "real" => return Ok(Speed::Paced(1.0)),
            _ => {}
        }
        let n: f64 = t.trim_end_matches('x').parse().map_err(|_| {
            format!("'{s}' is not a speed: give virtual seconds per real second (e.g. 1, 60, 0.5) or \"max\"")
        })?;
        if !(n.is_finite() && n > 0.0 && n <= MAX_SPEED) {
            return Err(format!(
                "speed {s} is out of range: more than 0 and at most {MAX_SPEED} (or \"max\")"
            ));
        }
        Ok(Speed::Paced(n))
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Unlimited => f.write_str("max (waits return at once)"),
            Speed::Paced(n) if *n == 1.0 => f.write_str("1 (real time)"),
            Speed::Paced(n) => write!(
                f,
                "{} (1 real second = {})",
                super::pretty::lua_number(*n).trim_end_matches(".0"),
                crate::duration::format(Duration::from_secs_f64(*n))
            ),
        }
    }
}

/// Paces a paused runtime's clock. Lives on the REPL's `LocalSet`.
pub struct Pacer {
    speed: Rc<Cell<Speed>>,
    changed: Rc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Pacer {
    /// Must run inside a `LocalSet` on a runtime whose clock is paused.
    pub fn start(speed: Speed) -> Pacer {
        let speed = Rc::new(Cell::new(speed));
        let changed = Rc::new(Notify::new());
        let task = tokio::task::spawn_local(pace(speed.clone(), changed.clone()));
        Pacer {
            speed,
            changed,
            task,
        }
    }

    pub fn speed(&self) -> Speed {
        self.speed.get()
    }

    pub fn set(&self, speed: Speed) {
        self.speed.set(speed);
        self.changed.notify_one();
    }

    /// Holds the clock still while it lives, at unlimited speed (the prompt).
    pub fn freeze(&self) -> Option<Freeze> {
        (self.speed() == Speed::Unlimited).then(Freeze::new)
    }
}

async fn pace(speed: Rc<Cell<Speed>>, changed: Rc<Notify>) {
    loop {
        let Speed::Paced(rate) = speed.get() else {
            changed.notified().await;
            continue;
        };
        let virtual_start = tokio::time::Instant::now();
        let real_start = std::time::Instant::now();
        let step = STEP.mul_f64(rate).max(Duration::from_millis(1));
        loop {
            tokio::select! {
                _ = changed.notified() => break,
                _ = tokio::time::sleep(step) => {}
            }
            let ran = virtual_start.elapsed().as_secs_f64() / rate;
            let due = real_start + Duration::from_secs_f64(ran);
            let early = due.saturating_duration_since(std::time::Instant::now());
            if !early.is_zero() {
                let _ = tokio::task::spawn_blocking(move || std::thread::sleep(early)).await;
            }
        }
    }
}

/// While alive, a blocking task keeps tokio from auto-advancing the paused clock.
pub struct Freeze {
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl Freeze {
    pub fn new() -> Freeze {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        // The task only waits: dropping the sender ends it.
        drop(tokio::task::spawn_blocking(move || {
            let _ = wait.recv();
        }));
        Freeze {
            release: Some(release),
        }
    }
}

impl Default for Freeze {
    fn default() -> Self {
        Freeze::new()
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        self.release.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused_local<F: std::future::Future<Output = ()>>(f: F) {
        let rt = crate::clock::paused_runtime();
        tokio::task::LocalSet::new().block_on(&rt, f);
    }

    #[test]
    fn speeds_parse() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Unlimited));
        assert_eq!("60".parse::<Speed>(), Ok(Speed::Paced(60.0)));
        assert_eq!("10x".parse::<Speed>(), Ok(Speed::Paced(10.0)));
        assert_eq!("realtime".parse::<Speed>(), Ok(Speed::Paced(1.0)));
        for bad in ["0", "-1", "fast", "nan", "1e30"] {
            assert!(bad.parse::<Speed>().is_err(), "{bad}");
        }
        assert_eq!(Speed::Paced(60.0).to_string(), "60 (1 real second = 1m)");
    }

    #[test]
    fn unlimited_time_jumps() {
        paused_local(async {
            let _pacer = Pacer::start(Speed::Unlimited);
            let wall = std::time::Instant::now();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert!(wall.elapsed() < Duration::from_secs(5));
        });
    }

    #[test]
    fn paced_time_takes_real_time_and_timers_stay_exact() {
        paused_local(async {
            let _pacer = Pacer::start(Speed::Paced(10.0));
            let wall = std::time::Instant::now();
            let start = tokio::time::Instant::now();
            let deadline = start + Duration::from_millis(3_333);
            tokio::time::sleep_until(deadline).await;
            // The timer fires at its own instant (to tokio's millisecond), not at a step.
            let late = tokio::time::Instant::now() - deadline;
            assert!(late <= Duration::from_millis(1), "{late:?} late");
            // 3.3 virtual seconds at 10x cannot take less than about 0.33 real ones.
            assert!(
                wall.elapsed() >= Duration::from_millis(300),
                "{:?}",
                wall.elapsed()
            );
        });
    }

    #[test]
    fn freeze_holds_the_clock() {
        paused_local(async {
            let _pacer = Pacer::start(Speed::Unlimited);
            let start = tokio::time::Instant::now();
            let frozen = Freeze::new();
            // A channel message arrives in real time; the clock must not run meanwhile.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let _ = tx.send(());
            });
            let timer = tokio::time::sleep(Duration::from_secs(600));
            tokio::select! {
                _ = rx.recv() => {}
                _ = timer => panic!("the clock ran while frozen"),
            }
            assert!(start.elapsed() < Duration::from_secs(1));
            drop(frozen);
            tokio::time::sleep(Duration::from_secs(600)).await;
            assert!(start.elapsed() >= Duration::from_secs(600));
        });
    }

    #[test]
    fn speed_changes_take_effect() {
        paused_local(async {
            let pacer = Pacer::start(Speed::Paced(1.0));
            pacer.set(Speed::Unlimited);
            let wall = std::time::Instant::now();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert!(wall.elapsed() < Duration::from_secs(5));
        });
    }
}
