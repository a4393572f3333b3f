//! One watch: its opening lines, then every change that its filter sees, bookmarks
//! (periodic and on the test's demand), its `timeoutSeconds`, and the test's cut.

use super::Shared;
use super::resources::ResourceType;
use super::selectors::Filter;
use super::store::Change;
use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Bookmark,
    Cut,
}

pub fn bookmark_line(rt: &ResourceType, rv: u64, initial_end: bool) -> String {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta});
    format!("{{\"type\":\"BOOKMARK\",\"object\":{obj}}}\n")
}

pub struct Opened {
    pub rt: &'static ResourceType,
    pub filter: Filter,
    pub lines: Vec<String>,
    pub changes: broadcast::Receiver<Arc<Change>>,
    /// The resourceVersion the stream stands at once `lines` are sent.
    pub at: u64,
    pub bookmarks: bool,
    pub timeout: Duration,
}

/// Counts a watch as open from its creation to the end of its stream.
struct OpenGuard {
    shared: Arc<Shared>,
    plural: &'static str,
}

impl OpenGuard {
    fn new(shared: Arc<Shared>, plural: &'static str) -> OpenGuard {
        *shared.lock_watches().entry(plural).or_default() += 1;
        shared.bump();
        OpenGuard { shared, plural }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(n) = self.shared.lock_watches().get_mut(self.plural) {
            *n = n.saturating_sub(1);
        }
        self.shared.bump();
    }
}

/// A stream that ends at once after `lines` (a watch answered with an ERROR event).
pub fn finished(lines: Vec<String>) -> Response {
    let stream = futures::stream::iter(
        lines
            .into_iter()
            .map(|l| Ok::<_, std::io::Error>(Bytes::from(l))),
    );
    json_stream(Body::from_stream(stream))
}

fn json_stream(body: Body) -> Response {
    Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .expect("a static header is valid")
}

pub fn serve(shared: Arc<Shared>, w: Opened) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1024);
    let mut control = shared.control.subscribe();
    let guard = OpenGuard::new(shared.clone(), w.rt.plural);
    let interval = *shared.bookmark_interval.lock().unwrap();
    tokio::spawn(async move {
        let _guard = guard;
        let Opened {
            rt,
            filter,
            lines,
            mut changes,
            mut at,
            bookmarks,
            timeout,
        } = w;
        for l in lines {
            if tx.send(Ok(Bytes::from(l))).await.is_err() {
                return;
            }
        }
        let end = tokio::time::sleep(timeout);
        tokio::pin!(end);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            let line = tokio::select! {
                _ = &mut end => return,
                _ = tx.closed() => return,
                c = changes.recv() => match c {
                    Ok(c) => {
                        at = c.rv;
                        if c.rt.index != rt.index {
                            continue;
                        }
                        match c.line_for(&filter) {
                            Some(l) => l,
                            None => continue,
                        }
                    }
                    // A watcher that cannot keep up is closed, as the API server closes it;
                    // the client watches again from the last resourceVersion it saw.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = tick.tick(), if bookmarks => bookmark_line(rt, at, false),
                m = control.recv() => match m {
                    Ok(Control::Bookmark) if bookmarks => bookmark_line(rt, at, false),
                    Ok(Control::Cut) => {
                        // An error ends the chunked body without its last chunk: the client
                        // sees the connection break mid-stream.
                        let _ = tx.send(Err(std::io::Error::other("watch cut by the test"))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                    _ => continue,
                },
            };
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    });
    json_stream(Body::from_stream(stream))
}
