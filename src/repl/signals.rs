//! Ctrl-C while a chunk runs. The terminal sends SIGINT only then (at the prompt, rustyline
//! reads Ctrl-C as a key). A chunk waiting on the cluster is cancelled by dropping its future
//! when the signal arrives on the channel; a chunk busy computing never returns to the
//! runtime, so the flag also makes the Lua instruction hook yield it (see
//! `Limits::interrupt`), and then it is dropped the same way.
//!
//! SIGINT is blocked in every thread and taken by one thread with `sigwait`, so it never
//! kills the process halfway through a cleanup.

use nix::sys::signal::{SigSet, Signal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

pub struct Interrupts {
    pub flag: Arc<AtomicBool>,
    rx: UnboundedReceiver<()>,
}

impl Interrupts {
    /// Must be called before any other thread starts: they inherit the blocked mask.
    pub fn install() -> Result<Interrupts, String> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.thread_block()
            .map_err(|e| format!("cannot block SIGINT: {e}"))?;
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = unbounded_channel();
        let f = flag.clone();
        std::thread::Builder::new()
            .name("gfi-repl-sigint".into())
            .spawn(move || {
                while set.wait().is_ok() {
                    f.store(true, Ordering::SeqCst);
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
        Ok(Interrupts { flag, rx })
    }

    /// Forgets Ctrl-Cs so far.
    pub fn clear(&mut self) {
        self.take();
    }

    /// Whether Ctrl-C came since the last look; forgets it.
    pub fn take(&mut self) -> bool {
        let mut any = false;
        while self.rx.try_recv().is_ok() {
            any = true;
        }
        self.flag.swap(false, Ordering::SeqCst) || any
    }

    /// The next Ctrl-C.
    pub async fn next(&mut self) {
        if self.rx.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether Ctrl-C came since the last [`Interrupts::clear`].
    pub fn fired(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}
