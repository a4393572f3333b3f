//! A Kubernetes API server double for the test suite: a real HTTP server on 127.0.0.1 that
//! speaks the protocol kube-rs and kube-runtime's `watcher` speak, so code tested against it
//! also works against a real kube-apiserver (v1.36) with no kubelet and no scheduler.
//!
//! **What it models.** Nodes, Pods, core/v1 Events, Secrets, ConfigMaps, Namespaces and
//! NVSentinel's `RebootNode` (`janitor.dgxc.nvidia.com/v1alpha1`, cluster-scoped), stored as
//! JSON, decoded through their k8s-openapi types on every write (a wrong shape is 400, a
//! missing required field or a failed rule 422, unknown fields are dropped as the server
//! prunes them), with `uid`, `creationTimestamp`, `generation` (Pods, RebootNodes) and one
//! global, increasing `resourceVersion` set by the server; optimistic concurrency (409 on a
//! stale `resourceVersion`); writes that change nothing write nothing. `/status`
//! subresources (main-resource writes keep the status, status writes change only the
//! status; a Node's status write may also change its labels and annotations, as the
//! kubelet's does). LIST with label and field selectors (unsupported field labels are 400),
//! `limit` + `continue` pages served from one consistent snapshot, `resourceVersion` /
//! `resourceVersionMatch` (a version ahead of the store waits 3 s, then 504; `Exact`
//! rebuilds the past from history). WATCH with `resourceVersion` (none or "0": synthetic
//! ADDED events first), `allowWatchBookmarks` (periodic, and on demand), `timeoutSeconds`,
//! `sendInitialEvents` (kube-runtime's default `ListWatch` mode does not use it; its
//! `streaming_lists` mode does), selectors applied per event (an object that stops matching
//! is DELETED to that watcher); a version older than the retained history is an ERROR event
//! with a 410 `Expired` Status on an HTTP 200 stream, an expired `continue` a 410 answer.
//! JSON merge, JSON and strategic merge patches (see [`patch`]). Pods bound to a node only
//! start terminating when deleted (no kubelet finishes them) unless the grace period is 0; a
//! deleted Namespace stays `Terminating` and refuses new content; finalizers hold objects.
//! Event validation: an Event about a Node must live in `default` (or `kube-system` when it
//! has an `eventTime`), and a new-style Event needs its reporting fields. The pods/proxy
//! subresource forwards over real TCP, dropping `Authorization`, `Proxy-Authorization` and
//! `X-Remote-*` (see [`proxy`]); `https:` targets are reached over TLS without verifying
//! the pod's certificate, as kube-apiserver does. Bearer-token authentication (401), 403s with the
//! authorizer's wording, an RBAC mode fed `PolicyRule`s, injected 500s and 429s, and a log
//! of every request with its Kubernetes verb.
//!
//! **What it does not.** No discovery (`/api`, `/apis`): kube-rs's typed `Api` and a
//! dynamic `Api` with a known `ApiResource` never call it; `/version` is served. No
//! server-side apply (415), no `deletecollection`, no `dryRun` (400, so nothing is written by
//! mistake), no `managedFields`, no
//! `Warning` headers for pruned fields, no events.k8s.io/v1 (kube-runtime's `Recorder`
//! writes there), no admission beyond the namespace lifecycle (no ServiceAccount admission:
//! a bare API server without the controller-manager refuses Pods whose `default`
//! ServiceAccount does not exist), no pods/eviction or binding, no HTML link rewriting in
//! proxied answers.
//!
//! **Where it differs on purpose.** The pods/proxy reaches loopback pod IPs (the real one
//! only reaches global unicast addresses and answers 400 "address not allowed"); it opens
//! one connection per proxied request; a named proxy port is refused with 503 (it crashed
//! the real server's request). Bookmarks default to one a minute as the real server's do;
//! `set_bookmark_interval` changes that.
//!
//! **Scale.** A change reaches only the watchers of its type whose selector may see it
//! (watchers requiring one `metadata.name` or `spec.nodeName` are indexed by it), so 1,000
//! per-node watches cost nothing per unrelated change; lists scan their type's table once.
//!
//! **Worth knowing when testing through it.** kube's client retries 429, 503 and 504 by
//! default (up to 15 times, from 5 ms doubling, honouring `Retry-After`): an injected 429, a
//! proxied pod that refuses connections (503) or a list ahead of the store (504) is retried
//! unless the client's `default_retry` is off.

pub mod access;
pub mod patch;
mod proxy;
pub mod rebootnode;
pub mod resources;
pub mod selectors;
mod server;
pub mod status;
pub mod store;
mod watch;

#[allow(unused_imports)]
pub use access::{Matcher, RequestRecord};
#[allow(unused_imports)]
pub use patch::PatchType;
#[allow(unused_imports)]
pub use rebootnode::RebootNode;
#[allow(unused_imports)]
pub use status::ApiError;

use access::Injected;
use k8s_openapi::api::rbac::v1::PolicyRule;
use resources::ResourceType;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::{Store, Sub};
use tokio::sync::{broadcast, watch as tokio_watch};
use watch::Control;

/// The bearer token the double accepts, and the user it authenticates as.
pub const TOKEN: &str = "kube-double-token-0123456789";
pub const USER: &str = "kube-double-user";

#[derive(Default)]
struct Faults {
    forbid: Vec<Matcher>,
    rbac: Option<Vec<PolicyRule>>,
    injected: Vec<Injected>,
}

pub(crate) struct Shared {
    store: Mutex<Store>,
    epoch: Arc<tokio_watch::Sender<u64>>,
    control: broadcast::Sender<Control>,
    token: String,
    user: String,
    faults: Mutex<Faults>,
    log: Mutex<Vec<RequestRecord>>,
    watches: Mutex<HashMap<&'static str, usize>>,
    bookmark_interval: Mutex<Duration>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn lock_store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }
    fn lock_log(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        lock(&self.log)
    }
    fn lock_watches(&self) -> MutexGuard<'_, HashMap<&'static str, usize>> {
        lock(&self.watches)
    }
    fn bump(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }
}

/// What a [`KubeDouble::wait_for`] condition reads: the objects, the request log, the open
/// watches, all at one instant.
pub struct View<'a> {
    store: &'a Store,
    log: &'a [RequestRecord],
    watches: &'a HashMap<&'static str, usize>,
}

impl View<'_> {
    pub fn get<K: Typed>(&self, namespace: &str, name: &str) -> Option<K> {
        self.store
            .get(rt_of::<K>(), namespace, name)
            .map(|v| from_json(&v))
    }
    pub fn list<K: Typed>(&self) -> Vec<K> {
        self.store
            .table(rt_of::<K>())
            .values()
            .map(|v| from_json(v))
            .collect()
    }
    pub fn requests(&self) -> &[RequestRecord] {
        self.log
    }
    /// Open watches of a resource (`"nodes"`, `"rebootnodes"`).
    pub fn open_watches(&self, plural: &str) -> usize {
        self.watches.get(plural).copied().unwrap_or(0)
    }
}

/// A k8s-openapi resource (or [`RebootNode`]) the double serves.
pub trait Typed: k8s_openapi::Resource + Serialize + DeserializeOwned {}
impl<K: k8s_openapi::Resource + Serialize + DeserializeOwned> Typed for K {}

fn rt_of<K: k8s_openapi::Resource>() -> &'static ResourceType {
    resources::by_kind(K::GROUP, K::URL_PATH_SEGMENT).unwrap_or_else(|| {
        panic!(
            "the Kubernetes API server double does not serve {}",
            K::URL_PATH_SEGMENT
        )
    })
}

fn from_json<K: DeserializeOwned>(v: &Value) -> K {
    serde_json::from_value(v.clone()).expect("stored objects decode into their type")
}

fn key_of(v: &Value) -> (String, String) {
    let m = &v["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().unwrap_or("").to_string(),
    )
}

pub struct KubeDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::AbortHandle,
}

impl Drop for KubeDouble {
    fn drop(&mut self) {
        self.server.abort();
        let _ = self.shared.control.send(Control::Cut);
    }
}

impl KubeDouble {
    /// A double on 127.0.0.1 (a free port) holding only the built-in namespaces.
    pub async fn start() -> KubeDouble {
        KubeDouble::with_history(10_000).await
    }

    /// A double that keeps the last `changes` writes for watches to resume from.
    pub async fn with_history(changes: usize) -> KubeDouble {
        let (epoch, _) = tokio_watch::channel(0u64);
        let epoch = Arc::new(epoch);
        let (control, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(epoch.clone(), changes)),
            epoch,
            control,
            token: TOKEN.into(),
            user: USER.into(),
            faults: Mutex::default(),
            log: Mutex::default(),
            watches: Mutex::default(),
            bookmark_interval: Mutex::new(Duration::from_secs(60)),
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        })
        .abort_handle();
        KubeDouble {
            shared,
            addr,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig with one cluster (this double), one bearer-token user, and the context
    /// `context` (namespace `default`), current.
    pub fn kubeconfig(&self, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-double\n  cluster:\n    server: {}\n\
             users:\n- name: {USER}\n  user:\n    token: {TOKEN}\ncontexts:\n- name: {context}\n  context:\n    \
             cluster: kube-double\n    user: {USER}\n    namespace: default\ncurrent-context: {context}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        std::fs::write(path, self.kubeconfig(context))
            .unwrap_or_else(|e| panic!("writing a kubeconfig to {}: {e}", path.display()));
    }

    /// The client configuration `gfi` would build from this double's kubeconfig.
    pub async fn config(&self) -> kube::Config {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig("kube-double"))
            .expect("the double's kubeconfig parses");
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("the double's kubeconfig is a valid client config")
    }

    /// A `kube::Client` from [`KubeDouble::config`].
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).expect("a client from the double's kubeconfig")
    }

    // --- Objects, written as a controller would (no request is logged) ---

    pub fn create<K: Typed>(&self, obj: &K) -> Result<K, ApiError> {
        let v = serde_json::to_value(obj).expect("k8s-openapi objects serialise");
        let (ns, _) = key_of(&v);
        let ns = (!ns.is_empty()).then_some(ns);
        let rt = rt_of::<K>();
        let ns = if rt.namespaced {
            Some(ns.unwrap_or_else(|| "default".into()))
        } else {
            None
        };
        self.shared
            .lock_store()
            .create(rt, ns.as_deref(), v)
            .map(|o| from_json(&o))
    }

    pub fn get<K: Typed>(&self, namespace: &str, name: &str) -> Option<K> {
        self.shared
            .lock_store()
            .get(rt_of::<K>(), namespace, name)
            .map(|v| from_json(&v))
    }

    pub fn list<K: Typed>(&self) -> Vec<K> {
        let store = self.shared.lock_store();
        store
            .table(rt_of::<K>())
            .values()
            .map(|v| from_json(v))
            .collect()
    }

    fn replace_as<K: Typed>(&self, obj: &K, sub: Sub) -> Result<K, ApiError> {
        let v = serde_json::to_value(obj).expect("k8s-openapi objects serialise");
        let (ns, name) = key_of(&v);
        self.shared
            .lock_store()
            .replace(rt_of::<K>(), &ns, &name, v, sub)
            .map(|o| from_json(&o))
    }

    pub fn replace<K: Typed>(&self, obj: &K) -> Result<K, ApiError> {
        self.replace_as(obj, Sub::Main)
    }

    pub fn replace_status<K: Typed>(&self, obj: &K) -> Result<K, ApiError> {
        self.replace_as(obj, Sub::Status)
    }

    pub fn patch<K: Typed>(
        &self,
        namespace: &str,
        name: &str,
        kind: PatchType,
        patch: &Value,
    ) -> Result<K, ApiError> {
        let body = patch.to_string();
        self.shared
            .lock_store()
            .patch(
                rt_of::<K>(),
                namespace,
                name,
                kind,
                body.as_bytes(),
                Sub::Main,
            )
            .map(|o| from_json(&o))
    }

    /// A patch of the `/status` subresource: how a test without a kubelet sets a Pod's IP and
    /// readiness, or a Node's conditions.
    pub fn patch_status<K: Typed>(
        &self,
        namespace: &str,
        name: &str,
        kind: PatchType,
        patch: &Value,
    ) -> Result<K, ApiError> {
        let body = patch.to_string();
        self.shared
            .lock_store()
            .patch(
                rt_of::<K>(),
                namespace,
                name,
                kind,
                body.as_bytes(),
                Sub::Status,
            )
            .map(|o| from_json(&o))
    }

    /// Deletes with the default grace period; `Some`: the object is still there, terminating.
    pub fn delete<K: Typed>(&self, namespace: &str, name: &str) -> Result<Option<K>, ApiError> {
        self.delete_with(namespace, name, None)
    }

    /// Deletes with grace period 0: a bound Pod goes at once, as when its kubelet confirms.
    pub fn delete_now<K: Typed>(&self, namespace: &str, name: &str) -> Result<Option<K>, ApiError> {
        self.delete_with(namespace, name, Some(0))
    }

    fn delete_with<K: Typed>(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Option<K>, ApiError> {
        let rt = rt_of::<K>();
        let mut store = self.shared.lock_store();
        store.delete(rt, namespace, name, grace)?;
        Ok(store.get(rt, namespace, name).map(|v| from_json(&v)))
    }

    /// Creates the namespace unless it exists.
    pub fn ensure_namespace(&self, name: &str) {
        let rt = resources::namespaces();
        let mut store = self.shared.lock_store();
        if store.get(rt, "", name).is_none() {
            store
                .create(rt, None, serde_json::json!({"metadata": {"name": name}}))
                .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.lock_store().rv()
    }

    // --- Faults ---

    /// Breaks every open watch mid-stream (the connection ends without the chunked body's end).
    pub fn cut_watches(&self) {
        let _ = self.shared.control.send(Control::Cut);
    }

    /// Sends a BOOKMARK now on every open watch that asked for bookmarks.
    pub fn send_bookmarks(&self) {
        let _ = self.shared.control.send(Control::Bookmark);
    }

    /// The period of bookmarks on watches opened from now on.
    pub fn set_bookmark_interval(&self, every: Duration) {
        *lock(&self.shared.bookmark_interval) = every;
    }

    /// Forgets the history: every resourceVersion older than the current one is 410 from now.
    pub fn compact(&self) {
        self.shared.lock_store().compact();
        self.shared.bump();
    }

    /// Answers 403, in the authorizer's words, to every request `m` matches.
    pub fn forbid(&self, m: Matcher) {
        lock(&self.shared.faults).forbid.push(m);
    }

    pub fn clear_forbidden(&self) {
        lock(&self.shared.faults).forbid.clear();
    }

    /// RBAC mode: the user may do what these rules allow and nothing else (`None`: anything).
    pub fn set_rbac(&self, rules: Option<Vec<PolicyRule>>) {
        lock(&self.shared.faults).rbac = rules;
    }

    /// Answers `error` (e.g. [`ApiError::internal`], [`ApiError::too_many_requests`]) to the
    /// next `n` requests `m` matches, after authentication and before authorization.
    pub fn fail_next(&self, n: usize, m: Matcher, error: ApiError) {
        lock(&self.shared.faults).injected.push(Injected {
            matcher: m,
            remaining: n,
            error,
        });
    }

    // --- What happened ---

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock_log().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock_log().clear();
    }

    pub fn open_watches(&self, plural: &str) -> usize {
        self.shared.lock_watches().get(plural).copied().unwrap_or(0)
    }

    /// Waits until `cond` holds, re-reading on every change to the objects, the request log
    /// or the open watches; panics naming `what` at the deadline. `cond` runs with the
    /// double's state locked: it reads through its [`View`], never through `self`.
    pub async fn wait_for(&self, what: &str, deadline: Duration, cond: impl Fn(&View) -> bool) {
        if let Err(e) = self.try_wait_for(what, deadline, cond).await {
            panic!("{e}");
        }
    }

    pub async fn try_wait_for(
        &self,
        what: &str,
        deadline: Duration,
        cond: impl Fn(&View) -> bool,
    ) -> Result<(), String> {
        let mut epoch = self.shared.epoch.subscribe();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            epoch.borrow_and_update();
            let holds = {
                let store = self.shared.lock_store();
                let log = self.shared.lock_log();
                let watches = self.shared.lock_watches();
                cond(&View {
                    store: &store,
                    log: &log,
                    watches: &watches,
                })
            };
            if holds {
                return Ok(());
            }
            if tokio::time::timeout_at(until, epoch.changed())
                .await
                .is_err()
            {
                return Err(format!("waited {deadline:?} for {what}; it did not happen"));
            }
        }
    }
}
