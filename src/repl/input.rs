//! Where lines come from: rustyline on a terminal, plain lines from a pipe. Either runs on its
//! own thread, so the runtime keeps going while a person types (background tasks, a paced
//! simulation, a real cluster's events), and the Lua state stays on the runtime's thread:
//! completion asks it through a channel.

use super::helper::{CompletionRequest, ReplHelper};
use super::output::{Output, start_printer};
use rustyline::error::ReadlineError;
use rustyline::history::{DefaultHistory, History};
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Editor, Event, EventContext,
    EventHandler, KeyEvent, RepeatCount,
};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How many chunks the history file keeps.
pub const HISTORY_SIZE: usize = 10_000;

#[derive(Debug)]
pub enum Input {
    Line(String),
    /// Ctrl-C at the prompt; `had_text`: the line being edited was not empty.
    Interrupted {
        had_text: bool,
    },
    Eof,
    /// Something to tell the person (a history file that could not be read).
    Notice(String),
}

enum Request {
    Read { prompt: String },
    AddHistory(String),
    Shutdown,
}

pub struct InputSource {
    requests: std::sync::mpsc::Sender<Request>,
    pub lines: UnboundedReceiver<Input>,
    pub completions: UnboundedReceiver<CompletionRequest>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub interactive: bool,
}

impl InputSource {
    pub fn request_line(&self, prompt: &str) {
        let _ = self.requests.send(Request::Read {
            prompt: prompt.to_string(),
        });
    }

    /// Adds a complete chunk to the history (and its file).
    pub fn add_history(&self, entry: &str) {
        let _ = self.requests.send(Request::AddHistory(entry.to_string()));
    }

    /// Lets the reader go without waiting for it: it is blocked reading a key that will not
    /// come, and ends with the process.
    pub fn abandon(mut self) {
        let _ = self.requests.send(Request::Shutdown);
        drop(self.thread.take());
    }

    /// Stops the reader, once it is back from a read. A reader blocked on a line (piped input
    /// that never ends) is left behind: the process is about to exit anyway.
    pub fn shutdown(mut self) {
        let _ = self.requests.send(Request::Shutdown);
        if let Some(t) = self.thread.take()
            && self.interactive
        {
            let _ = t.join();
        }
    }

    /// Lines from a pipe or file, without prompts.
    pub fn piped() -> InputSource {
        let (req_tx, req_rx) = std::sync::mpsc::channel::<Request>();
        let (line_tx, lines) = unbounded_channel();
        let (_, completions) = unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("gfi-repl-stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let mut stdin = stdin.lock();
                let mut ended = false;
                for req in req_rx {
                    match req {
                        Request::Read { .. } => {
                            let mut buf = Vec::new();
                            let input = match ended {
                                true => Input::Eof,
                                false => match stdin.read_until(b'\n', &mut buf) {
                                    Ok(0) => Input::Eof,
                                    Ok(_) => {
                                        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r')
                                        {
                                            buf.pop();
                                        }
                                        Input::Line(String::from_utf8_lossy(&buf).into_owned())
                                    }
                                    Err(e) => {
                                        let _ = line_tx
                                            .send(Input::Notice(format!("cannot read stdin: {e}")));
                                        Input::Eof
                                    }
                                },
                            };
                            ended |= matches!(input, Input::Eof);
                            if line_tx.send(input).is_err() {
                                return;
                            }
                        }
                        Request::AddHistory(_) => {}
                        Request::Shutdown => return,
                    }
                }
            })
            .ok();
        InputSource {
            requests: req_tx,
            lines,
            completions,
            thread,
            interactive: false,
        }
    }

    /// rustyline on the terminal, with history in `history` (none: in memory only).
    pub fn terminal(history: Option<PathBuf>, out: Arc<Output>) -> Result<InputSource, String> {
        let (req_tx, req_rx) = std::sync::mpsc::channel::<Request>();
        let (line_tx, lines) = unbounded_channel();
        let (comp_tx, completions) = unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("gfi-repl-input".into())
            .spawn(move || editor_thread(history, out, req_rx, line_tx, comp_tx, ready_tx))
            .map_err(|e| format!("cannot start the line editor: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(InputSource {
                requests: req_tx,
                lines,
                completions,
                thread: Some(thread),
                interactive: true,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the line editor stopped while starting".into()),
        }
    }
}

/// Ctrl-C: remembers whether the line had text, then interrupts as usual.
struct CtrlC(Arc<AtomicBool>);

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        self.0.store(!ctx.line().is_empty(), Ordering::SeqCst);
        Some(Cmd::Interrupt)
    }
}

fn editor_thread(
    history: Option<PathBuf>,
    out: Arc<Output>,
    requests: std::sync::mpsc::Receiver<Request>,
    lines: UnboundedSender<Input>,
    completions: UnboundedSender<CompletionRequest>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .history_ignore_space(true)
        .auto_add_history(false)
        .max_history_size(HISTORY_SIZE)
        .and_then(|b| b.history_ignore_dups(true))
        .map(|b| b.build());
    let mut editor = match config.and_then(Editor::<ReplHelper, DefaultHistory>::with_config) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the line editor: {e}")));
            return;
        }
    };
    editor.set_helper(Some(ReplHelper::new(completions, out.color())));
    let had_text = Arc::new(AtomicBool::new(false));
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC(had_text.clone()))),
    );
    if let Some(path) = &history
        && path.exists()
        && let Err(e) = editor.load_history(path)
    {
        let _ = lines.send(Input::Notice(format!(
            "cannot read the history file {}: {e}",
            path.display()
        )));
    }
    if let Ok(printer) = editor.create_external_printer() {
        out.set_printer(start_printer(printer));
    }
    let _ = ready.send(Ok(()));
    let mut history_warned = false;
    for req in requests {
        match req {
            Request::Read { prompt } => {
                if let Some((cols, _)) = editor.dimensions() {
                    out.set_width(cols as usize);
                }
                let input = loop {
                    had_text.store(false, Ordering::SeqCst);
                    match editor.readline(&prompt) {
                        Ok(line) => break Input::Line(line),
                        Err(ReadlineError::Interrupted) => {
                            break Input::Interrupted {
                                had_text: had_text.load(Ordering::SeqCst),
                            };
                        }
                        Err(ReadlineError::Eof) => break Input::Eof,
                        // A resize or another signal: read again.
                        Err(ReadlineError::Signal(_)) => continue,
                        Err(e) => {
                            let _ = lines.send(Input::Notice(format!("cannot read input: {e}")));
                            break Input::Eof;
                        }
                    }
                };
                if lines.send(input).is_err() {
                    return;
                }
            }
            Request::AddHistory(entry) => {
                if editor.add_history_entry(entry.as_str()).unwrap_or(false)
                    && let Some(path) = &history
                    && let Err(e) = editor.append_history(path)
                    && !history_warned
                {
                    history_warned = true;
                    let _ = lines.send(Input::Notice(format!(
                        "cannot write the history file {}: {e}",
                        path.display()
                    )));
                }
            }
            Request::Shutdown => {
                if let Some(path) = &history
                    && editor.history().len() > 0
                {
                    let _ = editor.append_history(path);
                }
                return;
            }
        }
    }
}
