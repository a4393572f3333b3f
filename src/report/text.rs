//! The terminal summary: what failed and why, then each stage's count and latency.

use super::model::Run;
use super::stats::stage_stats;
use crate::render::clock_text;
use std::time::Duration;

/// A latency as people read it: `969ms`, `7.3s`, `5m38s`.
pub fn secs(x: f64) -> String {
    crate::duration::format(Duration::from_secs_f64(x.max(0.0)))
}

/// Lays out rows of cells: the first column left-aligned, the others right-aligned.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..n)
        .map(|j| {
            rows.iter()
                .filter_map(|r| r.get(j))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (j, cell) in r.iter().enumerate() {
            let pad = " ".repeat(width[j] - cell.chars().count());
            if j == 0 {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str("  ");
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Every failure, one line each, in order of time; empty when nothing failed.
pub fn failures(run: &Run) -> String {
    if run.failures.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "{} failure{}:\n",
        run.failures.len(),
        if run.failures.len() == 1 { "" } else { "s" }
    );
    for f in &run.failures {
        // A traceback's first line says what; the journal has the rest.
        let why = f.why.lines().next().unwrap_or("");
        let node = f
            .node
            .as_deref()
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        out.push_str(&format!("  {} {}: {node}{why}\n", clock_text(f.t), f.what));
    }
    out
}

/// Per stage reached: how many injections reached it, and p50/p95/max since the injection.
pub fn stage_table(run: &Run) -> String {
    let stats = stage_stats(run);
    if stats.is_empty() {
        return String::new();
    }
    let total = run.injections.len();
    let mut rows = vec![vec![
        "stage (since the injection)".to_string(),
        "reached".into(),
        "p50".into(),
        "p95".into(),
        "max".into(),
    ]];
    for s in &stats {
        rows.push(vec![
            s.stage.label().to_string(),
            format!("{}/{total}", s.count),
            secs(s.p50),
            secs(s.p95),
            secs(s.max),
        ]);
    }
    columns(&rows)
}

/// The end-of-run summary: failures first, then the stage table (when `table`).
pub fn summary(run: &Run, table: bool) -> String {
    let mut out = failures(run);
    if table {
        out.push_str(&stage_table(run));
    }
    out
}

/// A saved run's whole summary: what ran, failures, the stage table, the verdict.
pub fn full(run: &Run) -> String {
    let h = &run.header;
    let checks = run.checks.len();
    let passed = run.checks.iter().filter(|c| c.ok).count();
    let mut out = format!(
        "gfi run {}  seed={}  backend={}  run={}\n",
        h.script, h.seed, h.target.description, h.run_id
    );
    out.push_str(&summary(run, true));
    out.push_str(&format!(
        "{}: {}{}, {} injection{}, checks {passed} passed / {} failed (seed {})\n",
        run.verdict(),
        secs(run.run_seconds),
        if h.virtual_time { " simulated" } else { "" },
        run.injections.len(),
        if run.injections.len() == 1 { "" } else { "s" },
        checks - passed,
        h.seed
    ));
    out
}
