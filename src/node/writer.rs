//! The kmsg writer: one dedicated thread that owns every write to the host's kernel log.
//!
//! Two write paths. (a) `Namespace`: the thread leaves the process's shared filesystem context
//! (`unshare(CLONE_FS)`, which `setns` into a mount namespace requires of a thread) and enters
//! the mount namespace of a host process (`--host-pid 1` under `hostPID` is the host's init),
//! so `/dev/kmsg` there is the host's device. Only that thread changes namespace; the async
//! runtime's threads never do. (b) `Device`: a path in our own namespace (`/host/dev/kmsg`).
//!
//! Every record: open the target anew without `O_CREAT` (the kernel rate-limits per open
//! file; a missing device must never become a regular file), check it is the kmsg character
//! device 1:11 (a regular file or FIFO only with the explicit test switch), one `write()`, then
//! read the record back from the same namespace to learn its sequence number. Never a shell.
//!
//! The thread serialises writes, so a read-back positioned just before a write sees that
//! write's record; it also keeps slow syscalls off the async server.

use super::readback::{self, Expected, ReadSource};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::{major, minor};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The kmsg device's numbers (`mem` major 1, minor 11).
pub(crate) const KMSG_MAJOR: u64 = 1;
pub(crate) const KMSG_MINOR: u64 = 11;

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteTarget {
    /// `path` opened inside the mount namespace of process `pid`.
    Namespace { pid: u32, path: PathBuf },
    /// `path` opened in this process's mount namespace.
    Device { path: PathBuf },
}

impl WriteTarget {
    pub(crate) fn path(&self) -> &Path {
        match self {
            WriteTarget::Namespace { path, .. } | WriteTarget::Device { path } => path,
        }
    }

    /// For responses and logs: `/dev/kmsg in the mount namespace of pid 1`.
    pub(crate) fn describe(&self) -> String {
        match self {
            WriteTarget::Namespace { pid, path } => {
                format!("{} in the mount namespace of pid {pid}", path.display())
            }
            WriteTarget::Device { path } => path.display().to_string(),
        }
    }
}

/// The target `gfi agent` and the `local` backend choose: `host_pid` means `kmsg_path`
/// (default `/dev/kmsg`) inside that process's mount namespace; otherwise `kmsg_path`, else the
/// host's `/dev` mounted at `/host/dev`, else our own `/dev/kmsg` (the kernel log is not
/// namespaced, so any kmsg device reaches the same log).
pub(crate) fn choose_target(host_pid: Option<u32>, kmsg_path: Option<&Path>) -> WriteTarget {
    match (host_pid, kmsg_path) {
        (Some(pid), path) => WriteTarget::Namespace {
            pid,
            path: path.map(Path::to_path_buf).unwrap_or("/dev/kmsg".into()),
        },
        (None, Some(path)) => WriteTarget::Device {
            path: path.to_path_buf(),
        },
        (None, None) if Path::new("/host/dev/kmsg").exists() => WriteTarget::Device {
            path: "/host/dev/kmsg".into(),
        },
        (None, None) => WriteTarget::Device {
            path: "/dev/kmsg".into(),
        },
    }
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub target: WriteTarget,
    /// Test switch: accept a regular file or FIFO where the kmsg device should be.
    pub allow_non_chardev: bool,
    /// Test switch: read records back from this path (in the same namespace) instead of the
    /// target: a device, or a regular file that something copies the target's records into.
    pub read_path: Option<PathBuf>,
    /// How long a read-back from a regular file waits for the record to appear (a file is
    /// filled asynchronously; the kernel device is synchronous and never waits).
    pub file_readback_timeout: Duration,
    /// Jobs waiting for the thread; beyond this a job is refused as busy. The channel's
    /// buffer is allocated and touched in full at start: size it to what can be in flight.
    pub queue: usize,
}

impl WriterConfig {
    pub fn new(target: WriteTarget) -> Self {
        WriterConfig {
            target,
            allow_non_chardev: false,
            read_path: None,
            file_readback_timeout: Duration::from_secs(2),
            queue: 64,
        }
    }
}

/// What the target turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    KmsgDevice,
    RegularFile,
    Fifo,
}

/// Proof that a record landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Landed {
    /// The kernel's sequence number (byte offset for a file stand-in); `None` when no
    /// read-back was possible (a FIFO without a read path).
    pub seq: Option<u64>,
    /// Microseconds since boot of the kernel record.
    pub usec: Option<u64>,
    pub target: TargetKind,
    /// How the landing was proven, for humans.
    pub readback: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("not permitted to write {path}: {reason}")]
    NotPermitted { path: String, reason: String },
    #[error("refusing to write {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error(
        "the kernel accepted the write to {path} but the record is not in the kernel log: it was dropped ({detail})"
    )]
    Dropped { path: String, detail: String },
    #[error("{op} {path} failed: {reason}")]
    Io {
        op: &'static str,
        path: String,
        reason: String,
    },
    #[error("the kmsg writer has {0} records queued; retry shortly")]
    Busy(usize),
    #[error("the kmsg writer thread is gone: {0}")]
    WriterGone(String),
}

impl WriteError {
    /// 503 for conditions of the node (permissions, busy writer), 500 otherwise.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            WriteError::NotPermitted { .. } | WriteError::Busy(_) | WriteError::WriterGone(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot start the kmsg writer for {target}: {reason}")]
pub struct StartError {
    pub target: String,
    pub reason: String,
}

enum Job {
    Write {
        record: Vec<u8>,
        reply: oneshot::Sender<Result<Landed, WriteError>>,
    },
    OpenReader {
        reply: oneshot::Sender<Result<ReadSource, WriteError>>,
    },
    Check {
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct KmsgWriter {
    tx: SyncSender<Job>,
    queue: usize,
    describe: Arc<str>,
}

impl std::fmt::Debug for KmsgWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsgWriter")
            .field("target", &self.describe)
            .finish()
    }
}

impl KmsgWriter {
    /// Starts the thread and, for the namespace path, waits until it has entered the
    /// namespace, so a wrong pid or missing privilege fails at start, not at first injection.
    pub fn start(config: WriterConfig) -> Result<KmsgWriter, StartError> {
        let describe: Arc<str> = config.target.describe().into();
        let (tx, rx) = sync_channel::<Job>(config.queue);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let queue = config.queue;
        let target = describe.to_string();
        std::thread::Builder::new()
            .name("kmsg-writer".into())
            .spawn(move || {
                let entered = match &config.target {
                    WriteTarget::Namespace { pid, .. } => enter_mount_namespace(*pid),
                    WriteTarget::Device { .. } => Ok(()),
                };
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                yield_to_the_server();
                if ok {
                    Worker::new(config).run(rx);
                }
            })
            .map_err(|e| StartError {
                target: target.clone(),
                reason: e.to_string(),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(KmsgWriter {
                tx,
                queue,
                describe,
            }),
            Ok(Err(reason)) => Err(StartError { target, reason }),
            Err(_) => Err(StartError {
                target,
                reason: "the writer thread died while starting".into(),
            }),
        }
    }

    /// `/dev/kmsg in the mount namespace of pid 1`, or the device path.
    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }

    fn submit(&self, job: Job) -> Result<(), WriteError> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => WriteError::Busy(self.queue),
            TrySendError::Disconnected(_) => {
                WriteError::WriterGone("it stopped; restart the agent".into())
            }
        })
    }

    /// Writes one record (it must end with `\n`) and proves it landed.
    pub async fn write(&self, record: Vec<u8>) -> Result<Landed, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Write { record, reply })?;
        rx.await
            .map_err(|_| WriteError::WriterGone("it stopped during the write".into()))?
    }

    /// Opens a reader of the kernel log in the writer's namespace.
    pub async fn open_reader(&self) -> Result<ReadSource, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::OpenReader { reply })?;
        rx.await
            .map_err(|_| WriteError::WriterGone("it stopped while opening a reader".into()))?
    }

    /// Checks, without writing, that the target exists, is the right kind and is writable.
    pub(crate) async fn check(&self) -> Result<String, String> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Check { reply })
            .map_err(|e| e.to_string())?;
        rx.await
            .map_err(|_| "the kmsg writer thread stopped".to_string())?
    }
}

/// Lowers the calling thread's scheduling priority (nice 10). The writer and fault store threads
/// do the heavy lifting of an injection; on a busy node the HTTP workers that answer `/health`
/// must win the CPU over them, or liveness probes time out under injection load.
pub(crate) fn yield_to_the_server() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority on our own thread id; failure only leaves the priority as it was.
    unsafe {
        nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, 10);
    }
}

/// Moves the calling thread into the mount namespace of `pid`.
fn enter_mount_namespace(pid: u32) -> Result<(), String> {
    // A thread that shares its filesystem context (root, cwd) with the rest of the process
    // may not change mount namespace: setns fails with EINVAL.
    unshare(CloneFlags::CLONE_FS).map_err(|e| format!("unshare(CLONE_FS): {e}"))?;
    let ns_path = format!("/proc/{pid}/ns/mnt");
    let ns = File::open(&ns_path).map_err(|e| {
        format!("open {ns_path}: {e} (is pid {pid} alive and visible? in a pod that needs hostPID)")
    })?;
    setns(&ns, CloneFlags::CLONE_NEWNS).map_err(|e| {
        format!("setns({ns_path}): {e} (entering another mount namespace needs CAP_SYS_ADMIN)")
    })?;
    Ok(())
}

/// Kernel log state for an error message: `printk_devkmsg=off` drops every write.
fn devkmsg_hint() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/printk_devkmsg") {
        Ok(v) => format!("kernel.printk_devkmsg={}", v.trim()),
        Err(_) => "kernel.printk_devkmsg unknown".into(),
    }
}

/// Checks the open target's type. Returns its kind or why it must not be written.
pub(crate) fn classify(
    meta: &std::fs::Metadata,
    allow_non_chardev: bool,
) -> Result<TargetKind, String> {
    let ft = meta.file_type();
    if ft.is_char_device() {
        let (maj, min) = (major(meta.rdev()), minor(meta.rdev()));
        if (maj, min) == (KMSG_MAJOR, KMSG_MINOR) {
            return Ok(TargetKind::KmsgDevice);
        }
        return Err(format!(
            "it is the character device {maj}:{min}, not the kernel log (kmsg is 1:11)"
        ));
    }
    let kind = if ft.is_file() {
        TargetKind::RegularFile
    } else if ft.is_fifo() {
        TargetKind::Fifo
    } else {
        return Err("it is neither the kmsg device nor a regular file or FIFO".into());
    };
    if allow_non_chardev {
        Ok(kind)
    } else {
        Err(format!(
            "it is a {}, not the kmsg character device 1:11 (a missing /dev/kmsg turned into a file by a shell redirect looks like this; mount the host's /dev or use --host-pid; tests pass --allow-non-chardev)",
            if kind == TargetKind::Fifo {
                "FIFO"
            } else {
                "regular file"
            }
        ))
    }
}

struct Worker {
    config: WriterConfig,
    /// A kmsg reader kept open between writes (re-positioned at the end before each write).
    device_reader: Option<File>,
}

enum Plan {
    Device,
    SameFile,
    OtherFile { file: File, start: u64 },
    Unavailable(String),
}

impl Worker {
    fn new(config: WriterConfig) -> Self {
        Worker {
            config,
            device_reader: None,
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            match job {
                Job::Write { record, reply } => {
                    let _ = reply.send(self.write(&record));
                }
                Job::OpenReader { reply } => {
                    let _ = reply.send(self.open_reader());
                }
                Job::Check { reply } => {
                    let _ = reply.send(self.check());
                }
            }
        }
    }

    fn path_str(&self) -> String {
        self.config.target.path().display().to_string()
    }

    fn read_path(&self) -> &Path {
        self.config
            .read_path
            .as_deref()
            .unwrap_or(self.config.target.path())
    }

    fn io_err(&self, op: &'static str, path: &Path, e: io::Error) -> WriteError {
        let reason = e.to_string();
        let path = path.display().to_string();
        match e.raw_os_error() {
            Some(nix::libc::EPERM) | Some(nix::libc::EACCES) => WriteError::NotPermitted {
                path,
                reason: format!(
                    "{reason} (the agent must run as root; {} turns writes off)",
                    devkmsg_hint()
                ),
            },
            Some(nix::libc::ENXIO) => WriteError::Io {
                op,
                path,
                reason: format!("{reason} (a FIFO target has no reader)"),
            },
            Some(nix::libc::EINVAL) if op == "write" => WriteError::Io {
                op,
                path,
                reason: format!("{reason} (the kernel refuses records over 992 bytes)"),
            },
            _ => WriteError::Io { op, path, reason },
        }
    }

    fn open_target(&self) -> Result<(File, TargetKind), WriteError> {
        let path = self.config.target.path();
        // No O_CREAT (std adds it only with create(true)); O_NONBLOCK so a FIFO without a
        // reader fails instead of hanging the writer; O_APPEND so a file stand-in is appended.
        let file = OpenOptions::new()
            .append(true)
            .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => WriteError::Refused {
                    path: self.path_str(),
                    reason: "it does not exist (the agent never creates it)".into(),
                },
                _ => self.io_err("open", path, e),
            })?;
        let meta = file.metadata().map_err(|e| self.io_err("fstat", path, e))?;
        let kind = classify(&meta, self.config.allow_non_chardev).map_err(|reason| {
            WriteError::Refused {
                path: self.path_str(),
                reason,
            }
        })?;
        Ok((file, kind))
    }

    fn open_device_reader(&mut self, path: &Path) -> Result<&mut File, WriteError> {
        if self.device_reader.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
                .open(path)
                .map_err(|e| self.io_err("open for read-back", path, e))?;
            self.device_reader = Some(f);
        }
        Ok(self.device_reader.as_mut().expect("just set"))
    }

    fn plan(&mut self, kind: TargetKind) -> Result<Plan, WriteError> {
        let Some(read_path) = self.config.read_path.clone() else {
            return Ok(match kind {
                TargetKind::KmsgDevice => Plan::Device,
                TargetKind::RegularFile => Plan::SameFile,
                TargetKind::Fifo => Plan::Unavailable(
                    "unavailable: the target is a FIFO and no read path was given".into(),
                ),
            });
        };
        let meta = std::fs::metadata(&read_path)
            .map_err(|e| self.io_err("stat read path", &read_path, e))?;
        match classify(&meta, true) {
            Ok(TargetKind::KmsgDevice) => Ok(Plan::Device),
            Ok(TargetKind::RegularFile) => {
                let file =
                    File::open(&read_path).map_err(|e| self.io_err("open", &read_path, e))?;
                let start = meta.len();
                Ok(Plan::OtherFile { file, start })
            }
            Ok(TargetKind::Fifo) | Err(_) => Err(WriteError::Refused {
                path: read_path.display().to_string(),
                reason: "a read path must be the kmsg device or a regular file".into(),
            }),
        }
    }

    fn write(&mut self, record: &[u8]) -> Result<Landed, WriteError> {
        let (mut file, kind) = self.open_target()?;
        let plan = self.plan(kind)?;
        if let Plan::Device = plan {
            let read_path = self.read_path().to_path_buf();
            let reader = self.open_device_reader(&read_path)?;
            if let Err(e) = readback::seek_device_end(reader) {
                self.device_reader = None;
                return Err(self.io_err("seek read-back", &read_path, e));
            }
        }
        let path = self.config.target.path().to_path_buf();
        // One write() is one record: never write_all, which could split it.
        let n = file
            .write(record)
            .map_err(|e| self.io_err("write", &path, e))?;
        if n != record.len() {
            return Err(WriteError::Io {
                op: "write",
                path: self.path_str(),
                reason: format!("short write: {n} of {} bytes", record.len()),
            });
        }
        let dropped = |detail: String| WriteError::Dropped {
            path: path.display().to_string(),
            detail,
        };
        match plan {
            Plan::Device => {
                let want = Expected::of_write(record).ok_or_else(|| WriteError::Refused {
                    path: self.path_str(),
                    reason: "record is too long for the kernel".into(),
                })?;
                let read_path = self.read_path().to_path_buf();
                let reader = self.open_device_reader(&read_path)?;
                match readback::find_on_device(reader, &want) {
                    Ok(Some(r)) => Ok(Landed {
                        seq: Some(r.seq),
                        usec: Some(r.usec),
                        target: kind,
                        readback: format!("kernel record seq {}", r.seq),
                    }),
                    Ok(None) => Err(dropped(format!(
                        "rate limited, or {}; reading back {} found nothing",
                        devkmsg_hint(),
                        read_path.display()
                    ))),
                    Err(e) => {
                        self.device_reader = None;
                        Err(self.io_err("read back", &read_path, e))
                    }
                }
            }
            Plan::SameFile => {
                let end = file
                    .metadata()
                    .map(|m| m.len())
                    .map_err(|e| self.io_err("fstat", &path, e))?;
                // With O_APPEND our bytes end where the file position now is.
                let pos = nix::unistd::lseek(&file, 0, nix::unistd::Whence::SeekCur)
                    .map(|p| p as u64)
                    .unwrap_or(end);
                let offset = pos.saturating_sub(n as u64);
                // The target was opened write-only; read it through a second descriptor.
                let reader =
                    File::open(&path).map_err(|e| self.io_err("open for read-back", &path, e))?;
                match readback::verify_file_at(&reader, offset, record) {
                    Ok(true) => Ok(Landed {
                        seq: Some(offset),
                        usec: None,
                        target: kind,
                        readback: format!("file offset {offset}"),
                    }),
                    Ok(false) => Err(dropped(format!(
                        "the file does not hold the record at offset {offset}"
                    ))),
                    Err(e) => Err(self.io_err("read back", &path, e)),
                }
            }
            Plan::OtherFile { file: rf, start } => {
                let deadline = Instant::now() + self.config.file_readback_timeout;
                let read_path = self.read_path().to_path_buf();
                loop {
                    match readback::find_in_raw_file(&rf, start, record) {
                        Ok(Some(offset)) => {
                            return Ok(Landed {
                                seq: Some(offset),
                                usec: None,
                                target: kind,
                                readback: format!("offset {offset} of {}", read_path.display()),
                            });
                        }
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Ok(None) => {
                            return Err(dropped(format!(
                                "{} did not show it within {:?}",
                                read_path.display(),
                                self.config.file_readback_timeout
                            )));
                        }
                        Err(e) => return Err(self.io_err("read back", &read_path, e)),
                    }
                }
            }
            Plan::Unavailable(why) => Ok(Landed {
                seq: None,
                usec: None,
                target: kind,
                readback: why,
            }),
        }
    }

    fn open_reader(&mut self) -> Result<ReadSource, WriteError> {
        let path = self.read_path().to_path_buf();
        let meta = std::fs::metadata(&path).map_err(|e| self.io_err("stat", &path, e))?;
        match classify(
            &meta,
            self.config.allow_non_chardev || self.config.read_path.is_some(),
        ) {
            Ok(TargetKind::KmsgDevice) => OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
                .open(&path)
                .map(ReadSource::Device)
                .map_err(|e| self.io_err("open", &path, e)),
            Ok(TargetKind::RegularFile) => File::open(&path)
                .map(ReadSource::RawFile)
                .map_err(|e| self.io_err("open", &path, e)),
            Ok(TargetKind::Fifo) => Err(WriteError::Refused {
                path: path.display().to_string(),
                reason: "a FIFO cannot be read back without consuming it".into(),
            }),
            Err(reason) => Err(WriteError::Refused {
                path: path.display().to_string(),
                reason,
            }),
        }
    }

    fn check(&self) -> Result<String, String> {
        let path = self.config.target.path();
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let kind = classify(&meta, self.config.allow_non_chardev)
            .map_err(|r| format!("{}: {r}", path.display()))?;
        nix::unistd::access(path, nix::unistd::AccessFlags::W_OK)
            .map_err(|e| format!("{}: not writable: {e}", path.display()))?;
        Ok(match kind {
            TargetKind::KmsgDevice => format!("{} is the kmsg device 1:11", path.display()),
            TargetKind::RegularFile => format!("{} is a regular file (test mode)", path.display()),
            TargetKind::Fifo => format!("{} is a FIFO (test mode)", path.display()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_writer(dir: &Path, allow: bool) -> (KmsgWriter, PathBuf) {
        let path = dir.join("kmsg");
        std::fs::write(&path, b"").unwrap();
        let mut cfg = WriterConfig::new(WriteTarget::Device { path: path.clone() });
        cfg.allow_non_chardev = allow;
        (KmsgWriter::start(cfg).unwrap(), path)
    }

    #[tokio::test]
    async fn file_stand_in_gets_one_record_per_write_with_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path) = file_writer(dir.path(), true);
        let a = w.write(b"<6>first\n".to_vec()).await.unwrap();
        let b = w.write(b"<6>second\n".to_vec()).await.unwrap();
        assert_eq!((a.seq, b.seq), (Some(0), Some(9)));
        assert_eq!(a.target, TargetKind::RegularFile);
        assert_eq!(std::fs::read(&path).unwrap(), b"<6>first\n<6>second\n");
        assert!(w.check().await.unwrap().contains("regular file"));
    }

    #[tokio::test]
    async fn regular_file_is_refused_without_the_test_switch() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path) = file_writer(dir.path(), false);
        let err = w.write(b"<6>x\n".to_vec()).await.unwrap_err();
        assert!(matches!(err, WriteError::Refused { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("not the kmsg character device 1:11"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert!(w.check().await.is_err());
    }

    #[tokio::test]
    async fn missing_target_is_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        let mut cfg = WriterConfig::new(WriteTarget::Device { path: path.clone() });
        cfg.allow_non_chardev = true;
        let w = KmsgWriter::start(cfg).unwrap();
        let err = w.write(b"<6>x\n".to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn other_char_devices_are_refused() {
        let mut cfg = WriterConfig::new(WriteTarget::Device {
            path: "/dev/null".into(),
        });
        cfg.allow_non_chardev = true;
        let w = KmsgWriter::start(cfg).unwrap();
        let err = w.write(b"<6>x\n".to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("1:3, not the kernel log"), "{err}");
    }

    #[tokio::test]
    async fn read_back_from_another_file_reports_a_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        let log = dir.path().join("log");
        std::fs::write(&path, b"").unwrap();
        std::fs::write(&log, b"").unwrap();
        let mut cfg = WriterConfig::new(WriteTarget::Device { path });
        cfg.allow_non_chardev = true;
        cfg.read_path = Some(log);
        cfg.file_readback_timeout = Duration::from_millis(20);
        let w = KmsgWriter::start(cfg).unwrap();
        let err = w.write(b"<6>never copied\n".to_vec()).await.unwrap_err();
        assert!(matches!(err, WriteError::Dropped { .. }), "{err}");
        assert!(err.to_string().contains("dropped"), "{err}");
    }

    #[test]
    fn a_dead_pid_fails_at_start() {
        let err = KmsgWriter::start(WriterConfig::new(WriteTarget::Namespace {
            pid: u32::MAX - 1,
            path: "/dev/kmsg".into(),
        }))
        .unwrap_err();
        assert!(err.reason.contains("/proc/4294967294/ns/mnt"), "{err}");
    }
}
