//! What `POST /api/v1/runs` carries: a script, the modules it requires from beside it, its
//! arguments, seed and limits. Checked here before anything runs, and written to
//! `state-dir/runs/<id>/` so the usual `require` searcher finds the modules.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The script's name as the client knows it (`plans/day.lua`): the journal and error
    /// messages show it.
    pub script: String,
    /// The script's Lua source.
    pub source: String,
    /// Modules by their path relative to the script's directory (`lib/util.lua`).
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// `--arg` pairs, in order: `[["faults", "10"]]`.
    #[serde(default)]
    pub args: Vec<(String, String)>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub limits: RequestedLimits,
    /// Default style of injected lines: driver, seed or unguarded.
    #[serde(default)]
    pub line_style: Option<String>,
}

/// Limits the caller asks for; the controller's own cap them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    #[serde(default)]
    pub memory_bytes: Option<usize>,
    #[serde(default)]
    pub instructions: Option<u64>,
}

/// How big a bundle may be.
#[derive(Debug, Clone, Copy)]
pub struct BundleLimits {
    /// The script and its modules together, in bytes.
    pub max_bytes: usize,
    pub max_modules: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_bytes: 1 << 20,
            max_modules: 64,
        }
    }
}

/// Why a bundle was refused: the caller's mistake, with what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// 400.
    Invalid(String),
    /// 413.
    TooLarge(String),
}

impl BundleError {
    pub fn message(&self) -> &str {
        match self {
            BundleError::Invalid(m) | BundleError::TooLarge(m) => m,
        }
    }
}

const MAX_NAME: usize = 256;
const MAX_ARGS: usize = 256;

impl RunRequest {
    /// Checks names, paths, sizes and counts.
    pub fn validate(&self, limits: &BundleLimits) -> Result<(), BundleError> {
        let bad = |m: String| Err(BundleError::Invalid(m));
        if self.script.is_empty()
            || self.script.len() > MAX_NAME
            || self.script.chars().any(char::is_control)
        {
            return bad(format!(
                "`script` must name the script in 1 to {MAX_NAME} printable characters (e.g. \"plans/day.lua\")"
            ));
        }
        if self.modules.len() > limits.max_modules {
            return Err(BundleError::TooLarge(format!(
                "the bundle has {} modules; at most {} are allowed",
                self.modules.len(),
                limits.max_modules
            )));
        }
        for path in self.modules.keys() {
            module_path(path).map_err(BundleError::Invalid)?;
        }
        let bytes = self.source.len() + self.modules.values().map(String::len).sum::<usize>();
        if bytes > limits.max_bytes {
            return Err(BundleError::TooLarge(format!(
                "the script and its modules are {bytes} bytes; at most {} are allowed",
                limits.max_bytes
            )));
        }
        if self.args.len() > MAX_ARGS {
            return bad(format!(
                "{} args; at most {MAX_ARGS} are allowed",
                self.args.len()
            ));
        }
        for (k, _) in &self.args {
            crate::session::check_arg_name(k)
                .map_err(|e| BundleError::Invalid(format!("args: {e}")))?;
        }
        if let Some(style) = &self.line_style {
            style
                .parse::<crate::xid::LineStyle>()
                .map_err(|e| BundleError::Invalid(format!("line_style: {e}")))?;
        }
        Ok(())
    }

    /// Writes the modules under `dir` at their relative paths (the script runs from its text).
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (path, source) in &self.modules {
            let target = dir.join(module_path(path)?);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::write(&target, source)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        }
        Ok(())
    }
}

/// A module's path inside the bundle: relative, plain names, ending in `.lua`.
pub fn module_path(path: &str) -> Result<PathBuf, String> {
    let wrong = |why: &str| {
        Err(format!(
            "module path '{path}' {why}: give it relative to the script's directory, e.g. \"lib/util.lua\""
        ))
    };
    if path.is_empty() || path.len() > MAX_NAME {
        return wrong(&format!("must be 1 to {MAX_NAME} characters"));
    }
    if !path.ends_with(".lua") {
        return wrong("must end in .lua");
    }
    let p = Path::new(path);
    for c in p.components() {
        match c {
            Component::Normal(part) => {
                let ok = part.to_str().is_some_and(|s| {
                    !s.starts_with('.')
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                });
                if !ok {
                    return wrong(
                        "has a part that is not letters, digits, '_', '-' and '.' (or starts with '.')",
                    );
                }
            }
            Component::ParentDir => return wrong("leaves the bundle with '..'"),
            Component::RootDir | Component::Prefix(_) => return wrong("is absolute"),
            Component::CurDir => return wrong("has a '.' part"),
        }
    }
    Ok(p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(modules: &[(&str, &str)]) -> RunRequest {
        RunRequest {
            script: "plan.lua".into(),
            source: "print(1)".into(),
            modules: modules
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: vec![],
            seed: None,
            limits: RequestedLimits::default(),
            line_style: None,
        }
    }

    #[test]
    fn module_paths_stay_inside_the_bundle() {
        assert!(module_path("util.lua").is_ok());
        assert!(module_path("lib/my-mod_2.lua").is_ok());
        for bad in [
            "../x.lua",
            "lib/../../x.lua",
            "/etc/x.lua",
            "./x.lua",
            "x.txt",
            "",
            ".hidden.lua",
            "a b.lua",
            "lib//x.lua\0",
        ] {
            assert!(module_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_and_counts_are_capped() {
        let limits = BundleLimits {
            max_bytes: 20,
            max_modules: 1,
        };
        assert!(request(&[("a.lua", "x")]).validate(&limits).is_ok());
        assert!(matches!(
            request(&[("a.lua", "x"), ("b.lua", "y")]).validate(&limits),
            Err(BundleError::TooLarge(_))
        ));
        assert!(matches!(
            request(&[("a.lua", &"x".repeat(30))]).validate(&limits),
            Err(BundleError::TooLarge(_))
        ));
        assert!(matches!(
            request(&[("../a.lua", "x")]).validate(&limits),
            Err(BundleError::Invalid(_))
        ));
    }
}
