//! The HTTP front: paths parsed into the authorizer's attributes, authentication, injected
//! faults, authorization, then get / list / watch / create / update / patch / delete, the
//! `/status` and `/proxy` subresources, and the request log.

use super::Shared;
use super::access::{self, RequestRecord};
use super::patch::{self, PatchType};
use super::proxy;
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, Filter, LabelSelector};
use super::status::ApiError;
use super::store::{Key, Sub};
use super::watch::{self, Opened, bookmark_line};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a path names.
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    /// After `/proxy`: the path on the pod.
    rest: String,
}

fn page_not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, tail @ ..] if *r != "status" && *r != "finalize" => {
            (Some(ns.to_string()), {
                let mut v = vec![*r];
                v.extend_from_slice(tail);
                v
            })
        }
        r => (None, r.to_vec()),
    };
    let plural = rest.first().filter(|p| !p.is_empty())?;
    let rt = resources::by_path(group, version, plural)?;
    if rt.namespaced != namespace.is_some() && rest.len() > 1 {
        return None;
    }
    if !rt.namespaced && namespace.is_some() {
        return None;
    }
    let name = rest.get(1).map(|s| s.to_string()).filter(|s| !s.is_empty());
    let sub = rest.get(2).map(|s| s.to_string());
    match sub.as_deref() {
        None => {}
        Some("status") if rt.status && rest.len() == 3 => {}
        Some("proxy") if rt.kind == "Pod" => {}
        _ => return None,
    }
    Some(Target {
        rt,
        namespace,
        name,
        sub,
        rest: rest.get(3..).map(|r| r.join("/")).unwrap_or_default(),
    })
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    let uri: axum::http::Uri = format!("/?{}", q.unwrap_or("")).parse().unwrap_or_default();
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

fn verb(method: &Method, t: &Target, q: &HashMap<String, String>) -> String {
    let watch = is_true(q.get("watch"));
    let v = match (method.as_str(), t.sub.as_deref(), t.name.is_some()) {
        ("GET" | "HEAD", Some("proxy"), _) => "get",
        ("GET" | "HEAD", _, true) if watch => "watch",
        ("GET" | "HEAD", _, true) => "get",
        ("GET" | "HEAD", _, false) if watch => "watch",
        ("GET" | "HEAD", _, false) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", _, true) => "delete",
        ("DELETE", _, false) => "deletecollection",
        (other, _, _) => return other.to_lowercase(),
    };
    v.to_string()
}

pub async fn handle(
    State(sh): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = query_map(parts.uri.query());
    let target = parse_target(&path);
    let mut rec = RequestRecord {
        verb: parts.method.as_str().to_lowercase(),
        group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        path: path.clone(),
        body: String::new(),
        status: 0,
    };
    if let Some(t) = &target {
        rec.verb = verb(&parts.method, t, &q);
        rec.group = t.rt.group.to_string();
        rec.resource = t.rt.plural.to_string();
        rec.subresource = t.sub.clone().unwrap_or_default();
        rec.namespace = t.namespace.clone().unwrap_or_default();
        rec.name = t.name.clone().unwrap_or_default();
        if rec.name.is_empty() && (rec.verb == "list" || rec.verb == "watch") {
            // As the API server's request info: a list or watch of one name is about that name.
            if let Some(n) = q.get("fieldSelector").and_then(|s| {
                FieldSelector::parse(s, t.rt)
                    .ok()
                    .and_then(|f| f.name().map(str::to_string))
            }) {
                rec.name = n;
            }
        }
    }
    let resp = match gate(&sh, &parts.headers, &rec, target.is_none()) {
        Err(e) => e.into_response(),
        Ok(()) => match target {
            None if path == "/version" => axum::Json(json!({
                "major": "1", "minor": "36", "gitVersion": "v1.36.0-kube-double",
                "platform": "linux/amd64"
            }))
            .into_response(),
            None => page_not_found(),
            Some(t) => {
                let body = match axum::body::to_bytes(body, 3 * 1024 * 1024).await {
                    Ok(b) => b,
                    Err(_) => {
                        return ApiError::new(
                            413,
                            "RequestEntityTooLarge",
                            "the request body is too large",
                        )
                        .into_response();
                    }
                };
                rec.body = String::from_utf8_lossy(&body).into_owned();
                let call = Call {
                    sh: &sh,
                    t: &t,
                    q: &q,
                    method: &parts.method,
                    headers: &parts.headers,
                    body,
                    peer,
                    raw_query: parts.uri.query(),
                };
                match serve(call).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                }
            }
        },
    };
    rec.status = resp.status().as_u16();
    sh.lock_log().push(rec);
    sh.bump();
    resp
}

/// Authentication, injected faults, authorization, in the API server's order.
fn gate(
    sh: &Shared,
    headers: &axum::http::HeaderMap,
    rec: &RequestRecord,
    non_resource: bool,
) -> Result<(), ApiError> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.strip_prefix("Bearer ") != Some(sh.token.as_str()) {
        return Err(ApiError::unauthorized());
    }
    let mut f = sh.faults.lock().unwrap();
    if let Some(inj) = f
        .injected
        .iter_mut()
        .find(|i| i.remaining > 0 && i.matcher.matches(rec))
    {
        inj.remaining -= 1;
        return Err(inj.error.clone());
    }
    if non_resource {
        // /version and the like are public-info, readable by every authenticated user.
        return Ok(());
    }
    let refused = f.forbid.iter().any(|m| m.matches(rec))
        || f.rbac
            .as_ref()
            .is_some_and(|rules| !access::rbac_allows(rules, rec, false));
    if refused {
        return Err(access::forbidden(rec, &sh.user, false));
    }
    Ok(())
}

struct Call<'a> {
    sh: &'a Arc<Shared>,
    t: &'a Target,
    q: &'a HashMap<String, String>,
    method: &'a Method,
    headers: &'a axum::http::HeaderMap,
    body: Bytes,
    peer: SocketAddr,
    raw_query: Option<&'a str>,
}

fn object(code: StatusCode, v: &Value) -> Response {
    (code, axum::Json(v)).into_response()
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))
}

async fn serve(c: Call<'_>) -> Result<Response, ApiError> {
    let t = c.t;
    let ns = t.namespace.clone().unwrap_or_default();
    let sub = if t.sub.as_deref() == Some("status") {
        Sub::Status
    } else {
        Sub::Main
    };
    if t.sub.as_deref() == Some("proxy") {
        let (Some(ns), Some(target)) = (t.namespace.as_deref(), t.name.as_deref()) else {
            return Ok(page_not_found());
        };
        return proxy::forward(
            &c.sh.store,
            proxy::Forward {
                namespace: ns,
                target,
                rest: &t.rest,
                query: c.raw_query,
                method: c.method.clone(),
                headers: c.headers,
                body: c.body,
                client: c.peer,
            },
        )
        .await;
    }
    let rt = t.rt;
    if c.q.get("dryRun").is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::bad_request(
            "dryRun is not modelled by the Kubernetes API server double",
        ));
    }
    match (c.method.as_str(), t.name.as_deref()) {
        ("GET", Some(name)) if !is_true(c.q.get("watch")) => {
            let obj =
                c.sh.lock_store()
                    .get(rt, &ns, name)
                    .ok_or_else(|| ApiError::not_found(rt, name))?;
            Ok(object(StatusCode::OK, &obj))
        }
        // The older form of watching one object: the same as a metadata.name selector.
        ("GET", Some(name)) => {
            let mut q = c.q.clone();
            let by_name = format!("metadata.name={name}");
            let fields = match q.get("fieldSelector").filter(|f| !f.is_empty()) {
                Some(f) => format!("{f},{by_name}"),
                None => by_name,
            };
            q.insert("fieldSelector".into(), fields);
            open_watch(c.sh, rt, t.namespace.clone(), &q).await
        }
        ("GET", None) if is_true(c.q.get("watch")) => {
            open_watch(c.sh, rt, t.namespace.clone(), c.q).await
        }
        ("GET", None) => list(c.sh, rt, t.namespace.clone(), c.q).await,
        ("POST", None) if sub == Sub::Main => {
            let body = json_body(&c.body)?;
            let obj = c.sh.lock_store().create(rt, t.namespace.as_deref(), body)?;
            Ok(object(StatusCode::CREATED, &obj))
        }
        ("PUT", Some(name)) => {
            let body = json_body(&c.body)?;
            let obj = c.sh.lock_store().replace(rt, &ns, name, body, sub)?;
            Ok(object(StatusCode::OK, &obj))
        }
        ("PATCH", Some(name)) => {
            let ct = c
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media(patch::accepted_types(rt)))?;
            let obj = c.sh.lock_store().patch(rt, &ns, name, kind, &c.body, sub)?;
            Ok(object(StatusCode::OK, &obj))
        }
        ("DELETE", Some(name)) if sub == Sub::Main => {
            let opts: Value = if c.body.is_empty() {
                json!({})
            } else {
                json_body(&c.body)?
            };
            let grace =
                c.q.get("gracePeriodSeconds")
                    .and_then(|g| g.parse().ok())
                    .or_else(|| opts["gracePeriodSeconds"].as_i64());
            let obj = c.sh.lock_store().delete(rt, &ns, name, grace)?;
            Ok(object(StatusCode::OK, &obj))
        }
        _ => Err(ApiError::method_not_allowed("")),
    }
}

fn filter(
    rt: &ResourceType,
    namespace: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Filter, ApiError> {
    Ok(Filter {
        namespace,
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""), rt)?,
    })
}

fn continue_token(rt: &ResourceType, rv: u64, key: &Key) -> String {
    let start = if rt.namespaced {
        format!("{}/{}\u{0}", key.0, key.1)
    } else {
        format!("{}\u{0}", key.1)
    };
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_continue(rt: &ResourceType, token: &str) -> Result<(u64, Key), ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|e| bad(&e.to_string()))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| bad(&e.to_string()))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ));
    }
    let rv = v["rv"].as_u64().ok_or_else(|| bad("no resourceVersion"))?;
    let start = v["start"]
        .as_str()
        .ok_or_else(|| bad("no start key"))?
        .trim_end_matches('\u{0}');
    let key = if rt.namespaced {
        let (ns, name) = start
            .split_once('/')
            .ok_or_else(|| bad("the start key names no namespace"))?;
        (ns.to_string(), name.to_string())
    } else {
        (String::new(), start.to_string())
    };
    Ok((rv, key))
}

/// Waits up to 3 s for the store to reach `rv`, as the API server waits for its watch cache.
async fn reach(sh: &Shared, rv: u64) -> Result<(), ApiError> {
    let mut epoch = sh.epoch.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let current = sh.lock_store().rv();
        if current >= rv {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, epoch.changed())
            .await
            .is_err()
        {
            return Err(ApiError {
                details: Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                ),
                ..ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {rv}, current: {current}"),
                )
            });
        }
    }
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

async fn list(
    sh: &Arc<Shared>,
    rt: &'static ResourceType,
    namespace: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filter = filter(rt, namespace, q)?;
    let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
        None => None,
        Some(Ok(l)) if l > 0 => Some(l as usize),
        Some(Ok(_)) => None,
        Some(Err(_)) => return Err(ApiError::bad_request("limit: must be an integer")),
    };
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let rv_match = q
        .get("resourceVersionMatch")
        .map(String::as_str)
        .unwrap_or("");
    if !rv_match.is_empty() && rv.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    let (at, after) = if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
        if !rv.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "ListOptions.meta.k8s.io \"\" is invalid: resourceVersion: Forbidden: specifying resource version is not allowed when using continue",
            ));
        }
        let (at, key) = decode_continue(rt, token)?;
        if at < sh.lock_store().floor() {
            return Err(ApiError::gone(CONTINUE_TOO_OLD));
        }
        (at, Some(key))
    } else {
        match (rv, rv_match) {
            ("", _) | ("0", _) => (u64::MAX, None),
            (n, "Exact") => {
                let n = parse_rv(n)?;
                reach(sh, n).await?;
                if n < sh.lock_store().floor() {
                    return Err(ApiError::gone(
                        "The resourceVersion for the provided list is too old.",
                    ));
                }
                (n, None)
            }
            (n, "NotOlderThan" | "") => {
                reach(sh, parse_rv(n)?).await?;
                (u64::MAX, None)
            }
            (_, other) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\", \"\""
                    ),
                ));
            }
        }
    };
    let (page, text) = {
        let store = sh.lock_store();
        let at = at.min(store.rv());
        let page = store
            .page(rt, at, &filter, after.as_ref(), limit)
            .map_err(|e| {
                if after.is_some() {
                    ApiError::gone(CONTINUE_TOO_OLD)
                } else {
                    e
                }
            })?;
        let items: Vec<String> = page.items.iter().map(|v| v.to_string()).collect();
        (page, items.join(","))
    };
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(k) = &page.next {
        meta["continue"] = json!(continue_token(rt, page.rv, k));
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    let body = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{meta},\"items\":[{text}]}}",
        rt.kind,
        rt.api_version()
    );
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a static header is valid"))
}

async fn open_watch(
    sh: &Arc<Shared>,
    rt: &'static ResourceType,
    namespace: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filter = filter(rt, namespace, q)?;
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let rv_match = q
        .get("resourceVersionMatch")
        .map(String::as_str)
        .unwrap_or("");
    let bookmarks = is_true(q.get("allowWatchBookmarks"));
    let initial = is_true(q.get("sendInitialEvents"));
    if initial && rv_match != "NotOlderThan" {
        return Err(ApiError::new(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if !initial && !rv_match.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let timeout =
        match q.get("timeoutSeconds") {
            Some(s) => Duration::from_secs(s.parse().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds: invalid value {s:?}"))
            })?),
            // The API server's default: a random time between its minimum (30 min) and twice that.
            None => Duration::from_secs(1800),
        };
    if !rv.is_empty() && rv != "0" {
        reach(sh, parse_rv(rv)?).await?;
    }
    let store = sh.lock_store();
    let at = store.rv();
    let (mut lines, changes) = if rv.is_empty() || rv == "0" || initial {
        store.watch_with_state(rt, &filter)
    } else {
        match store.watch_from(rt, &filter, parse_rv(rv)?) {
            Ok(x) => x,
            // HTTP 200, then one ERROR event with the 410: how a watch learns it is too old.
            Err(gone) => {
                let line = format!("{{\"type\":\"ERROR\",\"object\":{}}}\n", gone.body());
                return Ok(watch::finished(vec![line]));
            }
        }
    };
    drop(store);
    if initial && bookmarks {
        lines.push(bookmark_line(rt, at, true));
    }
    Ok(watch::serve(
        sh.clone(),
        Opened {
            rt,
            filter,
            lines,
            changes,
            at,
            bookmarks,
            timeout,
        },
    ))
}
