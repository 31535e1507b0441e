//! The ML Evaluation tools.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use mlops_core::metric_names;
use mlops_core::{
    Annotations, ArtifactStore, Capability, ModelArtifact, ToolDef, ToolError, ToolImage,
    ToolResponse,
};
use mlops_data::FittedPipeline;
use mlops_data::load_model_input;
use mlops_ml::{ClusterScores, Matrix, MlError, TrainedModel, class_indices, cluster_scores};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::reinforcement::{EvaluateReinforcementInput, evaluate_reinforcement};
use crate::report;
use mlops_ml::{ClassificationReport, classification_report};

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
            ToolDef::with(
                self.store.clone(),
                "evaluate_reinforcement",
                "Evaluate a reinforcement-learning policy",
                "Play a trained policy (train_reinforcement) greedily for `n_episodes` seeded episodes (default 100) on its environment: mean, std, min and max episode return, mean length, and whether the mean reaches the environment's solved return (CartPole-v1 475). Saves `evaluations/<name>/results.json` and the reward curve `reward_curve.png` (training returns, their moving average and the periodic evaluations), also returned as an image.",
                Annotations::WRITES,
                |store, i: EvaluateReinforcementInput, _ctx| async move {
                    evaluate_reinforcement(&store, i).await
                },
            )
            .long_running(),
            ToolDef::with(
                self.store.clone(),
                "compare_models",
                "Compare models",
                "Score several models of the same task on the same data and rank them by one metric (default: accuracy, R² or silhouette; lower-is-better metrics such as rmse or log_loss rank ascending). Returns the table and a Markdown version. Example: {\"model_uris\":[\"models/rf-1\",\"models/xgb-1\"],\"test_data_uri\":\"datasets/test.csv\",\"metric\":\"f1_macro\"}",
                Annotations::READ_ONLY,
                |store, i: CompareInput, _ctx| async move { compare_models(&store, i).await },
            )
            .long_running(),
            ToolDef::with(
                self.store.clone(),
                "save_evaluation_results",
                "Save evaluation results and plots",
                "Evaluate a model on held-out data and save `evaluations/<evaluation_name>/results.json` plus PNG plots (confusion matrix, ROC and precision–recall curves, residuals, cluster scatter, feature importance, learning curve, as the model allows). The plots are also returned as images.",
                Annotations::WRITES,
                |store, i: EvaluationOutputInput, _ctx| async move {
                    save_evaluation_results(&store, i).await
                },
            ),
            ToolDef::with(
                self.store.clone(),
                "generate_evaluation_report",
                "Write an evaluation report",
                "Evaluate a model and write `evaluations/<evaluation_name>/report.md` (plots saved beside it as PNG) and `report.html` (one self-contained page with the plots embedded). Returns their locations and the headline metrics.",
                Annotations::WRITES,
                |store, i: EvaluationOutputInput, _ctx| async move {
                    generate_evaluation_report(&store, i).await
                },
            )
            .long_running(),
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
        self.loaded.artifact.folder_uri()
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
    f: impl FnOnce() -> Result<T, MlError> + Send + 'static,
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
    pub report: mlops_ml::RegressionReport,
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
    let y = mlops_ml::numeric_target(&p.df, &p.target).map_err(ToolError::from)?;
    let (model, x) = (p.loaded.model, p.x);
    let report =
        score(move || Ok(mlops_ml::regression_report(&y, &model.predict_values(&x)?))).await?;
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
    let model_uri = loaded.artifact.folder_uri();
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

/// Input of `compare_models`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareInput {
    /// 2 to 20 model folders of the same task.
    pub model_uris: Vec<String>,
    /// The data every model is scored on (with the target for supervised models).
    #[serde(alias = "data_uri")]
    pub test_data_uri: String,
    /// The metric to rank by (default accuracy, r2 or silhouette), e.g. f1 (macro), roc_auc,
    /// log_loss, rmse, davies_bouldin.
    pub metric: Option<String>,
}

/// One ranked model.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RankedModel {
    pub rank: usize,
    pub model_uri: String,
    pub algorithm: String,
    /// The ranking metric's value.
    pub value: Option<f64>,
    /// Every scalar metric of the model on this data.
    pub metrics: BTreeMap<String, f64>,
}

/// What `compare_models` found.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CompareOutput {
    pub task: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub test_data_uri: String,
    pub ranking: Vec<RankedModel>,
    /// The ranking as a Markdown table.
    pub table: String,
}

impl ToolResponse for CompareOutput {
    fn summary(&self) -> String {
        format!(
            "Ranked {} {} models by {} ({} is better):\n{}",
            self.ranking.len(),
            self.task,
            self.metric,
            if self.higher_is_better {
                "higher"
            } else {
                "lower"
            },
            self.table
        )
    }
}

async fn compare_models(
    store: &ArtifactStore,
    i: CompareInput,
) -> Result<CompareOutput, ToolError> {
    if !(2..=20).contains(&i.model_uris.len()) {
        return Err(ToolError::validation(format!(
            "give 2 to 20 model_uris to compare (got {})",
            i.model_uris.len()
        )));
    }
    let mut evaluations = Vec::new();
    for uri in &i.model_uris {
        evaluations.push(report::evaluate(store, uri, &i.test_data_uri, false).await?);
    }
    let task = evaluations[0].task.clone();
    if let Some(other) = evaluations.iter().find(|e| e.task != task) {
        return Err(ToolError::validation(format!(
            "`{}` is a {} model and `{}` a {} model; compare models of one task",
            evaluations[0].model_uri, task, other.model_uri, other.task
        )));
    }
    // Any name of the shared vocabulary (`f1`, `F1 score`, `f1_macro`) ranks by the same value.
    let metric = match &i.metric {
        Some(name) => metric_names::resolve(name, &task).map_err(ToolError::validation)?,
        None => metric_names::default_for(&task).ok_or_else(|| {
            ToolError::validation(format!("{task} models have no metric to rank by"))
        })?,
    };
    let (metric, lower) = (metric.key.to_string(), metric.lower_is_better);
    let mut ranking: Vec<RankedModel> = evaluations
        .iter()
        .map(|e| {
            let metrics: BTreeMap<String, f64> =
                report::scalar_metrics(&e.metrics).into_iter().collect();
            RankedModel {
                rank: 0,
                model_uri: e.model_uri.clone(),
                algorithm: e.algorithm.clone(),
                value: metrics.get(&metric).copied(),
                metrics,
            }
        })
        .collect();
    // Missing values (e.g. an undefined AUC) rank last.
    ranking.sort_by(|a, b| {
        let key = |v: Option<f64>| match v {
            Some(v) if lower => v,
            Some(v) => -v,
            None => f64::INFINITY,
        };
        key(a.value).total_cmp(&key(b.value))
    });
    for (i, r) in ranking.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    let mut table = format!("| rank | model | algorithm | {metric} |\n|---|---|---|---|\n");
    for r in &ranking {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.rank,
            r.model_uri,
            r.algorithm,
            r.value.map_or("n/a".into(), |v| format!("{v:.4}"))
        ));
    }
    Ok(CompareOutput {
        task,
        metric,
        higher_is_better: !lower,
        test_data_uri: i.test_data_uri,
        ranking,
        table,
    })
}

/// Input of `save_evaluation_results` and `generate_evaluation_report`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationOutputInput {
    /// The model folder (`models/<training_job_name>`).
    #[serde(alias = "model_s3_uri")]
    pub model_uri: String,
    /// Held-out data (with the target for supervised models).
    #[serde(alias = "data_uri", alias = "test_data_s3_uri")]
    pub test_data_uri: String,
    /// Folder name under `evaluations/` (default: the model's name).
    pub evaluation_name: Option<String>,
}

/// Saved evaluation files.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SavedEvaluation {
    pub model_uri: String,
    pub task: String,
    /// The scalar metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Every file written, results or report first, then the plots.
    pub files: Vec<String>,
    #[serde(skip)]
    images: Vec<ToolImage>,
}

impl ToolResponse for SavedEvaluation {
    fn summary(&self) -> String {
        let metrics: Vec<String> = self
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        format!(
            "{} model {}: {}. Wrote {}",
            self.task,
            self.model_uri,
            metrics.join(", "),
            self.files.join(", ")
        )
    }

    fn images(&self) -> Vec<ToolImage> {
        self.images.clone()
    }
}

/// Evaluates with plots and decides the output folder.
async fn evaluate_into_folder(
    store: &ArtifactStore,
    i: &EvaluationOutputInput,
) -> Result<(report::Evaluation, String), ToolError> {
    if let Some(name) = &i.evaluation_name {
        mlops_core::check_folder_name("evaluation_name", name).map_err(ToolError::validation)?;
    }
    let evaluation = report::evaluate(store, &i.model_uri, &i.test_data_uri, true).await?;
    let name = i
        .evaluation_name
        .clone()
        .unwrap_or_else(|| evaluation.model_name.clone());
    Ok((evaluation, format!("evaluations/{name}")))
}

/// Writes the plots as `<folder>/<plot>.png`; returns their locations.
async fn write_plots(
    store: &ArtifactStore,
    folder: &str,
    e: &report::Evaluation,
) -> Result<Vec<String>, ToolError> {
    let mut uris = Vec::new();
    for p in &e.plots {
        let r = store.key(&format!("{folder}/{}.png", p.name))?;
        store.put(&r, Bytes::from(p.png.clone())).await?;
        uris.push(r.uri().to_string());
    }
    Ok(uris)
}

fn saved(e: &report::Evaluation, files: Vec<String>, with_images: bool) -> SavedEvaluation {
    SavedEvaluation {
        model_uri: e.model_uri.clone(),
        task: e.task.clone(),
        metrics: report::scalar_metrics(&e.metrics).into_iter().collect(),
        files,
        images: if with_images {
            e.plots
                .iter()
                .map(|p| ToolImage {
                    mime_type: "image/png".into(),
                    data: Bytes::from(p.png.clone()),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

async fn save_evaluation_results(
    store: &ArtifactStore,
    i: EvaluationOutputInput,
) -> Result<SavedEvaluation, ToolError> {
    let (e, folder) = evaluate_into_folder(store, &i).await?;
    let plots = write_plots(store, &folder, &e).await?;
    let results = report::results_json(&e, &plots);
    let r = store.key(&format!("{folder}/results.json"))?;
    let json = serde_json::to_vec_pretty(&results)
        .map_err(|err| ToolError::Execution(format!("could not encode the results: {err}")))?;
    store.put(&r, Bytes::from(json)).await?;
    let mut files = vec![r.uri().to_string()];
    files.extend(plots);
    Ok(saved(&e, files, true))
}

async fn generate_evaluation_report(
    store: &ArtifactStore,
    i: EvaluationOutputInput,
) -> Result<SavedEvaluation, ToolError> {
    let (e, folder) = evaluate_into_folder(store, &i).await?;
    let plots = write_plots(store, &folder, &e).await?;
    let md = store.key(&format!("{folder}/report.md"))?;
    store.put(&md, Bytes::from(report::markdown(&e))).await?;
    let html = store.key(&format!("{folder}/report.html"))?;
    store.put(&html, Bytes::from(report::html(&e))).await?;
    let mut files = vec![md.uri().to_string(), html.uri().to_string()];
    files.extend(plots);
    Ok(saved(&e, files, false))
}
