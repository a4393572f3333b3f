//! Where the REPL keeps its history: `--history FILE` or `$GFI_HISTORY`, else the user's
//! state directory (`$XDG_STATE_HOME/gfi/history`, `~/.local/state/gfi/history`).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The default history file, from the environment given.
pub fn default_path(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let nonempty = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(state) = nonempty("XDG_STATE_HOME").filter(|s| Path::new(s).is_absolute()) {
        return Some(PathBuf::from(state).join("gfi").join("history"));
    }
    nonempty("HOME").map(|home| {
        PathBuf::from(home)
            .join(".local")
            .join("state")
            .join("gfi")
            .join("history")
    })
}

/// Creates the file's directory (private: history can hold node names and secrets typed by
/// mistake).
pub fn prepare(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.is_dir() {
        return Err(format!(
            "{} is a directory, not a history file",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_first_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            default_path(env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/h")])),
            Some(PathBuf::from("/s/gfi/history"))
        );
        assert_eq!(
            default_path(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/gfi/history"))
        );
        // Relative XDG paths are invalid per the spec: ignored.
        assert_eq!(
            default_path(env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/gfi/history"))
        );
        assert_eq!(default_path(env(&[])), None);
    }

    #[test]
    fn prepare_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a").join("b").join("history");
        prepare(&file).unwrap();
        assert!(file.parent().unwrap().is_dir());
        assert!(prepare(dir.path()).is_err());
    }
}
