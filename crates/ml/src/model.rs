//! Trained models and their artifact form.

use bytes::Bytes;
use mlops_core::{ModelArtifact, ModelManifest};
use mlops_nn::mlp::Task;
use mlops_nn::rl::Algorithm;

use crate::cluster::{Dbscan, KMeans};
use crate::error::MlError;
use crate::forest::Forest;
use crate::gbdt::Gbdt;
use crate::linear::LinearModel;
use crate::matrix::Matrix;
use crate::neural::{self, Autoencoder, WEIGHTS_BLOB, row_major};
use crate::reduce::Pca;

const FOREST_BLOB: &str = "forest.json";
/// The blob of every other model kind: its fitted parameters as JSON.
pub const MODEL_BLOB: &str = "model.json";

/// What a model says about a batch of rows, by the model's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Classifiers: row-major `rows × classes` probabilities, classes in the manifest's order.
    Probabilities(Vec<f64>),
    /// Regressors.
    Values(Vec<f64>),
    /// Clustering models: each row's cluster (-1 for DBSCAN noise), and for an autoencoder each
    /// row's anomaly score.
    Clusters {
        ids: Vec<i64>,
        anomaly: Option<Anomaly>,
    },
    /// PCA: row-major `rows × width` components.
    Components { width: usize, values: Vec<f64> },
    /// Reinforcement-learning policies: the greedy action for each observation row.
    Actions(Vec<usize>),
}

/// An autoencoder's anomaly scores (reconstruction errors) and the score above which a row is
/// an anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub scores: Vec<f64>,
    pub threshold: f64,
}

/// A model the server can train, store, load and run.
pub enum TrainedModel {
    RandomForest(Forest),
    /// Gradient-boosted trees (`xgboost` in the tools, as the SPEC names it).
    Gbdt(Gbdt),
    /// Least squares, ridge, lasso or logistic regression.
    Linear(LinearModel),
    KMeans(KMeans),
    Dbscan(Dbscan),
    Pca(Pca),
    /// A multi-layer perceptron (classifier or regressor).
    NeuralNetwork(mlops_nn::mlp::Mlp),
    Autoencoder(Autoencoder),
    /// A reinforcement-learning policy (PPO, DQN or A3C).
    Policy(mlops_nn::rl::Policy),
}

fn decode<T: serde::de::DeserializeOwned>(a: &ModelArtifact, blob: &str) -> Result<T, MlError> {
    serde_json::from_slice(a.blob(blob)?).map_err(|e| {
        MlError::invalid(format!(
            "the model's `{blob}` is not a valid {} model: {e}",
            a.manifest.algorithm
        ))
    })
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Bytes, MlError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| MlError::Failed(format!("could not encode the model: {e}")))
}

impl TrainedModel {
    /// The algorithm name recorded in manifests.
    pub fn algorithm(&self) -> &'static str {
        match self {
            TrainedModel::RandomForest(_) => "random_forest",
            TrainedModel::Gbdt(_) => "xgboost",
            TrainedModel::Linear(m) if m.is_classifier() => "logistic_regression",
            TrainedModel::Linear(_) => "linear",
            TrainedModel::KMeans(_) => "kmeans",
            TrainedModel::Dbscan(_) => "dbscan",
            TrainedModel::Pca(_) => "pca",
            TrainedModel::NeuralNetwork(_) => "neural_network",
            TrainedModel::Autoencoder(_) => "autoencoder",
            TrainedModel::Policy(p) => match p.algorithm() {
                Algorithm::Ppo => "ppo",
                Algorithm::Dqn => "dqn",
                Algorithm::A3c => "a3c",
            },
        }
    }

    pub fn n_features(&self) -> usize {
        match self {
            TrainedModel::RandomForest(f) => f.n_features,
            TrainedModel::Gbdt(m) => m.n_features,
            TrainedModel::Linear(m) => m.n_features,
            TrainedModel::KMeans(m) => m.n_features,
            TrainedModel::Dbscan(m) => m.n_features,
            TrainedModel::Pca(m) => m.n_features,
            TrainedModel::NeuralNetwork(m) => m.spec().inputs,
            TrainedModel::Autoencoder(m) => m.network.spec().inputs,
            TrainedModel::Policy(p) => p.observation_size(),
        }
    }

    /// Packs the model and `extra` blobs into an artifact with `manifest` (whose blob list is
    /// filled in here).
    pub fn to_artifact(
        &self,
        manifest: ModelManifest,
        mut extra: Vec<(&str, &str, Bytes)>,
    ) -> Result<ModelArtifact, MlError> {
        let with_weights = |(description, weights)| (MODEL_BLOB, description, Some(weights));
        let (name, bytes, weights) = match self {
            TrainedModel::RandomForest(f) => (FOREST_BLOB, encode(f)?, None),
            TrainedModel::Gbdt(m) => (MODEL_BLOB, encode(m)?, None),
            TrainedModel::Linear(m) => (MODEL_BLOB, encode(m)?, None),
            TrainedModel::KMeans(m) => (MODEL_BLOB, encode(m)?, None),
            TrainedModel::Dbscan(m) => (MODEL_BLOB, encode(m)?, None),
            TrainedModel::Pca(m) => (MODEL_BLOB, encode(m)?, None),
            TrainedModel::NeuralNetwork(m) => with_weights(neural::mlp_parts(m)?),
            TrainedModel::Autoencoder(m) => with_weights(neural::autoencoder_parts(m)?),
            TrainedModel::Policy(p) => with_weights(neural::policy_parts(p)?),
        };
        if let Some(weights) = weights {
            extra.push((WEIGHTS_BLOB, "application/octet-stream", weights));
        }
        extra.push((name, "application/json", bytes));
        Ok(ModelArtifact::new(manifest, extra))
    }

    /// Decodes a verified artifact.
    pub fn from_artifact(a: &ModelArtifact) -> Result<Self, MlError> {
        let model = match a.manifest.algorithm.as_str() {
            "random_forest" => TrainedModel::RandomForest(decode(a, FOREST_BLOB)?),
            "xgboost" => TrainedModel::Gbdt(decode(a, MODEL_BLOB)?),
            "linear" | "logistic_regression" => TrainedModel::Linear(decode(a, MODEL_BLOB)?),
            "kmeans" => TrainedModel::KMeans(decode(a, MODEL_BLOB)?),
            "dbscan" => TrainedModel::Dbscan(decode(a, MODEL_BLOB)?),
            "pca" => TrainedModel::Pca(decode(a, MODEL_BLOB)?),
            "neural_network" => TrainedModel::NeuralNetwork(neural::mlp_from_parts(
                decode(a, MODEL_BLOB)?,
                a.blob(WEIGHTS_BLOB)?,
            )?),
            "autoencoder" => TrainedModel::Autoencoder(neural::autoencoder_from_parts(
                decode(a, MODEL_BLOB)?,
                a.blob(WEIGHTS_BLOB)?,
            )?),
            "ppo" | "dqn" | "a3c" => TrainedModel::Policy(neural::policy_from_parts(
                decode(a, MODEL_BLOB)?,
                a.blob(WEIGHTS_BLOB)?,
            )?),
            "tsne" => {
                return Err(MlError::invalid(
                    "a t-SNE result embeds its own training rows and cannot score other data; read its embedding file instead",
                ));
            }
            other => {
                return Err(MlError::invalid(format!(
                    "this server cannot load `{other}` models"
                )));
            }
        };
        if model.n_features() != a.manifest.feature_names.len() {
            return Err(MlError::invalid(
                "the model's manifest and weights disagree on the number of features",
            ));
        }
        Ok(model)
    }

    fn check_width(&self, x: &Matrix) -> Result<(), MlError> {
        if x.cols != self.n_features() {
            return Err(MlError::invalid(format!(
                "the model expects {} features, the data has {}",
                self.n_features(),
                x.cols
            )));
        }
        Ok(())
    }

    /// Class probabilities, row-major `rows × classes` (classifiers only).
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f64>, MlError> {
        self.check_width(x)?;
        match self {
            TrainedModel::RandomForest(f) if f.classification => Ok(f.predict_raw(x)),
            TrainedModel::Gbdt(m) if m.classification => Ok(m.predict_raw(x)),
            TrainedModel::Linear(m) if m.is_classifier() => Ok(m.predict_raw(x)),
            TrainedModel::NeuralNetwork(m) if m.spec().task == Task::Classification => {
                Ok(m.predict(&row_major(x), x.rows)?)
            }
            _ => Err(MlError::invalid(format!(
                "this {} model is not a classifier",
                self.algorithm()
            ))),
        }
    }

    /// Predicted values (regressors only).
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f64>, MlError> {
        self.check_width(x)?;
        match self {
            TrainedModel::RandomForest(f) if !f.classification => Ok(f.predict_raw(x)),
            TrainedModel::Gbdt(m) if !m.classification => Ok(m.predict_raw(x)),
            TrainedModel::Linear(m) if !m.is_classifier() => Ok(m.predict_raw(x)),
            TrainedModel::NeuralNetwork(m) if m.spec().task == Task::Regression => {
                Ok(m.predict(&row_major(x), x.rows)?)
            }
            _ => Err(MlError::invalid(format!(
                "this {} model is not a regressor",
                self.algorithm()
            ))),
        }
    }

    /// Cluster of each row, -1 for noise (clustering models only).
    pub fn predict_clusters(&self, x: &Matrix) -> Result<Vec<i64>, MlError> {
        self.check_width(x)?;
        match self {
            TrainedModel::KMeans(m) => Ok(m.predict(x)),
            TrainedModel::Dbscan(m) => m.predict(x),
            TrainedModel::Autoencoder(m) => m.predict(x),
            _ => Err(MlError::invalid(format!(
                "this {} model is not a clustering model",
                self.algorithm()
            ))),
        }
    }

    /// What the model says about each row of `x`, whatever its kind: class probabilities, values,
    /// clusters (with anomaly scores for an autoencoder), projected components or greedy actions.
    pub fn predict(&self, x: &Matrix) -> Result<Prediction, MlError> {
        self.check_width(x)?;
        Ok(match self {
            TrainedModel::RandomForest(f) if f.classification => {
                Prediction::Probabilities(self.predict_proba(x)?)
            }
            TrainedModel::Gbdt(m) if m.classification => {
                Prediction::Probabilities(self.predict_proba(x)?)
            }
            TrainedModel::Linear(m) if m.is_classifier() => {
                Prediction::Probabilities(self.predict_proba(x)?)
            }
            TrainedModel::NeuralNetwork(m) if m.spec().task == Task::Classification => {
                Prediction::Probabilities(self.predict_proba(x)?)
            }
            TrainedModel::RandomForest(_)
            | TrainedModel::Gbdt(_)
            | TrainedModel::Linear(_)
            | TrainedModel::NeuralNetwork(_) => Prediction::Values(self.predict_values(x)?),
            TrainedModel::KMeans(_) | TrainedModel::Dbscan(_) => Prediction::Clusters {
                ids: self.predict_clusters(x)?,
                anomaly: None,
            },
            TrainedModel::Autoencoder(a) => Prediction::Clusters {
                ids: a.predict(x)?,
                anomaly: Some(Anomaly {
                    scores: a.network.reconstruction_errors(&row_major(x), x.rows)?,
                    threshold: a.threshold,
                }),
            },
            TrainedModel::Pca(p) => Prediction::Components {
                width: p.components.len(),
                values: p.transform(x),
            },
            TrainedModel::Policy(p) => {
                let rows = row_major(x);
                let actions = rows
                    .chunks(x.cols.max(1))
                    .take(x.rows)
                    .map(|observation| p.act(observation))
                    .collect::<Result<Vec<_>, _>>()?;
                Prediction::Actions(actions)
            }
        })
    }

    /// Feature importances, summing to 1, when the model has them.
    pub fn feature_importances(&self) -> Option<Vec<f64>> {
        match self {
            TrainedModel::RandomForest(f) => Some(f.feature_importances.clone()),
            TrainedModel::Gbdt(m) => Some(m.feature_importances.clone()),
            TrainedModel::Linear(m) => Some(m.importances()),
            _ => None,
        }
    }
}
