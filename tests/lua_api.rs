//! The Lua API tested in Lua: every `tests/lua/*.lua` file runs in a fresh host on a fresh
//! simulated cluster and must finish without error. A file may start with `--! sim: {yaml}`
//! and `--! values: {yaml}` lines to shape the cluster and NVSentinel.

use gpu_fault_injector::backend::sim::config::SimConfig;
use gpu_fault_injector::backend::sim::values::NvsConfig;
use gpu_fault_injector::journal::Journal;
use gpu_fault_injector::lua::sandbox::Limits;
use gpu_fault_injector::session::{
    BackendSource, Outcome as SessionOutcome, Session, SessionOptions,
};
use std::path::Path;

/// Helpers only the tests get.
const TEST_PRELUDE: &str = r#"
function expect_error(f, needle)
  local ok, err = pcall(f)
  assert(not ok, "expected an error containing: " .. needle)
  local text = tostring(err)
  assert(text:find(needle, 1, true), ("error %q does not contain %q"):format(text, needle))
  return text
end
-- An RFC 3339 time of the run's clock as run seconds (the run starts 2026-01-01T00:00:00Z).
function run_time_of(t)
  local y, mo, d, h, mi, s = t:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
  assert(y == "2026" and mo == "01", "expected a time in January 2026, got " .. tostring(t))
  return ((tonumber(d) - 1) * 24 + tonumber(h)) * 3600 + tonumber(mi) * 60 + tonumber(s)
end
"#;

struct Outcome {
    result: Result<(), String>,
    journal: Journal,
    /// How the script's part ended (a guard's stop is an `Err` in `result` too, so that no
    /// test file passes by being stopped early).
    ended: SessionOutcome,
    cleanup_errors: Vec<String>,
}

fn run_lua(path: &Path, seed: u64, limits: Limits) -> Outcome {
    let source = std::fs::read_to_string(path).unwrap();
    let mut cfg = SimConfig::default();
    let mut nvs = NvsConfig::default();
    for line in source.lines().take_while(|l| l.starts_with("--!")) {
        let line = line.trim_start_matches("--!").trim();
        if let Some(y) = line.strip_prefix("sim:") {
            cfg = serde_yaml::from_str(y)
                .unwrap_or_else(|e| panic!("{}: bad sim header: {e}", path.display()));
        } else if let Some(y) = line.strip_prefix("values:") {
            nvs = NvsConfig::from_yaml(y)
                .unwrap_or_else(|e| panic!("{}: bad values header: {e}", path.display()));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let session = Session::new(SessionOptions {
            seed: Some(seed),
            run_id: Some("rtest".into()),
            script: path.display().to_string(),
            title: "gfi test".into(),
            limits,
            script_dir: path.parent().map(Path::to_path_buf),
            args: vec![
                ("answer".into(), "42".into()),
                ("flag".into(), "yes".into()),
            ],
            ..SessionOptions::new(BackendSource::Sim {
                config: Box::new(cfg),
                values: Box::new(nvs),
            })
        })
        .unwrap();
        session
            .host()
            .eval(TEST_PRELUDE, "=test-prelude")
            .await
            .unwrap();
        let outcome = session.run_file(path).await;
        let journal = session.journal().clone();
        let report = session
            .finish(outcome, Default::default(), std::future::pending())
            .await;
        let result = match &report.outcome {
            SessionOutcome::Failed(e) => Err(e.clone()),
            SessionOutcome::Stopped(s) => Err(s.describe()),
            _ if !report.cleanup_errors.is_empty() => Err(report.cleanup_errors.join("\n")),
            _ if !report.task_errors.is_empty() => Err(report.task_errors.join("\n")),
            _ => Ok(()),
        };
        Outcome {
            result,
            journal,
            ended: report.outcome,
            cleanup_errors: report.cleanup_errors,
        }
    })
}

fn lua_file(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/lua")
        .join(format!("{name}.lua"));
    let out = run_lua(&path, 7, Limits::default());
    if let Err(e) = out.result {
        panic!("{}:\n{e}", path.display());
    }
}

macro_rules! lua_tests {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { lua_file(stringify!($name)); } )*
        const LISTED: &[&str] = &[$(stringify!($name)),*];
    };
}

lua_tests!(
    nodes,
    node_facts,
    inject,
    waits,
    pipeline,
    breaker_trips_at_the_next_event,
    breaker_max_nodes_bounds_the_threshold,
    preexisting_cordon_is_never_undone,
    opted_out_nodes_are_ignored,
    monitor_runs_only_where_the_driver_is_installed,
    v1_13_0_cannot_see_kmsg_injections,
    lines_of_the_previous_boot_are_never_processed,
    monitor_state_surviving_reboot_scans_the_new_boot,
    replace_vm_creates_a_terminatenode,
    janitor_exclusions_reject_the_rebootnode,
    without_a_datastore_nothing_acts,
    datastore_ids_shape_the_cr_names,
    dry_run_changes_nothing,
    store_only_processes_nothing,
    wait_remediation,
    wait_remediation_manual_mode,
    wait_drained,
    heal,
    manual_mode,
    tasks,
    sandbox,
    time,
    catalogue,
    stdlib_rand,
    stdlib_report,
    stdlib_check,
    stdlib_scenario,
    stdlib_plan,
    stdlib_expect,
    monitor_start,
    guard,
);

#[test]
fn every_lua_test_file_is_listed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua");
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) == Some("lua") {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            if stem.starts_with('_') {
                continue;
            }
            assert!(
                LISTED.contains(&stem),
                "tests/lua/{stem}.lua is not listed in lua_tests!"
            );
        }
    }
}

fn temp_script(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.lua"), text).unwrap();
    dir
}

#[test]
fn cleanups_run_newest_first_even_when_the_script_fails() {
    let dir = temp_script(
        r#"
        cleanup(function() print("first registered") end, "one")
        cleanup(function() print("second registered") end, "two")
        cleanup(function() error("cleanup trouble") end, "three")
        local n = gpu_nodes()[1]
        assert(inject_xid(n, 0, 79))
        error("the plan failed")
        "#,
    );
    let out = run_lua(&dir.path().join("s.lua"), 1, Limits::default());
    let err = out.result.unwrap_err();
    assert!(err.contains("the plan failed"), "{err}");
    let printed: Vec<String> = out
        .journal
        .entries()
        .iter()
        .filter(|e| e.kind == "print")
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(printed, vec!["second registered", "first registered"]);
    let failed: Vec<_> = out
        .journal
        .entries()
        .into_iter()
        .filter(|e| e.kind == "cleanup.failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].message.contains("cleanup 'three' failed: ")
            && failed[0].message.contains("cleanup trouble")
    );
}

#[test]
fn an_unobserved_failed_task_fails_the_run() {
    let dir = temp_script("spawn('doomed', function() error('boom') end) sleep(1)");
    let err = run_lua(&dir.path().join("s.lua"), 1, Limits::default())
        .result
        .unwrap_err();
    assert!(
        err.contains("task 'doomed' failed and nobody waited for it") && err.contains("boom"),
        "{err}"
    );
}

#[test]
fn budgets_stop_runaway_scripts() {
    let dir = temp_script("local x = 0 while true do x = x + 1 end");
    let limits = Limits {
        instructions: 5_000_000,
        ..Default::default()
    };
    let err = run_lua(&dir.path().join("s.lua"), 1, limits)
        .result
        .unwrap_err();
    assert!(
        err.contains("instruction budget of 5000000 exhausted"),
        "{err}"
    );
    let dir = temp_script("local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(64) .. i end");
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Default::default()
    };
    let err = run_lua(&dir.path().join("s.lua"), 1, limits)
        .result
        .unwrap_err();
    assert!(err.contains("memory limit"), "{err}");
}

#[test]
fn unsafe_libraries_only_when_allowed() {
    let dir =
        temp_script("assert(io == nil and os.execute == nil and debug == nil, 'sandbox leaks')");
    run_lua(&dir.path().join("s.lua"), 1, Limits::default())
        .result
        .unwrap();
    let dir = temp_script(
        "assert(io ~= nil and os.execute ~= nil and debug ~= nil, 'unsafe libs missing')",
    );
    let limits = Limits {
        allow_unsafe: true,
        ..Default::default()
    };
    run_lua(&dir.path().join("s.lua"), 1, limits)
        .result
        .unwrap();
}

#[test]
fn modules_beside_the_script_shadow_nothing_and_load() {
    let dir = temp_script(
        "local m = require 'mymod' assert(m.answer == 42) assert(require('gfi.report').stats ~= nil)",
    );
    std::fs::write(dir.path().join("mymod.lua"), "return { answer = 42 }").unwrap();
    run_lua(&dir.path().join("s.lua"), 1, Limits::default())
        .result
        .unwrap();
}

/// Runs a guarded script that must be stopped: returns the stop and the journal.
fn stopped(text: &str) -> (gpu_fault_injector::guard::Stop, Outcome) {
    let dir = temp_script(text);
    let out = run_lua(&dir.path().join("s.lua"), 3, Limits::default());
    match &out.ended {
        SessionOutcome::Stopped(s) => ((**s).clone(), out),
        other => panic!("expected a guard stop, got {other:?}: {:?}", out.result),
    }
}

fn printed(out: &Outcome) -> Vec<String> {
    out.journal
        .entries()
        .iter()
        .filter(|e| e.kind == "print")
        .map(|e| e.message.clone())
        .collect()
}

fn injections(out: &Outcome) -> usize {
    out.journal
        .entries()
        .iter()
        .filter(|e| e.kind == "inject")
        .count()
}

#[test]
fn max_unavailable_stops_the_injection_that_would_exceed_it_and_cleanups_run() {
    for limit in ["2", "\"20%\""] {
        let (stop, out) = stopped(&format!(
            r#"--! sim: {{nodes: 10}}
            guard {{ max_unavailable = {limit} }}
            cleanup(function() print("cleanup ran") end, "note")
            local ns = gpu_nodes()
            for i = 1, 2 do assert(inject_xid(ns[i], 0, 79)); assert(wait_cordoned(ns[i])) end
            -- A non-fatal XID makes no node unavailable: allowed.
            assert(inject_xid(ns[3], 0, 13))
            -- Caught or not, the refused injection ends the run, at the script's next wait.
            local ok, err = pcall(inject_xid, ns[4], 0, 79)
            assert(not ok and tostring(err):find("max_unavailable"), tostring(err))
            print("caught")
            sleep(1)
            print("not reached")
            "#
        ));
        assert_eq!(stop.rule, "max_unavailable", "{stop:?}");
        assert_eq!(stop.node.as_deref(), Some("gpu-node-004"));
        assert!(
            stop.reason.contains("2 of 10 pool nodes are unavailable")
                && stop.reason.contains("allows 2"),
            "{}",
            stop.reason
        );
        assert_eq!(printed(&out), ["caught", "cleanup ran"]);
        assert_eq!(injections(&out), 3);
        let stops: Vec<_> = out
            .journal
            .entries()
            .into_iter()
            .filter(|e| e.kind == "guard.stop")
            .collect();
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].data["rule"], "max_unavailable");
    }
}

#[test]
fn per_node_rules_stop_before_touching_a_node_outside_them() {
    let cases = [
        (
            r#"guard { require_label = "gfi.dev/fault-target=true" }
            sim.label("gpu-node-001", "gfi.dev/fault-target", "true")
            assert(inject_xid("gpu-node-001", 0, 13))
            inject_xid("gpu-node-002", 0, 13)"#,
            "require_label",
            "gpu-node-002",
        ),
        (
            r#"guard {}
            sim.label("gpu-node-003", "k8saas.nvidia.com/ManagedByNVSentinel", "false")
            inject_xid("gpu-node-003", 0, 79)"#,
            "opted_out",
            "gpu-node-003",
        ),
        (
            r#"guard { max_unavailable = 3, pool = "pool=a" }
            sim.label("gpu-node-001", "pool", "a")
            assert(inject_xid("gpu-node-001", 0, 79))
            inject_xid("gpu-node-002", 0, 79)"#,
            "pool",
            "gpu-node-002",
        ),
        // The sim's clock starts on Thursday 2026-01-01 at 00:00 UTC (01:00 at +01:00).
        (
            r#"guard { window = "Thu 00:30-02:00 +01:00" }
            assert(inject_xid("gpu-node-001", 0, 13))
            sleep("1h")
            inject_xid("gpu-node-001", 0, 13)"#,
            "window",
            "gpu-node-001",
        ),
        // In New York that is Wednesday 19:00 EST: a named zone's window is its local day.
        (
            r#"guard { window = "Wed 18:00-20:00 America/New_York" }
            assert(inject_xid("gpu-node-001", 0, 13))
            sleep("1h")
            inject_xid("gpu-node-001", 0, 13)"#,
            "window",
            "gpu-node-001",
        ),
    ];
    for (script, rule, node) in cases {
        let (stop, out) = stopped(script);
        assert_eq!(stop.rule, rule, "{stop:?}");
        assert_eq!(stop.node.as_deref(), Some(node));
        assert_eq!(injections(&out), usize::from(rule != "opted_out"), "{rule}");
    }
}

#[test]
fn a_tripped_breaker_stops_the_plan() {
    let (stop, out) = stopped(
        r#"--! sim: {nodes: 8}
        local ns = gpu_nodes()
        for i = 1, 4 do assert(inject_xid(ns[i], 0, 79)) end
        for i = 1, 4 do assert(wait_cordoned(ns[i])) end
        assert(inject_xid(ns[7], 0, 13))
        sleep("1m")
        assert(circuit_breaker().status == "TRIPPED")
        guard { breaker = true }
        inject_xid(ns[8], 0, 79)
        "#,
    );
    assert_eq!(stop.rule, "breaker");
    assert!(stop.reason.contains("TRIPPED"), "{}", stop.reason);
    assert_eq!(injections(&out), 5);
}

#[test]
fn the_tripwire_fires_on_a_line_without_the_marker_and_not_on_the_runs_own() {
    let (stop, out) = stopped(
        r#"
        guard {}
        cleanup(function() print("cleanup ran") end, "note")
        local n = node("gpu-node-001")
        -- The run's own lines, marked or not (the seed style has no name field), pass.
        assert(inject_xid(n, 0, 13))
        assert(inject_xid(n, 1, 13, { style = "seed" }))
        assert(inject_xid(n, 2, 31, { process_name = "my-job" }))
        sleep("2m")
        -- A real fault on a node the run does not target is not its business.
        sim.real_xid("gpu-node-005", 0, 79)
        sleep("2m")
        assert(guard().stop == nil, "no stop yet")
        print("own lines passed")
        -- A real fault on a target: the plan ends even in the middle of a wait.
        sim.real_xid(n, 3, 48)
        wait_cordoned("gpu-node-002", { timeout = "1h" })
        print("not reached")
        "#,
    );
    assert_eq!(stop.kind, gpu_fault_injector::guard::StopKind::Tripwire);
    assert_eq!(stop.rule, "real_fault");
    assert_eq!(stop.node.as_deref(), Some("gpu-node-001"));
    assert_eq!(stop.detail["xid"], 48);
    let line = stop.detail["line"].as_str().unwrap();
    assert!(
        line.contains("name=python3") && !line.contains("gfi:"),
        "{line}"
    );
    assert!(
        stop.reason.contains("possible") || stop.describe().contains("possible real GPU fault")
    );
    assert_eq!(printed(&out), ["own lines passed", "cleanup ran"]);
    assert!(out.cleanup_errors.is_empty());
}

#[test]
fn the_tripwire_watches_a_plans_targets_before_their_first_fault() {
    let (stop, out) = stopped(
        r#"
        local plan = require "plan"
        guard { max_unavailable = 3 }
        local p = plan.from {
          { at = "1h", node = "gpu-node-003", xid = 79 },
          { at = "2h", node = "gpu-node-004", xid = 79 },
        }
        spawn(function()
          sleep("10m")
          -- Not a target of the plan: no stop.
          sim.real_xid("gpu-node-005", 0, 79)
          sleep("5m")
          print("non-target passed")
          -- A target the plan has not touched yet.
          sim.real_xid("gpu-node-004", 1, 48)
        end)
        p:run()
        print("not reached")
        "#,
    );
    assert_eq!(stop.rule, "real_fault");
    assert_eq!(stop.node.as_deref(), Some("gpu-node-004"));
    assert_eq!(stop.detail["xid"], 48);
    assert_eq!(printed(&out), ["non-target passed"]);
    assert_eq!(injections(&out), 0, "stopped before the plan's first fault");
}

#[test]
fn a_guard_stop_ends_hundreds_of_tasks_and_runs_their_cleanups() {
    let (stop, out) = stopped(
        r#"--! sim: {nodes: 40}
        guard { max_unavailable = 5 }
        local ns = gpu_nodes()
        cleanup(function() print("cleanup ran") end, "note")
        local tasks = {}
        for i = 1, 400 do
          tasks[i] = spawn(function()
            sleep(i * 7)
            local n = ns[(i - 1) % #ns + 1]
            if not n:cordoned() then inject_xid(n, i % 8, 79) end
            sleep("10h")
          end)
        end
        for _, t in ipairs(tasks) do t:wait() end
        print("not reached")
        "#,
    );
    assert_eq!(stop.rule, "max_unavailable");
    assert_eq!(printed(&out), ["cleanup ran"]);
    // Tasks still running were cancelled, none failed unobserved.
    assert!(injections(&out) >= 5, "{}", injections(&out));
    let cancelled = out
        .journal
        .entries()
        .iter()
        .filter(|e| e.kind == "task.cancelled")
        .count();
    assert!(cancelled > 300, "{cancelled}");
}

#[test]
fn a_scenarios_cleanup_runs_after_a_guard_stop() {
    let (stop, out) = stopped(
        r#"--! sim: {nodes: 10}
        local scenario = require "scenario"
        return scenario.define {
          name = "stopped", description = "stopped by its guard",
          setup = function() guard { max_unavailable = 1 } end,
          action = function()
            local ns = gpu_nodes()
            assert(inject_xid(ns[1], 0, 79)); assert(wait_cordoned(ns[1]))
            inject_xid(ns[2], 0, 79)
          end,
          verify = function() print("verify ran") end,
          cleanup = function() print("scenario cleanup ran") end,
        }
        "#,
    );
    assert_eq!(stop.rule, "max_unavailable");
    assert_eq!(printed(&out), ["scenario cleanup ran"]);
}

#[test]
fn expect_records_a_check_per_stage_and_a_missed_limit_fails_its_check() {
    let dir = temp_script(
        r#"
        local scenario = require "scenario"
        local r = scenario.expect("gpu-node-002", 1, 79, { within = { detected = "1s", uncordoned = "1h" } })
        assert(r.ok, "the reaction itself was as expected")
        scenario.expect("gpu-node-003", 0, 74, { window = "2m" })
        "#,
    );
    let out = run_lua(&dir.path().join("s.lua"), 5, Limits::default());
    out.result.unwrap();
    let checks: Vec<(String, bool)> = out
        .journal
        .entries()
        .iter()
        .filter(|e| e.kind == "check")
        .map(|e| {
            (
                e.data["name"].as_str().unwrap().to_string(),
                e.data["ok"] == true,
            )
        })
        .collect();
    let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
    for stage in [
        "detected within 1s",
        "cordoned",
        "drained",
        "remediated",
        "rebooted",
        "ready",
        "uncordoned within 1h",
    ] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("XID 79 on gpu-node-002 GPU 1: ") && n.ends_with(stage)),
            "{stage}: {names:?}"
        );
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        failed,
        ["XID 79 on gpu-node-002 GPU 1: detected within 1s"],
        "{checks:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("drained only the drained namespaces"))
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("RebootNode created and completed"))
    );
    assert!(
        names.contains(&"XID 74 on gpu-node-003 GPU 0: stays cordoned"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("XID 74") && n.ends_with("rebooted"))
    );
}
