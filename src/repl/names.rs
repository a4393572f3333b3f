//! Function values mapped back to the names people know them by (`inject_xid`,
//! `sim.reboot`, `Node.wait_cordoned`, `scenario.run`, `string.format`): for `help(f)`, for
//! printing functions, and for completion to know which call the cursor is in.

use crate::lua::api::handles::{GPU_METHODS, NODE_METHODS};
use mlua::{Function, Lua, Table, Value};
use std::collections::HashMap;
use std::ffi::c_void;

/// Lua's own libraries: their functions are documented in the Lua manual.
pub const LUA_LIBRARIES: &[&str] = &["string", "table", "math", "os", "coroutine", "utf8"];

#[derive(Default)]
pub struct ApiNames {
    functions: HashMap<*const c_void, String>,
    modules: HashMap<*const c_void, String>,
}

fn functions_of(t: &Table) -> Vec<(String, Function)> {
    let mut out = Vec::new();
    let _ = t.for_each::<Value, Value>(|k, v| {
        if let (Value::String(k), Value::Function(f)) = (k, v) {
            out.push((k.to_string_lossy(), f));
        }
        Ok(())
    });
    // Sorted, so a function reachable under two names always gets the same one.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

impl ApiNames {
    /// Walks the API tables, loaded modules and globals of a state. First name wins, in the
    /// order people learn them: the API, its handles and the sim, modules, then the rest.
    pub fn scan(lua: &Lua) -> ApiNames {
        let mut names = ApiNames::default();
        let globals = lua.globals();
        let table = |t: &Table, k: &str| t.raw_get::<Table>(k).ok();
        if let Some(gfi) = table(&globals, "gfi") {
            names.modules.insert(gfi.to_pointer(), "gfi".into());
            names.add_all(&gfi, "");
            if let Some(sim) = table(&gfi, "sim") {
                names.modules.insert(sim.to_pointer(), "sim".into());
                names.add_all(&sim, "sim.");
            }
        }
        for (registry, prefix) in [(NODE_METHODS, "Node."), (GPU_METHODS, "Gpu.")] {
            if let Ok(t) = lua.named_registry_value::<Table>(registry) {
                names.add_all(&t, prefix);
            }
        }
        let loaded = table(&globals, "package").and_then(|p| table(&p, "loaded"));
        if let Some(loaded) = loaded {
            let mut modules = Vec::new();
            let _ = loaded.for_each::<Value, Value>(|k, v| {
                if let (Value::String(k), Value::Table(t)) = (k, v) {
                    modules.push((k.to_string_lossy(), t));
                }
                Ok(())
            });
            modules.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, t) in &modules {
                if name == "_G" || name == "gfi" || LUA_LIBRARIES.contains(&name.as_str()) {
                    continue;
                }
                names.modules.entry(t.to_pointer()).or_insert(name.clone());
                names.add_all(t, &format!("{name}."));
            }
        }
        names.add_all(&globals, "");
        for lib in LUA_LIBRARIES {
            if let Some(t) = table(&globals, lib) {
                names
                    .modules
                    .entry(t.to_pointer())
                    .or_insert(lib.to_string());
                names.add_all(&t, &format!("{lib}."));
            }
        }
        names
    }

    fn add_all(&mut self, t: &Table, prefix: &str) {
        for (k, f) in functions_of(t) {
            self.functions
                .entry(f.to_pointer())
                .or_insert_with(|| format!("{prefix}{k}"));
        }
    }

    pub fn name_of(&self, f: &Function) -> Option<String> {
        self.functions.get(&f.to_pointer()).cloned()
    }

    /// The name of a module table (`gfi`, `sim`, `rand`, `scenario`, `string`, ...).
    pub fn module_of(&self, t: &Table) -> Option<String> {
        self.modules.get(&t.to_pointer()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_prefer_the_api_and_are_stable() {
        let lua = Lua::new();
        lua.load(
            r#"
            gfi = { inject_xid = function() end, sim = { reboot = function() end } }
            inject_xid = gfi.inject_xid
            package.loaded.scenario = { run = function() end }
            alias = gfi.sim.reboot
            "#,
        )
        .exec()
        .unwrap();
        let names = ApiNames::scan(&lua);
        let get = |src: &str| {
            let f: Function = lua.load(src).eval().unwrap();
            names.name_of(&f)
        };
        assert_eq!(get("return inject_xid").as_deref(), Some("inject_xid"));
        assert_eq!(get("return alias").as_deref(), Some("sim.reboot"));
        assert_eq!(
            get("return package.loaded.scenario.run").as_deref(),
            Some("scenario.run")
        );
        assert_eq!(
            get("return string.format").as_deref(),
            Some("string.format")
        );
        assert_eq!(get("return ipairs").as_deref(), Some("ipairs"));
        assert_eq!(get("return function() end"), None);
        let string: Table = lua.globals().get("string").unwrap();
        assert_eq!(names.module_of(&string).as_deref(), Some("string"));
    }
}
