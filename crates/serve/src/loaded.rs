//! A model ready to answer: the verified artifact decoded once, its fitted pipeline, and what it
//! says about rows, shaped per model kind (labels and probabilities, values, clusters, components,
//! actions).

use mlops_core::{ArtifactStore, ModelArtifact, ToolError};
use mlops_data::FittedPipeline;
use mlops_ml::{Matrix, Prediction, TrainedModel};
use serde_json::{Map, Value, json};

/// Where a loaded model came from: the registry's name and version, or a folder given directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The registered model's name, when it was resolved through the registry.
    pub model_name: Option<String>,
    pub version: Option<i64>,
    /// The model folder (`file://…/models/<job>` or `s3://…`).
    pub artifact_uri: String,
}

/// A model with where it came from: what answers a request.
#[derive(Clone)]
pub struct Served {
    pub origin: Origin,
    pub model: std::sync::Arc<LoadedModel>,
}

/// A decoded, verified model.
pub struct LoadedModel {
    pub model: TrainedModel,
    /// Raw data goes through this before the model (absent for reinforcement-learning policies,
    /// which take observations as they are).
    pub pipeline: Option<FittedPipeline>,
    pub task: String,
    pub algorithm: String,
    /// The model's input features, after the pipeline.
    pub feature_names: Vec<String>,
    pub classes: Vec<String>,
    /// What the blobs weigh: the cache's measure of the model's size.
    pub size_bytes: u64,
}

/// The raw input columns a model takes, with their kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputColumn {
    pub name: String,
    /// Numbers (true) or text (false).
    pub numeric: bool,
}

/// What a model said about a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub rows: usize,
    pub prediction: Prediction,
    /// Per text column, the values training never saw.
    pub unseen: Vec<(String, Vec<String>)>,
}

impl LoadedModel {
    /// Loads and verifies the model folder `uri` (every checksum first; nothing executable).
    pub async fn load(store: &ArtifactStore, uri: &str) -> Result<Self, ToolError> {
        let artifact = ModelArtifact::load(store, uri)
            .await
            .map_err(|e| match e {
                mlops_core::StoreError::NotFound { .. } => ToolError::validation(format!(
                    "no model at `{uri}`; pass a folder a training job wrote (models/<training_job_name>)"
                )),
                e => e.into(),
            })?;
        let model = TrainedModel::from_artifact(&artifact)?;
        let m = &artifact.manifest;
        let pipeline =
            match &m.pipeline {
                Some(p) => Some(serde_json::from_value::<FittedPipeline>(p.clone()).map_err(
                    |e| ToolError::Execution(format!("the model's pipeline is not valid: {e}")),
                )?),
                None if m.task == "reinforcement" => None,
                None => {
                    return Err(ToolError::validation(format!(
                        "`{uri}` has no preprocessing pipeline to apply to raw data"
                    )));
                }
            };
        Ok(Self {
            size_bytes: artifact.blobs.values().map(|b| b.len() as u64).sum(),
            task: m.task.clone(),
            algorithm: m.algorithm.clone(),
            feature_names: m.feature_names.clone(),
            classes: m.classes.clone(),
            model,
            pipeline,
        })
    }

    /// The raw columns the model takes, in order: the pipeline's inputs, or a policy's
    /// observation columns.
    pub fn input_columns(&self) -> Vec<InputColumn> {
        match &self.pipeline {
            Some(p) => p
                .numeric
                .iter()
                .map(|n| InputColumn {
                    name: n.column.clone(),
                    numeric: true,
                })
                .chain(p.categorical.iter().map(|c| InputColumn {
                    name: c.column.clone(),
                    numeric: false,
                }))
                .collect(),
            None => self
                .feature_names
                .iter()
                .map(|f| InputColumn {
                    name: f.clone(),
                    numeric: true,
                })
                .collect(),
        }
    }

    /// How a text value training never saw is encoded, in words.
    pub fn unseen_rule(&self) -> &'static str {
        self.pipeline
            .as_ref()
            .map_or("", FittedPipeline::unseen_rule)
    }

    /// Scores rows given as JSON objects of raw columns.
    pub fn score_records(&self, records: &[Map<String, Value>]) -> Result<Scored, ToolError> {
        if records.is_empty() {
            return Err(ToolError::validation("there are no rows to predict"));
        }
        let (x, unseen) = match &self.pipeline {
            Some(p) => {
                let input = p.transform_records(records)?;
                let x = Matrix {
                    rows: input.rows,
                    cols: self.feature_names.len(),
                    data: input.data,
                };
                (x, input.unseen.into_iter().collect())
            }
            None => (self.observations(records)?, Vec::new()),
        };
        self.score_matrix(x, unseen)
    }

    /// Scores rows already through the pipeline (features in the model's order).
    pub fn score_matrix(
        &self,
        x: Matrix,
        unseen: Vec<(String, Vec<String>)>,
    ) -> Result<Scored, ToolError> {
        let prediction = self.model.predict(&x)?;
        Ok(Scored {
            rows: x.rows,
            prediction,
            unseen,
        })
    }

    /// A policy's observation rows: `obs_0`, `obs_1`, … as numbers.
    fn observations(&self, records: &[Map<String, Value>]) -> Result<Matrix, ToolError> {
        let rows = records.len();
        let mut data = Vec::with_capacity(rows * self.feature_names.len());
        for name in &self.feature_names {
            for (i, r) in records.iter().enumerate() {
                match r.get(name).and_then(Value::as_f64) {
                    Some(v) => data.push(v),
                    None => {
                        return Err(ToolError::validation(format!(
                            "row {i}: the policy needs the observation `{name}` as a number ({} observations: {})",
                            self.feature_names.len(),
                            self.feature_names.join(", ")
                        )));
                    }
                }
            }
        }
        Ok(Matrix {
            rows,
            cols: self.feature_names.len(),
            data,
        })
    }

    /// Row `r` of `scored` as a JSON object: `label` and `probabilities` (classifiers), `value`
    /// (regressors), `cluster` with `anomaly_score` and `anomaly` (autoencoders), `components`
    /// (PCA) or `action` (policies).
    pub fn row(&self, scored: &Scored, r: usize) -> Map<String, Value> {
        let mut out = Map::new();
        match &scored.prediction {
            Prediction::Probabilities(p) => {
                let k = self.classes.len().max(1);
                let probs = &p[r * k..(r + 1) * k];
                out.insert("label".into(), json!(self.label(probs)));
                out.insert(
                    "probabilities".into(),
                    Value::Object(
                        self.classes
                            .iter()
                            .zip(probs)
                            .map(|(c, v)| (c.clone(), json!(v)))
                            .collect(),
                    ),
                );
            }
            Prediction::Values(v) => {
                out.insert("value".into(), json!(v[r]));
            }
            Prediction::Clusters { ids, anomaly } => {
                out.insert("cluster".into(), json!(ids[r]));
                if let Some(a) = anomaly {
                    out.insert("anomaly_score".into(), json!(a.scores[r]));
                    out.insert("anomaly".into(), json!(a.scores[r] > a.threshold));
                }
            }
            Prediction::Components { width, values } => {
                out.insert(
                    "components".into(),
                    json!(values[r * width..(r + 1) * width]),
                );
            }
            Prediction::Actions(a) => {
                out.insert("action".into(), json!(a[r]));
            }
        }
        out
    }

    /// The most probable class (the first on a tie, as argmax does everywhere else).
    pub fn label(&self, probabilities: &[f64]) -> String {
        let best = mlops_ml::argmax(probabilities);
        self.classes.get(best).cloned().unwrap_or_default()
    }
}
