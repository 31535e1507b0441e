//! The actor-critic pair shared by PPO and A3C: separate actor (action logits) and critic
//! (state value) networks, as in Stable-Baselines3's `MlpPolicy`, with its orthogonal init.

use candle_core::{D, Device, Tensor};
use rand::Rng;

use super::config::RlConfig;
use super::net::{Init, Mlp, as_tensors, gradients};
use crate::error::NnError;

#[derive(Debug, Clone)]
pub(crate) struct ActorCritic {
    pub(crate) actor: Mlp,
    pub(crate) critic: Mlp,
}

/// A minibatch of experience: `observations` holds one row per step.
pub(crate) struct Batch {
    pub(crate) observations: Vec<f32>,
    pub(crate) actions: Vec<usize>,
    /// Log-probabilities of the actions when they were taken (PPO's ratio denominator).
    pub(crate) old_log_probs: Vec<f32>,
    pub(crate) advantages: Vec<f32>,
    pub(crate) returns: Vec<f32>,
}

/// The policy-gradient objective.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Objective {
    /// PPO's clipped surrogate with this clip range.
    Clipped(f64),
    /// The plain advantage-weighted log-likelihood (A2C/A3C).
    Vanilla,
}

/// Loss terms of one gradient computation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Losses {
    pub(crate) policy: f64,
    pub(crate) value: f64,
    pub(crate) entropy: f64,
}

impl Losses {
    pub(crate) fn add(&mut self, other: Losses) {
        self.policy += other.policy;
        self.value += other.value;
        self.entropy += other.entropy;
    }

    pub(crate) fn scaled(self, factor: f64) -> Losses {
        Losses {
            policy: self.policy * factor,
            value: self.value * factor,
            entropy: self.entropy * factor,
        }
    }
}

impl ActorCritic {
    pub(crate) fn new(
        observations: usize,
        actions: usize,
        config: &RlConfig,
        rng: &mut impl Rng,
    ) -> Self {
        let sizes = |outputs| {
            std::iter::once(observations)
                .chain(config.hidden_layers.iter().copied())
                .chain([outputs])
                .collect()
        };
        let sqrt2 = std::f64::consts::SQRT_2;
        // Small initial logits give a near-uniform first policy; the critic starts at unit scale.
        let actor_init = Init::Orthogonal {
            hidden_gain: sqrt2,
            output_gain: 0.01,
        };
        let critic_init = Init::Orthogonal {
            hidden_gain: sqrt2,
            output_gain: 1.0,
        };
        ActorCritic {
            actor: Mlp::new(sizes(actions), config.activation, actor_init, rng),
            critic: Mlp::new(sizes(1), config.activation, critic_init, rng),
        }
    }

    /// Lengths of all parameters, actor's then critic's (for the optimizer).
    pub(crate) fn lengths(&self) -> Vec<usize> {
        self.actor
            .params()
            .iter()
            .chain(self.critic.params())
            .map(Vec::len)
            .collect()
    }

    pub(crate) fn params_mut(&mut self) -> impl Iterator<Item = &mut Vec<f32>> {
        self.actor
            .params_mut()
            .iter_mut()
            .chain(self.critic.params_mut().iter_mut())
    }

    /// Draws an action from the policy; returns it with its log-probability.
    pub(crate) fn sample(&self, observation: &[f32], rng: &mut impl Rng) -> (usize, f32) {
        let logits = self.actor.forward(observation);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = weights.iter().sum();
        let mut u = rng.random::<f32>() * sum;
        let mut action = weights.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                action = i;
                break;
            }
            u -= w;
        }
        (action, logits[action] - max - sum.ln())
    }

    pub(crate) fn value(&self, observation: &[f32]) -> f32 {
        self.critic.forward(observation)[0]
    }

    /// Gradients (actor's then critic's parameters) of
    /// `policy_loss - ent_coef * entropy + vf_coef * value_loss` on `batch`.
    pub(crate) fn gradients(
        &self,
        batch: &Batch,
        objective: Objective,
        ent_coef: f64,
        vf_coef: f64,
    ) -> Result<(Vec<Vec<f32>>, Losses), NnError> {
        let n = batch.actions.len();
        let actions = self.actor.sizes()[self.actor.sizes().len() - 1];
        let device = &Device::Cpu;
        let observations =
            Tensor::from_slice(&batch.observations, (n, self.actor.sizes()[0]), device)?;
        let mut one_hot = vec![0.0f32; n * actions];
        for (i, &a) in batch.actions.iter().enumerate() {
            one_hot[i * actions + a] = 1.0;
        }
        let one_hot = Tensor::from_vec(one_hot, (n, actions), device)?;
        let advantages = Tensor::from_slice(&batch.advantages, n, device)?;
        let returns = Tensor::from_slice(&batch.returns, n, device)?;

        let actor_vars = self.actor.vars()?;
        let critic_vars = self.critic.vars()?;
        let logits = self
            .actor
            .forward_tensor(&as_tensors(&actor_vars), &observations)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let log_prob = (&log_probs * &one_hot)?.sum(1)?;
        let policy_loss = match objective {
            Objective::Clipped(clip) => {
                let old = Tensor::from_slice(&batch.old_log_probs, n, device)?;
                let ratio = (&log_prob - &old)?.exp()?;
                let clipped = ratio.clamp(1.0 - clip as f32, 1.0 + clip as f32)?;
                let surrogate = (&ratio * &advantages)?.minimum(&(&clipped * &advantages)?)?;
                surrogate.mean_all()?.neg()?
            }
            Objective::Vanilla => (&log_prob * &advantages)?.mean_all()?.neg()?,
        };
        let entropy = (log_probs.exp()? * &log_probs)?.sum(1)?.mean_all()?.neg()?;
        let values = self
            .critic
            .forward_tensor(&as_tensors(&critic_vars), &observations)?
            .squeeze(1)?;
        let value_loss = (values - &returns)?.sqr()?.mean_all()?;
        let loss = ((&policy_loss - (&entropy * ent_coef)?)? + (&value_loss * vf_coef)?)?;

        let store = loss.backward()?;
        let mut grads = gradients(&actor_vars, &store)?;
        grads.extend(gradients(&critic_vars, &store)?);
        let scalar = |t: &Tensor| -> Result<f64, NnError> { Ok(f64::from(t.to_scalar::<f32>()?)) };
        let losses = Losses {
            policy: scalar(&policy_loss)?,
            value: scalar(&value_loss)?,
            entropy: scalar(&entropy)?,
        };
        Ok((grads, losses))
    }
}

/// Generalised advantage estimates of one environment's consecutive steps. `dones[i]` says
/// the episode ended after step i; `last_value` is the value of the state after the last step.
pub(crate) fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_value: f32,
    gamma: f64,
    lambda: f64,
) -> Vec<f32> {
    let (gamma, lambda) = (gamma as f32, lambda as f32);
    let mut advantages = vec![0.0; rewards.len()];
    let mut next_advantage = 0.0;
    let mut next_value = last_value;
    for i in (0..rewards.len()).rev() {
        let continues = if dones[i] { 0.0 } else { 1.0 };
        let delta = rewards[i] + gamma * next_value * continues - values[i];
        next_advantage = delta + gamma * lambda * continues * next_advantage;
        advantages[i] = next_advantage;
        next_value = values[i];
    }
    advantages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_with_lambda_one_is_the_discounted_return_minus_the_value() {
        let rewards = [1.0, 1.0, 1.0, 1.0];
        let values = [0.5, 0.5, 0.5, 0.5];
        let dones = [false, true, false, false];
        let adv = gae(&rewards, &values, &dones, 10.0, 0.9, 1.0);
        let expected = [
            1.0 + 0.9 - 0.5,
            1.0 - 0.5,
            1.0 + 0.9 + 0.81 * 10.0 - 0.5,
            1.0 + 9.0 - 0.5,
        ];
        for (a, e) in adv.iter().zip(expected) {
            assert!((a - e).abs() < 1e-5, "{adv:?}");
        }
        // lambda 0: one-step TD errors.
        let td = gae(&rewards, &values, &dones, 10.0, 0.9, 0.0);
        assert!((td[0] - (1.0 + 0.45 - 0.5)).abs() < 1e-6 && (td[1] - 0.5).abs() < 1e-6);
    }
}
