//! `guard{...}`: the script's guardrails (checked in `inject_xid`, see `crate::guard`), and
//! `guard_targets(nodes)`: the nodes a guarded plan may pick from.

use super::set_fn;
use crate::guard::rules::{DEFAULT_OPT_IN, Limit, Window, parse_label};
use crate::guard::{GuardConfig, Stop};
use crate::lua::Ctx;
use crate::lua::convert::*;
use mlua::{Lua, Table, Value};

pub const OPTIONS: &[&str] = &[
    "max_unavailable",
    "require_label",
    "window",
    "pool",
    "tripwire",
    "breaker",
    "targets",
];

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    set_fn(
        lua,
        gfi,
        "guard",
        lua.create_function(|lua, opts: Value| {
            const F: &str = "guard";
            let ctx = Ctx::get(lua)?;
            if !matches!(opts, Value::Nil) {
                let o = options(F, 1, &opts, OPTIONS)?;
                let cfg = config(&o)?;
                let mut only_targets = false;
                if let Some(t) = &o {
                    let targets: Value = t.get("targets")?;
                    if !targets.is_nil() {
                        ctx.guard.add_targets(node_list(F, &targets)?);
                        only_targets = t.pairs::<Value, Value>().count() == 1;
                    }
                }
                // `guard { targets = ... }` alone names what the tripwire watches, and arms
                // nothing: a plan does it for every run, guarded or not.
                if !only_targets {
                    ctx.guard.configure(cfg);
                }
            }
            status(lua, &ctx)
        })?,
    )?;
    set_fn(
        lua,
        gfi,
        "guard_targets",
        lua.create_async_function(|lua, nodes: Value| async move {
            const F: &str = "guard_targets";
            let ctx = Ctx::get(&lua)?;
            let list = match &nodes {
                Value::Table(t) => t.clone(),
                other => {
                    return Err(arg_err(
                        F,
                        1,
                        "nodes",
                        format!("must be a list of nodes, got {}", describe(other)),
                    ));
                }
            };
            let refused = lua.create_table()?;
            // Unarmed, every node is a target: no need to ask the cluster about each.
            if !ctx.guard.armed() {
                for v in list.sequence_values::<Value>() {
                    node_name(F, 1, &v?)?;
                }
                return Ok((list, refused));
            }
            let kept = lua.create_table()?;
            for v in list.sequence_values::<Value>() {
                let v = v?;
                let name = node_name(F, 1, &v)?;
                let info = ctx
                    .backend
                    .node(&name)
                    .await
                    .map_err(|e| backend_err(F, e))?;
                match ctx.guard.refuses_target(&info) {
                    None => kept.push(v)?,
                    Some(s) => refused.push(lua.create_table_from([
                        ("node", name),
                        ("rule", s.rule.to_string()),
                        ("reason", s.reason),
                    ])?)?,
                }
            }
            Ok((kept, refused))
        })?,
    )?;
    Ok(())
}

fn node_list(func: &str, v: &Value) -> mlua::Result<Vec<String>> {
    match v {
        Value::Table(t) => t
            .sequence_values::<Value>()
            .map(|v| node_name(func, 1, &v?))
            .collect(),
        other => Err(err(format!(
            "{func}: option 'targets' must be a list of nodes, got {}",
            describe(other)
        ))),
    }
}

fn config(o: &Option<Table>) -> mlua::Result<GuardConfig> {
    const F: &str = "guard";
    let Some(t) = o else {
        return Ok(GuardConfig::default());
    };
    let opt_err = |key: &str, e: String| err(format!("{F}: option '{key}': {e}"));
    let max_unavailable = match t.get::<Value>("max_unavailable")? {
        Value::Nil => None,
        Value::Integer(n) if n >= 0 => Some(Limit::Nodes(n as usize)),
        Value::String(s) => {
            Some(Limit::parse(&s.to_str()?).map_err(|e| opt_err("max_unavailable", e))?)
        }
        other => {
            return Err(opt_err(
                "max_unavailable",
                format!(
                    "expected a node count (3) or a percentage (\"10%\"), got {}",
                    describe(&other)
                ),
            ));
        }
    };
    let require_label = match t.get::<Value>("require_label")? {
        Value::Nil | Value::Boolean(false) => None,
        Value::Boolean(true) => Some(parse_label(DEFAULT_OPT_IN).map_err(err)?),
        Value::String(s) => {
            Some(parse_label(&s.to_str()?).map_err(|e| opt_err("require_label", e))?)
        }
        other => {
            return Err(opt_err(
                "require_label",
                format!(
                    "expected \"key=value\" or true ({DEFAULT_OPT_IN}), got {}",
                    describe(&other)
                ),
            ));
        }
    };
    let window = opt_string(F, o, "window")?
        .map(|w| Window::parse(&w).map_err(|e| opt_err("window", e)))
        .transpose()?;
    let pool = opt_string(F, o, "pool")?;
    if let Some(p) = &pool {
        crate::backend::LabelSelector::parse(p).map_err(|e| opt_err("pool", e.to_string()))?;
    }
    Ok(GuardConfig {
        max_unavailable,
        require_label,
        window,
        pool,
        tripwire: opt_bool(F, o, "tripwire")?,
        breaker: opt_bool(F, o, "breaker")?,
    })
}

fn stop_table(lua: &Lua, s: &Stop) -> mlua::Result<Value> {
    let v = to_lua(lua, s)?;
    if let Value::Table(t) = &v {
        t.set("message", s.describe())?;
    }
    Ok(v)
}

/// `{ armed, max_unavailable = "10%", require_label = "k=v", window, pool, tripwire,
/// breaker, stop }`, as in force.
fn status(lua: &Lua, ctx: &Ctx) -> mlua::Result<Table> {
    let g = &ctx.guard;
    let cfg = g.effective();
    let t = lua.create_table()?;
    t.set("armed", g.armed())?;
    t.set(
        "max_unavailable",
        cfg.max_unavailable.map(|l| l.to_string()),
    )?;
    t.set(
        "require_label",
        cfg.require_label.map(|(k, v)| format!("{k}={v}")),
    )?;
    t.set("window", cfg.window.map(|w| w.text))?;
    t.set(
        "pool",
        cfg.pool
            .unwrap_or_else(|| crate::guard::rules::DEFAULT_POOL.into()),
    )?;
    t.set("tripwire", cfg.tripwire != Some(false))?;
    t.set("breaker", cfg.breaker != Some(false))?;
    t.set("checks", g.stats().checks)?;
    if let Some(s) = g.stopped() {
        t.set("stop", stop_table(lua, &s)?)?;
    }
    Ok(t)
}
