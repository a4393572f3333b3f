//! `help()` in the REPL: the API reference of [`crate::lua::docs`] (the same source as
//! `docs/api.md` and `gfi run`'s `help`), reached by name, by the function itself (`help(inject_xid)`),
//! by a handle (`help(n)`), by a module (`help(sim)`), or by a group (`help("Waits")`).

use super::names::{ApiNames, LUA_LIBRARIES};
use crate::lua::api::handles::{GpuHandle, NodeHandle};
use crate::lua::api::tasks::Task;
use crate::lua::docs::{self, DOCS, GROUPS};
use mlua::{Function, Value};

const MANUAL: &str = "https://www.lua.org/manual/5.4/manual.html";

/// Stdlib modules and the doc entry that describes each.
const MODULE_DOCS: &[(&str, &str)] = &[
    ("rand", "rand"),
    ("scenario", "scenario"),
    ("plan", "plan"),
    ("check", "check.*"),
    ("report", "report"),
];

/// The text `help(v)` shows.
pub fn help_text(names: &ApiNames, v: &Value) -> String {
    match v {
        Value::Nil => format!(
            "{}\nREPL commands: .help    Lua itself: {MANUAL}\n",
            docs::overview().trim_end()
        ),
        Value::String(s) => by_name(&s.to_string_lossy()),
        Value::Function(f) => by_function(names, f),
        Value::Table(t) => match names.module_of(t).as_deref() {
            Some("gfi") => help_text(names, &Value::Nil),
            Some("sim") => group("Sim").unwrap_or_default(),
            Some(lib) if LUA_LIBRARIES.contains(&lib) => {
                format!("the Lua standard library '{lib}': {MANUAL}#6")
            }
            Some(module) => by_name(module),
            None => "help(x) explains API functions, handles and modules; this is a plain table. help() lists the API.".into(),
        },
        Value::UserData(ud) => {
            if ud.is::<NodeHandle>() {
                by_name("Node")
            } else if ud.is::<GpuHandle>() {
                by_name("Gpu")
            } else if ud.is::<Task>() {
                by_name("spawn")
            } else {
                "no help for this value; help() lists the API".into()
            }
        }
        other => format!(
            "help explains the API: help(), help(inject_xid), help(\"wait_cordoned\"), help(\"Waits\"); got {}",
            other.type_name()
        ),
    }
}

fn by_function(names: &ApiNames, f: &Function) -> String {
    let Some(name) = names.name_of(f) else {
        let info = f.info();
        return match (info.short_src, info.line_defined) {
            (Some(src), Some(line)) if info.what == "Lua" => format!(
                "no API help for this function: it is defined at {src}:{line}; help() lists the API"
            ),
            _ => "no API help for this function; help() lists the API".into(),
        };
    };
    if docs::find(&name).is_some() {
        return by_name(&name);
    }
    if let Some((owner, member)) = name.split_once('.') {
        if owner == "Node" || owner == "Gpu" {
            let receiver = if owner == "Node" { "n" } else { "g" };
            let note = format!(
                "{owner} method: {receiver}:{member}(...) calls {member} with the {} first.\n\n",
                owner.to_lowercase()
            );
            return match docs::help_for(member) {
                Some(text) => note + &text,
                None => note + &by_name(owner),
            };
        }
        if let Some((_, doc)) = MODULE_DOCS.iter().find(|(m, _)| *m == owner) {
            return by_name(doc);
        }
        if LUA_LIBRARIES.contains(&owner) {
            return format!("{name}: Lua standard library, see {MANUAL}#pdf-{name}");
        }
    }
    format!("{name}: Lua standard function, see {MANUAL}#pdf-{name}")
}

fn group(name: &str) -> Option<String> {
    let g = GROUPS.iter().find(|g| g.eq_ignore_ascii_case(name))?;
    let mut out = format!("{g}\n");
    for d in DOCS.iter().filter(|d| d.group == *g) {
        let sig = d.signature.split(" -> ").next().unwrap_or(d.signature);
        out.push_str(&format!("  {sig}\n      {}\n", d.summary));
    }
    Some(out)
}

/// `help("wait_cordoned")`, `help("gfi.inject_xid")`, `help("n:wait_cordoned")`, `help("Waits")`.
pub fn by_name(name: &str) -> String {
    let name = name.trim();
    let bare = name
        .trim_end_matches("()")
        .trim_start_matches("gfi.")
        .rsplit(':')
        .next()
        .unwrap_or(name);
    let bare = bare
        .strip_prefix("Node.")
        .or_else(|| bare.strip_prefix("Gpu."))
        .unwrap_or(bare);
    if let Some(text) = docs::help_for(bare) {
        return text;
    }
    if let Some((_, doc)) = MODULE_DOCS.iter().find(|(m, _)| *m == bare)
        && let Some(text) = docs::help_for(doc)
    {
        return text;
    }
    if let Some(text) = group(bare) {
        return text;
    }
    let mut known: Vec<&str> = DOCS.iter().map(|d| d.name).collect();
    known.extend(GROUPS.iter().copied());
    match suggest(bare, known.iter().copied()).as_slice() {
        [] => format!("no help for '{name}'; help() lists everything"),
        close => format!(
            "no help for '{name}'; did you mean {}? help() lists everything",
            close.join(", ")
        ),
    }
}

/// Up to three names close to `word`: sharing its start, containing it, or a typo away.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let w = word.to_ascii_lowercase();
    if w.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(usize, &str)> = candidates
        .filter(|c| !c.eq_ignore_ascii_case(word))
        .filter_map(|c| {
            let lc = c.to_ascii_lowercase();
            let d = edit_distance(&w, &lc);
            let score = if lc.starts_with(&w) || (w.len() >= 3 && lc.contains(&w)) {
                Some(0)
            } else if d <= (w.len() / 4).clamp(1, 2) {
                Some(d)
            } else {
                None
            };
            score.map(|s| (s, c))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Edits (insert, delete, substitute, swap two neighbours) between two words.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_groups_and_suggestions() {
        assert!(by_name("wait_cordoned").starts_with("wait_cordoned(node"));
        assert!(by_name("gfi.inject_xid").starts_with("inject_xid("));
        assert!(by_name("n:wait_uncordoned").starts_with("wait_uncordoned("));
        assert!(by_name("waits").starts_with("Waits\n"));
        assert!(by_name("scenario").contains("scenario.run"));
        let miss = by_name("wait_cordon");
        assert!(miss.contains("did you mean wait_cordoned"), "{miss}");
        assert!(by_name("zzzz").starts_with("no help for 'zzzz'"));
    }

    #[test]
    fn suggestions() {
        let names = ["inject_xid", "node", "nodes", "wait_cordoned", "print"];
        assert_eq!(suggest("inject", names.iter().copied()), vec!["inject_xid"]);
        assert_eq!(suggest("pritn", names.iter().copied()), vec!["print"]);
        assert_eq!(suggest("nod", names.iter().copied()), vec!["node", "nodes"]);
        assert!(suggest("qqqqqq", names.iter().copied()).is_empty());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("pritn", "print"), 1);
    }
}
