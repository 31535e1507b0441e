//! The samplers: which parameters trial `number` of a study runs with.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::dim::Dim;
use super::space::SearchSpace;
use super::tpe;

/// How a study proposes parameters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Tree-structured Parzen estimator (Optuna's default sampler): random for the first ten
    /// trials, then drawn where good trials were more likely than bad ones.
    #[default]
    Tpe,
    /// Independent uniform draws (log-uniform on a log scale).
    Random,
    /// Every point of a grid over the space, in a fixed order.
    Grid,
}

/// A finished trial as the sampler sees it: its parameters and its value, lower is better (the
/// caller negates a metric it maximises). A NaN value (a failed trial) is ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub params: Map<String, Value>,
    pub value: f64,
}

/// The parameters of trial `number` (0-based), given the finished trials in the order they were
/// started (`history`; TPE weights recent trials more).
///
/// Deterministic: the same (kind, space, history, seed, number) always gives the same parameters.
/// The random numbers come from a ChaCha8 generator seeded with `seed` on stream `number`, so
/// every trial has its own independent stream and a study resumed after a crash draws what an
/// uninterrupted one would have. Ints are JSON integers, floats JSON numbers, choices as given.
///
/// Grid: trial `number` is the number-th point of the cartesian product of each parameter's grid
/// values (the last parameter by name varies fastest); past [`grid_size`] it wraps around.
pub fn sample(
    kind: SamplerKind,
    space: &SearchSpace,
    history: &[Observation],
    seed: u64,
    number: u64,
) -> Map<String, Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(number);
    match kind {
        SamplerKind::Random => sample_random(space, &mut rng),
        SamplerKind::Grid => grid_point(space, number),
        SamplerKind::Tpe => {
            let finished: Vec<&Observation> =
                history.iter().filter(|o| !o.value.is_nan()).collect();
            if finished.len() < tpe::STARTUP_TRIALS {
                sample_random(space, &mut rng)
            } else {
                tpe::sample(space, &finished, &mut rng)
            }
        }
    }
}

/// Points in the grid sampler's grid (saturating at `u64::MAX`).
pub fn grid_size(space: &SearchSpace) -> u64 {
    grid_axes(space).iter().fold(1u64, |size, (_, values)| {
        size.saturating_mul(values.len() as u64)
    })
}

/// Independent draws, as Optuna's `RandomSampler`: uniform on the internal coordinate (so
/// log-uniform on a log scale), which for a grid is widened half a step each way and then rounded,
/// giving every step the same chance.
fn sample_random(space: &SearchSpace, rng: &mut ChaCha8Rng) -> Map<String, Value> {
    space
        .params
        .iter()
        .filter_map(|(name, distribution)| {
            let dim = Dim::of(distribution)?;
            Some((name.clone(), dim.to_json(draw_uniform(dim, rng))))
        })
        .collect()
}

/// One uniform draw of `dim`, as a value (numeric) or choice index.
pub(super) fn draw_uniform(dim: Dim<'_>, rng: &mut ChaCha8Rng) -> f64 {
    match dim {
        Dim::Numeric(numeric) if numeric.is_constant() => numeric.low,
        Dim::Numeric(numeric) => {
            let (low, high) = numeric.internal_bounds();
            numeric.value_at(low + (high - low) * rng.random::<f64>())
        }
        Dim::Choice(choices) => rng.random_range(0..choices.len()) as f64,
    }
}

/// Each parameter's grid values, in name order.
fn grid_axes(space: &SearchSpace) -> Vec<(&String, Vec<Value>)> {
    space
        .params
        .iter()
        .filter_map(|(name, distribution)| {
            let values = match Dim::of(distribution)? {
                Dim::Numeric(numeric) => numeric
                    .grid_values()
                    .into_iter()
                    .map(|v| numeric.to_json(v))
                    .collect(),
                Dim::Choice(choices) => choices.to_vec(),
            };
            Some((name, values))
        })
        .collect()
}

/// The number-th grid point: `number` written in the mixed radix of the axes' sizes.
fn grid_point(space: &SearchSpace, number: u64) -> Map<String, Value> {
    let axes = grid_axes(space);
    let size = grid_size(space);
    let mut rest = number % size.max(1);
    let mut point = Map::new();
    for (name, values) in axes.into_iter().rev() {
        let radix = values.len() as u64;
        point.insert(name.clone(), values[(rest % radix) as usize].clone());
        rest /= radix;
    }
    point
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn space(value: Value) -> SearchSpace {
        SearchSpace::from_json(&value).unwrap()
    }

    fn mixed() -> SearchSpace {
        space(json!({
            "depth": {"type": "int", "low": 2, "high": 16, "step": 3},
            "n": {"type": "int", "low": 1, "high": 1000, "log": true},
            "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": true},
            "frac": {"type": "float", "low": 0.1, "high": 0.9, "step": 0.2},
            "kind": ["a", "b", "c"],
        }))
    }

    /// A history of `n` trials with some made-up objective, so TPE is past its random start.
    fn history(space: &SearchSpace, n: u64) -> Vec<Observation> {
        (0..n)
            .map(|i| {
                let params = sample(SamplerKind::Random, space, &[], 99, i);
                let value = params["lr"].as_f64().unwrap().ln().abs()
                    + params["depth"].as_f64().unwrap() / 10.0;
                Observation { params, value }
            })
            .collect()
    }

    #[test]
    fn the_same_inputs_draw_the_same_parameters_and_another_seed_others() {
        let space = mixed();
        let history = history(&space, 30);
        for kind in [SamplerKind::Random, SamplerKind::Tpe] {
            for number in [0, 5, 30] {
                let once = sample(kind, &space, &history[..number as usize], 7, number);
                let again = sample(kind, &space, &history[..number as usize], 7, number);
                assert_eq!(once, again);
                let other = sample(kind, &space, &history[..number as usize], 8, number);
                assert_ne!(once, other, "{kind:?} trial {number}");
            }
            // Trials of one study differ from each other.
            assert_ne!(
                sample(kind, &space, &[], 7, 0),
                sample(kind, &space, &[], 7, 1)
            );
        }
    }

    #[test]
    fn values_are_in_bounds_on_the_step_and_of_the_right_type() {
        let space = mixed();
        let history = history(&space, 40);
        for kind in [SamplerKind::Random, SamplerKind::Tpe, SamplerKind::Grid] {
            for number in 0..200 {
                let p = sample(kind, &space, &history, 3, number);
                let depth = p["depth"].as_i64().expect("depth is an integer");
                assert!(
                    (2..=14).contains(&depth) && (depth - 2) % 3 == 0,
                    "depth {depth}"
                );
                let n = p["n"].as_i64().expect("n is an integer");
                assert!((1..=1000).contains(&n), "n {n}");
                let lr = p["lr"].as_f64().unwrap();
                assert!(p["lr"].is_f64() && (1e-4..=0.3).contains(&lr), "lr {lr}");
                let frac = p["frac"].as_f64().unwrap();
                let steps = (frac - 0.1) / 0.2;
                assert!((0.1..=0.9).contains(&frac) && (steps - steps.round()).abs() < 1e-9);
                assert!(["a", "b", "c"].contains(&p["kind"].as_str().unwrap()));
            }
        }
    }

    #[test]
    fn random_log_draws_cover_the_decades_evenly() {
        let space = space(json!({"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": true}}));
        let mut per_decade = [0u32; 4];
        for number in 0..4000 {
            let lr = sample(SamplerKind::Random, &space, &[], 1, number)["lr"]
                .as_f64()
                .unwrap();
            per_decade[((-lr.log10()).floor() as usize).min(3)] += 1;
        }
        assert!(
            per_decade.iter().all(|&c| (850..1150).contains(&c)),
            "{per_decade:?}"
        );
    }

    #[test]
    fn the_grid_enumerates_every_point_once_then_wraps() {
        let space = space(json!({
            "a": {"type": "int", "low": 0, "high": 2},
            "b": ["x", "y"],
            "c": {"type": "float", "low": 0, "high": 1},
        }));
        assert_eq!(grid_size(&space), 3 * 2 * 5);
        let points: Vec<Map<String, Value>> = (0..30)
            .map(|i| sample(SamplerKind::Grid, &space, &[], 0, i))
            .collect();
        let distinct: BTreeSet<String> = points
            .iter()
            .map(|p| Value::from(p.clone()).to_string())
            .collect();
        assert_eq!(distinct.len(), 30);
        assert_eq!(
            points[0],
            json!({"a": 0, "b": "x", "c": 0.0})
                .as_object()
                .unwrap()
                .clone()
        );
        // The last parameter varies fastest.
        assert_eq!(points[1]["c"], json!(0.25));
        assert_eq!(
            points[5],
            json!({"a": 0, "b": "y", "c": 0.0})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(sample(SamplerKind::Grid, &space, &[], 0, 30), points[0]);
        assert_eq!(sample(SamplerKind::Grid, &space, &[], 0, 31), points[1]);
    }

    #[test]
    fn a_huge_grid_saturates() {
        let params = (0..30)
            .map(|i| {
                (
                    format!("p{i}"),
                    json!({"type": "int", "low": 0, "high": 100}),
                )
            })
            .collect();
        let space = space(Value::Object(params));
        assert_eq!(grid_size(&space), u64::MAX);
        assert_eq!(sample(SamplerKind::Grid, &space, &[], 0, 12345).len(), 30);
    }

    #[test]
    fn constants_and_unchecked_spaces_do_not_panic() {
        let space = space(json!({"a": {"type": "int", "low": 3, "high": 3}, "b": ["only"]}));
        for kind in [SamplerKind::Random, SamplerKind::Tpe, SamplerKind::Grid] {
            let p = sample(kind, &space, &history_of(&space, 12), 0, 12);
            assert_eq!(Value::from(p), json!({"a": 3, "b": "only"}));
        }
        let broken = SearchSpace {
            params: [
                (
                    "e".to_string(),
                    super::super::Distribution::Categorical { choices: vec![] },
                ),
                (
                    "f".to_string(),
                    super::super::Distribution::Float {
                        low: f64::NAN,
                        high: 1.0,
                        log: true,
                        step: Some(0.0),
                    },
                ),
                (
                    "i".to_string(),
                    super::super::Distribution::Int {
                        low: 9,
                        high: 2,
                        log: true,
                        step: -1,
                    },
                ),
            ]
            .into(),
        };
        for kind in [SamplerKind::Random, SamplerKind::Tpe, SamplerKind::Grid] {
            sample(kind, &broken, &history_of(&broken, 12), 0, 12);
            grid_size(&broken);
        }
    }

    fn history_of(space: &SearchSpace, n: u64) -> Vec<Observation> {
        (0..n)
            .map(|i| Observation {
                params: sample(SamplerKind::Random, space, &[], 0, i),
                value: i as f64,
            })
            .collect()
    }
}
