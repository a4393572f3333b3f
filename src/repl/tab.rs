//! What Tab does: the line editor's thread asks, the session (which owns the Lua state and
//! the backend) gathers what completion needs and answers.

use super::Repl;
use super::commands;
use super::complete::{self, World};
use super::context;
use super::helper::CompletionRequest;
use super::names::ApiNames;
use rustyline::completion::Pair;

/// How long completion trusts its list of nodes.
const CLUSTER_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

impl Repl {
    pub(super) async fn answer_completion(&mut self, req: CompletionRequest) {
        let pos = req.pos.min(req.line.len());
        if !req.line.is_char_boundary(pos) {
            let _ = req.reply.send((pos, Vec::new()));
            return;
        }
        let (before, after) = req.line.split_at(pos);
        let answer = if self.pending.is_empty() && before.trim_start().starts_with('.') {
            complete_command(before)
        } else {
            self.complete_lua(before, after).await
        };
        let _ = req.reply.send(answer);
    }

    async fn complete_lua(&mut self, before: &str, after: &str) -> (usize, Vec<Pair>) {
        let (text, offset) = if self.pending.is_empty() {
            (before.to_string(), 0)
        } else {
            let p = self.pending.join("\n");
            let offset = p.len() + 1;
            (format!("{p}\n{before}"), offset)
        };
        let analysis = context::analyze(&text);
        let (nodes, conditions) = if complete::needs_cluster(&analysis) {
            self.cluster_facts().await
        } else {
            (Vec::new(), Vec::new())
        };
        let modules = self.module_names();
        let lua = self.session.host().lua();
        let names = ApiNames::scan(lua);
        let world = World {
            lua,
            vars: &self.env.vars,
            names: &names,
            nodes: &nodes,
            conditions: &conditions,
            modules: &modules,
        };
        let c = world.complete(&analysis, after);
        if c.start < offset {
            return (before.len(), Vec::new());
        }
        let pairs = c
            .candidates
            .into_iter()
            .map(|c| Pair {
                display: c.display,
                replacement: c.replacement,
            })
            .collect();
        (c.start - offset, pairs)
    }

    /// Node names and condition types, fetched at most every few seconds.
    async fn cluster_facts(&mut self) -> (Vec<String>, Vec<String>) {
        let fresh = self
            .cluster_cache
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < CLUSTER_CACHE);
        if !fresh {
            let nodes = self
                .session
                .host()
                .ctx()
                .backend
                .list_nodes(None)
                .await
                .unwrap_or_default();
            self.cluster_cache = Some((std::time::Instant::now(), nodes));
        }
        let nodes = self
            .cluster_cache
            .as_ref()
            .map(|(_, n)| n.as_slice())
            .unwrap_or_default();
        let names = nodes.iter().map(|n| n.name.clone()).collect();
        let mut conditions: Vec<String> = vec!["Ready".into(), "SysLogsXIDError".into()];
        for n in nodes {
            conditions.extend(n.conditions.iter().map(|c| c.type_.clone()));
        }
        conditions.sort();
        conditions.dedup();
        (names, conditions)
    }

    /// Modules `require` finds: the stdlib, then `.lua` files beside the session and on
    /// `--lib-path`.
    fn module_names(&self) -> Vec<String> {
        let mut names: Vec<String> = crate::lua::modules::STDLIB
            .iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| n != "prelude")
            .collect();
        for dir in &self.lib_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "lua") {
                    if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                        names.push(stem.to_string());
                    }
                } else if p.join("init.lua").is_file()
                    && let Some(name) = p.file_name().and_then(|s| s.to_str())
                {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// `.he<TAB>` → `.help`; `.load pl<TAB>` → file names.
fn complete_command(before: &str) -> (usize, Vec<Pair>) {
    let lead = before.len() - before.trim_start().len();
    let word_end = before[lead..]
        .find(char::is_whitespace)
        .map_or(before.len(), |i| lead + i);
    if word_end == before.len() {
        let word = &before[lead..];
        let pairs = commands::NAMES
            .iter()
            .filter(|n| n.starts_with(word))
            .map(|n| Pair {
                display: n.to_string(),
                replacement: n.to_string(),
            })
            .collect();
        return (lead, pairs);
    }
    let cmd = &before[lead..word_end];
    if matches!(cmd, ".load" | ".l" | ".journal") {
        let completer = rustyline::completion::FilenameCompleter::new();
        if let Ok(r) = completer.complete_path(before, before.len()) {
            return r;
        }
    }
    (before.len(), Vec::new())
}
