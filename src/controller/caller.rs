//! Who made a request, as the controller's auth layer found it. The layer inserts a [`Caller`]
//! into every authenticated request's extensions; handlers read it to record who started,
//! cancelled or recovered something. Handlers never check tokens themselves.

use serde::{Deserialize, Serialize};

/// What a token allows. `Run` includes everything `Read` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GETs: fault and run records, the XID list, a run's event stream.
    Read,
    /// Injections, runs, cancel, recover.
    Run,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Run => "run",
        }
    }

    /// Whether a token of this scope may make a request that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// How records and audit lines name the caller: the token's label (`run-token#1`), or
    /// `anonymous` where the seed's unauthenticated calls are allowed.
    pub name: String,
    pub scope: Scope,
}

impl Caller {
    pub fn anonymous(scope: Scope) -> Caller {
        Caller {
            name: "anonymous".into(),
            scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_scope_includes_read_but_not_the_reverse() {
        assert!(Scope::Run.allows(Scope::Read));
        assert!(Scope::Run.allows(Scope::Run));
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Run));
    }
}
