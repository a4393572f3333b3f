//! The `local` backend: run on the node itself (for example inside the agent's pod).
//!
//! GPUs and injections act on this host through [`LocalAgent`] (the agent's own discovery and
//! writer code); node state (cordon, labels, conditions, pods, waits) comes from the Kubernetes
//! API through the in-cluster config, and where there is none, those calls say so plainly.

use super::BackendResult;
use super::cluster::ClusterBackend;
pub use super::cluster::KubeAccess;
use super::node_agent::{LocalAgent, LocalAgentOptions};
use std::path::PathBuf;

/// The local backend: a cluster backend whose node agent is this host.
pub type LocalBackend = ClusterBackend<LocalAgent>;

/// Options for [`LocalBackend::local`].
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

fn node_name(explicit: Option<&str>) -> BackendResult<String> {
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
            super::BackendError::invalid(
                "node name",
                "none given, NODE_NAME is not set and the host name cannot be read",
            )
        })
}

impl ClusterBackend<LocalAgent> {
    /// Starts the kmsg writer (entering the host's mount namespace when `host_pid` is set)
    /// and prepares, without connecting, the Kubernetes client.
    pub fn local(opts: LocalOptions) -> BackendResult<LocalBackend> {
        let node = node_name(opts.node_name.as_deref())?;
        let agent_opts = LocalAgentOptions {
            proc_root: opts.proc_root,
            host_pid: opts.host_pid,
            kmsg_path: opts.kmsg_path,
            allow_non_chardev: opts.allow_non_chardev,
        };
        ClusterBackend::new("local", opts.kube, &opts.nvsentinel_namespace, |_| {
            LocalAgent::start(&node, &agent_opts)
        })
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        self.agent().node_name()
    }

    /// `/dev/kmsg in the mount namespace of pid 1`, or the device path.
    pub fn write_path(&self) -> &str {
        self.agent().write_path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cluster::nvsentinel_namespace;
    use crate::backend::{
        Backend, BackendError, GpuSelector, InjectRequest, NodePredicate, TailOptions,
    };
    use crate::node::readback;
    use crate::node::testkit;
    use crate::xid::LineOptions;
    use std::time::Duration;

    fn backend(dir: &std::path::Path) -> LocalBackend {
        testkit::write_gpu_tree(&dir.join("proc"), &testkit::fake_gpus(2)).unwrap();
        std::fs::write(dir.join("kmsg"), b"").unwrap();
        LocalBackend::local(LocalOptions {
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
                preflight: true,
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
                preflight: true,
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
        assert_eq!(nvsentinel_namespace("").unwrap(), "nvsentinel");
        assert_eq!(nvsentinel_namespace(" ops-nvs ").unwrap(), "ops-nvs");
        for bad in ["NVSentinel", "nv_sentinel", "-x", "x-", &"a".repeat(64)] {
            let err = nvsentinel_namespace(bad).unwrap_err().to_string();
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
        let b = LocalBackend::local(LocalOptions {
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
