//! A trained policy: the network that picks actions, and what it was trained for.
//!
//! Only the acting network is kept (PPO's and A3C's actor, DQN's Q-network); the critic and
//! target network are training aids. A policy trained with normalised observations also keeps
//! the frozen observation statistics, applied before the network, since its weights only make
//! sense for normalised inputs. It is stored as a JSON description plus safetensors bytes
//! (the statistics as the tensors `obs_norm.mean` and `obs_norm.var`, their clip value in the
//! description; a description without them means no normalisation), and loading checks the
//! one against the other, so a corrupt or mismatched file is an error, never a panic.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::config::{Activation, Algorithm};
use super::net::{Mlp, parameter_shapes};
use super::normalize::ObservationNormalizer;
use crate::error::NnError;
use crate::weights::{from_safetensors, serialize};

/// The `kind` of a policy description.
const KIND: &str = "rl_policy";

/// A trained policy; [`Policy::act`] picks its greedy action for an observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    algorithm: Algorithm,
    environment: String,
    net: Mlp,
    normalizer: Option<ObservationNormalizer>,
}

/// The JSON half of a saved policy.
#[derive(Debug, Serialize, Deserialize)]
struct Description {
    kind: String,
    algorithm: Algorithm,
    environment: String,
    observation_size: usize,
    actions: usize,
    hidden_layers: Vec<usize>,
    activation: Activation,
    /// What the outputs mean: "q_values" (DQN) or "action_logits" (PPO, A3C).
    outputs: String,
    /// Present when observations are normalised before the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observation_normalization: Option<NormalizationDescription>,
}

/// How a saved policy normalises observations: `clamp((x - mean) / sqrt(var + epsilon),
/// -clip, clip)`, with `mean` and `var` the tensors `obs_norm.mean` and `obs_norm.var`.
#[derive(Debug, Serialize, Deserialize)]
struct NormalizationDescription {
    clip: f32,
    epsilon: f64,
}

const MEAN: &str = "obs_norm.mean";
const VAR: &str = "obs_norm.var";

impl Policy {
    pub(crate) fn new(
        algorithm: Algorithm,
        environment: &str,
        net: Mlp,
        normalizer: Option<ObservationNormalizer>,
    ) -> Policy {
        Policy {
            algorithm,
            environment: environment.to_string(),
            net,
            normalizer,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The environment it was trained on.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    pub fn observation_size(&self) -> usize {
        self.net.sizes()[0]
    }

    pub fn actions(&self) -> usize {
        self.net.sizes()[self.net.sizes().len() - 1]
    }

    pub fn hidden_layers(&self) -> &[usize] {
        let sizes = self.net.sizes();
        &sizes[1..sizes.len() - 1]
    }

    pub fn activation(&self) -> Activation {
        self.net.activation()
    }

    /// Whether observations are normalised (with statistics frozen at training) before the
    /// network sees them.
    pub fn normalizes_observations(&self) -> bool {
        self.normalizer.is_some()
    }

    /// The greedy action for an observation: the largest logit (PPO, A3C) or Q-value (DQN).
    pub fn act(&self, observation: &[f32]) -> Result<usize, NnError> {
        if observation.len() != self.observation_size() {
            return Err(NnError::invalid(format!(
                "the observation has {} values but the policy expects {} ({} observations)",
                observation.len(),
                self.observation_size(),
                self.environment
            )));
        }
        Ok(self.greedy(observation))
    }

    /// [`Policy::act`] for an observation of the right size.
    pub(crate) fn greedy(&self, observation: &[f32]) -> usize {
        match &self.normalizer {
            Some(normalizer) => self.net.argmax(&normalizer.apply(observation)),
            None => self.net.argmax(observation),
        }
    }

    /// The architecture description (JSON) and the weights (safetensors bytes).
    pub fn to_parts(&self) -> Result<(serde_json::Value, Vec<u8>), NnError> {
        let description = Description {
            kind: KIND.to_string(),
            algorithm: self.algorithm,
            environment: self.environment.clone(),
            observation_size: self.observation_size(),
            actions: self.actions(),
            hidden_layers: self.hidden_layers().to_vec(),
            activation: self.activation(),
            outputs: outputs(self.algorithm).to_string(),
            observation_normalization: self.normalizer.as_ref().map(|n| NormalizationDescription {
                clip: n.clip,
                epsilon: n.epsilon,
            }),
        };
        let json = serde_json::to_value(&description)
            .map_err(|e| NnError::Failed(format!("could not describe the policy: {e}")))?;
        let mut tensors = tensor_names(self.net.sizes().len() - 1)
            .zip(self.net.shapes())
            .zip(self.net.params())
            .map(|((name, shape), data)| Ok((name, Tensor::from_slice(data, shape, &Device::Cpu)?)))
            .collect::<Result<Vec<_>, NnError>>()?;
        if let Some(n) = &self.normalizer {
            for (name, data) in [(MEAN, &n.mean), (VAR, &n.var)] {
                tensors.push((
                    name.to_string(),
                    Tensor::new(data.as_slice(), &Device::Cpu)?,
                ));
            }
        }
        Ok((json, serialize(tensors)?))
    }

    /// Rebuilds a policy saved with [`Policy::to_parts`], checking that the weights match the
    /// description.
    pub fn from_parts(
        description: &serde_json::Value,
        safetensors: &[u8],
    ) -> Result<Policy, NnError> {
        let d: Description = serde_json::from_value(description.clone())
            .map_err(|e| NnError::invalid(format!("the policy description is not valid: {e}")))?;
        if d.kind != KIND {
            return Err(NnError::invalid(format!(
                "the description is of a {:?}, not an RL policy ({KIND:?})",
                d.kind
            )));
        }
        if d.outputs != outputs(d.algorithm) {
            return Err(NnError::invalid(format!(
                "a {} policy outputs {:?}, but the description says {:?}",
                d.algorithm.name(),
                outputs(d.algorithm),
                d.outputs
            )));
        }
        if d.observation_size == 0 || d.actions == 0 || d.hidden_layers.contains(&0) {
            return Err(NnError::invalid(
                "the policy description has a layer of size 0 (observation_size, actions and hidden_layers must be positive)",
            ));
        }
        let observation_size = d.observation_size;
        let sizes: Vec<usize> = std::iter::once(observation_size)
            .chain(d.hidden_layers)
            .chain([d.actions])
            .collect();
        let corrupt = |e: candle_core::Error| {
            NnError::invalid(format!(
                "the policy weights do not match its description: {e}"
            ))
        };
        let vb = from_safetensors(safetensors)?;
        let params = tensor_names(sizes.len() - 1)
            .zip(parameter_shapes(&sizes))
            .map(|(name, shape)| vb.get(shape, &name)?.flatten_all()?.to_vec1::<f32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        let net = Mlp::from_params(sizes, d.activation, params)?;
        let normalizer = match d.observation_normalization {
            None => None,
            Some(NormalizationDescription { clip, epsilon }) => {
                if !(clip.is_finite() && clip > 0.0 && epsilon.is_finite() && epsilon > 0.0) {
                    return Err(NnError::invalid(format!(
                        "observation_normalization needs a positive clip and epsilon, not clip \
                         {clip} and epsilon {epsilon}"
                    )));
                }
                let read = |name| vb.get(observation_size, name)?.to_vec1::<f32>();
                let (mean, var) = (read(MEAN).map_err(corrupt)?, read(VAR).map_err(corrupt)?);
                if !(mean.iter().all(|m| m.is_finite())
                    && var.iter().all(|v| v.is_finite() && *v >= 0.0))
                {
                    return Err(NnError::invalid(
                        "the observation statistics include NaN or infinite values or a negative variance",
                    ));
                }
                Some(ObservationNormalizer {
                    mean,
                    var,
                    clip,
                    epsilon,
                })
            }
        };
        Ok(Policy {
            algorithm: d.algorithm,
            environment: d.environment,
            net,
            normalizer,
        })
    }
}

fn outputs(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Dqn => "q_values",
        Algorithm::Ppo | Algorithm::A3c => "action_logits",
    }
}

/// `layers.{i}.weight` and `layers.{i}.bias` for each layer, in parameter order.
fn tensor_names(layers: usize) -> impl Iterator<Item = String> {
    (0..layers).flat_map(|l| [format!("layers.{l}.weight"), format!("layers.{l}.bias")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::net::Init;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn policy(algorithm: Algorithm) -> Policy {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let net = Mlp::new(
            vec![4, 32, 16, 2],
            Activation::Relu,
            Init::Uniform,
            &mut rng,
        );
        Policy::new(algorithm, "CartPole-v1", net, None)
    }

    #[test]
    fn saved_and_reloaded_policy_acts_identically() {
        let original = policy(Algorithm::Dqn);
        let (description, bytes) = original.to_parts().unwrap();
        assert_eq!(description["hidden_layers"], serde_json::json!([32, 16]));
        let reloaded = Policy::from_parts(&description, &bytes).unwrap();
        assert_eq!(reloaded, original);
        // Also readable by candle's own loader.
        assert_eq!(
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
                .unwrap()
                .len(),
            6
        );
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut differing_actions = [0; 2];
        for _ in 0..1000 {
            let obs: Vec<f32> = (0..4).map(|_| rng.random_range(-3.0..3.0)).collect();
            let action = original.act(&obs).unwrap();
            assert_eq!(reloaded.act(&obs).unwrap(), action);
            differing_actions[action] += 1;
        }
        assert!(
            differing_actions.iter().all(|&n| n > 0),
            "the test should see both actions"
        );
    }

    fn normalized_policy() -> Policy {
        let mut policy = policy(Algorithm::Ppo);
        policy.normalizer = Some(ObservationNormalizer {
            mean: vec![0.5, -1.0, 2.0, 0.1],
            var: vec![4.0, 0.01, 9.0, 0.0],
            clip: 10.0,
            epsilon: 1e-8,
        });
        policy
    }

    #[test]
    fn normalized_policy_reloads_with_its_statistics() {
        let original = normalized_policy();
        let (description, bytes) = original.to_parts().unwrap();
        assert_eq!(
            description["observation_normalization"],
            serde_json::json!({"clip": 10.0, "epsilon": 1e-8})
        );
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        assert_eq!(tensors.len(), 8);
        assert_eq!(
            tensors["obs_norm.var"].to_vec1::<f32>().unwrap(),
            [4.0, 0.01, 9.0, 0.0]
        );
        // Through text, as a file read by another process would be.
        let text = serde_json::to_string(&description).unwrap();
        let reloaded =
            Policy::from_parts(&serde_json::from_str(&text).unwrap(), &bytes.clone()).unwrap();
        assert_eq!(reloaded, original);
        assert!(reloaded.normalizes_observations());
        let mut unnormalized = original.clone();
        unnormalized.normalizer = None;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut changed_by_normalizing = 0;
        for _ in 0..1000 {
            let obs: Vec<f32> = (0..4).map(|_| rng.random_range(-3.0..3.0)).collect();
            let action = original.act(&obs).unwrap();
            assert_eq!(reloaded.act(&obs).unwrap(), action);
            changed_by_normalizing += usize::from(unnormalized.act(&obs).unwrap() != action);
        }
        assert!(changed_by_normalizing > 0, "the statistics should matter");

        let (_, plain_bytes) = policy(Algorithm::Ppo).to_parts().unwrap();
        let err = Policy::from_parts(&description, &plain_bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not match"), "{err}");
        let mut bad_clip = description.clone();
        bad_clip["observation_normalization"]["clip"] = serde_json::json!(-1.0);
        assert!(Policy::from_parts(&bad_clip, &bytes).is_err());
    }

    #[test]
    fn policies_saved_before_normalization_still_load() {
        // A description as saved before observation normalisation existed.
        let description = serde_json::json!({
            "kind": "rl_policy",
            "algorithm": "ppo",
            "environment": "CartPole-v1",
            "observation_size": 4,
            "actions": 2,
            "hidden_layers": [32, 16],
            "activation": "relu",
            "outputs": "action_logits",
        });
        let original = policy(Algorithm::Ppo);
        let (saved, bytes) = original.to_parts().unwrap();
        assert_eq!(saved, description, "unnormalised policies save as before");
        let reloaded = Policy::from_parts(&description, &bytes).unwrap();
        assert!(!reloaded.normalizes_observations());
        assert_eq!(reloaded, original);
    }

    #[test]
    fn garbage_or_mismatched_parts_are_rejected() {
        let (description, bytes) = policy(Algorithm::Ppo).to_parts().unwrap();
        for garbage in [
            &b""[..],
            b"12345678",
            &bytes[..bytes.len() - 3],
            &[0xff; 64],
        ] {
            let err = Policy::from_parts(&description, garbage).unwrap_err();
            assert!(matches!(err, NnError::Invalid(_)), "{err}");
        }
        let mut nan = bytes.clone();
        let end = nan.len();
        nan[end - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = Policy::from_parts(&description, &nan)
            .unwrap_err()
            .to_string();
        assert!(err.contains("NaN"), "{err}");
        let mut wider = description.clone();
        wider["hidden_layers"] = serde_json::json!([33, 16]);
        let err = Policy::from_parts(&wider, &bytes).unwrap_err().to_string();
        assert!(err.contains("do not match"), "{err}");
        let mut zero = description.clone();
        zero["actions"] = serde_json::json!(0);
        assert!(Policy::from_parts(&zero, &bytes).is_err());
        let mut other = description.clone();
        other["kind"] = serde_json::json!("mlp");
        assert!(Policy::from_parts(&other, &bytes).is_err());
        assert!(Policy::from_parts(&serde_json::json!({"kind": "rl_policy"}), &bytes).is_err());
    }

    #[test]
    fn act_checks_the_observation_size() {
        let err = policy(Algorithm::A3c)
            .act(&[0.0; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expects 4"), "{err}");
    }
}
