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
pub fn node_facts(lua: &Lua, n: &NodeInfo) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 10)?;
    t.raw_set("name", n.name.as_str())?;
    t.raw_set("cordoned", n.unschedulable)?;
    t.raw_set("unschedulable", n.unschedulable)?;
    t.raw_set("ready", n.ready)?;
    if let Some(s) = n.state() {
        t.raw_set("state", s)?;
    }
    t.raw_set("boot_id", n.boot_id.as_str())?;
    let map = |m: &BTreeMap<String, String>| -> mlua::Result<Table> {
        let out = lua.create_table_with_capacity(0, m.len())?;
        for (k, v) in m {
            out.raw_set(k.as_str(), v.as_str())?;
        }
        Ok(out)
    };
    t.raw_set("labels", map(&n.labels)?)?;
    t.raw_set("annotations", map(&n.annotations)?)?;
    let taints = lua.create_table_with_capacity(n.taints.len(), 0)?;
    for (i, tn) in n.taints.iter().enumerate() {
        let x = lua.create_table_with_capacity(0, 3)?;
        x.raw_set("key", tn.key.as_str())?;
        if let Some(v) = &tn.value {
            x.raw_set("value", v.as_str())?;
        }
        x.raw_set("effect", tn.effect.as_str())?;
        taints.raw_set(i + 1, x)?;
    }
    t.raw_set("taints", taints)?;
    let conditions = lua.create_table_with_capacity(0, n.conditions.len())?;
    for c in &n.conditions {
        let x = lua.create_table_with_capacity(0, 5)?;
        x.raw_set("type", c.type_.as_str())?;
        x.raw_set("status", c.status.as_str())?;
        x.raw_set("reason", c.reason.as_str())?;
        x.raw_set("message", c.message.as_str())?;
        x.raw_set("last_transition", c.last_transition.as_str())?;
        conditions.raw_set(c.type_.as_str(), x)?;
    }
    t.raw_set("conditions", conditions)?;
    Ok(Value::Table(t))
}

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    for name in [NODE_METHODS, GPU_METHODS] {
        let t = lua.create_table()?;
        lua.set_named_registry_value(name, &t)?;
        gfi.set(name.trim_start_matches("gfi."), t)?;
    }
    Ok(())
}
