//! The node side of a real-cluster backend: what acts on one node's GPUs and kernel log
//! (`gpus`, `inject_xid`, `kmsg_tail`), behind one interface. [`LocalAgent`] is this host,
//! through the same discovery, writer and read-back code as `gfi agent`, so a local injection
//! is byte-for-byte what the agent would write; the `kube` backend reaches each node's agent
//! over HTTP through the same interface.

use super::{BackendError, BackendResult, FaultRecord, GpuInfo, InjectRequest, TailOptions};
use crate::kmsg::KmsgRecord;
use crate::node::discovery::resolve_proc_root;
use crate::node::inject::{GpuCache, InjectError, InjectSpec, Injector};
use crate::node::readback::{self, Filter};
use crate::node::writer::{KmsgWriter, WriterConfig};
use async_trait::async_trait;
use std::path::PathBuf;

#[async_trait]
pub trait NodeAgent: Send + Sync + 'static {
    /// The GPUs of `node`, by index.
    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>>;

    /// Writes one XID line for a GPU of the request's node and proves it landed.
    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord>;

    /// Recent kernel log records of `node`.
    async fn kmsg_tail(&self, node: &str, opts: &TailOptions) -> BackendResult<Vec<KmsgRecord>>;
}

/// Where [`LocalAgent`] writes.
#[derive(Clone, Default)]
pub struct LocalAgentOptions {
    /// The host's /proc; default `/host/proc`, falling back to `/proc`.
    pub proc_root: Option<PathBuf>,
    /// Write inside the mount namespace of this process.
    pub host_pid: Option<u32>,
    /// The kmsg device (inside the namespace with `host_pid`); default as `gfi agent`.
    pub kmsg_path: Option<PathBuf>,
    /// Tests only: accept a regular file or FIFO as the kmsg target.
    pub allow_non_chardev: bool,
}

/// This host, named `node`: its GPUs and its kernel log.
pub struct LocalAgent {
    node: String,
    injector: Injector,
}

impl LocalAgent {
    /// Starts the kmsg writer (entering the host's mount namespace when `host_pid` is set).
    pub fn start(node: &str, opts: &LocalAgentOptions) -> BackendResult<LocalAgent> {
        let target = crate::node::writer::choose_target(opts.host_pid, opts.kmsg_path.as_deref());
        let mut wc = WriterConfig::new(target);
        wc.allow_non_chardev = opts.allow_non_chardev;
        let writer = KmsgWriter::start(wc)
            .map_err(|e| BackendError::failed(Some(node), "starting the kmsg writer", e.reason))?;
        let injector = Injector::new(
            node.to_string(),
            GpuCache::new(resolve_proc_root(opts.proc_root.as_deref())),
            writer,
        );
        Ok(LocalAgent {
            node: node.to_string(),
            injector,
        })
    }

    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// `/dev/kmsg in the mount namespace of pid 1`, or the device path.
    pub fn write_path(&self) -> &str {
        self.injector.writer().describe()
    }

    fn this_node(&self, node: &str, what: &str) -> BackendResult<()> {
        if node == self.node {
            Ok(())
        } else {
            Err(BackendError::Unsupported {
                backend: "local",
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
impl NodeAgent for LocalAgent {
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
            agent_pod: None,
            warnings: Vec::new(),
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
}
