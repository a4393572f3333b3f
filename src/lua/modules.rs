//! `require`: modules beside the script, on `--lib-path`, and the embedded stdlib.
//!
//! The stdlib is compiled into the binary; debug builds read `stdlib/` from the source tree
//! when it is there, so editing a module needs no rebuild.

use mlua::{Function, Lua, Table, Value};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Every stdlib module, by name. `prelude` runs at start-up; the others are `require`d.
pub const STDLIB: &[(&str, &str)] = &[
    ("prelude", include_str!("../../stdlib/prelude.lua")),
    ("rand", include_str!("../../stdlib/rand.lua")),
    ("check", include_str!("../../stdlib/check.lua")),
    ("report", include_str!("../../stdlib/report.lua")),
    ("scenario", include_str!("../../stdlib/scenario.lua")),
    ("plan", include_str!("../../stdlib/plan.lua")),
];

/// The source of a stdlib module.
pub fn stdlib_source(name: &str) -> Option<Cow<'static, str>> {
    let embedded = STDLIB.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)?;
    if cfg!(debug_assertions) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("stdlib")
            .join(format!("{name}.lua"));
        if let Ok(text) = std::fs::read_to_string(path) {
            return Some(Cow::Owned(text));
        }
    }
    Some(Cow::Borrowed(embedded))
}

fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// Replaces `package.searchers` with: preload, then ours.
/// `script_dir_shown` names `script_dir` in chunk names and messages where the modules are
/// read from somewhere else than the user knows them (a remote run's bundle).
pub fn install(
    lua: &Lua,
    script_dir: Option<PathBuf>,
    script_dir_shown: Option<PathBuf>,
    lib_paths: Vec<PathBuf>,
) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let searchers: Table = package.get("searchers")?;
    let preload: Function = searchers.get(1)?;
    // Each directory with the name it is shown by.
    let mut dirs: Vec<(PathBuf, PathBuf)> = script_dir
        .map(|d| (d.clone(), script_dir_shown.unwrap_or(d)))
        .into_iter()
        .collect();
    dirs.extend(lib_paths.into_iter().map(|d| (d.clone(), d)));
    let searcher = lua.create_function(move |lua, name: String| {
        if !valid_module_name(&name) {
            return Ok((
                Value::String(lua.create_string(format!(
                    "\n\tmodule name '{name}' is not valid (letters, digits, '_' and '-', parts separated by '.')"
                ))?),
                Value::Nil,
            ));
        }
        let (std_name, std_only) = match name.strip_prefix("gfi.") {
            Some(rest) => (rest, true),
            None => (name.as_str(), false),
        };
        let mut tried = Vec::new();
        if !std_only {
            let rel = name.replace('.', "/");
            for (dir, shown) in &dirs {
                for file in [PathBuf::from(format!("{rel}.lua")), Path::new(&rel).join("init.lua")] {
                    let candidate = dir.join(&file);
                    let name = shown.join(&file).display().to_string();
                    if candidate.is_file() {
                        let text = std::fs::read_to_string(&candidate).map_err(|e| {
                            mlua::Error::runtime(format!("cannot read module {name}: {e}"))
                        })?;
                        let f = lua
                            .load(text)
                            .set_name(format!("@{name}"))
                            .into_function()?;
                        return Ok((Value::Function(f), Value::String(lua.create_string(name)?)));
                    }
                    tried.push(name);
                }
            }
        }
        if std_name != "prelude"
            && let Some(src) = stdlib_source(std_name)
        {
            let origin = Value::String(lua.create_string(format!("stdlib/{std_name}.lua"))?);
            if !std_only {
                // One table per stdlib module: `require "report"` is `require "gfi.report"`.
                let canonical = format!("gfi.{std_name}");
                let f = lua.create_function(move |lua, _: mlua::MultiValue| {
                    let require: Function = lua.globals().get("require")?;
                    require.call::<Value>(canonical.as_str())
                })?;
                return Ok((Value::Function(f), origin));
            }
            let f = lua.load(src.as_ref()).set_name(format!("@stdlib/{std_name}.lua")).into_function()?;
            return Ok((Value::Function(f), origin));
        }
        tried.push(format!("stdlib/{std_name}.lua (embedded)"));
        let msg = tried.iter().map(|t| format!("\n\tno file '{t}'")).collect::<String>();
        Ok((Value::String(lua.create_string(msg)?), Value::Nil))
    })?;
    let new = lua.create_sequence_from([preload, searcher])?;
    package.set("searchers", new)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stdlib_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                STDLIB.iter().any(|(n, _)| *n == stem),
                "stdlib/{stem}.lua is not in STDLIB"
            );
        }
    }

    #[test]
    fn module_names() {
        assert!(valid_module_name("plan"));
        assert!(valid_module_name("my.mod_2"));
        for bad in ["", "../x", "a..b", "a/b", "1x"] {
            assert!(!valid_module_name(bad), "{bad}");
        }
    }
}
