//! What a script declares about itself, read without running it: a scenario's metadata
//! (`return scenario.define { name, description, categories, args, ... }`) is evaluated in a
//! Lua state that has no backend and no API, so nothing can be injected or waited for; a
//! plain script, which acts as it loads, is described by its leading comment and the
//! `param("name", default)` calls in its text.
//!
//! Also the built-in scripts (the ready plans of `scripts/`, embedded in the binary) and the
//! listing `gfi run --list` prints.

pub mod category;

use super::modules;
use super::sandbox::{self, Limits};
use mlua::{Lua, Table, Value};
use serde::Serialize;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The ready plans, by name: `gfi run builtin:NAME`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "xid79_recovery",
        include_str!("../../../scripts/xid79_recovery.lua"),
    ),
    (
        "xid48_component_reset",
        include_str!("../../../scripts/xid48_component_reset.lua"),
    ),
    (
        "xid74_stays_cordoned",
        include_str!("../../../scripts/xid74_stays_cordoned.lua"),
    ),
    (
        "non_fatal_no_cordon",
        include_str!("../../../scripts/non_fatal_no_cordon.lua"),
    ),
    (
        "every_gpu_of_a_node",
        include_str!("../../../scripts/every_gpu_of_a_node.lua"),
    ),
    (
        "guarded_soak",
        include_str!("../../../scripts/guarded_soak.lua"),
    ),
    (
        "burst_probe",
        include_str!("../../../scripts/burst_probe.lua"),
    ),
    (
        "random_day",
        include_str!("../../../scripts/random_day.lua"),
    ),
    ("xid_sweep", include_str!("../../../scripts/xid_sweep.lua")),
];

pub const BUILTIN_PREFIX: &str = "builtin:";

/// The source of a built-in script (`builtin:NAME` or `NAME`). Debug builds read `scripts/`
/// from the source tree when it is there, as the stdlib does.
pub fn builtin_source(name: &str) -> Option<Cow<'static, str>> {
    let name = name.strip_prefix(BUILTIN_PREFIX).unwrap_or(name);
    let embedded = BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)?;
    if cfg!(debug_assertions) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(format!("{name}.lua"));
        if let Ok(text) = std::fs::read_to_string(path) {
            return Some(Cow::Owned(text));
        }
    }
    Some(Cow::Borrowed(embedded))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArgMeta {
    pub name: String,
    /// As the script writes it (`"24h"`, `10`, `true`); `None`: no default.
    pub default: Option<String>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptMeta {
    /// A path, or `builtin:NAME`.
    pub source: String,
    /// Declared with `scenario.define` (else a plain script).
    pub scenario: bool,
    pub name: String,
    pub description: String,
    pub categories: Vec<String>,
    pub args: Vec<ArgMeta>,
    /// Why a script that looks like a scenario could not be read as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Reads a script's metadata; `script_dir` is where its `require`s look first.
pub fn read(source: &str, origin: &str, script_dir: Option<PathBuf>) -> ScriptMeta {
    let name = Path::new(origin.strip_prefix(BUILTIN_PREFIX).unwrap_or(origin))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| origin.to_string());
    let plain = || ScriptMeta {
        source: origin.to_string(),
        scenario: false,
        name: name.clone(),
        description: leading_comment(source),
        categories: Vec::new(),
        args: params_in(source),
        problem: None,
    };
    match declared(source, origin, script_dir) {
        Ok(Some(m)) => m,
        Ok(None) => plain(),
        // A script that declares a scenario must be readable: say why it is not.
        Err(e) if source.contains("scenario") && source.contains(".define") => ScriptMeta {
            problem: Some(e.lines().next().unwrap_or_default().to_string()),
            ..plain()
        },
        Err(_) => plain(),
    }
}

fn declared(
    source: &str,
    origin: &str,
    script_dir: Option<PathBuf>,
) -> Result<Option<ScriptMeta>, String> {
    let limits = Limits {
        memory_bytes: 64 << 20,
        instructions: 50_000_000,
        allow_unsafe: false,
        interrupt: None,
    };
    let (lua, _) = sandbox::new_state(&limits).map_err(|e| e.to_string())?;
    let read = || -> mlua::Result<Value> {
        modules::install(&lua, script_dir, None, Vec::new())?;
        no_api(&lua)?;
        lua.load(source)
            .set_name(format!("@{origin}"))
            .call::<Value>(lua.create_table()?)
    };
    let value = read().map_err(|e| super::describe_error(&e))?;
    let Value::Table(t) = value else {
        return Ok(None);
    };
    if !t.raw_get::<bool>("__scenario").unwrap_or(false) {
        return Ok(None);
    }
    from_table(&t, origin).map(Some).map_err(|e| e.to_string())
}

/// Globals of a state that must not act: `gfi` and every API name raise when used, `print`
/// is silent, `args` is empty and `param` gives the default.
fn no_api(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    let refuse = lua.create_function(|_, (_, k): (Value, Value)| -> mlua::Result<()> {
        Err(mlua::Error::runtime(format!(
            "'{}' is not available while reading a script's metadata (the backend is not connected)",
            k.to_string().unwrap_or_default()
        )))
    })?;
    let mt = lua.create_table()?;
    mt.set("__index", refuse)?;
    let gfi = lua.create_table()?;
    gfi.set(
        "param",
        lua.create_function(|_, (_, d): (Value, Value)| Ok(d))?,
    )?;
    gfi.set_metatable(Some(mt.clone()))?;
    g.set("param", gfi.get::<Value>("param")?)?;
    g.set("gfi", gfi.clone())?;
    g.set("args", lua.create_table()?)?;
    g.set(
        "print",
        lua.create_function(|_, _: mlua::MultiValue| Ok(()))?,
    )?;
    let package: Table = g.get("package")?;
    let loaded: Table = package.get("loaded")?;
    loaded.set("gfi", gfi)?;
    // Unknown globals (inject_xid, gpu_nodes, ...) raise too, rather than being nil.
    g.set_metatable(Some(mt))?;
    Ok(())
}

fn from_table(t: &Table, origin: &str) -> mlua::Result<ScriptMeta> {
    let categories: Vec<String> = t
        .get::<Table>("categories")?
        .sequence_values::<String>()
        .collect::<mlua::Result<_>>()?;
    let mut args = Vec::new();
    for pair in t.get::<Table>("args")?.pairs::<String, Table>() {
        let (name, a) = pair?;
        let default = match a.get::<Value>("default")? {
            Value::Nil => None,
            Value::String(s) => Some(format!("\"{}\"", s.to_string_lossy())),
            v => Some(v.to_string()?),
        };
        args.push(ArgMeta {
            name,
            default,
            description: a.get("description")?,
        });
    }
    args.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ScriptMeta {
        source: origin.to_string(),
        scenario: true,
        name: t.get("name")?,
        description: t.get("description")?,
        categories,
        args,
        problem: None,
    })
}

/// The first paragraph of the script's leading comment, on one line.
fn leading_comment(source: &str) -> String {
    let mut words = Vec::new();
    for line in source.lines() {
        let l = line.trim();
        if l.starts_with("--!") {
            continue;
        }
        let Some(text) = l.strip_prefix("--") else {
            break;
        };
        let text = text.trim_start_matches('-').trim();
        if text.is_empty() {
            if words.is_empty() {
                continue;
            }
            break;
        }
        words.push(text.to_string());
    }
    words.join(" ")
}

/// `param("name", default)` calls, in the order they first appear; the default as written.
fn params_in(source: &str) -> Vec<ArgMeta> {
    let re = regex::Regex::new(r#"param\(\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*"#).expect("static regex");
    let mut out: Vec<ArgMeta> = Vec::new();
    for c in re.captures_iter(source) {
        let name = c[1].to_string();
        if out.iter().any(|a| a.name == name) {
            continue;
        }
        let rest = &source[c.get(0).map_or(0, |m| m.end())..];
        let default = rest.strip_prefix(',').map(|r| {
            // Up to the parenthesis that closes the call.
            let mut depth = 0i32;
            let end = r
                .char_indices()
                .find(|&(_, ch)| {
                    match ch {
                        '(' | '{' | '[' => depth += 1,
                        ')' | '}' | ']' => depth -= 1,
                        _ => {}
                    }
                    depth < 0 || ch == '\n'
                })
                .map_or(r.len(), |(i, _)| i);
            r[..end].trim().to_string()
        });
        out.push(ArgMeta {
            name,
            default,
            description: String::new(),
        });
    }
    out
}

/// The built-in scripts, then the `.lua` files in `dir` (not those starting with `_`),
/// sorted by name.
pub fn list(dir: Option<&Path>) -> Result<Vec<ScriptMeta>, String> {
    let mut out: Vec<ScriptMeta> = BUILTIN
        .iter()
        .map(|(name, _)| {
            let src = builtin_source(name).unwrap_or_default();
            read(&src, &format!("{BUILTIN_PREFIX}{name}"), None)
        })
        .collect();
    if let Some(dir) = dir {
        for path in lua_files(dir)? {
            let src = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.push(read(
                &src,
                &path.display().to_string(),
                path.parent().map(Path::to_path_buf),
            ));
        }
    }
    Ok(out)
}

/// The `.lua` files of a directory (not those starting with `_`), sorted.
pub fn lua_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot list {}: {e} (expected a directory of .lua scripts)",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "lua")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('_'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `--list`'s text: one block per script.
pub fn render_list(items: &[ScriptMeta]) -> String {
    let mut s = String::new();
    for m in items {
        let kind = if m.scenario { "scenario" } else { "script" };
        s.push_str(&format!("{}  ({kind}: {})\n", m.source, m.name));
        if !m.description.is_empty() {
            s.push_str(&format!("    {}\n", m.description));
        }
        if !m.categories.is_empty() {
            s.push_str(&format!("    categories: {}\n", m.categories.join(", ")));
        }
        if !m.args.is_empty() {
            let args: Vec<String> = m
                .args
                .iter()
                .map(|a| match &a.default {
                    Some(d) => format!("{}={d}", a.name),
                    None => a.name.clone(),
                })
                .collect();
            s.push_str(&format!("    args: {}\n", args.join(", ")));
        }
        if let Some(p) = &m.problem {
            s.push_str(&format!("    cannot read its metadata: {p}\n"));
        }
    }
    s
}

/// `--help-args`'s text.
pub fn render_args(m: &ScriptMeta) -> String {
    let mut s = format!("{} ({})\n", m.name, m.source);
    if !m.description.is_empty() {
        s.push_str(&format!("{}\n", m.description));
    }
    if !m.categories.is_empty() {
        s.push_str(&format!("categories: {}\n", m.categories.join(", ")));
    }
    if m.args.is_empty() {
        s.push_str("\nno args\n");
        return s;
    }
    s.push_str("\nargs (--arg NAME=VALUE):\n");
    let width = m.args.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for a in &m.args {
        let default = a
            .default
            .as_ref()
            .map(|d| format!(" (default {d})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {:width$}  {}{default}\n",
            a.name,
            if a.description.is_empty() && !m.scenario {
                "(read with param)"
            } else {
                &a.description
            },
        ));
    }
    if let Some(p) = &m.problem {
        s.push_str(&format!("\ncannot read its metadata: {p}\n"));
    }
    s
}
