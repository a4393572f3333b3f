//! The runs API: submit, list, show, follow (Server-Sent Events) and cancel.

use super::bundle::{BundleError, RunRequest};
use super::manager::{CancelError, Run, RunManager, SubmitError};
use crate::agent::http::{detail, json_response};
use crate::controller::caller::Caller;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The largest submission body for bundles within `limits`: JSON escaping can double a
/// source's size; the bundle's own check is exact.
pub fn body_limit(limits: &super::bundle::BundleLimits) -> usize {
    limits.max_bytes * 2 + (64 << 10)
}

/// The runs API with its state applied, at absolute paths (`/api/v1/runs...`).
pub fn routes(manager: Arc<RunManager>) -> Router {
    let body_limit = body_limit(&manager.config.bundle);
    Router::new()
        .route("/api/v1/runs", post(submit).get(list))
        .route("/api/v1/runs/{id}", get(show))
        .route("/api/v1/runs/{id}/events", get(events))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(manager)
}

fn caller_name(caller: &Option<Extension<Caller>>) -> String {
    caller
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |Extension(c)| c.name.clone())
}

async fn submit(
    State(manager): State<Arc<RunManager>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    let req: RunRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return detail(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a run request ({e}); expected JSON like {{\"script\": \"plan.lua\", \"source\": \"...\", \"modules\": {{\"lib/util.lua\": \"...\"}}, \"args\": [[\"k\", \"v\"]], \"seed\": 7}}"
                ),
            );
        }
    };
    match manager.submit(req, &caller_name(&caller)) {
        Ok(record) => {
            let mut body = record.brief();
            body["events"] = json!(format!("/api/v1/runs/{}/events", record.id));
            json_response(StatusCode::CREATED, &body)
        }
        Err(SubmitError::Bundle(BundleError::Invalid(m))) => detail(StatusCode::BAD_REQUEST, m),
        Err(SubmitError::Bundle(BundleError::TooLarge(m))) => {
            detail(StatusCode::PAYLOAD_TOO_LARGE, m)
        }
        Err(SubmitError::Busy(m)) => detail(StatusCode::TOO_MANY_REQUESTS, m),
        Err(SubmitError::Server(m)) => detail(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

async fn list(State(manager): State<Arc<RunManager>>) -> Response {
    json_response(StatusCode::OK, &json!({ "runs": manager.list() }))
}

fn not_found(id: &str) -> Response {
    detail(StatusCode::NOT_FOUND, format!("no run with id '{id}'"))
}

async fn show(State(manager): State<Arc<RunManager>>, Path(id): Path<String>) -> Response {
    match manager.get(&id) {
        Some(record) => json_response(StatusCode::OK, &record),
        None => not_found(&id),
    }
}

async fn cancel(
    State(manager): State<Arc<RunManager>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Response {
    match manager.cancel(&id, &caller_name(&caller)) {
        Ok(record) => json_response(StatusCode::ACCEPTED, &record.brief()),
        Err(CancelError::NotFound(_)) => not_found(&id),
        Err(CancelError::Over(m)) => detail(StatusCode::CONFLICT, m),
    }
}

/// The first event to send: `?from=N`, or the one after `Last-Event-ID` (a reconnecting
/// EventSource sends it), whichever is later.
fn first_event(query: Option<&str>, headers: &HeaderMap) -> Result<usize, String> {
    let mut from = 0usize;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "from" {
            from = v.parse().map_err(|_| {
                format!("from={v} is not an event number (a whole number, 0 for the first event)")
            })?;
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let last: usize = last
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or("Last-Event-ID is not an event number (the `id` of an event received)")?;
        from = from.max(last + 1);
    }
    Ok(from)
}

async fn events(
    State(manager): State<Arc<RunManager>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(run) = manager.find(&id) else {
        return not_found(&id);
    };
    let from = match first_event(query.as_deref(), &headers) {
        Ok(n) => n,
        Err(m) => return detail(StatusCode::BAD_REQUEST, m),
    };
    Sse::new(stream(run, from))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Journal entries from number `from` as `entry` events (their `id` is the entry's number),
/// as they are recorded; then one `end` event with the record (without its journal).
fn stream(run: Arc<Run>, from: usize) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Cursor {
        run: Arc<Run>,
        next: usize,
        changes: tokio::sync::watch::Receiver<u64>,
        done: bool,
    }
    let changes = run.changed.subscribe();
    let cursor = Cursor {
        run,
        next: from,
        changes,
        done: false,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        loop {
            c.changes.borrow_and_update();
            let event = {
                let record = c.run.lock();
                if let Some(entry) = record.journal.get(c.next) {
                    Some(
                        Event::default()
                            .id(entry.seq.to_string())
                            .event("entry")
                            .data(serde_json::to_string(entry).unwrap_or_default()),
                    )
                } else if record.status.is_terminal() {
                    c.done = true;
                    Some(
                        Event::default()
                            .event("end")
                            .data(record.brief().to_string()),
                    )
                } else {
                    None
                }
            };
            if let Some(event) = event {
                if !c.done {
                    c.next += 1;
                }
                return Some((Ok(event), c));
            }
            if c.changes.changed().await.is_err() {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_follows_from_and_last_event_id() {
        let mut h = HeaderMap::new();
        assert_eq!(first_event(None, &h), Ok(0));
        assert_eq!(first_event(Some("from=5"), &h), Ok(5));
        h.insert("last-event-id", "7".parse().unwrap());
        assert_eq!(first_event(Some("from=5"), &h), Ok(8));
        assert_eq!(first_event(Some("from=12"), &h), Ok(12));
        assert!(first_event(Some("from=x"), &h).is_err());
        h.insert("last-event-id", "nope".parse().unwrap());
        assert!(first_event(None, &h).is_err());
    }
}
