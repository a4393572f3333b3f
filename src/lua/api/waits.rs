//! Waits: each has a timeout and returns what it observed and how long it took.
//! A timeout is an answer, not an error: `nil, message, result`. Every wait but
//! `wait_rebooted` (whose `since` is a boot id) takes `since`, a fault (or a run time), and
//! then measures `elapsed` from it; the waits on NVSentinel's objects (`wait_remediation`,
//! `wait_drained`) also count only what happened after it.

use super::handles::node_facts;
use super::set_fn;
use crate::ask;
use crate::backend::{DrainScope, NodePredicate, WaitSince};
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
            let o = options("wait_cordoned", 2, &opts, &["timeout", "since"])?;
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
            let o = options("wait_uncordoned", 2, &opts, &["timeout", "since"])?;
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
        let o = options(F, 3, &opts, &["timeout", "status", "since"])?;
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
        let o = options(F, 3, &opts, &["timeout", "since"])?;
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
                let o = options(F, 4, &opts, &["timeout", "since"])?;
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
            let o = options(F, 2, &opts, &["timeout", "ready", "since"])?;
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

    set_fn(
        lua,
        gfi,
        "wait_remediation",
        lua.create_async_function(|lua, (node, opts): (Value, Value)| async move {
            const F: &str = "wait_remediation";
            let o = options(F, 2, &opts, &["timeout", "since"])?;
            wait_remediation(&lua, &node, &o).await
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "wait_drained",
        lua.create_async_function(|lua, (node, opts): (Value, Value)| async move {
            const F: &str = "wait_drained";
            let o = options(F, 2, &opts, &["timeout", "since", "namespaces"])?;
            let namespaces = match &o {
                Some(t) => match t.get::<Value>("namespaces")? {
                    Value::Nil => None,
                    Value::Table(list) => {
                        let mut names = Vec::new();
                        for v in list.sequence_values::<Value>() {
                            match v? {
                                Value::String(s) => names.push(s.to_str()?.to_string()),
                                other => {
                                    return Err(err(format!(
                                        "{F}: option 'namespaces' must list namespace names, got {}",
                                        describe(&other)
                                    )));
                                }
                            }
                        }
                        Some(names)
                    }
                    other => {
                        return Err(err(format!(
                            "{F}: option 'namespaces' must be a list of namespace names, got {}",
                            describe(&other)
                        )));
                    }
                },
                None => None,
            };
            wait_drained(&lua, &node, DrainScope { namespaces }, &o).await
        })?,
    )?;
    Ok(())
}

/// The `since` option: a fault (what `inject_xid` returned: its `at`) or a run time in
/// seconds. Returns the run time and the window for the backend.
fn since(func: &str, ctx: &Ctx, o: &Option<Table>) -> mlua::Result<Option<(f64, WaitSince)>> {
    let Some(t) = o else { return Ok(None) };
    let at = match t.get::<Value>("since")? {
        Value::Nil => return Ok(None),
        Value::Integer(i) => i as f64,
        Value::Number(n) => n,
        Value::Table(fault) => match fault.get::<Value>("at")? {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => {
                return Err(err(format!(
                    "{func}: option 'since' is a table without 'at': pass the fault inject_xid returned, or a run time such as now()"
                )));
            }
        },
        other => {
            return Err(err(format!(
                "{func}: option 'since' must be a fault (what inject_xid returned) or a run time in seconds (now()), got {}",
                describe(&other)
            )));
        }
    };
    if !at.is_finite() || at < 0.0 {
        return Err(err(format!(
            "{func}: option 'since' must be a run time of 0 or more seconds, got {at}"
        )));
    }
    let time = ctx.clock.at(Duration::from_secs_f64(at));
    Ok(Some((at, WaitSince { since: Some(time) })))
}

/// An RFC 3339 time of the cluster as a run time (seconds since the start).
fn run_time(ctx: &Ctx, rfc3339: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    let d = t.with_timezone(&chrono::Utc) - ctx.clock.at(Duration::ZERO);
    Some(d.num_milliseconds() as f64 / 1000.0)
}

/// What the NVSentinel-object waits share: the journal entries, `elapsed` from `since`, and
/// the `nil, message, result` of a timeout.
struct ObjectWait<'a> {
    lua: &'a Lua,
    ctx: std::rc::Rc<Ctx>,
    func: &'static str,
    name: String,
    what: String,
    timeout: Duration,
    started: f64,
    since: Option<(f64, WaitSince)>,
}

impl<'a> ObjectWait<'a> {
    fn start(
        lua: &'a Lua,
        func: &'static str,
        node: &Value,
        what: &str,
        opts: &Option<Table>,
        default_secs: u64,
    ) -> mlua::Result<Self> {
        let ctx = Ctx::get(lua)?;
        let name = node_name(func, 1, node)?;
        let timeout =
            opt_duration(func, opts, "timeout")?.unwrap_or(Duration::from_secs(default_secs));
        let since = since(func, &ctx, opts)?;
        let started = ctx.now();
        ctx.journal.record(
            crate::journal::EntryKind::WaitStart,
            Some(&name),
            format!("waiting for {what} (timeout {})", duration::format(timeout)),
            json!({"for": what, "timeout": timeout.as_secs_f64(), "since": since.as_ref().map(|s| s.0)}),
        );
        Ok(ObjectWait {
            lua,
            ctx,
            func,
            name,
            what: what.to_string(),
            timeout,
            started,
            since,
        })
    }

    fn window(&self) -> WaitSince {
        self.since.as_ref().map(|s| s.1.clone()).unwrap_or_default()
    }

    fn result(&self, ok: bool) -> mlua::Result<Table> {
        let now = self.ctx.now();
        let from = self.since.as_ref().map(|s| s.0).unwrap_or(self.started);
        let t = self.lua.create_table()?;
        t.set("ok", ok)?;
        t.set("node", self.name.as_str())?;
        t.set("waited_for", self.what.as_str())?;
        t.set("elapsed", now - from)?;
        t.set("waited", now - self.started)?;
        t.set("at", now)?;
        t.set("timeout", self.timeout.as_secs_f64())?;
        if let Some((at, _)) = &self.since {
            t.set("since", *at)?;
        }
        Ok(t)
    }

    fn finish(&self, result: Table, observed: String) -> mlua::Result<MultiValue> {
        let ok: bool = result.get("ok")?;
        let elapsed: f64 = result.get("elapsed")?;
        let (name, what, timeout) = (&self.name, &self.what, duration::format(self.timeout));
        if ok {
            self.ctx.journal.record(
                crate::journal::EntryKind::Wait,
                Some(name),
                format!(
                    "{what} after {} ({observed})",
                    duration::format(Duration::from_secs_f64(elapsed.max(0.0)))
                ),
                json!({"for": what, "ok": true, "elapsed": elapsed}),
            );
            return Ok(MultiValue::from_vec(vec![Value::Table(result)]));
        }
        self.ctx.journal.record(
            crate::journal::EntryKind::Wait,
            Some(name),
            format!("not {what} within {timeout} (observed: {observed})"),
            json!({"for": what, "ok": false, "elapsed": elapsed}),
        );
        let msg = format!(
            "{}: {name} not {what} within {timeout} (observed: {observed})",
            self.func
        );
        Ok(MultiValue::from_vec(vec![
            Value::Nil,
            Value::String(self.lua.create_string(msg)?),
            Value::Table(result),
        ]))
    }
}

async fn wait_remediation(lua: &Lua, node: &Value, o: &Option<Table>) -> mlua::Result<MultiValue> {
    const F: &str = "wait_remediation";
    let w = ObjectWait::start(lua, F, node, "RebootNode complete", o, 40 * MIN)?;
    let outcome = ask!(
        lua,
        F,
        Some(&w.name),
        w.ctx
            .backend
            .wait_remediation(&w.name, &w.window(), w.timeout)
            .await
    );
    let result = w.result(outcome.satisfied)?;
    let observed = match &outcome.cr {
        None => "no RebootNode".to_string(),
        Some(cr) => {
            result.set("name", cr.name.as_str())?;
            result.set("kind", cr.kind.as_str())?;
            result.set("succeeded", cr.succeeded())?;
            result.set("cr", to_lua(lua, cr)?)?;
            let times = lua.create_table()?;
            if let Some(t) = run_time(&w.ctx, &cr.created) {
                times.set("created", t)?;
            }
            let conditions = lua.create_table()?;
            for c in &cr.conditions {
                let row = to_lua(lua, c)?;
                if let (Value::Table(row), Some(t)) = (&row, run_time(&w.ctx, &c.time)) {
                    row.set("at", t)?;
                    times.set(c.type_.as_str(), t)?;
                }
                conditions.set(c.type_.as_str(), row)?;
            }
            if let Some(t) = cr
                .completion_time
                .as_deref()
                .and_then(|t| run_time(&w.ctx, t))
            {
                times.set("completed", t)?;
            }
            result.set("conditions", conditions)?;
            result.set("times", times)?;
            let conds: Vec<String> = cr
                .conditions
                .iter()
                .map(|c| format!("{}={} {}", c.type_, c.status, c.reason))
                .collect();
            format!("{} {}: {}", cr.kind, cr.name, conds.join(", "))
        }
    };
    w.finish(result, observed)
}

async fn wait_drained(
    lua: &Lua,
    node: &Value,
    scope: DrainScope,
    o: &Option<Table>,
) -> mlua::Result<MultiValue> {
    const F: &str = "wait_drained";
    let w = ObjectWait::start(lua, F, node, "drained", o, 2 * 60 * MIN)?;
    let outcome = ask!(
        lua,
        F,
        Some(&w.name),
        w.ctx
            .backend
            .wait_drained(&w.name, &scope, &w.window(), w.timeout)
            .await
    );
    let result = w.result(outcome.satisfied)?;
    let evicted = lua.create_table()?;
    for g in &outcome.evicted {
        let row = to_lua(lua, g)?;
        if let (Value::Table(row), Some(t)) = (&row, run_time(&w.ctx, &g.time)) {
            row.set("at", t)?;
        }
        evicted.push(row)?;
    }
    result.set("evicted", evicted)?;
    result.set("remaining", to_lua(lua, &outcome.remaining)?)?;
    let observed = if outcome.remaining.is_empty() {
        format!("{} pod(s) left the node", outcome.evicted.len())
    } else {
        let left: Vec<String> = outcome
            .remaining
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        format!("still there: {}", crate::backend::summarize(&left, 4))
    };
    w.finish(result, observed)
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
    // `since` (a fault or a run time): `elapsed` is measured from it, so a stage reads as
    // time since the injection; `waited` is this call's own wait.
    let from = if func == "wait_rebooted" {
        None // its `since` is a boot id
    } else {
        since(func, &ctx, opts)?.map(|s| s.0)
    };
    let mut start = json!({"for": what, "timeout": timeout.as_secs_f64()});
    if let Some(f) = from {
        start["since"] = json!(f);
    }
    ctx.journal.record(
        crate::journal::EntryKind::WaitStart,
        Some(&name),
        format!("waiting for {what} (timeout {})", duration::format(timeout)),
        start,
    );
    let outcome = ask!(
        lua,
        func,
        Some(&name),
        ctx.backend.wait_node(&name, &predicate, timeout).await
    );
    let elapsed = ctx.now() - from.unwrap_or(started);
    let result = lua.create_table()?;
    result.set("ok", outcome.satisfied)?;
    result.set("node", name.as_str())?;
    result.set("waited_for", what.as_str())?;
    result.set("elapsed", elapsed)?;
    if let Some(f) = from {
        result.set("since", f)?;
        result.set("waited", ctx.now() - started)?;
    }
    result.set("at", ctx.now())?;
    result.set("timeout", timeout.as_secs_f64())?;
    let summary = outcome.node.summary();
    result.set("observed", node_facts(lua, outcome.node)?)?;
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
