//! The fault store: every accepted injection, appended to `<state-dir>/faults.jsonl` and made
//! durable before the response goes out, so `/faults` and idempotent repeats survive restarts
//! (and the reboot the injection itself provokes).
//!
//! One thread owns the file and commits in groups: it takes every record queued while the
//! previous `fdatasync` ran and syncs them together, so durability costs one sync per batch,
//! not per request. The file is bounded: when it holds twice the retention it is rewritten
//! with the newest `retention` records (temporary file, sync, rename).
//!
//! A lock file keeps two agents from sharing one state directory.

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub(crate) const STORE_FILE: &str = "faults.jsonl";
/// Shortest time between two syncs of the store's file.
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(4);
pub(crate) const LOCK_FILE: &str = "agent.lock";

/// One accepted injection as stored. Kept as JSON text, not parsed values: a thousand
/// records must stay a small fraction of the agent's memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredFault {
    pub(crate) fault_id: String,
    /// The normalised request (JSON), compared to recognise a repeat.
    pub(crate) request: String,
    /// The response sent (JSON), replayed for a repeat.
    pub(crate) response: String,
    pub(crate) recorded_at: String,
}

impl StoredFault {
    /// Appends the record's line in the file (with its newline) to `s`.
    fn write_line(&self, s: &mut String) {
        // request and response are JSON texts already; only the strings need quoting.
        s.reserve(self.request.len() + self.response.len() + 128);
        s.push_str("{\"fault_id\":");
        s.push_str(&Value::from(self.fault_id.as_str()).to_string());
        s.push_str(",\"recorded_at\":");
        s.push_str(&Value::from(self.recorded_at.as_str()).to_string());
        s.push_str(",\"request\":");
        s.push_str(&self.request);
        s.push_str(",\"response\":");
        s.push_str(&self.response);
        s.push_str("}\n");
    }

    fn from_line(line: &str) -> Result<StoredFault, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let field = |k: &str| v.get(k).ok_or_else(|| format!("no '{k}' field"));
        Ok(StoredFault {
            fault_id: field("fault_id")?
                .as_str()
                .ok_or("fault_id is not a string")?
                .to_string(),
            recorded_at: field("recorded_at")?.as_str().unwrap_or("").to_string(),
            request: field("request")?.to_string(),
            response: field("response")?.to_string(),
        })
    }

    /// The response as a JSON value.
    pub(crate) fn response_json(&self) -> Value {
        serde_json::from_str(&self.response).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultStoreError {
    #[error("state directory {path}: {reason}")]
    StateDir { path: String, reason: String },
    #[error(
        "another gfi agent holds {path} (one agent per state directory; stop it or use another --state-dir)"
    )]
    Locked { path: String },
    #[error("journal {path}: {reason}")]
    Io { path: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct FaultStoreOptions {
    /// Records kept (and recognised as repeats).
    pub retention: usize,
    /// `fdatasync` each batch. Off only for benchmarks on throwaway state.
    pub sync: bool,
    /// Records waiting for the store's thread. The channel's buffer is allocated and touched
    /// in full at start, so it is sized to the injections that can be in flight, not more.
    pub queue: usize,
}

impl Default for FaultStoreOptions {
    fn default() -> Self {
        FaultStoreOptions {
            retention: 1000,
            sync: true,
            queue: 64,
        }
    }
}

/// What loading the store's file found.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadReport {
    pub(crate) loaded: usize,
    /// Lines that could not be read (a line cut short by a crash is expected).
    pub(crate) skipped: Vec<String>,
}

struct Index {
    by_id: HashMap<String, Arc<StoredFault>>,
    order: VecDeque<String>,
    retention: usize,
}

impl Index {
    fn insert(&mut self, f: Arc<StoredFault>) {
        if self.by_id.insert(f.fault_id.clone(), f.clone()).is_none() {
            self.order.push_back(f.fault_id.clone());
        }
        while self.order.len() > self.retention {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

type Commit = (
    Arc<StoredFault>,
    oneshot::Sender<Result<(), FaultStoreError>>,
);

/// Handle to the fault store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct FaultStore {
    path: PathBuf,
    index: Arc<Mutex<Index>>,
    /// The index's length, readable without the lock (every `/health` reports it).
    len: Arc<std::sync::atomic::AtomicUsize>,
    tx: SyncSender<Commit>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultStore")
            .field("path", &self.path)
            .finish()
    }
}

impl FaultStore {
    /// Opens (creating) the state directory, takes its lock and loads the store's file.
    pub(crate) fn open(
        state_dir: &Path,
        opts: FaultStoreOptions,
    ) -> Result<(FaultStore, LoadReport), FaultStoreError> {
        let sd = |reason: String| FaultStoreError::StateDir {
            path: state_dir.display().to_string(),
            reason,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(|e| sd(format!("cannot create it: {e} (set --state-dir)")))?;
        }
        let lock_path = state_dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| sd(format!("cannot open {}: {e}", lock_path.display())))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            FaultStoreError::Locked {
                path: state_dir.display().to_string(),
            }
        })?;
        let path = state_dir.join(STORE_FILE);
        let io = |reason: String| FaultStoreError::Io {
            path: path.display().to_string(),
            reason,
        };
        let retention = opts.retention.max(1);
        let mut index = Index {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            retention,
        };
        let mut report = LoadReport::default();
        let mut lines_in_file = 0usize;
        match File::open(&path) {
            Ok(f) => {
                for (n, line) in BufReader::new(f).lines().enumerate() {
                    let line = line.map_err(|e| io(format!("read: {e}")))?;
                    lines_in_file += 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match StoredFault::from_line(&line) {
                        Ok(f) => index.insert(Arc::new(f)),
                        Err(e) => report.skipped.push(format!("line {}: {e}", n + 1)),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("open: {e}"))),
        }
        report.loaded = index.order.len();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(format!("open for append: {e}")))?;
        let (tx, rx) = sync_channel::<Commit>(opts.queue.max(1));
        let last_error = Arc::new(Mutex::new(None));
        let committer = Committer {
            path: path.clone(),
            file,
            lines_in_file,
            retention,
            sync: opts.sync,
            _lock: lock,
            last_error: last_error.clone(),
        };
        std::thread::Builder::new()
            .name("fault-journal".into())
            .spawn(move || {
                crate::node::writer::yield_to_the_server();
                committer.run(rx)
            })
            .map_err(|e| io(format!("cannot start the journal thread: {e}")))?;
        let len = Arc::new(std::sync::atomic::AtomicUsize::new(index.order.len()));
        Ok((
            FaultStore {
                path,
                len,
                index: Arc::new(Mutex::new(index)),
                tx,
                last_error,
            },
            report,
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record durably, then makes it visible to `get` and `list`.
    pub(crate) async fn append(
        &self,
        fault: StoredFault,
    ) -> Result<Arc<StoredFault>, FaultStoreError> {
        let fault = Arc::new(fault);
        let (ack, rx) = oneshot::channel();
        let gone = || FaultStoreError::Io {
            path: self.path.display().to_string(),
            reason: "the journal thread stopped".into(),
        };
        let mut commit = (fault.clone(), ack);
        // The agent never has more appends in flight than the queue holds; any other caller
        // waits its turn here instead of blocking a runtime thread in a full channel.
        loop {
            match self.tx.try_send(commit) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    commit = back;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(gone()),
            }
        }
        let result = rx.await.map_err(|_| gone())?;
        // Visible even when the disk failed: the line is in the kernel log, and a retry must
        // be recognised as a repeat rather than write a second line.
        {
            let mut idx = self.index.lock().expect("fault store index");
            idx.insert(fault.clone());
            self.len
                .store(idx.order.len(), std::sync::atomic::Ordering::Relaxed);
        }
        result.map(|_| fault)
    }

    pub(crate) fn get(&self, fault_id: &str) -> Option<Arc<StoredFault>> {
        self.index
            .lock()
            .expect("fault store index")
            .by_id
            .get(fault_id)
            .cloned()
    }

    /// Retained records, oldest first.
    pub(crate) fn list(&self) -> Vec<Arc<StoredFault>> {
        let idx = self.index.lock().expect("fault store index");
        idx.order
            .iter()
            .filter_map(|id| idx.by_id.get(id).cloned())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last write error, cleared by the next successful commit.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("fault store error").clone()
    }
}

struct Committer {
    path: PathBuf,
    file: File,
    lines_in_file: usize,
    retention: usize,
    sync: bool,
    _lock: Flock<File>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl Committer {
    fn run(mut self, rx: Receiver<Commit>) {
        let mut last_sync: Option<std::time::Instant> = None;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            // Under load, gather for at least SYNC_INTERVAL since the last sync: fewer, larger
            // syncs cost the node less I/O and CPU, and a lone injection is not delayed.
            if self.sync
                && let Some(at) = last_sync
            {
                let wait = SYNC_INTERVAL.saturating_sub(at.elapsed());
                let deadline = std::time::Instant::now() + wait;
                while batch.len() < 1024 {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
            }
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            let mut buf = String::new();
            for (f, _) in &batch {
                f.write_line(&mut buf);
            }
            let result = self.commit(buf.as_bytes(), batch.len());
            last_sync = Some(std::time::Instant::now());
            *self.last_error.lock().expect("fault store error") = result.as_ref().err().cloned();
            for (_, ack) in batch {
                let _ = ack.send(result.clone().map_err(|reason| FaultStoreError::Io {
                    path: self.path.display().to_string(),
                    reason,
                }));
            }
        }
    }

    fn commit(&mut self, bytes: &[u8], lines: usize) -> Result<(), String> {
        self.file
            .write_all(bytes)
            .map_err(|e| format!("append: {e}"))?;
        if self.sync {
            self.file
                .sync_data()
                .map_err(|e| format!("fdatasync: {e}"))?;
        }
        self.lines_in_file += lines;
        if self.lines_in_file >= self.retention * 2 {
            self.compact().map_err(|e| format!("compaction: {e}"))?;
        }
        Ok(())
    }

    /// Rewrites the file with its newest `retention` lines. The file holds at most twice
    /// that, so reading it back is cheaper than keeping a copy in memory.
    fn compact(&mut self) -> std::io::Result<()> {
        let mut tail: VecDeque<String> = VecDeque::with_capacity(self.retention + 1);
        for line in BufReader::new(File::open(&self.path)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            tail.push_back(line);
            if tail.len() > self.retention {
                tail.pop_front();
            }
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        {
            let mut f = std::io::BufWriter::new(File::create(&tmp)?);
            for line in &tail {
                f.write_all(line.as_bytes())?;
                f.write_all(b"\n")?;
            }
            let f = f.into_inner().map_err(|e| e.into_error())?;
            if self.sync {
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, &self.path)?;
        if self.sync
            && let Some(dir) = self.path.parent()
        {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines_in_file = tail.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(id: &str) -> StoredFault {
        StoredFault {
            fault_id: id.into(),
            request: json!({"xid": 79}).to_string(),
            response: json!({"status": "injected", "fault_id": id}).to_string(),
            recorded_at: "2026-11-28T10:00:00+00:00".into(),
        }
    }

    #[tokio::test]
    async fn survives_reopen_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, rep) = FaultStore::open(dir.path(), FaultStoreOptions::default()).unwrap();
            assert_eq!(rep.loaded, 0);
            j.append(fault("a")).await.unwrap();
            j.append(fault("b")).await.unwrap();
        }
        // A crash mid-write leaves half a line.
        let path = dir.path().join(STORE_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"fault_id\":\"c\",\"recor").unwrap();
        drop(f);
        // The previous store's thread releases the lock when its channel closes.
        let (j, rep) = loop {
            match FaultStore::open(dir.path(), FaultStoreOptions::default()) {
                Err(FaultStoreError::Locked { .. }) => std::thread::yield_now(),
                other => break other.unwrap(),
            }
        };
        assert_eq!(rep.loaded, 2);
        assert_eq!(rep.skipped.len(), 1);
        assert_eq!(j.get("b").unwrap().response_json()["fault_id"], "b");
        let ids: Vec<_> = j.list().iter().map(|f| f.fault_id.clone()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[tokio::test]
    async fn a_second_agent_on_the_same_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_j, _) = FaultStore::open(dir.path(), FaultStoreOptions::default()).unwrap();
        let err = FaultStore::open(dir.path(), FaultStoreOptions::default()).unwrap_err();
        assert!(matches!(err, FaultStoreError::Locked { .. }), "{err}");
    }

    #[tokio::test]
    async fn retention_bounds_memory_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let opts = FaultStoreOptions {
            retention: 5,
            sync: false,
            // Smaller than the appends below: a full queue makes callers wait, not fail.
            queue: 2,
        };
        let (j, _) = FaultStore::open(dir.path(), opts).unwrap();
        for i in 0..23 {
            j.append(fault(&format!("f{i}"))).await.unwrap();
        }
        assert_eq!(j.len(), 5);
        assert!(j.get("f17").is_none());
        assert!(j.get("f18").is_some());
        let lines = fs::read_to_string(dir.path().join(STORE_FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 10, "{lines} lines");
        assert!(lines >= 5, "{lines} lines");
    }

    fn ids_in_file(dir: &Path) -> Vec<String> {
        fs::read_to_string(dir.join(STORE_FILE))
            .unwrap()
            .lines()
            .map(|l| StoredFault::from_line(l).unwrap().fault_id)
            .collect()
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("f{i}")).collect()
    }

    /// Opens the store again once the previous one's thread has let go of the lock.
    fn reopen(dir: &Path, opts: FaultStoreOptions) -> FaultStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match FaultStore::open(dir, opts.clone()) {
                Ok((j, _)) => return j,
                Err(FaultStoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("reopening the fault store after 30 s: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn compaction_keeps_the_newest_and_later_appends_land_in_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let opts = FaultStoreOptions {
            retention: 5,
            sync: false,
            queue: 64,
        };
        let (j, _) = FaultStore::open(dir.path(), opts.clone()).unwrap();
        // The tenth line reaches twice the retention: the file is rewritten with f5..f9.
        for i in 0..10 {
            j.append(fault(&format!("f{i}"))).await.unwrap();
        }
        assert_eq!(ids_in_file(dir.path()), ids(5..10));
        // Appends after the rewrite go to the file now at the path, not the replaced one.
        for i in 10..12 {
            j.append(fault(&format!("f{i}"))).await.unwrap();
        }
        assert_eq!(ids_in_file(dir.path()), ids(5..12));
        drop(j);
        let j = reopen(dir.path(), opts);
        let listed: Vec<String> = j.list().iter().map(|f| f.fault_id.clone()).collect();
        assert_eq!(listed, ids(7..12));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_beyond_the_queue_wait_their_turn() {
        let dir = tempfile::tempdir().unwrap();
        let opts = FaultStoreOptions {
            retention: 100,
            sync: false,
            queue: 1,
        };
        let (j, _) = FaultStore::open(dir.path(), opts).unwrap();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..40 {
            let j = j.clone();
            set.spawn(async move { j.append(fault(&format!("c{i}"))).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(j.len(), 40);
        let lines = fs::read_to_string(dir.path().join(STORE_FILE))
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 40);
    }

    #[tokio::test]
    async fn lines_found_at_open_count_toward_the_next_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let opts = FaultStoreOptions {
            retention: 5,
            sync: false,
            queue: 64,
        };
        let (j, _) = FaultStore::open(dir.path(), opts.clone()).unwrap();
        for i in 0..9 {
            j.append(fault(&format!("f{i}"))).await.unwrap();
        }
        assert_eq!(ids_in_file(dir.path()), ids(0..9));
        drop(j);
        let j = reopen(dir.path(), opts);
        // 9 lines found and 1 appended make twice the retention: rewritten with the newest 5.
        j.append(fault("f9")).await.unwrap();
        assert_eq!(ids_in_file(dir.path()), ids(5..10));
    }

    #[test]
    fn a_store_file_that_cannot_be_opened_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        // A link to itself: open fails with ELOOP, not NotFound (root reads any mode bits).
        std::os::unix::fs::symlink(STORE_FILE, &path).unwrap();
        match FaultStore::open(dir.path(), FaultStoreOptions::default()).unwrap_err() {
            FaultStoreError::Io { path: p, reason } => {
                assert_eq!(p, path.display().to_string());
                assert!(
                    reason.starts_with("open: Too many levels of symbolic links"),
                    "{reason}"
                );
            }
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_and_cleared_by_the_next_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let opts = FaultStoreOptions {
            retention: 1,
            sync: false,
            queue: 4,
        };
        let (j, _) = FaultStore::open(dir.path(), opts).unwrap();
        assert_eq!(j.path(), dir.path().join(STORE_FILE));
        assert_eq!(j.last_error(), None);
        // The compaction's temporary file cannot be created while a directory has its name.
        let tmp = dir.path().join("faults.jsonl.tmp");
        fs::create_dir(&tmp).unwrap();
        j.append(fault("a")).await.unwrap();
        let reason = "compaction: Is a directory (os error 21)";
        assert_eq!(
            j.append(fault("b")).await.unwrap_err(),
            FaultStoreError::Io {
                path: j.path().display().to_string(),
                reason: reason.into()
            }
        );
        assert_eq!(j.last_error().as_deref(), Some(reason));
        // Visible all the same: its line is in the kernel log, so a retry must be a repeat.
        assert_eq!(j.get("b").unwrap().fault_id, "b");
        fs::remove_dir(&tmp).unwrap();
        j.append(fault("c")).await.unwrap();
        assert_eq!(j.last_error(), None);
        assert_eq!(ids_in_file(dir.path()), ["c"]);
    }
}
