//! mlops-nn: neural networks and reinforcement learning on candle's CPU backend.
//!
//! - [`mlp`]: multi-layer perceptrons for classification and regression.
//! - [`autoencoder`]: an autoencoder whose latent space is clustered and whose reconstruction
//!   error scores anomalies.
//! - [`rl`]: classic-control environments behind one [`rl::Environment`] trait, and PPO, DQN
//!   and A3C trainers. No maintained Rust crate offers these (or CartPole without a renderer),
//!   so they are written here, after the reference descriptions (Gymnasium for the dynamics,
//!   Stable-Baselines3 for the algorithms' defaults).
//!
//! Weights are stored as safetensors (plain tensors, nothing executable) next to a JSON
//! description of the architecture.

mod autoencoder;
mod error;
mod hooks;
pub mod mlp;
pub mod rl;
mod weights;

pub use autoencoder::layers as autoencoder_layers;
pub use error::NnError;
pub use hooks::{Hooks, Silent, silent};
