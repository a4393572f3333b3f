//! `gfi repl` in a pseudo-terminal, driven like a person would: the real binary, rustyline
//! and all. Each test waits for text the REPL prints (never for time to pass), and expects
//! output that the typed input does not itself contain, so the terminal's echo cannot match.

use expectrl::process::unix::UnixProcess;
use expectrl::{Eof, Expect, Session};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

type Repl = Session<UnixProcess, expectrl::process::unix::PtyStream>;

const CTRL_C: &str = "\x03";
const CTRL_D: &str = "\x04";
const UP: &str = "\x1b[A";

/// A REPL on a sim seeded 7, history in `dir`, no colour.
fn repl(dir: &Path, extra: &[&str]) -> Repl {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gfi"));
    cmd.args(["repl", "--seed", "7", "--color", "never"])
        .args(extra)
        .current_dir(dir)
        .env("TERM", "xterm")
        .env("HOME", dir)
        .env("GFI_HISTORY", dir.join("history"))
        .env_remove("XDG_STATE_HOME")
        .env_remove("GFI_BACKEND");
    let mut s = Session::spawn(cmd).expect("spawn gfi repl");
    s.get_process_mut()
        .set_window_size(120, 40)
        .expect("window size");
    // Generous: CI machines are slow and busy; nothing here waits on purpose.
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    s.expect("Ctrl-D exits").expect("banner");
    s.expect("> ").expect("first prompt");
    s
}

/// Waits for the prompt: keys reach the line editor only then (before, the terminal is in
/// cooked mode, where Ctrl-C, Ctrl-D and Ctrl-R mean something else). Only reliable after
/// output of the last chunk was seen: the line being edited is redrawn with its prompt too.
fn prompt(s: &mut Repl) {
    s.expect("> ").expect("a prompt");
}

/// Registers a cleanup that prints `cleaned up`, and waits for the prompt after it.
fn register_cleanup(s: &mut Repl) {
    s.send_line("cleanup(function() print('cleaned' .. ' up') end) print('regis' .. 'tered')")
        .unwrap();
    s.expect("registered").unwrap();
    prompt(s);
}

/// Sends `sig` to gfi, as a supervisor or the terminal would.
fn signal(s: &Repl, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(s.get_process().pid().as_raw());
    nix::sys::signal::kill(pid, sig).unwrap();
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn exit_code(s: &Repl) -> i32 {
    match s.get_process().wait().expect("wait for gfi") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("gfi did not exit normally: {other:?}"),
    }
}

#[test]
fn multi_line_input_continues_on_a_second_prompt() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    s.send_line("function twice(x)").unwrap();
    s.expect(">> ").unwrap();
    s.send_line("  return x * 2").unwrap();
    s.expect(">> ").unwrap();
    s.send_line("end").unwrap();
    s.expect("> ").unwrap();
    s.send_line("twice(20 + 1)").unwrap();
    s.expect("42").unwrap();
    prompt(&mut s);
    // An open table constructor is an expression spanning lines.
    s.send_line("{ 'alpha',").unwrap();
    s.expect(">> ").unwrap();
    s.send_line("'be' .. 'ta' }").unwrap();
    s.expect("{ \"alpha\", \"beta\" }").unwrap();
    prompt(&mut s);
    // Ctrl-C on a continuation line abandons the chunk.
    s.send_line("if true then").unwrap();
    s.expect(">> ").unwrap();
    s.send(CTRL_C).unwrap();
    s.expect("> ").unwrap();
    s.send_line("'after' .. 'wards'").unwrap();
    s.expect("afterwards").unwrap();
    prompt(&mut s);
    // A top-level local survives to the next line.
    s.send_line("local kept = 6 * 7").unwrap();
    s.send_line("kept + 1000").unwrap();
    s.expect("1042").unwrap();
}

#[test]
fn tab_completes_globals_methods_node_names_and_xids() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    // A global function: completed with its parenthesis.
    s.send("wait_cordo\t").unwrap();
    s.expect("wait_cordoned(").unwrap();
    s.send("\"gpu-node-001\", { timeout = \"1s\" })\r").unwrap();
    s.expect("not cordoned within 1s").unwrap();
    prompt(&mut s);
    // A module member.
    s.send("gfi.fmt_dur\t").unwrap();
    s.expect("gfi.fmt_duration(").unwrap();
    s.send("125)\r").unwrap();
    s.expect("2m5s").unwrap();
    prompt(&mut s);
    // Methods of a node handle.
    s.send_line("n = node('gpu-node-003') print('n' .. ' is set')")
        .unwrap();
    s.expect("n is set").unwrap();
    prompt(&mut s);
    s.send("n:wait_uncor\t").unwrap();
    s.expect("n:wait_uncordoned(").unwrap();
    s.send(")\r").unwrap();
    s.expect("gpu-node-003 uncordoned after").unwrap();
    prompt(&mut s);
    // Node names inside a string: Tab twice lists them, a digit and Tab completes one.
    s.send("node(\"gpu-node-00\t\t").unwrap();
    s.expect("gpu-node-008").unwrap();
    s.send("5\t").unwrap();
    s.expect("gpu-node-005\"").unwrap();
    s.send(")\r").unwrap();
    s.expect("node(gpu-node-005)  -- schedulable").unwrap();
    prompt(&mut s);
    // XIDs with their names where an XID goes.
    s.send("xid(7\t\t").unwrap();
    s.expect("GPU has fallen off the bus (RESTART_BM)").unwrap();
    s.send("9).mnemonic\r").unwrap();
    s.expect("ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS")
        .unwrap();
}

#[test]
fn ctrl_c_cancels_a_paced_wait_and_a_busy_loop() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &["--sim-speed", "1"]);
    s.send_line("wait_cordoned('gpu-node-001', { timeout = '1h' })")
        .unwrap();
    // Printed by the wait itself once it runs: only then is Ctrl-C a cancel.
    s.expect("waiting for cordoned").unwrap();
    s.send(CTRL_C).unwrap();
    s.expect("cancelled the wait for gpu-node-001 cordoned (Ctrl-C)")
        .unwrap();
    prompt(&mut s);
    s.send_line("40 + 2").unwrap();
    s.expect("42").unwrap();
    prompt(&mut s);
    // Lua that never waits is stopped too, even from inside pcall.
    s.send_line(
        "print('spin' .. 'ning') while true do pcall(function() while true do end end) end",
    )
    .unwrap();
    s.expect("spinning").unwrap();
    s.send(CTRL_C).unwrap();
    s.expect("cancelled (Ctrl-C)").unwrap();
    prompt(&mut s);
    s.send_line("'still' .. ' here'").unwrap();
    s.expect("still here").unwrap();
}

#[test]
fn errors_are_short_and_the_repl_goes_on() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    s.send_line("error('bo' .. 'om')").unwrap();
    s.expect("error: stdin:1: boom").unwrap();
    s.send_line("inject_xd('gpu-node-001', 0, 79)").unwrap();
    s.expect("attempt to call a nil value (global 'inject_xd')")
        .unwrap();
    s.expect("did you mean inject_xid?").unwrap();
    s.send_line("node('no-such-' .. 'node')").unwrap();
    s.expect("no-such-node").unwrap();
    s.send_line("x = = 1").unwrap();
    s.expect("syntax error").unwrap();
    s.send_line("40 + 2").unwrap();
    s.expect("42").unwrap();
    // Never a Rust panic.
    s.send_line("'done' .. '!'").unwrap();
    let seen = s.expect("done!").unwrap();
    assert!(!String::from_utf8_lossy(seen.before()).contains("panicked"));
}

#[test]
fn history_persists_across_sessions() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    s.send_line("history_marker = 4000 + 200 + 42").unwrap();
    s.send_line("history_marker - 42").unwrap();
    s.expect("4200").unwrap();
    prompt(&mut s);
    s.send(CTRL_D).unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(exit_code(&s), 0);
    let saved = std::fs::read_to_string(dir.path().join("history")).unwrap();
    assert!(
        saved.contains("history_marker = 4000 + 200 + 42"),
        "{saved}"
    );

    let mut s = repl(dir.path(), &[]);
    // Newest first: the second entry back is the assignment.
    s.send(UP).unwrap();
    s.send(UP).unwrap();
    s.expect("history_marker = 4000 + 200 + 42").unwrap();
    s.send("\r").unwrap();
    s.expect("> ").unwrap();
    s.send_line("history_marker + 1").unwrap();
    s.expect("4243").unwrap();
    prompt(&mut s);
    // Reverse search finds it too.
    s.send("\x12marker =").unwrap();
    s.expect("reverse-i-search").unwrap();
    s.send("\r").unwrap();
    prompt(&mut s);
    s.send_line("history_marker * 10").unwrap();
    s.expect("42420").unwrap();
}

#[test]
fn ctrl_d_runs_cleanups_and_exits() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    register_cleanup(&mut s);
    s.send(CTRL_D).unwrap();
    s.expect("cleaned up").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(exit_code(&s), 0);
}

#[test]
fn a_second_ctrl_c_at_an_empty_prompt_exits() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    s.send(CTRL_C).unwrap();
    s.expect("Ctrl-C again or Ctrl-D to exit").unwrap();
    // Keys go to the line editor once its prompt is back.
    s.expect("> ").unwrap();
    s.send(CTRL_C).unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(exit_code(&s), 0);
}

#[test]
fn help_comes_from_the_api_reference() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    // The function value itself.
    s.send_line("help(inject_xid)").unwrap();
    s.expect("inject_xid(node, gpu, xid [, opts]) -> fault")
        .unwrap();
    s.expect("Example:").unwrap();
    s.send_line("help('wait_cor' .. 'doned')").unwrap();
    s.expect("Waits until the node is unschedulable").unwrap();
    s.send_line("help()").unwrap();
    s.expect("gfi Lua API").unwrap();
    s.send_line(".help").unwrap();
    s.expect("REPL commands").unwrap();
}

#[test]
fn dot_commands() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("setup.lua"),
        "function triple(x) return 3 * x end\nprint('setup ' .. 'loaded')\n",
    )
    .unwrap();
    let mut s = repl(dir.path(), &[]);
    s.send_line(".seed").unwrap();
    s.expect("seed 7 (run r").unwrap();
    s.send_line(".backend").unwrap();
    s.expect("8 nodes now: 0 cordoned").unwrap();
    s.send_line(".load setup.lua").unwrap();
    s.expect("setup loaded").unwrap();
    s.send_line("triple(14)").unwrap();
    s.expect("42").unwrap();
    s.send_line(".journal session.json").unwrap();
    s.expect("journal entries to session.json").unwrap();
    let journal = std::fs::read_to_string(dir.path().join("session.json")).unwrap();
    assert!(journal.contains("\"kind\": \"repl.input\""), "{journal}");
    assert!(journal.contains("triple(14)"), "{journal}");
    s.send_line(".speed 60").unwrap();
    s.expect("speed 60 (1 real second = 1m)").unwrap();
    s.send_line(".jurnal").unwrap();
    s.expect("did you mean .journal?").unwrap();
    s.send_line(".quit").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(exit_code(&s), 0);
}

/// Whether the terminal is in canonical (line) mode: the line editor turns it off while it
/// reads, and it must be on again once gfi is gone.
fn canonical(s: &Repl) -> bool {
    let master = s.get_process().get_raw_handle().expect("the pty master");
    nix::sys::termios::tcgetattr(&master)
        .expect("the pty's settings")
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON)
}

/// A supervisor's SIGTERM while the line editor waits for a key: the cleanups run, the
/// terminal gets its settings back (the editor had it in raw mode), and the exit status is
/// 143. SIGHUP (the terminal closed) takes the same path.
#[test]
fn sigterm_at_the_prompt_runs_cleanups_restores_the_terminal_and_exits_143() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &[]);
    register_cleanup(&mut s);
    let mut tries = 0;
    while canonical(&s) {
        tries += 1;
        assert!(tries < 500, "the line editor never took the terminal");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&s, nix::sys::signal::Signal::SIGTERM);
    s.expect("cleaned up").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(exit_code(&s), 143);
    assert!(canonical(&s), "the terminal was left in raw mode");
}

/// SIGTERM while a chunk waits on the cluster cancels it, runs the cleanups and ends the
/// session (unlike Ctrl-C, which returns to the prompt).
#[test]
fn sigterm_during_a_wait_cancels_it_and_ends_the_session() {
    let dir = tempdir();
    let mut s = repl(dir.path(), &["--sim-speed", "1"]);
    register_cleanup(&mut s);
    s.send_line("wait_cordoned('gpu-node-001', {timeout = '1h'})")
        .unwrap();
    s.expect("waiting for").unwrap();
    signal(&s, nix::sys::signal::Signal::SIGTERM);
    s.expect("(SIGTERM)").unwrap();
    s.expect("cleaned up").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(exit_code(&s), 143);
}
