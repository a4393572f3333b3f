//! How the REPL shows values: tables laid out to the terminal's width with a stable key order,
//! handles as what they name, long lists summarised, cycles marked, colour only on a terminal.
//!
//! Tables the API returns (fault records, wait results, node facts, catalogue entries) keep
//! their fields in the order people read them, and at the top level get a one-line caption.

use crate::lua::api::handles::{GpuHandle, NodeHandle};
use mlua::{Function, Lua, Table, Value};
use std::collections::HashSet;
use std::ffi::c_void;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub color: bool,
    /// Columns available for one line.
    pub width: usize,
    /// Entries shown per table before "… N more".
    pub max_items: usize,
    /// Tables nested deeper than this are shown as `{… N entries}`.
    pub max_depth: usize,
    /// Bytes of a nested string shown before it is cut.
    pub max_string: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            color: false,
            width: 100,
            max_items: 20,
            max_depth: 3,
            max_string: 400,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    Plain,
    Str,
    Num,
    Bool,
    Nil,
    Func,
    Handle,
    Dim,
}

impl Paint {
    fn code(self) -> Option<&'static str> {
        match self {
            Paint::Plain => None,
            Paint::Str => Some("32"),
            Paint::Num => Some("33"),
            Paint::Bool => Some("35"),
            Paint::Nil | Paint::Dim => Some("2"),
            Paint::Func => Some("34"),
            Paint::Handle => Some("36"),
        }
    }
}

type Segments = Vec<(Paint, String)>;

enum Doc {
    Atom(Segments),
    Table { entries: Vec<Entry>, more: usize },
}

struct Entry {
    key: Option<Segments>,
    value: Doc,
}

fn seg_len(s: &Segments) -> usize {
    s.iter().map(|(_, t)| t.chars().count()).sum()
}

/// Known table shapes: how to recognise them and the order their fields read best in.
struct Shape {
    required: &'static [&'static str],
    order: &'static [&'static str],
}

const SHAPES: &[Shape] = &[
    Shape {
        required: &["ok", "waited_for", "observed"],
        order: &[
            "ok",
            "node",
            "waited_for",
            "elapsed",
            "at",
            "timeout",
            "observed",
        ],
    },
    Shape {
        required: &["id", "node", "gpu", "xid", "line"],
        order: &[
            "id",
            "node",
            "gpu",
            "xid",
            "pci",
            "uuid",
            "line",
            "time",
            "at",
            "seq",
            "write_path",
        ],
    },
    Shape {
        required: &["name", "boot_id", "labels"],
        order: &[
            "name",
            "cordoned",
            "unschedulable",
            "ready",
            "state",
            "boot_id",
            "conditions",
            "taints",
            "labels",
            "annotations",
        ],
    },
    Shape {
        required: &["xid", "mnemonic", "action"],
        order: &[
            "xid",
            "mnemonic",
            "description",
            "action",
            "fatal",
            "group",
            "text",
            "known",
        ],
    },
    Shape {
        required: &["outcome", "expected", "timings"],
        order: &[
            "ok",
            "outcome",
            "expected",
            "node",
            "gpu",
            "xid",
            "fault_id",
            "at",
            "failed_stage",
            "error",
            "timings",
        ],
    },
];

/// Fields of nested node facts that are long and rarely the point.
const COLLAPSED_WHEN_NESTED: &[&str] = &["labels", "annotations", "conditions"];

fn shape_of(keys: &[String]) -> Option<&'static Shape> {
    SHAPES
        .iter()
        .find(|s| s.required.iter().all(|r| keys.iter().any(|k| k == r)))
}

pub struct Printer<'a> {
    lua: &'a Lua,
    opts: Options,
    /// The canonical name of an API function, for `function: inject_xid`.
    name_of: &'a dyn Fn(&Function) -> Option<String>,
}

/// Lua's `%.14g` with a `.0` on integral floats, as `tostring` writes numbers.
pub fn lua_number(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    const P: i32 = 14;
    let sci = format!("{:.*e}", (P - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut s = if !(-4..P).contains(&exp) {
        let m = trim_fraction(mantissa);
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (P - 1 - exp).max(0) as usize;
        trim_fraction(&format!("{x:.decimals$}")).to_string()
    };
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        s.push_str(".0");
    }
    s
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A Lua string literal for `bytes`, cut after `max` bytes.
pub fn quote(bytes: &[u8], max: usize) -> (String, usize) {
    let shown = &bytes[..bytes.len().min(max)];
    let mut out = String::with_capacity(shown.len() + 2);
    out.push('"');
    let text = String::from_utf8_lossy(shown);
    let lossless = matches!(text, std::borrow::Cow::Borrowed(_));
    if lossless {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\{}", c as u32))
                }
                c => out.push(c),
            }
        }
    } else {
        // Not UTF-8 (or cut inside a character): byte escapes keep it exact.
        for &b in shown {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b}")),
            }
        }
    }
    out.push('"');
    (out, bytes.len() - shown.len())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !super::lex::KEYWORDS.contains(&s)
}

/// Sort rank of a key: integers, other numbers, strings, booleans, the rest.
fn key_rank(k: &Value) -> u8 {
    match k {
        Value::Integer(_) => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Boolean(_) => 3,
        _ => 4,
    }
}

fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.to_string_lossy(),
        _ => String::new(),
    }
}

impl<'a> Printer<'a> {
    pub fn new(
        lua: &'a Lua,
        opts: Options,
        name_of: &'a dyn Fn(&Function) -> Option<String>,
    ) -> Self {
        Printer { lua, opts, name_of }
    }

    /// The values a chunk returned: top-level strings as they are (like Lua's REPL), the rest
    /// pretty; tab-separated when they all fit one line.
    pub fn values(&self, values: &[Value]) -> String {
        // `value, nil` is how many functions say "no error": the nil says nothing.
        let keep = values
            .iter()
            .rposition(|v| !v.is_nil())
            .map_or(values.len(), |i| i + 1);
        let rendered: Vec<String> = values[..keep].iter().map(|v| self.top(v)).collect();
        let one_line = rendered.iter().all(|r| !r.contains('\n'));
        if one_line && rendered.iter().map(|r| visible_len(r) + 1).sum::<usize>() <= self.opts.width
        {
            rendered.join("\t")
        } else {
            rendered.join("\n")
        }
    }

    /// One value at the top level.
    pub fn top(&self, v: &Value) -> String {
        match v {
            Value::String(s) => s.to_string_lossy(),
            Value::Table(t) => {
                let caption = self.caption(t);
                let doc = self.build(v, 0, &mut HashSet::new(), None);
                let body = self.layout(&doc, 0);
                match caption {
                    Some(c) => format!("{}\n{body}", self.paint(Paint::Dim, &format!("-- {c}"))),
                    None => body,
                }
            }
            _ => {
                let doc = self.build(v, 0, &mut HashSet::new(), None);
                self.layout(&doc, 0)
            }
        }
    }

    fn paint(&self, p: Paint, text: &str) -> String {
        match p.code() {
            Some(code) if self.opts.color && !text.is_empty() => {
                format!("\x1b[{code}m{text}\x1b[0m")
            }
            _ => text.to_string(),
        }
    }

    fn segs(&self, s: &Segments) -> String {
        s.iter().map(|(p, t)| self.paint(*p, t)).collect()
    }

    /// A one-line caption for tables the API returns.
    fn caption(&self, t: &Table) -> Option<String> {
        let get = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
        let text = |k: &str| match get(k) {
            Value::String(s) => Some(s.to_string_lossy()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Number(n) => Some(lua_number(n)),
            _ => None,
        };
        let secs = |k: &str| match get(k) {
            Value::Integer(i) => Some(i as f64),
            Value::Number(n) => Some(n),
            _ => None,
        };
        // Any table can look like a wait result: no panic on odd numbers.
        let fmt = |s: f64| match std::time::Duration::try_from_secs_f64(s) {
            Ok(d) => crate::duration::format(d),
            Err(_) => lua_number(s),
        };
        if let (Value::Boolean(ok), Some(node), Some(what)) =
            (get("ok"), text("node"), text("waited_for"))
            && !matches!(get("observed"), Value::Nil)
        {
            return Some(if ok {
                format!(
                    "✓ {node} {what} after {}",
                    fmt(secs("elapsed").unwrap_or(0.0))
                )
            } else {
                format!(
                    "✗ {node} not {what} within {}",
                    fmt(secs("timeout").unwrap_or(0.0))
                )
            });
        }
        if let (Some(id), Some(node), Some(gpu), Some(xid), Some(_)) = (
            text("id"),
            text("node"),
            text("gpu"),
            text("xid"),
            text("line"),
        ) {
            let about = xid
                .parse::<u32>()
                .ok()
                .map(|x| crate::xid::catalog::lookup_or_generic(x).description)
                .unwrap_or_default();
            return Some(format!(
                "fault {id}: XID {xid} ({about}) on {node} GPU {gpu}"
            ));
        }
        None
    }

    fn build(
        &self,
        v: &Value,
        depth: usize,
        path: &mut HashSet<*const c_void>,
        parent_key: Option<&str>,
    ) -> Doc {
        let atom = |p: Paint, s: String| Doc::Atom(vec![(p, s)]);
        match v {
            Value::Nil => atom(Paint::Nil, "nil".into()),
            Value::Boolean(b) => atom(Paint::Bool, b.to_string()),
            Value::Integer(i) => atom(Paint::Num, i.to_string()),
            Value::Number(n) => atom(Paint::Num, lua_number(*n)),
            Value::String(s) => {
                let (q, cut) = quote(&s.as_bytes(), self.opts.max_string);
                let mut segs = vec![(Paint::Str, q)];
                if cut > 0 {
                    segs.push((Paint::Dim, format!("…({cut} more bytes)")));
                }
                Doc::Atom(segs)
            }
            Value::Function(f) => atom(Paint::Func, self.function_text(f)),
            Value::UserData(ud) => {
                if let Ok(n) = ud.borrow::<NodeHandle>() {
                    atom(Paint::Handle, format!("node({})", n.name))
                } else if let Ok(g) = ud.borrow::<GpuHandle>() {
                    atom(
                        Paint::Handle,
                        format!("gpu({}#{} {})", g.node, g.index, g.pci),
                    )
                } else {
                    atom(Paint::Handle, self.tostring(v))
                }
            }
            Value::Table(t) => self.table(t, depth, path, parent_key),
            other => atom(Paint::Dim, self.tostring(other)),
        }
    }

    fn tostring(&self, v: &Value) -> String {
        let via_lua = self
            .lua
            .globals()
            .raw_get::<Function>("tostring")
            .and_then(|f| f.call::<String>(v.clone()));
        via_lua.unwrap_or_else(|_| format!("{}: {:?}", v.type_name(), v.to_pointer()))
    }

    fn function_text(&self, f: &Function) -> String {
        if let Some(name) = (self.name_of)(f) {
            return format!("function: {name}");
        }
        let info = f.info();
        match (info.what, info.short_src, info.line_defined) {
            ("Lua", Some(src), Some(line)) => format!("function: {src}:{line}"),
            _ => "function: builtin".into(),
        }
    }

    fn table(
        &self,
        t: &Table,
        depth: usize,
        path: &mut HashSet<*const c_void>,
        parent_key: Option<&str>,
    ) -> Doc {
        let ptr = t.to_pointer();
        if path.contains(&ptr) {
            return Doc::Atom(vec![(Paint::Dim, "<cycle>".into())]);
        }
        // A type with its own text (a class instance) says best what it is.
        if let Some(mt) = t.metatable()
            && matches!(mt.raw_get::<Value>("__tostring"), Ok(Value::Function(_)))
        {
            return Doc::Atom(vec![(
                Paint::Handle,
                self.tostring(&Value::Table(t.clone())),
            )]);
        }
        // A node's facts build their labels and conditions on first use: show them all.
        let _ = crate::lua::api::handles::materialize_facts(self.lua, t);
        let mut pairs: Vec<(Value, Value)> = Vec::new();
        let _ = t.for_each::<Value, Value>(|k, v| {
            pairs.push((k, v));
            Ok(())
        });
        if pairs.is_empty() {
            return Doc::Atom(vec![(Paint::Plain, "{}".into())]);
        }
        let collapse = depth > self.opts.max_depth
            || (depth >= 2 && parent_key.is_some_and(|k| COLLAPSED_WHEN_NESTED.contains(&k)));
        if collapse {
            let n = pairs.len();
            return Doc::Atom(vec![
                (Paint::Plain, "{".into()),
                (
                    Paint::Dim,
                    format!("… {n} entr{}", if n == 1 { "y" } else { "ies" }),
                ),
                (Paint::Plain, "}".into()),
            ]);
        }
        // The sequence part: 1..n, all present.
        let len = t.raw_len();
        let seq_ok = len > 0
            && pairs
                .iter()
                .filter(|(k, _)| matches!(k, Value::Integer(i) if *i >= 1 && *i as usize <= len))
                .count()
                == len;
        let (mut seq, mut rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| {
            seq_ok && matches!(k, Value::Integer(i) if *i >= 1 && *i as usize <= len)
        });
        seq.sort_by_key(|(k, _)| match k {
            Value::Integer(i) => *i,
            _ => 0,
        });
        let string_keys: Vec<String> = rest
            .iter()
            .filter(|(k, _)| matches!(k, Value::String(_)))
            .map(|(k, _)| key_string(k))
            .collect();
        let shape = shape_of(&string_keys);
        rest.sort_by(|(a, _), (b, _)| {
            let (ra, rb) = (key_rank(a), key_rank(b));
            if ra != rb {
                return ra.cmp(&rb);
            }
            match (a, b) {
                (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
                (Value::Number(x), Value::Number(y)) => x.total_cmp(y),
                (Value::String(_), Value::String(_)) => {
                    let (sa, sb) = (key_string(a), key_string(b));
                    let pos = |s: &str| {
                        shape
                            .and_then(|sh| sh.order.iter().position(|o| *o == s))
                            .unwrap_or(usize::MAX)
                    };
                    pos(&sa).cmp(&pos(&sb)).then(sa.cmp(&sb))
                }
                (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
                _ => self.tostring(a).cmp(&self.tostring(b)),
            }
        });
        path.insert(ptr);
        let total = seq.len() + rest.len();
        let mut entries = Vec::new();
        for (_, v) in seq.iter().take(self.opts.max_items) {
            entries.push(Entry {
                key: None,
                value: self.build(v, depth + 1, path, None),
            });
        }
        for (k, v) in rest
            .iter()
            .take(self.opts.max_items.saturating_sub(entries.len()))
        {
            let key = match k {
                Value::String(_) if is_identifier(&key_string(k)) => {
                    vec![(Paint::Plain, key_string(k))]
                }
                other => {
                    let inner = self.build(other, depth + 1, path, None);
                    let mut segs = vec![(Paint::Plain, "[".to_string())];
                    if let Doc::Atom(s) = inner {
                        segs.extend(s);
                    }
                    segs.push((Paint::Plain, "]".into()));
                    segs
                }
            };
            let name = key_string(k);
            entries.push(Entry {
                key: Some(key),
                value: self.build(v, depth + 1, path, Some(name.as_str())),
            });
        }
        path.remove(&ptr);
        Doc::Table {
            more: total - entries.len(),
            entries,
        }
    }

    fn flat_len(&self, d: &Doc) -> usize {
        match d {
            Doc::Atom(s) => seg_len(s),
            Doc::Table { entries, more } => {
                let mut n = 4; // "{ " and " }"
                for (i, e) in entries.iter().enumerate() {
                    if i > 0 {
                        n += 2;
                    }
                    if let Some(k) = &e.key {
                        n += seg_len(k) + 3;
                    }
                    n += self.flat_len(&e.value);
                }
                if *more > 0 {
                    n += format!(", … {more} more").chars().count();
                }
                n
            }
        }
    }

    fn more_text(&self, more: usize) -> String {
        self.paint(Paint::Dim, &format!("… {more} more"))
    }

    fn flat(&self, d: &Doc) -> String {
        match d {
            Doc::Atom(s) => self.segs(s),
            Doc::Table { entries, more } => {
                let mut parts: Vec<String> = entries
                    .iter()
                    .map(|e| match &e.key {
                        Some(k) => format!("{} = {}", self.segs(k), self.flat(&e.value)),
                        None => self.flat(&e.value),
                    })
                    .collect();
                if *more > 0 {
                    parts.push(self.more_text(*more));
                }
                format!("{{ {} }}", parts.join(", "))
            }
        }
    }

    fn layout(&self, d: &Doc, indent: usize) -> String {
        if indent + self.flat_len(d) <= self.opts.width {
            return self.flat(d);
        }
        match d {
            Doc::Atom(_) => self.flat(d),
            Doc::Table { entries, more } => {
                let pad = " ".repeat(indent + 2);
                let mut out = String::from("{\n");
                for e in entries {
                    out.push_str(&pad);
                    let key_len = match &e.key {
                        Some(k) => {
                            out.push_str(&self.segs(k));
                            out.push_str(" = ");
                            seg_len(k) + 3
                        }
                        None => 0,
                    };
                    // A value that fits after its key stays there; a table that does not
                    // opens on this line and continues below.
                    let value = if indent + 2 + key_len + self.flat_len(&e.value) < self.opts.width
                    {
                        self.flat(&e.value)
                    } else {
                        self.layout(&e.value, indent + 2)
                    };
                    out.push_str(&value);
                    out.push_str(",\n");
                }
                if *more > 0 {
                    out.push_str(&pad);
                    out.push_str(&self.more_text(*more));
                    out.push('\n');
                }
                out.push_str(&" ".repeat(indent));
                out.push('}');
                out
            }
        }
    }
}

/// Characters a person sees (ANSI colour codes take no room).
pub fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in s.chars() {
        if in_escape {
            if c.is_ascii_alphabetic() {
                in_escape = false;
            }
        } else if c == '\x1b' {
            in_escape = true;
        } else {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_names(_: &Function) -> Option<String> {
        None
    }

    fn show(lua: &Lua, src: &str, opts: Options) -> String {
        let v: mlua::MultiValue = lua.load(src).eval().unwrap();
        Printer::new(lua, opts, &no_names).values(&v.into_vec())
    }

    fn plain(lua: &Lua, src: &str) -> String {
        show(lua, src, Options::default())
    }

    #[test]
    fn numbers_print_like_lua() {
        let lua = Lua::new();
        for (x, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1.0 / 3.0, "0.33333333333333"),
            (1e15, "1e+15"),
            (1e100, "1e+100"),
            (123456.0, "123456.0"),
            (1e-5, "1e-05"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(lua_number(x), want, "{x}");
            let lua_text: String = lua
                .load(format!("return tostring({})", lua_literal(x)))
                .eval()
                .unwrap();
            assert_eq!(lua_number(x), lua_text, "{x}");
        }
    }

    fn lua_literal(x: f64) -> String {
        if x.is_infinite() {
            "math.huge".into()
        } else {
            format!("{x:e}")
        }
    }

    #[test]
    fn scalars_and_top_level_strings() {
        let lua = Lua::new();
        assert_eq!(plain(&lua, "return 1, 2.5, true, nil"), "1\t2.5\ttrue");
        assert_eq!(plain(&lua, "return nil, 'why'"), "nil\twhy");
        assert_eq!(plain(&lua, "return nil"), "nil");
        assert_eq!(plain(&lua, "return 'raw text'"), "raw text");
        assert_eq!(plain(&lua, "return {'a\\n\"b'}"), r#"{ "a\n\"b" }"#);
    }

    #[test]
    fn stable_key_order_and_identifiers() {
        let lua = Lua::new();
        let out = plain(
            &lua,
            "return {zeta = 1, alpha = 2, [10] = 'x', [2] = 'y', ['with space'] = 3, [true] = 4}",
        );
        assert_eq!(
            out,
            r#"{ [2] = "y", [10] = "x", alpha = 2, ["with space"] = 3, zeta = 1, [true] = 4 }"#
        );
        // Same table, same text, every time.
        for _ in 0..5 {
            assert_eq!(
                plain(&lua, "return {c = 1, b = 2, a = 3}"),
                "{ a = 3, b = 2, c = 1 }"
            );
        }
    }

    #[test]
    fn sequences_then_other_keys() {
        let lua = Lua::new();
        assert_eq!(
            plain(&lua, "return {10, 20, 30, n = 3}"),
            "{ 10, 20, 30, n = 3 }"
        );
        // A hole: keys are shown, not guessed.
        assert_eq!(
            plain(&lua, "return {[1] = 'a', [3] = 'c'}"),
            "{ \"a\", [3] = \"c\" }"
        );
    }

    #[test]
    fn long_lists_are_summarised() {
        let lua = Lua::new();
        let out = plain(
            &lua,
            "local t = {} for i = 1, 1000 do t[i] = i end return t",
        );
        assert!(out.contains("… 980 more"), "{out}");
        assert!(out.contains("20,") || out.contains("20 "), "{out}");
        assert!(!out.contains("21,"), "{out}");
    }

    #[test]
    fn cycles_are_marked() {
        let lua = Lua::new();
        let out = plain(
            &lua,
            "local t = {name = 'loop'} t.self = t t.list = {t} return t",
        );
        assert_eq!(
            out,
            "{ list = { <cycle> }, name = \"loop\", self = <cycle> }"
        );
        // A table seen twice, but not inside itself, is shown twice.
        let out = plain(&lua, "local s = {1} return {a = s, b = s}");
        assert_eq!(out, "{ a = { 1 }, b = { 1 } }");
    }

    #[test]
    fn wide_tables_break_into_lines() {
        let lua = Lua::new();
        let opts = Options {
            width: 30,
            ..Options::default()
        };
        let out = show(
            &lua,
            "return {first = 'aaaaaaaaaa', second = {x = 1, y = 2}, third = 'cccccccccc'}",
            opts,
        );
        assert_eq!(
            out,
            "{\n  first = \"aaaaaaaaaa\",\n  second = { x = 1, y = 2 },\n  third = \"cccccccccc\",\n}"
        );
    }

    #[test]
    fn deep_tables_collapse() {
        let lua = Lua::new();
        let out = plain(&lua, "return {a = {b = {c = {d = {e = 1}}}}}");
        assert_eq!(out, "{ a = { b = { c = { d = {… 1 entry} } } } }");
    }

    #[test]
    fn known_shapes_read_in_order_with_a_caption() {
        let lua = Lua::new();
        let wide = Options {
            width: 300,
            ..Options::default()
        };
        let out = show(
            &lua,
            "return {timeout = 600, observed = {name = 'n1', boot_id = 'b', labels = {a = '1'}, cordoned = true}, elapsed = 15, waited_for = 'cordoned', node = 'n1', ok = true, at = 20}",
            wide,
        );
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("-- ✓ n1 cordoned after 15s"));
        let body = lines.next().unwrap();
        assert!(
            body.starts_with("{ ok = true, node = \"n1\", waited_for = \"cordoned\", elapsed = 15, at = 20, timeout = 600, observed = { name = \"n1\", cordoned = true, boot_id = \"b\", labels = {… 1 entry} } }"),
            "{body}"
        );
    }

    #[test]
    fn look_alike_tables_with_odd_numbers_do_not_panic() {
        let lua = Lua::new();
        let out = plain(
            &lua,
            "return {ok = true, node = 'n', waited_for = 'w', observed = {}, elapsed = 0/0}",
        );
        assert!(
            out.starts_with("-- ✓ n w after nan") || out.starts_with("-- ✓ n w after -nan"),
            "{out}"
        );
        let out = plain(
            &lua,
            "return {ok = false, node = 'n', waited_for = 'w', observed = {}, timeout = -math.huge}",
        );
        assert!(out.starts_with("-- ✗ n not w within -inf"), "{out}");
    }

    #[test]
    fn colour_only_when_asked() {
        let lua = Lua::new();
        let opts = Options {
            color: true,
            ..Options::default()
        };
        let out = show(&lua, "return {s = 'x', n = 1}", opts);
        assert!(out.contains("\x1b[32m\"x\"\x1b[0m"), "{out:?}");
        assert_eq!(visible_len(&out), "{ n = 1, s = \"x\" }".len());
        assert!(!plain(&lua, "return {s = 'x'}").contains('\x1b'));
    }

    #[test]
    fn long_and_binary_strings() {
        let (q, cut) = quote(&[b'a'; 10], 4);
        assert_eq!((q.as_str(), cut), ("\"aaaa\"", 6));
        let (q, _) = quote(&[0xff, b'a', 0], 10);
        assert_eq!(q, "\"\\255a\\0\"");
    }

    #[test]
    fn functions_say_where_they_come_from() {
        let lua = Lua::new();
        let out = plain(
            &lua,
            "return {f = load('return function() end', '=stdin')(), g = print}",
        );
        assert_eq!(out, "{ f = function: stdin:1, g = function: builtin }");
    }
}
