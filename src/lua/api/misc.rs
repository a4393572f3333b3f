//! Time, logging, checks, the XID catalogue, and the sim's own controls.

use super::set_fn;
use crate::ask;
use crate::backend::sim::{BreakerCursor, SimBackend};
use crate::duration;
use crate::journal::EntryKind;
use crate::lua::Ctx;
use crate::lua::convert::*;
use crate::lua::docs;
use crate::xid::catalog;
use mlua::{Function, Lua, MultiValue, Table, Value};
use serde_json::json;

fn join_tostring(lua: &Lua, args: MultiValue) -> mlua::Result<String> {
    let tostring: Function = lua.globals().get("tostring")?;
    let mut parts = Vec::with_capacity(args.len());
    for v in args {
        parts.push(tostring.call::<String>(v)?);
    }
    Ok(parts.join("\t"))
}

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    set_fn(
        lua,
        gfi,
        "sleep",
        lua.create_async_function(|lua, d: Value| async move {
            let d = duration("sleep", "argument #1 (duration)", &d)?;
            let _ = Ctx::get(&lua)?;
            tokio::time::sleep(d).await;
            Ok(())
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "now",
        lua.create_function(|lua, ()| Ok(Ctx::get(lua)?.now()))?,
    )?;

    set_fn(
        lua,
        gfi,
        "time",
        lua.create_function(|lua, ()| Ok(Ctx::get(lua)?.clock.epoch_secs_f64()))?,
    )?;

    set_fn(
        lua,
        gfi,
        "duration",
        lua.create_function(|_, d: Value| {
            Ok(duration("duration", "argument #1", &d)?.as_secs_f64())
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "fmt_duration",
        lua.create_function(|_, d: Value| {
            Ok(duration::format(duration(
                "fmt_duration",
                "argument #1",
                &d,
            )?))
        })?,
    )?;

    for (name, kind, level) in [
        ("print", EntryKind::Print, "info"),
        ("log", EntryKind::Log, "info"),
        ("info", EntryKind::Log, "info"),
        ("warn", EntryKind::Log, "warn"),
    ] {
        set_fn(
            lua,
            gfi,
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let ctx = Ctx::get(lua)?;
                let text = join_tostring(lua, args)?;
                ctx.journal.record(
                    kind,
                    None,
                    text,
                    if kind == EntryKind::Log {
                        json!({"level": level})
                    } else {
                        json!(null)
                    },
                );
                Ok(())
            })?,
        )?;
    }

    set_fn(
        lua,
        gfi,
        "check",
        lua.create_function(|lua, (name, cond, detail): (Value, Value, Value)| {
            let ctx = Ctx::get(lua)?;
            let name = match &name {
                Value::String(s) => s.to_str()?.to_string(),
                other => {
                    return Err(arg_err(
                        "check",
                        1,
                        "name",
                        format!("must be a string naming the check, got {}", describe(other)),
                    ));
                }
            };
            let ok = !matches!(cond, Value::Nil | Value::Boolean(false));
            let detail = match &detail {
                Value::Nil => None,
                v => Some(join_tostring(lua, MultiValue::from_vec(vec![v.clone()]))?),
            };
            {
                let mut c = ctx.checks.borrow_mut();
                if ok {
                    c.passed += 1;
                } else {
                    c.failed += 1;
                    c.failures.push(match &detail {
                        Some(d) => format!("{name}: {d}"),
                        None => name.clone(),
                    });
                }
            }
            let msg = match &detail {
                Some(d) => format!("{name} ({d})"),
                None => name.clone(),
            };
            ctx.journal.record(
                crate::journal::EntryKind::Check,
                None,
                msg,
                json!({"name": name, "ok": ok}),
            );
            Ok(ok)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "xid",
        lua.create_function(|lua, v: Value| {
            let n = integer("xid", 1, "xid", &v)?;
            let x = catalog::validate_xid(n).map_err(|e| arg_err("xid", 1, "xid", e))?;
            let info = catalog::lookup_or_generic(x);
            xid_table(lua, &info)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "xids",
        lua.create_function(|lua, ()| {
            let out = lua.create_table()?;
            for info in catalog::all() {
                out.push(xid_table(lua, info)?)?;
            }
            Ok(out)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "help",
        lua.create_function(|_, v: Value| {
            let text = match &v {
                Value::Nil => docs::overview(),
                Value::String(s) => docs::help_for(&s.to_str()?).unwrap_or_else(|| {
                    format!(
                        "no help for '{}'; help() lists everything",
                        s.to_string_lossy()
                    )
                }),
                Value::Function(_) => "pass the name: help(\"inject_xid\")".to_string(),
                other => format!(
                    "help expects a name such as \"wait_cordoned\", got {}",
                    describe(other)
                ),
            };
            println!("{text}");
            Ok(())
        })?,
    )?;

    let ctx = Ctx::get(lua)?;
    gfi.set("run_id", ctx.run_id.as_str())?;
    gfi.set("seed", ctx.seed)?;
    gfi.set("dry_run", ctx.dry_run)?;
    lua.globals().set("dry_run", ctx.dry_run)?;
    if ctx.backend.as_any().is::<SimBackend>() {
        register_sim(lua, gfi)?;
    }
    Ok(())
}

fn xid_table(lua: &Lua, info: &catalog::XidInfo) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 12)?;
    t.raw_set("xid", info.xid)?;
    t.raw_set("mnemonic", info.mnemonic.as_str())?;
    t.raw_set("description", info.description.as_str())?;
    t.raw_set("seed_text", info.seed_text.as_str())?;
    t.raw_set("group", info.group.as_str())?;
    t.raw_set("bucket", info.bucket.as_str())?;
    t.raw_set("text", info.driver_text())?;
    t.raw_set("action", info.default_action().as_str())?;
    t.raw_set(
        "action_from_line",
        matches!(info.rule, catalog::ActionRule::FromLine),
    )?;
    t.raw_set("fatal", info.fatal())?;
    t.raw_set("metadata_dependent", info.metadata_dependent)?;
    t.raw_set("known", info.known)?;
    if let Some(note) = &info.note {
        t.raw_set("note", note.as_str())?;
    }
    Ok(Value::Table(t))
}

fn sim_of(ctx: &Ctx) -> mlua::Result<&SimBackend> {
    ctx.backend
        .as_any()
        .downcast_ref::<SimBackend>()
        .ok_or_else(|| err("sim.*: only available on the sim backend"))
}

fn register_sim(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    let sim = lua.create_table()?;
    sim.set(
        "reboot",
        lua.create_function(|lua, v: Value| {
            let ctx = Ctx::get(lua)?;
            let name = node_name("sim.reboot", 1, &v)?;
            ask!(lua, "sim.reboot", Some(&name), sim_of(&ctx)?.reboot(&name));
            ctx.journal.record(
                crate::journal::EntryKind::SimReboot,
                Some(&name),
                "rebooted by the script",
                json!(null),
            );
            one(lua, true)
        })?,
    )?;
    sim.set(
        "restart_monitor",
        lua.create_function(|lua, v: Value| {
            let ctx = Ctx::get(lua)?;
            let name = node_name("sim.restart_monitor", 1, &v)?;
            ask!(
                lua,
                "sim.restart_monitor",
                Some(&name),
                sim_of(&ctx)?.restart_monitor(&name)
            );
            one(lua, true)
        })?,
    )?;
    sim.set(
        "reset_breaker",
        lua.create_function(|lua, opts: Value| {
            const F: &str = "sim.reset_breaker";
            let ctx = Ctx::get(lua)?;
            let o = options(F, 1, &opts, &["cursor"])?;
            let cursor = match opt_string(F, &o, "cursor")?.as_deref() {
                None | Some("CREATE") => BreakerCursor::Create,
                Some("RESUME") => BreakerCursor::Resume,
                Some(other) => {
                    return Err(err(format!(
                        "{F}: option 'cursor' must be \"CREATE\" (skip the events that arrived while tripped, as NVSentinel's runbook does) or \"RESUME\" (process them now), got \"{other}\""
                    )));
                }
            };
            sim_of(&ctx)?.reset_breaker(cursor);
            let name = if cursor == BreakerCursor::Resume { "RESUME" } else { "CREATE" };
            ctx.journal.record(
                crate::journal::EntryKind::SimResetBreaker,
                None,
                format!("circuit breaker reset by the script (status CLOSED, cursor {name}, fault-quarantine restarted)"),
                json!({"cursor": name}),
            );
            Ok(())
        })?,
    )?;
    sim.set(
        "cordon",
        lua.create_function(|lua, v: Value| {
            let ctx = Ctx::get(lua)?;
            let name = node_name("sim.cordon", 1, &v)?;
            let info = ask!(lua, "sim.cordon", Some(&name), sim_of(&ctx)?.cordon(&name));
            ctx.journal.record(
                crate::journal::EntryKind::SimAction,
                Some(&name),
                "cordoned by the script (kubectl cordon)",
                json!({"action": "cordon"}),
            );
            one(lua, super::handles::node_facts(lua, info)?)
        })?,
    )?;
    sim.set(
        "label",
        lua.create_function(|lua, (v, key, value): (Value, Value, Value)| {
            const F: &str = "sim.label";
            let ctx = Ctx::get(lua)?;
            let name = node_name(F, 1, &v)?;
            let key = match &key {
                Value::String(s) if !s.to_str()?.is_empty() => s.to_str()?.to_string(),
                other => {
                    return Err(arg_err(
                        F,
                        2,
                        "key",
                        format!("must be a label key, got {}", describe(other)),
                    ));
                }
            };
            let value = match &value {
                Value::String(s) => Some(s.to_str()?.to_string()),
                Value::Nil => None,
                other => {
                    return Err(arg_err(
                        F,
                        3,
                        "value",
                        format!(
                            "must be a string, or nil to remove the label, got {}",
                            describe(other)
                        ),
                    ));
                }
            };
            let info = ask!(
                lua,
                F,
                Some(&name),
                sim_of(&ctx)?.label(&name, &key, value.as_deref())
            );
            ctx.journal.record(
                crate::journal::EntryKind::SimAction,
                Some(&name),
                match &value {
                    Some(v) => format!("label {key}={v} set by the script"),
                    None => format!("label {key} removed by the script"),
                },
                json!({"action": "label", "key": key, "value": value}),
            );
            one(lua, super::handles::node_facts(lua, info)?)
        })?,
    )?;
    sim.set(
        "taint",
        lua.create_function(|lua, (v, t): (Value, Value)| {
            const F: &str = "sim.taint";
            let ctx = Ctx::get(lua)?;
            let name = node_name(F, 1, &v)?;
            let o = options(F, 2, &t, &["key", "value", "effect"])?
                .ok_or_else(|| arg_err(F, 2, "taint", "must be a table {key = ..., value = ..., effect = \"NoSchedule\"}"))?;
            let key = opt_string(F, &Some(o.clone()), "key")?
                .ok_or_else(|| err(format!("{F}: the taint needs a key")))?;
            let effect = opt_string(F, &Some(o.clone()), "effect")?.unwrap_or_else(|| "NoSchedule".into());
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect.as_str()) {
                return Err(err(format!("{F}: effect must be NoSchedule, PreferNoSchedule or NoExecute, got \"{effect}\"")));
            }
            let taint = crate::backend::Taint { key, value: opt_string(F, &Some(o), "value")?, effect };
            let info = ask!(lua, F, Some(&name), sim_of(&ctx)?.taint(&name, taint.clone()));
            ctx.journal.record(
                crate::journal::EntryKind::SimAction,
                Some(&name),
                format!("taint {} added by the script", taint.key),
                json!({"action": "taint", "taint": taint}),
            );
            one(lua, super::handles::node_facts(lua, info)?)
        })?,
    )?;
    sim.set(
        "real_xid",
        lua.create_function(|lua, (node, gpu, xid): (Value, Value, Value)| {
            const F: &str = "sim.real_xid";
            let ctx = Ctx::get(lua)?;
            let name = node_name(F, 1, &node)?;
            let gpu = gpu_selector(F, 2, &name, &gpu)?;
            let xid = catalog::validate_xid(integer(F, 3, "xid", &xid)?)
                .map_err(|e| arg_err(F, 3, "xid", e))?;
            let rec = ask!(lua, F, Some(&name), sim_of(&ctx)?.real_xid(&name, gpu, xid));
            ctx.journal.record(
                EntryKind::SimAction,
                Some(&name),
                format!(
                    "a real XID {xid} on GPU {} (the driver's line, no marker)",
                    rec.gpu
                ),
                json!({"action": "real_xid", "line": rec.line}),
            );
            one(lua, rec.line)
        })?,
    )?;
    sim.set(
        "stats",
        lua.create_function(|lua, ()| {
            let ctx = Ctx::get(lua)?;
            to_lua(lua, &sim_of(&ctx)?.stats())
        })?,
    )?;
    sim.set(
        "reboot_nodes",
        lua.create_function(|lua, ()| {
            let ctx = Ctx::get(lua)?;
            to_lua(lua, &sim_of(&ctx)?.reboot_nodes("RebootNode"))
        })?,
    )?;
    sim.set(
        "terminate_nodes",
        lua.create_function(|lua, ()| {
            let ctx = Ctx::get(lua)?;
            to_lua(lua, &sim_of(&ctx)?.reboot_nodes("TerminateNode"))
        })?,
    )?;
    sim.set(
        "config",
        lua.create_function(|lua, ()| {
            let ctx = Ctx::get(lua)?;
            to_lua(lua, &sim_of(&ctx)?.summary())
        })?,
    )?;
    gfi.set("sim", sim.clone())?;
    lua.globals().set("sim", sim)?;
    Ok(())
}
