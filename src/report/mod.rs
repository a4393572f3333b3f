//! Reports people read, made from a run's journal: the terminal summary at the end of
//! `gfi run`, JUnit XML for CI, a self-contained HTML page, and a stage-by-stage comparison of
//! two runs. `gfi run` makes them from the journal it just recorded; `gfi report` from a saved
//! one, with the same code.

pub mod compare;
pub mod html;
pub mod junit;
pub mod model;
pub mod stage;
pub mod stats;
pub mod text;

pub use model::Run;
pub use stage::Stage;

use std::path::{Path, PathBuf};

/// Which files to write.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub junit: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

/// Writes the asked-for files; each error says which file and why.
pub fn write(run: &Run, outputs: &Outputs) -> Vec<String> {
    let mut errors = Vec::new();
    let mut put = |path: &Path, what: &str, text: String| {
        if let Err(e) = std::fs::write(path, text) {
            errors.push(format!(
                "cannot write the {what} to {}: {e}",
                path.display()
            ));
        }
    };
    if let Some(p) = &outputs.junit {
        put(p, "JUnit report", junit::render(run));
    }
    if let Some(p) = &outputs.html {
        put(p, "HTML report", html::render(run));
    }
    errors
}

/// Escapes text for XML 1.0 and HTML (attributes and content alike); drops the control characters
/// XML 1.0 cannot carry.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}
