//! The ML Training tools.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mlops_core::{
    Annotations, ArtifactStore, Capability, ModelArtifact, ModelManifest, ToolContext, ToolDef,
    ToolError, ToolResponse,
};
use mlops_data::FittedPipeline;
use mlops_data::io::read_table;
use mlops_data::pipeline::{PreprocessOptions, TaskType};
use mlops_data::prepared::{load_pipeline, pipeline_beside, to_model_input};
use polars::prelude::DataFrame;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::TrainError;
use crate::forest::{FitHooks, Forest, ForestParams, MaxFeatures, Targets, argmax};
use crate::jobs::{Job, JobManager, JobSnapshot, JobStatus};
use crate::matrix::{Matrix, class_indices, numeric_target};
use crate::model::TrainedModel;

/// Longest training job name (it names a folder and, on SageMaker, a job).
const MAX_JOB_NAME: usize = 63;

/// Capability 2: ML Training.
pub struct TrainingCapability {
    store: ArtifactStore,
    jobs: Arc<JobManager>,
}

impl TrainingCapability {
    pub fn new(store: ArtifactStore, jobs: Arc<JobManager>) -> Arc<Self> {
        Arc::new(Self { store, jobs })
    }
}

impl Capability for TrainingCapability {
    fn name(&self) -> &'static str {
        "ml_training"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let train = {
            let (store, jobs) = (self.store.clone(), self.jobs.clone());
            ToolDef::new(
                "train_supervised_classifier",
                "Train a classifier",
                "Train a classification model as a named job and save it under `models/<training_job_name>/` with its preprocessing pipeline. `train_data_uri` may be processed data from `preprocess_supervised` (its pipeline is found beside it) or raw data (give `target_column`; a default pipeline is fitted on it). Reports out-of-bag and validation accuracy and feature importances. Progress is reported per tree; with `wait: false` it returns at once and `get_training_metrics` follows the job.",
                Annotations::WRITES,
                move |i: TrainClassifierInput, ctx: ToolContext| {
                    let (store, jobs) = (store.clone(), jobs.clone());
                    async move {
                        train_forest(store, jobs, i, TaskType::Classification, ctx)
                            .await
                            .map_err(ToolError::from)
                    }
                },
            )
        };
        let train_regressor = {
            let (store, jobs) = (self.store.clone(), self.jobs.clone());
            ToolDef::new(
                "train_supervised_regressor",
                "Train a regressor",
                "Train a regression model (numeric target) as a named job and save it under `models/<training_job_name>/` with its preprocessing pipeline. Takes the same inputs as train_supervised_classifier; reports out-of-bag and validation R² and feature importances, with progress per tree.",
                Annotations::WRITES,
                move |i: TrainRegressorInput, ctx: ToolContext| {
                    let (store, jobs) = (store.clone(), jobs.clone());
                    async move {
                        train_forest(store, jobs, i, TaskType::Regression, ctx)
                            .await
                            .map_err(ToolError::from)
                    }
                },
            )
        };
        let metrics = {
            let (store, jobs) = (self.store.clone(), self.jobs.clone());
            ToolDef::new(
                "get_training_metrics",
                "Get training metrics",
                "Status, progress and metrics of a training job by name: live while it runs (trees done, out-of-bag score so far), final once it ends (also for jobs finished before a server restart, read from the saved model).",
                Annotations::READ_ONLY,
                move |i: JobNameInput, _ctx: ToolContext| {
                    let (store, jobs) = (store.clone(), jobs.clone());
                    async move {
                        training_metrics(&store, &jobs, &i.training_job_name)
                            .await
                            .map_err(ToolError::from)
                    }
                },
            )
        };
        let cancel = {
            let jobs = self.jobs.clone();
            ToolDef::new(
                "cancel_training_job",
                "Cancel a training job",
                "Stop a running training job by name. It stops within about a second and is marked cancelled; nothing is saved.",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: true,
                    open_world: false,
                },
                move |i: JobNameInput, _ctx: ToolContext| {
                    let jobs = jobs.clone();
                    async move {
                        let job = jobs.get(&i.training_job_name).ok_or_else(|| {
                            ToolError::validation(format!(
                                "no training job named `{}` has run in this server",
                                i.training_job_name
                            ))
                        })?;
                        job.cancel.cancel();
                        Ok::<_, ToolError>(JobReport(job.snapshot()))
                    }
                },
            )
        };
        vec![train, train_regressor, metrics, cancel]
    }
}

/// The regression algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegressorAlgorithm {
    /// A bagged ensemble of regression trees (histogram split search, parallel).
    RandomForest,
}

/// The classification algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierAlgorithm {
    /// A bagged ensemble of decision trees (histogram split search, parallel).
    RandomForest,
}

/// How many features a split considers: `sqrt`, `log2`, `all`, or a fraction in (0, 1].
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MaxFeaturesInput {
    Named(NamedMaxFeatures),
    Fraction(f64),
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedMaxFeatures {
    Sqrt,
    Log2,
    All,
}

fn default_trees() -> i64 {
    100
}
fn default_two() -> i64 {
    2
}
fn default_one() -> i64 {
    1
}
fn default_bins() -> i64 {
    256
}
fn default_true() -> bool {
    true
}
fn default_seed() -> u64 {
    42
}

/// Random forest settings (scikit-learn's names and defaults).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomForestParams {
    /// Number of trees (1 to 5000).
    #[serde(default = "default_trees")]
    pub n_estimators: i64,
    /// Deepest a tree may grow (1 to 64); unlimited when absent.
    pub max_depth: Option<i64>,
    #[serde(default = "default_two")]
    pub min_samples_split: i64,
    #[serde(default = "default_one")]
    pub min_samples_leaf: i64,
    /// Default: `sqrt` for classification, `all` for regression (scikit-learn's defaults).
    pub max_features: Option<MaxFeaturesInput>,
    /// Train each tree on a bootstrap sample (enables the out-of-bag score).
    #[serde(default = "default_true")]
    pub bootstrap: bool,
    /// Histogram bins per feature (2 to 256).
    #[serde(default = "default_bins")]
    pub max_bins: i64,
}

impl Default for RandomForestParams {
    fn default() -> Self {
        Self {
            n_estimators: default_trees(),
            max_depth: None,
            min_samples_split: default_two(),
            min_samples_leaf: default_one(),
            max_features: None,
            bootstrap: true,
            max_bins: default_bins(),
        }
    }
}

impl RandomForestParams {
    fn validate(&self, seed: u64, task: TaskType) -> Result<ForestParams, TrainError> {
        let range = |name: &str, v: i64, lo: i64, hi: i64| -> Result<usize, TrainError> {
            if (lo..=hi).contains(&v) {
                Ok(v as usize)
            } else {
                Err(TrainError::invalid(format!(
                    "{name} must be between {lo} and {hi} (got {v})"
                )))
            }
        };
        let default = match task {
            TaskType::Classification => MaxFeaturesInput::Named(NamedMaxFeatures::Sqrt),
            TaskType::Regression => MaxFeaturesInput::Named(NamedMaxFeatures::All),
        };
        let max_features = match self.max_features.unwrap_or(default) {
            MaxFeaturesInput::Named(NamedMaxFeatures::Sqrt) => MaxFeatures::Sqrt,
            MaxFeaturesInput::Named(NamedMaxFeatures::Log2) => MaxFeatures::Log2,
            MaxFeaturesInput::Named(NamedMaxFeatures::All) => MaxFeatures::All,
            MaxFeaturesInput::Fraction(f) if f > 0.0 && f <= 1.0 => MaxFeatures::Fraction(f),
            MaxFeaturesInput::Fraction(f) => {
                return Err(TrainError::invalid(format!(
                    "max_features as a fraction must be in (0, 1] (got {f})"
                )));
            }
        };
        Ok(ForestParams {
            n_estimators: range("n_estimators", self.n_estimators, 1, 5000)?,
            max_depth: self
                .max_depth
                .map(|d| range("max_depth", d, 1, 64))
                .transpose()?,
            min_samples_split: range("min_samples_split", self.min_samples_split, 2, i64::MAX)?,
            min_samples_leaf: range("min_samples_leaf", self.min_samples_leaf, 1, i64::MAX)?,
            max_features,
            bootstrap: self.bootstrap,
            max_bins: range("max_bins", self.max_bins, 2, 256)?,
            seed,
        })
    }
}

/// Input of `train_supervised_classifier` and `train_supervised_regressor`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainInput<A> {
    pub algorithm: A,
    /// Training table: processed by `preprocess_supervised`, or raw (then give `target_column`).
    #[serde(alias = "train_data_s3_uri")]
    pub train_data_uri: String,
    /// The target column; required for raw data, optional for processed data (must match its pipeline).
    pub target_column: Option<String>,
    /// A `pipeline.json` to apply, when it is not beside the training data.
    pub pipeline_uri: Option<String>,
    /// A held-out table (raw or processed) to report validation accuracy (or R²) on.
    pub validation_data_uri: Option<String>,
    /// Unique job name (letters, digits, `-`, `_`, `.`); it names the model folder. Generated when absent.
    pub training_job_name: Option<String>,
    #[serde(default)]
    pub hyperparameters: RandomForestParams,
    /// Seed for bootstrap samples and feature choice: the same seed gives the same model.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Replace an existing model of the same name.
    #[serde(default)]
    pub overwrite: bool,
    /// Wait for the job to finish (default). With false, return at once and poll `get_training_metrics`.
    #[serde(default = "default_true")]
    pub wait: bool,
    /// Stop the job if it runs longer than this.
    #[schemars(range(min = 1))]
    pub max_runtime_seconds: Option<u64>,
}

pub type TrainClassifierInput = TrainInput<ClassifierAlgorithm>;
pub type TrainRegressorInput = TrainInput<RegressorAlgorithm>;

/// Names a training job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobNameInput {
    pub training_job_name: String,
}

/// A feature and its importance.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FeatureImportance {
    pub feature: String,
    pub importance: f64,
}

/// A training job's report.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct JobReport(pub JobSnapshot);

impl ToolResponse for JobReport {
    fn summary(&self) -> String {
        let j = &self.0;
        let status = match j.status {
            JobStatus::Running => format!("running, {:.0}% done", j.progress * 100.0),
            JobStatus::Completed => format!("completed in {} ms", j.duration_ms.unwrap_or(0)),
            JobStatus::Failed => "failed".into(),
            JobStatus::Cancelled => "cancelled".into(),
        };
        let mut s = format!(
            "Training job `{}` ({}): {status}",
            j.training_job_name, j.algorithm
        );
        if let Some(m) = j.metrics.as_object() {
            let parts: Vec<String> = m
                .iter()
                .filter_map(|(k, v)| match (v.as_u64(), v.as_f64()) {
                    (Some(n), _) => Some(format!("{k} {n}")),
                    (None, Some(x)) => Some(format!("{k} {x:.4}")),
                    _ => None,
                })
                .collect();
            if !parts.is_empty() {
                s.push_str(&format!("; {}", parts.join(", ")));
            }
        }
        if let Some(uri) = &j.model_uri {
            s.push_str(&format!(". Model: {uri}"));
        }
        if let Some(e) = &j.error {
            s.push_str(&format!(". Error: {e}"));
        }
        s
    }
}

/// Checks a client-chosen job name.
pub fn check_job_name(name: &str) -> Result<(), TrainError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_JOB_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(TrainError::invalid(format!(
            "training_job_name `{name}` must be 1 to {MAX_JOB_NAME} letters, digits, `-`, `_` or `.`, not starting with `.`"
        )))
    }
}

fn generated_job_name() -> String {
    let now = chrono::Utc::now();
    format!(
        "train-{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        now.timestamp_subsec_micros() % 0x10000
    )
}

/// Training data with the pipeline that turns it into model input.
pub struct Prepared {
    pub pipeline: FittedPipeline,
    pub frame: DataFrame,
    pub data_uri: String,
}

/// Finds the pipeline for `train_uri` (given, beside the data, or fitted now on raw data) and
/// returns the model input.
pub async fn prepare_supervised(
    store: &ArtifactStore,
    train_uri: &str,
    target_column: Option<&str>,
    pipeline_uri: Option<&str>,
    task: TaskType,
) -> Result<Prepared, TrainError> {
    let (r, df) = read_table(store, train_uri).await?;
    mlops_data::io::require_rows(&df, r.uri())?;
    let pipeline = match pipeline_uri {
        Some(uri) => load_pipeline(store, uri).await?,
        None => match pipeline_beside(store, &r).await? {
            Some(p) => p,
            None => {
                let target = target_column.ok_or_else(|| {
                    TrainError::invalid(format!("`{}` is raw data (no pipeline.json beside it): give target_column, or preprocess it first with preprocess_supervised", r.uri()))
                })?;
                let df = df.clone();
                let target = target.to_string();
                tokio::task::spawn_blocking(move || {
                    FittedPipeline::fit(&df, Some((&target, task)), &PreprocessOptions::default())
                })
                .await
                .map_err(|e| TrainError::Failed(e.to_string()))??
            }
        },
    };
    let spec = pipeline.target.as_ref().ok_or_else(|| {
        TrainError::invalid(
            "the pipeline has no target column; it was fitted for unsupervised data",
        )
    })?;
    if spec.task != task {
        return Err(TrainError::invalid(format!(
            "the data was prepared for {} but this tool trains {} models",
            spec.task.as_str(),
            task.as_str()
        )));
    }
    if let Some(t) = target_column.filter(|t| *t != spec.name) {
        return Err(TrainError::invalid(format!(
            "target_column `{t}` differs from the pipeline's target `{}`",
            spec.name
        )));
    }
    let frame = to_model_input(store, &r, df, &pipeline).await?;
    if !frame.schema().contains(&spec.name) {
        return Err(TrainError::invalid(format!(
            "`{}` has no target column `{}`",
            r.uri(),
            spec.name
        )));
    }
    Ok(Prepared {
        pipeline,
        frame,
        data_uri: r.uri().into(),
    })
}

async fn train_forest<A: Send + Sync + 'static>(
    store: ArtifactStore,
    jobs: Arc<JobManager>,
    i: TrainInput<A>,
    task: TaskType,
    ctx: ToolContext,
) -> Result<JobReport, TrainError> {
    let params = i.hyperparameters.validate(i.seed, task)?;
    let name = i
        .training_job_name
        .clone()
        .unwrap_or_else(generated_job_name);
    check_job_name(&name)?;
    let manifest_ref = ModelArtifact::manifest_ref(&store, &ModelArtifact::folder_key(&name))?;
    if !i.overwrite && store.exists(&manifest_ref).await? {
        return Err(TrainError::invalid(format!(
            "a model named `{name}` already exists; choose another training_job_name or pass overwrite: true"
        )));
    }
    let job = jobs
        .start(&name, "random_forest")
        .map_err(TrainError::Invalid)?;
    let wait = i.wait;
    let span = tracing::info_span!("training_job", training_job_name = %name);
    let run = {
        let job = job.clone();
        let ctx = ctx.clone();
        async move {
            let _enter = span.enter();
            let result = run_forest_job(&store, &job, &name, &i, task, params, &ctx).await;
            match &result {
                Ok((metrics, uri)) => job.finish(
                    JobStatus::Completed,
                    metrics.clone(),
                    Some(uri.clone()),
                    None,
                ),
                Err(TrainError::Cancelled(_)) => job.finish(
                    JobStatus::Cancelled,
                    serde_json::Value::Null,
                    None,
                    Some("cancelled".into()),
                ),
                Err(e) => job.finish(
                    JobStatus::Failed,
                    serde_json::Value::Null,
                    None,
                    Some(e.to_string()),
                ),
            }
            tracing::info!(status = ?job.snapshot().status, "training job ended");
            result
        }
    };
    if wait {
        run.await?;
    } else {
        tokio::spawn(run);
    }
    Ok(JobReport(job.snapshot()))
}

/// Trains, evaluates on the training and validation data, and saves the model.
async fn run_forest_job<A>(
    store: &ArtifactStore,
    job: &Arc<Job>,
    name: &str,
    i: &TrainInput<A>,
    task: TaskType,
    params: ForestParams,
    ctx: &ToolContext,
) -> Result<(serde_json::Value, String), TrainError> {
    let prepared = prepare_supervised(
        store,
        &i.train_data_uri,
        i.target_column.as_deref(),
        i.pipeline_uri.as_deref(),
        task,
    )
    .await?;
    let pipeline = prepared.pipeline;
    let spec = pipeline
        .target
        .clone()
        .ok_or_else(|| TrainError::invalid("the pipeline has no target"))?;
    let x = Matrix::from_frame(&prepared.frame, &pipeline.feature_names)?;
    let y = Labels::of(&prepared.frame, &spec)?;
    if let Labels::Classes(y, _) = &y
        && y.iter().collect::<std::collections::HashSet<_>>().len() < 2
    {
        return Err(TrainError::invalid(format!(
            "the training data holds only one class of `{}`; a classifier needs at least two",
            spec.name
        )));
    }
    let validation = match &i.validation_data_uri {
        Some(uri) => {
            let df = mlops_data::prepared::load_model_input(store, uri, &pipeline).await?;
            Some((
                Matrix::from_frame(&df, &pipeline.feature_names)?,
                Labels::of(&df, &spec)?,
            ))
        }
        None => None,
    };

    // Cancellation reaches the blocking fit through a flag, set by the job's token, the caller's
    // token (when the caller waits) or the wall-clock limit.
    let cancelled = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    let fit_done = tokio_util::sync::CancellationToken::new();
    {
        let (cancelled, timed_out, fit_done) =
            (cancelled.clone(), timed_out.clone(), fit_done.clone());
        let (job_cancel, caller_cancel) = (job.cancel.clone(), i.wait.then(|| ctx.cancel.clone()));
        let limit = i
            .max_runtime_seconds
            .map(Duration::from_secs)
            .unwrap_or(Duration::MAX);
        tokio::spawn(async move {
            let caller = async {
                match caller_cancel {
                    Some(t) => t.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = fit_done.cancelled() => return,
                _ = job_cancel.cancelled() => {}
                _ = caller => {}
                _ = tokio::time::sleep(limit) => timed_out.store(true, Ordering::Relaxed),
            }
            cancelled.store(true, Ordering::Relaxed);
        });
    }
    let progress = ctx.progress_fn();
    let job_for_fit = job.clone();
    let flag = cancelled.clone();
    let fit = tokio::task::spawn_blocking(move || {
        let on_tree = |done: usize, total: usize| {
            let message = format!("tree {done}/{total}");
            job_for_fit.set_progress(done as f64 / total as f64, Some(message.clone()));
            if let Some(p) = &progress {
                p(done as f64, Some(total as f64), Some(message));
            }
        };
        let hooks = FitHooks {
            cancelled: &flag,
            on_tree: &on_tree,
        };
        let started = std::time::Instant::now();
        let (forest, oob) = Forest::fit(&x, y.targets(), &params, &hooks).ok()?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let train_accuracy = y.score(&forest.predict_raw(&x));
        let validation_accuracy = validation.map(|(vx, vy)| vy.score(&forest.predict_raw(&vx)));
        Some((
            forest,
            oob,
            fit_seconds,
            train_accuracy,
            validation_accuracy,
            params,
        ))
    })
    .await;
    fit_done.cancel();
    let fit = fit.map_err(|e| TrainError::Failed(format!("the training thread stopped: {e}")))?;
    let Some((forest, oob, fit_seconds, train_accuracy, validation_accuracy, params)) = fit else {
        if timed_out.load(Ordering::Relaxed) {
            return Err(TrainError::TimedOut {
                name: name.into(),
                seconds: i.max_runtime_seconds.unwrap_or(0),
            });
        }
        return Err(TrainError::Cancelled(name.into()));
    };
    let metric = match task {
        TaskType::Classification => "accuracy",
        TaskType::Regression => "r2",
    };
    for (step, score) in &oob {
        job.push_metric(*step, &format!("oob_{metric}"), *score);
    }
    let mut importances: Vec<(String, f64)> = pipeline
        .feature_names
        .iter()
        .cloned()
        .zip(forest.feature_importances.iter().copied())
        .collect();
    importances.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut metrics = json!({ format!("train_{metric}"): train_accuracy, "train_rows": prepared.frame.height(), "fit_seconds": fit_seconds });
    if let Some((_, score)) = oob.last() {
        metrics[format!("oob_{metric}")] = json!(score);
    }
    if let Some(v) = validation_accuracy {
        metrics[format!("validation_{metric}")] = json!(v);
    }
    metrics["feature_importances"] = json!(
        importances
            .iter()
            .take(20)
            .map(|(f, v)| json!({"feature": f, "importance": v}))
            .collect::<Vec<_>>()
    );

    let manifest = ModelManifest {
        format_version: 0,
        name: name.into(),
        algorithm: "random_forest".into(),
        task: task.as_str().into(),
        feature_names: pipeline.feature_names.clone(),
        target: Some(spec.name.clone()),
        classes: spec.classes.clone(),
        hyperparameters: json!({
            "n_estimators": params.n_estimators,
            "max_depth": params.max_depth,
            "min_samples_split": params.min_samples_split,
            "min_samples_leaf": params.min_samples_leaf,
            "max_features": format!("{:?}", params.max_features).to_lowercase(),
            "bootstrap": params.bootstrap,
            "max_bins": params.max_bins,
            "seed": params.seed,
        }),
        metrics: metrics.clone(),
        pipeline: Some(
            serde_json::to_value(&pipeline).map_err(|e| TrainError::Failed(e.to_string()))?,
        ),
        training_data_uri: Some(prepared.data_uri.clone()),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        blobs: Default::default(),
    };
    let mut artifact = TrainedModel::RandomForest(forest).to_artifact(manifest)?;
    let saved = artifact.save(store).await?;
    Ok((
        metrics,
        saved.uri().trim_end_matches("/manifest.json").to_string(),
    ))
}

/// The training target: class indices (and the class count) or values.
enum Labels {
    Classes(Vec<u32>, usize),
    Values(Vec<f64>),
}

impl Labels {
    fn of(df: &DataFrame, spec: &mlops_data::pipeline::TargetSpec) -> Result<Self, TrainError> {
        Ok(match spec.task {
            TaskType::Classification => Labels::Classes(
                class_indices(df, &spec.name, &spec.classes)?,
                spec.classes.len(),
            ),
            TaskType::Regression => Labels::Values(numeric_target(df, &spec.name)?),
        })
    }

    fn targets(&self) -> Targets<'_> {
        match self {
            Labels::Classes(y, k) => Targets::Classes { y, n_classes: *k },
            Labels::Values(y) => Targets::Values(y),
        }
    }

    /// Accuracy of class probabilities, or R² of predicted values.
    fn score(&self, predicted: &[f64]) -> f64 {
        match self {
            Labels::Classes(y, k) => accuracy(predicted, y, *k),
            Labels::Values(y) => r2(y, predicted),
        }
    }
}

/// Coefficient of determination (1 is perfect; 0 is no better than the mean).
pub fn r2(y: &[f64], predicted: &[f64]) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let ss_res: f64 = y.iter().zip(predicted).map(|(a, b)| (a - b).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    }
}

/// Share of rows whose most probable class is the true one.
pub fn accuracy(proba: &[f64], y: &[u32], k: usize) -> f64 {
    let correct = y
        .iter()
        .enumerate()
        .filter(|(r, c)| argmax(&proba[r * k..(r + 1) * k]) == **c as usize)
        .count();
    correct as f64 / y.len().max(1) as f64
}

/// A job's report: live from this process, or from the saved model after a restart.
async fn training_metrics(
    store: &ArtifactStore,
    jobs: &JobManager,
    name: &str,
) -> Result<JobReport, TrainError> {
    check_job_name(name)?;
    if let Some(job) = jobs.get(name) {
        return Ok(JobReport(job.snapshot()));
    }
    let (r, manifest) =
        match ModelArtifact::load_manifest(store, &ModelArtifact::folder_key(name)).await {
            Ok(found) => found,
            Err(mlops_core::StoreError::NotFound { .. }) => {
                return Err(TrainError::invalid(format!(
                    "no training job or model named `{name}`"
                )));
            }
            Err(e) => return Err(e.into()),
        };
    Ok(JobReport(JobSnapshot {
        training_job_name: name.into(),
        algorithm: manifest.algorithm,
        status: JobStatus::Completed,
        progress: 1.0,
        message: None,
        started_at: manifest.created_at.clone(),
        finished_at: Some(manifest.created_at),
        duration_ms: None,
        metrics: manifest.metrics,
        metrics_history: Vec::new(),
        model_uri: Some(r.uri().trim_end_matches("/manifest.json").to_string()),
        error: None,
    }))
}
