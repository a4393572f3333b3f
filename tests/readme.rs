//! The documentation's promises: `docs/api.md` is what `gfi docs api` prints, every API
//! function is documented under its whole name, the README names its commands and every
//! example, and every link and repository path in README.md and docs/*.md leads somewhere.

use gpu_fault_injector::lua::docs;
use regex::Regex;
use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn readme() -> String {
    read("README.md")
}

/// README.md and every docs/*.md, as (path relative to the repository, text).
fn pages() -> Vec<(PathBuf, String)> {
    let mut paths = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(ROOT).unwrap().to_path_buf())
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = read(p.to_str().unwrap());
            (p, text)
        })
        .collect()
}

/// The lines of a Markdown page that are prose: fenced and indented code blocks left out.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut indented = false;
    let mut previous_blank = true;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            previous_blank = false;
            continue;
        }
        if fenced {
            continue;
        }
        let blank = line.trim().is_empty();
        // An indented code block starts after a blank line and lasts while lines stay indented.
        if !blank && (line.starts_with("    ") || line.starts_with('\t')) {
            if previous_blank || indented {
                indented = true;
                continue;
            }
        } else if !blank {
            indented = false;
        }
        previous_blank = blank;
        if !blank {
            out.push(line);
        }
    }
    out
}

fn code_span() -> Regex {
    Regex::new(r"`+[^`]*`+").unwrap()
}

/// The anchors GitHub gives a page's headings: the heading's text without Markdown, lower
/// case, punctuation other than `-` and `_` dropped, spaces as `-`; repeats get `-1`, `-2`.
fn anchors(text: &str) -> BTreeSet<String> {
    let link = Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let rest = rest.trim_start_matches('#');
        if !rest.starts_with(' ') {
            continue;
        }
        let heading = link.replace_all(rest.trim(), "$1");
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// Every link target on a page outside code: `[text](target)` and `[label]: target`.
fn link_targets(text: &str) -> Vec<String> {
    let inline = Regex::new(r"\]\(\s*<?([^)\s>]*)>?(?:\s+[^)]*)?\)").unwrap();
    let reference = Regex::new(r"^\s*\[[^\]]+\]:\s+<?(\S+?)>?(?:\s.*)?$").unwrap();
    let spans = code_span();
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let line = spans.replace_all(line, "");
        out.extend(inline.captures_iter(&line).map(|c| c[1].to_string()));
        if let Some(c) = reference.captures(&line) {
            out.push(c[1].to_string());
        }
    }
    out
}

/// `a/b/../c` as `a/c`, without touching the file system; `None` when it climbs out of the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Where a relative link on `page` leads: the path inside the repository and the anchor.
/// `None` for links that leave the repository (a URL, `mailto:`).
fn resolve(page: &Path, target: &str) -> Option<Result<(PathBuf, Option<String>), String>> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a.to_string())),
        None => (target, None),
    };
    let file = if path.is_empty() {
        page.to_path_buf()
    } else {
        match normalize(&page.parent().unwrap().join(path)) {
            Some(p) => p,
            None => return Some(Err(format!("{target} leads outside the repository"))),
        }
    };
    Some(Ok((file, anchor)))
}

#[test]
fn api_page_is_what_gfi_docs_api_prints() {
    assert_eq!(
        read("docs/api.md"),
        docs::api_page(),
        "docs/api.md is stale: regenerate it with `cargo run -- docs api > docs/api.md`"
    );
}

/// Whether `text` calls `name` as a whole name: `name(`, not preceded by a letter, digit,
/// `_`, `.` or `:` (so `xid` is not found in `inject_xid(`, nor `int` in `rand.int(`).
fn calls_whole_name(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | ':'))
            && after == Some('(')
    })
}

#[test]
fn whole_names_only() {
    assert!(calls_whole_name("xid(n) -> table", "xid"));
    assert!(calls_whole_name("log(...) / info(...) / warn(...)", "info"));
    assert!(calls_whole_name("local s = p:run(); check(x)", "check"));
    assert!(!calls_whole_name("inject_xid(node, gpu, xid)", "xid"));
    assert!(!calls_whole_name("n:inject_xid(gpu, xid, o)", "xid"));
    assert!(!calls_whole_name("xids() -> {table}", "xid"));
    assert!(!calls_whole_name("rand.int(a, b)", "int"));
    assert!(!calls_whole_name("xid", "xid"));
}

#[test]
fn every_api_global_is_documented() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        use gpu_fault_injector::session::{BackendSource, Session, SessionOptions};
        let session = Session::new(SessionOptions {
            seed: Some(1),
            ..SessionOptions::new(BackendSource::Sim {
                config: Box::default(),
                values: Box::default(),
            })
        })
        .unwrap();
        let names: Vec<String> = session
            .host()
            .eval("local t = {} for k, v in pairs(gfi) do if type(v) == 'function' then t[#t + 1] = k end end return t", "=names")
            .await
            .unwrap()
            .into_iter()
            .next()
            .and_then(|v| v.as_table().cloned())
            .unwrap()
            .sequence_values::<String>()
            .map(Result::unwrap)
            .collect();
        assert!(names.len() > 20, "gfi has only {} functions: {names:?}", names.len());
        for n in names {
            let documented = docs::find(&n).is_some()
                || docs::DOCS.iter().any(|d| calls_whole_name(d.signature, &n));
            assert!(documented, "gfi.{n} has no entry in src/lua/docs.rs");
        }
    });
}

#[test]
fn readme_names_the_two_commands_and_every_example() {
    let text = readme();
    assert!(text.contains("cargo run --release -- run examples/01_first_injection.lua"));
    assert!(text.contains("cargo test"));
    for dir in ["examples", "scripts"] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                text.contains(&format!("{dir}/{name}")),
                "README does not mention {dir}/{name}"
            );
        }
    }
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test"),
        ".ci/run runs the README's test command"
    );
}

#[test]
fn every_relative_link_leads_to_a_file_and_heading() {
    let pages = pages();
    let mut checked = 0;
    let mut broken = Vec::new();
    for (page, text) in &pages {
        for target in link_targets(text) {
            let Some(resolved) = resolve(page, &target) else {
                continue;
            };
            checked += 1;
            let (file, anchor) = match resolved {
                Ok(r) => r,
                Err(why) => {
                    broken.push(format!("{}: {why}", page.display()));
                    continue;
                }
            };
            let full = Path::new(ROOT).join(&file);
            if !full.exists() {
                broken.push(format!(
                    "{}: {target}: no {}",
                    page.display(),
                    file.display()
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if file.extension().is_some_and(|x| x == "md") {
                let headings = anchors(&std::fs::read_to_string(&full).unwrap());
                if !headings.contains(&anchor) {
                    broken.push(format!(
                        "{}: {target}: {} has no heading #{anchor} (it has: {})",
                        page.display(),
                        file.display(),
                        headings.into_iter().collect::<Vec<_>>().join(" ")
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 50,
        "only {checked} relative links found: is the parser broken?"
    );
}

#[test]
fn link_checking_catches_what_it_should() {
    let page = "# Title\n\n## A `code` heading (`--flag`)\n\n## Title\n\nSee [x](#a-code-heading---flag), \
                [y](#title-1), [z](../b.md#top), `[not](a link)`.\n\n```\n[nor](this)\n```\n\n    [nor](that)\n\n[ref]: docs/c.md\n";
    assert_eq!(
        anchors(page),
        BTreeSet::from([
            "title".into(),
            "title-1".into(),
            "a-code-heading---flag".into()
        ])
    );
    assert_eq!(
        link_targets(page),
        [
            "#a-code-heading---flag",
            "#title-1",
            "../b.md#top",
            "docs/c.md"
        ]
    );
    let at = |t| resolve(Path::new("docs/run.md"), t).unwrap().unwrap();
    assert_eq!(
        at("../README.md#safety"),
        (PathBuf::from("README.md"), Some("safety".into()))
    );
    assert_eq!(
        at("#speed"),
        (PathBuf::from("docs/run.md"), Some("speed".into()))
    );
    assert_eq!(at("api.md"), (PathBuf::from("docs/api.md"), None));
    assert!(
        resolve(Path::new("docs/run.md"), "../../shared/x.md")
            .unwrap()
            .is_err()
    );
    assert!(
        resolve(
            Path::new("README.md"),
            "https://github.com/NVIDIA/nvsentinel"
        )
        .is_none()
    );
}

#[test]
fn every_repository_path_in_the_docs_exists() {
    let path = Regex::new(
        r"^(?:src|tests|examples|scripts|deploy|data|tools|benches|stdlib|docs|\.ci)/[A-Za-z0-9_./-]*$|^(?:build\.rs|Cargo\.toml)$",
    )
    .unwrap();
    let spans = code_span();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (page, text) in pages() {
        for line in prose_lines(&text) {
            for span in spans.find_iter(line) {
                let inner = span.as_str().trim_matches('`');
                if !path.is_match(inner) {
                    continue;
                }
                checked += 1;
                if !Path::new(ROOT).join(inner).exists() {
                    missing.push(format!("{}: `{inner}`", page.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(
        checked > 20,
        "only {checked} paths found: is the parser broken?"
    );
}

#[test]
fn every_docs_page_is_linked_from_the_readme() {
    let readme = readme();
    let linked: BTreeSet<PathBuf> = link_targets(&readme)
        .iter()
        .filter_map(|t| resolve(Path::new("README.md"), t)?.ok())
        .map(|(file, _)| file)
        .collect();
    for (page, _) in pages().into_iter().skip(1) {
        assert!(
            linked.contains(&page),
            "README.md does not link to {}",
            page.display()
        );
    }
}
