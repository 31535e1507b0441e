//! `detect_drift`: one check from its two sides to a recorded, reported result.

use mlops_core::{ArtifactStore, Selector, ToolError, ToolResponse, ToolRouter};
use mlops_data::drift::{DriftComparison, DriftThresholds, Extras, FeatureDrift, Verdict, compare};
use mlops_data::{TaskType, read_table};
use mlops_ml::{Labels, Matrix, Prediction, TrainedModel, argmax};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checks::{Checks, DriftCheck};
use crate::report;
use crate::sources::{Watched, Window, blocking, logged_rows, reference_profile, watched_model};

/// Input of `detect_drift`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectDriftInput {
    /// A registered model: its Production version unless `version`, `stage` or `alias` says
    /// otherwise. Its saved training profile is the reference, and without `data_uri` its
    /// prediction log is the current data.
    pub model_name: Option<String>,
    pub version: Option<i64>,
    pub stage: Option<String>,
    pub alias: Option<String>,
    /// A model folder (`models/<training_job_name>`) instead of a registered model.
    pub model_uri: Option<String>,
    /// A table to profile as the reference instead of the model's saved profile (for models
    /// trained before profiles were saved, or to compare two tables without a model).
    pub reference_data_uri: Option<String>,
    /// The current rows: a CSV/Parquet table of the raw columns. When it holds the target
    /// column, the model's score on it is compared with its score at training.
    pub data_uri: Option<String>,
    /// The prediction-log window (RFC 3339 time or date; default the day before `until`).
    pub since: Option<String>,
    /// End of the window (default now).
    pub until: Option<String>,
    /// Levels per statistic; defaults: PSI 0.1/0.25, KS 0.1/0.2, Jensen–Shannon 0.1/0.2,
    /// missing-rate change 0.05/0.1 (warn/drift), p-value 0.05.
    #[serde(default)]
    pub thresholds: DriftThresholds,
}

/// The model's score on labelled current rows against its score at training.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Performance {
    /// `accuracy` (classifiers) or `r2` (regressors).
    pub metric: String,
    /// The validation score recorded at training (the training score when there was none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<f64>,
    pub current: f64,
    /// current − reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<f64>,
    pub rows: usize,
}

/// The result of `detect_drift`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DriftResult {
    pub check_id: String,
    /// `compared`, or `nothing_to_compare` when the prediction-log window held no rows.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<i64>,
    pub reference: String,
    pub current: String,
    pub current_rows: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per feature statistics and verdicts, worst first (the reply leaves out per-bin shares;
    /// the report has them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<DriftComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<Performance>,
    /// The Markdown report, with the HTML one and `result.json` beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_html_uri: Option<String>,
}

impl ToolResponse for DriftResult {
    fn summary(&self) -> String {
        let subject = match (&self.model_name, self.model_version) {
            (Some(m), Some(v)) => format!("`{m}` version {v}"),
            (Some(m), None) => format!("`{m}`"),
            _ => "the data".into(),
        };
        let Some(c) = &self.comparison else {
            return format!(
                "Drift check of {subject}: {}",
                self.message.as_deref().unwrap_or("nothing to compare")
            );
        };
        let found = match c.verdict {
            Verdict::Drift => format!(
                "DRIFT in {} of {} features ({})",
                c.drifted_features.len(),
                c.features.len(),
                c.drifted_features.join(", ")
            ),
            Verdict::Warn => format!("warnings on {}", c.warned_features.join(", ")),
            Verdict::Ok => format!("no drift in {} features", c.features.len()),
        };
        let performance = self
            .performance
            .as_ref()
            .map(|p| match p.reference {
                Some(r) => format!(
                    "; {} {:.4} now vs {:.4} at training",
                    p.metric, p.current, r
                ),
                None => format!("; {} {:.4} now", p.metric, p.current),
            })
            .unwrap_or_default();
        format!(
            "Drift check of {subject} on {} current rows against {}: {found}{performance}. Report: {}",
            self.current_rows,
            self.reference,
            self.report_uri.as_deref().unwrap_or("(not written)")
        )
    }
}

/// Runs one check: resolves both sides, compares, writes the report and records the result.
pub async fn detect_drift(
    store: &ArtifactStore,
    router: Option<&ToolRouter>,
    checks: &Checks,
    i: DetectDriftInput,
) -> Result<DriftResult, ToolError> {
    i.thresholds.validate()?;
    let selector = Selector::from_parts(i.version, i.stage.clone(), i.alias.clone())?;
    if i.model_name.is_none() && (i.version.is_some() || i.stage.is_some() || i.alias.is_some()) {
        return Err(ToolError::validation(
            "version, stage and alias choose a version of model_name; give model_name too",
        ));
    }
    let model = watched_model(
        store,
        router,
        i.model_uri.as_deref(),
        i.model_name.as_deref(),
        selector,
    )
    .await?;
    let (profile, reference) =
        reference_profile(store, model.as_ref(), i.reference_data_uri.as_deref()).await?;
    let check_id = uuid::Uuid::new_v4().simple().to_string();
    let checked_at = chrono::Utc::now();
    let mut result = DriftResult {
        check_id: check_id.clone(),
        status: "compared".into(),
        model_name: model.as_ref().map(|m| m.name.clone()),
        model_version: model.as_ref().and_then(|m| m.version),
        reference,
        current: String::new(),
        current_rows: 0,
        message: None,
        comparison: None,
        performance: None,
        report_uri: None,
        report_html_uri: None,
    };
    let (current, from_log) = match (&i.data_uri, &model) {
        (Some(uri), _) => {
            let (r, df) = read_table(store, uri).await?;
            if df.height() == 0 {
                return Err(ToolError::validation(format!(
                    "the table {} has no rows to compare",
                    r.uri()
                )));
            }
            result.current = format!("the table {}", r.uri());
            (df, false)
        }
        (None, Some(m)) if m.registered => {
            let window = Window::parse(i.since.as_deref(), i.until.as_deref())?;
            let (rows, files) = logged_rows(store, &m.name, &profile, window).await?;
            result.current = format!(
                "the prediction log of `{}` from {} to {} ({files} files)",
                m.name,
                window.since.to_rfc3339(),
                window.until.to_rfc3339()
            );
            (rows, true)
        }
        _ => {
            return Err(ToolError::validation(
                "give data_uri (a table of current rows), or model_name to read the model's prediction log",
            ));
        }
    };
    result.current_rows = current.height();
    if current.height() == 0 {
        result.status = "nothing_to_compare".into();
        result.message = Some(format!(
            "no logged predictions in the window: nothing to compare (is the log on? see set_prediction_logging) — {}",
            result.current
        ));
        record(checks, &result, checked_at, None).await?;
        return Ok(result);
    }
    let thresholds = i.thresholds;
    let watched = model.map(std::sync::Arc::new);
    let scoring = watched.clone();
    let (comparison, performance) = blocking(move || {
        profile.require_features(&current)?;
        let (prediction, performance) = match (&scoring, from_log) {
            (Some(m), false) => score_table(m, &current)?,
            _ => (current.column("prediction").ok().cloned(), None),
        };
        let target = profile
            .target
            .as_ref()
            .and_then(|t| current.column(&t.name).ok());
        let extras = Extras {
            prediction: prediction.as_ref().filter(|c| c.null_count() < c.len()),
            target,
        };
        let comparison = compare(&profile, &current, extras, &thresholds)?;
        Ok((comparison, performance))
    })
    .await?;
    result.performance = performance;
    let folder = report::folder(result.model_name.as_deref(), checked_at, &check_id)?;
    let uris = report::write(store, &folder, &result, &comparison).await?;
    result.report_uri = Some(uris.markdown);
    result.report_html_uri = Some(uris.html);
    result.comparison = Some(without_bins(comparison));
    record(checks, &result, checked_at, result.comparison.as_ref()).await?;
    Ok(result)
}

async fn record(
    checks: &Checks,
    r: &DriftResult,
    at: chrono::DateTime<chrono::Utc>,
    comparison: Option<&DriftComparison>,
) -> Result<(), ToolError> {
    checks
        .record(&DriftCheck {
            check_id: r.check_id.clone(),
            model_name: r.model_name.clone(),
            model_version: r.model_version,
            checked_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            status: r.status.clone(),
            verdict: comparison.map(|c| c.verdict.as_str().to_string()),
            drifted_features: comparison
                .map(|c| c.drifted_features.clone())
                .unwrap_or_default(),
            max_severity: comparison
                .and_then(|c| c.features.first())
                .map(|f| f.severity),
            current_rows: r.current_rows as i64,
            report_uri: r.report_uri.clone(),
        })
        .await
}

/// The model's predictions on a raw table (labels, values or clusters), and its score there
/// when the table has the target.
fn score_table(
    m: &Watched,
    current: &DataFrame,
) -> Result<(Option<Column>, Option<Performance>), ToolError> {
    let Some(pipeline) = m.pipeline()? else {
        return Ok((None, None));
    };
    let model = TrainedModel::from_artifact(&m.artifact)?;
    let input = pipeline.transform(current)?;
    let manifest = &m.artifact.manifest;
    let x = Matrix::from_frame(&input, &manifest.feature_names)?;
    let predicted = model.predict(&x)?;
    let classes = &manifest.classes;
    let prediction = match &predicted {
        Prediction::Probabilities(p) if !classes.is_empty() => {
            let labels: Vec<&str> = p
                .chunks(classes.len())
                .map(|row| classes[argmax(row)].as_str())
                .collect();
            Some(Column::new("prediction".into(), labels))
        }
        Prediction::Values(v) => Some(Column::new("prediction".into(), v.clone())),
        Prediction::Clusters { ids, .. } => {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            Some(Column::new("prediction".into(), ids))
        }
        _ => None,
    };
    let performance = match &pipeline.target {
        Some(t) if input.schema().contains(&t.name) => {
            let scores = match &predicted {
                Prediction::Probabilities(p) => Some(p.as_slice()),
                Prediction::Values(v) => Some(v.as_slice()),
                _ => None,
            };
            match (scores, Labels::of(&input, t)) {
                (Some(scores), Ok(labels)) => {
                    let metric = match t.task {
                        TaskType::Classification => "accuracy",
                        TaskType::Regression => "r2",
                    };
                    let recorded = |prefix: &str| {
                        manifest
                            .metrics
                            .get(format!("{prefix}_{metric}"))
                            .and_then(serde_json::Value::as_f64)
                    };
                    let reference = recorded("validation").or_else(|| recorded("train"));
                    let current = labels.score(scores);
                    Some(Performance {
                        metric: metric.into(),
                        reference,
                        current,
                        change: reference.map(|r| current - r),
                        rows: input.height(),
                    })
                }
                // Labels the model never saw (a new class) leave the score out, not the check.
                _ => None,
            }
        }
        _ => None,
    };
    Ok((prediction, performance))
}

/// The comparison without per-bin shares, for the reply.
fn without_bins(mut c: DriftComparison) -> DriftComparison {
    let strip = |f: &mut FeatureDrift| f.bins.clear();
    c.features.iter_mut().for_each(strip);
    c.prediction.iter_mut().for_each(strip);
    c.target.iter_mut().for_each(strip);
    c
}
