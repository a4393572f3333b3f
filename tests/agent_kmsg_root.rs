//! Writes that need root: the namespace write path for real, a harmless marker through the
//! real `/dev/kmsg`, and (only with `GFI_TEST_REAL_KMSG=1`) NVSentinel's view through a real
//! `systemd-journald` for every catalogue XID.
//!
//! Under `CI=true` a missing requirement (root, the real `/dev/kmsg`, a mount namespace,
//! journald, `GFI_TEST_REAL_KMSG=1`) fails the test; elsewhere it skips with the reason.
//!
//! Safety: without `GFI_TEST_REAL_KMSG=1` no `NVRM: Xid` text reaches the machine's kernel log:
//! the namespace test proves its target is a file before writing, and the device test writes
//! a marker with no XID text.

mod common;

use common::*;
use gpu_fault_injector::agent::ratelimit::Limit;
use gpu_fault_injector::node::readback::{self, Filter, ReadSource};
use gpu_fault_injector::node::testkit::{self, FakeGpu};
use gpu_fault_injector::node::writer::{KmsgWriter, TargetKind, WriteTarget, WriterConfig};
use gpu_fault_injector::xid::{catalog, detect};
use std::ffi::CString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// Mounts for a child in a fresh private mount namespace: `(source, target, fstype)`, a bind
/// mount when `fstype` is `None`.
fn spawn_in_private_mount_ns(
    program: &str,
    args: &[&str],
    mounts: Vec<(Option<PathBuf>, PathBuf, Option<&'static str>)>,
) -> std::io::Result<Child> {
    // Prepared before fork: the child may only make raw system calls.
    let prepared: Vec<(Option<CString>, CString, Option<CString>)> = mounts
        .iter()
        .map(|(s, t, f)| {
            (
                s.as_deref().map(cstr),
                cstr(t),
                f.map(|f| CString::new(f).unwrap()),
            )
        })
        .collect();
    let root = CString::new("/").unwrap();
    let none = CString::new("none").unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe system calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc;
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for (src, target, fstype) in &prepared {
                let (src_ptr, flags, fs_ptr) = match fstype {
                    Some(fs) => (fs.as_ptr(), 0, fs.as_ptr()),
                    None => (
                        src.as_ref().map(|s| s.as_ptr()).unwrap_or(none.as_ptr()),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                };
                if libc::mount(src_ptr, target.as_ptr(), fs_ptr, flags, std::ptr::null()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

fn is_kmsg_device(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| {
        m.file_type().is_char_device()
            && nix::sys::stat::major(m.rdev()) == 1
            && nix::sys::stat::minor(m.rdev()) == 11
    })
}

fn devkmsg_off() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/printk_devkmsg").is_ok_and(|v| v.trim() == "off")
}

#[tokio::test]
async fn namespace_write_path_for_real() {
    const NAME: &str = "namespace_write_path_for_real";
    if !is_root() {
        return requirement_missing(
            NAME,
            "needs root (unshare and mount a private mount namespace)",
        );
    }
    let node = Node::new(2);
    let fake = node.path("ns-kmsg");
    std::fs::write(&fake, b"").unwrap();
    let holder = match spawn_in_private_mount_ns(
        "sleep",
        &["3600"],
        vec![(Some(fake.clone()), "/dev/kmsg".into(), None)],
    ) {
        Ok(c) => Reaper::new(c),
        Err(e) => {
            return requirement_missing(
                NAME,
                &format!("cannot make a private mount namespace here: {e}"),
            );
        }
    };
    let pid = holder.id();
    // Safety first: inside that namespace /dev/kmsg must be our file, never the device.
    let inside = PathBuf::from(format!("/proc/{pid}/root/dev/kmsg"));
    let meta = std::fs::metadata(&inside).unwrap();
    assert!(
        meta.is_file(),
        "the bind mount is not in effect; refusing to write"
    );
    assert_eq!(meta.ino(), std::fs::metadata(&fake).unwrap().ino());
    // Our own namespace is untouched.
    assert!(!std::fs::metadata("/dev/kmsg").unwrap().is_file());

    let mut cfg = node.config();
    cfg.writer = WriterConfig::new(WriteTarget::Namespace {
        pid,
        path: "/dev/kmsg".into(),
    });
    cfg.writer.allow_non_chardev = true;
    let a = start(cfg).await;
    let h = request(a.addr(), "GET", "/health", &[], b"").await.json();
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(
        h["write_path"],
        format!("/dev/kmsg in the mount namespace of pid {pid}")
    );
    let r = post(
        a.addr(),
        "/inject-xid",
        r#"{"fault_id":"ns-1","xid_type":79,"gpu_id":1}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["target"], "regular_file");
    assert_eq!(
        v["write_path"],
        format!("/dev/kmsg in the mount namespace of pid {pid}")
    );
    let written = std::fs::read_to_string(&fake).unwrap();
    assert_eq!(written, format!("{}\n", v["line"].as_str().unwrap()));
    assert!(written.contains("(PCI:0000:19:00): 79,"));
    // /kmsg reads back from the same namespace.
    let k = get(a.addr(), "/kmsg").await.json();
    assert_eq!(k["count"], 1);
    // The namespace outlives the process that made it: the writer thread holds it.
    drop(holder);
    let r = post(
        a.addr(),
        "/inject-xid",
        r#"{"fault_id":"ns-2","xid_type":48,"gpu_id":0}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(std::fs::read_to_string(&fake).unwrap().lines().count(), 2);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn namespace_path_refuses_a_pid_it_cannot_enter() {
    let r = KmsgWriter::start(WriterConfig::new(WriteTarget::Namespace {
        pid: 999_999_999,
        path: "/dev/kmsg".into(),
    }));
    let e = r.unwrap_err();
    assert!(e.reason.contains("/proc/999999999/ns/mnt"), "{e}");
}

#[tokio::test]
async fn real_device_harmless_marker_reads_back_with_its_sequence_number() {
    const NAME: &str = "real_device_harmless_marker_reads_back_with_its_sequence_number";
    if !is_root() {
        return requirement_missing(NAME, "needs root to write and read /dev/kmsg");
    }
    if !is_kmsg_device(Path::new("/dev/kmsg")) {
        return requirement_missing(NAME, "/dev/kmsg is not the kmsg character device 1:11 here");
    }
    if devkmsg_off() {
        return requirement_missing(NAME, "kernel.printk_devkmsg=off: the kernel refuses writes");
    }
    let w = KmsgWriter::start(WriterConfig::new(WriteTarget::Device {
        path: "/dev/kmsg".into(),
    }))
    .unwrap();
    let marker = format!(
        "gfi-test marker {:016x} (harmless, no XID)",
        rand::random::<u64>()
    );
    // More records than the kernel lets one open file write per 5 s: opening anew per record
    // keeps every one.
    let mut seqs = Vec::new();
    for i in 0..15 {
        let landed = w
            .write(format!("<6>gfi-test: {marker} #{i}\n").into_bytes())
            .await
            .unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert_eq!(landed.target, TargetKind::KmsgDevice);
        seqs.push(landed.seq.expect("a kernel sequence number"));
    }
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    let mut src = w.open_reader().await.unwrap();
    assert!(matches!(src, ReadSource::Device(_)));
    let found = readback::tail(
        &mut src,
        &Filter {
            grep: Some(marker.clone()),
            ..Default::default()
        },
        100,
    )
    .unwrap();
    assert_eq!(found.len(), 15);
    assert_eq!(found[0].seq, seqs[0]);
    assert_eq!(found[0].facility, 1, "userspace writes get LOG_USER");
    assert_eq!(found[0].level, 6);
    assert_eq!(found[0].text, format!("gfi-test: {marker} #0"));
}

fn journald_binary() -> Option<&'static str> {
    [
        "/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

fn journal_entries(dir: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("journalctl")
        .arg("-D")
        .arg(dir)
        .args(["-o", "json", "--no-pager", "_TRANSPORT=kernel"])
        .output()
        .expect("journalctl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// What NVSentinel reads: for every catalogue XID, the journal entry that the agent's write
/// produces is `_TRANSPORT=kernel` with a MESSAGE NVSentinel's regex parses to that XID and
/// the GPU's PCI address.
#[tokio::test]
async fn journald_sees_every_catalogue_xid_as_nvsentinel_expects() {
    const NAME: &str = "journald_sees_every_catalogue_xid_as_nvsentinel_expects";
    if std::env::var("GFI_TEST_REAL_KMSG").as_deref() != Ok("1") {
        return requirement_missing(
            NAME,
            "writes NVRM: Xid lines to the machine's real kernel log; set GFI_TEST_REAL_KMSG=1 to allow it (CI does)",
        );
    }
    if !is_root() {
        return requirement_missing(
            NAME,
            "needs root (real /dev/kmsg, a private mount namespace for journald)",
        );
    }
    let Some(journald) = journald_binary() else {
        return requirement_missing(
            NAME,
            "systemd-journald is not installed (apt-get install systemd)",
        );
    };
    if Command::new("journalctl")
        .arg("--version")
        .output()
        .is_err()
    {
        return requirement_missing(
            NAME,
            "journalctl is not installed (apt-get install systemd)",
        );
    }
    if !is_kmsg_device(Path::new("/dev/kmsg")) || devkmsg_off() {
        return requirement_missing(NAME, "/dev/kmsg is not a writable kmsg device here");
    }

    // journald runs standalone in its own mount namespace: its sockets on a private tmpfs, its
    // journal in our temporary directory, the host's /var/log/journal untouched.
    let tmp = tempfile::tempdir().unwrap();
    let runlog = tmp.path().join("runlog");
    let varlog = tmp.path().join("varlog");
    std::fs::create_dir_all(&runlog).unwrap();
    std::fs::create_dir_all(&varlog).unwrap();
    std::fs::create_dir_all("/run/systemd").unwrap();
    std::fs::create_dir_all("/run/log").unwrap();
    let mut mounts = vec![
        (None, PathBuf::from("/run/systemd"), Some("tmpfs")),
        (Some(runlog.clone()), PathBuf::from("/run/log"), None),
    ];
    if Path::new("/var/log/journal").is_dir() {
        mounts.push((
            Some(varlog.clone()),
            PathBuf::from("/var/log/journal"),
            None,
        ));
    }
    let journald = match spawn_in_private_mount_ns(journald, &[], mounts) {
        Ok(c) => Reaper::new(c),
        Err(e) => {
            return requirement_missing(
                NAME,
                &format!("cannot start journald in a private mount namespace: {e}"),
            );
        }
    };

    let node = Node::new(0);
    let gpus = vec![
        FakeGpu {
            dir_name: "0000:3b:00.0".into(),
            minor: 0,
            uuid: "GPU-e2e-0".into(),
            model: "NVIDIA H100".into(),
        },
        FakeGpu {
            dir_name: "0001:00:00.0".into(),
            minor: 1,
            uuid: "GPU-e2e-1".into(),
            model: "NVIDIA A100 (Azure domain)".into(),
        },
    ];
    testkit::write_gpu_tree(&node.path("proc"), &gpus).unwrap();
    let mut cfg = node.config();
    cfg.writer = WriterConfig::new(WriteTarget::Device {
        path: "/dev/kmsg".into(),
    });
    cfg.node_limit = Limit::UNLIMITED;
    cfg.gpu_limit = Limit::UNLIMITED;
    let a = start(cfg).await;
    let run = format!("e2e-{:08x}", rand::random::<u32>());

    // (xid, gpu index, style)
    let mut expected = Vec::new();
    for (i, info) in catalog::all().iter().enumerate() {
        let gpu = (i % 2) as u32;
        let body = serde_json::json!({"fault_id": format!("{run}-{}", info.xid), "xid_type": info.xid, "gpu_id": gpu, "run_id": run});
        let r = post(a.addr(), "/inject-xid", &body.to_string()).await;
        assert_eq!(r.status, 200, "XID {}: {}", info.xid, r.text());
        assert!(r.json()["kmsg_seq"].is_u64());
        expected.push((info.xid, gpu, format!("name=gfi:{run},")));
    }
    // The seed's own line shape too.
    let seed_marker = format!("GPU has fallen off the bus {run}");
    let body =
        serde_json::json!({"xid_type": 79, "gpu_id": 1, "style": "seed", "text": seed_marker});
    assert_eq!(
        post(a.addr(), "/inject-xid", &body.to_string())
            .await
            .status,
        200
    );
    expected.push((79, 1, seed_marker.clone()));
    a.stop().await.unwrap();

    let mut found: Vec<Option<serde_json::Value>> = vec![None; expected.len()];
    let deadline = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < deadline {
        // Ask journald to write out what it has (SIGRTMIN+1 = sync).
        unsafe {
            nix::libc::kill(journald.id() as i32, nix::libc::SIGRTMIN() + 1);
        }
        let entries = journal_entries(&runlog.join("journal"));
        let entries: Vec<_> = entries
            .into_iter()
            .chain(journal_entries(&varlog))
            .collect();
        for (slot, (xid, _, marker)) in found.iter_mut().zip(&expected) {
            if slot.is_none() {
                *slot = entries
                    .iter()
                    .find(|e| {
                        e["MESSAGE"].as_str().is_some_and(|m| {
                            m.contains(marker.as_str()) && m.contains(&format!("): {xid}, "))
                        })
                    })
                    .cloned();
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let missing: Vec<u32> = expected
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|((x, _, _), _)| *x)
        .collect();
    assert!(
        missing.is_empty(),
        "waited {DEADLINE:?} for journald to record XIDs {missing:?}"
    );
    for ((xid, gpu, _), entry) in expected.iter().zip(&found) {
        let e = entry.as_ref().unwrap();
        assert_eq!(e["_TRANSPORT"], "kernel", "XID {xid}: {e}");
        assert_eq!(e["SYSLOG_IDENTIFIER"], "NVRM", "XID {xid}: {e}");
        let msg = e["MESSAGE"].as_str().unwrap();
        let m =
            detect::match_xid(msg).unwrap_or_else(|| panic!("NVSentinel's regex misses {msg:?}"));
        assert_eq!(m.xid, *xid, "{msg}");
        let want = &gpus[*gpu as usize].dir_name.parse().unwrap();
        assert!(
            m.pci.unwrap().same_device(want),
            "XID {xid}: {} is not {}",
            m.pci_text,
            gpus[*gpu as usize].dir_name
        );
    }
    eprintln!(
        "journald recorded all {} lines ({} catalogue XIDs + the seed style) as NVSentinel reads them",
        expected.len(),
        catalog::all().len()
    );
}
