//! The rustyline helper: completion (answered by the runtime thread, which owns the Lua
//! state), the signature of the function whose `(` was just typed as a grey hint, and
//! matching-bracket highlighting.

use super::lex::{self, Kind};
use crate::lua::docs;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter, MatchingBracketHighlighter};
use rustyline::hint::{Hint, Hinter};
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Tab pressed: the line and cursor, sent to the session, which answers on `reply` with the
/// start of the word and its candidates.
pub struct CompletionRequest {
    pub line: String,
    pub pos: usize,
    pub reply: std::sync::mpsc::Sender<(usize, Vec<Pair>)>,
}

/// How long Tab waits for the runtime (busy with a long wait in the background, say).
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(3);

pub struct ReplHelper {
    completions: UnboundedSender<CompletionRequest>,
    color: bool,
    brackets: MatchingBracketHighlighter,
}

impl ReplHelper {
    pub fn new(completions: UnboundedSender<CompletionRequest>, color: bool) -> Self {
        ReplHelper {
            completions,
            color,
            brackets: MatchingBracketHighlighter::new(),
        }
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (reply, answer) = std::sync::mpsc::channel();
        let req = CompletionRequest {
            line: line.to_string(),
            pos,
            reply,
        };
        if self.completions.send(req).is_err() {
            return Ok((pos, Vec::new()));
        }
        Ok(answer
            .recv_timeout(COMPLETION_TIMEOUT)
            .unwrap_or((pos, Vec::new())))
    }
}

/// A hint that only shows: accepting it would insert the signature as code.
pub struct SignatureHint(String);

impl Hint for SignatureHint {
    fn display(&self) -> &str {
        &self.0
    }

    fn completion(&self) -> Option<&str> {
        None
    }
}

/// After `inject_xid(` or `n:wait_cordoned(`: the rest of the documented signature.
pub fn signature_hint(text: &str) -> Option<String> {
    let lexed = lex::lex(text);
    let toks = &lexed.tokens;
    let n = toks.len();
    if lexed.in_comment || n < 2 || !toks[n - 1].is_sym("(") || toks[n - 1].end != text.len() {
        return None;
    }
    let name = &toks[n - 2];
    if name.kind != Kind::Name {
        return None;
    }
    let sep = n.checked_sub(3).map(|i| &toks[i]);
    let method = sep.is_some_and(|t| t.is_sym(":"));
    let qualified = match (sep, n.checked_sub(4).map(|i| &toks[i])) {
        (Some(s), Some(owner)) if s.is_sym(".") && owner.kind == Kind::Name => {
            format!("{}.{}", owner.text, name.text)
        }
        _ => name.text.to_string(),
    };
    let doc = docs::find(qualified.trim_start_matches("gfi.")).or_else(|| docs::find(name.text))?;
    let sig = doc.signature.split(" -> ").next()?;
    let open = sig.find('(')?;
    // The documented name must be the one typed (not a `Node: ...` summary line).
    if !sig[..open].ends_with(name.text) {
        return None;
    }
    let params = &sig[open + 1..];
    if !method {
        return Some(params.to_string());
    }
    // The receiver is the first argument: drop it.
    let rest = params
        .trim_start_matches(|c: char| c.is_alphanumeric() || c == '_')
        .trim_start();
    let rest = rest.strip_prefix(", ").unwrap_or(rest);
    let params = match rest.strip_prefix("[, ") {
        Some(r) => format!("[{r}"),
        None => rest.to_string(),
    };
    Some(params)
}

impl Hinter for ReplHelper {
    type Hint = SignatureHint;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<SignatureHint> {
        if pos != line.len() {
            return None;
        }
        signature_hint(line).map(SignatureHint)
    }
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, pos: usize) -> Cow<'l, str> {
        if self.color {
            self.brackets.highlight(line, pos)
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, line: &str, pos: usize, kind: CmdKind) -> bool {
        self.color && self.brackets.highlight_char(line, pos, kind)
    }
}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_as_hints() {
        assert_eq!(
            signature_hint("inject_xid(").as_deref(),
            Some("node, gpu, xid [, opts])")
        );
        assert_eq!(
            signature_hint("gfi.wait_cordoned(").as_deref(),
            Some("node [, {timeout, since}])")
        );
        assert_eq!(
            signature_hint("n:wait_cordoned(").as_deref(),
            Some("[{timeout, since}])")
        );
        assert_eq!(
            signature_hint("n:inject_xid(").as_deref(),
            Some("gpu, xid [, opts])")
        );
        assert_eq!(signature_hint("sim.reboot(").as_deref(), Some("node)"));
        assert_eq!(signature_hint("inject_xid(n").as_deref(), None);
        assert_eq!(signature_hint("unknown_fn(").as_deref(), None);
        assert_eq!(signature_hint("-- inject_xid(").as_deref(), None);
    }
}
