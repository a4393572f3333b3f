//! Looking at the cluster: nodes, GPUs, pods, Events, kernel logs, the circuit breaker.

use super::handles::{GpuHandle, NodeHandle, node_facts};
use super::set_fn;
use crate::ask;
use crate::backend::{LabelSelector, TailOptions};
use crate::lua::Ctx;
use crate::lua::convert::*;
use mlua::{Lua, Table, Value};

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    set_fn(lua, gfi, "nodes", lua.create_async_function(|lua, selector: Value| async move {
        let ctx = Ctx::get(&lua)?;
        let sel = match &selector {
            Value::Nil => None,
            Value::String(s) => Some(
                LabelSelector::parse(&s.to_str()?).map_err(|e| arg_err("nodes", 1, "selector", e))?,
            ),
            other => {
                return Err(arg_err("nodes", 1, "selector", format!(
                    "must be a label selector such as \"nvidia.com/gpu.present=true\", got {}",
                    describe(other)
                )));
            }
        };
        let nodes = ask!(&lua, "nodes", None, ctx.backend.list_nodes(sel.as_ref()).await);
        let out = lua.create_table()?;
        for n in nodes {
            out.push(NodeHandle { name: n.name })?;
        }
        one(&lua, out)
    })?)?;

    set_fn(
        lua,
        gfi,
        "node",
        lua.create_async_function(|lua, v: Value| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("node", 1, &v)?;
            ask!(&lua, "node", Some(&name), ctx.backend.node(&name).await);
            one(&lua, NodeHandle { name })
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "node_info",
        lua.create_async_function(|lua, v: Value| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("node_info", 1, &v)?;
            let info = ask!(
                &lua,
                "node_info",
                Some(&name),
                ctx.backend.node(&name).await
            );
            one(&lua, node_facts(&lua, info)?)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "gpus",
        lua.create_async_function(|lua, v: Value| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("gpus", 1, &v)?;
            let gpus = ask!(&lua, "gpus", Some(&name), ctx.backend.gpus(&name).await);
            let out = lua.create_table()?;
            for g in &gpus {
                out.push(GpuHandle::new(&name, g))?;
            }
            one(&lua, out)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "gpu",
        lua.create_async_function(|lua, (node, which): (Value, Value)| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("gpu", 1, &node)?;
            let sel = gpu_selector("gpu", 2, &name, &which)?;
            let gpus = ask!(&lua, "gpu", Some(&name), ctx.backend.gpus(&name).await);
            let g = sel
                .resolve(&name, &gpus)
                .map_err(|e| backend_err("gpu", e))?;
            one(&lua, GpuHandle::new(&name, g))
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "pods",
        lua.create_async_function(|lua, v: Value| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("pods", 1, &v)?;
            let pods = ask!(&lua, "pods", Some(&name), ctx.backend.pods(&name).await);
            one(&lua, to_lua(&lua, &pods)?)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "events",
        lua.create_async_function(|lua, v: Value| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("events", 1, &v)?;
            let events = ask!(&lua, "events", Some(&name), ctx.backend.events(&name).await);
            one(&lua, to_lua(&lua, &events)?)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "kmsg_tail",
        lua.create_async_function(|lua, (v, opts): (Value, Value)| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("kmsg_tail", 1, &v)?;
            let o = options("kmsg_tail", 2, &opts, &["grep", "since", "limit"])?;
            let tail = TailOptions {
                grep: opt_string("kmsg_tail", &o, "grep")?,
                // The bounds of the agent's `GET /kmsg`, so a script behaves alike everywhere.
                since_seq: match opt_integer("kmsg_tail", &o, "since")? {
                    Some(s) if s < 0 => {
                        return Err(err(format!(
                            "kmsg_tail: option 'since' must be a kmsg sequence number (0 or more), got {s}"
                        )));
                    }
                    s => s.map(|s| s as u64),
                },
                limit: match opt_integer("kmsg_tail", &o, "limit")? {
                    Some(l) if !(1..=10_000).contains(&l) => {
                        return Err(err(format!(
                            "kmsg_tail: option 'limit' must be 1-10000, got {l}"
                        )));
                    }
                    Some(l) => Some(l as usize),
                    None => Some(50),
                },
            };
            let records = ask!(
                &lua,
                "kmsg_tail",
                Some(&name),
                ctx.backend.kmsg_tail(&name, &tail).await
            );
            one(&lua, to_lua(&lua, &records)?)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "uncordon",
        lua.create_async_function(|lua, v: Value| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("uncordon", 1, &v)?;
            let info = ask!(
                &lua,
                "uncordon",
                Some(&name),
                ctx.backend.uncordon(&name).await
            );
            ctx.journal.record(
                crate::journal::EntryKind::Uncordon,
                Some(&name),
                "uncordoned by the script",
                serde_json::Value::Null,
            );
            one(&lua, node_facts(&lua, info)?)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "heal",
        lua.create_async_function(|lua, v: Value| async move {
            let ctx = Ctx::get(&lua)?;
            let name = node_name("heal", 1, &v)?;
            let report = ask!(&lua, "heal", Some(&name), ctx.backend.heal(&name).await);
            let mut removed: Vec<String> = report.removed_labels.clone();
            removed.extend(report.removed_annotations.iter().cloned());
            removed.extend(
                report
                    .removed_taints
                    .iter()
                    .map(|t| format!("taint {}", t.key)),
            );
            ctx.journal.record(
                crate::journal::EntryKind::Heal,
                Some(&name),
                format!(
                    "healed by the script: {}{}",
                    if report.uncordoned {
                        "uncordoned"
                    } else {
                        "was schedulable"
                    },
                    if removed.is_empty() {
                        String::new()
                    } else {
                        format!("; removed {}", removed.join(", "))
                    }
                ),
                serde_json::json!({
                    "uncordoned": report.uncordoned,
                    "removed_labels": report.removed_labels,
                    "removed_annotations": report.removed_annotations,
                    "removed_taints": report.removed_taints,
                }),
            );
            let t = lua.create_table()?;
            t.set("uncordoned", report.uncordoned)?;
            t.set("removed_labels", to_lua(&lua, &report.removed_labels)?)?;
            t.set(
                "removed_annotations",
                to_lua(&lua, &report.removed_annotations)?,
            )?;
            t.set("removed_taints", to_lua(&lua, &report.removed_taints)?)?;
            t.set("left", to_lua(&lua, &report.left)?)?;
            t.set("node", node_facts(&lua, report.node)?)?;
            one(&lua, t)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "circuit_breaker",
        lua.create_async_function(|lua, ()| async move {
            let ctx = Ctx::get(&lua)?;
            let b = ask!(
                &lua,
                "circuit_breaker",
                None,
                ctx.backend.circuit_breaker().await
            );
            one(&lua, to_lua(&lua, &b)?)
        })?,
    )?;

    // The backend's name, for scripts that adapt (`if gfi.backend == "sim"`).
    let ctx = Ctx::get(lua)?;
    gfi.set("backend", ctx.backend.name())?;
    Ok(())
}
