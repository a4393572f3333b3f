//! Reading Lua arguments with errors that name the function, the argument and what would be
//! right.

use super::api::handles::{GpuHandle, NodeHandle};
use crate::backend::{BackendError, GpuSelector};
use crate::xid::PciAddress;
use mlua::{IntoLua, Lua, LuaSerdeExt, MultiValue, Table, Value};
use serde::Serialize;
use std::fmt;
use std::time::Duration;

pub use super::error::err;

/// `inject_xid: argument #2 (gpu): ...`
pub fn arg_err(func: &str, pos: usize, name: &str, msg: impl fmt::Display) -> mlua::Error {
    err(format!("{func}: argument #{pos} ({name}) {msg}"))
}

pub fn type_name(v: &Value) -> String {
    match v {
        Value::UserData(ud) => {
            if ud.is::<NodeHandle>() {
                "node".into()
            } else if ud.is::<GpuHandle>() {
                "gpu".into()
            } else {
                "userdata".into()
            }
        }
        other => other.type_name().to_string(),
    }
}

/// A backend error as a Lua error (for contract violations) keeping its text.
pub fn backend_err(func: &str, e: BackendError) -> mlua::Error {
    err(format!("{func}: {e}"))
}

/// The one rule for a primitive whose backend call failed ([`BackendError::is_script_error`]):
/// a mistake of the script raises; a refusal of the world (a node rebooting, an agent
/// unreachable, throttling, ...) returns `nil, err`, and is recorded in the journal as `kind`.
pub fn refused(
    lua: &Lua,
    func: &str,
    node: Option<&str>,
    e: BackendError,
    kind: crate::journal::EntryKind,
) -> mlua::Result<MultiValue> {
    if e.is_script_error() {
        return Err(backend_err(func, e));
    }
    let msg = format!("{func}: {e}");
    let ctx = crate::lua::Ctx::get(lua)?;
    ctx.journal.record(
        kind,
        node,
        msg.clone(),
        serde_json::json!({
            "call": func,
            "error": e.kind(),
            "retry_after": e.retry_after().map(|d| d.as_secs_f64()),
        }),
    );
    Ok(MultiValue::from_vec(vec![
        Value::Nil,
        Value::String(lua.create_string(&msg)?),
    ]))
}

/// A primitive's answer when it succeeded: one value.
pub fn one(lua: &Lua, v: impl IntoLua) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![v.into_lua(lua)?]))
}

/// Unwraps a backend answer, or returns from the primitive as [`refused`] says.
#[macro_export]
macro_rules! ask {
    ($lua:expr, $func:expr, $node:expr, $call:expr) => {
        match $call {
            Ok(v) => v,
            Err(e) => {
                return $crate::lua::convert::refused(
                    $lua,
                    $func,
                    $node,
                    e,
                    $crate::journal::EntryKind::CallFailed,
                );
            }
        }
    };
}

/// A node argument: a node handle or a node name.
pub fn node_name(func: &str, pos: usize, v: &Value) -> mlua::Result<String> {
    match v {
        Value::String(s) => {
            let s = s.to_str()?.to_string();
            if s.is_empty() {
                return Err(arg_err(
                    func,
                    pos,
                    "node",
                    "is an empty string; expected a node name such as \"gpu-node-001\"",
                ));
            }
            Ok(s)
        }
        Value::UserData(ud) if ud.is::<NodeHandle>() => Ok(ud.borrow::<NodeHandle>()?.name.clone()),
        Value::UserData(ud) if ud.is::<GpuHandle>() => Ok(ud.borrow::<GpuHandle>()?.node.clone()),
        other => Err(arg_err(
            func,
            pos,
            "node",
            format!(
                "must be a node (from nodes() or node()) or a node name, got {}",
                type_name(other)
            ),
        )),
    }
}

/// A GPU argument: a GPU handle, an index, a PCI address or a UUID.
pub fn gpu_selector(func: &str, pos: usize, node: &str, v: &Value) -> mlua::Result<GpuSelector> {
    match v {
        Value::Integer(i) if *i >= 0 && *i <= u32::MAX as i64 => Ok(GpuSelector::Index(*i as u32)),
        Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n <= u32::MAX as f64 => {
            Ok(GpuSelector::Index(*n as u32))
        }
        Value::String(s) => {
            let s = s.to_str()?;
            if s.to_ascii_uppercase().starts_with("GPU-") {
                Ok(GpuSelector::Uuid(s.to_string()))
            } else {
                s.parse::<PciAddress>().map(GpuSelector::Pci).map_err(|e| {
                    arg_err(
                        func,
                        pos,
                        "gpu",
                        format!("is neither a GPU UUID (GPU-...) nor a PCI address: {e}"),
                    )
                })
            }
        }
        Value::UserData(ud) if ud.is::<GpuHandle>() => {
            let g = ud.borrow::<GpuHandle>()?;
            if g.node != node {
                return Err(arg_err(
                    func,
                    pos,
                    "gpu",
                    format!("is GPU {} of node {}, not of node {node}", g.index, g.node),
                ));
            }
            Ok(GpuSelector::Index(g.index))
        }
        other => Err(arg_err(
            func,
            pos,
            "gpu",
            format!(
                "must be a GPU (from gpus()), a GPU index, a PCI address or a UUID, got {}",
                describe(other)
            ),
        )),
    }
}

/// `number 1.5`, `string "x"`, `nil`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Integer(i) => format!("number {i}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {:?}", s.to_string_lossy()),
        Value::Boolean(b) => format!("boolean {b}"),
        other => type_name(other),
    }
}

/// An integer argument.
pub fn integer(func: &str, pos: usize, name: &str, v: &Value) -> mlua::Result<i64> {
    match v {
        Value::Integer(i) => Ok(*i),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(*n as i64),
        Value::String(s) => s.to_str()?.trim().parse().map_err(|_| {
            arg_err(
                func,
                pos,
                name,
                format!("must be an integer, got {}", describe(v)),
            )
        }),
        other => Err(arg_err(
            func,
            pos,
            name,
            format!("must be an integer, got {}", describe(other)),
        )),
    }
}

/// A duration: seconds as a number, or text like "90s", "2m", "1h30m".
pub fn duration(func: &str, what: &str, v: &Value) -> mlua::Result<Duration> {
    match v {
        Value::Integer(i) => crate::duration::from_secs(*i as f64),
        Value::Number(n) => crate::duration::from_secs(*n),
        Value::String(s) => crate::duration::parse(&s.to_str()?),
        other => Err(format!(
            "must be a duration (seconds, or text like \"90s\", \"2m\", \"1h30m\"), got {}",
            describe(other)
        )),
    }
    .map_err(|e| err(format!("{func}: {what} {e}")))
}

/// An options table: nil or a table whose keys are all among `known`.
pub fn options(func: &str, pos: usize, v: &Value, known: &[&str]) -> mlua::Result<Option<Table>> {
    match v {
        Value::Nil => Ok(None),
        Value::Table(t) => {
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                let key = match &k {
                    Value::String(s) => s.to_str()?.to_string(),
                    other => {
                        return Err(arg_err(
                            func,
                            pos,
                            "options",
                            format!("has a non-string key ({})", describe(other)),
                        ));
                    }
                };
                if !known.contains(&key.as_str()) {
                    return Err(arg_err(
                        func,
                        pos,
                        "options",
                        format!("has an unknown key '{key}' (known: {})", known.join(", ")),
                    ));
                }
            }
            Ok(Some(t.clone()))
        }
        other => Err(arg_err(
            func,
            pos,
            "options",
            format!("must be a table or nil, got {}", describe(other)),
        )),
    }
}

/// An optional string field of an options table.
pub fn opt_string(func: &str, t: &Option<Table>, key: &str) -> mlua::Result<Option<String>> {
    let Some(t) = t else { return Ok(None) };
    match t.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_string())),
        other => Err(err(format!(
            "{func}: option '{key}' must be a string, got {}",
            describe(&other)
        ))),
    }
}

/// An optional boolean field of an options table.
pub fn opt_bool(func: &str, t: &Option<Table>, key: &str) -> mlua::Result<Option<bool>> {
    let Some(t) = t else { return Ok(None) };
    match t.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(b)),
        other => Err(err(format!(
            "{func}: option '{key}' must be true or false, got {}",
            describe(&other)
        ))),
    }
}

/// An optional duration field of an options table.
pub fn opt_duration(func: &str, t: &Option<Table>, key: &str) -> mlua::Result<Option<Duration>> {
    let Some(t) = t else { return Ok(None) };
    match t.get::<Value>(key)? {
        Value::Nil => Ok(None),
        v => duration(func, &format!("option '{key}'"), &v).map(Some),
    }
}

/// An optional integer field of an options table.
pub fn opt_integer(func: &str, t: &Option<Table>, key: &str) -> mlua::Result<Option<i64>> {
    let Some(t) = t else { return Ok(None) };
    match t.get::<Value>(key)? {
        Value::Nil => Ok(None),
        v => integer(func, 0, key, &v).map(Some).map_err(|_| {
            err(format!(
                "{func}: option '{key}' must be an integer, got {}",
                describe(&v)
            ))
        }),
    }
}

/// Plain data as a Lua table (`None` fields become nil).
pub fn to_lua<T: Serialize>(lua: &Lua, value: &T) -> mlua::Result<Value> {
    lua.to_value_with(
        value,
        mlua::serde::SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false),
    )
}
