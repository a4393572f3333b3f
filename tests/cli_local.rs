//! `gfi run --backend local`: the same script API on this host, through the agent's own
//! discovery and write path. The kernel log here is a plain file (never the real one).

mod common;

use gpu_fault_injector::node::testkit;
use std::process::{Command, Stdio};

/// Runs `cmd` to its end (killed after the deadline, or when the test fails).
fn run(cmd: &mut Command) -> std::process::Output {
    common::Reaper::new(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
    .output("gfi run --backend local")
}

#[test]
fn a_script_injects_through_the_local_backend() {
    let dir = tempfile::tempdir().unwrap();
    let proc_root = dir.path().join("proc");
    testkit::write_gpu_tree(&proc_root, &testkit::fake_gpus(2)).unwrap();
    let kmsg = dir.path().join("kmsg");
    std::fs::write(&kmsg, b"").unwrap();
    let script = dir.path().join("local.lua");
    std::fs::write(
        &script,
        r#"
        assert(gfi.backend == "local")
        local gs = gpus("node-a")
        assert(#gs == 2 and gs[2].pci == "00000000:19:00.0", gs[2].pci)
        local f = assert(inject_xid("node-a", 1, 79))
        assert(f.line:find("NVRM: NVRM: Xid (PCI:0000:19:00): 79", 1, true), f.line)
        local t = kmsg_tail("node-a", { grep = "Xid" })
        assert(#t == 1 and t[1].seq == f.seq)
        -- Another node, or node state without a cluster: clear errors.
        local ok, err = pcall(gpus, "node-b")
        assert(not ok and tostring(err):find("only on the node it runs on"), tostring(err))
        ok, err = pcall(node_info, "node-a")
        assert(not ok and tostring(err):find("KUBERNETES_SERVICE_HOST"), tostring(err))
        ok, err = pcall(wait_cordoned, "node-a", { timeout = "1s" })
        assert(not ok and tostring(err):find("Kubernetes API"), tostring(err))
        print("local ok")
        "#,
    )
    .unwrap();
    let o = run(Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args([
            "run",
            script.to_str().unwrap(),
            "--backend",
            "local",
            "--node-name",
            "node-a",
        ])
        .arg("--proc-root")
        .arg(&proc_root)
        .arg("--kmsg-path")
        .arg(&kmsg)
        .arg("--allow-non-chardev")
        .env_remove("KUBERNETES_SERVICE_HOST"));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("local ok") && out.contains("backend=local (node node-a"),
        "{out}"
    );
    let written = std::fs::read_to_string(&kmsg).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(
        written.starts_with("<3>NVRM: NVRM: Xid (PCI:0000:19:00): 79, pid='<unknown>', name=gfi:r"),
        "{written}"
    );
}

#[test]
fn the_local_backend_refuses_a_missing_gpu_tree() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.lua");
    std::fs::write(&script, "print(#assert(gpus('node-a')))").unwrap();
    let o = run(Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args([
            "run",
            script.to_str().unwrap(),
            "--backend",
            "local",
            "--node-name",
            "node-a",
        ])
        .arg("--proc-root")
        .arg(dir.path().join("no-proc"))
        .arg("--kmsg-path")
        .arg(dir.path().join("kmsg"))
        .arg("--allow-non-chardev"));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("no-proc"),
        "names the path it looked at: {out}"
    );
}
