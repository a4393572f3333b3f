//! A small, forgiving Lua tokenizer for what the REPL must know about text that is not
//! (yet) a valid chunk: is the cursor inside a string or a comment, what call encloses it,
//! which `local`s sit at the top level of a chunk.
//!
//! It never fails: unterminated strings and comments end the token stream with an open token.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Name,
    Keyword,
    Number,
    /// A string literal; `closed` is false when the text ends inside it.
    Str {
        closed: bool,
    },
    Symbol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// Byte offsets in the source.
    pub start: usize,
    pub end: usize,
    /// For strings: where the contents begin (after the quote or `[[`).
    pub content_start: usize,
}

impl Token<'_> {
    pub fn is_sym(&self, s: &str) -> bool {
        self.kind == Kind::Symbol && self.text == s
    }

    pub fn is_kw(&self, s: &str) -> bool {
        self.kind == Kind::Keyword && self.text == s
    }

    /// The contents of a string literal, without quotes (escapes are left as written).
    pub fn string_contents(&self) -> &str {
        let body = &self.text[self.content_start - self.start..];
        if let Kind::Str { closed: true } = self.kind {
            let close = if self.text.starts_with('[') {
                // `]==]` is as long as the opening bracket.
                self.content_start - self.start
            } else {
                1
            };
            &body[..body.len().saturating_sub(close)]
        } else {
            body
        }
    }

    /// The quote that closes this (short) string, if it is one.
    pub fn quote(&self) -> Option<char> {
        match self.text.chars().next() {
            Some(q @ ('"' | '\'')) => Some(q),
            _ => None,
        }
    }
}

pub const KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexed<'a> {
    pub tokens: Vec<Token<'a>>,
    /// The text ends inside a comment.
    pub in_comment: bool,
}

/// `[[`, `[=[`, ... at `i`: the number of `=` signs.
fn long_bracket(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut j = i + 1;
    while b.get(j) == Some(&b'=') {
        j += 1;
    }
    (b.get(j) == Some(&b'[')).then_some(j - i - 1)
}

/// The end of a long bracket body opened with `level` `=` signs, searching from `i`.
fn long_close(src: &str, i: usize, level: usize) -> Option<usize> {
    let close = format!("]{}]", "=".repeat(level));
    src[i..].find(&close).map(|k| i + k + close.len())
}

const SYMBOLS: &[&str] = &[
    "...", "..", "::", "==", "~=", "<=", ">=", "//", "<<", ">>", "+", "-", "*", "/", "%", "^", "#",
    "&", "~", "|", "<", ">", "=", "(", ")", "{", "}", "[", "]", ";", ":", ",", ".",
];

pub fn lex<'a>(src: &'a str) -> Lexed<'a> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let push = |tokens: &mut Vec<Token<'a>>, kind, start, end, content_start| {
        tokens.push(Token {
            kind,
            text: &src[start..end],
            start,
            end,
            content_start,
        })
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            if let Some(level) = long_bracket(b, i + 2) {
                match long_close(src, i + 4 + level, level) {
                    Some(end) => i = end,
                    None => {
                        return Lexed {
                            tokens,
                            in_comment: true,
                        };
                    }
                }
            } else {
                match src[i..].find('\n') {
                    Some(k) => i += k + 1,
                    None => {
                        return Lexed {
                            tokens,
                            in_comment: true,
                        };
                    }
                }
            }
            continue;
        }
        if let Some(level) = long_bracket(b, i) {
            let content = i + level + 2;
            let (end, closed) = match long_close(src, content, level) {
                Some(end) => (end, true),
                None => (b.len(), false),
            };
            push(&mut tokens, Kind::Str { closed }, i, end, content);
            i = end;
            continue;
        }
        if c == b'"' || c == b'\'' {
            let mut j = i + 1;
            let mut closed = false;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 2,
                    b'\n' => break,
                    q if q == c => {
                        j += 1;
                        closed = true;
                        break;
                    }
                    _ => j += 1,
                }
            }
            let end = j.min(b.len());
            push(&mut tokens, Kind::Str { closed }, i, end, i + 1);
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
                j += 1;
            }
            let word = &src[i..j];
            let kind = if KEYWORDS.contains(&word) {
                Kind::Keyword
            } else {
                Kind::Name
            };
            push(&mut tokens, kind, i, j, i);
            i = j;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let mut j = i + 1;
            while j < b.len() {
                let d = b[j];
                let exp = matches!(b[j - 1], b'e' | b'E' | b'p' | b'P');
                if d.is_ascii_alphanumeric() || d == b'.' || (exp && (d == b'+' || d == b'-')) {
                    j += 1;
                } else {
                    break;
                }
            }
            push(&mut tokens, Kind::Number, i, j, i);
            i = j;
            continue;
        }
        let sym = SYMBOLS
            .iter()
            .find(|s| src[i..].starts_with(**s))
            .copied()
            .unwrap_or_else(|| {
                // Anything else (a stray byte): one character, so lexing goes on.
                let len = src[i..].chars().next().map_or(1, char::len_utf8);
                &src[i..i + len]
            });
        push(&mut tokens, Kind::Symbol, i, i + sym.len(), i);
        i += sym.len();
    }
    Lexed {
        tokens,
        in_comment: false,
    }
}

/// Index of the token that opens the group closed by `tokens[close]` (`)`, `]` or `}`).
pub fn matching_open(tokens: &[Token<'_>], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    for i in (0..=close).rev() {
        let t = &tokens[i];
        if t.kind != Kind::Symbol {
            continue;
        }
        match t.text {
            ")" | "]" | "}" => depth += 1,
            "(" | "[" | "{" => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, &str)> {
        lex(src).tokens.iter().map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn names_keywords_numbers_symbols() {
        assert_eq!(
            kinds("local x = a.b:c(1.5e+3, 0x1F) .. y"),
            vec![
                (Kind::Keyword, "local"),
                (Kind::Name, "x"),
                (Kind::Symbol, "="),
                (Kind::Name, "a"),
                (Kind::Symbol, "."),
                (Kind::Name, "b"),
                (Kind::Symbol, ":"),
                (Kind::Name, "c"),
                (Kind::Symbol, "("),
                (Kind::Number, "1.5e+3"),
                (Kind::Symbol, ","),
                (Kind::Number, "0x1F"),
                (Kind::Symbol, ")"),
                (Kind::Symbol, ".."),
                (Kind::Name, "y"),
            ]
        );
    }

    #[test]
    fn strings_open_and_closed() {
        let l = lex(r#"node("gpu-n"#);
        let s = l.tokens.last().unwrap();
        assert_eq!(s.kind, Kind::Str { closed: false });
        assert_eq!(s.string_contents(), "gpu-n");
        assert_eq!(s.quote(), Some('"'));
        let l = lex(r#"x = 'a\'b' .. [==[long]] ]==]"#);
        let strs: Vec<&str> = l
            .tokens
            .iter()
            .filter(|t| matches!(t.kind, Kind::Str { .. }))
            .map(|t| t.string_contents())
            .collect();
        assert_eq!(strs, vec![r"a\'b", "long]] "]);
    }

    #[test]
    fn comments() {
        assert!(lex("x = 1 -- note").in_comment);
        assert!(!lex("x = 1 -- note\ny").in_comment);
        assert_eq!(kinds("--[[ a\nb ]] z"), vec![(Kind::Name, "z")]);
        assert!(lex("--[==[ open").in_comment);
    }

    #[test]
    fn matching_groups() {
        let l = lex("f(a, g(b), {c}) ");
        let close = l.tokens.iter().rposition(|t| t.is_sym(")")).unwrap();
        assert_eq!(matching_open(&l.tokens, close), Some(1));
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for src in ["\"\\", "[=", "--[", "0x", "é = 1", "\u{7}", "a\\b", "'"] {
            let _ = lex(src);
        }
    }
}
