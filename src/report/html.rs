//! `--report out.html`: one self-contained page (inline CSS and SVG; no script, font or
//! request to anywhere): what failed first, then a timeline of each injection's stages per
//! node, the latency distribution of each stage, the checks, and the run's parameters.

use super::escape;
use super::model::{Injection, Run};
use super::stage::Stage;
use super::stats::{StageStats, stage_stats};
use super::text::secs;
use crate::render::clock_text;
use std::fmt::Write;

/// The width every chart is drawn at (it scales with the page).
const WIDTH: f64 = 1000.0;
/// Left column of the charts: what the row is.
const LABEL: f64 = 300.0;
/// Right column: where the row ended.
const NOTE: f64 = 185.0;
const ROW: f64 = 20.0;
const AXIS: f64 = 30.0;

/// Each stage's colour: the phase of NVSentinel's reaction it belongs to; red for giving up.
fn color(stage: Stage) -> &'static str {
    match stage {
        Stage::Detected => "#f59e0b",
        Stage::Condition => "#d97706",
        Stage::Event => "#94a3b8",
        Stage::Cordoned => "#f97316",
        Stage::Draining | Stage::Drained => "#a855f7",
        Stage::RemediationCreated | Stage::Remediated => "#6366f1",
        Stage::Rebooting | Stage::Booted => "#0ea5e9",
        Stage::Ready | Stage::RemediationCompleted => "#14b8a6",
        Stage::Uncordoned => "#16a34a",
        Stage::DrainFailed | Stage::RemediationFailed | Stage::RemediationTimeout => "#dc2626",
    }
}

/// Time since the injection on a log scale: seconds and hours on one axis.
struct Scale {
    max: f64,
}

impl Scale {
    fn new(max: f64) -> Scale {
        Scale { max: max.max(10.0) }
    }

    fn x(&self, t: f64) -> f64 {
        let plot = WIDTH - LABEL - NOTE;
        LABEL + plot * (1.0 + t.max(0.0)).ln() / (1.0 + self.max).ln()
    }

    /// Gridlines and their labels along the top of a chart `height` tall.
    fn axis(&self, height: f64) -> String {
        let mut s = String::new();
        for (t, label) in [
            (0.0, "0"),
            (1.0, "1s"),
            (10.0, "10s"),
            (60.0, "1m"),
            (600.0, "10m"),
            (3600.0, "1h"),
            (36000.0, "10h"),
        ] {
            if t > self.max {
                break;
            }
            let x = self.x(t);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{height:.1}" class="grid"/><text x="{x:.1}" y="{ty}" class="tick">{label}</text>"##,
                y0 = AXIS - 6.0,
                ty = AXIS - 10.0,
            );
        }
        s
    }
}

pub fn render(run: &Run) -> String {
    let h = &run.header;
    let stats = stage_stats(run);
    let reached = run
        .injections
        .iter()
        .flat_map(|i| i.stages.iter().map(|(_, t)| *t))
        .fold(0.0, f64::max);
    let watched = run.injections.iter().map(|i| i.watched).fold(0.0, f64::max);
    // Room for the quiet after the last stage (a non-fatal XID's point), but not so much
    // that the stages themselves are squeezed.
    let scale = Scale::new(reached.max(watched.min(4.0 * reached)));
    let verdict = run.verdict();
    let verdict_class = if verdict == "finished" { "ok" } else { "bad" };
    let passed = run.checks.iter().filter(|c| c.ok).count();
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gfi report: {title}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>gfi run {title} <span class="verdict {verdict_class}">{verdict}</span></h1>
<p class="sub">{dur}{sim} on {target} &middot; {n} injection{ns} &middot; checks {passed}/{checks} passed &middot; seed {seed} &middot; run {run_id}</p>
</header>
"#,
        title = escape(&h.script),
        dur = secs(run.run_seconds),
        sim = if h.virtual_time { " simulated" } else { "" },
        target = escape(&h.target.description),
        n = run.injections.len(),
        ns = if run.injections.len() == 1 { "" } else { "s" },
        checks = run.checks.len(),
        seed = h.seed,
        run_id = escape(&h.run_id),
    );
    page.push_str(&failures(run));
    page.push_str(&timeline(run, &scale));
    page.push_str(&latencies(&stats, run.injections.len(), &scale));
    page.push_str(&checks(run));
    page.push_str(&parameters(run));
    page.push_str("<footer>Made by gfi from the run's journal.</footer>\n</body>\n</html>\n");
    page
}

fn failures(run: &Run) -> String {
    if run.failures.is_empty() {
        return "<section class=\"card none\"><h2>Failures</h2><p>Nothing failed.</p></section>\n"
            .into();
    }
    let mut s = format!(
        "<section class=\"card failures\"><h2>Failures ({})</h2>\n<ol>\n",
        run.failures.len()
    );
    for f in &run.failures {
        let node = f
            .node
            .as_deref()
            .map(|n| format!("<b>{}</b> ", escape(n)))
            .unwrap_or_default();
        let (first, rest) = f.why.split_once('\n').unwrap_or((&f.why, ""));
        let _ = write!(
            s,
            "<li><span class=\"at\">{}</span> <span class=\"what\">{}</span> {node}{}",
            clock_text(f.t),
            escape(f.what),
            escape(first)
        );
        if !rest.is_empty() {
            let _ = write!(s, "<pre>{}</pre>", escape(rest));
        }
        s.push_str("</li>\n");
    }
    s.push_str("</ol></section>\n");
    s
}

fn legend(stages: &[Stage]) -> String {
    let mut s = String::from("<p class=\"legend\">");
    for st in stages {
        let _ = write!(
            s,
            "<span><i style=\"background:{}\"></i>{}</span>",
            color(*st),
            escape(st.label())
        );
    }
    s.push_str("</p>\n");
    s
}

/// One row per injection, grouped by node: each stage where it was reached, on a log scale of
/// the time since the injection.
fn timeline(run: &Run, scale: &Scale) -> String {
    let mut rows: Vec<&Injection> = run.injections.iter().collect();
    rows.sort_by(|a, b| a.node.cmp(&b.node).then(a.t.total_cmp(&b.t)));
    let nodes = rows
        .iter()
        .map(|i| &i.node)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut s = format!(
        "<section class=\"card\"><h2>Timeline</h2>\n<p class=\"note\">Each injection's stages, grouped by node; time since the injection, log scale. {} injection{} on {nodes} node{}.</p>\n",
        rows.len(),
        plural(rows.len()),
        plural(nodes)
    );
    if rows.is_empty() {
        s.push_str("<p>No injection.</p></section>\n");
        return s;
    }
    let reached: std::collections::BTreeSet<Stage> = rows
        .iter()
        .flat_map(|i| i.stages.iter().map(|(st, _)| *st))
        .collect();
    s.push_str(&legend(&reached.into_iter().collect::<Vec<_>>()));
    let height = AXIS + ROW * rows.len() as f64 + 6.0;
    let _ = write!(
        s,
        r#"<svg class="chart timeline" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="timeline of each injection's stages">"#
    );
    s.push_str(&scale.axis(height));
    let mut last_node = "";
    for (i, inj) in rows.iter().enumerate() {
        let y = AXIS + ROW * i as f64 + ROW / 2.0;
        let new_node = inj.node != last_node;
        last_node = &inj.node;
        let _ = write!(
            s,
            r#"<g class="tl-row" data-node="{node}" data-fault="{id}">"#,
            node = escape(&inj.node),
            id = escape(&inj.id)
        );
        if new_node && i > 0 {
            let _ = write!(
                s,
                r#"<line x1="0" y1="{t:.1}" x2="{WIDTH}" y2="{t:.1}" class="sep"/>"#,
                t = y - ROW / 2.0
            );
        }
        let gpu = inj.gpu.map(|g| format!("GPU {g}")).unwrap_or_default();
        let xid = inj.xid.map(|x| format!("XID {x}")).unwrap_or_default();
        let _ = write!(
            s,
            r#"<text x="4" y="{ty:.1}" class="{cls}">{short}<title>{node}</title></text><text x="136" y="{ty:.1}" class="meta">{gpu} &#183; {xid} &#183; {at}</text>"#,
            ty = y + 4.0,
            cls = if new_node { "node" } else { "node dim" },
            short = escape(&shorten(&inj.node, 19)),
            node = escape(&inj.node),
            at = clock_text(inj.t),
        );
        let x0 = scale.x(0.0);
        let _ = write!(
            s,
            r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" class="base"/>"#,
            x1 = scale.x(scale.max)
        );
        // Each segment is the wait for the stage it ends at, in that stage's colour.
        let mut prev = 0.0;
        for (st, t) in &inj.stages {
            let _ = write!(
                s,
                r#"<line x1="{a:.1}" y1="{y:.1}" x2="{b:.1}" y2="{y:.1}" stroke="{c}" class="seg"/>"#,
                a = scale.x(prev),
                b = scale.x(*t),
                c = color(*st)
            );
            prev = prev.max(*t);
        }
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{ry:.1}" width="3" height="12" class="inject"><title>injected at {at}</title></rect>"#,
            x = x0 - 1.5,
            ry = y - 6.0,
            at = clock_text(inj.t)
        );
        for (st, t) in &inj.stages {
            let _ = write!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{c}" class="{cls}"><title>{label} after {d}</title></circle>"#,
                x = scale.x(*t),
                r = if st.is_failure() { 5.5 } else { 4.0 },
                c = color(*st),
                cls = if st.is_failure() { "mark fail" } else { "mark" },
                label = escape(st.label()),
                d = secs(*t)
            );
        }
        // How long nothing more happened, where it fits: a non-fatal XID's quiet is the point.
        let last = inj.stages.last().map_or(0.0, |(_, t)| *t);
        let after = scale.x(last) + 9.0;
        if inj.watched - last >= 5.0 && after + 90.0 < WIDTH - NOTE {
            let _ = write!(
                s,
                r#"<text x="{after:.1}" y="{ty:.1}" class="quiet">then quiet for {d}</text>"#,
                ty = y + 4.0,
                d = secs(inj.watched - last)
            );
        }
        let note = match inj.stages.last() {
            Some((st, t)) => format!("{} {}", st.label(), secs(*t)),
            None => "no reaction seen".into(),
        };
        let failed = inj.stages.iter().any(|(st, _)| st.is_failure());
        let _ = write!(
            s,
            r#"<text x="{x}" y="{ty:.1}" class="{cls}">{note}</text></g>"#,
            x = WIDTH - NOTE + 10.0,
            ty = y + 4.0,
            cls = if failed || inj.stages.is_empty() {
                "end bad"
            } else {
                "end"
            },
            note = escape(&note)
        );
    }
    s.push_str("</svg></section>\n");
    s
}

/// At most `n` characters, with an ellipsis when cut (the full text is the tooltip).
fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// Per stage: every latency as a dot, p50 and p95 as ticks, on the timeline's scale; and the
/// same figures as a table.
fn latencies(stats: &[StageStats], injections: usize, scale: &Scale) -> String {
    let mut s = String::from(
        "<section class=\"card\"><h2>Stage latency</h2>\n<p class=\"note\">Time from the injection to each stage: every injection a dot; the dark tick is p50, the dashed one p95.</p>\n",
    );
    if stats.is_empty() {
        s.push_str("<p>No stage was reached.</p></section>\n");
        return s;
    }
    let row = 26.0;
    let height = AXIS + row * stats.len() as f64 + 6.0;
    let _ = write!(
        s,
        r#"<svg class="chart dist" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="latency distribution per stage">"#
    );
    s.push_str(&scale.axis(height));
    for (i, st) in stats.iter().enumerate() {
        let y = AXIS + row * i as f64 + row / 2.0;
        let _ = write!(
            s,
            r#"<g class="dist-row" data-stage="{key}"><text x="4" y="{ty:.1}" class="node">{label}</text><text x="{cx}" y="{ty:.1}" class="meta">{n}/{injections}</text>"#,
            key = st.stage.key(),
            ty = y + 4.0,
            label = escape(st.stage.label()),
            cx = LABEL - 56.0,
            n = st.count,
        );
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{a:.1}" x2="{x:.1}" y2="{b:.1}" class="p50"><title>p50 {p50}</title></line><line x1="{x2:.1}" y1="{a:.1}" x2="{x2:.1}" y2="{b:.1}" class="p95"><title>p95 {p95}</title></line><text x="{nx}" y="{ty:.1}" class="end">p50 {p50} &#183; p95 {p95}</text>"#,
            x = scale.x(st.p50),
            x2 = scale.x(st.p95),
            a = y - 9.0,
            b = y + 9.0,
            nx = WIDTH - NOTE + 10.0,
            ty = y + 4.0,
            p50 = secs(st.p50),
            p95 = secs(st.p95),
        );
        // Dots over the ticks: a single value must stay visible.
        for (j, v) in st.values.iter().enumerate() {
            // A fixed spread (not random) so a page is the same every time it is made.
            let jitter = ((j * 7) % 9) as f64 - 4.0;
            let _ = write!(
                s,
                r#"<circle cx="{x:.1}" cy="{cy:.1}" r="3" fill="{c}" class="dot"/>"#,
                x = scale.x(*v),
                cy = y + jitter,
                c = color(st.stage)
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>\n<table><thead><tr><th>stage</th><th>reached</th><th>p50</th><th>p95</th><th>max</th></tr></thead><tbody>\n");
    for st in stats {
        let _ = writeln!(
            s,
            "<tr><td><i class=\"chip\" style=\"background:{}\"></i>{}</td><td>{}/{injections}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            color(st.stage),
            escape(st.stage.label()),
            st.count,
            secs(st.p50),
            secs(st.p95),
            secs(st.max)
        );
    }
    s.push_str("</tbody></table></section>\n");
    s
}

fn checks(run: &Run) -> String {
    let mut s = String::from("<section class=\"card\"><h2>Checks</h2>\n");
    if run.checks.is_empty() {
        s.push_str("<p>The script made no check.</p></section>\n");
        return s;
    }
    s.push_str(
        "<table><thead><tr><th></th><th>check</th><th>detail</th><th>at</th></tr></thead><tbody>\n",
    );
    // Failed ones first.
    let mut ordered: Vec<_> = run.checks.iter().collect();
    ordered.sort_by_key(|c| c.ok);
    for c in ordered {
        let _ = writeln!(
            s,
            "<tr class=\"{}\"><td class=\"mark\">{}</td><td>{}</td><td>{}</td><td class=\"at\">{}</td></tr>",
            if c.ok { "pass" } else { "fail" },
            if c.ok { "&#10003;" } else { "&#10007;" },
            escape(&c.name),
            escape(c.detail.as_deref().unwrap_or("")),
            clock_text(c.t)
        );
    }
    s.push_str("</tbody></table></section>\n");
    s
}

fn parameters(run: &Run) -> String {
    let h = &run.header;
    let args: Vec<String> = h.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut rows: Vec<(&str, String)> = vec![
        ("script", h.script.clone()),
        (
            "script sha256",
            h.script_sha256.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "arguments",
            if args.is_empty() {
                "-".into()
            } else {
                args.join(" ")
            },
        ),
        ("seed", h.seed.to_string()),
        ("run id", h.run_id.clone()),
        ("backend", h.backend.clone()),
        ("target", h.target.description.clone()),
    ];
    if let Some(c) = &h.target.context {
        rows.push(("context", c.clone()));
    }
    if let Some(n) = h.target.nodes {
        rows.push(("nodes", n.to_string()));
    }
    rows.push((
        "started",
        format!(
            "{}{}",
            h.started_at,
            if h.virtual_time {
                " (virtual time)"
            } else {
                ""
            }
        ),
    ));
    rows.push(("outcome", run.outcome.clone()));
    rows.push(("gfi", h.gfi.clone()));
    let mut s = String::from("<section class=\"card\"><h2>Parameters</h2>\n<dl>\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<dt>{k}</dt><dd>{}</dd>", escape(&v));
    }
    s.push_str("</dl>\n");
    if !h.nvsentinel.is_null() {
        let json = serde_json::to_string_pretty(&h.nvsentinel).unwrap_or_default();
        let _ = writeln!(
            s,
            "<details><summary>NVSentinel configuration the run assumed</summary><pre>{}</pre></details>",
            escape(&json)
        );
    }
    s.push_str("</section>\n");
    s
}

const CSS: &str = r#"
:root { color-scheme: light; --fg: #1f2937; --dim: #6b7280; --line: #e5e7eb; --bad: #dc2626; --ok: #16a34a; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 40px; background: #f3f4f6; color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header h1 { font-size: 22px; margin: 0 0 4px; font-weight: 650; }
.sub { margin: 0 0 18px; color: var(--dim); }
.verdict { display: inline-block; font-size: 13px; font-weight: 600; padding: 2px 10px; border-radius: 999px;
  vertical-align: 3px; margin-left: 8px; color: #fff; }
.verdict.ok { background: var(--ok); }
.verdict.bad { background: var(--bad); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px 16px;
  margin: 0 0 18px; max-width: 1000px; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
.card h2 { font-size: 16px; margin: 0 0 8px; }
.card.failures { border-left: 5px solid var(--bad); }
.card.failures h2 { color: var(--bad); }
.card.none { border-left: 5px solid var(--ok); }
.card.none p { margin: 0; color: var(--ok); font-weight: 600; }
.failures ol { margin: 0; padding-left: 22px; }
.failures li { margin: 3px 0; }
.failures .what { font-weight: 600; color: var(--bad); }
.failures pre { margin: 4px 0 6px; font-size: 12px; color: #374151; white-space: pre-wrap; }
.at { color: var(--dim); font-variant-numeric: tabular-nums; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.note { color: var(--dim); margin: 0 0 6px; }
.legend { margin: 0 0 8px; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: #374151; }
.legend i, .chip { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 5px; vertical-align: -1px; }
svg.chart { display: block; width: 100%; height: auto; font-size: 11px; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .tick { fill: var(--dim); text-anchor: middle; }
svg .sep { stroke: #d1d5db; stroke-width: 1; stroke-dasharray: 2 3; }
svg .base { stroke: #eef0f3; stroke-width: 6; stroke-linecap: round; }
svg .seg { stroke-width: 6; stroke-linecap: round; opacity: .55; }
svg .inject { fill: #111827; }
svg .mark { stroke: #fff; stroke-width: 1.2; }
svg .mark.fail { stroke: #7f1d1d; stroke-width: 2; }
svg .node { fill: #111827; font-weight: 600; }
svg .node.dim { fill: #c0c4cc; font-weight: 400; }
svg .meta { fill: #4b5563; }
svg .end { fill: #374151; }
svg .quiet { fill: #6b7280; font-style: italic; stroke: #fff; stroke-width: 3px; paint-order: stroke; }
svg .end.bad { fill: var(--bad); font-weight: 600; }
svg .dot { opacity: .6; }
svg .p50 { stroke: #111827; stroke-width: 2.5; }
svg .p95 { stroke: #111827; stroke-width: 1.5; stroke-dasharray: 3 2; }
table { border-collapse: collapse; margin-top: 10px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 14px 4px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--dim); font-weight: 600; font-size: 12px; }
tr.fail td { color: var(--bad); }
td.mark { font-weight: 700; }
tr.pass td.mark { color: var(--ok); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 0; }
dt { color: var(--dim); }
dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all; }
details { margin-top: 10px; }
details pre { font-size: 12px; background: #f9fafb; border: 1px solid var(--line); padding: 8px; border-radius: 6px; max-height: 420px; overflow: auto; }
footer { color: var(--dim); font-size: 12px; }
"#;
