//! Errors as the REPL shows them: the message, a traceback only when it says something the
//! message does not (frames in loaded files or stdlib modules, not just the prompt's own
//! line), and a guess when a global name looks mistyped.

use super::help::suggest;

/// Frames shown before "… N more".
const MAX_FRAMES: usize = 8;

pub fn describe(e: &mlua::Error) -> String {
    let full = crate::lua::describe_error(e);
    let (message, trace) = match full.find("\nstack traceback:") {
        Some(i) => (&full[..i], &full[i + 1..]),
        None => (full.as_str(), ""),
    };
    let frames: Vec<&str> = trace
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("[C]:") && !l.starts_with("(..."))
        .collect();
    let mut out = message.trim_end().to_string();
    if frames.iter().any(|f| !f.starts_with("stdin:")) {
        out.push_str("\ntraceback:");
        for f in frames.iter().take(MAX_FRAMES) {
            out.push_str("\n  ");
            out.push_str(f);
        }
        if frames.len() > MAX_FRAMES {
            out.push_str(&format!("\n  … {} more", frames.len() - MAX_FRAMES));
        }
    }
    out
}

/// `attempt to call a nil value (global 'inject')` → `did you mean inject_xid?`
pub fn hint_for<'a>(message: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    let start = message.find("(global '")? + "(global '".len();
    let len = message[start..].find('\'')?;
    let name = &message[start..start + len];
    match suggest(name, names).as_slice() {
        [] => None,
        close => Some(format!("did you mean {}?", close.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Lua;

    fn error_of(lua: &Lua, src: &str) -> mlua::Error {
        lua.load(src).set_name("=stdin").exec().unwrap_err()
    }

    #[test]
    fn prompt_only_errors_are_one_line() {
        let lua = Lua::new();
        let e = describe(&error_of(&lua, "error('boom')"));
        assert_eq!(e, "stdin:1: boom");
        let e = describe(&error_of(&lua, "local function f() error('deep') end f()"));
        assert_eq!(e, "stdin:1: deep");
    }

    #[test]
    fn module_frames_are_kept() {
        let lua = Lua::new();
        lua.load("function lib_fn() error('in the library') end")
            .set_name("@stdlib/lib.lua")
            .exec()
            .unwrap();
        let e = describe(&error_of(&lua, "lib_fn()"));
        let mut lines = e.lines();
        assert_eq!(lines.next(), Some("stdlib/lib.lua:1: in the library"));
        assert_eq!(lines.next(), Some("traceback:"));
        assert!(e.contains("stdlib/lib.lua:1: in"), "{e}");
        assert!(!e.contains("[C]"), "{e}");
    }

    #[test]
    fn mistyped_globals() {
        let names = ["inject_xid", "node", "nodes"];
        assert_eq!(
            hint_for(
                "stdin:1: attempt to call a nil value (global 'inject')",
                names.iter().copied()
            )
            .as_deref(),
            Some("did you mean inject_xid?")
        );
        assert_eq!(
            hint_for(
                "stdin:1: attempt to call a nil value (field 'x')",
                names.iter().copied()
            ),
            None
        );
    }
}
