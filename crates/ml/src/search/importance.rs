//! Which parameters mattered: each parameter's share of the objective's variation across trials.
//!
//! Optuna's default evaluator is fANOVA (a random forest, then a functional ANOVA decomposition
//! of it). This is the simpler stand-in Optuna also ships as `MeanDecreaseImpurityImportance
//! Evaluator`: the same kind of forest (64 trees, depth at most 64, every feature at every
//! split) fitted from parameters to objective values, and its impurity-based importances, i.e.
//! how much each parameter's splits reduce the variance of the objective. It ranks parameters the
//! same way in the common cases, and it needs no more than the forest this crate already has.

use std::sync::atomic::AtomicBool;

use crate::forest::{FitHooks, Forest, ForestParams, MaxFeatures, Targets};
use crate::matrix::Matrix;

use super::dim::Dim;
use super::sampler::Observation;
use super::space::SearchSpace;

/// Below this many usable trials a forest would only fit noise; every parameter gets an equal
/// share instead.
const MIN_TRIALS: usize = 4;

/// Each parameter's share of the variation of the objective, as (name, importance) pairs summing
/// to 1, largest first (ties by name). Parameters are log-transformed on a log scale and
/// categoricals are their choice's index. Trials with a NaN or infinite value, or without a valid
/// value for every parameter, are left out. With fewer than 4 trials left, or an objective that
/// never varies, every parameter gets an equal share; a single parameter gets 1.
pub fn parameter_importance(space: &SearchSpace, history: &[Observation]) -> Vec<(String, f64)> {
    let names: Vec<&String> = space.params.keys().collect();
    let equal = || {
        let share = 1.0 / names.len() as f64;
        names.iter().map(|n| (n.to_string(), share)).collect()
    };
    if names.len() <= 1 {
        return equal();
    }
    let Some(dims) = space
        .params
        .values()
        .map(Dim::of)
        .collect::<Option<Vec<Dim<'_>>>>()
    else {
        return equal();
    };
    let rows: Vec<(Vec<f64>, f64)> = history
        .iter()
        .filter(|o| o.value.is_finite())
        .filter_map(|o| {
            let features = names
                .iter()
                .zip(&dims)
                .map(|(name, dim)| {
                    let x = dim.read(o.params.get(*name)?)?;
                    Some(match dim {
                        Dim::Numeric(numeric) => numeric.to_internal(x),
                        Dim::Choice(_) => x,
                    })
                })
                .collect::<Option<Vec<f64>>>()?;
            Some((features, o.value))
        })
        .collect();
    if rows.len() < MIN_TRIALS {
        return equal();
    }
    let Some(importances) = forest_importances(&rows, names.len()) else {
        return equal();
    };
    let mut shares: Vec<(String, f64)> = names
        .iter()
        .map(|n| n.to_string())
        .zip(importances)
        .collect();
    // Stable: equal shares stay in name order.
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    shares
}

/// The forest's impurity importances, normalised; `None` when no split reduced anything (the
/// objective is constant).
fn forest_importances(rows: &[(Vec<f64>, f64)], cols: usize) -> Option<Vec<f64>> {
    // The matrix is column-major.
    let data = (0..cols)
        .flat_map(|c| rows.iter().map(move |(features, _)| features[c]))
        .collect();
    let x = Matrix {
        rows: rows.len(),
        cols,
        data,
    };
    let y: Vec<f64> = rows.iter().map(|(_, value)| *value).collect();
    // Optuna's forest for importances: sklearn's RandomForestRegressor(n_estimators=64,
    // max_depth=64) with its defaults otherwise (bootstrap, every feature, leaves of 1).
    let params = ForestParams {
        n_estimators: 64,
        max_depth: Some(64),
        min_samples_split: 2,
        min_samples_leaf: 1,
        max_features: MaxFeatures::All,
        bootstrap: true,
        max_bins: 256,
        seed: 0,
    };
    let never_cancelled = AtomicBool::new(false);
    let hooks = FitHooks {
        cancelled: &never_cancelled,
        on_tree: &|_, _| {},
    };
    let (forest, _) = Forest::fit(&x, Targets::Values(&y), &params, &hooks).ok()?;
    let total: f64 = forest.feature_importances.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| {
        forest
            .feature_importances
            .iter()
            .map(|v| v / total)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use serde_json::json;

    use super::*;

    fn space() -> SearchSpace {
        SearchSpace::from_json(&json!({
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": true},
            "noise": {"type": "float", "low": 0, "high": 1},
            "kind": ["a", "b", "c"],
        }))
        .unwrap()
    }

    fn trials(n: usize, objective: impl Fn(f64, f64, usize) -> f64) -> Vec<Observation> {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        (0..n)
            .map(|_| {
                let lr = 10f64.powf(rng.random_range(-4.0..0.0));
                let noise = rng.random::<f64>();
                let kind = rng.random_range(0..3usize);
                let choice = ["a", "b", "c"][kind];
                Observation {
                    params: json!({"lr": lr, "noise": noise, "kind": choice})
                        .as_object()
                        .unwrap()
                        .clone(),
                    value: objective(lr, noise, kind),
                }
            })
            .collect()
    }

    #[test]
    fn the_parameter_that_drives_the_objective_comes_first() {
        let history = trials(80, |lr, noise, kind| {
            (lr.log10() + 2.0).powi(2) + 0.05 * noise + 0.1 * kind as f64
        });
        let shares = parameter_importance(&space(), &history);
        let total: f64 = shares.iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9, "{shares:?}");
        assert_eq!(shares[0].0, "lr", "{shares:?}");
        assert!(shares[0].1 > 0.7, "{shares:?}");

        let history = trials(80, |_, _, kind| [0.0, 5.0, 1.0][kind]);
        assert_eq!(parameter_importance(&space(), &history)[0].0, "kind");
    }

    #[test]
    fn too_few_trials_or_a_flat_objective_give_equal_shares() {
        let equal = vec![
            ("kind".to_string(), 1.0 / 3.0),
            ("lr".to_string(), 1.0 / 3.0),
            ("noise".to_string(), 1.0 / 3.0),
        ];
        assert_eq!(
            parameter_importance(&space(), &trials(3, |lr, _, _| lr)),
            equal
        );
        assert_eq!(
            parameter_importance(&space(), &trials(50, |_, _, _| 1.0)),
            equal
        );
        // Broken values are left out, leaving too few.
        let mut history = trials(6, |lr, _, _| lr);
        history[..3].iter_mut().for_each(|o| o.value = f64::NAN);
        history[3].params.remove("lr");
        assert_eq!(parameter_importance(&space(), &history), equal);
        assert!(parameter_importance(&space(), &[]).len() == 3);
    }

    #[test]
    fn a_single_parameter_has_all_the_importance() {
        let space = SearchSpace::from_json(&json!({"x": [1, 2]})).unwrap();
        assert_eq!(parameter_importance(&space, &[]), [("x".to_string(), 1.0)]);
    }
}
