//! `gfi repl` with piped stdin: no prompts, values and `print` on stdout, errors on stderr,
//! a non-zero exit status when a chunk failed. For scripting: `echo 'print(#nodes())' | gfi repl`.

mod common;

use common::{Lines, Reaper, exit_status};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn gfi(args: &[&str], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Reaper::new(
        Command::new(env!("CARGO_BIN_EXE_gfi"))
            .arg("repl")
            .args(["--seed", "7", "--no-history"])
            .args(args)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env_remove("GFI_BACKEND")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.output("gfi repl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn runs_without_prompts() {
    let out = gfi(&[], "print(#nodes())\n40 + 2\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "8\n42\n");
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn multi_line_chunks_and_repl_locals() {
    let out = gfi(
        &[],
        "local function fact(n)\n  if n <= 1 then return 1 end\n  return n * fact(n - 1)\nend\nfact(5)\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "120\n");
}

#[test]
fn a_failed_chunk_fails_the_run_but_the_rest_runs() {
    let out = gfi(&[], "print('one')\nerror('boom')\nprint('three')\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "one\nthree\n");
    assert_eq!(text(&out.stderr), "error: line 2: stdin:1: boom\n");
}

#[test]
fn odd_input_is_an_error_not_a_crash() {
    let out = gfi(
        &[],
        "é\n\u{0}\n.\n)\n'unfinished\n\\\nprint('still alive')\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "still alive\n");
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // An unfinished string asks for more, as in Lua's REPL: lines 5 and 6 are one chunk.
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: line "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(lines, vec!["1", "2", "3", "4", "5"], "{stderr}");
}

#[test]
fn underscore_is_the_last_value() {
    let out = gfi(&[], "40 + 2\n_ * 10\n.5 + _\n");
    assert_eq!(text(&out.stdout), "42\n420\n420.5\n");
}

#[test]
fn a_failed_background_task_is_reported_and_fails_the_run() {
    let out = gfi(
        &[],
        "t = spawn('doomed', function() sleep(1) error('bg ' .. 'failure') end)\nsleep(2)\nprint('after')\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("task 'doomed' failed"), "{stderr}");
    assert!(stderr.contains("bg failure"), "{stderr}");
    assert_eq!(
        stderr.matches("bg failure").count(),
        1,
        "reported once: {stderr}"
    );
    assert!(text(&out.stdout).contains("after"));
}

#[test]
fn the_instruction_budget_is_per_chunk() {
    let chunk = "for i = 1, 1500000 do end\n";
    let out = gfi(&["--instruction-limit", "2000000"], &chunk.repeat(3));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gfi(
        &["--instruction-limit", "2000000"],
        "for i = 1, 3000000 do end\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("instruction budget"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stop_on_error_stops() {
    let out = gfi(&["--stop-on-error"], "error('boom')\nprint('never')\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn input_ending_inside_a_chunk_is_an_error() {
    let out = gfi(&[], "print('ok')\nfunction f(\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 2: input ended inside a chunk"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_cluster_reacts_and_cleanups_run_at_the_end() {
    let out = gfi(
        &[],
        "cleanup(function() print('cleanup ran') end)\n\
         inject_xid('gpu-node-002', 3, 79).xid\n\
         wait_cordoned('gpu-node-002').ok\n\
         wait_uncordoned('gpu-node-002').elapsed > 60\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("79\n"), "{stdout}");
    assert!(stdout.contains("fault-quarantine: cordoned"), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| *l == "true").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("cleanup ran"), "{stdout}");
    // --quiet keeps only what the chunks print.
    let out = gfi(
        &["--quiet"],
        "inject_xid('gpu-node-002', 3, 79).xid\nwait_cordoned('gpu-node-002').ok\n",
    );
    assert_eq!(text(&out.stdout), "79\ntrue\n");
}

/// At full speed the clock stands still between chunks, so a session replays exactly.
#[test]
fn same_seed_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let script = "rand.int(1, 1000000)\nmath.random(1, 1000000)\ngpus('gpu-node-001')[1].uuid\n\
                  n = node('gpu-node-002')\nn:inject_xid(1, 79)\nsleep('1m')\n\
                  t = spawn(function() return wait_uncordoned(n) end)\nsleep('3m')\nt:wait().elapsed\n";
    let run = |name: &str| {
        let path = dir.path().join(name);
        let out = gfi(&["--journal", path.to_str().unwrap()], script);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), std::fs::read(path).unwrap())
    };
    let (a, ja) = run("a.json");
    let (b, jb) = run("b.json");
    assert_eq!(a, b);
    assert!(ja == jb, "journals differ");
}

#[test]
fn journal_is_written_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.json");
    let out = gfi(
        &["--journal", path.to_str().unwrap()],
        "inject_xid('gpu-node-001', 0, 48)\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(j["script"], "<repl>");
    assert_eq!(j["summary"]["injections"], 1);
    let kinds: Vec<&str> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"repl.input"), "{kinds:?}");
    assert!(kinds.contains(&"inject"), "{kinds:?}");
}

#[test]
fn bad_flags_are_refused_clearly() {
    let out = gfi(&["--sim-speed", "fast"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a speed"),
        "{}",
        text(&out.stderr)
    );
    let out = gfi(&["--backend", "kube", "--sim-speed", "5"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("sim backend only"),
        "{}",
        text(&out.stderr)
    );
}

/// Ctrl-C (SIGINT) on a piped session cancels the running chunk, runs the cleanups and exits
/// with 130.
#[test]
fn sigint_cancels_runs_cleanups_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_repl(dir.path(), &["--sim-speed", "1"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            b"cleanup(function() print('cleanup ran') end)\n\
              wait_cordoned('gpu-node-001', {timeout = '1h'})\n\
              print('not reached')\n",
        )
        .unwrap();
    let mut stdout = Lines::new(child.stdout.take().unwrap());
    // Only once the wait runs is SIGINT a cancel.
    stdout.until("the wait to start", |l| l.contains("waiting for cordoned"));
    signal(child.id(), nix::sys::signal::Signal::SIGINT);
    let rest = stdout.rest("the session's output after SIGINT");
    let status = exit_status(&mut child, "the session after SIGINT");
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(
        rest.contains("cancelled the wait for gpu-node-001 cordoned"),
        "{rest}"
    );
    assert!(rest.contains("cleanup ran"), "{rest}");
    assert!(!rest.contains("not reached"), "{rest}");
    drop(stdin);
}

/// SIGHUP (the session's terminal or pipe went away) on a piped session that is waiting for
/// more input: the cleanups run and the exit status is 129.
#[test]
fn sighup_while_waiting_for_input_runs_cleanups_and_exits_129() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_repl(dir.path(), &[]);
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"cleanup(function() print('cleanup ran') end)\nprint('ready' .. '!')\n")
        .unwrap();
    let mut stdout = Lines::new(child.stdout.take().unwrap());
    stdout.until("'ready!'", |l| l.contains("ready!"));
    // stdin stays open: the session is waiting for the next line.
    signal(child.id(), nix::sys::signal::Signal::SIGHUP);
    let rest = stdout.rest("the session's output after SIGHUP");
    let status = exit_status(&mut child, "the session after SIGHUP");
    assert_eq!(status.code(), Some(129), "{rest}");
    assert!(rest.contains("cleanup ran"), "{rest}");
    drop(stdin);
}

/// A piped session (seed 7, no history) with every stream piped, for the signal tests.
fn spawn_repl(dir: &std::path::Path, extra: &[&str]) -> Reaper {
    Reaper::new(
        Command::new(env!("CARGO_BIN_EXE_gfi"))
            .args(["repl", "--seed", "7", "--no-history"])
            .args(extra)
            .current_dir(dir)
            .env_remove("GFI_BACKEND")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}
