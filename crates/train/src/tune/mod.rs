//! Hyperparameter tuning: a study searches an algorithm's settings (TPE, random or grid search
//! from `mlops_ml::search`), scoring each trial by cross-validation, and can train the final model
//! with the best. Studies and trials are rows in the shared database: a study is resumed by
//! another server when the one running it stops, and no trial number runs twice.

mod plots;
mod report;
mod run;
mod store;
mod study;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mlops_core::{Annotations, ArtifactStore, Capability, ToolContext, ToolDef};
use mlops_jobs::{JobManager, JobOptions};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::watch;

use crate::backend::Backend;
use crate::error::TrainError;
pub use report::{StudyList, StudyReport};
pub(crate) use run::score_trial;
use run::{StudyRun, load_data};
use store::{Studies, StudyRow, status};
pub(crate) use study::StudySpec;
use study::TuneInput;

/// How long a study's lease lasts unless `MLOPS_TUNING_LEASE_SECONDS` says otherwise: a study
/// whose server stops is taken over this long after its last renewal.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often a server looks for studies whose server stopped.
const RESUME_POLL: Duration = Duration::from_secs(1);

/// Hyperparameter tuning.
pub struct TuningCapability {
    shared: Shared,
}

#[derive(Clone)]
struct Shared {
    store: ArtifactStore,
    studies: Studies,
    /// The studies running in this server, as jobs (progress, cancellation).
    jobs: Arc<JobManager>,
    owner: String,
    lease: Duration,
    /// Where trials run: in this process, or each as a job of the training backend.
    backend: Backend,
}

impl TuningCapability {
    /// Opens (and creates) the study tables behind `pool`; trials run where `backend` says (a
    /// remote backend runs each trial as its own job).
    pub async fn open(
        store: ArtifactStore,
        pool: sqlx::AnyPool,
        lease: Duration,
        backend: Backend,
    ) -> Result<Arc<Self>, sqlx::Error> {
        Ok(Arc::new(Self {
            shared: Shared {
                store,
                studies: Studies::open(pool).await?,
                jobs: JobManager::new(),
                owner: format!("tuner-{}", uuid::Uuid::new_v4().simple()),
                lease,
                backend,
            },
        }))
    }

    /// Takes over, every second, the running studies whose server stopped (their lease ran out)
    /// and runs them on here. Stop it before the process exits.
    pub fn start_resumer(&self) -> ResumerHandle {
        let (stop, mut stopped) = watch::channel(false);
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            loop {
                if *stopped.borrow() {
                    break;
                }
                match shared
                    .studies
                    .claim_abandoned(&shared.owner, shared.lease.as_millis() as i64)
                    .await
                {
                    Ok(names) => {
                        for name in names {
                            tracing::info!(study = %name, "resuming a study whose server stopped");
                            if let Err(e) = shared.resume(&name).await {
                                tracing::warn!(study = %name, error = %e, "could not resume the study");
                                let message = e.to_string();
                                let _ = shared
                                    .studies
                                    .finish(
                                        &name,
                                        status::FAILED,
                                        None,
                                        Some(&message),
                                        Some(&shared.owner),
                                    )
                                    .await;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "looking for studies to resume failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(RESUME_POLL) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        ResumerHandle { stop, task }
    }
}

/// The running resumer.
pub struct ResumerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ResumerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn generated_name() -> String {
    let now = chrono::Utc::now();
    format!(
        "tune-{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        now.timestamp_subsec_micros() % 0x10000
    )
}

impl Shared {
    async fn tune(&self, input: TuneInput, ctx: ToolContext) -> Result<StudyReport, TrainError> {
        let spec = input.check()?;
        let name = input.study_name.clone().unwrap_or_else(generated_name);
        mlops_core::check_folder_name("study_name", &name).map_err(TrainError::invalid)?;
        if self.studies.get(&name).await?.is_some() {
            return Err(TrainError::invalid(format!(
                "a study named `{name}` exists; choose another study_name"
            )));
        }
        if spec.train_best && !spec.overwrite {
            let model = spec.model_name.as_deref().unwrap_or(&name);
            let manifest = mlops_core::ModelArtifact::manifest_ref(
                &self.store,
                &mlops_core::ModelArtifact::folder_key(model),
            )?;
            if self.store.exists(&manifest).await? {
                return Err(TrainError::invalid(format!(
                    "a model named `{model}` already exists; choose another model_name or pass overwrite: true"
                )));
            }
        }
        let data = load_data(&self.store, &spec).await?;
        let stored = serde_json::to_value(&spec)
            .map_err(|e| TrainError::failed(format!("could not encode the study: {e}")))?;
        if !self
            .studies
            .create(&name, &stored, &self.owner, self.lease.as_millis() as i64)
            .await?
        {
            return Err(TrainError::invalid(format!(
                "a study named `{name}` exists; choose another study_name"
            )));
        }
        let deadline = spec
            .timeout_seconds
            .map(|s| Instant::now() + Duration::from_secs(s));
        self.start(&name, spec, data, deadline, input.wait, ctx)
            .await?;
        let report = self.report(&name, 0, input.wait).await?;
        // A study waited for that failed is the call's error, as a failed training job is; one
        // cancelled or finished is its report.
        if input.wait && report.status == status::FAILED {
            return Err(TrainError::invalid(format!(
                "tuning study `{name}` failed: {}",
                report.error.as_deref().unwrap_or("no reason recorded")
            )));
        }
        Ok(report)
    }

    /// Runs the study `name` in a job of this server.
    async fn start(
        &self,
        name: &str,
        spec: StudySpec,
        data: run::TrialData,
        deadline: Option<Instant>,
        wait: bool,
        ctx: ToolContext,
    ) -> Result<(), TrainError> {
        let algorithm = spec.task.algorithm_name();
        let run = Arc::new(StudyRun {
            name: name.into(),
            spec,
            data: Arc::new(data),
            studies: self.studies.clone(),
            owner: self.owner.clone(),
            lease: self.lease,
            store: self.store.clone(),
            backend: self.backend.clone(),
            deadline,
        });
        let opts = JobOptions {
            name: Some(name.into()),
            overwrite: false,
            wait,
            max_runtime_seconds: None,
        };
        let span = tracing::info_span!("tuning_study", study = %name, algorithm);
        let started =
            mlops_jobs::start_job(&self.jobs, name.into(), algorithm, &opts, span, |job, _| {
                run.run(job, ctx)
            })
            .await;
        // A study that failed or was cancelled is reported, not raised: its row says what
        // happened and the caller gets the report.
        if let Err(e) = started {
            tracing::info!(study = %name, error = %e, "the study ended early");
        }
        Ok(())
    }

    /// Runs a study this server has just taken over: its data is read again and its trials go on
    /// from the table.
    async fn resume(&self, name: &str) -> Result<(), TrainError> {
        let row = self.require(name).await?;
        let spec: StudySpec = serde_json::from_value(row.spec.clone())
            .map_err(|e| TrainError::failed(format!("the stored study does not decode: {e}")))?;
        let data = load_data(&self.store, &spec).await?;
        // The time limit counts from the study's creation, whichever server runs it.
        let deadline = spec.timeout_seconds.map(|s| {
            let created = chrono::DateTime::parse_from_rfc3339(&row.created_at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now());
            let left = (created + chrono::Duration::seconds(s as i64)) - chrono::Utc::now();
            Instant::now() + left.to_std().unwrap_or_default()
        });
        self.start(name, spec, data, deadline, false, ToolContext::default())
            .await
    }

    async fn require(&self, name: &str) -> Result<StudyRow, TrainError> {
        mlops_core::check_folder_name("study_name", name).map_err(TrainError::invalid)?;
        self.studies
            .get(name)
            .await?
            .ok_or_else(|| TrainError::invalid(format!("no tuning study named `{name}`")))
    }

    /// The study's report; with `images`, its saved plots too.
    async fn report(
        &self,
        name: &str,
        offset: usize,
        images: bool,
    ) -> Result<StudyReport, TrainError> {
        let row = self.require(name).await?;
        let trials = self.studies.trials(name).await?;
        let live = self
            .jobs
            .get(name)
            .map(|j| j.snapshot())
            .filter(|s| s.status == mlops_jobs::JobStatus::Running);
        let mut report = StudyReport::build(row, &trials, live.and_then(|s| s.message), offset)?;
        for plot in plots::PLOTS {
            let key = self.store.key(&plots::plot_key(name, plot))?;
            if !self.store.exists(&key).await? {
                continue;
            }
            report.plots.push(key.uri().to_string());
            if images {
                report.images.push(mlops_core::ToolImage {
                    mime_type: "image/png".into(),
                    data: self.store.get(&key).await?,
                });
            }
        }
        Ok(report)
    }

    async fn cancel(&self, name: &str) -> Result<StudyReport, TrainError> {
        let row = self.require(name).await?;
        if row.status != status::RUNNING {
            return Err(TrainError::invalid(format!(
                "study `{name}` has already ended ({})",
                row.status
            )));
        }
        // Ended here at once; the server running it sees that when it next renews its lease,
        // and this server's own job is stopped now.
        self.studies
            .finish(name, status::CANCELLED, None, Some("cancelled"), None)
            .await?;
        // This server's own run stops now; the reply waits (briefly) for its trials to stop.
        self.jobs.stop(name).await;
        self.report(name, 0, false).await
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyNameInput {
    pub study_name: String,
    /// The first trial of the page (trials are listed by number).
    #[serde(default)]
    pub offset: usize,
    /// Return the plots (optimisation history, parallel coordinates, parameter importance) as
    /// images too; their files are listed either way once the study has finished.
    #[serde(default)]
    pub plots: bool,
}

/// Input of `cancel_tuning_study`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelStudyInput {
    pub study_name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListStudiesInput {
    /// Only studies in this state: running, completed, cancelled, failed.
    pub status: Option<String>,
    /// At most this many, newest first (default 50).
    pub limit: Option<u32>,
}

impl Capability for TuningCapability {
    fn name(&self) -> &'static str {
        "tuning"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let shared = self.shared.clone();
        vec![
            ToolDef::with(
                shared.clone(),
                "tune_hyperparameters",
                "Tune hyperparameters",
                "Search an algorithm's settings as a durable study: each trial's settings are drawn from `search_space` (sampler tpe = Tree-structured Parzen Estimator, the default; random; grid) and scored by k-fold cross-validation (stratified for classification) or on `validation_data_uri`, `n_parallel` at once (with MLOPS_TRAINING_BACKEND=ray, each a Ray job); `pruner` (median, successive_halving) stops poor trials after a fold. Reports the fixed settings' score (baseline), the best trial and settings, parameter importance; `train_best` then trains `models/<model_name>/` on all the data with the best settings, ready for register_model. A stopped server's study is resumed by another; follow one with get_tuning_study. Example: {\"task\":\"classification\",\"algorithm\":\"xgboost\",\"train_data_uri\":\"processed/churn/train.parquet\",\"search_space\":{\"max_depth\":{\"type\":\"int\",\"low\":2,\"high\":10},\"learning_rate\":{\"type\":\"float\",\"low\":0.01,\"high\":0.3,\"log\":true}},\"metric\":\"roc_auc\",\"n_trials\":30}",
                Annotations::WRITES,
                |s, i: TuneInput, ctx| async move { s.tune(i, ctx).await },
            )
            .long_running(),
            ToolDef::with(
                shared.clone(),
                "get_tuning_study",
                "Get a tuning study",
                "A study's status, progress, baseline and best trial, parameter importance, the final model's folder, and a page of its trials (number, state, score, settings, seconds), from any server sharing the database.",
                Annotations::READ_ONLY,
                |s, i: StudyNameInput, _ctx| async move {
                    s.report(&i.study_name, i.offset, i.plots).await
                },
            ),
            ToolDef::with(
                shared.clone(),
                "list_tuning_studies",
                "List tuning studies",
                "Tuning studies, newest first, with their state, algorithm, metric and best score.",
                Annotations::READ_ONLY,
                |s, i: ListStudiesInput, _ctx| async move {
                    let limit = i64::from(i.limit.unwrap_or(50).clamp(1, 500));
                    let rows = s.studies.list(i.status.as_deref(), limit).await?;
                    let mut out = Vec::new();
                    for row in rows {
                        let trials = s.studies.trials(&row.name).await?;
                        out.push(StudyReport::build(row, &trials, None, usize::MAX)?);
                    }
                    Ok::<_, TrainError>(StudyList::new(out))
                },
            ),
            ToolDef::with(
                shared,
                "cancel_tuning_study",
                "Cancel a tuning study",
                "Stop a running study: its running trials stop within about a second; finished trials and the best so far are kept.",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: false,
                    open_world: false,
                },
                |s, i: CancelStudyInput, _ctx| async move { s.cancel(&i.study_name).await },
            ),
        ]
    }
}
