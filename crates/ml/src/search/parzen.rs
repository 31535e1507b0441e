//! The Parzen estimator of TPE: a mixture of one kernel per observation and a wide prior, as
//! Optuna 5.1 builds it (`samplers/_tpe/parzen_estimator.py` and `probability_distributions.py`).
//! Kernels are products over the parameters, so one estimator models them jointly.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dim::{Dim, Numeric, clip};
use super::normal::{log_gauss_mass, norm_log_pdf, truncated_ppf};

/// Weight of the prior kernel, a wide Gaussian over the whole range (uniform over choices) that
/// keeps exploring (Optuna's `prior_weight`).
const PRIOR_WEIGHT: f64 = 1.0;
/// The most recent observations that get full weight (Optuna's `default_weights`).
const FULL_WEIGHT_RECENT: usize = 25;

/// Optuna's `default_weights`: every observation weighs 1 up to 25 of them; beyond that, older
/// ones ramp linearly from 1/n up to 1, so the search forgets its early, random trials.
fn observation_weights(n: usize) -> Vec<f64> {
    let ramp = n.saturating_sub(FULL_WEIGHT_RECENT);
    let start = 1.0 / n as f64;
    let mut weights: Vec<f64> = (0..ramp)
        .map(|i| match ramp {
            1 => start,
            _ => start + (1.0 - start) * i as f64 / (ramp - 1) as f64,
        })
        .collect();
    weights.resize(n, 1.0);
    weights
}

/// A mixture of product kernels, one kernel per observation plus the prior (last).
pub(super) struct Parzen {
    /// Mixture weights, summing to 1.
    weights: Vec<f64>,
    /// Per dim, its kernels.
    dims: Vec<Kernels>,
}

enum Kernels {
    /// Truncated Gaussians on the internal coordinate; on a grid, a kernel's probability of a
    /// value is its mass over that value's step.
    Numeric {
        numeric: Numeric,
        /// The internal coordinate's bounds, where the Gaussians are truncated.
        low: f64,
        high: f64,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// ln of each Gaussian's mass within [low, high], its truncation's normaliser.
        log_masses: Vec<f64>,
    },
    /// Per kernel, a probability per choice.
    Choice { probs: Vec<Vec<f64>> },
}

impl Parzen {
    pub(super) fn new(dims: &[Dim<'_>], points: &[Vec<f64>]) -> Self {
        let mut weights = observation_weights(points.len());
        weights.push(PRIOR_WEIGHT);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let dims = dims
            .iter()
            .enumerate()
            .map(|(d, dim)| {
                let values: Vec<f64> = points.iter().map(|p| p[d]).collect();
                match *dim {
                    Dim::Numeric(numeric) => Kernels::numeric(numeric, &values),
                    Dim::Choice(choices) => Kernels::choice(choices.len(), &values),
                }
            })
            .collect();
        Parzen { weights, dims }
    }

    pub(super) fn sample(&self, rng: &mut ChaCha8Rng, count: usize) -> Vec<Vec<f64>> {
        (0..count)
            .map(|_| {
                let kernel = pick(&self.weights, rng.random());
                self.dims.iter().map(|d| d.draw(kernel, rng)).collect()
            })
            .collect()
    }

    /// ln of the mixture's density (probability, on a grid) at `point`.
    pub(super) fn log_pdf(&self, point: &[f64]) -> f64 {
        let terms: Vec<f64> = self
            .weights
            .iter()
            .enumerate()
            .map(|(k, w)| {
                let dims: f64 = self
                    .dims
                    .iter()
                    .zip(point)
                    .map(|(d, &x)| d.log_pdf(k, x))
                    .sum();
                w.ln() + dims
            })
            .collect();
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return max;
        }
        max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    }
}

impl Kernels {
    /// Optuna's `_calculate_numerical_distributions`: a Gaussian at each observation whose sigma
    /// is the larger gap to its neighbours (the bounds count as neighbours, except that the
    /// outermost observations use their inner gap: `consider_endpoints=False`), clipped to
    /// [range / min(100, kernels + 1), range] (the "magic clip", which stops a cluster of
    /// observations from collapsing its kernels), and the prior: mean at the centre, sigma the
    /// whole range.
    fn numeric(numeric: Numeric, values: &[f64]) -> Kernels {
        let (low, high) = numeric.internal_bounds();
        let mut mus: Vec<f64> = values.iter().map(|&v| numeric.to_internal(v)).collect();
        let n = mus.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| mus[i].total_cmp(&mus[j]));
        let sorted: Vec<f64> = std::iter::once(low)
            .chain(order.iter().map(|&i| mus[i]))
            .chain(std::iter::once(high))
            .collect();
        let mut gaps: Vec<f64> = (1..=n)
            .map(|k| (sorted[k] - sorted[k - 1]).max(sorted[k + 1] - sorted[k]))
            .collect();
        if n >= 2 {
            gaps[0] = sorted[2] - sorted[1];
            gaps[n - 1] = sorted[n] - sorted[n - 1];
        }
        let range = high - low;
        let min_sigma = range / 100f64.min(1.0 + (n + 1) as f64);
        let mut sigmas = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            sigmas[i] = clip(gaps[rank], min_sigma, range);
        }
        mus.push(0.5 * (low + high));
        sigmas.push(range);
        let log_masses = mus
            .iter()
            .zip(&sigmas)
            .map(|(mu, sigma)| log_gauss_mass((low - mu) / sigma, (high - mu) / sigma))
            .collect();
        Kernels::Numeric {
            numeric,
            low,
            high,
            mus,
            sigmas,
            log_masses,
        }
    }

    /// Optuna's `_calculate_categorical_distributions`: each observation's kernel puts 1 on its
    /// choice plus prior_weight / kernels on every choice, normalised; the prior kernel is
    /// uniform.
    fn choice(n_choices: usize, values: &[f64]) -> Kernels {
        let kernels = values.len() + 1;
        let mut probs = vec![vec![PRIOR_WEIGHT / kernels as f64; n_choices]; kernels];
        for (row, &choice) in probs.iter_mut().zip(values) {
            if let Some(p) = row.get_mut(choice as usize) {
                *p += 1.0;
            }
        }
        for row in &mut probs {
            let total: f64 = row.iter().sum();
            row.iter_mut().for_each(|p| *p /= total);
        }
        Kernels::Choice { probs }
    }

    fn draw(&self, kernel: usize, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Kernels::Numeric {
                numeric,
                low,
                high,
                mus,
                sigmas,
                ..
            } => {
                let (mu, sigma) = (mus[kernel], sigmas[kernel]);
                let z = truncated_ppf(rng.random(), (low - mu) / sigma, (high - mu) / sigma);
                numeric.value_at(z * sigma + mu)
            }
            Kernels::Choice { probs } => pick(&probs[kernel], rng.random()) as f64,
        }
    }

    fn log_pdf(&self, kernel: usize, x: f64) -> f64 {
        match self {
            Kernels::Numeric {
                numeric,
                low,
                high,
                mus,
                sigmas,
                log_masses,
            } => {
                let (mu, sigma) = (mus[kernel], sigmas[kernel]);
                match numeric.step {
                    Some(step) => {
                        let left = numeric.to_internal(x - step / 2.0);
                        let right = numeric.to_internal(x + step / 2.0);
                        log_gauss_mass((left - mu) / sigma, (right - mu) / sigma)
                            - log_masses[kernel]
                    }
                    None => {
                        let t = numeric.to_internal(x);
                        if t < *low || t > *high {
                            return f64::NEG_INFINITY;
                        }
                        norm_log_pdf((t - mu) / sigma) - sigma.ln() - log_masses[kernel]
                    }
                }
            }
            Kernels::Choice { probs } => probs[kernel]
                .get(x as usize)
                .map_or(f64::NEG_INFINITY, |p| p.ln()),
        }
    }
}

/// The index whose cumulative weight first exceeds `u` in [0, 1) (the last if rounding leaves
/// the total short of `u`).
fn pick(weights: &[f64], u: f64) -> usize {
    let mut cumulative = 0.0;
    for (i, w) in weights.iter().enumerate() {
        cumulative += w;
        if cumulative > u {
            return i;
        }
    }
    weights.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::search::Distribution;

    #[track_caller]
    fn close(ours: &[f64], optuna: &[f64]) {
        assert_eq!(ours.len(), optuna.len(), "ours {ours:?}, Optuna {optuna:?}");
        for (a, b) in ours.iter().zip(optuna) {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "ours {ours:?}, Optuna {optuna:?}"
            );
        }
    }

    /// The estimator's kernels and density against Optuna 5.1's `_ParzenEstimator` on the same
    /// observations (values printed from Python).
    #[track_caller]
    fn matches_optuna(
        distribution: Value,
        values: &[f64],
        x: f64,
        optuna_kernels: (&[f64], &[f64]),
        optuna_log_pdf: f64,
    ) {
        let distribution: Distribution = serde_json::from_value(distribution).unwrap();
        let dim = Dim::of(&distribution).unwrap();
        let points: Vec<Vec<f64>> = values.iter().map(|&v| vec![v]).collect();
        let parzen = Parzen::new(&[dim], &points);
        match &parzen.dims[0] {
            Kernels::Numeric { mus, sigmas, .. } => {
                close(mus, optuna_kernels.0);
                close(sigmas, optuna_kernels.1);
            }
            Kernels::Choice { probs } => close(&probs.concat(), optuna_kernels.0),
        }
        close(&[parzen.log_pdf(&[x])], &[optuna_log_pdf]);
    }

    #[test]
    fn the_parzen_estimator_matches_optunas() {
        matches_optuna(
            json!({"type": "float", "low": 0, "high": 10}),
            &[1.0, 2.0, 2.5, 9.0],
            3.0,
            (
                &[1.0, 2.0, 2.5, 9.0, 5.0],
                &[1.6666666666666667, 1.6666666666666667, 6.5, 6.5, 10.0],
            ),
            -1.9820943987950483,
        );
        matches_optuna(
            json!({"type": "float", "low": 1e-3, "high": 1.0, "log": true}),
            &[0.01, 0.002, 0.5],
            0.05,
            (
                &[
                    -4.605170185988091,
                    -6.214608098422191,
                    0.5f64.ln(),
                    -3.4538776394910684,
                ],
                &[
                    3.9120230054281455,
                    1.6094379124341005,
                    3.9120230054281455,
                    6.907755278982137,
                ],
            ),
            -2.034201217271412,
        );
        matches_optuna(
            json!({"type": "int", "low": 1, "high": 100, "log": true}),
            &[2.0, 50.0, 7.0],
            10.0,
            (
                &[
                    2f64.ln(),
                    3.912023005428146,
                    1.9459101490553132,
                    1.9585052734695925,
                ],
                &[
                    1.252762968495368,
                    1.9661128563728327,
                    1.9661128563728327,
                    5.303304908059076,
                ],
            ),
            -3.873391450182406,
        );
        matches_optuna(
            json!({"type": "int", "low": 0, "high": 10, "step": 2}),
            &[4.0, 4.0, 8.0],
            6.0,
            (&[4.0, 4.0, 8.0, 5.0], &[2.4, 4.0, 4.0, 12.0]),
            -1.5553910291251758,
        );
        let (big, small) = (0.7142857142857143, 0.14285714285714285);
        let third = 1.0 / 3.0;
        matches_optuna(
            json!({"type": "categorical", "choices": ["a", "b", "c"]}),
            &[0.0, 2.0, 2.0],
            2.0,
            (
                &[
                    big, small, small, small, small, big, small, small, big, third, third, third,
                ],
                &[],
            ),
            -0.7419373447293772,
        );
    }

    #[test]
    fn older_observations_weigh_less_past_twenty_five() {
        assert_eq!(observation_weights(3), [1.0; 3]);
        assert_eq!(observation_weights(25), [1.0; 25]);
        assert_eq!(observation_weights(26)[0], 1.0 / 26.0);
        // Optuna's default_weights(30).
        close(
            &observation_weights(30)[..6],
            &[
                0.03333333333333333,
                0.275,
                0.5166666666666667,
                0.7583333333333333,
                1.0,
                1.0,
            ],
        );
    }
}
