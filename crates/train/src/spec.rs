//! A training job as data: what the training tools were asked to do, decoded into a [`Plan`] and
//! run by [`execute`]. The local backend runs it in this process; a remote backend writes it to the
//! artifact store as `jobs/<job>/spec.json` for a `train-worker` ([`crate::worker`]) to run with
//! this same code.

use std::sync::Arc;

use mlops_core::{ArtifactStore, ModelManifest, ToolContext};
use mlops_data::TaskType;
use polars::prelude::Column;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use mlops_ml::{
    AutoencoderParams, AutoencoderSettings, ClassifierAlgorithm, Clustering, ClusteringAlgorithm,
    DbscanParams, KMeansParams, LinearParams, LogisticParams, Matrix, NeuralNetworkParams,
    PcaParams, RandomForestParams, Reduction, ReductionAlgorithm, RegressorAlgorithm,
    ReinforcementAlgorithm, Supervised, TrainedModel, TsneParams, TsneSettings, XgboostParams,
    decode, rl_config, score,
};

use crate::error::TrainError;
use crate::prepare::{Prepared, SupervisedRows, prepare, supervised_rows};
use crate::reference::{with_clusters, with_predictions};
use crate::results::{embedding_columns, write_rows};
use crate::runner::{JobResult, manifest, run_blocking, save_model};
use mlops_jobs::Job;
use mlops_jobs::JobOptions;
use mlops_nn::rl::RlConfig;

/// The spec format this build writes and reads (a worker image may be another build).
pub const SPEC_VERSION: u32 = 1;
/// A job's spec and its result, under `jobs/<training_job_name>/`.
pub const SPEC_FILE: &str = "spec.json";
pub const RESULT_FILE: &str = "result.json";

/// The training tool a spec runs, with its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", content = "algorithm")]
pub enum Task {
    #[serde(rename = "train_supervised_classifier")]
    Classifier(ClassifierAlgorithm),
    #[serde(rename = "train_supervised_regressor")]
    Regressor(RegressorAlgorithm),
    #[serde(rename = "train_unsupervised_clustering")]
    Clustering(ClusteringAlgorithm),
    #[serde(rename = "train_unsupervised_dimension_reduction")]
    Reduction(ReductionAlgorithm),
    #[serde(rename = "train_reinforcement")]
    Reinforcement(ReinforcementAlgorithm),
}

impl Task {
    /// The algorithm's name as jobs and manifests report it.
    pub fn algorithm_name(&self) -> &'static str {
        match self {
            Task::Classifier(ClassifierAlgorithm::RandomForest)
            | Task::Regressor(RegressorAlgorithm::RandomForest) => "random_forest",
            Task::Classifier(ClassifierAlgorithm::Xgboost)
            | Task::Regressor(RegressorAlgorithm::Xgboost) => "xgboost",
            Task::Classifier(ClassifierAlgorithm::LogisticRegression) => "logistic_regression",
            Task::Classifier(ClassifierAlgorithm::NeuralNetwork)
            | Task::Regressor(RegressorAlgorithm::NeuralNetwork) => "neural_network",
            Task::Clustering(ClusteringAlgorithm::Autoencoder) => "autoencoder",
            Task::Regressor(RegressorAlgorithm::Linear) => "linear",
            Task::Clustering(ClusteringAlgorithm::Kmeans) => "kmeans",
            Task::Clustering(ClusteringAlgorithm::Dbscan) => "dbscan",
            Task::Reduction(ReductionAlgorithm::Pca) => "pca",
            Task::Reduction(ReductionAlgorithm::Tsne) => "tsne",
            Task::Reinforcement(ReinforcementAlgorithm::Ppo) => "ppo",
            Task::Reinforcement(ReinforcementAlgorithm::Dqn) => "dqn",
            Task::Reinforcement(ReinforcementAlgorithm::A3c) => "a3c",
        }
    }

    /// t-SNE has no model: its result is the embedding table.
    pub fn saves_model(&self) -> bool {
        *self != Task::Reduction(ReductionAlgorithm::Tsne)
    }
}

/// Everything a training job needs besides the artifact store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingSpec {
    pub spec_version: u32,
    #[serde(flatten)]
    pub task: Task,
    pub training_job_name: String,
    /// The training table; for reinforcement learning, the offline replay table or empty.
    pub data_uri: String,
    /// The environment of a reinforcement-learning job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub target_column: Option<String>,
    pub pipeline_uri: Option<String>,
    pub validation_data_uri: Option<String>,
    pub hyperparameters: Map<String, Value>,
    pub seed: u64,
    pub max_runtime_seconds: Option<u64>,
    /// The tuning study whose best settings these are (its name, best trial and score), kept in
    /// the model's metrics as its lineage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning_study: Option<Value>,
    /// A tuning trial to score instead of a model to save (a trial run on a remote backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Box<TrialSpec>>,
}

/// A tuning trial as a job: the study (its data, scoring and metric) and the trial's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialSpec {
    pub study: crate::tune::StudySpec,
    pub params: Map<String, Value>,
}

/// A spec's algorithm with its checked settings.
pub enum Plan {
    Supervised(Supervised, TaskType),
    Clustering(ClusteringPlan),
    Reduction(ReductionPlan),
    Reinforcement(Box<RlConfig>),
}

/// k is checked against the row count once the data is read.
pub enum ClusteringPlan {
    KMeans(KMeansParams),
    Dbscan(f64, usize),
    Autoencoder(Box<AutoencoderSettings>),
}

/// PCA's component count is checked against the feature count once the data is read.
pub enum ReductionPlan {
    Pca(i64),
    Tsne(TsneSettings),
}

impl TrainingSpec {
    /// Decodes and checks the hyperparameters for the algorithm, before any work starts.
    pub fn plan(&self) -> Result<Plan, TrainError> {
        if self.spec_version != SPEC_VERSION {
            return Err(TrainError::invalid(format!(
                "training spec version {} is not supported by this build (it reads version {SPEC_VERSION})",
                self.spec_version
            )));
        }
        let h = &self.hyperparameters;
        let seed = self.seed;
        Ok(match self.task {
            Task::Classifier(a) => Plan::Supervised(
                match a {
                    ClassifierAlgorithm::RandomForest => Supervised::RandomForest(
                        decode::<RandomForestParams>("random_forest", h)?.validate(seed, true)?,
                    ),
                    ClassifierAlgorithm::Xgboost => {
                        Supervised::Gbdt(decode::<XgboostParams>("xgboost", h)?.validate(seed)?)
                    }
                    ClassifierAlgorithm::LogisticRegression => Supervised::Logistic(
                        decode::<LogisticParams>("logistic_regression", h)?.validate()?,
                    ),
                    ClassifierAlgorithm::NeuralNetwork => neural_network(h, seed)?,
                },
                TaskType::Classification,
            ),
            Task::Regressor(a) => Plan::Supervised(
                match a {
                    RegressorAlgorithm::RandomForest => Supervised::RandomForest(
                        decode::<RandomForestParams>("random_forest", h)?.validate(seed, false)?,
                    ),
                    RegressorAlgorithm::Xgboost => {
                        Supervised::Gbdt(decode::<XgboostParams>("xgboost", h)?.validate(seed)?)
                    }
                    RegressorAlgorithm::Linear => {
                        let (penalty, alpha, max_iter) =
                            decode::<LinearParams>("linear", h)?.validate()?;
                        Supervised::Linear(penalty, alpha, max_iter)
                    }
                    RegressorAlgorithm::NeuralNetwork => neural_network(h, seed)?,
                },
                TaskType::Regression,
            ),
            Task::Clustering(ClusteringAlgorithm::Kmeans) => {
                Plan::Clustering(ClusteringPlan::KMeans(decode("kmeans", h)?))
            }
            Task::Clustering(ClusteringAlgorithm::Dbscan) => {
                let (eps, min_samples) = decode::<DbscanParams>("dbscan", h)?.validate()?;
                Plan::Clustering(ClusteringPlan::Dbscan(eps, min_samples))
            }
            Task::Clustering(ClusteringAlgorithm::Autoencoder) => {
                Plan::Clustering(ClusteringPlan::Autoencoder(Box::new(
                    decode::<AutoencoderParams>("autoencoder", h)?.validate(seed)?,
                )))
            }
            Task::Reduction(ReductionAlgorithm::Pca) => Plan::Reduction(ReductionPlan::Pca(
                decode::<PcaParams>("pca", h)?.n_components,
            )),
            Task::Reduction(ReductionAlgorithm::Tsne) => Plan::Reduction(ReductionPlan::Tsne(
                decode::<TsneParams>("tsne", h)?.validate(seed)?,
            )),
            Task::Reinforcement(a) => {
                let environment = self.environment.as_deref().unwrap_or("CartPole-v1");
                Plan::Reinforcement(Box::new(rl_config(a, environment, h, seed)?))
            }
        })
    }
}

fn neural_network(h: &Map<String, Value>, seed: u64) -> Result<Supervised, TrainError> {
    Ok(Supervised::NeuralNetwork(
        decode::<NeuralNetworkParams>("neural_network", h)?.validate(seed)?,
    ))
}

/// Runs a planned spec inside its job: reads the data, fits, and saves the model under
/// `models/<training_job_name>/` (results under `results/<training_job_name>/`).
pub async fn execute(
    store: ArtifactStore,
    spec: TrainingSpec,
    plan: Plan,
    job: Arc<Job>,
    ctx: ToolContext,
    opts: JobOptions,
) -> JobResult {
    if let Some(trial) = &spec.trial {
        let name = spec.training_job_name.clone();
        return crate::tune::score_trial(&store, &name, trial, &job, &ctx, &opts).await;
    }
    match plan {
        Plan::Supervised(algorithm, task) => {
            supervised(&store, &spec, algorithm, task, &job, &ctx, &opts).await
        }
        Plan::Clustering(plan) => clustering(&store, &spec, plan, &job, &ctx, &opts).await,
        Plan::Reduction(plan) => reduction(&store, &spec, plan, &job, &ctx, &opts).await,
        Plan::Reinforcement(config) => {
            reinforcement(&store, &spec, *config, &job, &ctx, &opts).await
        }
    }
}

/// Records the fitted pipeline and the training data in `m`: a model carries what it needs to
/// score raw data, and where it came from.
fn record_lineage(
    m: &mut ModelManifest,
    pipeline: &mlops_data::FittedPipeline,
    data_uri: String,
) -> Result<(), TrainError> {
    m.pipeline =
        Some(serde_json::to_value(pipeline).map_err(|e| TrainError::failed(e.to_string()))?);
    m.training_data_uri = Some(data_uri);
    Ok(())
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

async fn supervised(
    store: &ArtifactStore,
    spec: &TrainingSpec,
    algorithm: Supervised,
    task: TaskType,
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
) -> JobResult {
    let name = &spec.training_job_name;
    let SupervisedRows {
        prepared,
        target,
        x,
        y,
        validation,
    } = supervised_rows(
        store,
        &spec.data_uri,
        spec.target_column.as_deref(),
        spec.pipeline_uri.as_deref(),
        spec.validation_data_uri.as_deref(),
        task,
    )
    .await?;
    let pipeline = prepared.pipeline;
    let rows = x.rows;
    let hyperparameters = algorithm.hyperparameters();
    let (profile, classes) = (prepared.profile, target.classes.clone());
    let (model, mut metrics, profile) = run_blocking(job, ctx, opts, move |control| {
        let started = std::time::Instant::now();
        let Some((model, mut extra)) = algorithm.fit(&x, &y, validation.as_ref(), control)? else {
            return Ok::<_, TrainError>(None);
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
        let profile = profile
            .map(|p| with_predictions(p, &model, &x, &classes))
            .transpose()?;
        Ok(Some((model, extra, profile)))
    })
    .await?;
    metrics["train_rows"] = json!(rows);
    if let Some(study) = &spec.tuning_study {
        metrics["tuning_study"] = study.clone();
    }
    metrics["feature_importances"] =
        top_importances(&pipeline.feature_names, model.feature_importances());
    let mut m = manifest(
        name,
        &model,
        task.as_str(),
        pipeline.feature_names.clone(),
        hyperparameters,
        metrics.clone(),
    );
    m.target = Some(target.name.clone());
    m.classes = target.classes.clone();
    record_lineage(&mut m, &pipeline, prepared.data_uri)?;
    let uri = save_model(store, job, &model, m, profile.as_ref()).await?;
    Ok((metrics, uri))
}

/// The rows an unsupervised job learns from, through the pipeline beside them (or one fitted
/// now), with their feature names.
async fn unsupervised_rows(
    store: &ArtifactStore,
    spec: &TrainingSpec,
) -> Result<(Prepared, Vec<String>, Matrix), TrainError> {
    let prepared = prepare(
        store,
        &spec.data_uri,
        None,
        false,
        spec.pipeline_uri.as_deref(),
    )
    .await?;
    let features = prepared.pipeline.feature_names.clone();
    let x = Matrix::from_frame(&prepared.frame, &features)?;
    Ok((prepared, features, x))
}

async fn clustering(
    store: &ArtifactStore,
    spec: &TrainingSpec,
    plan: ClusteringPlan,
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
) -> JobResult {
    let name = &spec.training_job_name;
    let (prepared, features, x) = unsupervised_rows(store, spec).await?;
    let algorithm = match plan {
        ClusteringPlan::KMeans(p) => Clustering::KMeans(p.validate(x.rows)?),
        ClusteringPlan::Dbscan(eps, min_samples) => Clustering::Dbscan(eps, min_samples),
        ClusteringPlan::Autoencoder(settings) => {
            let kmeans = settings.kmeans.validate(x.rows)?;
            Clustering::Autoencoder(settings, kmeans)
        }
    };
    let seed = spec.seed;
    let hyperparameters = algorithm.hyperparameters(seed);
    let started = std::time::Instant::now();
    let fit = run_blocking(job, ctx, opts, move |control| {
        algorithm.fit(&x, seed, control)
    })
    .await?;
    let mut columns = vec![Column::new("cluster".into(), fit.labels.clone())];
    if let Some(a) = &fit.anomaly {
        columns.push(Column::new("reconstruction_error".into(), a.errors.clone()));
        let flagged: Vec<bool> = a.errors.iter().map(|e| *e > a.threshold).collect();
        columns.push(Column::new("anomaly".into(), flagged));
    }
    let clusters_uri = write_rows(store, name, "clusters.csv", columns).await?;
    let mut metrics = serde_json::to_value(&fit.scores).unwrap_or(Value::Null);
    if let Some(a) = &fit.anomaly {
        let n = a.errors.len().max(1) as f64;
        metrics["reconstruction_error_mean"] = json!(a.errors.iter().sum::<f64>() / n);
        metrics["anomaly_threshold"] = json!(a.threshold);
        metrics["anomalies"] = json!(a.errors.iter().filter(|e| **e > a.threshold).count());
        metrics["autoencoder"] = a.training.clone();
    }
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
        name,
        &fit.model,
        "clustering",
        features,
        hyperparameters,
        metrics.clone(),
    );
    record_lineage(&mut m, &prepared.pipeline, prepared.data_uri)?;
    let profile = prepared.profile.map(|p| with_clusters(p, &fit.labels));
    let uri = save_model(store, job, &fit.model, m, profile.as_ref()).await?;
    Ok((metrics, uri))
}

async fn reduction(
    store: &ArtifactStore,
    spec: &TrainingSpec,
    plan: ReductionPlan,
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
) -> JobResult {
    let name = &spec.training_job_name;
    let (prepared, features, x) = unsupervised_rows(store, spec).await?;
    let algorithm = match plan {
        ReductionPlan::Pca(k) => {
            if k < 1 || k as usize > x.cols {
                return Err(TrainError::invalid(format!(
                    "n_components must be between 1 and the number of features ({}); got {k}",
                    x.cols
                )));
            }
            Reduction::Pca(k as usize)
        }
        ReductionPlan::Tsne(p) => Reduction::Tsne(p),
    };
    let hyperparameters = algorithm.hyperparameters();
    let rows = x.rows;
    let started = std::time::Instant::now();
    let (pca, embedding, k) =
        run_blocking(job, ctx, opts, move |control| algorithm.fit(&x, control)).await?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let embedding_uri = write_rows(
        store,
        name,
        "embedding.csv",
        embedding_columns(&embedding, k),
    )
    .await?;
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
    let mut m = manifest(
        name,
        &model,
        "dimension_reduction",
        features,
        hyperparameters,
        metrics.clone(),
    );
    record_lineage(&mut m, &prepared.pipeline, prepared.data_uri)?;
    let uri = save_model(store, job, &model, m, prepared.profile.as_ref()).await?;
    Ok((metrics, uri))
}

async fn reinforcement(
    store: &ArtifactStore,
    spec: &TrainingSpec,
    config: RlConfig,
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
) -> JobResult {
    let name = &spec.training_job_name;
    let offline = if spec.data_uri.is_empty() {
        None
    } else {
        let (_, df) = mlops_data::read_table(store, &spec.data_uri).await?;
        Some(mlops_ml::transitions(&df)?)
    };
    let replay_rows = offline.as_ref().map(Vec::len);
    let hyperparameters = serde_json::to_value(&config).unwrap_or(Value::Null);
    let started = std::time::Instant::now();
    let outcome = run_blocking(job, ctx, opts, move |control| {
        control.run_nn(|hooks| mlops_nn::rl::train(&config, offline.as_deref(), hooks))
    })
    .await?;
    let recent: Vec<f64> = outcome
        .episode_returns
        .iter()
        .rev()
        .take(100)
        .map(|(_, r)| *r)
        .collect();
    let recent_mean =
        (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
    let mut metrics = json!({
        "environment": outcome.policy.environment(),
        "timesteps": outcome.timesteps,
        "episodes": outcome.episodes,
        "reached_target": outcome.reached_target,
        "best_eval_mean_return": outcome.evaluations.iter().map(|e| e.1).reduce(f64::max),
        "train_mean_return_last_100": recent_mean,
        "fit_seconds": started.elapsed().as_secs_f64(),
    });
    if let Some(rows) = replay_rows {
        metrics["offline_transitions"] = json!(rows);
    }
    let observations = (0..outcome.policy.observation_size())
        .map(|i| format!("obs_{i}"))
        .collect();
    let model = TrainedModel::Policy(outcome.policy);
    let mut m = manifest(
        name,
        &model,
        "reinforcement",
        observations,
        hyperparameters,
        metrics.clone(),
    );
    if !spec.data_uri.is_empty() {
        m.training_data_uri = Some(spec.data_uri.clone());
    }
    let uri = save_model(store, job, &model, m, None).await?;
    Ok((metrics, uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(task: Task, hyperparameters: Value) -> TrainingSpec {
        TrainingSpec {
            spec_version: SPEC_VERSION,
            task,
            training_job_name: "j".into(),
            data_uri: "datasets/d.csv".into(),
            environment: None,
            target_column: Some("label".into()),
            pipeline_uri: None,
            validation_data_uri: None,
            hyperparameters: hyperparameters.as_object().cloned().unwrap_or_default(),
            seed: 7,
            max_runtime_seconds: Some(60),
            tuning_study: None,
            trial: None,
        }
    }

    #[test]
    fn specs_round_trip_with_the_tool_and_algorithm_named() {
        let s = spec(
            Task::Classifier(ClassifierAlgorithm::RandomForest),
            json!({"n_estimators": 10}),
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["tool"], "train_supervised_classifier");
        assert_eq!(v["algorithm"], "random_forest");
        assert_eq!(v["hyperparameters"]["n_estimators"], 10);
        let back: TrainingSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back.task, s.task);
        assert!(matches!(
            back.plan().unwrap(),
            Plan::Supervised(Supervised::RandomForest(_), TaskType::Classification)
        ));
    }

    #[test]
    fn bad_settings_and_other_versions_are_refused_by_the_plan() {
        let e = spec(
            Task::Clustering(ClusteringAlgorithm::Dbscan),
            json!({"n_estimators": 10}),
        )
        .plan()
        .err()
        .unwrap();
        assert!(e.to_string().contains("hyperparameters for dbscan"), "{e}");
        let mut s = spec(Task::Reduction(ReductionAlgorithm::Pca), json!({}));
        s.spec_version = 99;
        let e = s.plan().err().unwrap();
        assert!(e.to_string().contains("spec version 99"), "{e}");
    }
}
