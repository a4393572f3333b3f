//! Interrupts (Ctrl-C, SIGTERM, and for the REPL SIGHUP) while Lua runs. A script waiting on the
//! cluster is cancelled by dropping its future when the signal arrives on the channel; a
//! script busy computing never returns to the runtime, so the flag also makes the Lua
//! instruction hook yield it (see `Limits::interrupt`), and then it is dropped the same way.
//! In the REPL the terminal sends SIGINT only while a chunk runs (at the prompt, rustyline
//! reads Ctrl-C as a key).
//!
//! The signals are blocked in every thread and taken by one thread with `sigwait`, so they
//! never kill the process halfway through a cleanup.

use nix::sys::signal::{SigSet, Signal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Exit status after a signal, as a shell reports it: 128 + the signal (130 for SIGINT, 143
/// for SIGTERM, 129 for SIGHUP).
pub fn exit_for(sig: Signal) -> u8 {
    128 + sig as i32 as u8
}

/// A signal as a person names it: `Ctrl-C` for SIGINT, else its name (`SIGTERM`).
pub fn spoken(sig: Signal) -> &'static str {
    if sig == Signal::SIGINT {
        "Ctrl-C"
    } else {
        sig.as_str()
    }
}

pub struct Interrupts {
    pub flag: Arc<AtomicBool>,
    rx: UnboundedReceiver<Signal>,
    /// The first signal seen that asks the process to end (anything but SIGINT): SIGTERM from
    /// a supervisor, SIGHUP from a closed terminal. Kept, unlike Ctrl-C, which is forgotten
    /// once handled.
    ending: Option<Signal>,
}

impl Interrupts {
    /// Takes over `signals`. Must be called before any other thread starts: they inherit the
    /// blocked mask.
    pub fn install(signals: &[Signal]) -> Result<Interrupts, String> {
        let mut set = SigSet::empty();
        for s in signals {
            set.add(*s);
        }
        set.thread_block()
            .map_err(|e| format!("cannot block {signals:?}: {e}"))?;
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = unbounded_channel();
        let f = flag.clone();
        std::thread::Builder::new()
            .name("gfi-signals".into())
            .spawn(move || {
                while let Ok(sig) = set.wait() {
                    f.store(true, Ordering::SeqCst);
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
        Ok(Interrupts {
            flag,
            rx,
            ending: None,
        })
    }

    /// Forgets Ctrl-Cs so far.
    pub fn clear(&mut self) {
        self.take();
    }

    /// Whether Ctrl-C came since the last look; forgets it.
    pub fn take(&mut self) -> bool {
        let mut any = false;
        while let Ok(sig) = self.rx.try_recv() {
            self.note(sig);
            any = true;
        }
        self.flag.swap(false, Ordering::SeqCst) || any
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        match self.rx.recv().await {
            Some(sig) => {
                self.note(sig);
                sig
            }
            None => std::future::pending().await,
        }
    }

    fn note(&mut self, sig: Signal) {
        if sig != Signal::SIGINT && self.ending.is_none() {
            self.ending = Some(sig);
        }
    }

    /// The signal that asked the process to end, if one came (see the field).
    pub fn ending(&self) -> Option<Signal> {
        self.ending
    }

    /// Whether Ctrl-C came since the last [`Interrupts::clear`].
    pub fn fired(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}
