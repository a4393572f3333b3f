//! Where the cursor is, for completion: which word is being typed, what it belongs to (a
//! member of `gfi.`, a method of `n:`, a string argument of `node(`, the third argument of
//! `inject_xid(`), and what the unfinished chunk declared (`local n = node(...)`).
//!
//! Pure text analysis; [`super::complete`] turns it into candidates with the Lua state.

use super::lex::{self, Kind, Token, matching_open};
use std::collections::HashMap;

/// What an expression evidently is, without evaluating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guess {
    Node,
    Gpu,
    Task,
    /// A string literal in parentheses: `("x"):upper()`.
    String,
    /// `require "name"`.
    Module(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub text: String,
    /// `a.b.c` when the expression is only names and dots.
    pub chain: Option<Vec<String>>,
    pub guess: Option<Guess>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// The function called, or for a method call (`x:m(`) the receiver.
    pub callee: Expr,
    pub method: Option<String>,
    /// 0-based position of the argument under the cursor (not counting a method's self).
    pub arg: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    Nothing,
    /// A name being typed where an expression goes.
    Identifier {
        start: usize,
        partial: String,
        call: Option<CallSite>,
    },
    /// `x.part` or `x:part`.
    Member {
        start: usize,
        partial: String,
        method: bool,
        receiver: Expr,
    },
    /// Inside a string literal that is not closed yet.
    Str {
        start: usize,
        partial: String,
        quote: Option<char>,
        call: Option<CallSite>,
    },
    /// An argument position with nothing or a number typed: `inject_xid(n, 0, 7`.
    Argument {
        start: usize,
        partial: String,
        call: CallSite,
    },
}

/// What the text before the cursor declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locals {
    pub names: Vec<String>,
    pub guesses: HashMap<String, Guess>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub context: Context,
    pub locals: Locals,
}

/// Analyses `text`: everything before the cursor (earlier lines of the chunk included).
pub fn analyze(text: &str) -> Analysis {
    let lexed = lex::lex(text);
    let toks = &lexed.tokens;
    let locals = locals(text, toks);
    let context = if lexed.in_comment {
        Context::Nothing
    } else {
        context(text, toks)
    };
    Analysis { context, locals }
}

fn context(text: &str, toks: &[Token<'_>]) -> Context {
    let Some(last) = toks.last() else {
        return Context::Nothing;
    };
    let idx = toks.len() - 1;
    let at_end = last.end == text.len();
    match last.kind {
        Kind::Str { closed: false } => Context::Str {
            start: last.content_start,
            partial: last.string_contents().to_string(),
            quote: last.quote(),
            call: string_call_site(text, toks, idx).or_else(|| call_site(text, toks, idx)),
        },
        Kind::Name | Kind::Keyword if at_end => {
            if idx > 0 && (toks[idx - 1].is_sym(".") || toks[idx - 1].is_sym(":")) {
                return match expr_before(text, toks, idx - 1) {
                    Some(receiver) => Context::Member {
                        start: last.start,
                        partial: last.text.to_string(),
                        method: toks[idx - 1].is_sym(":"),
                        receiver,
                    },
                    None => Context::Nothing,
                };
            }
            if idx > 0 && names_something_new(&toks[idx - 1]) {
                return Context::Nothing;
            }
            Context::Identifier {
                start: last.start,
                partial: last.text.to_string(),
                call: call_site(text, toks, idx),
            }
        }
        Kind::Symbol if at_end && (last.text == "." || last.text == ":") => {
            match expr_before(text, toks, idx) {
                Some(receiver) => Context::Member {
                    start: text.len(),
                    partial: String::new(),
                    method: last.text == ":",
                    receiver,
                },
                None => Context::Nothing,
            }
        }
        Kind::Number if at_end => match call_site(text, toks, idx) {
            Some(call) => Context::Argument {
                start: last.start,
                partial: last.text.to_string(),
                call,
            },
            None => Context::Nothing,
        },
        Kind::Symbol if last.text == "(" || last.text == "," || !at_end => {
            match call_site(text, toks, toks.len()) {
                Some(call) if last.text == "(" || last.text == "," => Context::Argument {
                    start: text.len(),
                    partial: String::new(),
                    call,
                },
                _ => Context::Nothing,
            }
        }
        _ => Context::Nothing,
    }
}

/// After `local`, `function`, `for`, `goto` or `::`, a name is being made up, not looked up.
fn names_something_new(prev: &Token<'_>) -> bool {
    prev.is_kw("local")
        || prev.is_kw("function")
        || prev.is_kw("for")
        || prev.is_kw("goto")
        || prev.is_sym("::")
}

/// Tokens that can end a prefix expression (and so be followed by call arguments).
fn ends_primary(t: &Token<'_>) -> bool {
    matches!(t.kind, Kind::Name | Kind::Str { closed: true }) || t.is_sym(")") || t.is_sym("]")
}

/// Where the prefix expression ending just before `toks[end]` starts.
fn expr_start(toks: &[Token<'_>], end: usize) -> Option<usize> {
    let mut i = end;
    loop {
        if i == 0 {
            break;
        }
        let t = &toks[i - 1];
        match t.kind {
            Kind::Name => {
                i -= 1;
                if i > 0 && (toks[i - 1].is_sym(".") || toks[i - 1].is_sym(":")) {
                    i -= 1;
                    if i == 0 {
                        return None;
                    }
                    continue;
                }
                break;
            }
            Kind::Symbol if t.text == ")" || t.text == "]" => {
                let open = matching_open(toks, i - 1)?;
                i = open;
                if i > 0 && ends_primary(&toks[i - 1]) {
                    continue;
                }
                if toks[open].is_sym("(") {
                    break;
                }
                return None;
            }
            Kind::Str { closed: true } => {
                i -= 1;
                if i > 0 && matches!(toks[i - 1].kind, Kind::Name) {
                    continue;
                }
                break;
            }
            _ => return None,
        }
    }
    (i < end).then_some(i)
}

fn expr_before(text: &str, toks: &[Token<'_>], end: usize) -> Option<Expr> {
    let start = expr_start(toks, end)?;
    Some(make_expr(text, &toks[start..end]))
}

fn make_expr(text: &str, toks: &[Token<'_>]) -> Expr {
    let span = match (toks.first(), toks.last()) {
        (Some(a), Some(b)) => &text[a.start..b.end],
        _ => "",
    };
    let chain = toks
        .iter()
        .enumerate()
        .all(|(i, t)| {
            if i % 2 == 0 {
                t.kind == Kind::Name
            } else {
                t.is_sym(".")
            }
        })
        .then(|| toks.iter().step_by(2).map(|t| t.text.to_string()).collect())
        .filter(|c: &Vec<String>| !c.is_empty() && toks.len() % 2 == 1);
    Expr {
        text: span.to_string(),
        chain,
        guess: guess(toks),
    }
}

/// The name a call in `toks` (ending with `)` at `close`) calls: `node(...)`, `n:gpu(...)`.
fn called_name<'a>(toks: &[Token<'a>], close: usize) -> Option<(&'a str, usize)> {
    let open = matching_open(toks, close)?;
    let name = toks.get(open.checked_sub(1)?)?;
    (name.kind == Kind::Name).then_some((name.text, open))
}

/// What an expression evidently is: `node(..)`, `gpus(..)[i]`, `spawn(..)`, `require "m"`.
fn guess(toks: &[Token<'_>]) -> Option<Guess> {
    let last = toks.last()?;
    let close = toks.len() - 1;
    if toks.len() == 3
        && toks[0].is_sym("(")
        && matches!(toks[1].kind, Kind::Str { closed: true })
        && last.is_sym(")")
    {
        return Some(Guess::String);
    }
    if last.is_sym(")") {
        let (name, open) = called_name(toks, close)?;
        return match name {
            "node" => Some(Guess::Node),
            "gpu" => Some(Guess::Gpu),
            "spawn" => Some(Guess::Task),
            "require" => match toks.get(open + 1) {
                Some(t) if t.kind == (Kind::Str { closed: true }) => {
                    Some(Guess::Module(t.string_contents().to_string()))
                }
                _ => None,
            },
            _ => None,
        };
    }
    if last.is_sym("]") {
        let open = matching_open(toks, close)?;
        let before = open.checked_sub(1)?;
        if toks[before].is_sym(")") {
            let (name, _) = called_name(toks, before)?;
            return match name {
                "nodes" | "gpu_nodes" => Some(Guess::Node),
                "gpus" => Some(Guess::Gpu),
                _ => None,
            };
        }
        return None;
    }
    if let Kind::Str { closed: true } = last.kind
        && toks.len() >= 2
        && toks[toks.len() - 2].text == "require"
    {
        return Some(Guess::Module(last.string_contents().to_string()));
    }
    None
}

/// A string literal called as an argument without parentheses: `require "scen`.
fn string_call_site(text: &str, toks: &[Token<'_>], idx: usize) -> Option<CallSite> {
    let prev = toks.get(idx.checked_sub(1)?)?;
    if !(prev.kind == Kind::Name || prev.is_sym(")") || prev.is_sym("]")) {
        return None;
    }
    callee_at(text, toks, idx, 0)
}

/// The callee whose argument list starts at `toks[open]` (a `(` or a string).
fn callee_at(text: &str, toks: &[Token<'_>], open: usize, arg: usize) -> Option<CallSite> {
    let start = expr_start(toks, open)?;
    let callee = &toks[start..open];
    if callee.len() >= 3 && callee[callee.len() - 2].is_sym(":") {
        let method = callee[callee.len() - 1].text.to_string();
        return Some(CallSite {
            callee: make_expr(text, &callee[..callee.len() - 2]),
            method: Some(method),
            arg,
        });
    }
    Some(CallSite {
        callee: make_expr(text, callee),
        method: None,
        arg,
    })
}

/// Statement words: walking back past one of them leaves the call the cursor could be in.
const STATEMENT_KEYWORDS: &[&str] = &[
    "do", "then", "else", "elseif", "local", "return", "if", "while", "for", "repeat", "until",
    "in",
];

/// The call whose argument list holds `toks[idx]` (or the end, when `idx == toks.len()`).
fn call_site(text: &str, toks: &[Token<'_>], idx: usize) -> Option<CallSite> {
    let mut commas = 0;
    let mut j = idx;
    while j > 0 {
        j -= 1;
        let t = &toks[j];
        match t.kind {
            Kind::Symbol => match t.text {
                ")" | "]" | "}" => j = matching_open(toks, j)?,
                "," => commas += 1,
                "(" => return callee_at(text, toks, j, commas),
                "{" | "[" | "=" | ";" => return None,
                _ => {}
            },
            Kind::Keyword if STATEMENT_KEYWORDS.contains(&t.text) => return None,
            _ => {}
        }
    }
    None
}

/// The index just past the matching close of the group opened at `toks[open]`.
fn group_end(toks: &[Token<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if t.kind != Kind::Symbol {
            continue;
        }
        match t.text {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The end (exclusive) of the prefix expression starting at `toks[i]`.
fn primary_end(toks: &[Token<'_>], mut i: usize) -> Option<usize> {
    match toks.get(i)? {
        t if t.kind == Kind::Name => i += 1,
        t if t.is_sym("(") => i = group_end(toks, i)?,
        _ => return None,
    }
    loop {
        match toks.get(i) {
            Some(t)
                if (t.is_sym(".") || t.is_sym(":"))
                    && toks.get(i + 1).is_some_and(|n| n.kind == Kind::Name) =>
            {
                i += 2
            }
            Some(t) if t.is_sym("(") || t.is_sym("[") => match group_end(toks, i) {
                Some(e) => i = e,
                None => return Some(i),
            },
            Some(t) if matches!(t.kind, Kind::Str { closed: true }) => i += 1,
            _ => return Some(i),
        }
    }
}

fn guess_from(toks: &[Token<'_>], start: usize) -> Option<Guess> {
    let end = primary_end(toks, start)?;
    guess(&toks[start..end])
}

/// `local` names, function parameters and loop variables, with what they evidently hold.
fn locals(_text: &str, toks: &[Token<'_>]) -> Locals {
    let mut out = Locals::default();
    let add = |out: &mut Locals, name: &str, g: Option<Guess>| {
        if !out.names.iter().any(|n| n == name) {
            out.names.push(name.to_string());
        }
        match g {
            Some(g) => {
                out.guesses.insert(name.to_string(), g);
            }
            None => {
                out.guesses.remove(name);
            }
        }
    };
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.is_kw("local") {
            if toks.get(i + 1).is_some_and(|n| n.is_kw("function")) {
                if let Some(n) = toks.get(i + 2).filter(|n| n.kind == Kind::Name) {
                    add(&mut out, n.text, None);
                }
                // On to `function`, for its parameters.
                i += 1;
                continue;
            }
            let mut names = Vec::new();
            let mut j = i + 1;
            while let Some(n) = toks.get(j).filter(|n| n.kind == Kind::Name) {
                names.push(n.text);
                j += 1;
                // `<const>` / `<close>`
                if toks.get(j).is_some_and(|a| a.is_sym("<")) {
                    j += 3;
                }
                if toks.get(j).is_some_and(|c| c.is_sym(",")) {
                    j += 1;
                } else {
                    break;
                }
            }
            let first_guess = toks
                .get(j)
                .filter(|e| e.is_sym("="))
                .and_then(|_| guess_from(toks, j + 1));
            for (k, n) in names.iter().enumerate() {
                add(&mut out, n, if k == 0 { first_guess.clone() } else { None });
            }
            i = j;
            continue;
        }
        if t.is_kw("function") {
            // Parameters: the first `(` after `function [name]`.
            if let Some(open) = (i + 1..toks.len().min(i + 8)).find(|&k| toks[k].is_sym("(")) {
                let mut k = open + 1;
                while let Some(p) = toks.get(k) {
                    if p.kind == Kind::Name {
                        add(&mut out, p.text, None);
                    } else if !p.is_sym(",") {
                        break;
                    }
                    k += 1;
                }
            }
        }
        if t.is_kw("for") {
            let mut vars = Vec::new();
            let mut j = i + 1;
            while let Some(n) = toks.get(j).filter(|n| n.kind == Kind::Name) {
                vars.push(n.text);
                j += 1;
                if toks.get(j).is_some_and(|c| c.is_sym(",")) {
                    j += 1;
                } else {
                    break;
                }
            }
            // `for _, n in ipairs(nodes())`: the values are nodes.
            let mut value_guess = None;
            if toks.get(j).is_some_and(|t| t.is_kw("in"))
                && toks
                    .get(j + 1)
                    .is_some_and(|t| t.text == "ipairs" || t.text == "pairs")
                && toks.get(j + 2).is_some_and(|t| t.is_sym("("))
                && let Some(end) = primary_end(toks, j + 3)
                && end > j + 3
                && toks[end - 1].is_sym(")")
            {
                value_guess = match called_name(toks, end - 1).map(|(n, _)| n) {
                    Some("nodes" | "gpu_nodes") => Some(Guess::Node),
                    Some("gpus") => Some(Guess::Gpu),
                    _ => None,
                };
            }
            for (k, n) in vars.iter().enumerate() {
                add(&mut out, n, if k == 1 { value_guess.clone() } else { None });
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(text: &str) -> Context {
        analyze(text).context
    }

    fn chain(parts: &[&str]) -> Option<Vec<String>> {
        Some(parts.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn identifiers() {
        assert_eq!(
            ctx("wait_co"),
            Context::Identifier {
                start: 0,
                partial: "wait_co".into(),
                call: None
            }
        );
        assert_eq!(ctx("local wai"), Context::Nothing);
        assert_eq!(ctx("x = 1 -- wai"), Context::Nothing);
        assert_eq!(ctx("wait_co "), Context::Nothing);
    }

    #[test]
    fn members_and_methods() {
        match ctx("gfi.wa") {
            Context::Member {
                start,
                partial,
                method,
                receiver,
            } => {
                assert_eq!((start, partial.as_str(), method), (4, "wa", false));
                assert_eq!(receiver.chain, chain(&["gfi"]));
            }
            other => panic!("{other:?}"),
        }
        match ctx("x = n:") {
            Context::Member {
                start,
                partial,
                method,
                receiver,
            } => {
                assert_eq!((start, partial.as_str(), method), (6, "", true));
                assert_eq!(receiver.text, "n");
            }
            other => panic!("{other:?}"),
        }
        match ctx("node(\"gpu-node-001\"):wait") {
            Context::Member { receiver, .. } => {
                assert_eq!(receiver.guess, Some(Guess::Node));
                assert_eq!(receiver.chain, None);
            }
            other => panic!("{other:?}"),
        }
        match ctx("gpus(n)[1]:") {
            Context::Member { receiver, .. } => assert_eq!(receiver.guess, Some(Guess::Gpu)),
            other => panic!("{other:?}"),
        }
        match ctx("a.b.c.") {
            Context::Member { receiver, .. } => assert_eq!(receiver.chain, chain(&["a", "b", "c"])),
            other => panic!("{other:?}"),
        }
        // A number is not a receiver.
        assert_eq!(ctx("x = 3."), Context::Nothing);
    }

    #[test]
    fn strings_in_calls() {
        match ctx("node(\"gpu-n") {
            Context::Str {
                start,
                partial,
                quote,
                call: Some(call),
            } => {
                assert_eq!((start, partial.as_str(), quote), (6, "gpu-n", Some('"')));
                assert_eq!(call.callee.chain, chain(&["node"]));
                assert_eq!(call.arg, 0);
            }
            other => panic!("{other:?}"),
        }
        match ctx("n:wait_state('dr") {
            Context::Str {
                call: Some(call), ..
            } => {
                assert_eq!(call.method.as_deref(), Some("wait_state"));
                assert_eq!(call.callee.text, "n");
                assert_eq!(call.arg, 0);
            }
            other => panic!("{other:?}"),
        }
        match ctx("local s = require \"sce") {
            Context::Str {
                call: Some(call), ..
            } => assert_eq!(call.callee.chain, chain(&["require"])),
            other => panic!("{other:?}"),
        }
        match ctx("t = {\"gpu") {
            Context::Str { call: None, .. } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn argument_positions() {
        match ctx("inject_xid(n, gpus(n)[1], ") {
            Context::Argument {
                start,
                partial,
                call,
            } => {
                assert_eq!((start, partial.as_str(), call.arg), (26, "", 2));
                assert_eq!(call.callee.chain, chain(&["inject_xid"]));
            }
            other => panic!("{other:?}"),
        }
        match ctx("n:inject_xid(0, 7") {
            Context::Argument { partial, call, .. } => {
                assert_eq!((partial.as_str(), call.arg), ("7", 1));
                assert_eq!(call.method.as_deref(), Some("inject_xid"));
            }
            other => panic!("{other:?}"),
        }
        match ctx("xid(") {
            Context::Argument { call, .. } => assert_eq!(call.arg, 0),
            other => panic!("{other:?}"),
        }
        match ctx("inject_xid(n, 0, fall") {
            Context::Identifier {
                call: Some(call), ..
            } => assert_eq!(call.arg, 2),
            other => panic!("{other:?}"),
        }
        // Closed calls are behind us.
        assert_eq!(ctx("f(1) "), Context::Nothing);
        assert_eq!(ctx("x = 4"), Context::Nothing);
    }

    #[test]
    fn multi_line_chunks() {
        let text = "for _, n in ipairs(gpu_nodes()) do\n  n:wait";
        let a = analyze(text);
        assert_eq!(a.locals.guesses.get("n"), Some(&Guess::Node));
        match a.context {
            Context::Member {
                start, receiver, ..
            } => {
                assert_eq!(start, text.len() - 4);
                assert_eq!(receiver.text, "n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn locals_and_what_they_hold() {
        let a = analyze(
            "local sc = require \"scenario\"\nlocal g = gpus(n)[1]\nlocal a, b = 1, 2\nlocal function f(x, y) end\n",
        );
        assert_eq!(
            a.locals.guesses.get("sc"),
            Some(&Guess::Module("scenario".into()))
        );
        assert_eq!(a.locals.guesses.get("g"), Some(&Guess::Gpu));
        for n in ["sc", "g", "a", "b", "f", "x", "y"] {
            assert!(a.locals.names.iter().any(|m| m == n), "{n}");
        }
        let a = analyze("local n = node(\"gpu-node-001\") local t = spawn(f)");
        assert_eq!(a.locals.guesses.get("n"), Some(&Guess::Node));
        assert_eq!(a.locals.guesses.get("t"), Some(&Guess::Task));
    }
}
