//! Turning typed text into something to run, as a good Lua REPL does:
//!
//! - an expression prints its value: `return <text>` is tried first, the statement second;
//! - text that ends early (an open `function`, `do`, `{`, `(`) asks for more lines;
//! - a top-level `local` survives to the next line. Each input is its own chunk, so a plain
//!   `local n = node(...)` would be gone by the next prompt; instead the REPL keeps such names
//!   in a table of its own that its chunks see before the globals. Shadowing works as in a
//!   script (`local nodes = nodes()` hides the function from later lines, not from the API), and
//!   the globals are never touched.

use super::lex::{self, Kind};
use mlua::{Function, Lua, Table, Value};

/// The environment REPL chunks run in.
pub struct ReplEnv {
    /// `_ENV` of every chunk typed at the prompt.
    pub env: Table,
    /// The REPL's own variables (top-level `local`s, `_`); chunks see them before globals.
    pub vars: Table,
    declared: Table,
}

const ENV_SOURCE: &str = r#"
local G = _G
local rawset = rawset
local vars = setmetatable({}, { __index = G })
local declared = {}
local env = setmetatable({}, {
  __index = vars,
  __newindex = function(_, k, v)
    if declared[k] then rawset(vars, k, v) else G[k] = v end
  end,
})
return env, vars, declared
"#;

impl ReplEnv {
    pub fn new(lua: &Lua) -> mlua::Result<ReplEnv> {
        let (env, vars, declared) = lua
            .load(ENV_SOURCE)
            .set_name("=repl")
            .eval::<(Table, Table, Table)>()?;
        Ok(ReplEnv {
            env,
            vars,
            declared,
        })
    }

    /// Makes `names` REPL variables: assignments to them land in `vars`.
    pub fn declare(&self, names: &[String]) -> mlua::Result<()> {
        for n in names {
            self.declared.raw_set(n.as_str(), true)?;
        }
        Ok(())
    }

    /// `_`: the first value of the last expression.
    pub fn set_last(&self, v: Value) -> mlua::Result<()> {
        self.declared.raw_set("_", true)?;
        self.vars.raw_set("_", v)
    }
}

pub enum Compiled {
    /// Ready to run; `declares` are the top-level locals it makes REPL variables.
    Ready {
        func: Function,
        declares: Vec<String>,
    },
    /// The text ends inside a construct: read another line.
    Incomplete,
    Error(mlua::Error),
}

/// Chunk name in messages: `stdin:3: ...`, like Lua's own REPL.
pub const CHUNK_NAME: &str = "=stdin";

pub fn compile(lua: &Lua, env: &ReplEnv, text: &str) -> Compiled {
    let load = |src: &str| {
        lua.load(src)
            .set_name(CHUNK_NAME)
            .set_environment(env.env.clone())
            .into_function()
    };
    let incomplete = |r: &mlua::Result<Function>| {
        matches!(
            r,
            Err(mlua::Error::SyntaxError {
                incomplete_input: true,
                ..
            })
        )
    };
    // `=expr` is Lua 5.1's REPL shorthand; people still type it.
    let expr_text = match text.trim_start().strip_prefix('=') {
        Some(rest) => rest,
        None => text,
    };
    let as_expression = load(&format!("return {expr_text}"));
    if let Ok(func) = as_expression {
        return Compiled::Ready {
            func,
            declares: Vec::new(),
        };
    }
    let (rewritten, declares) = hoist_locals(text);
    let as_statement = load(&rewritten);
    match as_statement {
        Ok(func) => Compiled::Ready { func, declares },
        Err(_) if incomplete(&as_expression) => Compiled::Incomplete,
        r @ Err(_) if incomplete(&r) => Compiled::Incomplete,
        Err(e) => Compiled::Error(e),
    }
}

/// Rewrites top-level `local a, b = ...` to `a, b = ...` and `local function f` to
/// `function f`, returning the names. Locals inside blocks, and `<const>`/`<close>` ones
/// (which need real locals), are left alone. Line numbers do not change.
pub fn hoist_locals(text: &str) -> (String, Vec<String>) {
    let toks = lex::lex(text).tokens;
    let mut depth = 0i32;
    let mut edits: Vec<(usize, usize, &str)> = Vec::new();
    let mut names = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.kind == Kind::Keyword {
            match t.text {
                "function" | "do" | "if" | "repeat" => depth += 1,
                "end" | "until" => depth -= 1,
                "local" if depth == 0 => {
                    if let Some(f) = toks.get(i + 1).filter(|f| f.is_kw("function")) {
                        if let Some(n) = toks.get(i + 2).filter(|n| n.kind == Kind::Name) {
                            names.push(n.text.to_string());
                            edits.push((t.start, f.start, ""));
                        }
                        i += 1;
                        continue;
                    }
                    let mut j = i + 1;
                    let mut these = Vec::new();
                    let mut attrib = false;
                    while let Some(n) = toks.get(j).filter(|n| n.kind == Kind::Name) {
                        these.push(n);
                        j += 1;
                        if toks.get(j).is_some_and(|a| a.is_sym("<")) {
                            attrib = true;
                            break;
                        }
                        if toks.get(j).is_some_and(|c| c.is_sym(",")) {
                            j += 1;
                        } else {
                            break;
                        }
                    }
                    if !attrib && let (Some(first), Some(last)) = (these.first(), these.last()) {
                        edits.push((t.start, first.start, ""));
                        if !toks.get(j).is_some_and(|e| e.is_sym("=")) {
                            edits.push((last.end, last.end, " = nil"));
                        }
                        names.extend(these.iter().map(|n| n.text.to_string()));
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    let mut out = text.to_string();
    for (start, end, with) in edits.into_iter().rev() {
        out.replace_range(start..end, with);
    }
    (out, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hoisting() {
        let h = |s: &str| hoist_locals(s);
        assert_eq!(h("local x = 1"), ("x = 1".into(), vec!["x".into()]));
        assert_eq!(
            h("local a, b = f()"),
            ("a, b = f()".into(), vec!["a".into(), "b".into()])
        );
        assert_eq!(h("local a"), ("a = nil".into(), vec!["a".into()]));
        assert_eq!(
            h("local function f() local y = 2 end"),
            ("function f() local y = 2 end".into(), vec!["f".into()])
        );
        assert_eq!(
            h("do local z = 1 end local w = 2"),
            ("do local z = 1 end w = 2".into(), vec!["w".into()])
        );
        assert_eq!(
            h("local c <const> = 1"),
            ("local c <const> = 1".into(), vec![])
        );
        assert_eq!(
            h("for i = 1, 2 do local q = i end"),
            ("for i = 1, 2 do local q = i end".into(), vec![])
        );
        assert_eq!(h("s = 'local x = 1'"), ("s = 'local x = 1'".into(), vec![]));
    }

    fn run(lua: &Lua, env: &ReplEnv, text: &str) -> mlua::Result<mlua::MultiValue> {
        match compile(lua, env, text) {
            Compiled::Ready { func, declares } => {
                env.declare(&declares)?;
                func.call(())
            }
            Compiled::Incomplete => panic!("incomplete: {text}"),
            Compiled::Error(e) => Err(e),
        }
    }

    #[test]
    fn expressions_statements_and_incomplete_input() {
        let lua = Lua::new();
        let env = ReplEnv::new(&lua).unwrap();
        let v = run(&lua, &env, "1 + 2").unwrap();
        assert_eq!(v.into_vec(), vec![Value::Integer(3)]);
        let v = run(&lua, &env, "=4").unwrap();
        assert_eq!(v.into_vec(), vec![Value::Integer(4)]);
        assert!(run(&lua, &env, "x = 5").unwrap().is_empty());
        for open in [
            "function f()",
            "{",
            "f(",
            "for i = 1, 3 do",
            "if x then",
            "x = {",
        ] {
            assert!(
                matches!(compile(&lua, &env, open), Compiled::Incomplete),
                "{open}"
            );
        }
        match compile(&lua, &env, "x = = 1") {
            Compiled::Error(e) => assert!(e.to_string().contains("unexpected symbol"), "{e}"),
            _ => panic!("not an error"),
        }
        // A multi-line table is one expression.
        let v = run(&lua, &env, "{\n1,\n2\n}").unwrap();
        assert!(matches!(v.into_vec()[0], Value::Table(_)));
    }

    #[test]
    fn locals_survive_without_touching_globals() {
        let lua = Lua::new();
        let env = ReplEnv::new(&lua).unwrap();
        lua.globals()
            .set("nodes", lua.create_function(|_, ()| Ok(7)).unwrap())
            .unwrap();
        run(&lua, &env, "local nodes = nodes()").unwrap();
        let v = run(&lua, &env, "nodes").unwrap();
        assert_eq!(v.into_vec(), vec![Value::Integer(7)]);
        // The global function is still there for everyone else.
        let f: Value = lua.globals().get("nodes").unwrap();
        assert!(matches!(f, Value::Function(_)));
        run(&lua, &env, "local function twice(x) return 2 * x end").unwrap();
        let v = run(&lua, &env, "twice(21)").unwrap();
        assert_eq!(v.into_vec(), vec![Value::Integer(42)]);
        assert!(matches!(
            lua.globals().get::<Value>("twice").unwrap(),
            Value::Nil
        ));
        // Plain assignments still make globals.
        run(&lua, &env, "g = 1").unwrap();
        assert_eq!(lua.globals().get::<i64>("g").unwrap(), 1);
        // A REPL variable assigned later stays a REPL variable.
        run(&lua, &env, "local k = 1").unwrap();
        run(&lua, &env, "k = 2").unwrap();
        assert!(matches!(
            lua.globals().get::<Value>("k").unwrap(),
            Value::Nil
        ));
        assert_eq!(
            run(&lua, &env, "k").unwrap().into_vec(),
            vec![Value::Integer(2)]
        );
    }
}
