//! Stage statistics: for each stage, how many injections reached it and the percentiles of
//! the time from the injection to it.

use super::model::Run;
use super::stage::Stage;

#[derive(Debug, Clone, PartialEq)]
pub struct StageStats {
    pub stage: Stage,
    /// Injections that reached it.
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    /// Every value, sorted (the HTML page draws them).
    pub values: Vec<f64>,
}

/// The p-th percentile (0-100) of sorted values, nearest rank (as the Lua `report` module).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// One row per stage that any injection reached, in stage order.
pub fn stage_stats(run: &Run) -> Vec<StageStats> {
    Stage::ALL
        .into_iter()
        .filter_map(|stage| {
            let mut values: Vec<f64> = run
                .injections
                .iter()
                .filter_map(|i| i.reached(stage))
                .collect();
            values.sort_by(f64::total_cmp);
            Some(StageStats {
                stage,
                count: values.len(),
                p50: percentile(&values, 50.0)?,
                p95: percentile(&values, 95.0)?,
                max: *values.last()?,
                values,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&v, 100.0), Some(20.0));
        assert_eq!(percentile(&[3.0], 95.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
