//! Node and GPU handles: names looked up again on every use, never snapshots.
//!
//! Fields are answered here; methods live in Lua tables (`gfi.Node`, `gfi.Gpu`, filled by the
//! prelude from the same primitives as the globals), so there is one implementation of each.

use crate::backend::{GpuInfo, NodeInfo};
use crate::lua::error::err;
use mlua::{Lua, MetaMethod, Table, UserData, UserDataMethods, Value};
use std::collections::BTreeMap;

pub const NODE_METHODS: &str = "gfi.Node";
pub const GPU_METHODS: &str = "gfi.Gpu";

#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct GpuHandle {
    pub node: String,
    pub index: u32,
    pub pci: String,
    pub uuid: String,
    pub model: String,
}

impl GpuHandle {
    pub fn new(node: &str, g: &GpuInfo) -> Self {
        GpuHandle {
            node: node.to_string(),
            index: g.index,
            pci: g.pci.canonical(),
            uuid: g.uuid.clone(),
            model: g.model.clone(),
        }
    }
}

fn method_or_error(
    lua: &Lua,
    registry: &str,
    what: &str,
    key: &str,
    fields: &[&str],
) -> mlua::Result<Value> {
    let methods: Table = lua.named_registry_value(registry)?;
    match methods.get::<Value>(key)? {
        Value::Nil => {
            let mut names: Vec<String> = methods
                .pairs::<String, Value>()
                .filter_map(|p| p.ok().map(|(k, _)| k))
                .filter(|k| !k.starts_with('_'))
                .collect();
            names.sort();
            Err(err(format!(
                "a {what} has no field or method '{key}' (fields: {}; methods: {})",
                fields.join(", "),
                names.join(", ")
            )))
        }
        v => Ok(v),
    }
}

impl UserData for NodeHandle {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_meta_method(MetaMethod::Index, |lua, this, key: String| {
            match key.as_str() {
                "name" => Ok(Value::String(lua.create_string(&this.name)?)),
                _ => method_or_error(lua, NODE_METHODS, "node", &key, &["name"]),
            }
        });
        m.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!("node({})", this.name))
        });
        m.add_meta_method(
            MetaMethod::Eq,
            |_, this, other: mlua::UserDataRef<NodeHandle>| Ok(this.name == other.name),
        );
        m.add_meta_method(
            MetaMethod::Lt,
            |_, this, other: mlua::UserDataRef<NodeHandle>| Ok(this.name < other.name),
        );
        m.add_meta_method(
            MetaMethod::Le,
            |_, this, other: mlua::UserDataRef<NodeHandle>| Ok(this.name <= other.name),
        );
        m.add_meta_method(MetaMethod::Concat, |_, this, other: Value| {
            Ok(format!(
                "{}{}",
                this.name,
                other.to_string().unwrap_or_default()
            ))
        });
    }
}

impl UserData for GpuHandle {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_meta_method(MetaMethod::Index, |lua, this, key: String| {
            match key.as_str() {
                "index" => Ok(Value::Integer(this.index as i64)),
                "pci" => Ok(Value::String(lua.create_string(&this.pci)?)),
                "uuid" => Ok(Value::String(lua.create_string(&this.uuid)?)),
                "model" => Ok(Value::String(lua.create_string(&this.model)?)),
                "node" => Ok(Value::String(lua.create_string(&this.node)?)),
                _ => method_or_error(
                    lua,
                    GPU_METHODS,
                    "GPU",
                    &key,
                    &["index", "pci", "uuid", "model", "node"],
                ),
            }
        });
        m.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!("gpu({}#{} {})", this.node, this.index, this.pci))
        });
        m.add_meta_method(
            MetaMethod::Eq,
            |_, this, other: mlua::UserDataRef<GpuHandle>| {
                Ok(this.node == other.node && this.index == other.index)
            },
        );
    }
}

/// What a script sees of a node: its facts plus the fields people look for first (`cordoned`,
/// `state`, conditions by type). Built by hand rather than through serde: waits return facts on
/// every call, and this is several times faster (see `benches/sim_day.rs`).
///
/// The scalar fields are set at once; `labels`, `annotations`, `taints` and `conditions` are
/// built on first use (an index of one of them, `pairs`, or the REPL's display), because a wait
/// returns the facts on every call and plans mostly read `state` or `cordoned`: building every
/// label and condition as Lua strings was a quarter of a simulated day's time. The table is an
/// ordinary table once built (its lazy metatable is removed).
pub fn node_facts(lua: &Lua, n: NodeInfo) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 10)?;
    t.raw_set("name", n.name.as_str())?;
    t.raw_set("cordoned", n.unschedulable)?;
    t.raw_set("unschedulable", n.unschedulable)?;
    t.raw_set("ready", n.ready)?;
    if let Some(s) = n.state() {
        t.raw_set("state", s)?;
    }
    t.raw_set("boot_id", n.boot_id.as_str())?;
    let lazy = lua.named_registry_value::<Table>(LAZY_FACTS)?;
    let mt = lua.create_table_with_capacity(0, 3)?;
    mt.raw_set("__index", lazy.raw_get::<Value>("__index")?)?;
    mt.raw_set("__pairs", lazy.raw_get::<Value>("__pairs")?)?;
    mt.raw_set(
        FACTS_KEY,
        lua.create_any_userdata(Deferred {
            labels: n.labels,
            annotations: n.annotations,
            taints: n.taints,
            conditions: n.conditions,
        })?,
    )?;
    t.set_metatable(Some(mt))?;
    Ok(Value::Table(t))
}

/// The registry table holding the lazy facts' shared `__index` and `__pairs`.
const LAZY_FACTS: &str = "gfi.lazy_node_facts";
/// Where a facts table's metatable keeps the parts not built yet.
const FACTS_KEY: &str = "gfi.deferred_facts";
const DEFERRED_FIELDS: [&str; 4] = ["labels", "annotations", "taints", "conditions"];

/// The parts of a node's facts a facts table builds on first use.
struct Deferred {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    taints: Vec<crate::backend::Taint>,
    conditions: Vec<crate::backend::NodeCondition>,
}

/// Builds a facts table's deferred fields now, if it has any, and leaves it a plain table.
/// Rust code that walks tables raw (the REPL's display and completion) calls this first; Lua
/// code never needs to, since `__index` and `__pairs` do it.
pub fn materialize_facts(lua: &Lua, t: &Table) -> mlua::Result<()> {
    let Some(mt) = t.metatable() else {
        return Ok(());
    };
    let Ok(ud) = mt.raw_get::<mlua::AnyUserData>(FACTS_KEY) else {
        return Ok(());
    };
    let Ok(d) = ud.take::<Deferred>() else {
        return Ok(());
    };
    t.set_metatable(None)?;
    let map = |m: &BTreeMap<String, String>| -> mlua::Result<Table> {
        let out = lua.create_table_with_capacity(0, m.len())?;
        for (k, v) in m {
            out.raw_set(k.as_str(), v.as_str())?;
        }
        Ok(out)
    };
    t.raw_set("labels", map(&d.labels)?)?;
    t.raw_set("annotations", map(&d.annotations)?)?;
    let taints = lua.create_table_with_capacity(d.taints.len(), 0)?;
    for (i, tn) in d.taints.iter().enumerate() {
        let x = lua.create_table_with_capacity(0, 3)?;
        x.raw_set("key", tn.key.as_str())?;
        if let Some(v) = &tn.value {
            x.raw_set("value", v.as_str())?;
        }
        x.raw_set("effect", tn.effect.as_str())?;
        taints.raw_set(i + 1, x)?;
    }
    t.raw_set("taints", taints)?;
    let conditions = lua.create_table_with_capacity(0, d.conditions.len())?;
    for c in &d.conditions {
        let x = lua.create_table_with_capacity(0, 5)?;
        x.raw_set("type", c.type_.as_str())?;
        x.raw_set("status", c.status.as_str())?;
        x.raw_set("reason", c.reason.as_str())?;
        x.raw_set("message", c.message.as_str())?;
        x.raw_set("last_transition", c.last_transition.as_str())?;
        conditions.raw_set(c.type_.as_str(), x)?;
    }
    t.raw_set("conditions", conditions)?;
    Ok(())
}

fn register_lazy_facts(lua: &Lua) -> mlua::Result<()> {
    let lazy = lua.create_table()?;
    lazy.raw_set(
        "__index",
        lua.create_function(|lua, (t, key): (Table, Value)| {
            let deferred = matches!(&key, Value::String(s)
                if s.to_str().is_ok_and(|k| DEFERRED_FIELDS.contains(&&*k)));
            if !deferred {
                return Ok(Value::Nil);
            }
            materialize_facts(lua, &t)?;
            t.raw_get::<Value>(key)
        })?,
    )?;
    let next: Value = lua.globals().raw_get("next")?;
    lazy.raw_set(
        "__pairs",
        lua.create_function(move |lua, t: Table| {
            materialize_facts(lua, &t)?;
            Ok((next.clone(), t, Value::Nil))
        })?,
    )?;
    lua.set_named_registry_value(LAZY_FACTS, lazy)
}

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    register_lazy_facts(lua)?;
    for name in [NODE_METHODS, GPU_METHODS] {
        let t = lua.create_table()?;
        lua.set_named_registry_value(name, &t)?;
        gfi.set(name.trim_start_matches("gfi."), t)?;
    }
    Ok(())
}
