//! Tab completion candidates: globals and REPL variables, members of tables and modules
//! (`gfi.`, `sim.`, `rand.`, a `require`d module), methods of handles (`n:` → `gfi.Node`,
//! `g:` → `gfi.Gpu`), node names inside string arguments, XID numbers with their names where
//! an XID goes, and the values some arguments take (states, condition types, help topics,
//! module names).
//!
//! Nothing typed is evaluated: names are looked up with raw reads, other expressions are only
//! recognised by their shape (see [`super::context`]).

use super::context::{Analysis, CallSite, Context, Expr, Guess, Locals};
use super::lex::KEYWORDS;
use super::names::ApiNames;
use crate::lua::api::handles::{GPU_METHODS, GpuHandle, NODE_METHODS, NodeHandle};
use crate::lua::api::tasks::Task;
use crate::lua::docs::{DOCS, GROUPS};
use crate::xid::catalog;
use mlua::{Lua, Table, Value};

/// Values of the `dgxc.nvidia.com/nvsentinel-state` label.
pub const STATES: &[&str] = &[
    "quarantined",
    "draining",
    "drain-succeeded",
    "drain-failed",
    "remediating",
    "remediation-succeeded",
    "remediation-failed",
];

const TASK_METHODS: &[&str] = &["cancel", "done", "error", "status", "wait"];
const TASK_FIELDS: &[&str] = &["id", "name"];
const GPU_FIELDS: &[&str] = &["index", "model", "node", "pci", "uuid"];

/// Functions whose first argument is a node (canonical names, see [`ApiNames`]).
const NODE_FIRST: &[&str] = &[
    "node",
    "node_info",
    "gpus",
    "gpu",
    "pods",
    "events",
    "kmsg_tail",
    "uncordon",
    "inject_xid",
    "wait_cordoned",
    "wait_uncordoned",
    "wait_condition",
    "wait_state",
    "wait_label",
    "wait_rebooted",
    "wait_ready",
    "sim.reboot",
    "rand.gpu",
    "scenario.run",
    "scenario.recovery",
    "scenario.no_cordon",
];

/// What an argument position takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Node,
    Xid,
    State,
    Condition,
    DocName,
    Module,
}

pub fn arg_want(function: &str, arg: usize) -> Option<Want> {
    match (function, arg) {
        (f, 0) if NODE_FIRST.contains(&f) => Some(Want::Node),
        ("inject_xid", 2)
        | ("Node.inject_xid", 1)
        | ("Gpu.inject_xid", 0)
        | ("xid", 0)
        | ("format_xid", 1)
        | ("scenario.expectation", 0)
        | ("scenario.run" | "scenario.recovery" | "scenario.no_cordon", 2) => Some(Want::Xid),
        ("wait_state", 1) | ("Node.wait_state", 0) => Some(Want::State),
        ("wait_condition", 1) | ("Node.wait_condition", 0) | ("Node.condition", 0) => {
            Some(Want::Condition)
        }
        ("help", 0) => Some(Want::DocName),
        ("require", 0) => Some(Want::Module),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub display: String,
    pub replacement: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// Byte offset (in the analysed text) where the replaced word starts.
    pub start: usize,
    pub candidates: Vec<Candidate>,
}

/// What completion may look at.
pub struct World<'a> {
    pub lua: &'a Lua,
    /// The REPL's variables (see [`super::chunk::ReplEnv`]).
    pub vars: &'a Table,
    pub names: &'a ApiNames,
    pub nodes: &'a [String],
    pub conditions: &'a [String],
    pub modules: &'a [String],
}

/// Whether answering needs the backend's node list (fetching it may take a round trip).
pub fn needs_cluster(a: &Analysis) -> bool {
    matches!(
        a.context,
        Context::Str { .. } | Context::Argument { .. } | Context::Identifier { call: Some(_), .. }
    )
}

enum Resolved {
    Value(Value),
    Guess(Guess),
    Unknown,
}

impl World<'_> {
    /// Candidates for the analysed text; `after` is the text after the cursor.
    pub fn complete(&self, a: &Analysis, after: &str) -> Completion {
        match &a.context {
            Context::Nothing => Completion::default(),
            Context::Identifier {
                start,
                partial,
                call,
            } => {
                let mut c = self.identifiers(&a.locals, partial);
                if let Some(call) = call
                    && self.want(&a.locals, call) == Some(Want::Xid)
                    && partial.len() >= 2
                {
                    c.extend(xids_matching_words(partial));
                }
                Completion {
                    start: *start,
                    candidates: c,
                }
            }
            Context::Member {
                start,
                partial,
                method,
                receiver,
            } => Completion {
                start: *start,
                candidates: self.members(&a.locals, receiver, *method, partial),
            },
            Context::Str {
                start,
                partial,
                quote,
                call,
            } => {
                let want = call.as_ref().and_then(|c| self.want(&a.locals, c));
                let values = match want {
                    Some(w) => self.values(w),
                    // A string of unknown purpose: in this REPL it is most often a node.
                    None if !partial.is_empty() => self.nodes.to_vec(),
                    None => Vec::new(),
                };
                let close = match quote {
                    Some(q) if !after.starts_with(*q) => q.to_string(),
                    _ => String::new(),
                };
                Completion {
                    start: *start,
                    candidates: values
                        .into_iter()
                        .filter(|v| v.starts_with(partial.as_str()))
                        .map(|v| Candidate {
                            replacement: format!("{v}{close}"),
                            display: v,
                        })
                        .collect(),
                }
            }
            Context::Argument {
                start,
                partial,
                call,
            } => {
                let candidates = match self.want(&a.locals, call) {
                    Some(Want::Xid) => xids_with_prefix(partial),
                    Some(w) if partial.is_empty() => self
                        .values(w)
                        .into_iter()
                        .map(|v| Candidate {
                            replacement: format!("\"{v}\""),
                            display: v,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                Completion {
                    start: *start,
                    candidates,
                }
            }
        }
    }

    fn values(&self, want: Want) -> Vec<String> {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        match want {
            Want::Node => self.nodes.to_vec(),
            Want::Xid => Vec::new(),
            Want::State => owned(STATES),
            Want::Condition => self.conditions.to_vec(),
            Want::DocName => {
                let mut v: Vec<String> = DOCS.iter().map(|d| d.name.to_string()).collect();
                v.extend(GROUPS.iter().map(|g| g.to_string()));
                v.sort();
                v
            }
            Want::Module => self.modules.to_vec(),
        }
    }

    fn globals(&self) -> Table {
        self.lua.globals()
    }

    /// A name's value: the unfinished chunk's locals first, then REPL variables, then globals.
    fn lookup(&self, locals: &Locals, name: &str) -> Resolved {
        if let Some(g) = locals.guesses.get(name) {
            return Resolved::Guess(g.clone());
        }
        if locals.names.iter().any(|n| n == name) {
            return Resolved::Unknown;
        }
        for t in [self.vars, &self.globals()] {
            match t.raw_get::<Value>(name) {
                Ok(Value::Nil) | Err(_) => {}
                Ok(v) => return Resolved::Value(v),
            }
        }
        Resolved::Unknown
    }

    fn resolve(&self, locals: &Locals, e: &Expr) -> Resolved {
        if let Some(g) = &e.guess {
            return Resolved::Guess(g.clone());
        }
        let Some(chain) = &e.chain else {
            return Resolved::Unknown;
        };
        let mut cur = self.lookup(locals, &chain[0]);
        for part in &chain[1..] {
            cur = match cur {
                Resolved::Value(Value::Table(t)) => match field(&t, part) {
                    Some(v) => Resolved::Value(v),
                    None => Resolved::Unknown,
                },
                Resolved::Guess(Guess::Module(m)) => match self.module(&m) {
                    Some(t) => field(&t, part).map_or(Resolved::Unknown, Resolved::Value),
                    None => Resolved::Unknown,
                },
                _ => Resolved::Unknown,
            };
        }
        cur
    }

    /// A module's table: loaded already, or an embedded stdlib module (pure, safe to load).
    fn module(&self, name: &str) -> Option<Table> {
        let loaded: Table = self
            .globals()
            .raw_get::<Table>("package")
            .ok()?
            .raw_get("loaded")
            .ok()?;
        if let Ok(t) = loaded.raw_get::<Table>(name) {
            return Some(t);
        }
        let stdlib = crate::lua::modules::STDLIB
            .iter()
            .any(|(n, _)| *n == name && *n != "prelude");
        if !stdlib {
            return None;
        }
        let require: mlua::Function = self.globals().raw_get("require").ok()?;
        require.call::<Table>(name).ok()
    }

    fn method_table(&self, registry: &str) -> Option<Table> {
        self.lua.named_registry_value::<Table>(registry).ok()
    }

    /// The type name methods are filed under for a receiver: Node, Gpu, Task, string.
    fn receiver_type(&self, locals: &Locals, receiver: &Expr, method: &str) -> &'static str {
        match self.resolve(locals, receiver) {
            Resolved::Value(Value::UserData(ud)) if ud.is::<NodeHandle>() => "Node",
            Resolved::Value(Value::UserData(ud)) if ud.is::<GpuHandle>() => "Gpu",
            Resolved::Value(Value::UserData(ud)) if ud.is::<Task>() => "Task",
            Resolved::Value(Value::String(_)) | Resolved::Guess(Guess::String) => "string",
            Resolved::Guess(Guess::Node) => "Node",
            Resolved::Guess(Guess::Gpu) => "Gpu",
            Resolved::Guess(Guess::Task) => "Task",
            _ => {
                let has = |reg: &str| {
                    self.method_table(reg)
                        .is_some_and(|t| !matches!(t.raw_get::<Value>(method), Ok(Value::Nil)))
                };
                let (on_node, on_gpu) = (has(NODE_METHODS), has(GPU_METHODS));
                // Both have `inject_xid`: go by the name, `g`, `gpu`, `gpus[1]`...
                let last = receiver
                    .text
                    .rsplit(['.', ':'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let gpu_named = last.starts_with('g') || last.contains("gpu");
                if on_gpu && (!on_node || gpu_named) {
                    "Gpu"
                } else {
                    "Node"
                }
            }
        }
    }

    /// What the argument under the cursor takes.
    fn want(&self, locals: &Locals, call: &CallSite) -> Option<Want> {
        if let Some(m) = &call.method {
            let ty = self.receiver_type(locals, &call.callee, m);
            return arg_want(&format!("{ty}.{m}"), call.arg);
        }
        let chain = call.callee.chain.as_deref().unwrap_or_default();
        let name = match self.resolve(locals, &call.callee) {
            Resolved::Value(Value::Function(f)) => self.names.name_of(&f),
            _ => None,
        }
        .or_else(
            || match (chain, chain.first().map(|m| self.lookup(locals, m))) {
                // A member of a module the scan has not seen yet (required while completing).
                ([_, member], Some(Resolved::Guess(Guess::Module(m)))) => {
                    Some(format!("{m}.{member}"))
                }
                _ => chain.last().cloned(),
            },
        )?;
        // `gfi.Node.inject_xid(n, ...)`: the node comes first.
        for owner in ["Node.", "Gpu."] {
            if name.starts_with(owner) {
                return match call.arg {
                    0 if owner == "Node." => Some(Want::Node),
                    0 => None,
                    n => arg_want(&name, n - 1),
                };
            }
        }
        arg_want(&name, call.arg)
    }

    fn identifiers(&self, locals: &Locals, partial: &str) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        let mut add = |name: &str, v: Option<&Value>| {
            if !name.starts_with(partial) || (name.starts_with('_') && !partial.starts_with('_')) {
                return;
            }
            out.push(candidate(name, v, false));
        };
        for k in KEYWORDS {
            add(k, None);
        }
        for n in &locals.names {
            add(n, None);
        }
        for t in [self.vars, &self.globals()] {
            for (k, v) in string_keys(t) {
                add(&k, Some(&v));
            }
        }
        sort_dedup(out)
    }

    fn members(
        &self,
        locals: &Locals,
        receiver: &Expr,
        method: bool,
        partial: &str,
    ) -> Vec<Candidate> {
        let mut entries: Vec<(String, Option<Value>)> = Vec::new();
        let from_table = |t: &Table, out: &mut Vec<(String, Option<Value>)>| {
            let mut t = Some(t.clone());
            // The table, then what its metatable's __index table lends (objects, classes).
            for _ in 0..4 {
                let Some(cur) = t.take() else { break };
                // A node's facts build their labels and conditions on first use.
                let _ = crate::lua::api::handles::materialize_facts(self.lua, &cur);
                for (k, v) in string_keys(&cur) {
                    out.push((k, Some(v)));
                }
                t = cur
                    .metatable()
                    .and_then(|mt| mt.raw_get::<Table>("__index").ok());
            }
        };
        let named = |names: &[&str]| -> Vec<(String, Option<Value>)> {
            names.iter().map(|n| (n.to_string(), None)).collect()
        };
        let handle = |ty: &str| -> Vec<(String, Option<Value>)> {
            let mut out = Vec::new();
            match (ty, method) {
                ("Node", true) | ("Gpu", true) => {
                    let reg = if ty == "Node" {
                        NODE_METHODS
                    } else {
                        GPU_METHODS
                    };
                    if let Some(t) = self.method_table(reg) {
                        from_table(&t, &mut out);
                    }
                }
                ("Node", false) => out = named(&["name"]),
                ("Gpu", false) => out = named(GPU_FIELDS),
                ("Task", true) => out = named(TASK_METHODS),
                ("Task", false) => out = named(TASK_FIELDS),
                _ => {}
            }
            out
        };
        match self.resolve(locals, receiver) {
            Resolved::Value(Value::Table(t)) => from_table(&t, &mut entries),
            Resolved::Value(Value::UserData(ud)) => {
                let ty = if ud.is::<NodeHandle>() {
                    "Node"
                } else if ud.is::<GpuHandle>() {
                    "Gpu"
                } else if ud.is::<Task>() {
                    "Task"
                } else {
                    ""
                };
                entries = handle(ty);
            }
            Resolved::Value(Value::String(_)) | Resolved::Guess(Guess::String) if method => {
                if let Ok(t) = self.globals().raw_get::<Table>("string") {
                    from_table(&t, &mut entries);
                }
            }
            Resolved::Guess(Guess::Node) => entries = handle("Node"),
            Resolved::Guess(Guess::Gpu) => entries = handle("Gpu"),
            Resolved::Guess(Guess::Task) => entries = handle("Task"),
            Resolved::Guess(Guess::Module(m)) => {
                if let Some(t) = self.module(&m) {
                    from_table(&t, &mut entries);
                }
            }
            _ => {}
        }
        let out = entries
            .into_iter()
            .filter(|(k, _)| k.starts_with(partial) && is_identifier(k))
            .filter(|(k, _)| !k.starts_with('_') || partial.starts_with('_'))
            .filter(|(_, v)| !method || v.as_ref().is_none_or(|v| matches!(v, Value::Function(_))))
            .map(|(k, v)| candidate(&k, v.as_ref(), method))
            .collect();
        sort_dedup(out)
    }
}

fn field(t: &Table, name: &str) -> Option<Value> {
    let mut t = t.clone();
    for _ in 0..4 {
        match t.raw_get::<Value>(name) {
            Ok(Value::Nil) | Err(_) => {}
            Ok(v) => return Some(v),
        }
        t = t.metatable()?.raw_get::<Table>("__index").ok()?;
    }
    None
}

fn string_keys(t: &Table) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let _ = t.for_each::<Value, Value>(|k, v| {
        if let Value::String(s) = k
            && let Ok(s) = s.to_str()
        {
            out.push((s.to_string(), v));
        }
        Ok(())
    });
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
}

/// A name to insert; functions (and every method) get their `(`.
fn candidate(name: &str, v: Option<&Value>, method: bool) -> Candidate {
    let call = method || matches!(v, Some(Value::Function(_)));
    Candidate {
        display: name.to_string(),
        replacement: if call {
            format!("{name}(")
        } else {
            name.to_string()
        },
    }
}

fn sort_dedup(mut v: Vec<Candidate>) -> Vec<Candidate> {
    v.sort_by(|a, b| a.display.cmp(&b.display));
    v.dedup_by(|a, b| a.display == b.display);
    v
}

fn xid_candidate(x: &catalog::XidInfo) -> Candidate {
    Candidate {
        display: format!(
            "{:<4} {} ({})",
            x.xid,
            x.description,
            x.default_action().as_str()
        ),
        replacement: x.xid.to_string(),
    }
}

fn xids_with_prefix(prefix: &str) -> Vec<Candidate> {
    catalog::all()
        .iter()
        .filter(|x| x.xid.to_string().starts_with(prefix))
        .map(xid_candidate)
        .collect()
}

/// XIDs whose description or mnemonic mentions `word`: type `fall`, get 79.
fn xids_matching_words(word: &str) -> Vec<Candidate> {
    let w = word.to_ascii_lowercase();
    catalog::all()
        .iter()
        .filter(|x| {
            x.description.to_ascii_lowercase().contains(&w)
                || x.mnemonic.to_ascii_lowercase().contains(&w)
        })
        .map(xid_candidate)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::context::analyze;
    use super::*;
    use crate::backend::spec::{BackendArgs, BackendKind};
    use crate::lua::Host;
    use crate::session::{BackendSource, Session, SessionOptions};

    fn backend_args() -> BackendArgs {
        BackendArgs {
            backend: BackendKind::Sim,
            seed: Some(1),
            sim_nodes: Some(3),
            sim_gpus: Some(2),
            ..Default::default()
        }
    }

    /// Runs `f` with a real host on the sim, the way the REPL has it.
    fn with_host(f: impl FnOnce(&Host, &super::super::chunk::ReplEnv)) {
        let rt = crate::clock::paused_runtime();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let session = Session::new(SessionOptions {
                seed: Some(1),
                ..SessionOptions::new(BackendSource::Args(Box::new(backend_args())))
            })
            .unwrap();
            let env = super::super::chunk::ReplEnv::new(session.host().lua()).unwrap();
            f(session.host(), &env);
        });
    }

    fn names_of(c: &Completion) -> Vec<&str> {
        c.candidates
            .iter()
            .map(|c| c.replacement.as_str())
            .collect()
    }

    fn complete(host: &Host, env: &super::super::chunk::ReplEnv, text: &str) -> Completion {
        let names = ApiNames::scan(host.lua());
        let nodes: Vec<String> = (1..=3).map(|i| format!("gpu-node-00{i}")).collect();
        let conditions = vec!["Ready".to_string(), "SysLogsXIDError".to_string()];
        let modules = vec!["check".to_string(), "scenario".to_string()];
        let world = World {
            lua: host.lua(),
            vars: &env.vars,
            names: &names,
            nodes: &nodes,
            conditions: &conditions,
            modules: &modules,
        };
        world.complete(&analyze(text), "")
    }

    #[test]
    fn globals_and_module_members() {
        with_host(|host, env| {
            let c = complete(host, env, "wait_co");
            assert_eq!(names_of(&c), vec!["wait_condition(", "wait_cordoned("]);
            assert_eq!(c.start, 0);
            let c = complete(host, env, "gfi.inject");
            assert_eq!(names_of(&c), vec!["inject_xid("]);
            assert_eq!(c.start, 4);
            let c = complete(host, env, "sim.reb");
            assert_eq!(names_of(&c), vec!["reboot(", "reboot_nodes("]);
            let c = complete(host, env, "rand.sh");
            assert_eq!(names_of(&c), vec!["shuffle("]);
            // Keywords too; private names only when asked for.
            assert!(names_of(&complete(host, env, "whi")).contains(&"while"));
            assert!(complete(host, env, "").candidates.is_empty());
            host.lua()
                .load("t = {_private = 1, public = 2}")
                .exec()
                .unwrap();
            assert_eq!(names_of(&complete(host, env, "t.")), vec!["public"]);
            assert_eq!(names_of(&complete(host, env, "t._")), vec!["_private"]);
            assert!(names_of(&complete(host, env, "_")).contains(&"_G"));
        });
    }

    #[test]
    fn required_modules_in_variables_and_locals() {
        with_host(|host, env| {
            host.lua().load("sc = require 'scenario'").exec().unwrap();
            assert!(names_of(&complete(host, env, "sc.")).contains(&"run("));
            // Declared in the chunk being typed, not run yet.
            let c = complete(host, env, "local p = require \"plan\"\np.ra");
            assert_eq!(names_of(&c), vec!["random("]);
            // REPL variables come first.
            env.vars.raw_set("mine", 1).unwrap();
            assert_eq!(names_of(&complete(host, env, "mi")), vec!["mine"]);
        });
    }

    #[test]
    fn methods_on_handles() {
        with_host(|host, env| {
            host.lua()
                .load("n = node('gpu-node-001') g = gpus(n)[1] t = spawn(function() end)")
                .exec()
                .unwrap();
            let c = complete(host, env, "n:wait_co");
            assert_eq!(names_of(&c), vec!["wait_condition(", "wait_cordoned("]);
            assert_eq!(names_of(&complete(host, env, "g:")), vec!["inject_xid("]);
            assert_eq!(
                names_of(&complete(host, env, "g.")),
                vec!["index", "model", "node", "pci", "uuid"]
            );
            assert_eq!(names_of(&complete(host, env, "n.")), vec!["name"]);
            assert!(names_of(&complete(host, env, "t:")).contains(&"wait("));
            // Recognised by shape, never evaluated.
            assert!(names_of(&complete(host, env, "node('x'):kms")).contains(&"kmsg_tail("));
            assert!(names_of(&complete(host, env, "('x'):up")).contains(&"upper("));
        });
    }

    #[test]
    fn node_names_in_strings() {
        with_host(|host, env| {
            let c = complete(host, env, "node(\"gpu-node-00");
            assert_eq!(c.candidates.len(), 3);
            assert_eq!(c.candidates[0].replacement, "gpu-node-001\"");
            assert_eq!(c.start, 6);
            let c = complete(host, env, "wait_cordoned('gpu-node-002");
            assert_eq!(names_of(&c), vec!["gpu-node-002'"]);
            // A state, not a node, goes second in wait_state.
            let c = complete(host, env, "wait_state(n, \"remediation-");
            assert_eq!(
                names_of(&c),
                vec!["remediation-succeeded\"", "remediation-failed\""]
            );
            let c = complete(host, env, "help(\"wait_re");
            assert_eq!(
                names_of(&c),
                vec!["wait_ready\"", "wait_rebooted\"", "wait_remediation\""]
            );
            let c = complete(host, env, "require \"sce");
            assert_eq!(names_of(&c), vec!["scenario\""]);
            // Empty argument: quoted names.
            let c = complete(host, env, "pods(");
            assert_eq!(c.candidates[0].replacement, "\"gpu-node-001\"");
        });
    }

    #[test]
    fn xids_where_xids_go() {
        with_host(|host, env| {
            // NVSentinel's catalogue: 7 and 70-79.
            let c = complete(host, env, "inject_xid(n, 0, 7");
            assert_eq!(
                names_of(&c),
                vec![
                    "7", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79"
                ]
            );
            assert!(
                c.candidates[10]
                    .display
                    .contains("GPU has fallen off the bus")
            );
            assert!(c.candidates[10].display.contains("RESTART_BM"));
            assert_eq!(
                names_of(&complete(host, env, "xid(4")),
                vec![
                    "4", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49"
                ]
            );
            let all = complete(host, env, "inject_xid(n, 0, ");
            assert_eq!(all.candidates.len(), catalog::all().len());
            // Not in the GPU position.
            assert!(complete(host, env, "inject_xid(n, ").candidates.is_empty());
            // Methods: the node's second argument, the GPU's first.
            host.lua()
                .load("n = node('gpu-node-001') g = gpus(n)[1]")
                .exec()
                .unwrap();
            assert_eq!(
                names_of(&complete(host, env, "n:inject_xid(0, 7")),
                names_of(&c)
            );
            assert_eq!(
                names_of(&complete(host, env, "g:inject_xid(7")),
                names_of(&c)
            );
            assert!(complete(host, env, "n:inject_xid(7").candidates.is_empty());
            // By name: the word finds the number.
            let c = complete(host, env, "inject_xid(n, 0, fall");
            assert_eq!(names_of(&c), vec!["79"]);
            let c = complete(host, env, "local sc = require 'scenario' sc.run(n, 0, 4");
            assert_eq!(
                names_of(&c),
                vec![
                    "4", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49"
                ]
            );
        });
    }
}
