//! What the run assumes about NVSentinel's configuration (the values the sim reads, or
//! `--nvsentinel-values` on another backend), for expectations that follow the cluster's
//! settings rather than the catalogue alone. Unknown configuration gives `nil` everywhere, and
//! the catalogue decides.

use super::set_fn;
use crate::backend::{LabelSelector, keys};
use crate::lua::Ctx;
use crate::lua::convert::*;
use crate::xid::catalog;
use mlua::{Lua, Table, Value};

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    set_fn(
        lua,
        gfi,
        "nvsentinel",
        lua.create_function(|lua, ()| {
            let ctx = Ctx::get(lua)?;
            let Some(n) = &ctx.nvsentinel else {
                return Ok(Value::Nil);
            };
            let t = lua.create_table()?;
            // Whether fault-quarantine, node-drainer and fault-remediation act at all.
            t.set("acts", n.has_store() && !n.dry_run && !n.store_only)?;
            t.set("monitor", n.syslog_health_monitor)?;
            t.set("quarantine", n.fault_quarantine && n.cordon)?;
            t.set("drainer", n.node_drainer)?;
            t.set("remediation", n.fault_remediation && n.janitor)?;
            t.set("manual_mode", n.manual_mode)?;
            t.set("breaker", n.breaker_enabled)?;
            t.set(
                "user_namespaces",
                n.user_namespaces
                    .iter()
                    .map(|r| r.pattern.clone())
                    .collect::<Vec<_>>(),
            )?;
            t.set("system_namespaces", n.system_namespaces.as_str())?;
            Ok(Value::Table(t))
        })?,
    )?;
    set_fn(
        lua,
        gfi,
        "expected_action",
        lua.create_function(|lua, v: Value| {
            const F: &str = "expected_action";
            let ctx = Ctx::get(lua)?;
            let xid = catalog::validate_xid(integer(F, 1, "xid", &v)?)
                .map_err(|e| arg_err(F, 1, "xid", e))?;
            let info = catalog::lookup_or_generic(xid);
            let catalogue = info.default_action();
            let (action, from) = match &ctx.nvsentinel {
                Some(n) => {
                    let a = n.action_for(xid, catalogue);
                    (
                        a,
                        if a == catalogue {
                            "catalogue"
                        } else {
                            "values"
                        },
                    )
                }
                None => (catalogue, "catalogue"),
            };
            Ok((action.as_str().to_string(), from, action.is_fatal()))
        })?,
    )?;
    set_fn(
        lua,
        gfi,
        "drains_namespace",
        lua.create_function(|lua, v: Value| {
            let ctx = Ctx::get(lua)?;
            let ns = match &v {
                Value::String(s) => s.to_str()?.to_string(),
                other => {
                    return Err(arg_err(
                        "drains_namespace",
                        1,
                        "namespace",
                        format!("must be a namespace name, got {}", describe(other)),
                    ));
                }
            };
            Ok(ctx.nvsentinel.as_ref().map(|n| n.drain_mode(&ns).is_some()))
        })?,
    )?;
    set_fn(
        lua,
        gfi,
        "breaker_limits",
        lua.create_async_function(|lua, ()| async move {
            let ctx = Ctx::get(&lua)?;
            let Some(n) = ctx.nvsentinel.clone() else {
                return Ok(Value::Nil);
            };
            if !n.breaker_enabled {
                return Ok(Value::Nil);
            }
            let sel = LabelSelector::parse(&format!("{}=true", keys::GPU_PRESENT))
                .map_err(|e| err(e.to_string()))?;
            let gpu_nodes = match ctx.backend.list_nodes(Some(&sel)).await {
                Ok(v) => v.len(),
                Err(e) => return Err(backend_err("breaker_limits", e)),
            };
            let threshold = n.breaker_threshold(gpu_nodes);
            if threshold == 0 {
                return Ok(Value::Nil);
            }
            Ok(Value::Table(lua.create_table_from([
                ("threshold", threshold as f64),
                ("window", n.breaker_window.as_secs_f64()),
            ])?))
        })?,
    )?;
    Ok(())
}
