//! The ML Training tools.

use std::sync::Arc;

use mlops_core::{
    Annotations, ArtifactStore, Capability, ModelArtifact, ModelManifest, ToolContext, ToolDef,
    ToolError, ToolResponse,
};
use mlops_data::pipeline::TaskType;
use polars::prelude::Column;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::TrainError;
use crate::jobs::{JobManager, JobSnapshot, JobStatus, MetricPoint};
use crate::matrix::Matrix;
use crate::model::TrainedModel;
use crate::params::{
    DbscanParams, KMeansParams, LinearParams, LogisticParams, PcaParams, RandomForestParams,
    TsneParams, XgboostParams, decode,
};
use crate::runner::{
    HISTORY_BLOB, JobOptions, check_job_name, manifest, run_blocking, save_model, start_job,
};
use crate::supervised::{Labels, Supervised, prepare, prepare_supervised, score};
use crate::unsupervised::{Clustering, Reduction, embedding_columns, write_rows};

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

/// The state every training tool needs.
#[derive(Clone)]
struct Shared {
    store: ArtifactStore,
    jobs: Arc<JobManager>,
}

impl Capability for TrainingCapability {
    fn name(&self) -> &'static str {
        "ml_training"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let shared = Shared {
            store: self.store.clone(),
            jobs: self.jobs.clone(),
        };
        vec![
            ToolDef::with(
                shared.clone(),
                "train_supervised_classifier",
                "Train a classifier",
                "Train a classification model (random_forest, xgboost = gradient-boosted trees, logistic_regression) as a named job; saved under `models/<training_job_name>/` with its preprocessing pipeline. `train_data_uri`: data from `preprocess_supervised` (its pipeline is found beside it) or raw data with `target_column`. Settings go in `hyperparameters` (defaults as in scikit-learn/XGBoost). Reports train and validation accuracy, metrics history, feature importances. With `wait: false` it returns at once; follow it with `get_training_metrics`. Example: {\"algorithm\":\"xgboost\",\"train_data_uri\":\"processed/iris/train.csv\",\"hyperparameters\":{\"n_estimators\":200,\"max_depth\":6}}",
                Annotations::WRITES,
                |s, i: TrainClassifierInput, ctx| async move {
                    let algorithm = match i.algorithm {
                        ClassifierAlgorithm::RandomForest => Supervised::RandomForest(
                            decode::<RandomForestParams>("random_forest", &i.hyperparameters)?
                                .validate(i.seed, true)?,
                        ),
                        ClassifierAlgorithm::Xgboost => Supervised::Gbdt(
                            decode::<XgboostParams>("xgboost", &i.hyperparameters)?
                                .validate(i.seed)?,
                        ),
                        ClassifierAlgorithm::LogisticRegression => Supervised::Logistic(
                            decode::<LogisticParams>("logistic_regression", &i.hyperparameters)?
                                .validate()?,
                        ),
                    };
                    train_supervised(s, i, algorithm, TaskType::Classification, ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "train_supervised_regressor",
                "Train a regressor",
                "Train a regression model (numeric target: linear with optional ridge/lasso penalty, xgboost = gradient-boosted trees, random_forest) as a named job; same inputs as train_supervised_classifier. Reports train and validation R², metrics history, feature importances. Example: {\"algorithm\":\"linear\",\"train_data_uri\":\"processed/houses/train.csv\",\"hyperparameters\":{\"penalty\":\"ridge\",\"alpha\":0.5}}",
                Annotations::WRITES,
                |s, i: TrainRegressorInput, ctx| async move {
                    let algorithm = match i.algorithm {
                        RegressorAlgorithm::RandomForest => Supervised::RandomForest(
                            decode::<RandomForestParams>("random_forest", &i.hyperparameters)?
                                .validate(i.seed, false)?,
                        ),
                        RegressorAlgorithm::Xgboost => Supervised::Gbdt(
                            decode::<XgboostParams>("xgboost", &i.hyperparameters)?
                                .validate(i.seed)?,
                        ),
                        RegressorAlgorithm::Linear => {
                            let (penalty, alpha, max_iter) =
                                decode::<LinearParams>("linear", &i.hyperparameters)?.validate()?;
                            Supervised::Linear(penalty, alpha, max_iter)
                        }
                    };
                    train_supervised(s, i, algorithm, TaskType::Regression, ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "train_unsupervised_clustering",
                "Train a clustering model",
                "Cluster rows (kmeans, dbscan) as a named job. kmeans takes `n_clusters`, or `k_min`/`k_max` to pick k by the best silhouette; dbscan takes `eps` and `min_samples`. Saves the model under `models/<training_job_name>/` and each row's cluster to `results/<training_job_name>/clusters.csv`; reports silhouette, Davies–Bouldin and Calinski–Harabasz. `data_uri`: data from `preprocess_unsupervised`, or raw data (numeric columns are scaled, text one-hot encoded). Example: {\"algorithm\":\"kmeans\",\"data_uri\":\"data/customers.csv\",\"hyperparameters\":{\"k_min\":2,\"k_max\":8}}",
                Annotations::WRITES,
                |s, i: ClusteringInput, ctx| async move { train_clustering(s, i, ctx).await },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "train_unsupervised_dimension_reduction",
                "Reduce dimensions",
                "Project rows to fewer dimensions as a named job: pca (`n_components`; reports explained variance; the saved model transforms new data) or tsne (2-D/3-D embedding for plots; `perplexity`). The coordinates go to `results/<training_job_name>/embedding.csv`. Example: {\"algorithm\":\"pca\",\"data_uri\":\"data/customers.csv\",\"hyperparameters\":{\"n_components\":3}}",
                Annotations::WRITES,
                |s, i: ReductionInput, ctx| async move { train_reduction(s, i, ctx).await },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "get_training_metrics",
                "Get training metrics",
                "Status, progress and metrics of a training job by name: live while it runs, final once it ends, with the metrics history (per tree, boosting round or iteration). Jobs finished before a server restart are read from their saved model.",
                Annotations::READ_ONLY,
                |s, i: JobNameInput, _ctx| async move {
                    training_metrics(&s.store, &s.jobs, &i.training_job_name).await
                },
            ),
            ToolDef::with(
                shared.clone(),
                "cancel_training_job",
                "Cancel a training job",
                "Stop a running training job by name. It is marked cancelled within about a second; nothing is saved.",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: true,
                    open_world: false,
                },
                |s, i: JobNameInput, _ctx| async move {
                    let job = s.jobs.get(&i.training_job_name).ok_or_else(|| {
                        ToolError::validation(format!(
                            "no training job named `{}` has run in this server",
                            i.training_job_name
                        ))
                    })?;
                    job.cancel.cancel();
                    Ok::<_, ToolError>(JobReport(job.snapshot()))
                },
            ),
            ToolDef::with(
                shared.clone(),
                "save_model",
                "Save a model under a name",
                "Copy a trained model (any `models/...` folder or manifest) to `models/<model_name>/`, verifying every checksum first, e.g. to keep a candidate under a stable name before registering it. Refuses to replace an existing model unless `overwrite` is true.",
                Annotations::WRITES,
                |s, i: SaveModelInput, _ctx| async move { save_model_as(&s.store, i).await },
            ),
            ToolDef::with(
                shared,
                "load_model",
                "Load and verify a model",
                "Load a saved model, verify its checksums (a tampered artifact is refused) and return its card: algorithm, task, features, classes, hyperparameters, metrics and files.",
                Annotations::READ_ONLY,
                |s, i: LoadModelInput, _ctx| async move {
                    load_model_card(&s.store, &i.model_uri).await
                },
            ),
        ]
    }
}

/// The regression algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegressorAlgorithm {
    /// Least squares; `penalty: ridge|lasso` for regularisation.
    Linear,
    /// Gradient-boosted trees (XGBoost's algorithm).
    Xgboost,
    /// A bagged ensemble of regression trees.
    RandomForest,
}

/// The classification algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierAlgorithm {
    /// A bagged ensemble of decision trees.
    RandomForest,
    /// Gradient-boosted trees (XGBoost's algorithm); one-vs-rest beyond two classes.
    Xgboost,
    /// A linear baseline with class probabilities.
    LogisticRegression,
}

fn default_true() -> bool {
    true
}
fn default_seed() -> u64 {
    42
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
    /// A held-out table (raw or processed) to report validation accuracy (or R²) on; gradient
    /// boosting also scores it after every round.
    pub validation_data_uri: Option<String>,
    /// Settings of the chosen algorithm, all optional (defaults shown); unknown names are errors.
    /// random_forest: n_estimators=100, max_depth (unlimited), min_samples_split=2,
    /// min_samples_leaf=1, max_features=sqrt|log2|all|fraction (sqrt for classification, all for
    /// regression), bootstrap=true, max_bins=256. xgboost: n_estimators=100, learning_rate=0.3,
    /// max_depth=6, min_child_weight=1, reg_lambda=1, reg_alpha=0, gamma=0, subsample=1,
    /// colsample_bytree=1, max_bin=256. logistic_regression: alpha=0.0001 (L2 strength).
    /// linear: penalty=none|ridge|lasso, alpha=1, max_iter=1000.
    #[serde(default)]
    pub hyperparameters: Map<String, Value>,
    /// Unique job name (letters, digits, `-`, `_`, `.`); it names the model folder. Generated when absent.
    pub training_job_name: Option<String>,
    /// Seed for every random choice: the same seed gives the same model.
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

/// The clustering algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClusteringAlgorithm {
    Kmeans,
    Dbscan,
}

/// The dimension-reduction algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReductionAlgorithm {
    Pca,
    Tsne,
}

/// Input of the unsupervised training tools.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsupervisedInput<A> {
    pub algorithm: A,
    /// The table to learn from: processed by `preprocess_unsupervised`, or raw.
    #[serde(alias = "train_data_uri", alias = "data_s3_uri")]
    pub data_uri: String,
    /// A `pipeline.json` to apply, when it is not beside the data.
    pub pipeline_uri: Option<String>,
    /// Settings of the chosen algorithm, all optional (defaults shown); unknown names are errors.
    /// kmeans: n_clusters (8), or k_min and k_max to pick k by the best silhouette, n_init=3,
    /// max_iter=300, tol=1e-4. dbscan: eps=0.5, min_samples=5. pca: n_components=2.
    /// tsne: n_components=2 (or 3), perplexity=30, max_iter=1000, angle=0.5.
    #[serde(default)]
    pub hyperparameters: Map<String, Value>,
    /// Unique job name (letters, digits, `-`, `_`, `.`); it names the model folder. Generated when absent.
    pub training_job_name: Option<String>,
    /// Seed for every random choice: the same seed gives the same result.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Replace an existing result of the same name.
    #[serde(default)]
    pub overwrite: bool,
    /// Wait for the job to finish (default). With false, return at once and poll `get_training_metrics`.
    #[serde(default = "default_true")]
    pub wait: bool,
    /// Stop the job if it runs longer than this.
    #[schemars(range(min = 1))]
    pub max_runtime_seconds: Option<u64>,
}

/// The job settings every training input carries.
macro_rules! job_options {
    ($($t:ident),*) => {$(
        impl<A> $t<A> {
            fn options(&self) -> JobOptions {
                JobOptions {
                    name: self.training_job_name.clone(),
                    overwrite: self.overwrite,
                    wait: self.wait,
                    max_runtime_seconds: self.max_runtime_seconds,
                }
            }
        }
    )*};
}
job_options!(TrainInput, UnsupervisedInput);

pub type ClusteringInput = UnsupervisedInput<ClusteringAlgorithm>;
pub type ReductionInput = UnsupervisedInput<ReductionAlgorithm>;

/// Names a training job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobNameInput {
    pub training_job_name: String,
}

/// Input of `save_model`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveModelInput {
    /// The model to copy: a `models/<name>` folder or its manifest.json.
    pub model_uri: String,
    /// The new name; the copy goes to `models/<model_name>/`.
    pub model_name: String,
    #[serde(default)]
    pub overwrite: bool,
}

/// Input of `load_model`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadModelInput {
    /// A `models/<name>` folder or its manifest.json.
    #[serde(alias = "model_s3_uri")]
    pub model_uri: String,
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

/// Feature names with their importances, largest first (the top 20).
fn top_importances(names: &[String], importances: Option<Vec<f64>>) -> Value {
    let Some(importances) = importances else {
        return Value::Null;
    };
    let mut pairs: Vec<(&String, f64)> = names.iter().zip(importances).collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    json!(
        pairs
            .iter()
            .take(20)
            .map(|(f, v)| json!({"feature": f, "importance": v}))
            .collect::<Vec<_>>()
    )
}

async fn train_supervised<A: Send + 'static>(
    s: Shared,
    i: TrainInput<A>,
    algorithm: Supervised,
    task: TaskType,
    ctx: ToolContext,
) -> Result<JobReport, TrainError> {
    let opts = i.options();
    let algorithm_name = match (&algorithm, task) {
        (Supervised::RandomForest(_), _) => "random_forest",
        (Supervised::Gbdt(_), _) => "xgboost",
        (Supervised::Logistic(_), _) => "logistic_regression",
        (Supervised::Linear(..), _) => "linear",
    };
    let store = s.store.clone();
    let snapshot = start_job(
        &s.store,
        &s.jobs,
        &opts,
        algorithm_name,
        |job, name| async move {
            let (prepared, spec) = prepare_supervised(
                &store,
                &i.train_data_uri,
                i.target_column.as_deref(),
                i.pipeline_uri.as_deref(),
                task,
            )
            .await?;
            let pipeline = prepared.pipeline;
            let x = Matrix::from_frame(&prepared.frame, &pipeline.feature_names)?;
            let y = Labels::of(&prepared.frame, &spec)?;
            y.check_trainable(&spec.name)?;
            let validation = match &i.validation_data_uri {
                Some(uri) => {
                    let df = mlops_data::prepared::load_model_input(&store, uri, &pipeline).await?;
                    Some((
                        Matrix::from_frame(&df, &pipeline.feature_names)?,
                        Labels::of(&df, &spec)?,
                    ))
                }
                None => None,
            };
            let rows = x.rows;
            let hyperparameters = algorithm.hyperparameters();
            let (model, mut metrics) = run_blocking(&job, &ctx, &i.options(), move |control| {
                let started = std::time::Instant::now();
                let Some((model, mut extra)) =
                    algorithm.fit(&x, &y, validation.as_ref(), control)?
                else {
                    return Ok(None);
                };
                extra["fit_seconds"] = json!(started.elapsed().as_secs_f64());
                let metric = if task == TaskType::Classification {
                    "accuracy"
                } else {
                    "r2"
                };
                extra[format!("train_{metric}")] = json!(score(&model, &x, &y)?);
                if let Some((vx, vy)) = &validation {
                    extra[format!("validation_{metric}")] = json!(score(&model, vx, vy)?);
                }
                Ok(Some((model, extra)))
            })
            .await?;
            metrics["train_rows"] = json!(rows);
            metrics["feature_importances"] =
                top_importances(&pipeline.feature_names, model.feature_importances());
            let mut m = manifest(
                &name,
                &model,
                task.as_str(),
                pipeline.feature_names.clone(),
                hyperparameters,
                metrics.clone(),
            );
            m.target = Some(spec.name.clone());
            m.classes = spec.classes.clone();
            m.pipeline = Some(
                serde_json::to_value(&pipeline).map_err(|e| TrainError::Failed(e.to_string()))?,
            );
            m.training_data_uri = Some(prepared.data_uri);
            let uri = save_model(&store, &job, &model, m).await?;
            Ok((metrics, uri))
        },
    )
    .await?;
    Ok(JobReport(snapshot))
}

async fn train_clustering(
    s: Shared,
    i: ClusteringInput,
    ctx: ToolContext,
) -> Result<JobReport, TrainError> {
    let opts = i.options();
    let algorithm_name = match i.algorithm {
        ClusteringAlgorithm::Kmeans => "kmeans",
        ClusteringAlgorithm::Dbscan => "dbscan",
    };
    // Settings are checked before the job starts; k against the row count once the data is read.
    let kmeans = match i.algorithm {
        ClusteringAlgorithm::Kmeans => Some(decode::<KMeansParams>("kmeans", &i.hyperparameters)?),
        ClusteringAlgorithm::Dbscan => None,
    };
    let dbscan = match i.algorithm {
        ClusteringAlgorithm::Dbscan => {
            Some(decode::<DbscanParams>("dbscan", &i.hyperparameters)?.validate()?)
        }
        ClusteringAlgorithm::Kmeans => None,
    };
    let store = s.store.clone();
    let snapshot = start_job(
        &s.store,
        &s.jobs,
        &opts,
        algorithm_name,
        |job, name| async move {
            let prepared =
                prepare(&store, &i.data_uri, None, false, i.pipeline_uri.as_deref()).await?;
            let features = prepared.pipeline.feature_names.clone();
            let x = Matrix::from_frame(&prepared.frame, &features)?;
            let algorithm = match (kmeans, dbscan) {
                (Some(p), _) => Clustering::KMeans(p.validate(x.rows)?),
                (None, Some((eps, min_samples))) => Clustering::Dbscan(eps, min_samples),
                (None, None) => return Err(TrainError::invalid("no clustering algorithm chosen")),
            };
            let seed = i.seed;
            let hyperparameters = algorithm.hyperparameters(seed);
            let started = std::time::Instant::now();
            let fit = run_blocking(&job, &ctx, &i.options(), move |control| {
                algorithm.fit(&x, seed, control)
            })
            .await?;
            let clusters_uri = write_rows(
                &store,
                &name,
                "clusters.csv",
                vec![Column::new("cluster".into(), fit.labels.clone())],
            )
            .await?;
            let mut metrics = serde_json::to_value(&fit.scores).unwrap_or(Value::Null);
            metrics["fit_seconds"] = json!(started.elapsed().as_secs_f64());
            if let TrainedModel::KMeans(m) = &fit.model {
                metrics["inertia"] = json!(m.inertia);
                metrics["n_iter"] = json!(m.iterations);
            }
            metrics["train_rows"] = json!(fit.labels.len());
            metrics["clusters_uri"] = json!(clusters_uri);
            if fit.silhouette_by_k.len() > 1 {
                metrics["silhouette_by_k"] = json!(
                    fit.silhouette_by_k
                        .iter()
                        .map(|(k, s)| json!({"k": k, "silhouette": s}))
                        .collect::<Vec<_>>()
                );
            }
            let mut m = manifest(
                &name,
                &fit.model,
                "clustering",
                features,
                hyperparameters,
                metrics.clone(),
            );
            m.pipeline = Some(
                serde_json::to_value(&prepared.pipeline)
                    .map_err(|e| TrainError::Failed(e.to_string()))?,
            );
            m.training_data_uri = Some(prepared.data_uri);
            let uri = save_model(&store, &job, &fit.model, m).await?;
            Ok((metrics, uri))
        },
    )
    .await?;
    Ok(JobReport(snapshot))
}

async fn train_reduction(
    s: Shared,
    i: ReductionInput,
    ctx: ToolContext,
) -> Result<JobReport, TrainError> {
    let opts = i.options();
    let (algorithm_name, pca_components, tsne) = match i.algorithm {
        ReductionAlgorithm::Pca => {
            let p = decode::<PcaParams>("pca", &i.hyperparameters)?;
            ("pca", Some(p.n_components), None)
        }
        ReductionAlgorithm::Tsne => {
            let p = decode::<TsneParams>("tsne", &i.hyperparameters)?.validate(i.seed)?;
            ("tsne", None, Some(p))
        }
    };
    let store = s.store.clone();
    let snapshot = start_job(&s.store, &s.jobs, &opts, algorithm_name, |job, name| async move {
        let prepared = prepare(&store, &i.data_uri, None, false, i.pipeline_uri.as_deref()).await?;
        let features = prepared.pipeline.feature_names.clone();
        let x = Matrix::from_frame(&prepared.frame, &features)?;
        let algorithm = match (pca_components, tsne) {
            (Some(k), _) => {
                if k < 1 || k as usize > x.cols {
                    return Err(TrainError::invalid(format!(
                        "n_components must be between 1 and the number of features ({}); got {k}",
                        x.cols
                    )));
                }
                Reduction::Pca(k as usize)
            }
            (None, Some(p)) => Reduction::Tsne(p),
            (None, None) => return Err(TrainError::invalid("no reduction algorithm chosen")),
        };
        let hyperparameters = algorithm.hyperparameters();
        let rows = x.rows;
        let started = std::time::Instant::now();
        let (pca, embedding, k) = run_blocking(&job, &ctx, &i.options(), move |control| algorithm.fit(&x, control)).await?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let embedding_uri =
            write_rows(&store, &name, "embedding.csv", embedding_columns(&embedding, k)).await?;
        let mut metrics = json!({ "train_rows": rows, "embedding_uri": embedding_uri, "n_components": k, "fit_seconds": fit_seconds });
        let model = match pca {
            Some(pca) => {
                metrics["explained_variance_ratio"] = json!(pca.explained_variance_ratio);
                metrics["explained_variance_ratio_total"] =
                    json!(pca.explained_variance_ratio.iter().sum::<f64>());
                metrics["explained_variance"] = json!(pca.explained_variance);
                TrainedModel::Pca(pca)
            }
            None => {
                // t-SNE has no model to apply to new rows: the embedding is the result.
                return Ok((metrics, embedding_uri));
            }
        };
        let mut m = manifest(&name, &model, "dimension_reduction", features, hyperparameters, metrics.clone());
        m.pipeline = Some(
            serde_json::to_value(&prepared.pipeline).map_err(|e| TrainError::Failed(e.to_string()))?,
        );
        m.training_data_uri = Some(prepared.data_uri);
        let uri = save_model(&store, &job, &model, m).await?;
        Ok((metrics, uri))
    })
    .await?;
    Ok(JobReport(snapshot))
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
    let recorded = jobs
        .recorded(name)
        .await
        .map_err(|e| TrainError::Failed(format!("could not read the job record: {e}")))?;
    if let Some(snapshot) = recorded {
        return Ok(JobReport(snapshot.bounded()));
    }
    let artifact = match ModelArtifact::load(store, &ModelArtifact::folder_key(name)).await {
        Ok(found) => found,
        Err(mlops_core::StoreError::NotFound { .. }) => {
            return Err(TrainError::invalid(format!(
                "no training job or model named `{name}`"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let history: Vec<MetricPoint> = artifact
        .blobs
        .get(HISTORY_BLOB)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let uri = artifact.uri.clone().unwrap_or_default();
    let manifest = artifact.manifest;
    Ok(JobReport(
        JobSnapshot {
            training_job_name: name.into(),
            algorithm: manifest.algorithm,
            status: JobStatus::Completed,
            progress: 1.0,
            message: None,
            started_at: manifest.created_at.clone(),
            finished_at: Some(manifest.created_at),
            duration_ms: None,
            metrics: manifest.metrics,
            metrics_history: history,
            metrics_history_total: 0,
            model_uri: Some(mlops_core::artifact::folder_of(&uri).to_string()),
            error: None,
        }
        .bounded(),
    ))
}

/// A model's card, as `load_model` and `save_model` report it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelCard {
    pub model_uri: String,
    pub verified: bool,
    #[serde(flatten)]
    pub manifest: ModelManifest,
}

impl ToolResponse for ModelCard {
    fn summary(&self) -> String {
        let m = &self.manifest;
        format!(
            "Model `{}` at {}: {} {} on {} features{}{}; {} files, checksums verified",
            m.name,
            self.model_uri,
            m.task,
            m.algorithm,
            m.feature_names.len(),
            m.target
                .as_ref()
                .map(|t| format!(", target `{t}`"))
                .unwrap_or_default(),
            if m.classes.is_empty() {
                String::new()
            } else {
                format!(", classes {}", m.classes.join("/"))
            },
            m.blobs.len()
        )
    }
}

/// Loads and verifies a model, and checks that this server can run it.
async fn load_model_card(store: &ArtifactStore, uri: &str) -> Result<ModelCard, TrainError> {
    let artifact = ModelArtifact::load(store, uri).await?;
    if artifact.manifest.algorithm != "tsne" {
        TrainedModel::from_artifact(&artifact)?;
    }
    Ok(ModelCard {
        model_uri: artifact.folder_uri(),
        verified: true,
        manifest: artifact.manifest,
    })
}

async fn save_model_as(store: &ArtifactStore, i: SaveModelInput) -> Result<ModelCard, TrainError> {
    check_job_name(&i.model_name).map_err(|_| {
        TrainError::invalid(format!(
            "model_name `{}` must be 1 to 63 letters, digits, `-`, `_` or `.`, not starting with `.`",
            i.model_name
        ))
    })?;
    let mut artifact = ModelArtifact::load(store, &i.model_uri).await?;
    TrainedModel::from_artifact(&artifact)?;
    let target = ModelArtifact::manifest_ref(store, &ModelArtifact::folder_key(&i.model_name))?;
    if artifact.uri.as_deref() == Some(target.uri()) {
        return Err(TrainError::invalid(format!(
            "`{}` is already saved as `{}`",
            i.model_uri, i.model_name
        )));
    }
    if !i.overwrite && store.exists(&target).await? {
        return Err(TrainError::invalid(format!(
            "a model named `{}` already exists; choose another model_name or pass overwrite: true",
            i.model_name
        )));
    }
    artifact.manifest.name = i.model_name;
    artifact.save(store).await?;
    load_model_card(store, target.uri()).await
}
