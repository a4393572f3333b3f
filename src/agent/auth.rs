//! Token authentication: the gate's decision ([`AuthGate`]) over any [`TokenCheck`], and the
//! agent's checker, a token file ([`TokenFile`]). The gate knows nothing of the agent's state,
//! so another server (the coming controller) can put its own checker behind it.
//!
//! The token comes as `Authorization: Bearer <token>` or as `X-Gfi-Agent-Token: <token>`: the
//! Kubernetes API server's pod proxy removes `Authorization` from every request it forwards,
//! so a client reaching the agent that way sends the agent's own header. Both are compared the
//! same constant-time way; a request that sends both must have both right.
//!
//! The agent's token comes from a file (a mounted Secret). The file is checked on every authenticated
//! request (one `stat`) and read again when its identity, size or time changes, so a rotated
//! Secret works at once and the old token stops working at once. Several tokens, one per line,
//! may be valid together (overlap during a rotation). Comparison is constant time.

use super::http::detail;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use subtle::{Choice, ConstantTimeEq};

/// The agent's own token header, for clients whose `Authorization` a proxy removes.
pub const AGENT_TOKEN_HEADER: &str = "x-gfi-agent-token";

/// What one request presented: the raw values of its `Authorization` and
/// [`AGENT_TOKEN_HEADER`] headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Credentials<'a> {
    pub(crate) authorization: Option<&'a [u8]>,
    pub(crate) agent_token: Option<&'a [u8]>,
}

/// Judges the credentials of one request. [`TokenFile`] is the agent's; any
/// `Fn(Credentials) -> Verdict` is one too.
pub(crate) trait TokenCheck: Send + Sync {
    fn check(&self, presented: Credentials<'_>) -> Verdict;
}

impl<F> TokenCheck for F
where
    F: Fn(Credentials<'_>) -> Verdict + Send + Sync,
{
    fn check(&self, presented: Credentials<'_>) -> Verdict {
        self(presented)
    }
}

/// Which requests need a token, and who judges them.
pub(crate) struct AuthGate {
    /// `None`: nothing is checked (`--insecure-no-auth`).
    tokens: Option<Arc<dyn TokenCheck>>,
    /// Route labels that pass unchecked (probes).
    open_routes: Vec<&'static str>,
}

impl AuthGate {
    pub(crate) fn new(tokens: Option<Arc<dyn TokenCheck>>, open_routes: Vec<&'static str>) -> Self {
        AuthGate {
            tokens,
            open_routes,
        }
    }

    /// True when no request is checked at all.
    pub(crate) fn is_insecure(&self) -> bool {
        self.tokens.is_none()
    }

    /// The verdict on a request to `route` (a route label) with these headers, or `None` when
    /// it passes unchecked. Probes pass without a header lookup: they are most requests.
    pub(crate) fn check(&self, route: &str, headers: &HeaderMap) -> Option<Verdict> {
        let tokens = self.tokens.as_ref()?;
        if self.open_routes.contains(&route) {
            return None;
        }
        Some(
            tokens.check(Credentials {
                authorization: headers
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
                agent_token: headers.get(AGENT_TOKEN_HEADER).map(HeaderValue::as_bytes),
            }),
        )
    }
}

/// The answer to a request without a valid token: 401 with the challenge clients expect.
pub(crate) fn unauthorized(why: AuthFailure) -> Response {
    let mut resp = detail(StatusCode::UNAUTHORIZED, why.detail());
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gfi-agent\""),
    );
    resp
}

/// The answer while tokens cannot be checked at all: 503, every request refused.
pub(crate) fn unavailable(msg: String) -> Response {
    detail(StatusCode::SERVICE_UNAVAILABLE, msg)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Malformed,
    Wrong,
}

impl AuthFailure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Wrong => "wrong",
        }
    }

    pub(crate) fn detail(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "Not authenticated: send the header 'Authorization: Bearer <token>' or 'X-Gfi-Agent-Token: <token>' (the token is in the agent's token Secret)"
            }
            AuthFailure::Malformed => {
                "Not authenticated: the Authorization header must be 'Bearer <token>' and X-Gfi-Agent-Token the token alone"
            }
            AuthFailure::Wrong => "Not authenticated: the token is not valid",
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authenticated; the number of the matching token line (for the audit log, never the
    /// token itself).
    Allowed {
        token: usize,
    },
    Denied(AuthFailure),
    /// The token file cannot be read: everything is refused until it can.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    tokens: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    loaded: Mutex<Result<Loaded, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token file {path}: {reason}")]
pub struct TokenError {
    pub path: String,
    pub reason: String,
}

fn read_tokens(path: &Path) -> Result<Loaded, String> {
    let stamp = stamp(path).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let tokens: Vec<Vec<u8>> = crate::node::wire::token_lines(&text)
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if tokens.is_empty() {
        return Err("it holds no token (one token per line)".into());
    }
    if tokens
        .iter()
        .any(|t| t.iter().any(|b| !b.is_ascii_graphic()))
    {
        return Err("a token contains spaces or non-printable characters".into());
    }
    Ok(Loaded { stamp, tokens })
}

impl TokenFile {
    /// Loads the file; fails when it is missing, unreadable or empty.
    pub(crate) fn open(path: &Path) -> Result<TokenFile, TokenError> {
        let loaded = read_tokens(path).map_err(|reason| TokenError {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(Ok(loaded)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Tokens shorter than this are easy to guess; the agent warns about them.
    pub(crate) const MIN_RECOMMENDED_LEN: usize = 16;

    fn shortest_token(&self) -> Option<usize> {
        match &*self.loaded.lock().expect("token lock") {
            Ok(l) => l.tokens.iter().map(Vec::len).min(),
            Err(_) => None,
        }
    }

    /// The warning a server logs at start when a token of the file is easy to guess, or
    /// `None` when every token is at least [`Self::MIN_RECOMMENDED_LEN`] long.
    pub(crate) fn short_token_warning(&self) -> Option<String> {
        (self.shortest_token().unwrap_or(0) < Self::MIN_RECOMMENDED_LEN).then(|| {
            format!(
                "a token is shorter than {} characters: easy to guess",
                Self::MIN_RECOMMENDED_LEN
            )
        })
    }

    /// Re-reads the file when it changed. Returns the current error, if any.
    pub(crate) fn refresh(&self) -> Result<(), String> {
        let mut loaded = self.loaded.lock().expect("token lock");
        let current = stamp(&self.path).map_err(|e| e.to_string());
        let changed = match (&*loaded, &current) {
            (Ok(l), Ok(s)) => &l.stamp != s,
            _ => true,
        };
        if changed {
            *loaded = match current {
                Ok(_) => read_tokens(&self.path),
                Err(e) => Err(e),
            };
            if let Err(e) = &*loaded {
                tracing::error!(path = %self.path.display(), error = %e, "token file unreadable: refusing every authenticated request");
            } else {
                tracing::info!(path = %self.path.display(), "token file changed: reloaded");
            }
        }
        loaded.as_ref().map(|_| ()).map_err(|e| e.clone())
    }

    /// Checks what a request presented: every credential it sent must be valid.
    pub(crate) fn check(&self, presented: Credentials<'_>) -> Verdict {
        if let Err(e) = self.refresh() {
            return Verdict::Unavailable(format!(
                "authentication is unavailable: token file {}: {e}",
                self.path.display()
            ));
        }
        let tokens: Vec<Option<&[u8]>> = [
            presented.authorization.map(bearer),
            presented.agent_token.map(bare_token),
        ]
        .into_iter()
        .flatten()
        .collect();
        let loaded = self.loaded.lock().expect("token lock");
        let Ok(l) = &*loaded else {
            return Verdict::Unavailable("token file unreadable".into());
        };
        let mut allowed = None;
        for token in tokens {
            let Some(token) = token else {
                return Verdict::Denied(AuthFailure::Malformed);
            };
            match l.line_of(token) {
                Some(line) => allowed = Some(line),
                None => return Verdict::Denied(AuthFailure::Wrong),
            }
        }
        match allowed {
            Some(token) => Verdict::Allowed { token },
            None => Verdict::Denied(AuthFailure::Missing),
        }
    }
}

impl Loaded {
    /// The number of the token line `presented` matches. Every token is compared, so the
    /// time taken does not say which one matched.
    fn line_of(&self, presented: &[u8]) -> Option<usize> {
        let mut matched: Option<usize> = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if bool::from(ct_eq(t, presented)) && matched.is_none() {
                matched = Some(i + 1);
            }
        }
        matched
    }
}

impl TokenCheck for TokenFile {
    fn check(&self, presented: Credentials<'_>) -> Verdict {
        TokenFile::check(self, presented)
    }
}

/// The value of [`AGENT_TOKEN_HEADER`]: the token alone, surrounding blanks ignored.
fn bare_token(header: &[u8]) -> Option<&[u8]> {
    let token = std::str::from_utf8(header).ok()?.trim();
    (!token.is_empty() && !token.contains(' ')).then_some(token.as_bytes())
}

/// `Bearer <token>` (scheme case-insensitive, as RFC 7235 says).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let s = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token.as_bytes())
}

/// Constant-time equality that does not stop early on a length difference: both sides are
/// compared over the longer length.
fn ct_eq(a: &[u8], b: &[u8]) -> Choice {
    let n = a.len().max(b.len());
    let mut diff = Choice::from(1u8);
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff &= x.ct_eq(&y);
    }
    diff & (a.len() as u64).ct_eq(&(b.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(header: &[u8]) -> Credentials<'_> {
        Credentials {
            authorization: Some(header),
            agent_token: None,
        }
    }

    fn agent(token: &[u8]) -> Credentials<'_> {
        Credentials {
            authorization: None,
            agent_token: Some(token),
        }
    }

    #[test]
    fn verdicts_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first-token-0123456789\n").unwrap();
        let tf = TokenFile::open(&path).unwrap();
        assert_eq!(
            tf.check(Credentials::default()),
            Verdict::Denied(AuthFailure::Missing)
        );
        assert_eq!(
            tf.check(auth(b"Basic abc")),
            Verdict::Denied(AuthFailure::Malformed)
        );
        assert_eq!(
            tf.check(auth(b"Bearer first-token-012345678")),
            Verdict::Denied(AuthFailure::Wrong)
        );
        assert_eq!(
            tf.check(auth(b"bearer first-token-0123456789")),
            Verdict::Allowed { token: 1 }
        );
        // A Secret update replaces the file (new inode).
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, "second-token-abcdefghij\nthird-token-abcdefghijk\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(
            tf.check(auth(b"Bearer first-token-0123456789")),
            Verdict::Denied(AuthFailure::Wrong)
        );
        assert_eq!(
            tf.check(auth(b"Bearer third-token-abcdefghijk")),
            Verdict::Allowed { token: 2 }
        );
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            tf.check(auth(b"Bearer third-token-abcdefghijk")),
            Verdict::Unavailable(_)
        ));
    }

    #[test]
    fn comment_lines_are_not_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(
            &path,
            "#rotated-2026-11-28\n# the old one goes next week\nreal-token-0123456789\n",
        )
        .unwrap();
        let tf = TokenFile::open(&path).unwrap();
        assert_eq!(
            tf.check(auth(b"Bearer #rotated-2026-11-28")),
            Verdict::Denied(AuthFailure::Wrong)
        );
        assert_eq!(
            tf.check(auth(b"Bearer real-token-0123456789")),
            Verdict::Allowed { token: 1 }
        );
        std::fs::write(&path, "# only a comment\n").unwrap();
        assert_eq!(
            TokenFile::open(&path).unwrap_err().reason,
            "it holds no token (one token per line)"
        );
    }

    #[test]
    fn a_rotated_token_of_the_same_length_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "aaaaaaaaaaaaaaaaaaaa\n").unwrap();
        let tf = TokenFile::open(&path).unwrap();
        assert_eq!(
            tf.check(auth(b"Bearer aaaaaaaaaaaaaaaaaaaa")),
            Verdict::Allowed { token: 1 }
        );
        // The kubelet's way: a new file renamed over the old one.
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, "bbbbbbbbbbbbbbbbbbbb\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(
            tf.check(auth(b"Bearer aaaaaaaaaaaaaaaaaaaa")),
            Verdict::Denied(AuthFailure::Wrong)
        );
        assert_eq!(
            tf.check(auth(b"Bearer bbbbbbbbbbbbbbbbbbbb")),
            Verdict::Allowed { token: 1 }
        );
        // Rewritten in place, same inode and size: the modification time tells.
        let before = stamp(&path).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &f, b"cccccccccccccccccccc\n").unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        drop(f);
        let after = stamp(&path).unwrap();
        assert_eq!((before.ino, before.len), (after.ino, after.len));
        assert_eq!(
            tf.check(auth(b"Bearer bbbbbbbbbbbbbbbbbbbb")),
            Verdict::Denied(AuthFailure::Wrong)
        );
        assert_eq!(
            tf.check(auth(b"Bearer cccccccccccccccccccc")),
            Verdict::Allowed { token: 1 }
        );
    }

    #[test]
    fn the_agent_token_header_is_checked_like_the_bearer_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one-token-0123456789\ntwo-token-0123456789\n").unwrap();
        let tf = TokenFile::open(&path).unwrap();
        assert_eq!(
            tf.check(agent(b"two-token-0123456789")),
            Verdict::Allowed { token: 2 }
        );
        assert_eq!(
            tf.check(agent(b" one-token-0123456789 ")),
            Verdict::Allowed { token: 1 }
        );
        assert_eq!(
            tf.check(agent(b"two-token-012345678")),
            Verdict::Denied(AuthFailure::Wrong)
        );
        for malformed in [&b""[..], b"  ", b"Bearer two-token-0123456789", b"\xff"] {
            assert_eq!(
                tf.check(agent(malformed)),
                Verdict::Denied(AuthFailure::Malformed),
                "{malformed:?}"
            );
        }
        // Both headers: both must be right.
        let both = |a: &'static [u8], t: &'static [u8]| Credentials {
            authorization: Some(a),
            agent_token: Some(t),
        };
        assert_eq!(
            tf.check(both(
                b"Bearer one-token-0123456789",
                b"two-token-0123456789"
            )),
            Verdict::Allowed { token: 2 }
        );
        assert_eq!(
            tf.check(both(
                b"Bearer one-token-0123456789",
                b"wrong-token-00000000"
            )),
            Verdict::Denied(AuthFailure::Wrong)
        );
        assert_eq!(
            tf.check(both(
                b"Bearer wrong-token-00000000",
                b"one-token-0123456789"
            )),
            Verdict::Denied(AuthFailure::Wrong)
        );
        // The gate reads the header by its name, case-insensitively as HTTP does.
        let gate = AuthGate::new(Some(Arc::new(tf)), vec![]);
        let mut h = HeaderMap::new();
        h.insert(
            "X-Gfi-Agent-Token",
            HeaderValue::from_static("one-token-0123456789"),
        );
        assert_eq!(
            gate.check("/faults", &h),
            Some(Verdict::Allowed { token: 1 })
        );
    }

    #[test]
    fn a_token_shorter_than_16_characters_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let warning = |text: &str| {
            std::fs::write(&path, text).unwrap();
            TokenFile::open(&path).unwrap().short_token_warning()
        };
        assert_eq!(warning("0123456789abcdef\n"), None);
        assert_eq!(
            warning("0123456789abcdef-and-longer\n0123456789abcdef\n"),
            None
        );
        let short = Some("a token is shorter than 16 characters: easy to guess".to_string());
        assert_eq!(warning("0123456789abcde\n"), short);
        // Any one short token is enough, wherever it is in the file.
        assert_eq!(warning("0123456789abcdef-and-longer\nshort\n"), short);
    }

    #[test]
    fn empty_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n  \n").unwrap();
        let err = TokenFile::open(&path).unwrap_err();
        assert!(err.to_string().contains("no token"), "{err}");
        assert!(TokenFile::open(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_gate_asks_any_checker_except_on_open_routes() {
        let checker = |c: Credentials<'_>| match c.authorization {
            Some(b"Bearer ok") => Verdict::Allowed { token: 7 },
            Some(_) => Verdict::Denied(AuthFailure::Wrong),
            None => Verdict::Denied(AuthFailure::Missing),
        };
        let gate = AuthGate::new(Some(Arc::new(checker)), vec!["/health"]);
        assert!(!gate.is_insecure());
        let none = HeaderMap::new();
        let mut ok = HeaderMap::new();
        ok.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer ok"));
        assert_eq!(gate.check("/health", &none), None);
        assert_eq!(
            gate.check("/faults", &ok),
            Some(Verdict::Allowed { token: 7 })
        );
        assert_eq!(
            gate.check("/faults", &none),
            Some(Verdict::Denied(AuthFailure::Missing))
        );
        let open = AuthGate::new(None, vec![]);
        assert!(open.is_insecure());
        assert_eq!(open.check("/inject-xid", &none), None);
        let r = unauthorized(AuthFailure::Wrong);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    #[test]
    fn constant_time_compare_is_correct() {
        assert!(bool::from(ct_eq(b"abc", b"abc")));
        assert!(!bool::from(ct_eq(b"abc", b"abd")));
        assert!(!bool::from(ct_eq(b"abc", b"abc\0")));
        assert!(!bool::from(ct_eq(b"", b"a")));
    }
}
