//! The algorithms of each task, as tools name them (`random_forest`, `xgboost`, …). Training,
//! tuning and the tool schemas share these enums, so an algorithm is spelt one way everywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The regression algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegressorAlgorithm {
    /// Least squares; `penalty: ridge|lasso` for regularisation.
    Linear,
    /// Gradient-boosted trees (XGBoost's algorithm).
    Xgboost,
    /// A bagged ensemble of regression trees.
    RandomForest,
    /// A multi-layer perceptron.
    NeuralNetwork,
}

/// The classification algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierAlgorithm {
    /// A bagged ensemble of decision trees.
    RandomForest,
    /// Gradient-boosted trees (XGBoost's algorithm); one-vs-rest beyond two classes.
    Xgboost,
    /// A linear baseline with class probabilities.
    LogisticRegression,
    /// A multi-layer perceptron.
    NeuralNetwork,
}

/// The clustering algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClusteringAlgorithm {
    Kmeans,
    Dbscan,
    /// k-means on an autoencoder's latent codes; also scores anomalies.
    Autoencoder,
}

/// The reinforcement-learning algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReinforcementAlgorithm {
    /// Proximal Policy Optimization (clipped, GAE, vectorised environments).
    Ppo,
    /// Deep Q-Network (replay buffer, target network); can pre-train on offline transitions.
    Dqn,
    /// Asynchronous advantage actor-critic: parallel actor-learners sharing parameters.
    A3c,
}

impl ReinforcementAlgorithm {
    pub fn nn(self) -> mlops_nn::rl::Algorithm {
        match self {
            ReinforcementAlgorithm::Ppo => mlops_nn::rl::Algorithm::Ppo,
            ReinforcementAlgorithm::Dqn => mlops_nn::rl::Algorithm::Dqn,
            ReinforcementAlgorithm::A3c => mlops_nn::rl::Algorithm::A3c,
        }
    }
}

/// The dimension-reduction algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReductionAlgorithm {
    Pca,
    Tsne,
}
