//! Who may call the controller: bearer tokens of two scopes, each read from its own file (a
//! mounted Secret, re-read when it changes, compared in constant time: the agent's
//! [`TokenFile`]), and, only where asked for, the seed's unauthenticated callers.
//!
//! `--token-file` holds the `run` tokens (injections, runs, cancel, recover), `--read-token-file`
//! the `read` ones (GETs). With `--seed-compat-anonymous`, a request that sends no token at all
//! may use the seed's central API routes (and only those) with scope `run`, as the seed's
//! callers did; a request that sends a wrong token is refused all the same.

use super::caller::{Caller, Scope};
use crate::agent::auth::{AuthFailure, Credentials, TokenError, TokenFile, Verdict};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use std::path::Path;

/// Why a request is refused, and the status that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no token, a malformed header, or a token neither file holds.
    Unauthenticated(AuthFailure),
    /// 403: a valid token whose scope does not allow the request.
    Forbidden { caller: Caller, needed: Scope },
    /// 503: a token file cannot be read now; every authenticated request is refused.
    Unavailable(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthenticated(_) => 401,
            Refusal::Forbidden { .. } => 403,
            Refusal::Unavailable(_) => 503,
        }
    }

    pub fn detail(&self, method: &Method, route: &str) -> String {
        match self {
            Refusal::Unauthenticated(AuthFailure::Missing) => {
                "Not authenticated: send 'Authorization: Bearer <token>' (a token of the controller's run or read token Secret)".into()
            }
            Refusal::Unauthenticated(AuthFailure::Malformed) => {
                "Not authenticated: the Authorization header must be 'Bearer <token>'".into()
            }
            Refusal::Unauthenticated(AuthFailure::Wrong) => {
                "Not authenticated: the token is not valid".into()
            }
            Refusal::Forbidden { caller, needed } => format!(
                "{} has scope {}; {method} {route} needs scope {} (a token from the controller's --token-file)",
                caller.name,
                caller.scope.as_str(),
                needed.as_str()
            ),
            Refusal::Unavailable(msg) => msg.clone(),
        }
    }

    /// How the audit log names the refused caller.
    pub fn who(&self) -> String {
        match self {
            Refusal::Unauthenticated(why) => format!("refused ({} token)", why.as_str()),
            Refusal::Forbidden { caller, .. } => caller.name.clone(),
            Refusal::Unavailable(_) => "refused (authentication unavailable)".into(),
        }
    }

    /// The `WWW-Authenticate` challenge of a 401.
    pub fn challenge(&self) -> Option<HeaderValue> {
        matches!(self, Refusal::Unauthenticated(_))
            .then(|| HeaderValue::from_static("Bearer realm=\"gfi-controller\""))
    }
}

/// The scope a request needs: reads need `read`, everything else `run`.
pub fn needed_scope(method: &Method) -> Scope {
    if matches!(*method, Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Run
    }
}

pub struct ControllerAuth {
    run: Option<TokenFile>,
    read: Option<TokenFile>,
    seed_compat_anonymous: bool,
}

impl ControllerAuth {
    /// Loads the token files; fails when one is missing, unreadable or empty, or when nothing
    /// at all would be allowed.
    pub fn open(
        run: Option<&Path>,
        read: Option<&Path>,
        seed_compat_anonymous: bool,
    ) -> Result<ControllerAuth, TokenError> {
        let open = |p: Option<&Path>| p.map(TokenFile::open).transpose();
        let auth = ControllerAuth {
            run: open(run)?,
            read: open(read)?,
            seed_compat_anonymous,
        };
        for t in [&auth.run, &auth.read].into_iter().flatten() {
            if let Some(warning) = t.short_token_warning() {
                tracing::warn!(path = %t.path().display(), "{warning}");
            }
        }
        Ok(auth)
    }

    pub fn seed_compat_anonymous(&self) -> bool {
        self.seed_compat_anonymous
    }

    /// The caller of a request to `route` (`seed_route`: one of the seed's central API
    /// routes), or why it is refused. The scope is enforced here, not in the handlers.
    pub fn authenticate(
        &self,
        method: &Method,
        seed_route: bool,
        headers: &HeaderMap,
    ) -> Result<Caller, Refusal> {
        let needed = needed_scope(method);
        let authorization = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let caller = match authorization {
            None if self.seed_compat_anonymous && seed_route => Caller::anonymous(Scope::Run),
            None => return Err(Refusal::Unauthenticated(AuthFailure::Missing)),
            Some(a) => self.check_token(a)?,
        };
        if caller.scope.allows(needed) {
            Ok(caller)
        } else {
            Err(Refusal::Forbidden { caller, needed })
        }
    }

    /// Both files are asked every time, so the time taken does not say which one (if any)
    /// holds the token.
    fn check_token(&self, authorization: &[u8]) -> Result<Caller, Refusal> {
        let presented = Credentials {
            authorization: Some(authorization),
            agent_token: None,
        };
        let verdict = |t: &Option<TokenFile>| t.as_ref().map(|t| t.check(presented));
        let run = verdict(&self.run);
        let read = verdict(&self.read);
        let mut unavailable = None;
        let mut failure = AuthFailure::Wrong;
        for (scope, v) in [(Scope::Run, run), (Scope::Read, read)] {
            match v {
                Some(Verdict::Allowed { token }) => {
                    return Ok(Caller {
                        name: format!("{}-token#{token}", scope.as_str()),
                        scope,
                    });
                }
                Some(Verdict::Denied(AuthFailure::Wrong)) | None => {}
                Some(Verdict::Denied(other)) => failure = other,
                Some(Verdict::Unavailable(msg)) => unavailable = Some(msg),
            }
        }
        if let Some(msg) = unavailable {
            return Err(Refusal::Unavailable(msg));
        }
        Err(Refusal::Unauthenticated(failure))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(a));
        }
        h
    }

    fn files() -> (tempfile::TempDir, ControllerAuth, ControllerAuth) {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let read = dir.path().join("read");
        std::fs::write(&run, "run-token-0123456789\n").unwrap();
        std::fs::write(&read, "read-token-0123456789\nread-token-abcdefghij\n").unwrap();
        let strict = ControllerAuth::open(Some(&run), Some(&read), false).unwrap();
        let compat = ControllerAuth::open(Some(&run), Some(&read), true).unwrap();
        (dir, strict, compat)
    }

    #[test]
    fn tokens_give_their_file_scope() {
        let (_d, auth, _) = files();
        let run = auth
            .authenticate(
                &Method::POST,
                true,
                &headers(Some("Bearer run-token-0123456789")),
            )
            .unwrap();
        assert_eq!(run.name, "run-token#1");
        assert_eq!(run.scope, Scope::Run);
        let read = auth
            .authenticate(
                &Method::GET,
                false,
                &headers(Some("Bearer read-token-abcdefghij")),
            )
            .unwrap();
        assert_eq!(
            (read.name.as_str(), read.scope),
            ("read-token#2", Scope::Read)
        );
        // A run token reads too.
        assert!(
            auth.authenticate(
                &Method::GET,
                false,
                &headers(Some("Bearer run-token-0123456789"))
            )
            .is_ok()
        );
    }

    #[test]
    fn a_read_token_cannot_post_and_a_wrong_one_is_refused() {
        let (_d, auth, compat) = files();
        let e = auth
            .authenticate(
                &Method::POST,
                true,
                &headers(Some("Bearer read-token-0123456789")),
            )
            .unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(
            e.detail(&Method::POST, "/api/v1/runs")
                .contains("needs scope run"),
            "{e:?}"
        );
        for a in [&auth, &compat] {
            let e = a
                .authenticate(&Method::GET, true, &headers(Some("Bearer nope-nope-nope")))
                .unwrap_err();
            assert_eq!(e, Refusal::Unauthenticated(AuthFailure::Wrong));
            let e = a
                .authenticate(&Method::GET, true, &headers(Some("Basic abc")))
                .unwrap_err();
            assert_eq!(e, Refusal::Unauthenticated(AuthFailure::Malformed));
        }
    }

    #[test]
    fn anonymous_callers_only_with_the_opt_in_and_only_on_the_seed_routes() {
        let (_d, strict, compat) = files();
        let none = headers(None);
        assert_eq!(
            strict
                .authenticate(&Method::POST, true, &none)
                .unwrap_err()
                .status(),
            401
        );
        let c = compat.authenticate(&Method::POST, true, &none).unwrap();
        assert_eq!(c, Caller::anonymous(Scope::Run));
        assert_eq!(
            compat
                .authenticate(&Method::POST, false, &none)
                .unwrap_err()
                .status(),
            401
        );
        assert!(compat.seed_compat_anonymous() && !strict.seed_compat_anonymous());
    }

    #[test]
    fn an_unreadable_token_file_refuses_with_503() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::write(&run, "run-token-0123456789\n").unwrap();
        let auth = ControllerAuth::open(Some(&run), None, false).unwrap();
        std::fs::remove_file(&run).unwrap();
        let e = auth
            .authenticate(
                &Method::GET,
                false,
                &headers(Some("Bearer run-token-0123456789")),
            )
            .unwrap_err();
        assert_eq!(e.status(), 503);
    }
}
