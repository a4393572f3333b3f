//! The Lua API: globals, also reachable under the `gfi` table.
//!
//! One small module per area, each with a `register`; this list is the whole API.

pub mod cluster;
pub mod guard;
pub mod handles;
pub mod inject;
pub mod misc;
pub mod nvsentinel;
pub mod tasks;
pub mod waits;

use super::Ctx;
use mlua::{Function, Lua, Table};
use std::rc::Rc;

/// Sets `name` as a global and as `gfi.name`.
pub fn set_fn(lua: &Lua, gfi: &Table, name: &str, f: Function) -> mlua::Result<()> {
    gfi.set(name, f.clone())?;
    lua.globals().set(name, f)
}

pub fn register(lua: &Lua, _ctx: &Rc<Ctx>) -> mlua::Result<()> {
    let gfi = lua.create_table()?;
    lua.globals().set("gfi", &gfi)?;
    handles::register(lua, &gfi)?;
    cluster::register(lua, &gfi)?;
    inject::register(lua, &gfi)?;
    inject::register_format(lua, &gfi)?;
    waits::register(lua, &gfi)?;
    tasks::register(lua, &gfi)?;
    misc::register(lua, &gfi)?;
    guard::register(lua, &gfi)?;
    nvsentinel::register(lua, &gfi)?;
    // `require "gfi"` gives the same table.
    let package: Table = lua.globals().get("package")?;
    let loaded: Table = package.get("loaded")?;
    loaded.set("gfi", gfi)?;
    Ok(())
}
