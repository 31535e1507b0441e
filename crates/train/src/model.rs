//! Trained models and their artifact form.

use bytes::Bytes;
use mlops_core::{ModelArtifact, ModelManifest};

use crate::error::TrainError;
use crate::forest::Forest;
use crate::matrix::Matrix;

const FOREST_BLOB: &str = "forest.json";

/// A model the server can train, store, load and run.
#[derive(Debug, Clone)]
pub enum TrainedModel {
    RandomForest(Forest),
}

impl TrainedModel {
    /// The algorithm name recorded in manifests.
    pub fn algorithm(&self) -> &'static str {
        match self {
            TrainedModel::RandomForest(_) => "random_forest",
        }
    }

    pub fn n_features(&self) -> usize {
        match self {
            TrainedModel::RandomForest(f) => f.n_features,
        }
    }

    /// Packs the model into an artifact with `manifest` (whose blob list is filled in here).
    pub fn to_artifact(&self, manifest: ModelManifest) -> Result<ModelArtifact, TrainError> {
        match self {
            TrainedModel::RandomForest(f) => {
                let json = serde_json::to_vec(f)
                    .map_err(|e| TrainError::Failed(format!("could not encode the forest: {e}")))?;
                Ok(ModelArtifact::new(
                    manifest,
                    vec![(FOREST_BLOB, "application/json", Bytes::from(json))],
                ))
            }
        }
    }

    /// Decodes a verified artifact.
    pub fn from_artifact(a: &ModelArtifact) -> Result<Self, TrainError> {
        let model = match a.manifest.algorithm.as_str() {
            "random_forest" => {
                let forest: Forest = serde_json::from_slice(a.blob(FOREST_BLOB)?).map_err(|e| {
                    TrainError::invalid(format!("the model's forest blob is not valid: {e}"))
                })?;
                TrainedModel::RandomForest(forest)
            }
            other => {
                return Err(TrainError::invalid(format!(
                    "this server cannot load `{other}` models"
                )));
            }
        };
        if model.n_features() != a.manifest.feature_names.len() {
            return Err(TrainError::invalid(
                "the model's manifest and weights disagree on the number of features",
            ));
        }
        Ok(model)
    }

    fn check_width(&self, x: &Matrix) -> Result<(), TrainError> {
        if x.cols != self.n_features() {
            return Err(TrainError::invalid(format!(
                "the model expects {} features, the data has {}",
                self.n_features(),
                x.cols
            )));
        }
        Ok(())
    }

    /// Class probabilities, row-major `rows × classes` (classifiers only).
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f64>, TrainError> {
        self.check_width(x)?;
        match self {
            TrainedModel::RandomForest(f) if f.classification => Ok(f.predict_raw(x)),
            _ => Err(TrainError::invalid("this model is not a classifier")),
        }
    }

    /// Predicted values (regressors only).
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f64>, TrainError> {
        self.check_width(x)?;
        match self {
            TrainedModel::RandomForest(f) if !f.classification => Ok(f.predict_raw(x)),
            _ => Err(TrainError::invalid("this model is not a regressor")),
        }
    }

    /// Feature importances, summing to 1, when the model has them.
    pub fn feature_importances(&self) -> Option<&[f64]> {
        match self {
            TrainedModel::RandomForest(f) => Some(&f.feature_importances),
        }
    }
}
