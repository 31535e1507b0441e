//! What the tuning tools report: a study with its best trial and a page of its trials.

use mlops_core::{ToolImage, ToolResponse};
use mlops_ml::search::parameter_importance;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::TrainError;
use crate::tune::run::{best_trial, observations};
use crate::tune::store::{StudyRow, TrialRow, status};
use crate::tune::study::{Direction, StudySpec};

/// One trial.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TrialReport {
    pub number: i64,
    /// running, complete, pruned (stopped early by the pruner), failed, interrupted (its server
    /// stopped; it does not count), cancelled.
    pub status: String,
    /// The metric: the mean over the folds scored.
    pub value: Option<f64>,
    /// The searched settings.
    pub params: Map<String, Value>,
    /// The running mean after each fold.
    pub fold_means: Vec<f64>,
    pub started_at: String,
    pub seconds: Option<f64>,
    pub error: Option<String>,
}

impl From<&TrialRow> for TrialReport {
    fn from(t: &TrialRow) -> Self {
        Self {
            number: t.number,
            status: t.status.clone(),
            value: t.value,
            params: t.params.clone(),
            fold_means: t.fold_means.clone(),
            started_at: t.started_at.clone(),
            seconds: t.seconds,
            error: t.error.clone(),
        }
    }
}

/// A parameter's share of the variation of the score.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Importance {
    pub parameter: String,
    pub importance: f64,
}

/// Trials by how they ended.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct TrialCounts {
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    pub running: usize,
    /// Stopped when their server stopped; they do not count, and others were run instead.
    pub interrupted: usize,
    pub cancelled: usize,
}

/// A tuning study.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StudyReport {
    pub study_name: String,
    /// running, completed, cancelled, failed.
    pub status: String,
    /// While it runs here: trials done and the best so far.
    pub progress: Option<String>,
    pub algorithm: String,
    pub metric: String,
    pub direction: Direction,
    /// e.g. `3-fold cross-validation`.
    pub evaluation: String,
    pub sampler: Value,
    pub pruner: Value,
    pub n_trials: u32,
    pub trial_counts: TrialCounts,
    /// The score of the fixed settings alone (the algorithm's defaults for every searched one).
    pub baseline_value: Option<f64>,
    pub best_trial: Option<TrialReport>,
    /// Every setting of the best trial (fixed and searched): what `train_best` trained with.
    pub best_hyperparameters: Option<Map<String, Value>>,
    /// Each searched setting's share of the variation of the score, largest first (a random
    /// forest fitted on the complete trials, its impurity importances), once the study has ended.
    pub parameter_importance: Vec<Importance>,
    /// The model trained with the best settings (`train_best`).
    pub model_uri: Option<String>,
    /// The saved plots of a finished study (PNG): optimisation history, parallel coordinates,
    /// parameter importance.
    pub plots: Vec<String>,
    #[serde(skip)]
    #[schemars(skip)]
    pub images: Vec<ToolImage>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// A page of trials by number (absent in lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<TrialReport>,
    /// Where the next page of trials starts.
    pub next_offset: Option<usize>,
}

impl StudyReport {
    /// The report of `row` with its `trials`; a page of them from `offset` (none when `offset` is
    /// `usize::MAX`).
    pub fn build(
        row: StudyRow,
        trials: &[TrialRow],
        progress: Option<String>,
        offset: usize,
    ) -> Result<Self, TrainError> {
        let spec: StudySpec = serde_json::from_value(row.spec.clone())
            .map_err(|e| TrainError::failed(format!("the stored study does not decode: {e}")))?;
        let mut counts = TrialCounts::default();
        for t in trials {
            match t.status.as_str() {
                status::COMPLETE => counts.complete += 1,
                status::PRUNED => counts.pruned += 1,
                status::FAILED => counts.failed += 1,
                status::RUNNING => counts.running += 1,
                status::CANCELLED => counts.cancelled += 1,
                _ => counts.interrupted += 1,
            }
        }
        let best = best_trial(&spec, trials);
        let history = observations(&spec, trials);
        // A forest fitted per report: only once the study has ended (not on every poll), and not
        // in lists.
        let ended = row.status != status::RUNNING;
        let parameter_importance = if ended && offset != usize::MAX && history.len() >= 2 {
            parameter_importance(&spec.search_space, &history)
                .into_iter()
                .map(|(parameter, importance)| Importance {
                    parameter,
                    importance,
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut page: Vec<TrialReport> = trials
            .iter()
            .skip(offset.min(trials.len()))
            .map(TrialReport::from)
            .collect();
        mlops_core::fit_page(&mut page);
        let next_offset = (offset < trials.len() && offset + page.len() < trials.len())
            .then_some(offset + page.len());
        if offset >= trials.len() {
            page.clear();
        }
        Ok(Self {
            study_name: row.name,
            status: row.status,
            progress,
            algorithm: spec.task.algorithm_name().into(),
            metric: spec.metric.clone(),
            direction: spec.direction,
            evaluation: match spec.validation_data_uri {
                Some(ref uri) => format!("the validation table {uri}"),
                None => format!("{}-fold cross-validation", spec.cv_folds),
            },
            sampler: serde_json::to_value(spec.sampler).unwrap_or(Value::Null),
            pruner: serde_json::to_value(spec.pruner).unwrap_or(Value::Null),
            n_trials: spec.n_trials,
            trial_counts: counts,
            baseline_value: row.baseline_value,
            best_hyperparameters: best.map(|b| spec.settings(&b.params)),
            best_trial: best.map(TrialReport::from),
            parameter_importance,
            model_uri: row.model_uri,
            plots: Vec::new(),
            images: Vec::new(),
            error: row.error,
            created_at: row.created_at,
            finished_at: row.finished_at,
            trials: page,
            next_offset,
        })
    }
}

impl ToolResponse for StudyReport {
    fn images(&self) -> Vec<ToolImage> {
        self.images.clone()
    }

    fn summary(&self) -> String {
        let c = &self.trial_counts;
        let mut s = format!(
            "Study `{}` ({}, {}): {}; {} of {} trials complete",
            self.study_name, self.algorithm, self.metric, self.status, c.complete, self.n_trials
        );
        if c.pruned > 0 {
            s.push_str(&format!(", {} pruned", c.pruned));
        }
        if c.failed > 0 {
            s.push_str(&format!(", {} failed", c.failed));
        }
        if let Some(b) = &self.best_trial {
            s.push_str(&format!(
                ". Best: trial {} with {} {:.4}",
                b.number,
                self.metric,
                b.value.unwrap_or(f64::NAN)
            ));
            if let Some(base) = self.baseline_value {
                s.push_str(&format!(" (fixed settings: {base:.4})"));
            }
            s.push_str(&format!(", settings {}", Value::Object(b.params.clone())));
        }
        if let Some(uri) = &self.model_uri {
            s.push_str(&format!(". Model: {uri}"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(". Error: {e}"));
        }
        s
    }
}

/// Studies, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StudyList {
    pub studies: Vec<StudyReport>,
}

impl StudyList {
    pub fn new(studies: Vec<StudyReport>) -> Self {
        Self { studies }
    }
}

impl ToolResponse for StudyList {
    fn summary(&self) -> String {
        if self.studies.is_empty() {
            return "No tuning studies.".into();
        }
        let lines: Vec<String> = self
            .studies
            .iter()
            .map(|s| {
                let best = s
                    .best_trial
                    .as_ref()
                    .and_then(|b| b.value)
                    .map(|v| format!(", best {} {v:.4}", s.metric))
                    .unwrap_or_default();
                format!("- {} ({}): {}{best}", s.study_name, s.algorithm, s.status)
            })
            .collect();
        format!("{} studies:\n{}", self.studies.len(), lines.join("\n"))
    }
}
