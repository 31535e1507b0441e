//! Deep Q-Networks (Mnih et al. 2015), as Stable-Baselines3 implements them.
//!
//! Epsilon-greedy interaction (uniformly random for the first `learning_starts` steps, then
//! epsilon falling linearly from `exploration_initial_eps` to `exploration_final_eps` over
//! `exploration_fraction` of training) fills a replay buffer; every `train_freq` steps,
//! `gradient_steps` minibatches sampled with replacement minimise the Huber loss against a
//! target network refreshed every `target_update_interval` steps; Adam, global gradient
//! clipping. A step cut off by the time limit is not terminal, so its target bootstraps.
//!
//! Offline transitions pre-fill the buffer (the newest `buffer_size` of them) and are trained
//! on for `offline_pretrain_steps` gradient steps first; there the target network is refreshed
//! as often, in gradient steps, as interaction would refresh it.

use candle_core::{Device, Tensor};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::RlConfig;
use super::env::make_env;
use super::net::{Adam, Init, Mlp, as_tensors, clip_grad_norm, gradients};
use super::normalize::ObservationFilter;
use super::tracker::Tracker;
use super::{TrainOutcome, Transition};
use crate::{Hooks, NnError};

/// A ring buffer of transitions in flat arrays.
struct ReplayBuffer {
    obs_size: usize,
    capacity: usize,
    states: Vec<f32>,
    next_states: Vec<f32>,
    actions: Vec<usize>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    /// Where the next transition goes once the buffer is full.
    next: usize,
}

impl ReplayBuffer {
    fn new(obs_size: usize, capacity: usize) -> Self {
        ReplayBuffer {
            obs_size,
            capacity,
            states: Vec::new(),
            next_states: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            dones: Vec::new(),
            next: 0,
        }
    }

    fn len(&self) -> usize {
        self.actions.len()
    }

    fn push(&mut self, state: &[f32], action: usize, reward: f32, next_state: &[f32], done: bool) {
        if self.len() < self.capacity {
            self.states.extend_from_slice(state);
            self.next_states.extend_from_slice(next_state);
            self.actions.push(action);
            self.rewards.push(reward);
            self.dones.push(done);
        } else {
            let (i, n) = (self.next, self.obs_size);
            self.states[i * n..(i + 1) * n].copy_from_slice(state);
            self.next_states[i * n..(i + 1) * n].copy_from_slice(next_state);
            self.actions[i] = action;
            self.rewards[i] = reward;
            self.dones[i] = done;
            self.next = (i + 1) % self.capacity;
        }
    }
}

/// The online and target networks and their optimizer.
struct Learner {
    q: Mlp,
    target: Vec<Tensor>,
    adam: Adam,
    gamma: f32,
    max_grad_norm: f64,
}

impl Learner {
    fn refresh_target(&mut self) -> Result<(), NnError> {
        self.target = self.q.tensors()?;
        Ok(())
    }

    /// One gradient step on `batch_size` transitions drawn with replacement; returns the loss.
    fn gradient_step(
        &mut self,
        buffer: &ReplayBuffer,
        batch_size: usize,
        lr: f64,
        rng: &mut impl Rng,
    ) -> Result<f64, NnError> {
        let n = buffer.obs_size;
        let actions = self.q.sizes()[self.q.sizes().len() - 1];
        let indices: Vec<usize> = (0..batch_size)
            .map(|_| rng.random_range(0..buffer.len()))
            .collect();
        let gather = |source: &[f32]| -> Vec<f32> {
            indices
                .iter()
                .flat_map(|&i| &source[i * n..(i + 1) * n])
                .copied()
                .collect()
        };
        let device = &Device::Cpu;
        let states = Tensor::from_vec(gather(&buffer.states), (batch_size, n), device)?;
        let next_states = Tensor::from_vec(gather(&buffer.next_states), (batch_size, n), device)?;

        let next_q = self
            .q
            .forward_tensor(&self.target, &next_states)?
            .max(1)?
            .to_vec1::<f32>()?;
        let targets: Vec<f32> = indices
            .iter()
            .zip(next_q)
            .map(|(&i, next)| {
                let continues = if buffer.dones[i] { 0.0 } else { 1.0 };
                buffer.rewards[i] + self.gamma * continues * next
            })
            .collect();
        let mut one_hot = vec![0.0f32; batch_size * actions];
        for (row, &i) in indices.iter().enumerate() {
            one_hot[row * actions + buffer.actions[i]] = 1.0;
        }
        let one_hot = Tensor::from_vec(one_hot, (batch_size, actions), device)?;
        let targets = Tensor::from_vec(targets, batch_size, device)?;

        let vars = self.q.vars()?;
        let q = (self.q.forward_tensor(&as_tensors(&vars), &states)? * one_hot)?.sum(1)?;
        // Huber loss with delta 1: 0.5 e^2 inside [-1, 1], |e| - 0.5 outside.
        let error = (q - targets)?.abs()?;
        let quadratic = error.minimum(1.0f32)?;
        let loss = ((quadratic.sqr()? * 0.5)? + (error - quadratic)?)?.mean_all()?;
        let mut grads = gradients(&vars, &loss.backward()?)?;
        clip_grad_norm(&mut grads, self.max_grad_norm);
        self.adam.step(self.q.params_mut(), &grads, lr);
        Ok(f64::from(loss.to_scalar::<f32>()?))
    }
}

pub(crate) fn train(
    config: &RlConfig,
    offline: &[Transition],
    hooks: &Hooks,
) -> Result<TrainOutcome, NnError> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut env = make_env(&config.environment, config.max_episode_steps)?;
    let (obs_size, n_actions) = (env.observation_size(), env.actions());
    check_offline(offline, env.name(), obs_size, n_actions)?;

    let sizes = std::iter::once(obs_size)
        .chain(config.hidden_layers.iter().copied())
        .chain([n_actions])
        .collect();
    let q = Mlp::new(sizes, config.activation, Init::Uniform, &mut rng);
    let mut learner = Learner {
        target: q.tensors()?,
        adam: Adam::new(q.params().iter().map(Vec::len), 1e-8),
        q,
        gamma: config.gamma as f32,
        max_grad_norm: config.max_grad_norm,
    };
    let mut buffer = ReplayBuffer::new(obs_size, config.buffer_size);
    for t in &offline[offline.len().saturating_sub(config.buffer_size)..] {
        buffer.push(&t.state, t.action, t.reward, &t.next_state, t.done);
    }
    let mut tracker = Tracker::new(config, hooks)?;
    // rl-baselines3-zoo's DQN settings do not normalise observations.
    let unnormalized = ObservationFilter::new(false, obs_size);
    let lr_at = |timestep: usize| {
        let remaining = 1.0 - timestep as f64 / config.total_timesteps as f64;
        config.learning_rate
            * if config.linear_decay {
                remaining.max(0.0)
            } else {
                1.0
            }
    };

    if !offline.is_empty() && config.offline_pretrain_steps > 0 {
        // Interaction refreshes the target every `target_update_interval` steps, i.e. every
        // that many * gradient_steps / train_freq gradient steps, but never within one round.
        let refresh_every = config
            .gradient_steps
            .max(config.target_update_interval * config.gradient_steps / config.train_freq);
        let mut loss = 0.0;
        for step in 1..=config.offline_pretrain_steps {
            hooks.check()?;
            loss += learner.gradient_step(
                &buffer,
                config.batch_size,
                config.learning_rate,
                &mut rng,
            )?;
            if step % refresh_every == 0 {
                learner.refresh_target()?;
            }
        }
        learner.refresh_target()?;
        tracker.metric(0, "q_loss", loss / config.offline_pretrain_steps as f64);
    }

    let exploration_steps = config.exploration_fraction * config.total_timesteps as f64;
    let mut observation = env.reset(config.seed);
    let mut episode_return = 0.0;
    let mut timestep = 0;
    while timestep < config.total_timesteps {
        hooks.check()?;
        let eps = if (timestep as f64) < exploration_steps {
            let fraction = timestep as f64 / exploration_steps;
            config.exploration_initial_eps
                + fraction * (config.exploration_final_eps - config.exploration_initial_eps)
        } else {
            config.exploration_final_eps
        };
        let action = if timestep < config.learning_starts || rng.random::<f64>() < eps {
            rng.random_range(0..n_actions)
        } else {
            learner.q.argmax(&observation)
        };
        let step = env.step(action)?;
        timestep += 1;
        episode_return += f64::from(step.reward);
        buffer.push(
            &observation,
            action,
            step.reward,
            &step.observation,
            step.terminated,
        );
        if step.terminated || step.truncated {
            tracker.episode(timestep, std::mem::take(&mut episode_return));
            observation = env.reset(rng.next_u64());
        } else {
            observation = step.observation;
        }

        if timestep % config.target_update_interval == 0 {
            learner.refresh_target()?;
        }
        if timestep > config.learning_starts && timestep % config.train_freq == 0 {
            let lr = lr_at(timestep);
            let mut loss = 0.0;
            for _ in 0..config.gradient_steps {
                hooks.check()?;
                loss += learner.gradient_step(&buffer, config.batch_size, lr, &mut rng)?;
            }
            tracker.metric(timestep, "q_loss", loss / config.gradient_steps as f64);
        }
        if tracker.eval_due(timestep) && tracker.evaluate(timestep, &learner.q, &unnormalized)? {
            break;
        }
        tracker.progress(timestep);
    }
    tracker.finish(timestep, &learner.q, &unnormalized)
}

/// Checks offline transitions against the environment.
fn check_offline(
    offline: &[Transition],
    env: &str,
    obs_size: usize,
    actions: usize,
) -> Result<(), NnError> {
    for (i, t) in offline.iter().enumerate() {
        let problem = if t.state.len() != obs_size || t.next_state.len() != obs_size {
            format!(
                "has states of {} and {} values but {env} observations have {obs_size}",
                t.state.len(),
                t.next_state.len()
            )
        } else if t.action >= actions {
            format!(
                "has action {} but {env} has {actions} actions (0 to {})",
                t.action,
                actions - 1
            )
        } else if !t.reward.is_finite()
            || !t.state.iter().chain(&t.next_state).all(|v| v.is_finite())
        {
            "has a reward or state value that is not a finite number".to_string()
        } else {
            continue;
        };
        return Err(NnError::invalid(format!(
            "offline transition {i} {problem}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::rl::tests::{final_mean, train_quietly};
    use crate::rl::{Algorithm, RlConfig};

    #[test]
    fn dqn_solves_cartpole() {
        let config = RlConfig::defaults(Algorithm::Dqn, "CartPole-v1");
        let outcome = train_quietly(&config, None).unwrap();
        assert!(
            outcome.reached_target,
            "evaluations: {:?}",
            outcome.evaluations
        );
        let mean = final_mean(&outcome.policy);
        assert!(mean >= 475.0, "mean return {mean}");
    }

    /// Transitions of a noisy lean-correcting controller on CartPole.
    fn heuristic_transitions(count: usize) -> Vec<Transition> {
        let mut env = make_env("CartPole-v1", None).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut state = env.reset(0);
        let mut transitions = Vec::with_capacity(count);
        while transitions.len() < count {
            let greedy = usize::from(state[2] + 0.5 * state[3] > 0.0);
            let action = if rng.random::<f64>() < 0.2 {
                1 - greedy
            } else {
                greedy
            };
            let step = env.step(action).unwrap();
            transitions.push(Transition {
                state: state.clone(),
                action,
                reward: step.reward,
                next_state: step.observation.clone(),
                done: step.terminated,
            });
            state = if step.terminated || step.truncated {
                env.reset(rng.random())
            } else {
                step.observation
            };
        }
        transitions
    }

    #[test]
    fn dqn_trains_on_offline_transitions_first() {
        let offline = heuristic_transitions(3_000);
        let mut config = RlConfig::defaults(Algorithm::Dqn, "CartPole-v1");
        config.total_timesteps = 1_000;
        config.offline_pretrain_steps = 300;
        config.target_return = None;
        let losses = Mutex::new(Vec::new());
        let (cancelled, progress, _) = crate::hooks::silent();
        let metric = |t: usize, name: &str, value: f64| {
            if name == "q_loss" {
                losses.lock().unwrap().push((t, value));
            }
        };
        let hooks = Hooks {
            cancelled: &cancelled,
            progress: &progress,
            metric: &metric,
        };
        let outcome = train(&config, &offline, &hooks).unwrap();
        assert_eq!(outcome.timesteps, 1_000);
        let losses = losses.into_inner().unwrap();
        assert!(
            losses
                .first()
                .is_some_and(|&(t, loss)| t == 0 && loss.is_finite()),
            "{losses:?}"
        );
        let mut full = config.clone();
        full.buffer_size = 100;
        assert!(train_quietly(&full, Some(&offline)).is_ok());
    }

    #[test]
    fn mismatched_offline_transitions_are_explained() {
        let config = RlConfig::defaults(Algorithm::Dqn, "CartPole-v1");
        let mut offline = heuristic_transitions(10);
        offline[3].state.pop();
        let err = train_quietly(&config, Some(&offline))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "offline transition 3 has states of 3 and 4 values but CartPole-v1 observations have 4"
        );
        let mut offline = heuristic_transitions(10);
        offline[0].action = 2;
        let err = train_quietly(&config, Some(&offline))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has action 2 but CartPole-v1 has 2 actions"),
            "{err}"
        );
        offline[0].action = 0;
        offline[9].reward = f32::NAN;
        assert!(
            train_quietly(&config, Some(&offline))
                .unwrap_err()
                .to_string()
                .contains("transition 9")
        );
    }
}
