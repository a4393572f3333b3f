//! `gfi run` end to end through the real binary: every example and script on the sim, exit
//! statuses, reproducible journals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn gfi(args: &[&str]) -> Output {
    common::Reaper::new(
        Command::new(env!("CARGO_BIN_EXE_gfi"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("GFI_BACKEND")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gfi runs"),
    )
    .output(&format!("gfi {}", args.join(" ")))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn lua_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("lua"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_and_script_runs_on_the_sim() {
    let files: Vec<PathBuf> = lua_files("examples")
        .into_iter()
        .chain(lua_files("scripts"))
        .collect();
    assert!(files.len() >= 8, "examples and scripts are present");
    for f in files {
        let o = gfi(&["run", f.to_str().unwrap(), "--seed", "11", "-q"]);
        assert!(
            o.status.success(),
            "{} failed ({}):\n{}",
            f.display(),
            o.status,
            text(&o)
        );
        let out = text(&o);
        assert!(out.contains("finished: "), "{}: {out}", f.display());
        assert!(!out.contains("failed check"), "{}: {out}", f.display());
    }
}

#[test]
fn the_same_seed_gives_a_byte_identical_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let o = gfi(&[
            "run",
            "scripts/random_day.lua",
            "--seed",
            seed,
            "--sim-nodes",
            "12",
            "--arg",
            "faults=15",
            "-q",
            "--journal",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::read(path).unwrap()
    };
    let a = journal("a.json", "5");
    let b = journal("b.json", "5");
    let c = journal("c.json", "6");
    assert!(a.len() > 10_000, "a real journal");
    assert!(a == b, "same seed, same bytes");
    assert!(a != c, "another seed, another history");
    let doc: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(doc["seed"], 5);
    assert_eq!(doc["backend"], "sim");
    assert_eq!(doc["virtual_time"], true);
    let entries = doc["entries"].as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "run.start",
        "inject",
        "wait.start",
        "wait",
        "observe",
        "check",
        "run.end",
    ] {
        assert!(kinds.contains(k), "journal has {k} entries: {kinds:?}");
    }
    let inject = entries.iter().find(|e| e["kind"] == "inject").unwrap();
    assert!(
        inject["data"]["line"]
            .as_str()
            .unwrap()
            .contains("NVRM: NVRM: Xid (PCI:")
    );
    assert!(inject["data"]["seq"].is_u64());
    assert_eq!(doc["summary"]["outcome"], "finished");
}

#[test]
fn a_failing_script_exits_1_with_its_traceback() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.lua");
    std::fs::write(&script, "local n = gpu_nodes()[1]\nlocal function f()\n  assert(wait_cordoned(n, {timeout = '1m'}))\nend\nf()\n").unwrap();
    let o = gfi(&["run", script.to_str().unwrap(), "--seed", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the script failed"), "{err}");
    assert!(
        err.contains("gpu-node-001 not cordoned within 1m (observed: schedulable, state=<none>)"),
        "{err}"
    );
    assert!(
        err.contains("stack traceback") && err.contains("bad.lua:3"),
        "{err}"
    );
}

#[test]
fn a_failed_check_exits_3_and_a_bad_call_names_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("checks.lua");
    std::fs::write(&script, "check('always fails', false, 'on purpose')").unwrap();
    let o = gfi(&["run", script.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("failed check: always fails: on purpose"));

    std::fs::write(&script, "inject_xid('gpu-node-001', 12, 79)").unwrap();
    let o = gfi(&["run", script.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(
            "inject_xid: node gpu-node-001: GPU 12 not found (GPUs present: 0 (0000:18:00.0)"
        ),
        "{}",
        text(&o)
    );
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let o = gfi(&["run", "no/such/plan.lua"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("script no/such/plan.lua not found"));
    let o = gfi(&["run", "examples/01_first_injection.lua", "--sim-nodes", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("at least one node"), "{}", text(&o));
    let o = gfi(&["run", "examples/01_first_injection.lua", "--arg", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("is not key=value"));
    let o = gfi(&[
        "run",
        "examples/01_first_injection.lua",
        "--backend",
        "kube",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("kube backend"), "{}", text(&o));
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "janitor-provider: {csp: {provider: moon}}").unwrap();
    let o = gfi(&[
        "run",
        "examples/01_first_injection.lua",
        "--nvsentinel-values",
        values.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("janitor-provider.csp.provider: 'moon' is not one of"),
        "{}",
        text(&o)
    );
}

#[test]
fn progress_shows_each_stage_with_its_time() {
    let o = gfi(&["run", "examples/01_first_injection.lua", "--seed", "4"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "▶ gfi run examples/01_first_injection.lua  seed=4  backend=sim (8 GPU nodes x 8 GPUs)"
        ),
        "{out}"
    );
    assert!(out.contains("⚡ inject gpu-node-001 XID 79"), "{out}");
    assert!(
        out.contains("syslog-health-monitor: XID 79 on 0000:18:00 → RESTART_BM"),
        "{out}"
    );
    assert!(out.contains("fault-quarantine: cordoned"), "{out}");
    assert!(out.contains("✓ gpu-node-001 cordoned after"), "{out}");
    assert!(!out.contains("\x1b["), "no colour when piped");
}

#[test]
fn seed_values_file_and_sim_config_shape_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "janitor:\n  enabled: true\n  global:\n    manualMode: true\nnode-drainer:\n  userNamespaces: [dynamo, default]\n  evictionTimeout: 120\n").unwrap();
    let cfg = dir.path().join("sim.yaml");
    std::fs::write(&cfg, "nodes: 3\ngpus_per_node: 2\ntimings: {reboot: 10m}\n").unwrap();
    let script = dir.path().join("s.lua");
    std::fs::write(
        &script,
        r#"
        assert(#gpu_nodes() == 3 and #gpus(gpu_nodes()[1]) == 2)
        local c = sim.config()
        assert(c.nvsentinel.manual_mode == true and c.nvsentinel.eviction_timeout == 120)
        assert(c.timings.reboot == "10m")
    "#,
    )
    .unwrap();
    let o = gfi(&[
        "run",
        script.to_str().unwrap(),
        "--nvsentinel-values",
        values.to_str().unwrap(),
        "--sim-config",
        cfg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gfi(&[
        "run",
        script.to_str().unwrap(),
        "--sim-config",
        cfg.to_str().unwrap(),
        "--sim-nodes",
        "4",
    ]);
    assert_eq!(o.status.code(), Some(1), "flags override the file");
}

#[test]
fn xids_and_docs_commands() {
    let o = gfi(&["xids", "-o", "json"]);
    assert!(o.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let x79 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["xid"] == 79)
        .unwrap();
    assert_eq!(x79["mnemonic"], "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS");
    let o = gfi(&["xids", "--fatal"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("RESTART_BM") && !table.contains("  13  "),
        "{table}"
    );
    let o = gfi(&["xids", "--xid", "500"]);
    assert_eq!(o.status.code(), Some(1));
    let o = gfi(&["docs", "api"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("#### `inject_xid`"));
}

#[test]
fn an_interrupt_stops_even_a_busy_script_and_runs_its_cleanups() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("busy.lua");
    std::fs::write(
        &script,
        "cleanup(function() print('cleanup ran') end)\nprint('spinning')\nlocal x = 0\nwhile true do x = x + 1 end\n",
    )
    .unwrap();
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let mut child = common::Reaper::new(
            Command::new(env!("CARGO_BIN_EXE_gfi"))
                .args(["run", script.to_str().unwrap(), "--seed", "1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut out = common::Lines::new(child.stdout.take().unwrap());
        out.until("'spinning'", |l| l.contains("spinning"));
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let rest = out.rest("gfi's output after the signal");
        let status = common::exit_status(&mut child, "gfi run after the signal");
        assert_eq!(status.code(), Some(code), "{sig}: {rest}");
        assert!(rest.contains("cleanup ran"), "{sig}: {rest}");
        assert!(rest.contains("interrupted: "), "{sig}: {rest}");
    }
}

#[test]
fn guard_stops_exit_4_and_5_after_the_cleanups_and_flags_override_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("guarded.lua");
    std::fs::write(
        &script,
        r#"guard { max_unavailable = 5 }
cleanup(function() print("cleanup ran") end, "note")
local ns = gpu_nodes()
for i = 1, 3 do assert(inject_xid(ns[i], 0, 79)); assert(wait_cordoned(ns[i])) end
if args.real then sim.real_xid(ns[1], 2, 79); sleep("10m") end
print("plan done")
"#,
    )
    .unwrap();
    let journal = dir.path().join("j.json");
    let s = script.to_str().unwrap();
    let o = gfi(&["run", s, "--seed", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = gfi(&[
        "run",
        s,
        "--seed",
        "2",
        "--max-unavailable",
        "20%",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(out.contains("guardrail stop (max_unavailable)"), "{out}");
    assert!(out.contains("max_unavailable 20% allows 1"), "{out}");
    assert!(
        out.contains("cleanup ran") && !out.contains("plan done"),
        "{out}"
    );
    assert!(out.contains("stopped by a guardrail"), "{out}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert_eq!(j["summary"]["outcome"], "guardrail-stop");
    assert_eq!(j["summary"]["guard"]["stop"]["rule"], "max_unavailable");

    let o = gfi(&["run", s, "--seed", "2", "--arg", "real=1"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(out.contains("tripwire: possible real GPU fault"), "{out}");
    assert!(
        out.contains("name=python3") && out.contains("cleanup ran"),
        "{out}"
    );
    let o = gfi(&["run", s, "--seed", "2", "--arg", "real=1", "--no-tripwire"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    for (flag, value, needle) in [
        (
            "--max-unavailable",
            "lots",
            "a percentage of the pool (10%)",
        ),
        (
            "--window",
            "Tue 10:00-16:00 Europe/Berln",
            "not a known IANA zone name",
        ),
        ("--require-label", "a b", "expected key=value"),
    ] {
        let o = gfi(&["run", s, flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", text(&o));
        assert!(text(&o).contains(needle), "{flag}: {}", text(&o));
    }
}

#[test]
fn an_interrupt_ends_hundreds_of_tasks_and_runs_every_cleanup() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("many.lua");
    std::fs::write(
        &script,
        r#"local ns = gpu_nodes()
local tasks = {}
for i = 1, 300 do
  cleanup(function() print("cleanup " .. i) end, "task " .. i)
  tasks[i] = spawn(function()
    inject_xid(ns[(i - 1) % #ns + 1], i % 8, 13)
    while true do sleep("1m") end
  end)
end
sleep(1)
print("tasks running")
for _, t in ipairs(tasks) do t:wait() end
"#,
    )
    .unwrap();
    let mut child = common::Reaper::new(
        Command::new(env!("CARGO_BIN_EXE_gfi"))
            .args(["run", script.to_str().unwrap(), "--seed", "1", "-q"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = common::Lines::new(child.stdout.take().unwrap());
    out.until("'tasks running'", |l| l.contains("tasks running"));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let rest = out.rest("gfi's output after the signal");
    let status = common::exit_status(&mut child, "gfi run after the signal");
    assert_eq!(status.code(), Some(130), "{rest}");
    let cleanups = rest.lines().filter(|l| l.contains("cleanup ")).count();
    assert_eq!(cleanups, 300, "{rest}");
    assert!(rest.contains("300 injections"), "{rest}");
}

#[test]
fn list_category_and_help_args_read_metadata_without_running_anything() {
    let o = gfi(&["run", "--list", "scripts"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for f in lua_files("scripts") {
        let shown = format!("scripts/{}", f.file_name().unwrap().to_string_lossy());
        assert!(out.contains(&shown), "{shown} missing:\n{out}");
    }
    assert!(
        out.contains("builtin:xid79_recovery  (scenario: xid79-recovery)"),
        "{out}"
    );
    assert!(
        out.contains("categories: cordons-node, drains-node, reboots-node"),
        "{out}"
    );
    assert!(
        out.contains("scripts/random_day.lua  (script: random_day)"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    // Reading its metadata must not run its actions: this one would fail if it did.
    std::fs::write(
        dir.path().join("acts.lua"),
        "error('ran at list time')\nreturn require('scenario').define { name = 'x', description = 'x', action = print }",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("quiet.lua"),
        r#"local scenario = require "scenario"
return scenario.define { name = "quiet", description = "a safe one", categories = { "safe" },
  args = { n = { default = 2, description = "how many" } },
  action = function(ctx) print("quiet ran n=" .. ctx.args.n) end }"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("loud.lua"),
        r#"return require("scenario").define { name = "loud", description = "reboots", categories = { "safe", "reboots-node" },
  action = function() print("loud ran") end }"#,
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let o = gfi(&[
        "run",
        "--list",
        d,
        "--category",
        "safe and not reboots-node",
    ]);
    let out = text(&o);
    assert!(
        out.contains("quiet.lua") && !out.contains("loud.lua"),
        "{out}"
    );
    assert!(!out.contains("builtin:xid79"), "{out}");
    let o = gfi(&["run", "--list", d]);
    let out = text(&o);
    assert!(
        out.contains("acts.lua  (script: acts)")
            && out.contains("cannot read its metadata: ")
            && out.contains("acts.lua:1: ran at list time"),
        "{out}"
    );
    let o = gfi(&[
        "run",
        d,
        "--category",
        "safe and not reboots-node",
        "--arg",
        "n=5",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("quiet ran n=5") && !out.contains("loud ran"),
        "{out}"
    );
    let o = gfi(&["run", d, "--category", "(safe or"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("category expression '(safe or'"),
        "{}",
        text(&o)
    );
    let o = gfi(&["run", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("give --category EXPR"), "{}", text(&o));

    let o = gfi(&["run", "scripts/xid74_stays_cordoned.lua", "--help-args"]);
    let out = text(&o);
    assert!(
        out.contains("hold")
            && out.contains("how long the node must stay cordoned (default \"15m\")"),
        "{out}"
    );
    let o = gfi(&["run", "builtin:random_day", "--help-args"]);
    assert!(
        text(&o).contains("faults") && text(&o).contains("(read with param)"),
        "{}",
        text(&o)
    );
    let o = gfi(&["run", "builtin:nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("builtin:xid79_recovery"), "{}", text(&o));
    let o = gfi(&["run", "builtin:xid79_recovery", "--seed", "3", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn dry_run_prints_the_seeds_schedule_and_injects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, j: &str| {
        let journal = dir.path().join(j);
        let o = gfi(&[
            "run",
            "scripts/guarded_soak.lua",
            "--dry-run",
            "--seed",
            seed,
            "-q",
            "--journal",
            journal.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(journal).unwrap()).unwrap();
        assert_eq!(j["summary"]["injections"], 0);
        let schedule: Vec<String> = text(&o)
            .lines()
            .filter(|l| l.contains("gpu-node-"))
            .map(str::to_string)
            .collect();
        schedule
    };
    let a = run("7", "a.json");
    assert!(a.len() >= 8, "{a:?}");
    assert!(a.iter().all(|l| l.ends_with("followed")), "{a:?}");
    assert_eq!(a, run("7", "b.json"));
    assert_ne!(a, run("8", "c.json"));
    let o = gfi(&["run", "scripts/xid79_recovery.lua", "--dry-run", "-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("this is a dry run (--dry-run): nothing is injected"),
        "{}",
        text(&o)
    );
}

#[test]
fn lua_types_are_valid_lua_and_cover_every_documented_function() {
    use gpu_fault_injector::lua::docs::DOCS;
    let dir = tempfile::tempdir().unwrap();
    let types = dir.path().join("types");
    let o = gfi(&["docs", "--lua-types", types.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut all = String::new();
    for f in ["gfi", "scenario", "plan", "check", "report", "rand"] {
        let body = std::fs::read_to_string(types.join(format!("{f}.lua"))).unwrap();
        assert!(body.starts_with(&format!("---@meta {f}")), "{f}");
        mlua::Lua::new()
            .load(&body)
            .set_name(f)
            .into_function()
            .unwrap_or_else(|e| panic!("{f}.lua is not valid Lua: {e}"));
        all.push_str(&body);
    }
    for d in DOCS
        .iter()
        .filter(|d| !matches!(d.group, "Modules" | "Handles"))
    {
        assert!(
            all.contains(&format!("function {}(", d.name))
                || all.contains(&format!("{} = nil", d.name)),
            "{} has no definition",
            d.name
        );
    }
    for m in [
        "function M.run(node, gpu, xid, opts)",
        "function M.define(spec)",
        "function M.burst(spec)",
        "function Node:inject_xid(gpu, xid, o)",
        "function M.threshold(",
    ] {
        assert!(all.contains(m), "{m}");
    }
}
