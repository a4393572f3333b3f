//! Everything the REPL prints goes through here, in order: values, errors, what scripts
//! `print`, and what the cluster does (NVSentinel's stages, dimmed, as they happen).
//!
//! While the prompt is up, text goes through rustyline's external printer (on its own thread,
//! so a slow terminal never blocks the runtime) and appears above the line being edited;
//! otherwise it is written directly.

use crate::journal::{Entry, Sink};
use crate::render::clock_text;
use crate::render::{self, Class};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Output {
    color: bool,
    /// Piped: errors go to stderr, where scripts expect them.
    errors_to_stderr: bool,
    quiet: bool,
    /// Show each wait as it starts (when waits take real time).
    show_wait_starts: AtomicBool,
    prompt_active: AtomicBool,
    printer: Mutex<Option<std::sync::mpsc::Sender<String>>>,
    width: AtomicUsize,
    /// Waits started by the running chunk and not finished: node, what.
    waits: Mutex<Vec<(String, String)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Dim,
    Error,
    Warn,
    Good,
    Bold,
}

impl Tone {
    fn code(self) -> Option<&'static str> {
        match self {
            Tone::Dim => Some("2"),
            Tone::Error => Some("31"),
            Tone::Warn => Some("33"),
            Tone::Good => Some("32"),
            Tone::Bold => Some("1"),
        }
    }
}

impl Output {
    pub fn new(color: bool, errors_to_stderr: bool, quiet: bool) -> Arc<Output> {
        Arc::new(Output {
            color,
            errors_to_stderr,
            quiet,
            show_wait_starts: AtomicBool::new(false),
            prompt_active: AtomicBool::new(false),
            printer: Mutex::new(None),
            width: AtomicUsize::new(100),
            waits: Mutex::new(Vec::new()),
        })
    }

    pub fn color(&self) -> bool {
        self.color
    }

    pub fn width(&self) -> usize {
        self.width.load(Ordering::Relaxed)
    }

    pub fn set_width(&self, cols: usize) {
        if cols >= 20 {
            self.width.store(cols, Ordering::Relaxed);
        }
    }

    pub fn set_show_wait_starts(&self, on: bool) {
        self.show_wait_starts.store(on, Ordering::Relaxed);
    }

    /// Routes text printed while the prompt is up through `printer`.
    pub fn set_printer(&self, printer: std::sync::mpsc::Sender<String>) {
        *self.printer.lock().unwrap_or_else(|e| e.into_inner()) = Some(printer);
    }

    pub fn set_prompt_active(&self, on: bool) {
        self.prompt_active.store(on, Ordering::SeqCst);
    }

    pub fn paint(&self, tone: Tone, text: &str) -> String {
        match tone.code() {
            Some(code) if self.color && !text.is_empty() => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_string(),
        }
    }

    fn emit(&self, mut text: String, to_stderr: bool) {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if self.prompt_active.load(Ordering::SeqCst) {
            let printer = self.printer.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = printer.as_ref() {
                match p.send(text) {
                    Ok(()) => return,
                    Err(e) => text = e.0,
                }
            }
        }
        if to_stderr {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    /// A value, or text a person asked for.
    pub fn line(&self, text: &str) {
        self.emit(text.to_string(), false);
    }

    pub fn toned(&self, tone: Tone, text: &str) {
        self.emit(self.paint(tone, text), false);
    }

    pub fn error(&self, text: &str) {
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let mut msg = format!("{} {first}", self.paint(Tone::Error, "error:"));
        if !rest.is_empty() {
            msg.push('\n');
            msg.push_str(&self.paint(Tone::Dim, rest));
        }
        self.emit(msg, self.errors_to_stderr);
    }

    pub fn warning(&self, text: &str) {
        self.emit(
            format!("{} {text}", self.paint(Tone::Warn, "warning:")),
            self.errors_to_stderr,
        );
    }

    /// Forgets waits of an earlier chunk.
    pub fn begin_chunk(&self) {
        self.waits.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The wait a cancelled chunk was in: "gpu-node-001 cordoned".
    pub fn active_wait(&self) -> Option<String> {
        self.waits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .map(|(node, what)| format!("{node} {what}"))
    }

    pub fn sink(self: &Arc<Self>) -> Sink {
        let me = self.clone();
        Arc::new(move |e: &Entry| me.show(e))
    }

    fn show(&self, e: &Entry) {
        let v = render::view(e);
        let node = v.node.unwrap_or("");
        let stamp = clock_text(e.t);
        let cluster = |mark: &str, text: &str| {
            (!self.quiet).then(|| self.paint(Tone::Dim, &format!("  {stamp} {mark} {node} {text}")))
        };
        let mark = render::mark(v.class);
        let line = match v.class {
            Class::Output => Some(v.text.to_string()),
            Class::Warning => Some(format!("{} {}", self.paint(Tone::Warn, "warning:"), v.text)),
            Class::Observe | Class::Inject | Class::Action => cluster(mark, v.text),
            Class::Problem => {
                let text = format!("{} {}", self.paint(Tone::Error, mark), v.text);
                self.emit(text, self.errors_to_stderr);
                None
            }
            Class::WaitStart => {
                self.waits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((node.to_string(), v.waiting_for.to_string()));
                if self.show_wait_starts.load(Ordering::Relaxed) {
                    cluster(mark, &format!("{} (Ctrl-C cancels)", v.text))
                } else {
                    None
                }
            }
            Class::WaitEnd { ok } => {
                let what = v.waiting_for;
                let mut waits = self.waits.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(i) = waits.iter().rposition(|(n, w)| n == node && w == what) {
                    waits.remove(i);
                }
                drop(waits);
                // At a prompt a timeout reads as "not what you waited for".
                cluster(if ok { mark } else { "✗" }, v.text)
            }
            Class::Check { ok: true } => {
                Some(format!("{} check {}", self.paint(Tone::Good, mark), v.text))
            }
            Class::Check { ok: false } => Some(format!(
                "{} check failed: {}",
                self.paint(Tone::Error, mark),
                v.text
            )),
            Class::Cleanup => Some(format!("{mark} {}", v.text)),
            Class::Notice => Some(format!("{} {}", self.paint(Tone::Warn, mark), v.text)),
            Class::RunStart | Class::Detail => None,
        };
        if let Some(line) = line {
            self.emit(line, false);
        }
    }
}

/// The thread that hands text to rustyline's external printer while the prompt is up.
pub fn start_printer<P>(mut printer: P) -> std::sync::mpsc::Sender<String>
where
    P: rustyline::ExternalPrinter + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let spawned = std::thread::Builder::new()
        .name("gfi-repl-printer".into())
        .spawn(move || {
            for text in rx {
                if printer.print(text.clone()).is_err() {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                }
            }
        });
    if spawned.is_err() {
        // Without the thread, the channel is closed and `emit` writes directly.
        let (tx, _) = std::sync::mpsc::channel();
        return tx;
    }
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::RunClock;
    use crate::journal::Journal;
    use serde_json::json;

    #[test]
    fn waits_are_tracked_for_the_cancel_message() {
        let rt = crate::clock::paused_runtime();
        rt.block_on(async {
            let out = Output::new(false, false, true);
            let journal = Journal::new(RunClock::start(true));
            journal.add_sink(out.sink());
            journal.record(
                crate::journal::EntryKind::WaitStart,
                Some("n1"),
                "waiting",
                json!({"for": "cordoned"}),
            );
            journal.record(
                crate::journal::EntryKind::WaitStart,
                Some("n2"),
                "waiting",
                json!({"for": "uncordoned"}),
            );
            assert_eq!(out.active_wait().as_deref(), Some("n2 uncordoned"));
            journal.record(
                crate::journal::EntryKind::Wait,
                Some("n2"),
                "done",
                json!({"for": "uncordoned", "ok": true}),
            );
            assert_eq!(out.active_wait().as_deref(), Some("n1 cordoned"));
            out.begin_chunk();
            assert_eq!(out.active_wait(), None);
        });
    }

    #[test]
    fn paint_only_with_colour() {
        let plain = Output::new(false, false, false);
        assert_eq!(plain.paint(Tone::Error, "x"), "x");
        let colour = Output::new(true, false, false);
        assert_eq!(colour.paint(Tone::Error, "x"), "\x1b[31mx\x1b[0m");
    }
}
