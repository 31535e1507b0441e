//! A tuning study as asked for: `tune_hyperparameters`' input, checked into a [`StudySpec`] that
//! is stored with the study, so a server that takes the study over runs exactly what was asked.

use mlops_core::metric_names::{self, MetricName};
use mlops_data::TaskType;
use mlops_ml::search::{PrunerKind, SamplerKind, SearchSpace};
use mlops_ml::{ClassifierAlgorithm, MAX_FOLDS, RegressorAlgorithm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::TrainError;
use crate::spec::{SPEC_VERSION, Task, TrainingSpec};

/// Most trials one study may ask for.
pub const MAX_TRIALS: u32 = 10_000;
/// Most trials one study runs at once.
pub const MAX_PARALLEL: u32 = 32;
/// The longest time limit a study may have: 30 days.
pub const MAX_TIMEOUT_SECONDS: u64 = 30 * 24 * 3600;

/// Which way the metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Maximize,
    Minimize,
}

/// The kind of model tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TuneTask {
    Classification,
    Regression,
}

fn default_true() -> bool {
    true
}
fn default_trials() -> u32 {
    20
}
fn default_folds() -> u32 {
    3
}
fn one() -> u32 {
    1
}

/// Input of `tune_hyperparameters`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TuneInput {
    /// Unique study name (letters, digits, `-`, `_`, `.`). Generated when absent.
    pub study_name: Option<String>,
    pub task: TuneTask,
    /// classification: random_forest, xgboost, logistic_regression, neural_network; regression:
    /// random_forest, xgboost, linear, neural_network.
    pub algorithm: String,
    /// As for train_supervised_classifier: processed data, or raw data with `target_column`.
    pub train_data_uri: String,
    pub target_column: Option<String>,
    pub pipeline_uri: Option<String>,
    /// Score trials on this table instead of by cross-validation.
    pub validation_data_uri: Option<String>,
    /// Settings held fixed in every trial (the algorithm's defaults otherwise).
    #[serde(default)]
    pub hyperparameters: Map<String, Value>,
    /// Per setting: `{"type":"int","low":10,"high":300}`, `{"type":"float","low":0.001,"high":0.3,"log":true}`
    /// (optional `step`), or `{"type":"categorical","choices":["sqrt","log2"]}` (or just the list).
    pub search_space: Value,
    /// Any metric name of the task (accuracy, f1, roc_auc, log_loss, r2, rmse, mae, ...); the
    /// task's default (accuracy, r2) when absent.
    pub metric: Option<String>,
    /// Defaults to the metric's own (minimize for losses and errors).
    pub direction: Option<Direction>,
    /// Folds of the cross-validation (stratified for classification).
    #[serde(default = "default_folds")]
    pub cv_folds: u32,
    #[serde(default = "default_trials")]
    pub n_trials: u32,
    /// Start no new trial after this many seconds.
    pub timeout_seconds: Option<u64>,
    /// Trials at once.
    #[serde(default = "one")]
    pub n_parallel: u32,
    #[serde(default)]
    pub sampler: SamplerKind,
    /// Stops trials whose running cross-validation mean is poor (after each fold).
    #[serde(default)]
    pub pruner: PrunerKind,
    /// The same seed gives the same sequence of trials (run one at a time).
    #[serde(default)]
    pub seed: u64,
    /// Then train a model on all the training data with the best settings.
    #[serde(default)]
    pub train_best: bool,
    /// That model's name under `models/` (default: the study's name).
    pub model_name: Option<String>,
    /// Replace an existing model of that name.
    #[serde(default)]
    pub overwrite: bool,
    /// Wait for the study to end (default). With false, return at once and poll get_tuning_study.
    #[serde(default = "default_true")]
    pub wait: bool,
}

/// A checked study, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudySpec {
    pub task: Task,
    pub train_data_uri: String,
    pub target_column: Option<String>,
    pub pipeline_uri: Option<String>,
    pub validation_data_uri: Option<String>,
    pub hyperparameters: Map<String, Value>,
    pub search_space: SearchSpace,
    /// The metric's key (`f1_macro`).
    pub metric: String,
    pub direction: Direction,
    pub cv_folds: u32,
    pub n_trials: u32,
    pub timeout_seconds: Option<u64>,
    pub n_parallel: u32,
    pub sampler: SamplerKind,
    pub pruner: PrunerKind,
    pub seed: u64,
    pub train_best: bool,
    pub model_name: Option<String>,
    #[serde(default)]
    pub overwrite: bool,
}

fn invalid(msg: impl Into<String>) -> TrainError {
    TrainError::invalid(msg)
}

fn task_of(task: TuneTask, algorithm: &str) -> Result<Task, TrainError> {
    let name = Value::String(algorithm.trim().to_lowercase());
    let parsed = match task {
        TuneTask::Classification => {
            serde_json::from_value::<ClassifierAlgorithm>(name).map(Task::Classifier)
        }
        TuneTask::Regression => {
            serde_json::from_value::<RegressorAlgorithm>(name).map(Task::Regressor)
        }
    };
    parsed.map_err(|_| match task {
        TuneTask::Classification => invalid(format!(
            "algorithm `{algorithm}` cannot be tuned for classification; use random_forest, xgboost, logistic_regression or neural_network"
        )),
        TuneTask::Regression => invalid(format!(
            "algorithm `{algorithm}` cannot be tuned for regression; use random_forest, xgboost, linear or neural_network"
        )),
    })
}

impl TuneInput {
    /// Checks everything that can be checked before the data is read: the algorithm, every bound
    /// of the search space against the settings the algorithm accepts, the metric for the task,
    /// the counts.
    pub fn check(&self) -> Result<StudySpec, TrainError> {
        let task = task_of(self.task, &self.algorithm)?;
        let task_name = match self.task {
            TuneTask::Classification => TaskType::Classification,
            TuneTask::Regression => TaskType::Regression,
        }
        .as_str();
        let metric = metric_for(self.metric.as_deref(), task_name)?;
        let lower_is_better = metric.lower_is_better;
        let direction = self.direction.unwrap_or(if lower_is_better {
            Direction::Minimize
        } else {
            Direction::Maximize
        });
        if (direction == Direction::Minimize) != lower_is_better {
            return Err(invalid(format!(
                "direction {} contradicts {}, where {} is better; leave direction out",
                if direction == Direction::Minimize {
                    "minimize"
                } else {
                    "maximize"
                },
                metric.name,
                if lower_is_better { "lower" } else { "higher" }
            )));
        }
        if self.n_trials == 0 || self.n_trials > MAX_TRIALS {
            return Err(invalid(format!(
                "n_trials must be between 1 and {MAX_TRIALS}; got {}",
                self.n_trials
            )));
        }
        if self.n_parallel == 0 || self.n_parallel > MAX_PARALLEL {
            return Err(invalid(format!(
                "n_parallel must be between 1 and {MAX_PARALLEL}; got {}",
                self.n_parallel
            )));
        }
        if self.validation_data_uri.is_none() && !(2..=MAX_FOLDS as u32).contains(&self.cv_folds) {
            return Err(invalid(format!(
                "cv_folds must be between 2 and {MAX_FOLDS}; got {}",
                self.cv_folds
            )));
        }
        if let Some(t) = self.timeout_seconds
            && !(1..=MAX_TIMEOUT_SECONDS).contains(&t)
        {
            return Err(invalid(format!(
                "timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS} (30 days); got {t}"
            )));
        }
        if let Some(name) = &self.model_name {
            mlops_core::check_folder_name("model_name", name).map_err(invalid)?;
        }
        let space = SearchSpace::from_json(&self.search_space)
            .map_err(|e| invalid(format!("search_space: {e}")))?;
        if let Some(fixed) = space
            .params
            .keys()
            .find(|k| self.hyperparameters.contains_key(*k))
        {
            return Err(invalid(format!(
                "`{fixed}` is both in hyperparameters (fixed) and in search_space (searched); keep it in one"
            )));
        }
        let spec = StudySpec {
            task,
            train_data_uri: self.train_data_uri.clone(),
            target_column: self.target_column.clone(),
            pipeline_uri: self.pipeline_uri.clone(),
            validation_data_uri: self.validation_data_uri.clone(),
            hyperparameters: self.hyperparameters.clone(),
            search_space: space,
            metric: metric.key.to_string(),
            direction,
            cv_folds: self.cv_folds,
            n_trials: self.n_trials,
            timeout_seconds: self.timeout_seconds,
            n_parallel: self.n_parallel,
            sampler: self.sampler,
            pruner: self.pruner,
            seed: self.seed,
            train_best: self.train_best,
            model_name: self.model_name.clone(),
            overwrite: self.overwrite,
        };
        spec.training_spec(&Map::new(), "check").plan()?;
        for (name, corner) in spec.search_space.corners() {
            spec.training_spec(&corner, "check")
                .plan()
                .map_err(|e| invalid(format!("search_space `{name}`: {e}")))?;
        }
        Ok(spec)
    }
}

/// The metric `name` names for `task`, or the task's default.
pub fn metric_for(name: Option<&str>, task: &str) -> Result<&'static MetricName, TrainError> {
    let accepted = || {
        metric_names::for_task(task)
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = name else {
        return metric_names::default_for(task)
            .ok_or_else(|| invalid(format!("no metric scores {task} models")));
    };
    let metric = metric_names::lookup(name).ok_or_else(|| {
        invalid(format!(
            "unknown metric `{name}`; {task} metrics are {}",
            accepted()
        ))
    })?;
    if metric.task != task {
        return Err(invalid(format!(
            "{} scores {} models, not {task}; use one of {}",
            metric.name,
            metric.task,
            accepted()
        )));
    }
    Ok(metric)
}

impl StudySpec {
    /// The metric's entry in the shared vocabulary.
    pub fn metric(&self) -> Result<&'static MetricName, TrainError> {
        metric_names::lookup(&self.metric)
            .ok_or_else(|| invalid(format!("unknown metric `{}`", self.metric)))
    }

    /// Every setting of a trial: the fixed ones with `params` over them.
    pub fn settings(&self, params: &Map<String, Value>) -> Map<String, Value> {
        let mut all = self.hyperparameters.clone();
        all.extend(params.clone());
        all
    }

    /// A training job with `params` (the final model's, or a check of the settings).
    pub fn training_spec(&self, params: &Map<String, Value>, name: &str) -> TrainingSpec {
        TrainingSpec {
            spec_version: SPEC_VERSION,
            task: self.task,
            training_job_name: name.into(),
            data_uri: self.train_data_uri.clone(),
            environment: None,
            target_column: self.target_column.clone(),
            pipeline_uri: self.pipeline_uri.clone(),
            validation_data_uri: None,
            hyperparameters: self.settings(params),
            seed: self.seed,
            max_runtime_seconds: None,
            tuning_study: None,
            trial: None,
        }
    }

    /// The value a sampler minimises: the metric, negated when higher is better.
    pub fn loss(&self, value: f64) -> f64 {
        match self.direction {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> TuneInput {
        let mut base = json!({
            "task": "classification", "algorithm": "random_forest",
            "train_data_uri": "processed/x/train.csv",
            "search_space": {"n_estimators": {"type": "int", "low": 10, "high": 100}}
        });
        base.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn refused(v: Value) -> String {
        input(v).check().unwrap_err().to_string()
    }

    #[test]
    fn a_good_study_is_accepted_with_the_metric_key_and_its_direction() {
        let s = input(json!({"metric": "F1 score"})).check().unwrap();
        assert_eq!(s.metric, "f1_macro");
        assert_eq!(s.direction, Direction::Maximize);
        let s = input(json!({"metric": "logloss"})).check().unwrap();
        assert_eq!(s.direction, Direction::Minimize);
        assert_eq!(s.loss(0.3), 0.3);
    }

    #[test]
    fn bad_studies_are_refused_with_a_message_naming_what_is_wrong() {
        let e = refused(json!({"search_space": {"n_trees": {"type": "int", "low": 1, "high": 5}}}));
        assert!(e.contains("search_space `n_trees`"), "{e}");
        let e = refused(
            json!({"search_space": {"max_features": {"type": "float", "low": 0.5, "high": 3.0}}}),
        );
        assert!(e.contains("search_space `max_features`"), "{e}");
        let e = refused(json!({"n_trials": 0}));
        assert!(e.contains("n_trials must be between 1"), "{e}");
        let e = refused(json!({"metric": "rmse"}));
        assert!(e.contains("rmse scores regression models"), "{e}");
        let e = refused(json!({"metric": "rmse", "direction": "maximize", "task": "regression"}));
        assert!(e.contains("contradicts rmse"), "{e}");
        let e = refused(json!({"algorithm": "kmeans"}));
        assert!(e.contains("cannot be tuned for classification"), "{e}");
        let e = refused(json!({"hyperparameters": {"n_estimators": 5}}));
        assert!(e.contains("both in hyperparameters"), "{e}");
        let e = refused(json!({"timeout_seconds": u64::MAX}));
        assert!(e.contains("timeout_seconds must be between 1"), "{e}");
        let e = refused(json!({"cv_folds": 1}));
        assert!(e.contains("cv_folds must be between 2"), "{e}");
    }
}
