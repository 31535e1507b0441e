//! The ML Training tools.

use std::sync::Arc;

use mlops_core::{
    Annotations, ArtifactStore, Capability, ModelArtifact, ToolContext, ToolDef, ToolError,
    ToolResponse,
};
use mlops_ml::{
    ClassifierAlgorithm, ClusteringAlgorithm, ReductionAlgorithm, RegressorAlgorithm,
    ReinforcementAlgorithm, TrainedModel, saved_history,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::card::{ModelCard, load_model_card};
use crate::error::TrainError;
use crate::runner::{check_job_name, start_job};
use crate::spec::{SPEC_VERSION, Task, TrainingSpec, execute};
use mlops_jobs::JobOptions;
use mlops_jobs::{JobManager, JobSnapshot, JobStatus};

/// Capability 2: ML Training.
pub struct TrainingCapability {
    shared: Shared,
}

impl TrainingCapability {
    /// Training in this process.
    pub fn new(store: ArtifactStore, jobs: Arc<JobManager>) -> Arc<Self> {
        Self::with_backend(store, jobs, Backend::Local)
    }

    /// Training where `backend` says (see [`Backend::from_map`]).
    pub fn with_backend(
        store: ArtifactStore,
        jobs: Arc<JobManager>,
        backend: Backend,
    ) -> Arc<Self> {
        Arc::new(Self {
            shared: Shared {
                store,
                jobs,
                backend,
            },
        })
    }
}

/// The state every training tool needs.
#[derive(Clone)]
struct Shared {
    store: ArtifactStore,
    jobs: Arc<JobManager>,
    backend: Backend,
}

impl Shared {
    /// Starts the job `spec` describes on the configured backend; its settings are checked first.
    async fn train(
        self,
        spec: TrainingSpec,
        opts: JobOptions,
        ctx: ToolContext,
    ) -> Result<JobReport, TrainError> {
        let plan = spec.plan()?;
        let algorithm = spec.task.algorithm_name();
        let store = self.store.clone();
        let snapshot = match self.backend {
            Backend::Local => {
                start_job(&self.store, &self.jobs, &opts, algorithm, |job, name| {
                    let spec = TrainingSpec {
                        training_job_name: name,
                        ..spec
                    };
                    execute(store, spec, plan, job, ctx, opts.clone())
                })
                .await?
            }
            Backend::Remote(remote) => {
                let spec = remote.prepare(&self.store, spec)?;
                start_job(&self.store, &self.jobs, &opts, algorithm, |job, name| {
                    let spec = TrainingSpec {
                        training_job_name: name,
                        ..spec
                    };
                    remote.run(store, spec, job, ctx, opts.clone())
                })
                .await?
            }
        };
        Ok(JobReport(snapshot))
    }
}

impl Capability for TrainingCapability {
    fn name(&self) -> &'static str {
        "ml_training"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let shared = self.shared.clone();
        vec![
            ToolDef::with(
                shared.clone(),
                "train_supervised_classifier",
                "Train a classifier",
                "Train a classification model (random_forest, xgboost = gradient-boosted trees, logistic_regression, neural_network = a multi-layer perceptron) as a named job; saved under `models/<training_job_name>/` with its preprocessing pipeline. `train_data_uri`: data from `preprocess_supervised` (its pipeline is found beside it) or raw data with `target_column`. Settings go in `hyperparameters` (defaults as in scikit-learn/XGBoost). Reports train and validation accuracy, metrics history (per tree, boosting round or epoch), feature importances. With `wait: false` it returns at once; follow it with `get_training_metrics`. Example: {\"algorithm\":\"xgboost\",\"train_data_uri\":\"processed/iris/train.csv\",\"hyperparameters\":{\"n_estimators\":200,\"max_depth\":6}}",
                Annotations::WRITES,
                |s, i: TrainClassifierInput, ctx| async move {
                    let spec = i.spec(Task::Classifier(i.algorithm));
                    s.train(spec, i.options(), ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "train_supervised_regressor",
                "Train a regressor",
                "Train a regression model (numeric target: linear with optional ridge/lasso penalty, xgboost = gradient-boosted trees, random_forest, neural_network) as a named job; same inputs as train_supervised_classifier. Reports train and validation R², metrics history, feature importances. Example: {\"algorithm\":\"linear\",\"train_data_uri\":\"processed/houses/train.csv\",\"hyperparameters\":{\"penalty\":\"ridge\",\"alpha\":0.5}}",
                Annotations::WRITES,
                |s, i: TrainRegressorInput, ctx| async move {
                    let spec = i.spec(Task::Regressor(i.algorithm));
                    s.train(spec, i.options(), ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "train_unsupervised_clustering",
                "Train a clustering model",
                "Cluster rows (kmeans, dbscan, autoencoder) as a named job. kmeans takes `n_clusters`, or `k_min`/`k_max` to pick k by the best silhouette; dbscan takes `eps` and `min_samples`; autoencoder trains an encoder–decoder network, clusters its latent codes with k-means and scores each row's reconstruction error (high = anomaly). Saves the model under `models/<training_job_name>/` and each row's cluster (autoencoder: also its reconstruction error and anomaly flag) to `results/<training_job_name>/clusters.csv`; reports silhouette, Davies–Bouldin and Calinski–Harabasz. `data_uri`: data from `preprocess_unsupervised`, or raw data (numeric columns are scaled, text one-hot encoded). Example: {\"algorithm\":\"kmeans\",\"data_uri\":\"data/customers.csv\",\"hyperparameters\":{\"k_min\":2,\"k_max\":8}}",
                Annotations::WRITES,
                |s, i: ClusteringInput, ctx| async move {
                    let spec = i.spec(Task::Clustering(i.algorithm));
                    s.train(spec, i.options(), ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "train_unsupervised_dimension_reduction",
                "Reduce dimensions",
                "Project rows to fewer dimensions as a named job: pca (`n_components`; reports explained variance; the saved model transforms new data) or tsne (2-D/3-D embedding for plots; `perplexity`). The coordinates go to `results/<training_job_name>/embedding.csv`. Example: {\"algorithm\":\"pca\",\"data_uri\":\"data/customers.csv\",\"hyperparameters\":{\"n_components\":3}}",
                Annotations::WRITES,
                |s, i: ReductionInput, ctx| async move {
                    let spec = i.spec(Task::Reduction(i.algorithm));
                    s.train(spec, i.options(), ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "train_reinforcement",
                "Train a reinforcement-learning policy",
                "Train a policy (ppo, dqn, a3c) on a built-in environment (CartPole-v1, MountainCar-v0, Acrobot-v1) as a named job; saved under `models/<training_job_name>/` (safetensors weights). Progress reports steps and the mean episode return; the metrics history has every episode's return, the losses and periodic greedy evaluations, and training stops once an evaluation reaches the environment's solved return (CartPole 475). DQN can start from logged transitions (`replay_data_uri` from preprocess_reinforcement). Score the policy with evaluate_reinforcement. Example: {\"algorithm\":\"ppo\",\"environment\":\"CartPole-v1\",\"hyperparameters\":{\"total_timesteps\":100000}}",
                Annotations::WRITES,
                |s, i: ReinforcementInput, ctx| async move {
                    s.train(i.spec(), i.options(), ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "get_training_metrics",
                "Get training metrics",
                "Status, progress and metrics of a training job by name: live while it runs, final once it ends, with the metrics history (per tree, boosting round, iteration, epoch or episode). Jobs finished before a server restart are read from their saved model.",
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
    /// linear: penalty=none|ridge|lasso, alpha=1, max_iter=1000. neural_network:
    /// hidden_layer_sizes=[100], activation=relu|tanh|logistic|gelu, solver=adam|sgd,
    /// learning_rate_init=0.001, alpha=0.0001 (L2), dropout=0, batch_size=200, max_iter=200
    /// (epochs), early_stopping=true (on validation_data_uri, else a validation_fraction=0.1
    /// held out), n_iter_no_change=10 (patience); the best epoch's weights are kept.
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

fn default_environment() -> String {
    "CartPole-v1".into()
}

/// Input of `train_reinforcement`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReinforcementInput {
    pub algorithm: ReinforcementAlgorithm,
    /// CartPole-v1 (default), MountainCar-v0 or Acrobot-v1 (Gymnasium's dynamics and limits).
    #[serde(default = "default_environment", alias = "env")]
    pub environment: String,
    /// DQN only: a replay table from `preprocess_reinforcement` (logged transitions) that fills
    /// the replay buffer and is trained on before interacting.
    #[serde(alias = "replay_uri", alias = "offline_data_uri")]
    pub replay_data_uri: Option<String>,
    /// Settings, all optional: the defaults are tuned per algorithm and environment
    /// (rl-baselines3-zoo's values) and stop training once a greedy evaluation reaches the
    /// environment's solved return (CartPole 475). Common: total_timesteps, learning_rate,
    /// gamma, hidden_layers, activation (tanh|relu), target_return, eval_every_steps,
    /// eval_episodes, max_episode_steps. PPO and A3C: normalize_observations,
    /// normalize_rewards (running statistics, as SB3's VecNormalize; saved with the policy).
    /// PPO: n_envs, n_steps, batch_size, n_epochs, gae_lambda, clip_range, ent_coef, vf_coef.
    /// DQN: buffer_size, learning_starts, train_freq, gradient_steps, target_update_interval,
    /// exploration_fraction, exploration_final_eps, offline_pretrain_steps. A3C: n_workers,
    /// n_steps, ent_coef.
    #[serde(default)]
    pub hyperparameters: Map<String, Value>,
    /// Unique job name (letters, digits, `-`, `_`, `.`); it names the model folder. Generated when absent.
    pub training_job_name: Option<String>,
    /// Seed for the environments and the networks: the same seed gives the same policy (PPO, DQN).
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

impl ReinforcementInput {
    /// The job as a spec; its name is filled in when the job starts.
    fn spec(&self) -> TrainingSpec {
        TrainingSpec {
            spec_version: SPEC_VERSION,
            task: Task::Reinforcement(self.algorithm),
            training_job_name: String::new(),
            data_uri: self.replay_data_uri.clone().unwrap_or_default(),
            environment: Some(self.environment.clone()),
            target_column: None,
            pipeline_uri: None,
            validation_data_uri: None,
            hyperparameters: self.hyperparameters.clone(),
            seed: self.seed,
            max_runtime_seconds: self.max_runtime_seconds,
            tuning_study: None,
            trial: None,
        }
    }
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
    /// autoencoder: hidden_layer_sizes=[32] (encoder; the decoder mirrors it), latent_dim=2,
    /// activation=tanh, learning_rate_init=0.005, batch_size=128, epochs=200, early_stopping=true,
    /// patience=10, validation_fraction=0.1, n_clusters (8) or k_min/k_max for the latent
    /// k-means, contamination=0.05 (share of rows flagged as anomalies).
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
    ($($t:ident $(<$g:ident>)?),*) => {$(
        impl$(<$g>)? $t$(<$g>)? {
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
job_options!(TrainInput<A>, UnsupervisedInput<A>, ReinforcementInput);

impl<A> TrainInput<A> {
    /// The job as a spec; its name is filled in when the job starts.
    fn spec(&self, task: Task) -> TrainingSpec {
        TrainingSpec {
            spec_version: SPEC_VERSION,
            task,
            training_job_name: String::new(),
            data_uri: self.train_data_uri.clone(),
            environment: None,
            target_column: self.target_column.clone(),
            pipeline_uri: self.pipeline_uri.clone(),
            validation_data_uri: self.validation_data_uri.clone(),
            hyperparameters: self.hyperparameters.clone(),
            seed: self.seed,
            max_runtime_seconds: self.max_runtime_seconds,
            tuning_study: None,
            trial: None,
        }
    }
}

impl<A> UnsupervisedInput<A> {
    /// The job as a spec; its name is filled in when the job starts.
    fn spec(&self, task: Task) -> TrainingSpec {
        TrainingSpec {
            spec_version: SPEC_VERSION,
            task,
            training_job_name: String::new(),
            data_uri: self.data_uri.clone(),
            environment: None,
            target_column: None,
            pipeline_uri: self.pipeline_uri.clone(),
            validation_data_uri: None,
            hyperparameters: self.hyperparameters.clone(),
            seed: self.seed,
            max_runtime_seconds: self.max_runtime_seconds,
            tuning_study: None,
            trial: None,
        }
    }
}

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
        let mut s = format!("Training job `{}` ({}): {status}", j.name, j.label);
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
        if let Some(uri) = &j.output_uri {
            s.push_str(&format!(". Model: {uri}"));
        }
        if let Some(e) = &j.error {
            s.push_str(&format!(". Error: {e}"));
        }
        s
    }
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
        .map_err(|e| TrainError::failed(format!("could not read the job record: {e}")))?;
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
    let history = saved_history(&artifact);
    let uri = artifact.uri.clone().unwrap_or_default();
    let manifest = artifact.manifest;
    Ok(JobReport(
        JobSnapshot {
            name: name.into(),
            label: manifest.algorithm,
            status: JobStatus::Completed,
            progress: 1.0,
            message: None,
            started_at: manifest.created_at.clone(),
            finished_at: Some(manifest.created_at),
            duration_ms: None,
            metrics: manifest.metrics,
            metrics_history: history,
            metrics_history_total: 0,
            output_uri: Some(mlops_core::folder_of(&uri).to_string()),
            error: None,
        }
        .bounded(),
    ))
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
