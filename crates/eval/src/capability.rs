//! The ML Evaluation tools.

use std::sync::Arc;

use mlops_core::{
    Annotations, ArtifactStore, Capability, ModelArtifact, ToolDef, ToolError, ToolResponse,
};
use mlops_data::FittedPipeline;
use mlops_data::prepared::load_model_input;
use mlops_train::cluster::{ClusterScores, cluster_scores};
use mlops_train::matrix::{Matrix, class_indices};
use mlops_train::{TrainError, TrainedModel};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::{ClassificationReport, classification_report};

/// Capability 3: ML Evaluation.
pub struct EvaluationCapability {
    store: ArtifactStore,
}

impl EvaluationCapability {
    pub fn new(store: ArtifactStore) -> Arc<Self> {
        Arc::new(Self { store })
    }
}

impl Capability for EvaluationCapability {
    fn name(&self) -> &'static str {
        "ml_evaluation"
    }

    fn tools(&self) -> Vec<ToolDef> {
        vec![
            ToolDef::with(
                self.store.clone(),
                "evaluate_classifier",
                "Evaluate a classifier",
                "Score a trained classifier on held-out data: accuracy, precision/recall/F1 per class and macro/weighted, ROC-AUC, log loss and the confusion matrix. `test_data_uri` may be raw data (the model applies its own preprocessing pipeline) or data processed by the same pipeline.",
                Annotations::READ_ONLY,
                |store, i: EvaluateInput, _ctx| async move { evaluate_classifier(&store, i).await },
            ),
            ToolDef::with(
                self.store.clone(),
                "evaluate_regressor",
                "Evaluate a regressor",
                "Score a trained regressor on held-out data: MAE, MSE, RMSE, R² and MAPE. `test_data_uri` may be raw data (the model applies its own preprocessing pipeline) or data processed by the same pipeline.",
                Annotations::READ_ONLY,
                |store, i: EvaluateInput, _ctx| async move { evaluate_regressor(&store, i).await },
            ),
            ToolDef::with(
                self.store.clone(),
                "evaluate_clustering",
                "Evaluate a clustering model",
                "Assign rows to a trained clustering model's clusters and score them: silhouette (higher is better, -1 to 1), Davies–Bouldin (lower is better) and Calinski–Harabasz (higher is better), with cluster sizes and noise count. `data_uri` may be raw data (the model applies its own pipeline).",
                Annotations::READ_ONLY,
                |store, i: EvaluateClusteringInput, _ctx| async move {
                    evaluate_clustering(&store, i).await
                },
            ),
        ]
    }
}

/// A model loaded for evaluation, with its pipeline.
pub struct LoadedModel {
    pub artifact: ModelArtifact,
    pub model: TrainedModel,
    pub pipeline: FittedPipeline,
}

/// Loads and verifies a model; refuses one of another task than `task`.
pub async fn load_for_task(
    store: &ArtifactStore,
    model_uri: &str,
    task: &str,
    evaluator: &str,
) -> Result<LoadedModel, ToolError> {
    let artifact = ModelArtifact::load(store, model_uri).await?;
    if artifact.manifest.task != task {
        return Err(ToolError::validation(format!(
            "`{model_uri}` is a {} model; {evaluator} evaluates {task} models",
            artifact.manifest.task
        )));
    }
    let model = TrainedModel::from_artifact(&artifact)?;
    let pipeline: FittedPipeline = artifact
        .manifest
        .pipeline
        .clone()
        .ok_or_else(|| {
            ToolError::validation(format!("`{model_uri}` has no preprocessing pipeline"))
        })
        .and_then(|p| {
            serde_json::from_value(p).map_err(|e| {
                ToolError::Execution(format!("the model's pipeline is not valid: {e}"))
            })
        })?;
    Ok(LoadedModel {
        artifact,
        model,
        pipeline,
    })
}

/// Input of `evaluate_classifier` and `evaluate_regressor`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateInput {
    /// The model folder (`models/<training_job_name>`) or its manifest.json.
    #[serde(alias = "model_s3_uri")]
    pub model_uri: String,
    /// Held-out data with the target column.
    #[serde(alias = "test_data_s3_uri")]
    pub test_data_uri: String,
}

/// What `evaluate_classifier` measured.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluateClassifierOutput {
    pub model_uri: String,
    pub test_data_uri: String,
    pub rows: usize,
    #[serde(flatten)]
    pub report: ClassificationReport,
}

impl ToolResponse for EvaluateClassifierOutput {
    fn summary(&self) -> String {
        let r = &self.report;
        format!(
            "On {} rows: accuracy {:.4}, F1 macro {:.4}, precision macro {:.4}, recall macro {:.4}{}, log loss {:.4}. Confusion matrix (rows = true {}): {:?}",
            self.rows,
            r.accuracy,
            r.f1_macro,
            r.precision_macro,
            r.recall_macro,
            r.roc_auc
                .map(|a| format!(", ROC-AUC {a:.4}"))
                .unwrap_or_default(),
            r.log_loss,
            r.classes.join("/"),
            r.confusion_matrix
        )
    }
}

/// A model and held-out data ready to score.
struct Prepared {
    loaded: LoadedModel,
    df: polars::prelude::DataFrame,
    x: Matrix,
    target: String,
}

impl Prepared {
    /// The model's folder, as results report it.
    fn model_uri(&self) -> String {
        self.loaded
            .artifact
            .uri
            .clone()
            .unwrap_or_default()
            .trim_end_matches("/manifest.json")
            .into()
    }
}

/// Loads a `task` model and its evaluation data (through the model's pipeline), checking the data
/// has rows and the target.
async fn prepare(
    store: &ArtifactStore,
    i: &EvaluateInput,
    task: &str,
    evaluator: &str,
) -> Result<Prepared, ToolError> {
    let loaded = load_for_task(store, &i.model_uri, task, evaluator).await?;
    let manifest = &loaded.artifact.manifest;
    let target = manifest
        .target
        .clone()
        .ok_or_else(|| ToolError::validation("the model has no target column"))?;
    let df = load_model_input(store, &i.test_data_uri, &loaded.pipeline).await?;
    if !df.schema().contains(&target) {
        return Err(ToolError::validation(format!(
            "`{}` has no target column `{target}` to compare predictions with",
            i.test_data_uri
        )));
    }
    if df.height() == 0 {
        return Err(ToolError::validation(format!(
            "`{}` has no rows to evaluate",
            i.test_data_uri
        )));
    }
    let x = Matrix::from_frame(&df, &manifest.feature_names).map_err(ToolError::from)?;
    Ok(Prepared {
        loaded,
        df,
        x,
        target,
    })
}

/// Runs a scoring function off the async threads.
async fn score<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TrainError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError::Execution(format!("evaluation stopped: {e}")))?
        .map_err(ToolError::from)
}

async fn evaluate_classifier(
    store: &ArtifactStore,
    i: EvaluateInput,
) -> Result<EvaluateClassifierOutput, ToolError> {
    let p = prepare(store, &i, "classification", "evaluate_classifier").await?;
    let (model_uri, rows) = (p.model_uri(), p.df.height());
    let classes = p.loaded.artifact.manifest.classes.clone();
    let y = class_indices(&p.df, &p.target, &classes).map_err(ToolError::from)?;
    let (model, x) = (p.loaded.model, p.x);
    let report = score(move || {
        Ok(classification_report(
            &y,
            &model.predict_proba(&x)?,
            &classes,
        ))
    })
    .await?;
    Ok(EvaluateClassifierOutput {
        model_uri,
        test_data_uri: i.test_data_uri,
        rows,
        report,
    })
}

/// What `evaluate_regressor` measured.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluateRegressorOutput {
    pub model_uri: String,
    pub test_data_uri: String,
    pub rows: usize,
    #[serde(flatten)]
    pub report: crate::metrics::RegressionReport,
}

impl ToolResponse for EvaluateRegressorOutput {
    fn summary(&self) -> String {
        let r = &self.report;
        format!(
            "On {} rows: R² {:.4}, RMSE {:.4}, MAE {:.4}, MSE {:.4}, MAPE {:.4}",
            self.rows, r.r2, r.rmse, r.mae, r.mse, r.mape
        )
    }
}

async fn evaluate_regressor(
    store: &ArtifactStore,
    i: EvaluateInput,
) -> Result<EvaluateRegressorOutput, ToolError> {
    let p = prepare(store, &i, "regression", "evaluate_regressor").await?;
    let (model_uri, rows) = (p.model_uri(), p.df.height());
    let y = mlops_train::matrix::numeric_target(&p.df, &p.target).map_err(ToolError::from)?;
    let (model, x) = (p.loaded.model, p.x);
    let report = score(move || {
        Ok(crate::metrics::regression_report(
            &y,
            &model.predict_values(&x)?,
        ))
    })
    .await?;
    Ok(EvaluateRegressorOutput {
        model_uri,
        test_data_uri: i.test_data_uri,
        rows,
        report,
    })
}

/// Input of `evaluate_clustering`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateClusteringInput {
    /// The clustering model folder (`models/<training_job_name>`).
    #[serde(alias = "model_s3_uri")]
    pub model_uri: String,
    /// The rows to assign and score.
    #[serde(alias = "data_s3_uri", alias = "test_data_uri")]
    pub data_uri: String,
    /// Seed of the row sample the silhouette uses beyond 5000 rows.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_seed() -> u64 {
    42
}

/// What `evaluate_clustering` measured.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluateClusteringOutput {
    pub model_uri: String,
    pub data_uri: String,
    pub rows: usize,
    #[serde(flatten)]
    pub scores: ClusterScores,
}

impl ToolResponse for EvaluateClusteringOutput {
    fn summary(&self) -> String {
        let s = &self.scores;
        let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
        format!(
            "On {} rows: {} clusters (sizes {:?}), {} noise; silhouette {}, Davies–Bouldin {}, Calinski–Harabasz {}",
            self.rows,
            s.n_clusters,
            s.cluster_sizes,
            s.n_noise,
            f(s.silhouette),
            f(s.davies_bouldin),
            f(s.calinski_harabasz)
        )
    }
}

async fn evaluate_clustering(
    store: &ArtifactStore,
    i: EvaluateClusteringInput,
) -> Result<EvaluateClusteringOutput, ToolError> {
    let loaded = load_for_task(store, &i.model_uri, "clustering", "evaluate_clustering").await?;
    let df = load_model_input(store, &i.data_uri, &loaded.pipeline).await?;
    if df.height() == 0 {
        return Err(ToolError::validation(format!(
            "`{}` has no rows to evaluate",
            i.data_uri
        )));
    }
    let x = Matrix::from_frame(&df, &loaded.artifact.manifest.feature_names)
        .map_err(ToolError::from)?;
    let model_uri = loaded
        .artifact
        .uri
        .clone()
        .unwrap_or_default()
        .trim_end_matches("/manifest.json")
        .to_string();
    let (model, rows, seed) = (loaded.model, x.rows, i.seed);
    let scores = score(move || {
        let labels = model.predict_clusters(&x)?;
        Ok(cluster_scores(&x, &labels, seed))
    })
    .await?;
    Ok(EvaluateClusteringOutput {
        model_uri,
        data_uri: i.data_uri,
        rows,
        scores,
    })
}
