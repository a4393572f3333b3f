//! The README's promises: its API reference is the docs source, and its commands exist.

use gpu_fault_injector::lua::docs;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn readme_api_reference_matches_the_docs() {
    let text = readme();
    let start = text.find("<!-- api:start").expect("api:start marker");
    let body_start = text[start..].find("-->").unwrap() + start + 3;
    let end = text.find("<!-- api:end -->").expect("api:end marker");
    let section = text[body_start..end].trim();
    assert_eq!(
        section,
        docs::markdown().trim(),
        "README's API reference is stale: replace it with the output of `gfi docs api`"
    );
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
        use gpu_fault_injector::backend::sim::{SimBackend, config::SimConfig, values::NvsConfig};
        let clock = gpu_fault_injector::clock::RunClock::start(true);
        let journal = gpu_fault_injector::journal::Journal::new(clock);
        let sim = SimBackend::start(SimConfig::default(), NvsConfig::default(), 1, clock).unwrap();
        let host = gpu_fault_injector::lua::Host::new(Default::default(), std::sync::Arc::new(sim), journal).unwrap();
        let names: Vec<String> = host
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
        for n in names {
            let documented = docs::find(&n).is_some()
                || docs::DOCS.iter().any(|d| d.signature.contains(&format!("{n}(")));
            assert!(documented, "gfi.{n} has no entry in src/lua/docs.rs");
        }
    });
}

#[test]
fn readme_names_the_two_commands_and_every_example() {
    let text = readme();
    assert!(text.contains("cargo run --release -- run examples/01_first_injection.lua"));
    assert!(text.contains("cargo test"));
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            text.contains(&format!("examples/{name}")),
            "README does not mention examples/{name}"
        );
    }
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test"),
        ".ci/run runs the README's test command"
    );
}
