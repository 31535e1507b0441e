//! Bookkeeping shared by the trainers: episode returns, progress and metric reports, periodic
//! greedy evaluation keeping the best network, and the early stop at the target return.

use super::config::RlConfig;
use super::env::{Environment, make_env};
use super::net::Mlp;
use super::normalize::ObservationFilter;
use super::policy::Policy;
use super::{TrainOutcome, run_greedy};
use crate::{Hooks, NnError};

/// Evaluation episode i is reset with `seed + EVAL_SEED_OFFSET + i`: fixed across evaluations
/// (so they compare policies, not luck) and apart from the training seeds.
const EVAL_SEED_OFFSET: u64 = 1_000_000;

/// Episodes in the running mean of progress messages.
const RECENT: usize = 20;

pub(crate) struct Tracker<'h> {
    config: RlConfig,
    hooks: Hooks<'h>,
    eval_env: Box<dyn Environment>,
    episode_returns: Vec<(usize, f64)>,
    evaluations: Vec<(usize, f64)>,
    next_eval: usize,
    next_progress: usize,
    best: Option<(f64, Policy)>,
    reached_target: bool,
    /// The latest loss reported (its name and value), for progress messages.
    last_loss: Option<(String, f64)>,
}

impl<'h> Tracker<'h> {
    pub(crate) fn new(config: &RlConfig, hooks: &Hooks<'h>) -> Result<Tracker<'h>, NnError> {
        Ok(Tracker {
            config: config.clone(),
            hooks: *hooks,
            eval_env: make_env(&config.environment, config.max_episode_steps)?,
            episode_returns: Vec::new(),
            evaluations: Vec::new(),
            next_eval: config.eval_every_steps,
            next_progress: 0,
            best: None,
            reached_target: false,
            last_loss: None,
        })
    }

    /// Records a finished training episode.
    pub(crate) fn episode(&mut self, timestep: usize, total: f64) {
        self.episode_returns.push((timestep, total));
        (self.hooks.metric)(timestep, "episode_return", total);
    }

    /// Reports a metric (a loss, averaged over an update).
    pub(crate) fn metric(&mut self, timestep: usize, name: &str, value: f64) {
        if name.ends_with("_loss") {
            self.last_loss = Some((name.to_string(), value));
        }
        (self.hooks.metric)(timestep, name, value);
    }

    /// Reports progress once per 1% of the budget.
    pub(crate) fn progress(&mut self, timestep: usize) {
        if timestep < self.next_progress {
            return;
        }
        let total = self.config.total_timesteps;
        let every = (total / 100).max(1);
        self.next_progress = (timestep / every + 1) * every;
        let recent = &self.episode_returns[self.episode_returns.len().saturating_sub(RECENT)..];
        let episodes = self.episode_returns.len();
        let mut message = if recent.is_empty() {
            format!("step {timestep}/{total}: no episode finished yet")
        } else {
            let mean = recent.iter().map(|(_, r)| r).sum::<f64>() / recent.len() as f64;
            format!(
                "step {timestep}/{total}, {episodes} episodes: mean return {mean:.1} over the last {}",
                recent.len()
            )
        };
        if let Some((name, value)) = &self.last_loss {
            message.push_str(&format!(", {name} {value:.4}"));
        }
        (self.hooks.progress)(timestep.min(total), total, message);
    }

    pub(crate) fn eval_due(&self, timestep: usize) -> bool {
        self.config.eval_every_steps > 0 && timestep >= self.next_eval
    }

    /// Evaluates `net`, after `filter`'s current (then frozen) normalisation, greedily; keeps
    /// it if it is the best so far, and says whether it reached the target return.
    pub(crate) fn evaluate(
        &mut self,
        timestep: usize,
        net: &Mlp,
        filter: &ObservationFilter,
    ) -> Result<bool, NnError> {
        let policy = Policy::new(
            self.config.algorithm,
            &self.config.environment,
            net.clone(),
            filter.frozen(),
        );
        let seed = self.config.seed.wrapping_add(EVAL_SEED_OFFSET);
        let stats = run_greedy(
            &policy,
            self.eval_env.as_mut(),
            self.config.eval_episodes,
            seed,
        )?;
        self.evaluations.push((timestep, stats.mean));
        (self.hooks.metric)(timestep, "eval_mean_return", stats.mean);
        if let Some(every) = std::num::NonZeroUsize::new(self.config.eval_every_steps) {
            self.next_eval = (timestep / every + 1) * every.get();
        }
        if self
            .best
            .as_ref()
            .is_none_or(|(best, _)| stats.mean > *best)
        {
            self.best = Some((stats.mean, policy));
        }
        self.reached_target = self
            .config
            .target_return
            .is_some_and(|target| stats.mean >= target);
        Ok(self.reached_target)
    }

    /// Ends training at `timestep`: evaluates `last` (with `filter`) unless the target was
    /// reached or that evaluation just happened, and returns the best policy evaluated.
    pub(crate) fn finish(
        mut self,
        timestep: usize,
        last: &Mlp,
        filter: &ObservationFilter,
    ) -> Result<TrainOutcome, NnError> {
        if !self.reached_target && self.evaluations.last().is_none_or(|&(t, _)| t != timestep) {
            self.evaluate(timestep, last, filter)?;
        }
        self.next_progress = 0;
        self.progress(timestep);
        // A3C's workers report concurrently, so their episodes can arrive slightly out of order.
        self.episode_returns.sort_by_key(|&(t, _)| t);
        let (_, best) = self
            .best
            .take()
            .ok_or_else(|| NnError::Failed("training made no evaluation".into()))?;
        Ok(TrainOutcome {
            policy: best,
            timesteps: timestep,
            episodes: self.episode_returns.len(),
            episode_returns: self.episode_returns,
            evaluations: self.evaluations,
            reached_target: self.reached_target,
        })
    }
}
