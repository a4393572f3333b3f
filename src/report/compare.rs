//! `gfi report --compare A.json B.json`: where two runs differ, stage by stage (which stages
//! were reached and how often, p50/p95/max side by side). Typically a real cluster's run
//! against the simulator's prediction of the same plan and seed: it says whether the cluster
//! behaves as its NVSentinel configuration says it should.

use super::model::Run;
use super::stage::Stage;
use super::stats::{StageStats, stage_stats};
use super::text::{columns, secs};

/// How far apart two p50s must be (as a ratio) to be called a difference: below that, run to
/// run noise of a real cluster.
const RATIO: f64 = 1.25;
/// ... and by at least this many seconds (a 0.2s stage twice as slow is still instant).
const MIN_GAP: f64 = 1.0;

/// What differs about one stage, in words; `None` when the two agree.
pub fn difference(
    a: Option<&StageStats>,
    b: Option<&StageStats>,
    na: usize,
    nb: usize,
) -> Option<String> {
    match (a, b) {
        (None, None) => None,
        (Some(_), None) => Some("only in A".into()),
        (None, Some(_)) => Some("only in B".into()),
        (Some(a), Some(b)) => {
            let mut out = Vec::new();
            // Compare shares, so runs of different sizes compare.
            let (fa, fb) = (
                a.count as f64 / na.max(1) as f64,
                b.count as f64 / nb.max(1) as f64,
            );
            if (fa - fb).abs() > 1e-9 {
                out.push(format!("reached {}/{na} vs {}/{nb}", a.count, b.count));
            }
            let (lo, hi) = (a.p50.min(b.p50), a.p50.max(b.p50));
            if hi - lo >= MIN_GAP && hi >= lo * RATIO {
                let ratio = if lo > 0.0 { hi / lo } else { f64::INFINITY };
                let which = if b.p50 > a.p50 { "B" } else { "A" };
                out.push(if ratio.is_finite() {
                    format!("{which} slower (p50 x{ratio:.1})")
                } else {
                    format!("{which} slower (p50)")
                });
            }
            (!out.is_empty()).then(|| out.join("; "))
        }
    }
}

fn describe(label: &str, r: &Run) -> String {
    let h = &r.header;
    format!(
        "{label}: {} on {}, seed {}, {} injection{}, {} ({} failure{})",
        h.script,
        h.target.description,
        h.seed,
        r.injections.len(),
        if r.injections.len() == 1 { "" } else { "s" },
        r.verdict(),
        r.failures.len(),
        if r.failures.len() == 1 { "" } else { "s" },
    )
}

pub fn render(a: &Run, b: &Run) -> String {
    let mut out = format!("{}\n{}\n", describe("A", a), describe("B", b));
    if a.header.script_sha256.is_some()
        && b.header.script_sha256.is_some()
        && a.header.script_sha256 != b.header.script_sha256
    {
        out.push_str("note: the scripts differ (their sha256 do), so the plans may too\n");
    }
    if a.header.seed != b.header.seed {
        out.push_str("note: the seeds differ, so randomized plans chose differently\n");
    }
    if !a.header.nvsentinel.is_null()
        && !b.header.nvsentinel.is_null()
        && a.header.nvsentinel != b.header.nvsentinel
    {
        out.push_str("note: the NVSentinel configurations the runs assumed differ\n");
    }
    if a.header.args != b.header.args {
        out.push_str("note: the script arguments differ\n");
    }
    out.push('\n');
    let (sa, sb) = (stage_stats(a), stage_stats(b));
    let (na, nb) = (a.injections.len(), b.injections.len());
    let find = |v: &[StageStats], s: Stage| v.iter().find(|x| x.stage == s).cloned();
    let cell = |s: &Option<StageStats>, f: fn(&StageStats) -> f64| {
        s.as_ref().map(|s| secs(f(s))).unwrap_or_else(|| "-".into())
    };
    let mut rows = vec![
        [
            "stage (since the injection)",
            "A reached",
            "B reached",
            "A p50",
            "B p50",
            "A p95",
            "B p95",
            "A max",
            "B max",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    let mut notes = vec![String::new()];
    for stage in Stage::ALL {
        let (x, y) = (find(&sa, stage), find(&sb, stage));
        if x.is_none() && y.is_none() {
            continue;
        }
        let diff = difference(x.as_ref(), y.as_ref(), na, nb);
        notes.push(diff.map(|d| format!("  <- {d}")).unwrap_or_default());
        rows.push(vec![
            stage.label().to_string(),
            format!("{}/{na}", x.as_ref().map_or(0, |s| s.count)),
            format!("{}/{nb}", y.as_ref().map_or(0, |s| s.count)),
            cell(&x, |s| s.p50),
            cell(&y, |s| s.p50),
            cell(&x, |s| s.p95),
            cell(&y, |s| s.p95),
            cell(&x, |s| s.max),
            cell(&y, |s| s.max),
        ]);
    }
    if rows.len() == 1 {
        out.push_str("neither run reached any stage\n");
        return out;
    }
    for (line, note) in columns(&rows).lines().zip(&notes) {
        out.push_str(line);
        out.push_str(note);
        out.push('\n');
    }
    let differing = notes.iter().filter(|n| !n.is_empty()).count();
    out.push_str(&match differing {
        0 => "\nthe runs agree stage by stage\n".to_string(),
        n => format!(
            "\n{n} stage{} differ{}\n",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" }
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(count: usize, p50: f64) -> StageStats {
        StageStats {
            stage: Stage::Cordoned,
            count,
            p50,
            p95: p50,
            max: p50,
            values: vec![p50; count],
        }
    }

    #[test]
    fn differences_are_named() {
        assert_eq!(
            difference(Some(&st(3, 9.0)), Some(&st(3, 10.0)), 3, 3),
            None
        );
        assert_eq!(
            difference(Some(&st(3, 9.0)), Some(&st(3, 30.0)), 3, 3).as_deref(),
            Some("B slower (p50 x3.3)")
        );
        assert_eq!(
            difference(Some(&st(3, 9.0)), Some(&st(2, 9.0)), 3, 3).as_deref(),
            Some("reached 3/3 vs 2/3")
        );
        assert_eq!(
            difference(Some(&st(3, 9.0)), None, 3, 3).as_deref(),
            Some("only in A")
        );
        // Twice as slow but by 0.2s: noise.
        assert_eq!(difference(Some(&st(1, 0.2)), Some(&st(1, 0.4)), 1, 1), None);
    }
}
