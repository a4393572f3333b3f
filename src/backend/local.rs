//! The `local` backend: run on the node itself (for example inside the agent's pod).
//!
//! GPUs and injections act on this host through the agent's own discovery and writer code, so
//! a local injection is byte-for-byte what the agent would write. Node state (cordon, labels,
//! conditions, pods, waits) comes from the Kubernetes API through the in-cluster config; where
//! there is none, those calls say so plainly.

use super::kube_nodes::KubeNodes;
use super::{
    Backend, BackendError, BackendResult, BreakerStatus, FaultRecord, GpuInfo, InjectRequest,
    KubeEventInfo, LabelSelector, NodeInfo, NodePredicate, Observer, PodInfo, TailOptions,
    WaitOutcome,
};
use crate::kmsg::KmsgRecord;
use crate::node::discovery::resolve_proc_root;
use crate::node::inject::{GpuCache, InjectError, InjectSpec, Injector};
use crate::node::readback::{self, Filter};
use crate::node::writer::{KmsgWriter, WriterConfig};
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;

const NAME: &str = "local";

/// How the backend reaches the Kubernetes API.
#[derive(Clone, Default)]
pub enum KubeAccess {
    /// The in-cluster config when `KUBERNETES_SERVICE_HOST` is set, else none.
    #[default]
    Auto,
    /// Never: node-state calls are unsupported.
    Disabled,
    /// This client (tests, or a caller that built its own).
    Client(kube::Client),
}

/// Options for [`LocalBackend::new`].
#[derive(Clone, Default)]
pub struct LocalOptions {
    /// This node's name; default `NODE_NAME`, else the host name.
    pub node_name: Option<String>,
    /// The host's /proc; default `/host/proc`, falling back to `/proc`.
    pub proc_root: Option<PathBuf>,
    /// Write inside the mount namespace of this process.
    pub host_pid: Option<u32>,
    /// The kmsg device (inside the namespace with `host_pid`); default as `gfi agent`.
    pub kmsg_path: Option<PathBuf>,
    /// Tests only: accept a regular file or FIFO as the kmsg target.
    pub allow_non_chardev: bool,
    /// Where NVSentinel runs: its circuit breaker's ConfigMap is read there. Empty: the
    /// chart's `nvsentinel`.
    pub nvsentinel_namespace: String,
    pub kube: KubeAccess,
}

enum Kube {
    Unavailable(String),
    Config(Box<kube::Config>, OnceCell<KubeNodes>),
    Ready(KubeNodes),
}

pub struct LocalBackend {
    node: String,
    nvsentinel_namespace: String,
    injector: Injector,
    kube: Kube,
    observer: Mutex<Option<Observer>>,
}

/// A namespace name as Kubernetes accepts it (a DNS label), or the chart's default.
fn namespace(ns: &str) -> Result<String, BackendError> {
    let ns = ns.trim();
    if ns.is_empty() {
        return Ok("nvsentinel".into());
    }
    let label = ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if label {
        Ok(ns.to_string())
    } else {
        Err(BackendError::invalid(
            "NVSentinel namespace",
            format!(
                "{ns:?} is not a namespace name (lower-case letters, digits and '-', at most 63, e.g. nvsentinel)"
            ),
        ))
    }
}

fn node_name(explicit: Option<&str>) -> Result<String, BackendError> {
    if let Some(n) = explicit.map(str::trim).filter(|n| !n.is_empty()) {
        return Ok(n.to_string());
    }
    if let Ok(n) = std::env::var("NODE_NAME")
        && !n.trim().is_empty()
    {
        return Ok(n.trim().to_string());
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            BackendError::invalid(
                "node name",
                "none given, NODE_NAME is not set and the host name cannot be read",
            )
        })
}

impl LocalBackend {
    /// Starts the kmsg writer (entering the host's mount namespace when `host_pid` is set)
    /// and prepares, without connecting, the Kubernetes client.
    pub fn new(opts: LocalOptions) -> Result<LocalBackend, BackendError> {
        let node = node_name(opts.node_name.as_deref())?;
        let nvsentinel_namespace = namespace(&opts.nvsentinel_namespace)?;
        let target = crate::node::writer::choose_target(opts.host_pid, opts.kmsg_path.as_deref());
        let mut wc = WriterConfig::new(target);
        wc.allow_non_chardev = opts.allow_non_chardev;
        let writer = KmsgWriter::start(wc)
            .map_err(|e| BackendError::failed(Some(&node), "starting the kmsg writer", e.reason))?;
        let injector = Injector::new(
            node.clone(),
            GpuCache::new(resolve_proc_root(opts.proc_root.as_deref())),
            writer,
        );
        let kube = match opts.kube {
            KubeAccess::Client(c) => Kube::Ready(KubeNodes::new(c)),
            KubeAccess::Disabled => Kube::Unavailable("it was turned off".into()),
            KubeAccess::Auto => match std::env::var("KUBERNETES_SERVICE_HOST") {
                Ok(h) if !h.is_empty() => match kube::Config::incluster() {
                    Ok(cfg) => Kube::Config(Box::new(cfg), OnceCell::new()),
                    Err(e) => Kube::Unavailable(format!(
                        "KUBERNETES_SERVICE_HOST is set but the in-cluster config is unusable: {e}"
                    )),
                },
                _ => Kube::Unavailable(
                    "there is no in-cluster Kubernetes config (KUBERNETES_SERVICE_HOST is not set): run gfi inside a pod with a ServiceAccount, such as the agent's, or use the kube backend".into(),
                ),
            },
        };
        Ok(LocalBackend {
            node,
            nvsentinel_namespace,
            injector,
            kube,
            observer: Mutex::new(None),
        })
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// `/dev/kmsg in the mount namespace of pid 1`, or the device path.
    pub fn write_path(&self) -> &str {
        self.injector.writer().describe()
    }

    async fn kube(&self, what: &str) -> BackendResult<&KubeNodes> {
        match &self.kube {
            Kube::Ready(k) => Ok(k),
            Kube::Config(cfg, cell) => {
                cell.get_or_try_init(|| async {
                    kube::Client::try_from((**cfg).clone())
                        .map(KubeNodes::new)
                        .map_err(|e| {
                            BackendError::failed(None, "connecting to the Kubernetes API", e)
                        })
                })
                .await
            }
            Kube::Unavailable(why) => Err(BackendError::Unsupported {
                backend: NAME,
                what: what.to_string(),
                why: format!("it needs the Kubernetes API, and {why}"),
            }),
        }
    }

    fn this_node(&self, node: &str, what: &str) -> BackendResult<()> {
        if node == self.node {
            Ok(())
        } else {
            Err(BackendError::Unsupported {
                backend: NAME,
                what: format!("{what} on node {node:?}"),
                why: format!(
                    "the local backend acts only on the node it runs on ({:?}); use the kube backend for other nodes",
                    self.node
                ),
            })
        }
    }
}

fn inject_error(node: &str, e: InjectError) -> BackendError {
    match e {
        InjectError::Line(l) => BackendError::invalid("XID line", l.to_string()),
        InjectError::GpuNotFound {
            wanted, present, ..
        } => BackendError::GpuNotFound {
            node: node.to_string(),
            gpu: wanted,
            available: present,
        },
        InjectError::Discovery(d) => BackendError::failed(Some(node), "GPU discovery", d),
        InjectError::Write(w) => BackendError::failed(Some(node), "writing the XID line", w),
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn set_observer(&self, observer: Observer) {
        *self.observer.lock().expect("observer lock") = Some(observer);
    }

    async fn list_nodes(&self, selector: Option<&LabelSelector>) -> BackendResult<Vec<NodeInfo>> {
        self.kube("listing nodes").await?.list(selector).await
    }

    async fn node(&self, name: &str) -> BackendResult<NodeInfo> {
        self.kube("reading a node").await?.get(name).await
    }

    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>> {
        self.this_node(node, "listing GPUs")?;
        let d = self
            .injector
            .gpus()
            .refresh()
            .await
            .map_err(|e| BackendError::failed(Some(node), "GPU discovery", e))?;
        for w in &d.warnings {
            tracing::warn!(node, "GPU discovery: {w}");
        }
        Ok(d.gpus.clone())
    }

    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord> {
        self.this_node(&req.node, "injecting")?;
        let spec = InjectSpec {
            gpu: req.gpu.clone(),
            xid: req.xid,
            line: req.line.clone(),
            provenance: req.provenance.clone(),
        };
        let inj = self
            .injector
            .inject(&spec)
            .await
            .map_err(|e| inject_error(&req.node, e))?;
        for w in &inj.warnings {
            tracing::warn!(node = %req.node, fault_id = %req.fault_id, "{w}");
        }
        Ok(FaultRecord {
            id: req.fault_id.clone(),
            node: req.node.clone(),
            gpu: inj.gpu.index,
            pci: inj.gpu.pci,
            uuid: inj.gpu.uuid.clone(),
            xid: inj.xid,
            line: inj.line.clone(),
            time: inj.time.to_rfc3339(),
            seq: inj.landed.seq,
            write_path: inj.write_path.clone(),
        })
    }

    async fn kmsg_tail(&self, node: &str, opts: &TailOptions) -> BackendResult<Vec<KmsgRecord>> {
        self.this_node(node, "reading the kernel log")?;
        let mut source = self
            .injector
            .writer()
            .open_reader()
            .await
            .map_err(|e| BackendError::failed(Some(node), "opening the kernel log", e))?;
        let filter = Filter {
            since_seq: opts.since_seq,
            grep: opts.grep.clone(),
            xid_only: false,
        };
        let limit = opts.limit.unwrap_or(100);
        tokio::task::spawn_blocking(move || readback::tail(&mut source, &filter, limit))
            .await
            .map_err(|e| BackendError::failed(Some(node), "reading the kernel log", e))?
            .map_err(|e| BackendError::failed(Some(node), "reading the kernel log", e))
    }

    async fn wait_node(
        &self,
        node: &str,
        predicate: &NodePredicate,
        timeout: Duration,
    ) -> BackendResult<WaitOutcome> {
        let observer = self.observer.lock().expect("observer lock").clone();
        self.kube("waiting for a node")
            .await?
            .wait(node, predicate, timeout, observer.as_ref())
            .await
    }

    async fn pods(&self, node: &str) -> BackendResult<Vec<PodInfo>> {
        self.kube("listing pods").await?.pods(node).await
    }

    async fn uncordon(&self, node: &str) -> BackendResult<NodeInfo> {
        self.kube("uncordoning").await?.uncordon(node).await
    }

    async fn events(&self, node: &str) -> BackendResult<Vec<KubeEventInfo>> {
        self.kube("reading Events").await?.events(node).await
    }

    async fn circuit_breaker(&self) -> BackendResult<BreakerStatus> {
        self.kube("reading the circuit breaker")
            .await?
            .circuit_breaker(&self.nvsentinel_namespace)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::GpuSelector;
    use crate::node::testkit;
    use crate::xid::LineOptions;

    fn backend(dir: &std::path::Path) -> LocalBackend {
        testkit::write_gpu_tree(&dir.join("proc"), &testkit::fake_gpus(2)).unwrap();
        std::fs::write(dir.join("kmsg"), b"").unwrap();
        LocalBackend::new(LocalOptions {
            node_name: Some("node-a".into()),
            proc_root: Some(dir.join("proc")),
            kmsg_path: Some(dir.join("kmsg")),
            allow_non_chardev: true,
            kube: KubeAccess::Disabled,
            ..Default::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn injects_through_the_agent_write_path() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        assert_eq!(b.gpus("node-a").await.unwrap().len(), 2);
        let rec = b
            .inject_xid(&InjectRequest {
                node: "node-a".into(),
                gpu: GpuSelector::Index(1),
                xid: 79,
                line: LineOptions::default(),
                fault_id: "f1".into(),
                provenance: "gfi:run-1".into(),
            })
            .await
            .unwrap();
        assert_eq!((rec.gpu, rec.xid, rec.seq), (1, 79, Some(0)));
        assert_eq!(rec.pci.sysfs(), "0000:19:00.0");
        let written = std::fs::read_to_string(dir.path().join("kmsg")).unwrap();
        assert_eq!(written, format!("{}\n", rec.line));
        let tail = b
            .kmsg_tail("node-a", &TailOptions::default())
            .await
            .unwrap();
        assert_eq!(tail.len(), 1);
        assert!(readback::nvsentinel_match(&tail[0]).is_some());
        let err = b
            .inject_xid(&InjectRequest {
                node: "node-a".into(),
                gpu: GpuSelector::Index(7),
                xid: 79,
                line: LineOptions::default(),
                fault_id: "f2".into(),
                provenance: "gfi:run-1".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::GpuNotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn other_nodes_and_node_state_say_what_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let err = b.gpus("node-b").await.unwrap_err();
        assert!(
            err.to_string().contains("only on the node it runs on"),
            "{err}"
        );
        let err = b.node("node-a").await.unwrap_err();
        assert!(matches!(err, BackendError::Unsupported { .. }), "{err}");
        let err = b
            .wait_node("node-a", &NodePredicate::Cordoned, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Kubernetes API"), "{err}");
        let err = b.events("node-a").await.unwrap_err();
        assert!(err.to_string().contains("reading Events"), "{err}");
        let err = b.circuit_breaker().await.unwrap_err();
        assert!(
            err.to_string().contains("reading the circuit breaker"),
            "{err}"
        );
    }

    #[test]
    fn the_nvsentinel_namespace_is_checked() {
        assert_eq!(namespace("").unwrap(), "nvsentinel");
        assert_eq!(namespace(" ops-nvs ").unwrap(), "ops-nvs");
        for bad in ["NVSentinel", "nv_sentinel", "-x", "x-", &"a".repeat(64)] {
            let err = namespace(bad).unwrap_err().to_string();
            assert!(err.contains("not a namespace name"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn auto_without_a_cluster_explains_kubernetes_service_host() {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED auto_without_a_cluster: running inside a cluster"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        testkit::write_gpu_tree(&dir.path().join("proc"), &testkit::fake_gpus(1)).unwrap();
        std::fs::write(dir.path().join("kmsg"), b"").unwrap();
        let b = LocalBackend::new(LocalOptions {
            node_name: Some("n".into()),
            proc_root: Some(dir.path().join("proc")),
            kmsg_path: Some(dir.path().join("kmsg")),
            allow_non_chardev: true,
            ..Default::default()
        })
        .unwrap();
        let err = b.pods("n").await.unwrap_err().to_string();
        assert!(err.contains("KUBERNETES_SERVICE_HOST"), "{err}");
    }
}
