//! Asynchronous Advantage Actor-Critic (Mnih et al. 2016).
//!
//! `n_workers` threads each own an environment and a local copy of the actor and critic. A
//! worker copies the shared parameters, plays `n_steps` steps, computes the gradients of the
//! advantage actor-critic loss (GAE advantages, plain n-step returns at `gae_lambda` 1) on its
//! copy, then locks the shared parameters just long enough to clip those gradients and apply
//! them with the shared Adam optimizer. Gradients are computed outside the lock, so workers
//! update parameters that others are still acting with, as in the original (which used shared
//! RMSProp); this is what makes it asynchronous, and also why runs are not exactly repeatable.
//!
//! With `normalize_observations` the shared parameters come with shared observation
//! statistics: a worker normalises with the shared statistics as of its last copy plus its own
//! observations since, and merges those into the shared ones when it next copies the
//! parameters. With `normalize_rewards` each worker scales its rewards by its own statistics.
//!
//! The calling thread coordinates: it relays episode returns and losses to the hooks, checks
//! for cancellation, and evaluates snapshots of the shared parameters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::TrainOutcome;
use super::actor_critic::{ActorCritic, Batch, Losses, Objective, gae};
use super::config::RlConfig;
use super::env::make_env;
use super::net::{Adam, Mlp, clip_grad_norm};
use super::normalize::{ObservationFilter, RewardScaler};
use super::tracker::Tracker;
use crate::{Hooks, NnError};

/// What workers tell the coordinator.
enum Report {
    Episode { timestep: usize, total: f64 },
    Update(Losses),
}

/// The parameters all workers train, with their optimizer and the observation statistics.
struct Shared {
    model: ActorCritic,
    adam: Adam,
    filter: ObservationFilter,
}

/// What every worker reads.
struct Context<'a> {
    config: &'a RlConfig,
    shared: &'a Mutex<Shared>,
    /// Environment steps taken by all workers together.
    timesteps: &'a AtomicUsize,
    stop: &'a AtomicBool,
}

fn lock(shared: &Mutex<Shared>) -> Result<MutexGuard<'_, Shared>, NnError> {
    shared
        .lock()
        .map_err(|_| NnError::Failed("an A3C worker failed while updating the parameters".into()))
}

pub(crate) fn train(config: &RlConfig, hooks: &Hooks) -> Result<TrainOutcome, NnError> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let env = make_env(&config.environment, config.max_episode_steps)?;
    let model = ActorCritic::new(env.observation_size(), env.actions(), config, &mut rng);
    let adam = Adam::new(model.lengths(), 1e-5);
    let filter = ObservationFilter::new(config.normalize_observations, env.observation_size());
    let shared = Mutex::new(Shared {
        model,
        adam,
        filter,
    });
    let timesteps = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let context = Context {
        config,
        shared: &shared,
        timesteps: &timesteps,
        stop: &stop,
    };
    let mut tracker = Tracker::new(config, hooks)?;

    let (sender, receiver) = channel();
    let coordinated = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..config.n_workers)
            .map(|id| {
                let sender = sender.clone();
                let context = &context;
                let seed = rng.next_u64();
                scope.spawn(move || {
                    let result = worker(context, seed, sender);
                    // A failed worker stops the others.
                    context.stop.store(true, Ordering::Relaxed);
                    result.map_err(|e| NnError::Failed(format!("A3C worker {id}: {e}")))
                })
            })
            .collect();
        drop(sender);
        let coordinated = coordinate(&context, &mut tracker, hooks, &receiver);
        stop.store(true, Ordering::Relaxed);
        let mut outcome = coordinated;
        for worker in workers {
            let result = worker
                .join()
                .unwrap_or_else(|_| Err(NnError::Failed("an A3C worker panicked".into())));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    });
    coordinated?;
    let timestep = timesteps.load(Ordering::Relaxed);
    let (actor, filter) = snapshot(&shared)?;
    tracker.finish(timestep, &actor, &filter)
}

/// Copies of the shared actor and observation statistics.
fn snapshot(shared: &Mutex<Shared>) -> Result<(Mlp, ObservationFilter), NnError> {
    let shared = lock(shared)?;
    Ok((shared.model.actor.clone(), shared.filter.clone()))
}

/// Relays reports, evaluates and watches for cancellation until the budget is spent, the
/// target is reached or the workers stop.
fn coordinate(
    context: &Context,
    tracker: &mut Tracker,
    hooks: &Hooks,
    receiver: &Receiver<Report>,
) -> Result<(), NnError> {
    let mut losses = Losses::default();
    let mut updates = 0;
    let mut last_report = 0;
    loop {
        match receiver.recv_timeout(Duration::from_millis(20)) {
            Ok(Report::Episode { timestep, total }) => tracker.episode(timestep, total),
            Ok(Report::Update(update)) => {
                losses.add(update);
                updates += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        hooks.check()?;
        let timestep = context.timesteps.load(Ordering::Relaxed);
        // Losses are averaged over each percent of the budget: updates are too many to report.
        if updates > 0 && timestep >= last_report + (context.config.total_timesteps / 100).max(1) {
            let mean = losses.scaled(1.0 / f64::from(updates));
            tracker.metric(timestep, "policy_loss", mean.policy);
            tracker.metric(timestep, "value_loss", mean.value);
            tracker.metric(timestep, "entropy", mean.entropy);
            (losses, updates, last_report) = (Losses::default(), 0, timestep);
        }
        if tracker.eval_due(timestep) {
            let (actor, filter) = snapshot(context.shared)?;
            if tracker.evaluate(timestep, &actor, &filter)? {
                return Ok(());
            }
        }
        tracker.progress(timestep);
    }
}

/// One actor-learner: plays and updates until told to stop or the budget is spent.
fn worker(context: &Context, seed: u64, reports: Sender<Report>) -> Result<(), NnError> {
    let config = context.config;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut env = make_env(&config.environment, config.max_episode_steps)?;
    let obs_size = env.observation_size();
    let (mut local, mut filter) = {
        let shared = lock(context.shared)?;
        (shared.model.clone(), shared.filter.clone())
    };
    // This worker's observations since it last merged them into the shared statistics.
    let mut gathered = ObservationFilter::new(config.normalize_observations, obs_size);
    let mut scaler = RewardScaler::new(config.normalize_rewards, config.gamma, 1);
    let first = env.reset(rng.next_u64());
    gathered.update(&first);
    let mut observation = filter.observe(first);
    let mut episode_return = 0.0;
    let n = config.n_steps;
    let mut batch = Batch {
        observations: Vec::with_capacity(n * obs_size),
        actions: Vec::with_capacity(n),
        old_log_probs: Vec::new(),
        advantages: Vec::new(),
        returns: Vec::new(),
    };
    let (mut values, mut rewards, mut dones) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    while !context.stop.load(Ordering::Relaxed)
        && context.timesteps.load(Ordering::Relaxed) < config.total_timesteps
    {
        {
            let mut shared = lock(context.shared)?;
            local.clone_from(&shared.model);
            shared.filter.merge(&gathered);
            filter.clone_from(&shared.filter);
        }
        gathered.clear();
        batch.observations.clear();
        batch.actions.clear();
        values.clear();
        rewards.clear();
        dones.clear();
        for _ in 0..n {
            let (action, _) = local.sample(&observation, &mut rng);
            batch.observations.extend_from_slice(&observation);
            batch.actions.push(action);
            values.push(local.value(&observation));
            let step = env.step(action)?;
            let timestep = context.timesteps.fetch_add(1, Ordering::Relaxed) + 1;
            episode_return += f64::from(step.reward);
            let done = step.terminated || step.truncated;
            let mut reward = scaler.scale(0, step.reward, done);
            if step.truncated && !step.terminated {
                let last = filter.apply(step.observation.clone());
                reward += config.gamma as f32 * local.value(&last);
            }
            rewards.push(reward);
            dones.push(done);
            let next = if done {
                let total = std::mem::take(&mut episode_return);
                // The coordinator has gone only when training is over; nothing is lost then.
                let _ = reports.send(Report::Episode { timestep, total });
                env.reset(rng.next_u64())
            } else {
                step.observation
            };
            gathered.update(&next);
            observation = filter.observe(next);
        }
        let last_value = local.value(&observation);
        batch.advantages = gae(
            &rewards,
            &values,
            &dones,
            last_value,
            config.gamma,
            config.gae_lambda,
        );
        batch.returns = batch
            .advantages
            .iter()
            .zip(&values)
            .map(|(a, v)| a + v)
            .collect();
        let (mut grads, losses) =
            local.gradients(&batch, Objective::Vanilla, config.ent_coef, config.vf_coef)?;
        clip_grad_norm(&mut grads, config.max_grad_norm);
        let progress =
            context.timesteps.load(Ordering::Relaxed) as f64 / config.total_timesteps as f64;
        let lr = config.learning_rate
            * if config.linear_decay {
                (1.0 - progress).max(0.0)
            } else {
                1.0
            };
        {
            let mut shared = lock(context.shared)?;
            let Shared { model, adam, .. } = &mut *shared;
            adam.step(model.params_mut(), &grads, lr);
        }
        let _ = reports.send(Report::Update(losses));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::rl::tests::{final_mean, train_quietly};
    use crate::rl::{Algorithm, RlConfig};

    #[test]
    fn a3c_balances_cartpole() {
        // Aiming at 475 rather than 195: a 10-episode evaluation early in training can pass 195
        // by luck while the policy averages a little less over 100 episodes.
        let config = RlConfig::defaults(Algorithm::A3c, "CartPole-v1");
        let outcome = train_quietly(&config, None).unwrap();
        let mean = final_mean(&outcome.policy);
        assert!(
            mean >= 195.0,
            "mean return {mean}; evaluations {:?}",
            outcome.evaluations
        );
        assert!(outcome.episode_returns.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
