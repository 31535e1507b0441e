//! Observation and reward normalisation, as Stable-Baselines3's `VecNormalize` does it.
//!
//! Why: some environments' observations have very different scales. MountainCar's position
//! spans 1.8 but its velocity only 0.14, so an unnormalised network barely sees the velocity,
//! the very thing that says when to push; rl-baselines3-zoo's tuned PPO and A2C settings for it
//! (`normalize: true`) rely on normalising. With [`super::RlConfig::normalize_observations`]
//! each observation is shifted by the running mean of the training observations so far,
//! divided by their running standard deviation (plus [`EPSILON`]) and clipped to
//! ±[`CLIP_OBSERVATIONS`] before any network sees it. Only training observations update the
//! statistics; evaluations and the saved [`super::Policy`] use a frozen copy
//! ([`ObservationNormalizer`]), so a policy acts the same wherever it is loaded.
//!
//! [`super::RlConfig::normalize_rewards`] likewise divides each reward by the running standard
//! deviation of the discounted return (not the reward itself, as SB3 does; the mean is not
//! subtracted, so the reward keeps its sign), clipped to ±[`CLIP_REWARDS`]. It only shapes the
//! training targets and is not saved.

/// Added to the variance before dividing by its square root (SB3's `epsilon`).
pub(crate) const EPSILON: f64 = 1e-8;
/// Normalised observations are clipped to ±this (SB3's `clip_obs`).
pub(crate) const CLIP_OBSERVATIONS: f32 = 10.0;
/// Normalised rewards are clipped to ±this (SB3's `clip_reward`).
const CLIP_REWARDS: f64 = 10.0;

/// Running mean and population variance of vectors: Welford's update one vector at a time,
/// and Chan et al.'s parallel update to merge two sets of statistics (SB3's `RunningMeanStd`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunningStats {
    count: f64,
    mean: Vec<f64>,
    /// Unit before any data, so an unused normaliser passes values through.
    var: Vec<f64>,
}

impl RunningStats {
    pub(crate) fn new(size: usize) -> RunningStats {
        RunningStats {
            count: 0.0,
            mean: vec![0.0; size],
            var: vec![1.0; size],
        }
    }

    pub(crate) fn update(&mut self, x: &[f32]) {
        debug_assert_eq!(x.len(), self.mean.len());
        let (old, count) = (self.count, self.count + 1.0);
        for ((mean, var), &x) in self.mean.iter_mut().zip(&mut self.var).zip(x) {
            let x = f64::from(x);
            let delta = x - *mean;
            *mean += delta / count;
            *var = (*var * old + delta * (x - *mean)) / count;
        }
        self.count = count;
    }

    /// Adds the statistics of other data.
    pub(crate) fn merge(&mut self, other: &RunningStats) {
        if other.count == 0.0 {
            return;
        }
        let (a, b) = (self.count, other.count);
        let total = a + b;
        for (((mean, var), &other_mean), &other_var) in self
            .mean
            .iter_mut()
            .zip(&mut self.var)
            .zip(&other.mean)
            .zip(&other.var)
        {
            let delta = other_mean - *mean;
            *mean += delta * b / total;
            *var = (*var * a + other_var * b + delta * delta * a * b / total) / total;
        }
        self.count = total;
    }

    fn scale(&self, i: usize) -> f64 {
        (self.var[i] + EPSILON).sqrt()
    }
}

/// The observation normalisation a trainer applies: running statistics when enabled, nothing
/// otherwise.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObservationFilter {
    stats: Option<RunningStats>,
}

impl ObservationFilter {
    pub(crate) fn new(enabled: bool, size: usize) -> ObservationFilter {
        ObservationFilter {
            stats: enabled.then(|| RunningStats::new(size)),
        }
    }

    /// Counts a training observation in the statistics and returns it normalised.
    pub(crate) fn observe(&mut self, observation: Vec<f32>) -> Vec<f32> {
        self.update(&observation);
        self.apply(observation)
    }

    /// Counts a training observation in the statistics.
    pub(crate) fn update(&mut self, observation: &[f32]) {
        if let Some(stats) = &mut self.stats {
            stats.update(observation);
        }
    }

    /// Normalises an observation without counting it.
    pub(crate) fn apply(&self, mut observation: Vec<f32>) -> Vec<f32> {
        if let Some(stats) = &self.stats {
            for (i, x) in observation.iter_mut().enumerate() {
                let z = (f64::from(*x) - stats.mean[i]) / stats.scale(i);
                *x = (z as f32).clamp(-CLIP_OBSERVATIONS, CLIP_OBSERVATIONS);
            }
        }
        observation
    }

    /// Adds the statistics another filter gathered (A3C's workers into the shared filter).
    pub(crate) fn merge(&mut self, other: &ObservationFilter) {
        if let (Some(stats), Some(other)) = (&mut self.stats, &other.stats) {
            stats.merge(other);
        }
    }

    /// Forgets all statistics (after handing them on with [`ObservationFilter::merge`]).
    pub(crate) fn clear(&mut self) {
        if let Some(stats) = &mut self.stats {
            *stats = RunningStats::new(stats.mean.len());
        }
    }

    /// A frozen copy of the current statistics, for evaluation and saving.
    pub(crate) fn frozen(&self) -> Option<ObservationNormalizer> {
        self.stats.as_ref().map(|stats| ObservationNormalizer {
            mean: stats.mean.iter().map(|&m| m as f32).collect(),
            var: stats.var.iter().map(|&v| v as f32).collect(),
            clip: CLIP_OBSERVATIONS,
            epsilon: EPSILON,
        })
    }
}

/// Frozen observation statistics: what a [`super::Policy`] applies before its network.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObservationNormalizer {
    pub(crate) mean: Vec<f32>,
    pub(crate) var: Vec<f32>,
    pub(crate) clip: f32,
    pub(crate) epsilon: f64,
}

impl ObservationNormalizer {
    pub(crate) fn apply(&self, observation: &[f32]) -> Vec<f32> {
        observation
            .iter()
            .zip(&self.mean)
            .zip(&self.var)
            .map(|((&x, &mean), &var)| {
                let z = (f64::from(x) - f64::from(mean)) / (f64::from(var) + self.epsilon).sqrt();
                (z as f32).clamp(-self.clip, self.clip)
            })
            .collect()
    }
}

/// Reward scaling by the running standard deviation of each environment's discounted return.
#[derive(Debug, Clone)]
pub(crate) struct RewardScaler {
    stats: Option<RunningStats>,
    gamma: f64,
    /// The discounted return so far of each environment's current episode.
    returns: Vec<f64>,
}

impl RewardScaler {
    pub(crate) fn new(enabled: bool, gamma: f64, environments: usize) -> RewardScaler {
        RewardScaler {
            stats: enabled.then(|| RunningStats::new(1)),
            gamma,
            returns: vec![0.0; environments],
        }
    }

    /// The reward environment `env` just gave, scaled; `done` ends its episode.
    pub(crate) fn scale(&mut self, env: usize, reward: f32, done: bool) -> f32 {
        let Some(stats) = &mut self.stats else {
            return reward;
        };
        let ret = self.returns[env] * self.gamma + f64::from(reward);
        stats.update(&[ret as f32]);
        self.returns[env] = if done { 0.0 } else { ret };
        (f64::from(reward) / stats.scale(0)).clamp(-CLIP_REWARDS, CLIP_REWARDS) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn samples(n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                vec![
                    rng.random_range(-1.2..0.6),
                    rng.random_range(-0.07..0.07),
                    1000.0 + rng.random_range(0.0..1.0),
                ]
            })
            .collect()
    }

    /// Mean and population variance of each column, computed directly.
    fn direct(data: &[Vec<f32>]) -> (Vec<f64>, Vec<f64>) {
        let n = data.len() as f64;
        let columns = data[0].len();
        let mean: Vec<f64> = (0..columns)
            .map(|c| data.iter().map(|x| f64::from(x[c])).sum::<f64>() / n)
            .collect();
        let var = (0..columns)
            .map(|c| {
                data.iter()
                    .map(|x| (f64::from(x[c]) - mean[c]).powi(2))
                    .sum::<f64>()
                    / n
            })
            .collect();
        (mean, var)
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                (a - e).abs() <= 1e-9 * e.abs().max(1.0),
                "{actual:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn running_statistics_match_a_direct_computation() {
        let data = samples(1000, 1);
        let (mean, var) = direct(&data);
        let mut one_by_one = RunningStats::new(3);
        data.iter().for_each(|x| one_by_one.update(x));
        assert_eq!(one_by_one.count, 1000.0);
        assert_close(&one_by_one.mean, &mean);
        assert_close(&one_by_one.var, &var);

        // Merged in uneven parts (as A3C's workers hand theirs on), and into an empty set.
        let mut merged = RunningStats::new(3);
        for part in [&data[..1], &data[1..300], &data[300..]] {
            let mut stats = RunningStats::new(3);
            part.iter().for_each(|x| stats.update(x));
            merged.merge(&stats);
        }
        merged.merge(&RunningStats::new(3));
        assert_eq!(merged.count, 1000.0);
        assert_close(&merged.mean, &mean);
        assert_close(&merged.var, &var);
    }

    #[test]
    fn observations_are_standardised_and_clipped() {
        let data = samples(1000, 2);
        let mut filter = ObservationFilter::new(true, 3);
        // Before any data only the clipping acts.
        assert_eq!(filter.apply(vec![0.5, -20.0, 0.0]), vec![0.5, -10.0, 0.0]);
        let normalised: Vec<Vec<f32>> = data.iter().map(|x| filter.observe(x.clone())).collect();
        // Later observations are normalised with statistics of nearly all the data.
        let (mean, var) = direct(&normalised[500..]);
        for c in 0..3 {
            assert!(
                mean[c].abs() < 0.15 && (var[c] - 1.0).abs() < 0.15,
                "{mean:?} {var:?}"
            );
        }
        let far = filter.apply(vec![100.0, -100.0, 1000.5]);
        assert_eq!(&far[..2], &[10.0, -10.0]);
        assert!(far[2].abs() < 0.1, "{far:?}");

        // The frozen copy normalises the same way (to f32 rounding) and never changes.
        let frozen = filter.frozen().unwrap();
        assert_eq!(frozen.clip, CLIP_OBSERVATIONS);
        for x in &data[..10] {
            let (a, b) = (frozen.apply(x), filter.apply(x.clone()));
            assert!(
                a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-4),
                "{a:?} {b:?}"
            );
        }
        let before = frozen.apply(&data[0]);
        filter.observe(vec![5.0, 5.0, 5.0]);
        assert_eq!(frozen.apply(&data[0]), before);
        assert_ne!(filter.apply(data[0].clone()), before);

        let mut off = ObservationFilter::new(false, 3);
        assert_eq!(off.observe(vec![100.0, 2.0, 3.0]), vec![100.0, 2.0, 3.0]);
        assert_eq!(off.frozen(), None);
    }

    #[test]
    fn rewards_are_scaled_by_the_spread_of_returns() {
        let mut off = RewardScaler::new(false, 0.99, 1);
        assert_eq!(off.scale(0, -1.0, false), -1.0);
        // A constant -1 per step: the discounted return grows towards -100 and its spread
        // with it, so the scaled reward shrinks but keeps its sign. The first return has no
        // spread yet, so the first reward is clipped.
        let mut scaler = RewardScaler::new(true, 0.99, 2);
        let scaled: Vec<f32> = (0..200).map(|t| scaler.scale(t % 2, -1.0, false)).collect();
        assert_eq!(scaled[0], -10.0);
        assert!(scaled.iter().all(|&r| (-10.0..=-0.01).contains(&r)));
        assert!(
            scaled[199] > -0.1 && scaled[199] > scaled[50],
            "{}",
            scaled[199]
        );
        assert_eq!(scaler.returns.len(), 2);
        scaler.scale(0, -1.0, true);
        assert_eq!(scaler.returns[0], 0.0);
    }
}
