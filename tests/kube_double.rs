//! The Kubernetes API server double (`tests/kube_double/`), exercised through the real
//! `kube::Client` and kube-runtime's `watcher`: what code tested against it relies on.

#[path = "kube_double/mod.rs"]
mod kube_double;

use axum::http::{self, StatusCode};
use futures::StreamExt;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube_double::{ApiError, KubeDouble, Matcher, PatchType, RebootNode, RequestRecord};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const WAIT: Duration = Duration::from_secs(20);

fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn pod(ns: &str, name: &str, node: &str, labels: &[(&str, &str)], port: u16) -> Pod {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "gfi:1",
            "ports": [{"containerPort": port}]}]}
    }))
    .unwrap()
}

fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next item `pred` accepts, skipping others; panics naming `what` after 20 s.
async fn expect<T: Debug>(
    rx: &mut UnboundedReceiver<T>,
    what: &str,
    pred: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(x)) if pred(&x) => return x,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended while waiting for {what}"),
            Err(_) => panic!("waited {WAIT:?} for {what}"),
        }
    }
}

#[derive(Debug)]
enum Seen<K> {
    Event(watcher::Event<K>),
    Error(String),
}

/// kube-runtime's watcher in a task, every event and error forwarded.
fn watch_all<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (UnboundedReceiver<Seen<K>>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
{
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(async move {
        let mut s = watcher(api, config).default_backoff().boxed();
        while let Some(item) = s.next().await {
            let seen = match item {
                Ok(e) => Seen::Event(e),
                Err(e) => Seen::Error(e.to_string()),
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    (rx, task)
}

fn applied<'a>(s: &'a Seen<Node>, name: &str) -> Option<&'a Node> {
    match s {
        Seen::Event(watcher::Event::Apply(n) | watcher::Event::InitApply(n))
            if n.metadata.name.as_deref() == Some(name) =>
        {
            Some(n)
        }
        _ => None,
    }
}

fn label<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    n.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn count(log: &[RequestRecord], verb: &str, resource: &str) -> usize {
    log.iter()
        .filter(|r| r.verb == verb && r.resource == resource)
        .count()
}

async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, http::HeaderMap, Vec<u8>) {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .send(req.body(kube::client::Body::from(body.to_vec())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn no_retry_client(d: &KubeDouble) -> kube::Client {
    let mut config = d.config().await;
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn the_server_sets_identity_and_versions_and_refuses_duplicates_and_missing_objects() {
    let d = KubeDouble::start().await;
    let nodes: Api<Node> = Api::all(d.client().await);
    let created = nodes
        .create(&PostParams::default(), &node("gpu-1", &[]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.as_deref().is_some_and(|u| u.len() == 36),
        "{meta:?}"
    );
    assert!(meta.creation_timestamp.is_some());
    let rv: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert_eq!(rv, d.resource_version());

    let dup = status_of(
        nodes
            .create(&PostParams::default(), &node("gpu-1", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "nodes \"gpu-1\" already exists");

    let missing = status_of(nodes.get("gpu-9").await.unwrap_err());
    assert_eq!(
        (
            missing.code,
            missing.reason.as_str(),
            missing.message.as_str()
        ),
        (404, "NotFound", "nodes \"gpu-9\" not found")
    );
    assert!(nodes.get_opt("gpu-9").await.unwrap().is_none());

    // A stale resourceVersion on replace is a conflict; a current one succeeds and bumps it.
    let mut stale = created.clone();
    nodes
        .patch(
            "gpu-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "1"}}})),
        )
        .await
        .unwrap();
    stale.metadata.labels = Some([("b".to_string(), "2".to_string())].into());
    let conflict = status_of(
        nodes
            .replace("gpu-1", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );

    // Pods carry a generation; a write that changes nothing writes nothing.
    let pods: Api<Pod> = Api::namespaced(d.client().await, "default");
    let p = pods
        .create(
            &PostParams::default(),
            &pod("default", "p", "gpu-1", &[], 80),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(1));
    assert_eq!(
        p.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending"),
        "no kubelet: the pod stays Pending"
    );
    let before = d.resource_version();
    let same = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": null}})),
        )
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, p.metadata.resource_version);
    assert_eq!(d.resource_version(), before);
}

#[tokio::test]
async fn malformed_and_invalid_objects_are_refused_as_the_api_server_refuses_them() {
    let d = KubeDouble::start().await;
    let client = no_retry_client(&d).await;
    let ct = [("content-type", "application/json")];
    let (code, _, body) = raw(
        &client,
        "POST",
        "/api/v1/nodes",
        &ct,
        br#"{"metadata":{"name":"n"},"spec":{"unschedulable":"yes"}}"#,
    )
    .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Node in version \"v1\" cannot be handled as a Node"),
        "{body}"
    );

    let (code, _, body) = raw(
        &client,
        "POST",
        "/api/v1/nodes",
        &ct,
        br#"{"metadata":{"name":"Bad_Name"}}"#,
    )
    .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{body}"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let no_containers: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
            .unwrap();
    let e = status_of(
        pods.create(&PostParams::default(), &no_containers)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (422, "Pod \"p\" is invalid: spec.containers: Required value")
    );

    // Namespaced objects need their namespace; a terminating one takes nothing new.
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    let e = status_of(
        elsewhere
            .create(&PostParams::default(), &cm)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
    d.ensure_namespace("nowhere");
    elsewhere.create(&PostParams::default(), &cm).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("nowhere", &DeleteParams::default())
        .await
        .unwrap();
    let ns = namespaces.get("nowhere").await.unwrap();
    assert_eq!(
        ns.status.unwrap().phase.as_deref(),
        Some("Terminating"),
        "no namespace controller finishes it"
    );
    let other: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "d"}})).unwrap();
    let e = status_of(
        elsewhere
            .create(&PostParams::default(), &other)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert!(
        e.message.contains("because it is being terminated"),
        "{}",
        e.message
    );

    // Secrets default their type.
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "gfi-agent-token"}, "stringData": {"token": "t"}}),
    )
    .unwrap();
    let stored = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
    // stringData is write-only: merged into data, never stored.
    assert!(stored.string_data.is_none());
    assert_eq!(stored.data.unwrap()["token"].0, b"t");
    // dryRun is refused rather than silently written.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let other: Secret = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    assert_eq!(
        status_of(secrets.create(&dry, &other).await.unwrap_err()).code,
        400
    );
    assert!(secrets.get_opt("x").await.unwrap().is_none());
}

#[tokio::test]
async fn lists_page_with_limit_and_continue_from_one_snapshot() {
    let d = KubeDouble::start().await;
    for i in 0..7 {
        d.create(&node(&format!("gpu-{i}"), &[])).unwrap();
    }
    let nodes: Api<Node> = Api::all(d.client().await);
    let first = nodes.list(&ListParams::default().limit(3)).await.unwrap();
    let names = |l: &kube::core::ObjectList<Node>| -> Vec<String> {
        l.items
            .iter()
            .map(|n| n.metadata.name.clone().unwrap())
            .collect()
    };
    assert_eq!(names(&first), ["gpu-0", "gpu-1", "gpu-2"]);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Written between pages: the rest of the list is still the first page's snapshot.
    d.create(&node("gpu-3a", &[])).unwrap();
    d.delete::<Node>("", "gpu-5").unwrap();
    let second = nodes
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second), ["gpu-3", "gpu-4", "gpu-5"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let third = nodes
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(&third), ["gpu-6"]);
    assert!(third.metadata.continue_.is_none());

    // After compaction the token is too old: 410, as the API server answers it.
    d.compact();
    let e = status_of(
        nodes
            .list(&ListParams::default().limit(3).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
    assert!(
        e.message
            .starts_with("The provided continue parameter is too old"),
        "{}",
        e.message
    );

    // resourceVersionMatch=Exact rebuilds the past; a version ahead of the store waits, then 504.
    d.create(&node("gpu-7", &[])).unwrap();
    let rv = d.resource_version();
    d.patch::<Node>(
        "",
        "gpu-7",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"x": "1"}}}),
    )
    .unwrap();
    let exact = nodes
        .list(
            &ListParams::default()
                .at(&rv.to_string())
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .unwrap();
    let old = exact
        .items
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some("gpu-7"))
        .unwrap();
    assert!(
        old.metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("x")),
        "{old:?}"
    );
    let nodes_once: Api<Node> = Api::all(no_retry_client(&d).await);
    let ahead = (d.resource_version() + 100).to_string();
    let e = status_of(
        nodes_once
            .list(&ListParams::default().at(&ahead))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (504, "Timeout"));
    assert!(
        e.message.starts_with("Too large resource version"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_watcher_sees_adds_changes_and_deletes_and_pages_its_initial_list() {
    let d = KubeDouble::start().await;
    for i in 0..1000 {
        d.create(&node(&format!("gpu-{i:04}"), &[])).unwrap();
    }
    let (mut rx, _task) = watch_all(
        Api::<Node>::all(d.client().await),
        watcher::Config::default(),
    );
    expect(&mut rx, "the initial list's end", |s| {
        matches!(s, Seen::Event(watcher::Event::InitDone))
    })
    .await;
    d.wait_for("the watcher's watch", WAIT, |v| {
        v.open_watches("nodes") == 1
    })
    .await;
    // kube-runtime lists in pages of 500: two pages for 1,000 nodes.
    assert_eq!(count(&d.requests(), "list", "nodes"), 2);

    d.create(&node("gpu-new", &[])).unwrap();
    expect(&mut rx, "gpu-new added", |s| {
        applied(s, "gpu-new").is_some()
    })
    .await;
    d.patch::<Node>(
        "",
        "gpu-new",
        PatchType::Merge,
        &json!({"spec": {"unschedulable": true}}),
    )
    .unwrap();
    expect(&mut rx, "gpu-new cordoned", |s| {
        applied(s, "gpu-new").is_some_and(|n| n.spec.as_ref().unwrap().unschedulable == Some(true))
    })
    .await;
    d.delete::<Node>("", "gpu-new").unwrap();
    expect(&mut rx, "gpu-new deleted", |s| matches!(s, Seen::Event(watcher::Event::Delete(n)) if n.metadata.name.as_deref() == Some("gpu-new"))).await;
}

#[tokio::test]
async fn bookmarks_arrive_on_demand_and_periodically() {
    let d = KubeDouble::start().await;
    d.create(&node("gpu-1", &[])).unwrap();
    let nodes: Api<Node> = Api::all(d.client().await);
    let rv = d.resource_version().to_string();
    let mut stream = nodes
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    d.wait_for("the watch", WAIT, |v| v.open_watches("nodes") == 1)
        .await;
    d.patch::<Node>(
        "",
        "gpu-1",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .unwrap();
    let next = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("the change")
        .unwrap()
        .unwrap();
    assert!(matches!(next, WatchEvent::Modified(_)), "{next:?}");
    d.send_bookmarks();
    match tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a bookmark")
        .unwrap()
        .unwrap()
    {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata.resource_version,
            d.resource_version().to_string()
        ),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // Without allowWatchBookmarks, none.
    let mut quiet = nodes
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    let replayed = tokio::time::timeout(WAIT, quiet.next())
        .await
        .expect("the replayed change")
        .unwrap()
        .unwrap();
    assert!(matches!(replayed, WatchEvent::Modified(_)), "{replayed:?}");
    d.send_bookmarks();
    d.patch::<Node>(
        "",
        "gpu-1",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"a": "c"}}}),
    )
    .unwrap();
    let after = tokio::time::timeout(WAIT, quiet.next())
        .await
        .expect("the change")
        .unwrap()
        .unwrap();
    assert!(
        matches!(after, WatchEvent::Modified(_)),
        "no bookmark before the change: {after:?}"
    );

    d.set_bookmark_interval(Duration::from_millis(50));
    let mut periodic = nodes
        .watch(&WatchParams::default(), &d.resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, periodic.next())
        .await
        .expect("a periodic bookmark")
        .unwrap()
        .unwrap();
    assert!(matches!(first, WatchEvent::Bookmark(_)), "{first:?}");

    // The older watch of one object by its path: its state, then the end at timeoutSeconds.
    let (code, _, body) = raw(
        &nodes.clone().into_client(),
        "GET",
        "/api/v1/nodes/gpu-1?watch=true&timeoutSeconds=1",
        &[],
        b"",
    )
    .await;
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (code, lines.len(), lines[0]["type"].as_str()),
        (200, 1, Some("ADDED")),
        "{lines:?}"
    );

    // timeoutSeconds ends the stream cleanly.
    let mut short = nodes
        .watch(
            &WatchParams::default().timeout(1).disable_bookmarks(),
            &d.resource_version().to_string(),
        )
        .await
        .unwrap()
        .boxed();
    assert!(
        tokio::time::timeout(WAIT, short.next())
            .await
            .expect("the end of the stream")
            .is_none()
    );
}

#[tokio::test]
async fn an_expired_resource_version_is_a_410_event_and_the_watcher_relists_and_continues() {
    let d = KubeDouble::start().await;
    d.create(&node("gpu-1", &[])).unwrap();
    d.create(&node("gpu-2", &[])).unwrap();
    let nodes: Api<Node> = Api::all(d.client().await);
    let old = d.resource_version().to_string();
    d.patch::<Node>(
        "",
        "gpu-2",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"a": "1"}}}),
    )
    .unwrap();
    d.compact();
    let mut stream = nodes
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event")
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message
                    .starts_with(&format!("too old resource version: {old} (")),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        d.requests()
            .iter()
            .any(|r| r.verb == "watch" && r.status == 200),
        "a watch too old is still HTTP 200"
    );

    // kube-runtime's watcher of one node: other nodes' writes move the store on, its own
    // resourceVersion stays behind; compacted and cut, it resumes too old, gets the 410,
    // re-lists, and goes on.
    let one: Api<Node> = Api::all(d.client().await);
    let cfg = watcher::Config::default()
        .fields("metadata.name=gpu-1")
        .disable_bookmarks();
    let (mut rx, _task) = watch_all(one, cfg);
    expect(&mut rx, "the first list", |s| {
        matches!(s, Seen::Event(watcher::Event::InitDone))
    })
    .await;
    d.wait_for("the watcher's watch", WAIT, |v| {
        v.open_watches("nodes") == 1
    })
    .await;
    for i in 0..3 {
        d.patch::<Node>(
            "",
            "gpu-2",
            PatchType::Merge,
            &json!({"metadata": {"labels": {"a": i.to_string()}}}),
        )
        .unwrap();
    }
    d.compact();
    d.cut_watches();
    expect(
        &mut rx,
        "the watcher's 410",
        |s| matches!(s, Seen::Error(e) if e.contains("too old resource version")),
    )
    .await;
    expect(&mut rx, "the re-list", |s| {
        matches!(s, Seen::Event(watcher::Event::InitDone))
    })
    .await;
    d.patch::<Node>(
        "",
        "gpu-1",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"after": "relist"}}}),
    )
    .unwrap();
    expect(&mut rx, "gpu-1's change after the re-list", |s| {
        applied(s, "gpu-1").is_some_and(|n| label(n, "after") == Some("relist"))
    })
    .await;
    let log = d.requests();
    let lists: Vec<&RequestRecord> = log.iter().filter(|r| r.verb == "list").collect();
    assert_eq!(lists.len(), 2, "{log:?}");
    assert!(
        lists.iter().all(|r| r.name == "gpu-1"),
        "a list by metadata.name is about that name: {lists:?}"
    );
}

#[tokio::test]
async fn a_cut_watch_is_resumed_by_the_watcher_without_a_relist() {
    let d = KubeDouble::start().await;
    d.create(&node("gpu-1", &[])).unwrap();
    let (mut rx, _task) = watch_all(
        Api::<Node>::all(d.client().await),
        watcher::Config::default(),
    );
    expect(&mut rx, "the first list", |s| {
        matches!(s, Seen::Event(watcher::Event::InitDone))
    })
    .await;
    d.wait_for("the watcher's watch", WAIT, |v| {
        v.open_watches("nodes") == 1
    })
    .await;
    d.cut_watches();
    d.wait_for("the cut watch to close", WAIT, |v| {
        v.open_watches("nodes") == 0 || count(v.requests(), "watch", "nodes") >= 2
    })
    .await;
    d.patch::<Node>(
        "",
        "gpu-1",
        PatchType::Merge,
        &json!({"spec": {"unschedulable": true}}),
    )
    .unwrap();
    expect(&mut rx, "the change after the cut", |s| {
        applied(s, "gpu-1").is_some_and(|n| n.spec.as_ref().unwrap().unschedulable == Some(true))
    })
    .await;
    let log = d.requests();
    assert_eq!(count(&log, "list", "nodes"), 1, "{log:?}");
    assert!(count(&log, "watch", "nodes") >= 2, "{log:?}");
}

#[tokio::test]
async fn patches_merge_strategic_and_json_with_the_real_list_rules() {
    let d = KubeDouble::start().await;
    let mut n = node("gpu-1", &[("keep", "1"), ("drop", "1")]);
    n.spec.as_mut().unwrap().taints = Some(vec![
        serde_json::from_value(json!({"key": "a", "effect": "NoSchedule"})).unwrap(),
        serde_json::from_value(json!({"key": "b", "effect": "NoSchedule"})).unwrap(),
    ]);
    n.status.as_mut().unwrap().conditions = Some(vec![
        serde_json::from_value(json!({"type": "Ready", "status": "True"})).unwrap(),
        serde_json::from_value(json!({"type": "GpuXidError", "status": "False"})).unwrap(),
    ]);
    d.create(&n).unwrap();
    let nodes: Api<Node> = Api::all(d.client().await);
    let pp = PatchParams::default();

    // Merge patch: maps merge, null deletes, lists are replaced.
    let m = nodes
        .patch(
            "gpu-1",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"drop": null, "new": "1"}}})),
        )
        .await
        .unwrap();
    let labels = m.metadata.labels.unwrap();
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["keep", "new"]);

    // Strategic merge: NodeSpec.taints has no merge key in the Kubernetes types, so the list
    // is replaced whole, as a real API server does.
    let s = nodes
        .patch(
            "gpu-1",
            &pp,
            &Patch::Strategic(json!({"spec": {"taints": [{"key": "c", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    let keys: Vec<String> = s
        .spec
        .unwrap()
        .taints
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(keys, ["c"]);

    // status.conditions merge by type; `$patch: delete` removes one. Through /status only: a
    // main-resource patch leaves the status alone.
    let ignored = nodes
        .patch(
            "gpu-1",
            &pp,
            &Patch::Strategic(
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        ignored
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()[0]
            .status,
        "True"
    );
    let st = nodes
        .patch_status(
            "gpu-1",
            &pp,
            &Patch::Strategic(json!({"status": {"conditions": [
                {"type": "GpuXidError", "status": "True", "reason": "XID79"},
                {"type": "Ready", "$patch": "delete"}
            ]}})),
        )
        .await
        .unwrap();
    let conds: Vec<(String, String)> = st
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert_eq!(conds, [("GpuXidError".to_string(), "True".to_string())]);
    // A status patch leaves the spec alone.
    let st = nodes
        .patch_status(
            "gpu-1",
            &pp,
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    assert_eq!(st.spec.unwrap().unschedulable, None);

    // JSON patch, and a failed `test` as 422.
    let j = nodes
        .patch(
            "gpu-1",
            &pp,
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/spec/unschedulable", "value": true}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(j.spec.unwrap().unschedulable, Some(true));
    let e = status_of(
        nodes
            .patch(
                "gpu-1",
                &pp,
                &Patch::Json::<()>(
                    serde_json::from_value(
                        json!([{"op": "test", "path": "/spec/unschedulable", "value": false}]),
                    )
                    .unwrap(),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));

    // Pods: containers merge by name; other spec changes are refused as immutable.
    let pods: Api<Pod> = Api::namespaced(d.client().await, "default");
    d.create(&pod("default", "p", "gpu-1", &[], 8083)).unwrap();
    let p = pods
        .patch(
            "p",
            &pp,
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "agent", "image": "gfi:2"}]}}),
            ),
        )
        .await
        .unwrap();
    let c = &p.spec.unwrap().containers;
    assert_eq!(
        (
            c.len(),
            c[0].image.as_deref(),
            c[0].ports.as_ref().unwrap()[0].container_port
        ),
        (1, Some("gfi:2"), 8083)
    );
    let e = status_of(
        pods.patch(
            "p",
            &pp,
            &Patch::Merge(json!({"spec": {"nodeName": "gpu-2"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("pod updates may not change fields"),
        "{}",
        e.message
    );

    // Custom resources take no strategic merge patch; server-side apply is not modelled.
    let reboots: Api<RebootNode> = Api::all(d.client().await);
    d.create(&RebootNode::new("maintenance-gpu-1-1", "gpu-1"))
        .unwrap();
    let e = status_of(
        reboots
            .patch(
                "maintenance-gpu-1-1",
                &pp,
                &Patch::Strategic(json!({"spec": {"force": true}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
    let r = reboots
        .patch(
            "maintenance-gpu-1-1",
            &pp,
            &Patch::Merge(json!({"spec": {"force": true}})),
        )
        .await
        .unwrap();
    assert_eq!((r.spec.force, r.metadata.generation), (Some(true), Some(2)));
    let e = status_of(
        nodes
            .patch(
                "gpu-1",
                &PatchParams::apply("t"),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Node"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 415);
}

#[tokio::test]
async fn field_and_label_selectors_filter_lists_and_watches() {
    let d = KubeDouble::start().await;
    d.ensure_namespace("fault-injection-system");
    for (name, node_name, app) in [
        ("a1", "gpu-1", "agent"),
        ("a2", "gpu-2", "agent"),
        ("w1", "gpu-1", "worker"),
    ] {
        d.create(&pod(
            "fault-injection-system",
            name,
            node_name,
            &[("app", app), ("tier", "x")],
            8083,
        ))
        .unwrap();
    }
    let pods: Api<Pod> = Api::all(d.client().await);
    let names = |l: kube::core::ObjectList<Pod>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect()
    };
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName=gpu-1"))
                .await
                .unwrap()
        ),
        ["a1", "w1"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName=gpu-1,metadata.name!=a1"))
                .await
                .unwrap()
        ),
        ["w1"]
    );
    assert_eq!(
        names(
            pods.list(
                &ListParams::default()
                    .fields("status.phase=Pending")
                    .labels("app=agent")
            )
            .await
            .unwrap()
        ),
        ["a1", "a2"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app in (worker,other),tier,!gone"))
                .await
                .unwrap()
        ),
        ["w1"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app notin (agent)"))
                .await
                .unwrap()
        ),
        ["w1"]
    );
    let e = status_of(
        pods.list(&ListParams::default().fields("spec.color=red"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "field label not supported: spec.color")
    );

    // A watcher by label: an object relabelled out of the selector is DELETED to it.
    let ns: Api<Pod> = Api::namespaced(d.client().await, "fault-injection-system");
    let (tx, mut rx) = unbounded_channel();
    let _task = tokio::spawn(async move {
        let mut s = watcher(ns, watcher::Config::default().labels("app=agent"))
            .default_backoff()
            .boxed();
        while let Some(Ok(e)) = s.next().await {
            let _ = tx.send(e);
        }
    });
    expect(&mut rx, "the initial list", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    d.wait_for("the watch", WAIT, |v| v.open_watches("pods") == 1)
        .await;
    d.patch::<Pod>(
        "fault-injection-system",
        "a2",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"app": "retired"}}}),
    )
    .unwrap();
    expect(
        &mut rx,
        "a2 leaving the selector",
        |e| matches!(e, watcher::Event::Delete(p) if p.metadata.name.as_deref() == Some("a2")),
    )
    .await;
    d.patch::<Pod>(
        "fault-injection-system",
        "w1",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"app": "agent"}}}),
    )
    .unwrap();
    expect(
        &mut rx,
        "w1 entering the selector",
        |e| matches!(e, watcher::Event::Apply(p) if p.metadata.name.as_deref() == Some("w1")),
    )
    .await;
}

#[tokio::test]
async fn pod_status_is_set_through_the_status_subresource_and_bound_pods_terminate() {
    let d = KubeDouble::start().await;
    let pods: Api<Pod> = Api::namespaced(d.client().await, "default");
    pods.create(
        &PostParams::default(),
        &pod("default", "agent", "gpu-1", &[], 8083),
    )
    .await
    .unwrap();
    let ready = json!({"status": {"phase": "Running", "podIP": "127.0.0.1",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let ignored = pods
        .patch("agent", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    assert_eq!(ignored.status.unwrap().phase.as_deref(), Some("Pending"));
    let p = pods
        .patch_status("agent", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    let st = p.status.unwrap();
    assert_eq!(
        (st.phase.as_deref(), st.pod_ip.as_deref()),
        (Some("Running"), Some("127.0.0.1"))
    );
    assert_eq!(st.conditions.unwrap()[0].type_, "Ready");
    assert_eq!(
        st.qos_class.as_deref(),
        Some("BestEffort"),
        "the status patch merged into the server's"
    );

    // No kubelet: a bound pod deleted with a grace period stays, terminating.
    let gone = pods
        .delete("agent", &DeleteParams::default())
        .await
        .unwrap();
    let left = gone.left().expect("the pod, still there");
    assert!(left.metadata.deletion_timestamp.is_some());
    assert!(pods.get_opt("agent").await.unwrap().is_some());
    pods.delete("agent", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("agent").await.unwrap().is_none());
}

/// A small HTTP server that answers with what it received.
async fn echo_server() -> SocketAddr {
    let app = axum::Router::new().fallback(|req: axum::extract::Request| async move {
        use axum::response::IntoResponse;
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        if parts.uri.path() == "/v1/gpus/9" {
            return (StatusCode::NOT_FOUND, axum::Json(json!({"detail": "unknown GPU 9"}))).into_response();
        }
        let headers: BTreeMap<String, String> = parts.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
        axum::Json(json!({"method": parts.method.as_str(), "path": parts.uri.path(), "query": parts.uri.query(),
            "headers": headers, "body": String::from_utf8_lossy(&body)})).into_response()
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

#[tokio::test]
async fn pods_proxy_forwards_to_the_pod_and_drops_credentials() {
    let d = KubeDouble::start().await;
    d.ensure_namespace("fault-injection-system");
    let agent = echo_server().await;
    let ns = "fault-injection-system";
    d.create(&pod(ns, "agent-x", "gpu-1", &[], agent.port()))
        .unwrap();
    d.patch_status::<Pod>(
        ns,
        "agent-x",
        PatchType::Merge,
        &json!({"status": {"podIP": "127.0.0.1"}}),
    )
    .unwrap();
    let client = no_retry_client(&d).await;
    let path = format!(
        "/api/v1/namespaces/{ns}/pods/agent-x:{}/proxy/v1/inject?dry=1&x=a%20b",
        agent.port()
    );
    let headers = [
        ("content-type", "application/json"),
        ("x-gfi-agent-token", "agent-secret"),
        ("x-remote-user", "mallory"),
        ("x-remote-group", "system:masters"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
    ];
    let (code, _, body) = raw(&client, "POST", &path, &headers, br#"{"xid":79}"#).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (
            seen["method"].as_str(),
            seen["path"].as_str(),
            seen["query"].as_str()
        ),
        (Some("POST"), Some("/v1/inject"), Some("dry=1&x=a%20b"))
    );
    assert_eq!(seen["body"], r#"{"xid":79}"#);
    let h = &seen["headers"];
    assert_eq!(h["x-gfi-agent-token"], "agent-secret");
    assert_eq!(h["content-type"], "application/json");
    for dropped in [
        "authorization",
        "proxy-authorization",
        "x-remote-user",
        "x-remote-group",
    ] {
        assert!(h.get(dropped).is_none(), "{dropped} reached the pod: {h}");
    }

    // Without a port: the first container port; with the http: scheme prefix: the same.
    for target in [
        "agent-x".to_string(),
        format!("http:agent-x:{}", agent.port()),
    ] {
        let (code, _, body) = raw(
            &client,
            "GET",
            &format!("/api/v1/namespaces/{ns}/pods/{target}/proxy/healthz"),
            &[],
            b"",
        )
        .await;
        assert_eq!(code, 200, "{target}: {}", String::from_utf8_lossy(&body));
    }
    // The pod's own errors come back as they are: a `detail` body, not a Status.
    let (code, _, body) = raw(
        &client,
        "GET",
        &format!(
            "/api/v1/namespaces/{ns}/pods/agent-x:{}/proxy/v1/gpus/9",
            agent.port()
        ),
        &[],
        b"",
    )
    .await;
    assert_eq!(
        (
            code,
            serde_json::from_slice::<Value>(&body).unwrap()["detail"].as_str()
        ),
        (404, Some("unknown GPU 9"))
    );

    // Nothing listening: 503 with the API server's words; no pod IP: 400.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, body) = raw(
        &client,
        "GET",
        &format!("/api/v1/namespaces/{ns}/pods/agent-x:{closed}/proxy/"),
        &[],
        b"",
    )
    .await;
    let st: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, st["kind"].as_str(), st["reason"].as_str()),
        (503, Some("Status"), Some("ServiceUnavailable"))
    );
    assert_eq!(
        st["message"],
        format!(
            "error trying to reach service: dial tcp 127.0.0.1:{closed}: connect: connection refused"
        )
    );
    d.create(&pod(ns, "pending", "gpu-2", &[], 8083)).unwrap();
    let (code, _, body) = raw(
        &client,
        "GET",
        &format!("/api/v1/namespaces/{ns}/pods/pending:8083/proxy/"),
        &[],
        b"",
    )
    .await;
    let st: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, st["reason"].as_str(), st["message"].as_str()),
        (400, Some("BadRequest"), Some("address not allowed"))
    );
    let (code, _, _) = raw(
        &client,
        "GET",
        &format!("/api/v1/namespaces/{ns}/pods/nobody:8083/proxy/"),
        &[],
        b"",
    )
    .await;
    assert_eq!(code, 404);

    let log = d.requests();
    let proxied: Vec<&RequestRecord> = log.iter().filter(|r| r.subresource == "proxy").collect();
    assert_eq!(
        (
            proxied[0].verb.as_str(),
            proxied[0].name.clone(),
            proxied[0].namespace.as_str()
        ),
        ("create", format!("agent-x:{}", agent.port()), ns)
    );
    assert_eq!(proxied[1].verb, "get");
}

#[tokio::test]
async fn a_request_without_the_right_token_is_401() {
    let d = KubeDouble::start().await;
    let kc = kube::config::Kubeconfig::from_yaml(
        &d.kubeconfig("c").replace(kube_double::TOKEN, "wrong-token"),
    )
    .unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(kube::Client::try_from(config).unwrap());
    let e = status_of(nodes.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
    // No token at all, over a plain connection.
    let url = format!("{}/api/v1/nodes", d.url());
    let plain = kube::Client::try_from(kube::Config::new(d.url().parse().unwrap())).unwrap();
    let (code, _, body) = raw(&plain, "GET", "/api/v1/nodes", &[], b"").await;
    assert_eq!(
        (
            code,
            serde_json::from_slice::<Value>(&body).unwrap()["kind"].as_str()
        ),
        (401, Some("Status")),
        "{url}"
    );
    assert_eq!(
        d.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 401]
    );
}

#[tokio::test]
async fn a_forbidden_call_is_403_in_the_authorizers_words() {
    let d = KubeDouble::start().await;
    d.ensure_namespace("fault-injection-system");
    d.forbid(
        Matcher::default()
            .verb("create")
            .resource("pods")
            .subresource("proxy")
            .namespace("fault-injection-system"),
    );
    d.forbid(Matcher::default().verb("list").resource("rebootnodes"));
    let client = no_retry_client(&d).await;
    let (code, _, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/fault-injection-system/pods/x:8083/proxy/v1/inject",
        &[],
        b"{}",
    )
    .await;
    let st: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, st["reason"].as_str()), (403, Some("Forbidden")));
    assert_eq!(
        st["message"],
        "pods \"x:8083\" is forbidden: User \"kube-double-user\" cannot create resource \"pods/proxy\" in API group \"\" in the namespace \"fault-injection-system\""
    );
    let reboots: Api<RebootNode> = Api::all(client.clone());
    let e = status_of(reboots.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        e.message,
        "rebootnodes.janitor.dgxc.nvidia.com is forbidden: User \"kube-double-user\" cannot list resource \"rebootnodes\" in API group \"janitor.dgxc.nvidia.com\" at the cluster scope"
    );
    // Other calls go through.
    let pods: Api<Pod> = Api::namespaced(client, "fault-injection-system");
    pods.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn in_rbac_mode_only_what_the_rules_allow_is_answered() {
    let d = KubeDouble::start().await;
    let role: ClusterRole = serde_yaml::from_str(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: gfi-operator}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [circuit-breaker]
  verbs: [get]
- apiGroups: [janitor.dgxc.nvidia.com]
  resources: ["*"]
  verbs: ["*"]
"#,
    )
    .unwrap();
    d.set_rbac(Some(role.rules.unwrap()));
    d.create(&node("gpu-1", &[])).unwrap();
    let client = no_retry_client(&d).await;
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.get("gpu-1").await.unwrap();
    nodes.list(&ListParams::default()).await.unwrap();
    let e = status_of(
        nodes
            .patch(
                "gpu-1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": true}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert!(
        e.message.contains("cannot patch resource \"nodes\""),
        "{}",
        e.message
    );
    let e = status_of(
        nodes
            .patch_status("gpu-1", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.contains("cannot patch resource \"nodes/status\""),
        "{}",
        e.message
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "nvsentinel");
    assert_eq!(
        status_of(maps.get("circuit-breaker").await.unwrap_err()).code,
        404,
        "allowed by name; it does not exist"
    );
    assert_eq!(status_of(maps.get("other").await.unwrap_err()).code, 403);
    let reboots: Api<RebootNode> = Api::all(client);
    reboots
        .create(&PostParams::default(), &RebootNode::new("r", "gpu-1"))
        .await
        .unwrap();
    d.set_rbac(None);
    nodes
        .patch(
            "gpu-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn injected_500_and_429_answer_the_next_matching_requests() {
    let d = KubeDouble::start().await;
    d.create(&node("gpu-1", &[])).unwrap();
    d.fail_next(
        1,
        Matcher::default().verb("get").resource("nodes"),
        ApiError::internal("etcdserver: request timed out"),
    );
    let nodes: Api<Node> = Api::all(d.client().await);
    let e = status_of(nodes.get("gpu-1").await.unwrap_err());
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out"
        )
    );
    nodes.get("gpu-1").await.unwrap();

    // kube's client retries 429 (honouring Retry-After) by default: two refusals, then the answer.
    d.clear_requests();
    d.fail_next(
        2,
        Matcher::default().resource("nodes").name("gpu-1"),
        ApiError::too_many_requests(0),
    );
    nodes.get("gpu-1").await.unwrap();
    assert_eq!(
        d.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 429, 200]
    );
    d.fail_next(
        1,
        Matcher::default().verb("list"),
        ApiError::too_many_requests(7),
    );
    let (code, headers, body) =
        raw(&no_retry_client(&d).await, "GET", "/api/v1/nodes", &[], b"").await;
    assert_eq!(
        (
            code,
            headers.get("retry-after").map(|v| v.to_str().unwrap())
        ),
        (429, Some("7"))
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["details"]["retryAfterSeconds"],
        7
    );
}

#[tokio::test]
async fn the_request_log_records_kubernetes_verbs_and_attributes() {
    let d = KubeDouble::start().await;
    d.ensure_namespace("nvsentinel");
    let client = d.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let created = nodes
        .create(&PostParams::default(), &node("gpu-1", &[]))
        .await
        .unwrap();
    nodes.get("gpu-1").await.unwrap();
    nodes
        .list(&ListParams::default().labels("nvidia.com/gpu.present=true"))
        .await
        .unwrap();
    nodes
        .replace("gpu-1", &PostParams::default(), &created)
        .await
        .unwrap();
    nodes
        .patch(
            "gpu-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    nodes
        .patch_status(
            "gpu-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {}})),
        )
        .await
        .unwrap();
    let mut w = nodes
        .watch(&WatchParams::default().fields("metadata.name=gpu-1"), "0")
        .await
        .unwrap()
        .boxed();
    tokio::time::timeout(WAIT, w.next())
        .await
        .expect("the synthetic ADDED")
        .unwrap()
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "nvsentinel");
    let _ = cms.get("circuit-breaker").await.unwrap_err();
    nodes
        .delete("gpu-1", &DeleteParams::default())
        .await
        .unwrap();
    let seen: Vec<(String, String, String, String, String, u16)> = d
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.verb,
                r.resource,
                r.subresource,
                r.namespace,
                r.name,
                r.status,
            )
        })
        .collect();
    let s = |v: &str, r: &str, sub: &str, ns: &str, n: &str, c: u16| {
        (
            v.to_string(),
            r.to_string(),
            sub.to_string(),
            ns.to_string(),
            n.to_string(),
            c,
        )
    };
    assert_eq!(
        seen,
        [
            s("create", "nodes", "", "", "", 201),
            s("get", "nodes", "", "", "gpu-1", 200),
            s("list", "nodes", "", "", "", 200),
            s("update", "nodes", "", "", "gpu-1", 200),
            s("patch", "nodes", "", "", "gpu-1", 200),
            s("patch", "nodes", "status", "", "gpu-1", 200),
            s("watch", "nodes", "", "", "gpu-1", 200),
            s(
                "get",
                "configmaps",
                "",
                "nvsentinel",
                "circuit-breaker",
                404
            ),
            s("delete", "nodes", "", "", "gpu-1", 200),
        ]
    );
    assert!(d.requests().iter().all(|r| r.group.is_empty()));
}

#[tokio::test]
async fn wait_for_wakes_on_changes_and_names_what_it_waited_for() {
    let d = KubeDouble::start().await;
    let waiting = d.try_wait_for("gpu-1 cordoned", WAIT, |v| {
        v.get::<Node>("", "gpu-1")
            .is_some_and(|n| n.spec.and_then(|s| s.unschedulable) == Some(true))
    });
    let writer = async {
        tokio::task::yield_now().await;
        d.create(&node("gpu-1", &[])).unwrap();
        d.patch::<Node>(
            "",
            "gpu-1",
            PatchType::Merge,
            &json!({"spec": {"unschedulable": true}}),
        )
        .unwrap();
    };
    let (r, ()) = tokio::join!(waiting, writer);
    r.unwrap();
    let e = d
        .try_wait_for("a node that never comes", Duration::from_millis(50), |v| {
            v.get::<Node>("", "gpu-9").is_some()
        })
        .await
        .unwrap_err();
    assert!(e.contains("a node that never comes"), "{e}");
}

#[tokio::test]
async fn rebootnodes_list_watch_and_take_status_through_a_written_kubeconfig() {
    let d = KubeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    d.write_kubeconfig(&path, "double");
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let opts = kube::config::KubeConfigOptions {
        context: Some("double".into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let reboots: Api<RebootNode> = Api::all(client);
    let (tx, mut rx) = unbounded_channel();
    let api = reboots.clone();
    let _task = tokio::spawn(async move {
        let mut s = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(Ok(e)) = s.next().await {
            let _ = tx.send(e);
        }
    });
    expect(&mut rx, "the initial list", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    d.wait_for("the watch", WAIT, |v| v.open_watches("rebootnodes") == 1)
        .await;
    let mut r = RebootNode::new("maintenance-gpu-1-abc", "gpu-1");
    r.status = Some(Default::default());
    let created = d.create(&r).unwrap();
    assert_eq!(
        (created.status, created.metadata.generation),
        (None, Some(1)),
        "status is the janitor's to set"
    );
    expect(
        &mut rx,
        "the RebootNode",
        |e| matches!(e, watcher::Event::Apply(r) if r.spec.node_name == "gpu-1"),
    )
    .await;
    let done = json!({"status": {"startTime": "2026-12-02T10:00:00Z", "conditions": [
        {"type": "SignalSent", "status": "True", "reason": "Succeeded", "message": "", "lastTransitionTime": "2026-12-02T10:00:01Z"},
        {"type": "NodeReady", "status": "True", "reason": "Succeeded", "message": "Node reached ready state post-reboot", "lastTransitionTime": "2026-12-02T10:03:00Z"}]}});
    reboots
        .patch_status(
            "maintenance-gpu-1-abc",
            &PatchParams::default(),
            &Patch::Merge(&done),
        )
        .await
        .unwrap();
    let seen = expect(&mut rx, "the RebootNode's conditions", |e| matches!(e, watcher::Event::Apply(r) if r.status.as_ref().is_some_and(|s| s.conditions.len() == 2))).await;
    let watcher::Event::Apply(seen) = seen else {
        unreachable!()
    };
    assert_eq!(
        seen.metadata.generation,
        Some(1),
        "a status write does not bump the generation"
    );
    assert_eq!(
        reboots
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let missing_node: Value = json!({"apiVersion": "janitor.dgxc.nvidia.com/v1alpha1", "kind": "RebootNode", "metadata": {"name": "x"}, "spec": {}});
    let (code, _, body) = raw(
        &no_retry_client(&d).await,
        "POST",
        "/apis/janitor.dgxc.nvidia.com/v1alpha1/rebootnodes",
        &[("content-type", "application/json")],
        missing_node.to_string().as_bytes(),
    )
    .await;
    assert_eq!(code, 422, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn events_list_by_involved_object_and_live_where_the_api_server_wants_them() {
    let d = KubeDouble::start().await;
    d.ensure_namespace("nvsentinel");
    let ev = |ns: &str, name: &str, node: &str, extra: Value| -> Event {
        let mut v = json!({"metadata": {"name": name, "namespace": ns},
            "involvedObject": {"kind": "Node", "name": node, "apiVersion": "v1"},
            "reason": "XidInjected", "type": "Warning", "message": "XID 79 on GPU 0"});
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    };
    let client = no_retry_client(&d).await;
    let default: Api<Event> = Api::namespaced(client.clone(), "default");
    default
        .create(
            &PostParams::default(),
            &ev("default", "gpu-1.a", "gpu-1", json!({})),
        )
        .await
        .unwrap();
    default
        .create(
            &PostParams::default(),
            &ev("default", "gpu-2.a", "gpu-2", json!({})),
        )
        .await
        .unwrap();
    // An old-style Event about a Node anywhere but `default` is invalid.
    let elsewhere: Api<Event> = Api::namespaced(client.clone(), "nvsentinel");
    let e = status_of(
        elsewhere
            .create(
                &PostParams::default(),
                &ev("nvsentinel", "gpu-1.b", "gpu-1", json!({})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains(
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
        ),
        "{}",
        e.message
    );
    // A new-style one (eventTime) needs its reporting fields.
    let e = status_of(
        default
            .create(
                &PostParams::default(),
                &ev(
                    "default",
                    "gpu-1.c",
                    "gpu-1",
                    json!({"eventTime": "2026-12-02T10:00:00.000000Z"}),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.contains("reportingComponent: Required value"),
        "{}",
        e.message
    );
    default
        .create(
            &PostParams::default(),
            &ev(
                "default",
                "gpu-1.c",
                "gpu-1",
                json!({"eventTime": "2026-12-02T10:00:00.000000Z",
        "reportingComponent": "gfi", "reportingInstance": "gfi-1", "action": "Inject"}),
            ),
        )
        .await
        .unwrap();
    let all: Api<Event> = Api::all(client);
    let mine = all
        .list(&ListParams::default().fields("involvedObject.kind=Node,involvedObject.name=gpu-1"))
        .await
        .unwrap();
    let names: Vec<String> = mine
        .items
        .into_iter()
        .map(|e| e.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["gpu-1.a", "gpu-1.c"]);
}

#[tokio::test]
async fn a_watch_with_send_initial_events_ends_its_initial_state_with_a_bookmark() {
    let d = KubeDouble::start().await;
    d.create(&node("gpu-1", &[])).unwrap();
    let (mut rx, _task) = watch_all(
        Api::<Node>::all(d.client().await),
        watcher::Config::default().streaming_lists(),
    );
    expect(&mut rx, "gpu-1 in the initial events", |s| {
        applied(s, "gpu-1").is_some()
    })
    .await;
    expect(&mut rx, "the initial events' end", |s| {
        matches!(s, Seen::Event(watcher::Event::InitDone))
    })
    .await;
    d.create(&node("gpu-2", &[])).unwrap();
    expect(&mut rx, "gpu-2", |s| applied(s, "gpu-2").is_some()).await;
    assert_eq!(
        count(&d.requests(), "list", "nodes"),
        0,
        "streaming lists do not list"
    );
}
