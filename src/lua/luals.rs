//! `gfi docs --lua-types DIR`: LuaLS (lua-language-server) definition files for the whole API
//! and stdlib, generated from the same entries as `help()` and docs/api.md ([`super::docs`]),
//! so an editor completes and type-checks plans. `DIR/gfi.lua` holds the globals, the `gfi`
//! table, `sim` and the handle classes; `DIR/<module>.lua` each stdlib module, so that
//! `require "scenario"` resolves. The types are read from the signatures' notation: `{Node}`
//! is `Node[]`, `[x]` is `x?`, `A | nil, err` is `A|nil, string?`; a handle (`Node`, `Gpu`),
//! a record whose fields the entry lists (`fault`, `result`, `summary`) and a `{a, b}` or
//! `opts.x` table of options become `---@class`es; a parameter's type comes from its name
//! where the reference gives the name one meaning (`node`, `gpu`, `xid`, `duration`, ...).
//! What the notation does not say is `any`, never a guess.

use super::docs::{DOCS, Doc};
use std::fmt::Write;

/// The stdlib modules a plan `require`s, with their entries' names.
const MODULES: &[(&str, &str)] = &[
    ("scenario", "scenario"),
    ("plan", "plan"),
    ("check", "check.*"),
    ("report", "report"),
    ("rand", "rand"),
];

/// (file name, contents) of every definition file.
pub fn files() -> Vec<(String, String)> {
    let mut g = Gen::default();
    let mut out = vec![("gfi.lua".to_string(), api_file(&mut g))];
    for (module, entry) in MODULES {
        if let Some(d) = DOCS.iter().find(|d| d.name == *entry) {
            out.push((format!("{module}.lua"), module_file(&mut g, module, d)));
        }
    }
    out
}

fn comment(out: &mut String, d: &Doc) {
    for line in d.summary.lines() {
        let _ = writeln!(out, "---{line}");
    }
    for line in d.details {
        let _ = writeln!(out, "--- - {line}");
    }
    if !d.example.is_empty() {
        out.push_str("---\n---```lua\n");
        for l in d.example.lines() {
            let _ = writeln!(out, "---{l}");
        }
        out.push_str("---```\n");
    }
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            s,
            "end" | "function" | "local" | "return" | "nil" | "true" | "false"
        )
}

/// One parameter of a signature: its name, the notation written for it (the name itself, or
/// `{a, b}`, `x | nil`) and whether it sits in `[...]`.
#[derive(Debug, PartialEq)]
struct Param {
    name: String,
    written: String,
    optional: bool,
}

/// The parameters of `name(a, b [, opts])`, and whether it ends in `...`.
fn params(args: &str) -> (Vec<Param>, bool) {
    let mut out: Vec<Param> = Vec::new();
    let mut vararg = false;
    let (mut depth, mut optional, mut cur) = (0i32, 0i32, String::new());
    let mut push = |cur: &mut String, optional: bool, out: &mut Vec<Param>| {
        let written = cur.trim().to_string();
        cur.clear();
        if written == "..." {
            vararg = true;
            return;
        }
        let bare = written.trim_start_matches("...");
        let first = bare.split('|').next().unwrap_or("").trim();
        let name = if is_ident(first) {
            first.to_string()
        } else if bare.starts_with('"') {
            "text".to_string()
        } else if bare.is_empty() {
            return;
        } else {
            "opts".to_string()
        };
        if !out.iter().any(|p| p.name == name) {
            out.push(Param {
                name,
                written,
                optional,
            });
        }
    };
    for ch in args.chars() {
        match ch {
            // `xid [, opts]`: what came before the bracket is not optional.
            '[' if depth == 0 => {
                push(&mut cur, optional > 0, &mut out);
                optional += 1
            }
            ']' if depth == 0 => {
                push(&mut cur, optional > 0, &mut out);
                optional -= 1
            }
            '{' | '(' => {
                depth += 1;
                cur.push(ch)
            }
            '}' | ')' => {
                depth -= 1;
                cur.push(ch)
            }
            ',' if depth == 0 => push(&mut cur, optional > 0, &mut out),
            _ => cur.push(ch),
        }
    }
    push(&mut cur, optional > 0, &mut out);
    (out, vararg)
}

/// `name(args) -> ret` at the start of a signature: the name, its argument text and the
/// return text.
fn call_of(sig: &str) -> Option<(&str, &str, &str)> {
    let open = sig.find('(')?;
    let name = sig[..open].trim();
    let mut depth = 0;
    let close = sig[open..].char_indices().find_map(|(i, c)| {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
        None
    })?;
    // The return text ends where the next item of a list of signatures starts; `f(a) or
    // f({a}) -> r`: the forms share it.
    let rest = sig[close + 1..].split([';', '\n']).next().unwrap_or("");
    let ret = rest.split_once("->").map_or("", |(_, r)| r).trim();
    Some((name, &sig[open + 1..close], ret))
}

/// The LuaLS type of one word of the notation, where the word says it: a parameter's or a
/// field's name, or a return placeholder. The rest are `any` (the prose describes them).
fn word_type(w: &str) -> Option<&'static str> {
    Some(match w {
        "table" => "table",
        "string" | "line" | "err" | "name" | "selector" | "key" | "namespace" => "string",
        "boolean" | "bool" | "true" | "false" => "boolean",
        "nil" => "nil",
        "seconds" | "secs" | "number" => "number",
        "xid" => "integer",
        "duration" | "timeout" => "number|string",
        "fn" | "function" => "function",
        // "Wherever a node is expected, its name works too" (the Node entry), and a GPU is
        // "a Gpu, an index, a PCI address or a UUID" (inject_xid).
        "node" => "Node|string",
        "gpu" => "Gpu|integer|string",
        _ => return None,
    })
}

fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| p[..1].to_ascii_uppercase() + &p[1..])
        .collect()
}

/// Every text of an entry that may list a record's fields.
fn texts(d: &Doc) -> impl Iterator<Item = &'static str> {
    std::iter::once(d.summary).chain(d.details.iter().copied())
}

/// The fields an entry lists for a record word: "result: `ok`, `node`, ...", "a result table:
/// ...", "the fault record: ...". None where it lists none.
fn fields_of(d: &Doc, w: &str) -> Option<Vec<String>> {
    for text in texts(d) {
        for pat in [
            format!("{w} table: "),
            format!("{w} record: "),
            format!("{w}: "),
        ] {
            let mut from = 0;
            while let Some(i) = text[from..].find(&pat).map(|i| i + from) {
                from = i + pat.len();
                let whole = !text[..i]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                let fields = field_list(&text[from..]);
                if whole && fields.len() >= 2 {
                    return Some(fields);
                }
            }
        }
    }
    None
}

/// The names of `a, `b` (what b is), c.` up to the end of the sentence.
fn field_list(s: &str) -> Vec<String> {
    let mut depth = 0;
    let mut end = s.len();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => depth -= 1,
            ';' if depth == 0 => {
                end = i;
                break;
            }
            '.' if depth == 0 && chars.get(k + 1).is_none_or(|&(_, n)| n == ' ') => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for item in split_top(&s[..end]) {
        let item = item.trim().trim_start_matches('`');
        let name: String = item
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = item[name.len()..].trim_start_matches('`');
        if is_ident(&name) && (rest.trim_start().is_empty() || rest.trim_start().starts_with('(')) {
            if !out.contains(&name) {
                out.push(name);
            }
        } else {
            // Not a list of names after all ("selector: `key=value`, ...").
            return Vec::new();
        }
    }
    out
}

/// The class a record word of an entry becomes: named after the word for the first entry
/// that lists its fields (`Result`, `Fault`), after the entry and the word for the others
/// (`WaitRemediationResult`); an entry that lists none uses the first one's of its group
/// (every wait's `result`), and outside such a group the word says nothing (`{result}`).
fn record_class(d: &Doc, w: &str) -> Option<(String, &'static Doc)> {
    if matches!(w, "record" | "table") {
        return None;
    }
    let first = DOCS.iter().find(|e| fields_of(e, w).is_some())?;
    let own = fields_of(d, w).is_some();
    if !own && first.group != d.group {
        return None;
    }
    if std::ptr::eq(first, d) || !own {
        Some((camel(w), first))
    } else {
        let own = DOCS.iter().find(|e| std::ptr::eq(*e, d))?;
        Some((camel(&format!("{} {w}", d.name)), own))
    }
}

/// A class to write once: its fields (name, type) and methods (already written).
struct Class {
    fields: Vec<(String, String)>,
    methods: String,
}

/// Writes the files, declaring each class once, in the file that first needs it.
#[derive(Default)]
struct Gen {
    declared: Vec<String>,
    pending: Vec<(String, Class)>,
}

impl Gen {
    /// The LuaLS type of one written type of entry `d`: `Node`, `{Node}`, `{a, b}`, `x | nil`.
    /// `what` names a class made of a `{a, b}` list (`Opts`, `Result`).
    fn ty(&mut self, d: &Doc, written: &str, what: &str) -> String {
        let mut alts: Vec<String> = Vec::new();
        for alt in split_alts(written) {
            let alt = alt.trim();
            let t = if let Some(inner) = alt.strip_prefix('{').and_then(|a| a.strip_suffix('}')) {
                let items = split_top(inner);
                if items.len() == 1 && is_ident(inner.trim()) {
                    let elem = self.ty(d, inner.trim(), what);
                    if elem.contains('|') {
                        format!("({elem})[]")
                    } else {
                        format!("{elem}[]")
                    }
                } else {
                    let names: Vec<String> = items
                        .iter()
                        .map(|i| i.trim().to_string())
                        .filter(|i| is_ident(i))
                        .collect();
                    if names.is_empty() {
                        "table".to_string()
                    } else {
                        let name = camel(&format!("{} {what}", d.name));
                        self.declare_record(&name, &names, what == "opts");
                        name
                    }
                }
            } else if alt.starts_with(|c: char| c.is_ascii_uppercase()) && is_ident(alt) {
                self.declare_named(alt);
                alt.to_string()
            } else if let Some(t) = word_type(alt) {
                t.to_string()
            } else if let Some((class, from)) = record_class(d, alt) {
                let fields = fields_of(from, alt).unwrap_or_default();
                self.declare_record(&class, &fields, false);
                class
            } else {
                "any".to_string()
            };
            for t in t.split('|') {
                if !alts.iter().any(|a| a == t) {
                    alts.push(t.to_string());
                }
            }
        }
        if alts.is_empty() || alts.iter().any(|a| a == "any") {
            return "any".to_string();
        }
        alts.join("|")
    }

    fn declare_record(&mut self, name: &str, fields: &[String], optional: bool) {
        if self.declared.iter().any(|n| n == name) {
            return;
        }
        self.declared.push(name.to_string());
        let q = if optional { "?" } else { "" };
        let fields = fields
            .iter()
            .map(|f| {
                // An option is described in prose (`line`: inject options, not a line); only
                // a timeout has one type everywhere ("Durations are seconds or text").
                let t = match optional {
                    true if f != "timeout" => "any",
                    _ => word_type(f).unwrap_or("any"),
                };
                (format!("{f}{q}"), t.to_string())
            })
            .collect();
        self.pending.push((
            name.to_string(),
            Class {
                fields,
                methods: String::new(),
            },
        ));
    }

    /// A class the notation names (`Task`, `Plan`): its fields and methods from the entry that
    /// returns it (the backticked `name`, `:wait([timeout])` of its summary, the `p:run(...)`
    /// of its signature). The handles (`Node`, `Gpu`) are written from their own entries.
    fn declare_named(&mut self, name: &str) {
        if self.declared.iter().any(|n| n == name) {
            return;
        }
        self.declared.push(name.to_string());
        if DOCS.iter().any(|d| d.group == "Handles" && d.name == name) {
            return;
        }
        let arrow = format!("-> {name}");
        let Some(d) = DOCS.iter().find(|d| d.signature.contains(&arrow)) else {
            self.pending.push((
                name.to_string(),
                Class {
                    fields: Vec::new(),
                    methods: String::new(),
                },
            ));
            return;
        };
        let mut fields = Vec::new();
        let mut methods = Vec::new();
        for (k, quoted) in d.summary.split('`').enumerate() {
            if k % 2 == 0 {
                continue;
            }
            if let Some(m) = quoted.strip_prefix(':') {
                methods.push(m.to_string());
            } else if is_ident(quoted) {
                fields.push((
                    quoted.to_string(),
                    word_type(quoted).unwrap_or("any").to_string(),
                ));
            }
        }
        for item in d.signature.split(';') {
            if let Some((_, m)) = item.trim().split_once(':')
                && call_of(m).is_some()
            {
                methods.push(m.to_string());
            }
        }
        let mut out = String::new();
        for m in methods {
            if let Some((mname, args, ret)) = call_of(&m) {
                self.function(&mut out, d, &format!("{name}:{mname}"), args, ret, true);
            }
        }
        self.pending.push((
            name.to_string(),
            Class {
                fields,
                methods: out,
            },
        ));
    }

    /// The classes declared since the last call, as text.
    fn take_classes(&mut self) -> String {
        let mut out = String::new();
        for (name, class) in std::mem::take(&mut self.pending) {
            let _ = writeln!(out, "---@class {name}");
            for (f, t) in &class.fields {
                let _ = writeln!(out, "---@field {f} {t}");
            }
            let _ = writeln!(out, "local {name} = {{}}\n");
            out.push_str(&class.methods);
        }
        out
    }

    /// `---@param`/`---@return` lines and the function. `unsaid_any`: no `->` means the
    /// entry does not say what it returns (a module's list), rather than nothing.
    fn function(
        &mut self,
        out: &mut String,
        d: &Doc,
        qualified: &str,
        args: &str,
        ret: &str,
        unsaid_any: bool,
    ) {
        let (ps, vararg) = params(args);
        // Option classes are named after the function: `scenario.expect` -> ScenarioExpectOpts.
        let base = qualified
            .strip_prefix("M.")
            .map_or(qualified.to_string(), |f| format!("{} {f}", d.name));
        let types = self.param_types(d, &base, args, &ps);
        for (p, t) in ps.iter().zip(&types) {
            let q = if p.optional { "?" } else { "" };
            let _ = writeln!(out, "---@param {}{q} {t}", p.name);
        }
        if vararg {
            out.push_str("---@param ... any\n");
        }
        self.returns(out, d, ret, unsaid_any);
        let mut names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        if vararg {
            names.push("...");
        }
        let _ = writeln!(out, "function {qualified}({}) end\n", names.join(", "));
    }

    fn param_types(&mut self, d: &Doc, qualified: &str, args: &str, ps: &[Param]) -> Vec<String> {
        // `spawn([name,] fn)`, `parallel(fn, ...) or parallel({...})`: the positions shift
        // between the forms, so no position has one type.
        let shifting = d.signature.contains(" or ")
            || ps
                .iter()
                .zip(ps.iter().skip(1))
                .any(|(a, b)| a.optional && !b.optional)
            || args.contains(",]");
        ps.iter()
            .map(|p| {
                if shifting {
                    return "any".to_string();
                }
                let lead = |t: &str| -> String {
                    t.trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect()
                };
                // `{timeout, since}` as written, or the `opts.grep: ...` lines of the entry.
                let mut fields: Vec<String> = if let Some(inner) = p
                    .written
                    .strip_prefix('{')
                    .and_then(|w| w.strip_suffix('}'))
                {
                    split_top(inner).iter().map(|f| lead(f)).collect()
                } else {
                    let prefix = format!("{}.", p.name);
                    texts(d)
                        .flat_map(|t| t.split([',', ';']))
                        .filter_map(|t| t.trim().strip_prefix(&prefix).map(lead))
                        .collect()
                };
                fields.retain(|f| is_ident(f));
                let mut unique = Vec::new();
                for f in fields {
                    if !unique.contains(&f) {
                        unique.push(f);
                    }
                }
                if !unique.is_empty() {
                    let name = camel(&format!("{qualified} opts"));
                    self.declare_record(&name, &unique, true);
                    name
                } else if p.name == "opts" || p.name == "o" {
                    "table".to_string()
                } else if p.name == "text" {
                    "string".to_string()
                } else {
                    self.ty(d, &p.written, "opts")
                }
            })
            .collect()
    }

    /// `A | nil, err, result`: one `---@return` each; after a first that may be nil, the
    /// others are there only in that case.
    fn returns(&mut self, out: &mut String, d: &Doc, ret: &str, unsaid_any: bool) {
        if ret.is_empty() {
            if unsaid_any {
                out.push_str("---@return any\n");
            }
            return;
        }
        let mut maybe = false;
        for (k, r) in split_top(ret).iter().enumerate() {
            let r = r.trim();
            let t = self.ty(d, r, "result");
            let q = if maybe && t != "any" && !t.ends_with("nil") {
                "?"
            } else {
                ""
            };
            let _ = writeln!(out, "---@return {t}{q} # {r}");
            if k == 0 {
                maybe = t.split('|').any(|a| a == "nil");
            }
        }
    }
}

/// `a | b` at the top level (not inside `{...}`).
fn split_alts(s: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0, String::new(), Vec::new());
    for c in s.chars() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            '|' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn api_file(g: &mut Gen) -> String {
    let mut out = String::from(
        "---@meta gfi\n-- Generated by `gfi docs --lua-types` from src/lua/docs.rs; do not edit.\n\n---The gfi API: every function is also a global.\ngfi = {}\n---(sim only) The simulated cluster's controls.\nsim = {}\n---`--arg KEY=VALUE` values, as text.\n---@type table<string, string>\nargs = {}\n---Seeded randomness: a global as well as `require \"rand\"`.\nrand = require(\"rand\")\n\n",
    );
    for d in DOCS {
        match d.group {
            "Modules" => {}
            "Handles" => handle_class(g, &mut out, d),
            _ => {
                if let Some((name, _, _)) = call_of(d.signature)
                    && name == d.name
                {
                    comment(&mut out, d);
                    // `log(...) / info(...) / warn(...)`: one entry for several functions.
                    let alike = d.signature.split(" / ").filter_map(call_of);
                    for (name, args, ret) in alike {
                        g.function(&mut out, d, name, args, ret, false);
                        if !name.contains('.') {
                            let _ = writeln!(out, "gfi.{name} = {name}\n");
                        }
                    }
                } else if let Some((name, ty)) = d.signature.split_once(" -> ") {
                    comment(&mut out, d);
                    let t = g.ty(d, ty, "result");
                    let _ = writeln!(out, "---@type {t}\n{name} = nil\ngfi.{name} = {name}\n");
                }
            }
        }
    }
    out.push_str(&g.take_classes());
    out
}

/// `Node: n.name, n:info(), ...` as a class with fields and methods; a method typed as the
/// function of the same name (`info` or `node_info`) without the arguments the handle fills.
fn handle_class(g: &mut Gen, out: &mut String, d: &Doc) {
    comment(out, d);
    let _ = writeln!(out, "---@class {}", d.name);
    let list = d.signature.split_once(':').map_or("", |(_, l)| l);
    let mut methods = Vec::new();
    for item in split_top(list) {
        let item = item.trim();
        let Some((_, member)) = item.split_once(['.', ':']) else {
            continue;
        };
        if item.contains(':') {
            methods.push(member.to_string());
        } else {
            let t = word_type(member).unwrap_or("any");
            let _ = writeln!(out, "---@field {member} {t}");
        }
    }
    let _ = writeln!(out, "local {} = {{}}\n", d.name);
    for m in methods {
        let Some((name, args, _)) = call_of(&m) else {
            continue;
        };
        let node_name = format!("node_{name}");
        let global = DOCS.iter().find(|e| {
            !matches!(e.group, "Handles" | "Modules") && (e.name == name || e.name == node_name)
        });
        let qualified = format!("{}:{name}", d.name);
        let Some((e, (_, gargs, gret))) = global.and_then(|e| call_of(e.signature).map(|c| (e, c)))
        else {
            g.function(out, d, &qualified, args, "", true);
            continue;
        };
        let (mine, vararg) = params(args);
        let (theirs, _) = params(gargs);
        let types = g.param_types(e, e.name, gargs, &theirs);
        let skip = theirs.len().saturating_sub(mine.len());
        for (k, p) in mine.iter().enumerate() {
            let (t, opt) = theirs
                .get(skip + k)
                .map_or(("any".to_string(), p.optional), |q| {
                    (types[skip + k].clone(), q.optional)
                });
            let q = if opt { "?" } else { "" };
            let _ = writeln!(out, "---@param {}{q} {t}", p.name);
        }
        g.returns(out, e, gret, true);
        let mut names: Vec<&str> = mine.iter().map(|p| p.name.as_str()).collect();
        if vararg {
            names.push("...");
        }
        let _ = writeln!(out, "function {qualified}({}) end\n", names.join(", "));
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0, String::new(), Vec::new());
    for c in s.chars() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn module_file(g: &mut Gen, module: &str, d: &Doc) -> String {
    let mut out = format!(
        "---@meta {module}\n-- Generated by `gfi docs --lua-types` from src/lua/docs.rs; do not edit.\n\n"
    );
    comment(&mut out, d);
    let _ = writeln!(out, "local M = {{}}\n");
    let text = std::iter::once(d.signature)
        .chain(d.details.iter().copied())
        .collect::<Vec<_>>()
        .join("\n");
    let prefix = format!("{module}.");
    let mut seen = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(&prefix) {
        let after = &rest[i + prefix.len()..];
        // Only whole names: `scenario.run(`, not `myscenario.run(`.
        let whole = i == 0
            || !rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let bare: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if whole && !bare.is_empty() && !seen.contains(&bare) {
            match call_of(after) {
                Some((name, args, ret)) if name == bare => {
                    g.function(&mut out, d, &format!("M.{name}"), args, ret, true)
                }
                // `check.that, check.eq, ...`: named without their arguments.
                _ if after[bare.len()..].starts_with([',', ';']) || after.len() == bare.len() => {
                    let _ = writeln!(
                        out,
                        "---@param ... any\n---@return any\nfunction M.{bare}(...) end\n"
                    );
                }
                _ => {}
            }
            seen.push(bare);
        }
        rest = after;
    }
    out.push_str(&g.take_classes());
    out.push_str("return M\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(args: &str) -> Vec<(String, bool)> {
        params(args)
            .0
            .into_iter()
            .map(|p| (p.name, p.optional))
            .collect()
    }

    #[test]
    fn signatures_become_parameters() {
        assert_eq!(
            names("node, gpu, xid [, opts]"),
            [
                ("node".to_string(), false),
                ("gpu".into(), false),
                ("xid".into(), false),
                ("opts".into(), true)
            ]
        );
        assert_eq!(
            names("[{max_unavailable, window}]"),
            [("opts".to_string(), true)]
        );
        assert_eq!(
            names("node, key, value | nil"),
            [
                ("node".to_string(), false),
                ("key".into(), false),
                ("value".into(), false)
            ]
        );
        assert!(params("fn, ...").1);
        assert_eq!(
            call_of("f(a, (b)) -> x | nil"),
            Some(("f", "a, (b)", "x | nil"))
        );
        assert_eq!(
            call_of("parallel(fn, fn, ...) or parallel({fn, ...}) -> {result}"),
            Some(("parallel", "fn, fn, ...", "{result}"))
        );
    }

    /// The annotations of a function: its `---@` lines up to and including `function NAME(`.
    fn annotations(files: &[(String, String)], file: &str, function: &str) -> String {
        let text = &files.iter().find(|(n, _)| n == file).unwrap().1;
        let at = text
            .find(&format!("\nfunction {function}("))
            .unwrap_or_else(|| panic!("no {function} in {file}"));
        // Back over the `---@` lines just above.
        let mut start = at;
        while let Some(p) = text[..start].rfind('\n') {
            if !text[p + 1..start].starts_with("---@") {
                break;
            }
            start = p;
        }
        let end = text[at + 1..].find('\n').map_or(text.len(), |e| at + 1 + e);
        text[start + 1..end].to_string()
    }

    fn class(files: &[(String, String)], name: &str) -> String {
        let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
        let at = all
            .find(&format!("---@class {name}\n"))
            .unwrap_or_else(|| panic!("no class {name}"));
        let end = all[at..].find("local ").unwrap() + at;
        all[at..end].to_string()
    }

    #[test]
    fn the_notation_becomes_luals_types() {
        let f = files();
        assert_eq!(
            annotations(&f, "gfi.lua", "nodes"),
            "---@param selector? string\n---@return Node[]|nil # {Node} | nil\n---@return string? # err\nfunction nodes(selector) end"
        );
        assert_eq!(
            annotations(&f, "gfi.lua", "inject_xid"),
            "---@param node Node|string\n---@param gpu Gpu|integer|string\n---@param xid integer\n---@param opts? InjectXidOpts\n---@return Fault|nil # fault | nil\n---@return string? # err\nfunction inject_xid(node, gpu, xid, opts) end"
        );
        assert_eq!(
            annotations(&f, "gfi.lua", "wait_cordoned"),
            "---@param node Node|string\n---@param opts? WaitCordonedOpts\n---@return Result|nil # result | nil\n---@return string? # err\n---@return Result? # result\nfunction wait_cordoned(node, opts) end"
        );
        // A handle's method is the function of its name without the node.
        assert_eq!(
            annotations(&f, "gfi.lua", "Node:wait_state"),
            "---@param v any\n---@param o? WaitStateOpts\n---@return Result|nil # result | nil\n---@return string? # err\n---@return Result? # result\nfunction Node:wait_state(v, o) end"
        );
        assert_eq!(
            annotations(&f, "gfi.lua", "sleep"),
            "---@param duration number|string\nfunction sleep(duration) end"
        );
        assert_eq!(
            annotations(&f, "gfi.lua", "print"),
            "---@param ... any\nfunction print(...) end"
        );
        assert!(annotations(&f, "gfi.lua", "warn").ends_with("function warn(...) end"));
        assert_eq!(
            annotations(&f, "plan.lua", "Plan:run"),
            "---@param opts? table\n---@return Summary # summary\nfunction Plan:run(opts) end"
        );
        assert_eq!(
            annotations(&f, "scenario.lua", "M.run"),
            "---@param node Node|string\n---@param gpu Gpu|integer|string\n---@param xid integer\n---@param opts? ScenarioRunOpts\n---@return ScenarioResult # result\nfunction M.run(node, gpu, xid, opts) end"
        );
        assert_eq!(
            class(&f, "Fault"),
            "---@class Fault\n---@field id any\n---@field node Node|string\n---@field gpu Gpu|integer|string\n---@field pci any\n---@field uuid any\n---@field xid integer\n---@field line string\n---@field time any\n---@field at any\n---@field seq any\n---@field write_path any\n"
        );
        assert_eq!(
            class(&f, "KmsgTailOpts"),
            "---@class KmsgTailOpts\n---@field grep? any\n---@field since? any\n---@field limit? any\n"
        );
        assert!(class(&f, "Node").contains("---@field name string\n"));
        // Every class is declared once, across all the files.
        let all: String = f.iter().map(|(_, t)| t.as_str()).collect();
        for line in all.lines().filter(|l| l.starts_with("---@class ")) {
            assert_eq!(all.matches(&format!("{line}\n")).count(), 1, "{line}");
        }
        // Every type named is declared or built in.
        let builtin = [
            "any", "nil", "string", "number", "integer", "boolean", "table", "function",
        ];
        for line in all.lines().filter(|l| {
            l.starts_with("---@param") || l.starts_with("---@return") || l.starts_with("---@field")
        }) {
            let ty = line
                .split(" # ")
                .next()
                .unwrap()
                .split(' ')
                .next_back()
                .unwrap();
            for t in ty
                .split(['|', '(', ')'])
                .map(|t| t.trim_end_matches("[]").trim_end_matches('?'))
            {
                if t.is_empty() || builtin.contains(&t) || t == "..." {
                    continue;
                }
                assert!(
                    all.contains(&format!("---@class {t}\n")),
                    "{t} in `{line}` is not declared"
                );
            }
        }
    }
}
