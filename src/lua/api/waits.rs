//! Waits: each has a timeout and returns what it observed and how long it took.
//! A timeout is an answer, not an error: `nil, message, result`.

use super::handles::node_facts;
use super::set_fn;
use crate::ask;
use crate::backend::NodePredicate;
use crate::duration;
use crate::lua::Ctx;
use crate::lua::convert::*;
use mlua::{Lua, MultiValue, Table, Value};
use serde_json::json;
use std::time::Duration;

const MIN: u64 = 60;

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    set_fn(
        lua,
        gfi,
        "wait_cordoned",
        lua.create_async_function(|lua, (node, opts): (Value, Value)| async move {
            let o = options("wait_cordoned", 2, &opts, &["timeout"])?;
            wait(
                &lua,
                "wait_cordoned",
                &node,
                NodePredicate::Cordoned,
                &o,
                10 * MIN,
            )
            .await
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "wait_uncordoned",
        lua.create_async_function(|lua, (node, opts): (Value, Value)| async move {
            let o = options("wait_uncordoned", 2, &opts, &["timeout"])?;
            wait(
                &lua,
                "wait_uncordoned",
                &node,
                NodePredicate::Uncordoned,
                &o,
                60 * MIN,
            )
            .await
        })?,
    )?;

    set_fn(lua, gfi, "wait_condition", lua.create_async_function(|lua, (node, type_, opts): (Value, Value, Value)| async move {
        const F: &str = "wait_condition";
        let type_ = match &type_ {
            Value::String(s) if !s.to_str()?.is_empty() => s.to_str()?.to_string(),
            other => return Err(arg_err(F, 2, "type", format!("must be a condition type such as \"SysLogsXIDError\" or \"Ready\", got {}", describe(other)))),
        };
        let o = options(F, 3, &opts, &["timeout", "status"])?;
        let status = opt_string(F, &o, "status")?.unwrap_or_else(|| "True".into());
        if !["True", "False", "Unknown"].iter().any(|s| s.eq_ignore_ascii_case(&status)) {
            return Err(err(format!("{F}: option 'status' must be \"True\", \"False\" or \"Unknown\", got \"{status}\"")));
        }
        wait(&lua, F, &node, NodePredicate::Condition { type_, status }, &o, 10 * MIN).await
    })?)?;

    set_fn(lua, gfi, "wait_state", lua.create_async_function(|lua, (node, value, opts): (Value, Value, Value)| async move {
        const F: &str = "wait_state";
        let bad = |other: &Value| arg_err(F, 2, "value", format!(
            "must be a state such as \"quarantined\", \"draining\", \"drain-succeeded\", \"remediation-succeeded\", a list of states, or nil for \"label removed\", got {}",
            describe(other)
        ));
        let predicate = match &value {
            Value::String(s) => NodePredicate::State { value: Some(s.to_str()?.to_string()) },
            Value::Nil | Value::Boolean(false) => NodePredicate::State { value: None },
            Value::Table(t) => {
                let mut values = Vec::new();
                for v in t.sequence_values::<Value>() {
                    match v? {
                        Value::String(s) => values.push(s.to_str()?.to_string()),
                        other => return Err(bad(&other)),
                    }
                }
                if values.is_empty() {
                    return Err(bad(&value));
                }
                NodePredicate::StateAny { values }
            }
            other => return Err(bad(other)),
        };
        let o = options(F, 3, &opts, &["timeout"])?;
        wait(&lua, F, &node, predicate, &o, 30 * MIN).await
    })?)?;

    set_fn(
        lua,
        gfi,
        "wait_label",
        lua.create_async_function(
            |lua, (node, key, value, opts): (Value, Value, Value, Value)| async move {
                const F: &str = "wait_label";
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
                    Value::Nil | Value::Boolean(false) => None,
                    other => {
                        return Err(arg_err(
                            F,
                            3,
                            "value",
                            format!(
                                "must be a string, or nil for \"label removed\", got {}",
                                describe(other)
                            ),
                        ));
                    }
                };
                let o = options(F, 4, &opts, &["timeout"])?;
                wait(
                    &lua,
                    F,
                    &node,
                    NodePredicate::Label { key, value },
                    &o,
                    30 * MIN,
                )
                .await
            },
        )?,
    )?;

    set_fn(
        lua,
        gfi,
        "wait_rebooted",
        lua.create_async_function(|lua, (node, opts): (Value, Value)| async move {
            const F: &str = "wait_rebooted";
            let o = options(F, 2, &opts, &["timeout", "since"])?;
            let since = match opt_string(F, &o, "since")? {
                Some(b) => b,
                None => {
                    let ctx = Ctx::get(&lua)?;
                    let name = node_name(F, 1, &node)?;
                    ask!(&lua, F, Some(&name), ctx.backend.node(&name).await).boot_id
                }
            };
            wait(
                &lua,
                F,
                &node,
                NodePredicate::Rebooted {
                    since_boot_id: since,
                },
                &o,
                60 * MIN,
            )
            .await
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "wait_ready",
        lua.create_async_function(|lua, (node, opts): (Value, Value)| async move {
            const F: &str = "wait_ready";
            let o = options(F, 2, &opts, &["timeout", "ready"])?;
            let ready = match &o {
                Some(t) => match t.get::<Value>("ready")? {
                    Value::Nil => true,
                    Value::Boolean(b) => b,
                    other => {
                        return Err(err(format!(
                            "{F}: option 'ready' must be true or false, got {}",
                            describe(&other)
                        )));
                    }
                },
                None => true,
            };
            wait(&lua, F, &node, NodePredicate::Ready { ready }, &o, 30 * MIN).await
        })?,
    )?;
    Ok(())
}

async fn wait(
    lua: &Lua,
    func: &str,
    node: &Value,
    predicate: NodePredicate,
    opts: &Option<Table>,
    default_secs: u64,
) -> mlua::Result<MultiValue> {
    let ctx = Ctx::get(lua)?;
    let name = node_name(func, 1, node)?;
    let timeout = opt_duration(func, opts, "timeout")?.unwrap_or(Duration::from_secs(default_secs));
    let what = predicate.describe();
    let started = ctx.now();
    ctx.journal.record(
        crate::journal::EntryKind::WaitStart,
        Some(&name),
        format!("waiting for {what} (timeout {})", duration::format(timeout)),
        json!({"for": what, "timeout": timeout.as_secs_f64()}),
    );
    let outcome = ask!(
        lua,
        func,
        Some(&name),
        ctx.backend.wait_node(&name, &predicate, timeout).await
    );
    let elapsed = ctx.now() - started;
    let result = lua.create_table()?;
    result.set("ok", outcome.satisfied)?;
    result.set("node", name.as_str())?;
    result.set("waited_for", what.as_str())?;
    result.set("elapsed", elapsed)?;
    result.set("at", ctx.now())?;
    result.set("timeout", timeout.as_secs_f64())?;
    result.set("observed", node_facts(lua, &outcome.node)?)?;
    let summary = outcome.node.summary();
    if outcome.satisfied {
        ctx.journal.record(
            crate::journal::EntryKind::Wait,
            Some(&name),
            format!(
                "{what} after {}",
                duration::format(Duration::from_secs_f64(elapsed.max(0.0)))
            ),
            json!({"for": what, "ok": true, "elapsed": elapsed}),
        );
        Ok(MultiValue::from_vec(vec![Value::Table(result)]))
    } else {
        let msg = format!(
            "{func}: {name} not {what} within {} (observed: {summary})",
            duration::format(timeout)
        );
        ctx.journal.record(
            crate::journal::EntryKind::Wait,
            Some(&name),
            format!(
                "not {what} within {} (observed: {summary})",
                duration::format(timeout)
            ),
            json!({"for": what, "ok": false, "elapsed": elapsed}),
        );
        Ok(MultiValue::from_vec(vec![
            Value::Nil,
            Value::String(lua.create_string(msg)?),
            Value::Table(result),
        ]))
    }
}
