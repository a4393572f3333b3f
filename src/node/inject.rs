//! One injection on this host: find the GPU, build the line, write it, prove it landed.
//! Shared by the agent's HTTP API and the `local` backend, so both write exactly alike.

use super::discovery::{self, Discovery, DiscoveryError};
use super::gpu::{GpuInfo, GpuSelector};
use super::writer::{KmsgWriter, Landed, WriteError};
use crate::xid::catalog::{self, XidInfo};
use crate::xid::line::{self, LineError, LineOptions};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a scan of the GPU tree is reused. The tree changes when a driver loads or a GPU
/// falls off the bus, not per request.
pub(crate) const GPU_CACHE_TTL: Duration = Duration::from_secs(1);

type Scan = Result<Arc<Discovery>, DiscoveryError>;

/// The GPU tree, scanned at most once per [`GPU_CACHE_TTL`].
#[derive(Debug, Clone)]
pub(crate) struct GpuCache {
    proc_root: PathBuf,
    cached: Arc<RwLock<Option<(Instant, Scan)>>>,
}

impl GpuCache {
    pub(crate) fn new(proc_root: PathBuf) -> Self {
        GpuCache {
            proc_root,
            cached: Arc::new(RwLock::new(None)),
        }
    }

    pub(crate) fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// A fresh enough scan.
    pub(crate) async fn get(&self) -> Result<Arc<Discovery>, DiscoveryError> {
        if let Some((at, r)) = self.cached.read().expect("gpu cache lock").as_ref()
            && at.elapsed() < GPU_CACHE_TTL
        {
            return r.clone();
        }
        self.refresh().await
    }

    /// Scans now (on a blocking thread: procfs reads are syscalls).
    pub(crate) async fn refresh(&self) -> Result<Arc<Discovery>, DiscoveryError> {
        let root = self.proc_root.clone();
        let result = tokio::task::spawn_blocking(move || discovery::discover(&root))
            .await
            .unwrap_or_else(|e| {
                Err(DiscoveryError::Unreadable {
                    path: self.proc_root.display().to_string(),
                    reason: format!("scan task failed: {e}"),
                })
            })
            .map(Arc::new);
        *self.cached.write().expect("gpu cache lock") = Some((Instant::now(), result.clone()));
        result
    }
}

/// What to inject.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InjectSpec {
    pub(crate) gpu: GpuSelector,
    pub(crate) xid: u32,
    pub(crate) line: LineOptions,
    /// The `name=` marker when the line options give none: `gfi:<run-id>`.
    pub(crate) provenance: String,
}

/// What an injection did.
#[derive(Debug, Clone)]
pub(crate) struct Injection {
    pub(crate) gpu: GpuInfo,
    pub(crate) xid: u32,
    pub(crate) info: XidInfo,
    /// The record written, without its trailing newline.
    pub(crate) line: String,
    pub(crate) landed: Landed,
    pub(crate) time: DateTime<Utc>,
    pub(crate) write_path: String,
    pub(crate) warnings: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum InjectError {
    #[error("{0}")]
    Line(#[from] LineError),
    #[error(
        "GPU {wanted} not found on node {node}. Available Device Minors: [{minors}] (GPUs present: {present})"
    )]
    GpuNotFound {
        node: String,
        wanted: String,
        minors: String,
        present: String,
    },
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    #[error("{0}")]
    Write(#[from] WriteError),
}

/// Finds GPUs and writes lines for them on this host.
#[derive(Debug, Clone)]
pub(crate) struct Injector {
    node: String,
    gpus: GpuCache,
    writer: KmsgWriter,
}

impl Injector {
    pub(crate) fn new(node: String, gpus: GpuCache, writer: KmsgWriter) -> Self {
        Injector { node, gpus, writer }
    }

    pub(crate) fn gpus(&self) -> &GpuCache {
        &self.gpus
    }

    pub(crate) fn writer(&self) -> &KmsgWriter {
        &self.writer
    }

    /// Resolves a GPU, rescanning once before saying it does not exist (it may have just
    /// appeared).
    pub(crate) async fn resolve(&self, sel: &GpuSelector) -> Result<GpuInfo, InjectError> {
        let d = self.gpus.get().await?;
        if let Some(g) = d.gpus.iter().find(|g| sel.matches(g)) {
            return Ok(g.clone());
        }
        let d = self.gpus.refresh().await?;
        sel.find(&d.gpus)
            .cloned()
            .map_err(|miss| InjectError::GpuNotFound {
                node: self.node.clone(),
                wanted: miss.wanted,
                minors: miss.minors,
                present: miss.present,
            })
    }

    /// Checks the request and builds the record without writing anything.
    pub(crate) async fn prepare(
        &self,
        spec: &InjectSpec,
    ) -> Result<(GpuInfo, String), InjectError> {
        // Check the line first: it is the caller's mistake, cheaper to report than a scan.
        let probe = crate::xid::PciAddress::new(0, 0, 0, 0);
        line::format_line(&probe, spec.xid, &spec.line, &spec.provenance)?;
        let gpu = self.resolve(&spec.gpu).await?;
        let record = line::format_line(&gpu.pci, spec.xid, &spec.line, &spec.provenance)?;
        Ok((gpu, record))
    }

    /// Writes a prepared record.
    pub(crate) async fn write_prepared(
        &self,
        spec: &InjectSpec,
        gpu: GpuInfo,
        record: String,
    ) -> Result<Injection, InjectError> {
        let time = Utc::now();
        let landed = self.writer.write(record.clone().into_bytes()).await?;
        let info = catalog::lookup_or_generic(spec.xid);
        let mut warnings = Vec::new();
        if !info.known {
            warnings.push(format!(
                "XID {} is not in the catalogue: the line says '{}' and NVSentinel treats it as {}",
                spec.xid,
                catalog::GENERIC_TEXT,
                info.default_action()
            ));
        }
        if landed.seq.is_none() {
            warnings.push(format!(
                "the record could not be read back: {}",
                landed.readback
            ));
        }
        Ok(Injection {
            gpu,
            xid: spec.xid,
            info,
            line: record.trim_end_matches('\n').to_string(),
            landed,
            time,
            write_path: self.writer.describe().to_string(),
            warnings,
        })
    }

    /// Prepares and writes.
    pub(crate) async fn inject(&self, spec: &InjectSpec) -> Result<Injection, InjectError> {
        let (gpu, record) = self.prepare(spec).await?;
        self.write_prepared(spec, gpu, record).await
    }
}
