//! Pruners: whether a trial that is doing badly part-way (say, after some cross-validation folds)
//! should stop, so its time goes to trials that may win.

use serde::{Deserialize, Serialize};

/// How a study stops unpromising trials early.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum PrunerKind {
    /// Every trial runs to the end.
    #[default]
    None,
    /// Stop a trial worse than the median of the others at the same step (Optuna's
    /// `MedianPruner` with its defaults).
    Median,
    /// Successive halving (reduction factor 3, minimum resource 1): at steps 1, 3, 9, … only the
    /// best third carry on.
    SuccessiveHalving,
}

/// Others that must have reported at a step before the median pruner judges anyone there
/// (Optuna's `MedianPruner(n_startup_trials=5)`): a median of fewer is mostly noise.
const MEDIAN_MIN_OTHERS: usize = 5;
/// Successive halving keeps the best 1/REDUCTION_FACTOR at each rung, and rungs are at steps
/// 1, 3, 9, … (minimum resource 1 times powers of the factor).
const REDUCTION_FACTOR: u32 = 3;
/// Others that must have reached a rung before successive halving prunes there: with fewer,
/// "the best third" is one trial and would prune nearly everyone.
const HALVING_MIN_OTHERS: usize = 3;

/// Whether a trial whose value at `step` (e.g. folds done so far) is `value` (lower is better)
/// should stop, given the values other finished or running trials reported at the same step.
/// A NaN value (a broken trial) is pruned wherever the pruner may prune; NaN among the others is
/// ignored.
pub fn should_prune(kind: PrunerKind, step: u32, value: f64, others: &[f64]) -> bool {
    let mut others: Vec<f64> = others.iter().copied().filter(|v| !v.is_nan()).collect();
    match kind {
        PrunerKind::None => false,
        PrunerKind::Median => {
            // n_warmup_steps = 0: any step may prune.
            if others.len() < MEDIAN_MIN_OTHERS {
                return false;
            }
            value.is_nan() || value > median(&mut others)
        }
        PrunerKind::SuccessiveHalving => {
            if !is_rung(step) || others.len() < HALVING_MIN_OTHERS {
                return false;
            }
            if value.is_nan() {
                return true;
            }
            // Kept when within the best ceil(n / 3) of the n = others + this; a tie with the
            // last kept value is kept.
            let keep = (others.len() + 1).div_ceil(REDUCTION_FACTOR as usize);
            let better = others.iter().filter(|&&v| v < value).count();
            better >= keep
        }
    }
}

/// The median, halfway between the middle two of an even count (`np.percentile(…, 50)`).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Steps 1, 3, 9, 27, …
fn is_rung(step: u32) -> bool {
    let mut rung = 1u64;
    while rung < u64::from(step) {
        rung *= u64::from(REDUCTION_FACTOR);
    }
    rung == u64::from(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_never_prunes() {
        assert!(!should_prune(PrunerKind::None, 3, 1e9, &[0.0; 10]));
    }

    #[test]
    fn median_prunes_worse_than_the_median_once_five_others_reported() {
        let others = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!(should_prune(PrunerKind::Median, 1, 3.5, &others));
        assert!(
            !should_prune(PrunerKind::Median, 1, 3.0, &others),
            "equal to the median"
        );
        assert!(!should_prune(PrunerKind::Median, 1, 0.5, &others));
        // Even count: the median is halfway between the middle two (3.5 here).
        let six = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert!(!should_prune(PrunerKind::Median, 2, 3.5, &six));
        assert!(should_prune(PrunerKind::Median, 2, 3.6, &six));
        // Four others (a NaN does not count): too few to judge.
        assert!(!should_prune(
            PrunerKind::Median,
            1,
            100.0,
            &[1.0, 2.0, 3.0, 4.0, f64::NAN]
        ));
        assert!(should_prune(PrunerKind::Median, 1, f64::NAN, &others));
    }

    #[test]
    fn successive_halving_keeps_the_best_third_at_rungs_only() {
        let others = [1.0, 2.0, 3.0, 4.0, 5.0];
        // n = 6, keep the best 2: values 1 and 2 (or anything better than 2).
        assert!(!should_prune(
            PrunerKind::SuccessiveHalving,
            1,
            1.5,
            &others
        ));
        assert!(
            !should_prune(PrunerKind::SuccessiveHalving, 3, 2.0, &others),
            "ties kept"
        );
        assert!(should_prune(PrunerKind::SuccessiveHalving, 9, 2.5, &others));
        // Not a rung: never pruned.
        for step in [0, 2, 4, 5, 8, 10, 26] {
            assert!(!should_prune(
                PrunerKind::SuccessiveHalving,
                step,
                99.0,
                &others
            ));
        }
        assert!(should_prune(
            PrunerKind::SuccessiveHalving,
            27,
            99.0,
            &others
        ));
        // Fewer than three others: never pruned.
        assert!(!should_prune(
            PrunerKind::SuccessiveHalving,
            1,
            99.0,
            &[1.0, 2.0]
        ));
        // n = 4 keeps ceil(4/3) = 2.
        assert!(!should_prune(
            PrunerKind::SuccessiveHalving,
            1,
            1.5,
            &[1.0, 2.0, 3.0]
        ));
        assert!(should_prune(
            PrunerKind::SuccessiveHalving,
            1,
            2.5,
            &[1.0, 2.0, 3.0]
        ));
    }

    #[test]
    fn rungs_are_powers_of_three() {
        let rungs: Vec<u32> = (0..100).filter(|&s| is_rung(s)).collect();
        assert_eq!(rungs, [1, 3, 9, 27, 81]);
        assert!(!is_rung(u32::MAX));
    }
}
