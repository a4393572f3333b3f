//! Category expressions, as `gfi run --category` takes them (in the manner of Nmap's
//! `--script 'safe and not intrusive'`): category words combined with `and`, `or`, `not` and
//! parentheses; `not` binds tightest, then `and`, then `or`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Category(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            text,
            tokens,
            pos: 0,
        };
        let e = p.or()?;
        if let Some(t) = p.tokens.get(p.pos) {
            return Err(p.error(&format!("unexpected {t} (expected 'and', 'or' or the end)")));
        }
        Ok(e)
    }

    pub fn matches(&self, categories: &[String]) -> bool {
        match self {
            Expr::Category(c) => categories.iter().any(|x| x.eq_ignore_ascii_case(c)),
            Expr::Not(e) => !e.matches(categories),
            Expr::And(a, b) => a.matches(categories) && b.matches(categories),
            Expr::Or(a, b) => a.matches(categories) || b.matches(categories),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "'{w}'"),
            Token::And => f.write_str("'and'"),
            Token::Or => f.write_str("'or'"),
            Token::Not => f.write_str("'not'"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            out.push(Token::Open);
            chars.next();
        } else if c == ')' {
            out.push(Token::Close);
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            let mut word = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    word.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(match word.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Word(word),
            });
        } else {
            return Err(format!(
                "category expression '{text}': unexpected '{c}' at {} (categories are words like safe or reboots-node, combined with and, or, not and parentheses)",
                i + 1
            ));
        }
    }
    if out.is_empty() {
        return Err("category expression is empty (e.g. 'safe and not reboots-node')".into());
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("category expression '{}': {what}", self.text)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.tokens.get(self.pos) == Some(&Token::Or) {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.tokens.get(self.pos) == Some(&Token::And) {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Not) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.not()?)))
            }
            Some(Token::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err(self.error("a '(' is not closed"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Token::Word(w)) => {
                self.pos += 1;
                Ok(Expr::Category(w))
            }
            Some(t) => Err(self.error(&format!("expected a category, 'not' or '(' but found {t}"))),
            None => Err(self.error("ends where a category was expected")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(e: &str, cats: &[&str]) -> bool {
        let cats: Vec<String> = cats.iter().map(|c| c.to_string()).collect();
        Expr::parse(e).unwrap().matches(&cats)
    }

    #[test]
    fn precedence_and_parentheses() {
        assert!(m("safe and not reboots-node", &["safe", "cordons-node"]));
        assert!(!m("safe and not reboots-node", &["safe", "reboots-node"]));
        // not > and > or
        assert!(m("a or b and c", &["a"]));
        assert!(!m("(a or b) and c", &["a"]));
        assert!(m("not a and b", &["b"]));
        assert!(!m("not (a or b)", &["b"]));
        assert!(m("SAFE", &["safe"]));
    }

    #[test]
    fn bad_expressions_say_what_was_wrong() {
        for (e, needle) in [
            ("safe and", "ends where a category was expected"),
            ("(safe or slow", "'(' is not closed"),
            ("safe slow", "unexpected 'slow'"),
            ("and safe", "found 'and'"),
            ("safe & slow", "unexpected '&'"),
            ("  ", "empty"),
            ("safe)", "unexpected ')'"),
        ] {
            let err = Expr::parse(e).unwrap_err();
            assert!(err.contains(needle), "{e}: {err}");
        }
    }
}
