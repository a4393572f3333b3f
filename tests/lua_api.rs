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
        let result = match report.outcome {
            SessionOutcome::Failed(e) => Err(e),
            _ if !report.cleanup_errors.is_empty() => Err(report.cleanup_errors.join("\n")),
            _ if !report.task_errors.is_empty() => Err(report.task_errors.join("\n")),
            _ => Ok(()),
        };
        Outcome { result, journal }
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
    monitor_start,
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
