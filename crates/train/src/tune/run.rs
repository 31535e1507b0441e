//! Running a study: trials are claimed one number at a time, sampled from the finished trials,
//! scored by cross-validation (or on a validation table) off the async threads, `n_parallel` at
//! once, and recorded as they end. The study holds a lease while it runs; cancellation (here or
//! from another server) stops the running trials through their fits' stop flag.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlops_core::{ArtifactStore, ToolContext};
use mlops_jobs::{Job, JobManager, JobOptions};
use mlops_ml::search::{Observation, SamplerKind, grid_size, sample, should_prune};
use mlops_ml::{CvOutcome, FitControl, Labels, Matrix, Supervised, cross_validate};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::backend::{Backend, RemoteTraining};
use crate::error::TrainError;
use crate::prepare::supervised_rows;
use crate::runner::JobResult;
use crate::spec::{Plan, TrialSpec, execute};
use crate::tune::store::{Studies, TrialEnd, TrialRow, status};
use crate::tune::study::StudySpec;

/// How long cancelled trials get to notice before they are left to end on their own.
const ABANDON_AFTER: Duration = Duration::from_millis(500);

/// The rows every trial of a study scores on.
pub struct TrialData {
    x: Matrix,
    y: Labels,
    /// The cross-validation folds, or the validation table.
    scoring: Scoring,
}

enum Scoring {
    Folds(Vec<Vec<usize>>),
    Validation(Matrix, Labels),
}

/// Reads and prepares the study's data (before the study is recorded, so bad data is refused at
/// once).
pub async fn load_data(store: &ArtifactStore, spec: &StudySpec) -> Result<TrialData, TrainError> {
    let task = match spec.task {
        crate::spec::Task::Classifier(_) => mlops_data::TaskType::Classification,
        _ => mlops_data::TaskType::Regression,
    };
    let rows = supervised_rows(
        store,
        &spec.train_data_uri,
        spec.target_column.as_deref(),
        spec.pipeline_uri.as_deref(),
        spec.validation_data_uri.as_deref(),
        task,
    )
    .await?;
    let (x, y) = (rows.x, rows.y);
    let scoring = match rows.validation {
        Some((vx, vy)) => Scoring::Validation(vx, vy),
        None => Scoring::Folds(mlops_ml::folds(&y, spec.cv_folds as usize, spec.seed)?),
    };
    Ok(TrialData { x, y, scoring })
}

/// The fitted algorithm of a trial's settings.
fn algorithm(spec: &StudySpec, params: &Map<String, Value>) -> Result<Supervised, TrainError> {
    match spec.training_spec(params, "trial").plan()? {
        Plan::Supervised(a, _) => Ok(a),
        _ => Err(TrainError::invalid("only supervised models can be tuned")),
    }
}

/// How one evaluation ended: the fold means so far, and whether it ran to the end.
enum Scored {
    Complete(Vec<f64>),
    Pruned(Vec<f64>),
    Cancelled,
}

fn running_means(scores: &[f64]) -> Vec<f64> {
    scores
        .iter()
        .scan(0.0, |sum, s| {
            *sum += s;
            Some(*sum)
        })
        .enumerate()
        .map(|(i, sum)| sum / (i + 1) as f64)
        .collect()
}

/// Scores `params`; `prune(step, mean)` may stop it after a fold.
fn evaluate(
    spec: &StudySpec,
    data: &TrialData,
    params: &Map<String, Value>,
    cancelled: &Arc<AtomicBool>,
    prune: impl FnMut(usize, f64) -> bool,
) -> Result<Scored, TrainError> {
    let algorithm = algorithm(spec, params)?;
    let metric = spec.metric()?;
    let control = FitControl::silent(cancelled.clone());
    match &data.scoring {
        Scoring::Folds(folds) => {
            let mut keep_going = prune;
            let outcome = cross_validate(
                &algorithm,
                &data.x,
                &data.y,
                folds,
                metric,
                &control,
                |step, mean| !keep_going(step, mean),
            )?;
            Ok(match outcome {
                CvOutcome::Complete(s) => Scored::Complete(running_means(&s)),
                CvOutcome::Stopped(s) => Scored::Pruned(running_means(&s)),
                CvOutcome::Cancelled => Scored::Cancelled,
            })
        }
        Scoring::Validation(vx, vy) => {
            let Some((model, _)) = algorithm.fit(&data.x, &data.y, None, &control)? else {
                return Ok(Scored::Cancelled);
            };
            let predicted = match vy {
                Labels::Classes(..) => model.predict_proba(vx)?,
                Labels::Values(_) => model.predict_values(vx)?,
            };
            Ok(Scored::Complete(vec![mlops_ml::supervised_metric(
                metric, vy, &predicted,
            )?]))
        }
    }
}

/// What a study run shares with its trials.
pub struct StudyRun {
    pub name: String,
    pub spec: StudySpec,
    pub data: Arc<TrialData>,
    pub studies: Studies,
    pub owner: String,
    pub lease: Duration,
    pub store: ArtifactStore,
    pub backend: Backend,
    /// The study's deadline (`timeout_seconds` after it was created).
    pub deadline: Option<Instant>,
}

/// Every trial's fold means by number, for the pruner: loaded from the table, then kept up to
/// date by this server's trials.
type FoldMeans = Arc<Mutex<BTreeMap<i64, Vec<f64>>>>;

impl StudyRun {
    /// Runs the study to its end inside `job`; returns its summary and the final model's folder.
    pub async fn run(
        self: Arc<Self>,
        job: Arc<Job>,
        ctx: ToolContext,
    ) -> Result<(Value, Option<String>), TrainError> {
        let cancelled = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        // The lease is held to the very end: through the plots and the final model too.
        let keeper = self.keep_lease(job.clone(), lost.clone());
        let outcome = match self.trials(&job, &ctx, &cancelled).await {
            Ok(()) => self.conclude(&job, &ctx).await,
            Err(e) => Err(e),
        };
        cancelled.store(true, Ordering::Relaxed);
        if lost.load(Ordering::Relaxed) {
            keeper.abort();
            // Cancelled elsewhere, or another server holds the study now: it is theirs to end.
            let row = self.studies.get(&self.name).await?;
            return match row.map(|r| r.status) {
                Some(s) if s == status::CANCELLED => Err(TrainError::Cancelled(self.name.clone())),
                _ => Err(TrainError::failed(format!(
                    "study `{}` was taken over by another server",
                    self.name
                ))),
            };
        }
        let (end, error) = match &outcome {
            Ok(_) => (status::COMPLETED, None),
            Err(TrainError::Cancelled(_)) => (status::CANCELLED, None),
            Err(e) => (status::FAILED, Some(e.to_string())),
        };
        let model_uri = outcome.as_ref().ok().and_then(|(_, uri)| uri.clone());
        let ended = self
            .studies
            .finish(
                &self.name,
                end,
                model_uri.as_deref(),
                error.as_deref(),
                Some(&self.owner),
            )
            .await;
        keeper.abort();
        if !ended? && outcome.is_ok() {
            // Cancelled (or taken over) while the last steps ran: the row says so, not this run.
            return Err(TrainError::Cancelled(self.name.clone()));
        }
        outcome
    }

    /// Renews the lease every second (or every third of a shorter lease). A renewal refused means
    /// the study was cancelled (here or on another server) or is someone else's now; a database
    /// out of reach for a whole lease means another server may have taken it over. Either way
    /// the job is stopped.
    fn keep_lease(&self, job: Arc<Job>, lost: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let (studies, name, owner, lease) = (
            self.studies.clone(),
            self.name.clone(),
            self.owner.clone(),
            self.lease,
        );
        let every = (lease / 3).min(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let held = match studies.renew(&name, &owner, lease.as_millis() as i64).await {
                    Ok(true) => {
                        renewed = Instant::now();
                        true
                    }
                    Ok(false) => false,
                    Err(e) => {
                        tracing::warn!(study = %name, error = %e, "could not renew the study's lease");
                        renewed.elapsed() < lease
                    }
                };
                if !held {
                    lost.store(true, Ordering::Relaxed);
                    job.cancel.cancel();
                    return;
                }
            }
        })
    }

    /// The baseline and the trials, until `n_trials` have ended, the deadline passes or the job
    /// is cancelled.
    async fn trials(
        self: &Arc<Self>,
        job: &Arc<Job>,
        ctx: &ToolContext,
        cancelled: &Arc<AtomicBool>,
    ) -> Result<(), TrainError> {
        let interrupted = self
            .studies
            .interrupt_others(&self.name, &self.owner)
            .await?;
        if interrupted > 0 {
            tracing::info!(study = %self.name, interrupted, "resuming a study; trials left running by a stopped server will not count");
        }
        let row = self.studies.get(&self.name).await?;
        let past_deadline = || self.deadline.is_some_and(|d| Instant::now() >= d);
        if row.as_ref().and_then(|r| r.baseline_value).is_none() && !past_deadline() {
            job.set_progress(
                0.0,
                Some("scoring the fixed settings (the baseline)".into()),
            );
            // The fixed settings may fail where searched ones do not (a default that does not
            // suit this data): the study goes on without a baseline.
            match self.score_blocking(Map::new(), cancelled, job).await {
                Ok(Some(v)) => self.studies.set_baseline(&self.name, v).await?,
                Ok(None) => {}
                Err(e @ TrainError::Cancelled(_)) => return Err(e),
                Err(e) => {
                    tracing::info!(study = %self.name, error = %e, "the fixed settings could not be scored")
                }
            }
        }
        let fold_means: FoldMeans = Arc::default();
        let limit = match self.spec.sampler {
            SamplerKind::Grid => grid_size(&self.spec.search_space).min(self.spec.n_trials as u64),
            _ => self.spec.n_trials as u64,
        };
        // Trials in this process share its cores (each fit is parallel too); remote ones do not.
        let at_once = match self.backend {
            Backend::Local => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(self.spec.n_parallel as usize),
            Backend::Remote(_) => self.spec.n_parallel as usize,
        };
        let mut running: JoinSet<()> = JoinSet::new();
        loop {
            if job.cancel.is_cancelled() {
                cancelled.store(true, Ordering::Relaxed);
                let _ = tokio::time::timeout(ABANDON_AFTER, async {
                    while running.join_next().await.is_some() {}
                })
                .await;
                return Err(TrainError::Cancelled(self.name.clone()));
            }
            let trials = self.studies.trials(&self.name).await?;
            {
                let mut means = fold_means.lock().unwrap_or_else(|e| e.into_inner());
                for t in &trials {
                    means
                        .entry(t.number)
                        .or_insert_with(|| t.fold_means.clone());
                }
            }
            let finished = trials.iter().filter(|t| t.is_finished()).count() as u64;
            self.report(job, ctx, &trials, finished, limit);
            let mut next = trials.iter().map(|t| t.number + 1).max().unwrap_or(0);
            let mut refused = false;
            let mut claimed: Vec<Map<String, Value>> = Vec::new();
            while !past_deadline()
                && running.len() < at_once
                && finished + (running.len() as u64) < limit
            {
                let params = self.next_params(&trials, &claimed, next);
                if !self
                    .studies
                    .claim_trial(&self.name, next, &params, &self.owner)
                    .await?
                {
                    // The study is no longer ours (cancelled or taken over): the lease keeper
                    // stops this run within a second.
                    refused = true;
                    break;
                }
                claimed.push(params.clone());
                let this = self.clone();
                let (cancelled, fold_means) = (cancelled.clone(), fold_means.clone());
                running.spawn(async move {
                    this.trial(next, params, cancelled, fold_means).await;
                });
                next += 1;
            }
            if refused && running.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if running.is_empty() {
                return Ok(());
            }
            tokio::select! {
                _ = running.join_next() => {}
                _ = job.cancel.cancelled() => {}
            }
        }
    }

    /// The settings of trial `number`: drawn by the sampler from the finished trials; for a grid,
    /// the first point no trial has taken (a point whose trial was interrupted is run again).
    /// `claimed`: the settings of trials claimed since `trials` was read.
    fn next_params(
        &self,
        trials: &[TrialRow],
        claimed: &[Map<String, Value>],
        number: i64,
    ) -> Map<String, Value> {
        let space = &self.spec.search_space;
        if self.spec.sampler == SamplerKind::Grid {
            let taken: Vec<&Map<String, Value>> = trials
                .iter()
                .filter(|t| t.status != status::INTERRUPTED && t.status != status::CANCELLED)
                .map(|t| &t.params)
                .chain(claimed)
                .collect();
            if let Some(free) = (0..grid_size(space))
                .map(|k| sample(SamplerKind::Grid, space, &[], self.spec.seed, k))
                .find(|p| !taken.contains(&p))
            {
                return free;
            }
        }
        let history = observations(&self.spec, trials);
        sample(
            self.spec.sampler,
            space,
            &history,
            self.spec.seed,
            number as u64,
        )
    }

    /// Progress: trials ended of the total, with the best value so far.
    fn report(&self, job: &Job, ctx: &ToolContext, trials: &[TrialRow], done: u64, total: u64) {
        let best = best_trial(&self.spec, trials);
        let message = match best {
            Some(b) => format!(
                "{done}/{total} trials; best {} {:.4} (trial {})",
                self.spec.metric,
                b.value.unwrap_or(f64::NAN),
                b.number
            ),
            None => format!("{done}/{total} trials"),
        };
        job.set_progress(done as f64 / total.max(1) as f64, Some(message.clone()));
        if let Some(p) = ctx.progress_fn() {
            p(done as f64, Some(total as f64), Some(message));
        }
    }

    /// Scores `params` off the async threads (no pruning): the baseline.
    async fn score_blocking(
        &self,
        params: Map<String, Value>,
        cancelled: &Arc<AtomicBool>,
        job: &Job,
    ) -> Result<Option<f64>, TrainError> {
        let (spec, data, flag) = (self.spec.clone(), self.data.clone(), cancelled.clone());
        let work = tokio::task::spawn_blocking(move || {
            evaluate(&spec, &data, &params, &flag, |_, _| false)
        });
        let scored = tokio::select! {
            r = work => r.map_err(|e| TrainError::failed(format!("the baseline's thread stopped: {e}")))??,
            _ = job.cancel.cancelled() => return Err(TrainError::Cancelled(self.name.clone())),
        };
        Ok(match scored {
            Scored::Complete(means) => means.last().copied(),
            _ => None,
        })
    }

    /// Runs trial `number` and records how it ended.
    async fn trial(
        self: Arc<Self>,
        number: i64,
        params: Map<String, Value>,
        cancelled: Arc<AtomicBool>,
        fold_means: FoldMeans,
    ) {
        let started = Instant::now();
        let result = match &self.backend {
            Backend::Local => {
                self.clone()
                    .local_trial(number, params, cancelled, fold_means.clone())
                    .await
            }
            Backend::Remote(remote) => {
                self.remote_trial(remote.clone(), number, params, cancelled)
                    .await
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let (state, means, error) = match result {
            Ok(Scored::Complete(m)) => (status::COMPLETE, m, None),
            Ok(Scored::Pruned(m)) => (status::PRUNED, m, None),
            // The study is ending; it marks its running trials.
            Ok(Scored::Cancelled) => return,
            Err(e) => (status::FAILED, Vec::new(), Some(e.to_string())),
        };
        fold_means
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(number, means.clone());
        let end = TrialEnd {
            status: state,
            value: means.last().copied(),
            fold_means: &means,
            seconds,
            error: error.as_deref(),
        };
        if let Err(e) = self
            .studies
            .finish_trial(&self.name, number, &self.owner, &end)
            .await
        {
            tracing::warn!(study = %self.name, trial = number, error = %e, "could not record a trial");
        }
    }

    /// Scores a trial in this process, off the async threads; the pruner sees each fold.
    async fn local_trial(
        self: Arc<Self>,
        number: i64,
        params: Map<String, Value>,
        cancelled: Arc<AtomicBool>,
        fold_means: FoldMeans,
    ) -> Result<Scored, TrainError> {
        let work = tokio::task::spawn_blocking(move || {
            let spec = &self.spec;
            evaluate(spec, &self.data, &params, &cancelled, |step, mean| {
                let mut all = fold_means.lock().unwrap_or_else(|e| e.into_inner());
                let mine = all.entry(number).or_default();
                mine.push(mean);
                let others: Vec<f64> = all
                    .iter()
                    .filter(|(n, _)| **n != number)
                    .filter_map(|(_, m)| m.get(step - 1).map(|v| spec.loss(*v)))
                    .collect();
                should_prune(spec.pruner, step as u32, spec.loss(mean), &others)
            })
        });
        work.await
            .map_err(|e| TrainError::failed(format!("the trial's thread stopped: {e}")))?
    }

    /// Scores a trial as a job of the remote backend (`<study>-trial-<number>`): the worker reads
    /// the study's data and scores every fold (no pruning: its folds come back together).
    async fn remote_trial(
        &self,
        remote: RemoteTraining,
        number: i64,
        params: Map<String, Value>,
        cancelled: Arc<AtomicBool>,
    ) -> Result<Scored, TrainError> {
        let name = format!("{}-trial-{number}", self.name);
        let mut spec = self.spec.training_spec(&params, &name);
        // The worker reads the data through the study: every location absolute, as in the spec.
        let mut study = self.spec.clone();
        study.train_data_uri = self.store.resolve(&study.train_data_uri)?.uri().to_string();
        for uri in [&mut study.pipeline_uri, &mut study.validation_data_uri]
            .into_iter()
            .flatten()
        {
            *uri = self.store.resolve(uri)?.uri().to_string();
        }
        spec.trial = Some(Box::new(TrialSpec { study, params }));
        let spec = remote.prepare(&self.store, spec)?;
        let jobs = JobManager::new();
        let job = jobs
            .start(&name, spec.task.algorithm_name())
            .map_err(TrainError::invalid)?;
        // The study's stop flag stops the remote job too.
        let watcher = {
            let job = job.clone();
            tokio::spawn(async move {
                while !cancelled.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                job.cancel.cancel();
            })
        };
        let opts = JobOptions {
            name: Some(name),
            overwrite: true,
            wait: false,
            max_runtime_seconds: None,
        };
        let ran = remote
            .run(self.store.clone(), spec, job, ToolContext::default(), opts)
            .await;
        watcher.abort();
        match ran {
            Ok((metrics, _)) => Ok(Scored::Complete(
                serde_json::from_value(metrics["fold_means"].clone()).map_err(|e| {
                    TrainError::Remote(format!("the trial's worker reported no fold scores: {e}"))
                })?,
            )),
            Err(TrainError::Cancelled(_)) => Ok(Scored::Cancelled),
            Err(e) => Err(e),
        }
    }

    /// After the last trial: the best trial, the plots, and the final model when asked.
    async fn conclude(
        &self,
        job: &Job,
        ctx: &ToolContext,
    ) -> Result<(Value, Option<String>), TrainError> {
        let trials = self.studies.trials(&self.name).await?;
        let Some(best) = best_trial(&self.spec, &trials).cloned() else {
            let first = trials
                .iter()
                .find_map(|t| t.error.clone())
                .unwrap_or_else(|| "no trial ran".into());
            return Err(TrainError::invalid(format!(
                "no trial completed; the first error: {first}"
            )));
        };
        let history = observations(&self.spec, &trials);
        let importance = mlops_ml::search::parameter_importance(&self.spec.search_space, &history);
        if let Err(e) = crate::tune::plots::save_plots(
            &self.store,
            &self.name,
            &self.spec,
            &trials,
            &importance,
        )
        .await
        {
            tracing::warn!(study = %self.name, error = %e, "could not save the study's plots");
        }
        let model_uri = if self.spec.train_best {
            job.set_progress(1.0, Some("training the final model".into()));
            // Cancelling the study stops the final training too.
            let ctx = ToolContext::new(job.cancel.clone(), ctx.progress_fn());
            Some(self.train_best(&best, &ctx).await?)
        } else {
            None
        };
        let summary = json!({
            "best_trial": best.number,
            format!("best_{}", self.spec.metric): best.value,
            "best_hyperparameters": self.spec.settings(&best.params),
            "trials_complete": history.len(),
        });
        Ok((summary, model_uri))
    }

    /// Trains the final model on all the training data with the best trial's settings; the study
    /// is recorded in its metrics (its lineage).
    async fn train_best(&self, best: &TrialRow, ctx: &ToolContext) -> Result<String, TrainError> {
        let name = self.spec.model_name.clone().unwrap_or(self.name.clone());
        let mut spec = self.spec.training_spec(&best.params, &name);
        spec.tuning_study = Some(json!({
            "study_name": self.name,
            "best_trial": best.number,
            "metric": self.spec.metric,
            "value": best.value,
            "evaluation": match &self.data.scoring {
                Scoring::Folds(f) => format!("{}-fold cross-validation", f.len()),
                Scoring::Validation(..) => "validation table".into(),
            },
        }));
        let plan = spec.plan()?;
        let jobs = JobManager::new();
        let job = jobs
            .start(&name, spec.task.algorithm_name())
            .map_err(TrainError::invalid)?;
        let opts = JobOptions {
            name: Some(name.clone()),
            overwrite: true,
            wait: true,
            max_runtime_seconds: None,
        };
        let (_, uri) = execute(self.store.clone(), spec, plan, job, ctx.clone(), opts).await?;
        Ok(uri)
    }
}

/// The finished trials as the sampler sees them: complete ones, lower is better.
pub fn observations(spec: &StudySpec, trials: &[TrialRow]) -> Vec<Observation> {
    trials
        .iter()
        .filter(|t| t.status == status::COMPLETE)
        .filter_map(|t| {
            t.value.map(|v| Observation {
                params: t.params.clone(),
                value: spec.loss(v),
            })
        })
        .collect()
}

/// The complete trial with the best value (the lowest number among equals).
pub fn best_trial<'a>(spec: &StudySpec, trials: &'a [TrialRow]) -> Option<&'a TrialRow> {
    trials
        .iter()
        .filter(|t| t.status == status::COMPLETE && t.value.is_some_and(f64::is_finite))
        .min_by(|a, b| {
            spec.loss(a.value.unwrap_or(f64::NAN))
                .total_cmp(&spec.loss(b.value.unwrap_or(f64::NAN)))
                .then(a.number.cmp(&b.number))
        })
}

/// The worker's side of a remote trial (`train-worker` on a spec with a trial): reads the
/// study's data and scores the trial's settings on every fold.
pub async fn score_trial(
    store: &ArtifactStore,
    name: &str,
    trial: &TrialSpec,
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
) -> JobResult {
    let data = load_data(store, &trial.study).await?;
    let (study, params) = (trial.study.clone(), trial.params.clone());
    let means = crate::runner::run_blocking(job, ctx, opts, move |control| {
        match evaluate(&study, &data, &params, &control.cancelled, |_, _| false)? {
            Scored::Complete(means) | Scored::Pruned(means) => Ok::<_, TrainError>(Some(means)),
            Scored::Cancelled => Ok(None),
        }
    })
    .await?;
    let result = store.key(&format!("jobs/{name}/result.json"))?;
    Ok((
        json!({"fold_means": means, "value": means.last()}),
        result.uri().to_string(),
    ))
}
