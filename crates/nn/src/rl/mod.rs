//! Reinforcement learning on classic-control environments: PPO, DQN and A3C, written on
//! candle because no maintained Rust crate offers them.
//!
//! [`train`] runs one algorithm on one named environment with periodic greedy evaluations;
//! it returns the best policy those evaluations saw (as Stable-Baselines3's `EvalCallback`
//! keeps its best model) and stops early once one reaches `target_return`. [`evaluate`] plays
//! greedy episodes with a trained [`Policy`].
//!
//! PPO and A3C can normalise observations by their running mean and variance, as
//! Stable-Baselines3's `VecNormalize` (`RlConfig::normalize_observations`, on by default where
//! rl-baselines3-zoo's tuned settings use it, e.g. MountainCar, which is not learnt without
//! it); the statistics are frozen at evaluation and saved with the policy.
//!
//! Everything is seeded: PPO and DQN give the same result for the same seed and settings.
//! A3C's workers run truly asynchronously, so its runs vary with thread timing.

mod a3c;
mod actor_critic;
mod config;
mod dqn;
mod env;
mod net;
mod normalize;
mod policy;
mod ppo;
mod tracker;

pub use config::{Activation, Algorithm, RlConfig, solved_return};
pub use env::{ENVIRONMENT_NAMES, Environment, Step, make_env};
pub use policy::Policy;

use crate::{Hooks, NnError};

/// One recorded environment step, e.g. from logs of an existing controller (DQN's offline data).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transition {
    pub state: Vec<f32>,
    pub action: usize,
    pub reward: f32,
    pub next_state: Vec<f32>,
    /// `next_state` is terminal (no future reward). A step cut off by a time limit is not done.
    pub done: bool,
}

/// The result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The policy with the best greedy evaluation.
    pub policy: Policy,
    /// Environment steps taken.
    pub timesteps: usize,
    /// Training episodes finished.
    pub episodes: usize,
    /// (timestep, episode return) of every finished training episode, in order
    pub episode_returns: Vec<(usize, f64)>,
    /// (timestep, mean greedy eval return) of each periodic evaluation
    pub evaluations: Vec<(usize, f64)>,
    /// An evaluation reached `target_return` (training stopped there).
    pub reached_target: bool,
}

/// Returns and lengths of greedy episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeStats {
    pub returns: Vec<f64>,
    pub lengths: Vec<usize>,
    pub mean: f64,
    /// Population standard deviation of the returns.
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl EpisodeStats {
    fn new(returns: Vec<f64>, lengths: Vec<usize>) -> EpisodeStats {
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let std = (returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n).sqrt();
        let min = returns.iter().copied().fold(f64::INFINITY, f64::min);
        let max = returns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        EpisodeStats {
            returns,
            lengths,
            mean,
            std,
            min,
            max,
        }
    }
}

/// Trains a policy with `config`. `offline` transitions (DQN only) pre-fill the replay buffer
/// and are trained on for `offline_pretrain_steps` gradient steps before interacting.
pub fn train(
    config: &RlConfig,
    offline: Option<&[Transition]>,
    hooks: &Hooks,
) -> Result<TrainOutcome, NnError> {
    config.validate()?;
    match (config.algorithm, offline) {
        (Algorithm::Dqn, offline) => dqn::train(config, offline.unwrap_or_default(), hooks),
        (algorithm, Some(_)) => Err(NnError::invalid(format!(
            "offline transitions can only be used with DQN (it learns off-policy from a replay \
             buffer); {} learns only from its own interaction, so drop them or choose dqn",
            algorithm.name()
        ))),
        (Algorithm::Ppo, None) => ppo::train(config, hooks),
        (Algorithm::A3c, None) => a3c::train(config, hooks),
    }
}

/// The most episodes one [`evaluate`] call plays.
const MAX_EVAL_EPISODES: usize = 10_000;

/// Plays `episodes` greedy episodes; episode i starts from `reset(seed + i)`.
pub fn evaluate(
    policy: &Policy,
    environment: &str,
    episodes: usize,
    seed: u64,
    max_episode_steps: Option<usize>,
) -> Result<EpisodeStats, NnError> {
    if !(1..=MAX_EVAL_EPISODES).contains(&episodes) {
        return Err(NnError::invalid(format!(
            "episodes must be between 1 and {MAX_EVAL_EPISODES}, not {episodes}"
        )));
    }
    let mut env = make_env(environment, max_episode_steps)?;
    if env.observation_size() != policy.observation_size() || env.actions() != policy.actions() {
        return Err(NnError::invalid(format!(
            "the policy was trained on {} with {} observations and {} actions; {} has {} observations and {} actions",
            policy.environment(),
            policy.observation_size(),
            policy.actions(),
            environment,
            env.observation_size(),
            env.actions()
        )));
    }
    run_greedy(policy, env.as_mut(), episodes, seed)
}

/// Greedy episodes of `policy` on `env`, episode i reset with `seed + i`.
fn run_greedy(
    policy: &Policy,
    env: &mut dyn Environment,
    episodes: usize,
    seed: u64,
) -> Result<EpisodeStats, NnError> {
    let mut returns = Vec::with_capacity(episodes);
    let mut lengths = Vec::with_capacity(episodes);
    for i in 0..episodes {
        let mut observation = env.reset(seed.wrapping_add(i as u64));
        let (mut total, mut length) = (0.0, 0);
        loop {
            let step = env.step(policy.greedy(&observation))?;
            total += f64::from(step.reward);
            length += 1;
            if step.terminated || step.truncated {
                break;
            }
            observation = step.observation;
        }
        returns.push(total);
        lengths.push(length);
    }
    Ok(EpisodeStats::new(returns, lengths))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::hooks::silent;

    /// Trains with hooks that report nowhere.
    pub(crate) fn train_quietly(
        config: &RlConfig,
        offline: Option<&[Transition]>,
    ) -> Result<TrainOutcome, NnError> {
        let (cancelled, progress, metric) = silent();
        train(
            config,
            offline,
            &Hooks {
                cancelled: &cancelled,
                progress: &progress,
                metric: &metric,
            },
        )
    }

    /// The mean greedy return of 100 fresh CartPole episodes.
    pub(crate) fn final_mean(policy: &Policy) -> f64 {
        evaluate(policy, "CartPole-v1", 100, 10_000, None)
            .unwrap()
            .mean
    }

    #[test]
    fn bad_configs_are_explained() {
        type Change = fn(&mut RlConfig);
        let cases: [(&str, Change); 9] = [
            ("learning_rate", |c| c.learning_rate = 0.0),
            ("learning_rate", |c| c.learning_rate = f64::NAN),
            ("hidden layer 1", |c| c.hidden_layers = vec![64, 0]),
            ("total_timesteps", |c| c.total_timesteps = 0),
            ("gamma", |c| c.gamma = 1.5),
            ("MountainCar-v0", |c| c.environment = "Pong".into()),
            ("max_episode_steps", |c| c.max_episode_steps = Some(1000)),
            ("batch_size", |c| c.batch_size = 10_000),
            ("eval_every_steps", |c| c.eval_every_steps = 0),
        ];
        for (needle, change) in cases {
            let mut config = RlConfig::defaults(Algorithm::Ppo, "CartPole-v1");
            change(&mut config);
            let err = config.validate().unwrap_err();
            assert!(
                matches!(&err, NnError::Invalid(m) if m.contains(needle)),
                "{needle}: {err}"
            );
            assert!(matches!(
                train_quietly(&config, None),
                Err(NnError::Invalid(_))
            ));
        }
        let mut dqn = RlConfig::defaults(Algorithm::Dqn, "CartPole-v1");
        dqn.exploration_final_eps = 2.0;
        assert!(
            dqn.validate()
                .unwrap_err()
                .to_string()
                .contains("exploration_final_eps")
        );
        let mut a3c = RlConfig::defaults(Algorithm::A3c, "CartPole-v1");
        a3c.n_workers = 0;
        assert!(
            a3c.validate()
                .unwrap_err()
                .to_string()
                .contains("n_workers")
        );
        for algorithm in [Algorithm::Ppo, Algorithm::Dqn, Algorithm::A3c] {
            for env in ENVIRONMENT_NAMES {
                RlConfig::defaults(algorithm, env).validate().unwrap();
            }
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let config = RlConfig::defaults(Algorithm::A3c, "Acrobot-v1");
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["algorithm"], "a3c");
        assert_eq!(json["activation"], "tanh");
        assert_eq!(serde_json::from_value::<RlConfig>(json).unwrap(), config);
    }

    #[test]
    fn offline_transitions_are_for_dqn_only() {
        let config = RlConfig::defaults(Algorithm::Ppo, "CartPole-v1");
        let err = train_quietly(&config, Some(&[])).unwrap_err().to_string();
        assert!(err.contains("only be used with DQN"), "{err}");
    }

    #[test]
    fn evaluating_on_a_mismatched_environment_is_explained() {
        let mut config = RlConfig::defaults(Algorithm::Ppo, "CartPole-v1");
        config.total_timesteps = 256;
        config.target_return = None;
        let outcome = train_quietly(&config, None).unwrap();
        assert_eq!(outcome.timesteps, 256);
        assert_eq!(outcome.evaluations.len(), 1);
        let err = evaluate(&outcome.policy, "Acrobot-v1", 5, 0, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the policy was trained on CartPole-v1 with 4 observations and 2 actions; \
             Acrobot-v1 has 6 observations and 3 actions"
        );
        assert!(evaluate(&outcome.policy, "CartPole-v1", 0, 0, None).is_err());
        let stats = evaluate(&outcome.policy, "CartPole-v1", 5, 0, Some(10)).unwrap();
        assert!(stats.lengths.iter().all(|&n| n <= 10) && stats.max <= 10.0);
        assert_eq!(
            stats,
            evaluate(&outcome.policy, "CartPole-v1", 5, 0, Some(10)).unwrap()
        );
    }

    #[test]
    fn cancelling_stops_every_algorithm_promptly() {
        for algorithm in [Algorithm::Ppo, Algorithm::Dqn, Algorithm::A3c] {
            let mut config = RlConfig::defaults(algorithm, "CartPole-v1");
            config.total_timesteps = 10_000_000;
            config.target_return = None;
            let cancelled = AtomicBool::new(false);
            let asked: Mutex<Option<Instant>> = Mutex::new(None);
            let progress = |done: usize, total: usize, message: String| {
                assert!(
                    message.starts_with(&format!("step {done}/{total}")),
                    "{message}"
                );
                if done >= 2_000 && !cancelled.swap(true, Ordering::Relaxed) {
                    *asked.lock().unwrap() = Some(Instant::now());
                }
            };
            // Progress comes every 1% of the budget, too rarely here: cancel on episodes too.
            let metric =
                |t: usize, _: &str, _: f64| progress(t, 10_000_000, format!("step {t}/10000000"));
            let hooks = Hooks {
                cancelled: &cancelled,
                progress: &progress,
                metric: &metric,
            };
            let result = train(&config, None, &hooks);
            let waited = asked
                .lock()
                .unwrap()
                .expect("cancellation was asked for")
                .elapsed();
            assert!(
                matches!(result, Err(NnError::Cancelled)),
                "{algorithm:?}: {:?}",
                result.map(|o| o.timesteps)
            );
            assert!(
                waited < Duration::from_millis(500),
                "{algorithm:?} took {waited:?} to stop"
            );
        }
    }
}
