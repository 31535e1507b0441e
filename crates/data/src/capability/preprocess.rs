//! `preprocess_supervised` and `preprocess_unsupervised`: fit a [`FittedPipeline`] on one table,
//! apply it to the others, and write them with `pipeline.json`.

use mlops_core::{Annotations, ArtifactStore, ToolDef, ToolResponse};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::split::{default_holdout, default_seed, split_frame};
use super::{Labelled, ProcessedTable, off_runtime, output_name, read_labelled, write_labelled};
use crate::drift::ReferenceProfile;
use crate::error::DataError;
use crate::io::{TableFormat, read_table, require_column, require_rows};
use crate::pipeline::{
    DroppedColumn, Encoding, FittedPipeline, NumericImputation, PreprocessOptions, Scaling,
    TargetSpec, TaskType,
};
use crate::prepared::{save_pipeline, save_profile};
use crate::profile::{finite_values, is_numeric, mean_std};
use crate::split::Fractions;

pub(super) fn supervised_tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "preprocess_supervised",
        "Preprocess for supervised learning",
        "Fit a preprocessing pipeline for a classification or regression target (impute missing values, scale numbers, one-hot or ordinal encode text, drop identifier and constant columns) on `dataset_uri`, then apply it to that table and to every table in `apply_to`. Writes the processed tables and `pipeline.json` to `processed/<name>/preprocessed/`; the pipeline travels with every model trained on them. Pass `split` to split raw data first (the pipeline is then fitted on the training part only).",
        Annotations::WRITES,
        |s, i: PreprocessSupervisedInput, _ctx| async move { preprocess_supervised(&s, i).await },
    )
}

pub(super) fn unsupervised_tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "preprocess_unsupervised",
        "Preprocess for unsupervised learning",
        "As preprocess_supervised, without a target: fit imputation, scaling and encoding on `dataset_uri` (optionally after removing outlier rows by z-score or IQR) and apply the pipeline to it and to `apply_to`. Writes the tables and `pipeline.json` to `processed/<name>/preprocessed/`.",
        Annotations::WRITES,
        |s, i: PreprocessUnsupervisedInput, _ctx| async move { preprocess_unsupervised(&s, i).await },
    )
}

/// Split raw data before fitting, inside `preprocess_supervised`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineSplit {
    #[serde(default = "default_holdout")]
    pub validation_fraction: f64,
    #[serde(default = "default_holdout")]
    pub test_fraction: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stratify by the target (classification only; default true).
    #[serde(default = "default_true")]
    pub stratify: bool,
}

fn default_true() -> bool {
    true
}
fn default_max_categories() -> usize {
    50
}

/// Input of `preprocess_supervised`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSupervisedInput {
    /// The table to fit the pipeline on (normally the training part of a split).
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// The column to predict.
    pub target_column: String,
    pub task_type: TaskType,
    /// Further tables (validation, test) to transform with the same fitted pipeline.
    #[serde(default)]
    pub apply_to: Vec<String>,
    /// Split `dataset_uri` first and fit on its training part only.
    pub split: Option<InlineSplit>,
    #[serde(default)]
    pub numeric_imputation: NumericImputation,
    #[serde(default)]
    pub scaling: Scaling,
    #[serde(default)]
    pub encoding: Encoding,
    /// Keep at most this many categories per text column.
    #[serde(default = "default_max_categories")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_categories: usize,
    /// Columns to leave out (identifiers, leaks).
    #[serde(default)]
    pub drop_columns: Vec<String>,
    /// Folder name under `processed/` (default: the dataset's name).
    pub output_name: Option<String>,
    /// Output format (default parquet).
    pub format: Option<TableFormat>,
}

/// What `preprocess_supervised` produced.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PreprocessSupervisedOutput {
    pub pipeline_uri: String,
    /// The processed table to train on.
    pub train_data_uri: String,
    pub validation_data_uri: Option<String>,
    pub test_data_uri: Option<String>,
    pub outputs: Vec<ProcessedTable>,
    pub target: TargetSpec,
    pub feature_names: Vec<String>,
    pub dropped_columns: Vec<DroppedColumn>,
    /// Rows left out because their target was missing.
    pub rows_without_target: usize,
}

impl ToolResponse for PreprocessSupervisedOutput {
    fn summary(&self) -> String {
        let dropped: Vec<String> = self
            .dropped_columns
            .iter()
            .map(|d| format!("{} ({})", d.column, d.reason))
            .collect();
        format!(
            "Fitted a {} pipeline for `{}`: {} features{}. Train on {}; pipeline at {}.{}",
            self.target.task.as_str(),
            self.target.name,
            self.feature_names.len(),
            if dropped.is_empty() {
                String::new()
            } else {
                format!(", dropped {}", dropped.join(", "))
            },
            self.train_data_uri,
            self.pipeline_uri,
            self.test_data_uri
                .as_ref()
                .map(|t| format!(" Test data: {t}."))
                .unwrap_or_default()
        )
    }
}

async fn preprocess_supervised(
    store: &ArtifactStore,
    i: PreprocessSupervisedInput,
) -> Result<PreprocessSupervisedOutput, DataError> {
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    require_rows(&df, r.uri())?;
    require_column(&df, &i.target_column)?;
    let name = output_name(i.output_name, &r)?;
    let options = PreprocessOptions {
        numeric_imputation: i.numeric_imputation,
        scaling: i.scaling,
        encoding: i.encoding,
        max_categories: i.max_categories,
        drop_columns: i.drop_columns,
    };
    // The first table is the one the pipeline is fitted on.
    let mut tables = Vec::new();
    match &i.split {
        Some(sp) => {
            let f = Fractions {
                train: 1.0 - sp.validation_fraction - sp.test_fraction,
                validation: sp.validation_fraction,
                test: sp.test_fraction,
            };
            let stratify = (sp.stratify && i.task_type == TaskType::Classification)
                .then_some(i.target_column.as_str());
            let [train, validation, test] = split_frame(&df, f, stratify, None, sp.seed)?;
            for (part, frame) in [("train", train), ("validation", validation), ("test", test)] {
                if frame.height() > 0 {
                    tables.push(Labelled {
                        label: part.into(),
                        source: format!("{}#{part}", r.uri()),
                        frame,
                    });
                }
            }
        }
        None => tables.push(Labelled::of(&r, df)),
    }
    tables.extend(read_labelled(store, &i.apply_to).await?);
    let fitted = fit_and_write(
        store,
        &name,
        tables,
        Some((i.target_column, i.task_type)),
        options,
        i.format,
    )
    .await?;
    let (pipeline, outputs, format) = (fitted.pipeline, fitted.outputs, fitted.format);
    let rows_without_target = fitted.rows_removed;
    let by_label = |names: &[&str]| {
        outputs
            .iter()
            .find(|o| {
                names
                    .iter()
                    .any(|n| o.uri.ends_with(&format!("/{n}.{}", format.extension())))
            })
            .map(|o| o.uri.clone())
    };
    Ok(PreprocessSupervisedOutput {
        pipeline_uri: fitted.pipeline_uri,
        train_data_uri: outputs[0].uri.clone(),
        validation_data_uri: by_label(&["validation", "val", "valid"]),
        test_data_uri: by_label(&["test"]),
        target: pipeline
            .target
            .clone()
            .ok_or_else(|| DataError::invalid("the pipeline has no target"))?,
        feature_names: pipeline.feature_names.clone(),
        dropped_columns: pipeline.dropped.clone(),
        rows_without_target,
        outputs,
    })
}

/// A pipeline fitted on the first table and applied to all, with every output written.
struct Fitted {
    pipeline: FittedPipeline,
    pipeline_uri: String,
    outputs: Vec<ProcessedTable>,
    format: TableFormat,
    /// Rows the transform removed from the first table (those without a target).
    rows_removed: usize,
}

/// Fits a pipeline on `tables[0]`, transforms every table, and writes them with `pipeline.json` to
/// `processed/<name>/preprocessed/`. Nothing is written until every transform has succeeded; the
/// pipeline is written last, so a folder with one is complete.
async fn fit_and_write(
    store: &ArtifactStore,
    name: &str,
    tables: Vec<Labelled>,
    target: Option<(String, TaskType)>,
    options: PreprocessOptions,
    format: Option<TableFormat>,
) -> Result<Fitted, DataError> {
    if options.max_categories == 0 {
        return Err(DataError::invalid("max_categories must be at least 1"));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = tables.iter().find(|t| !seen.insert(t.label.as_str())) {
        return Err(DataError::invalid(format!(
            "two inputs are both named `{}`; their outputs would collide",
            dup.label
        )));
    }
    let (pipeline, profile, processed, rows_removed) = off_runtime("preprocessing", move || {
        let target = target.as_ref().map(|(t, task)| (t.as_str(), *task));
        let pipeline = FittedPipeline::fit(&tables[0].frame, target, &options)?;
        // What the raw training rows looked like, for drift monitoring of every model trained
        // on this pipeline.
        let profile = ReferenceProfile::build(
            &tables[0].frame,
            &pipeline.input_columns(),
            target.map(|(t, _)| t),
            Some(tables[0].source.clone()),
        )?;
        let rows_before = tables[0].frame.height();
        let processed = tables
            .into_iter()
            .map(|t| {
                Ok(Labelled {
                    frame: pipeline.transform(&t.frame)?,
                    ..t
                })
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        let rows_removed = rows_before - processed[0].frame.height();
        Ok((pipeline, profile, processed, rows_removed))
    })
    .await?;
    let format = format.unwrap_or(TableFormat::Parquet);
    let folder = format!("processed/{name}/preprocessed");
    let outputs = write_labelled(store, &folder, format, processed).await?;
    save_profile(store, &folder, &profile).await?;
    let pipeline_ref = save_pipeline(store, &folder, &pipeline).await?;
    Ok(Fitted {
        pipeline,
        pipeline_uri: pipeline_ref.uri().into(),
        outputs,
        format,
        rows_removed,
    })
}

/// How to find outlier rows.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OutlierRule {
    /// Drop rows with any numeric value more than `threshold` standard deviations from its mean.
    Zscore { threshold: f64 },
    /// Drop rows with any numeric value beyond `factor` × IQR outside the quartiles.
    Iqr { factor: f64 },
}

/// Input of `preprocess_unsupervised`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreprocessUnsupervisedInput {
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// Further tables to transform with the same fitted pipeline.
    #[serde(default)]
    pub apply_to: Vec<String>,
    /// Remove outlier rows from `dataset_uri` before fitting.
    pub outliers: Option<OutlierRule>,
    #[serde(default)]
    pub numeric_imputation: NumericImputation,
    #[serde(default)]
    pub scaling: Scaling,
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default = "default_max_categories")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_categories: usize,
    #[serde(default)]
    pub drop_columns: Vec<String>,
    pub output_name: Option<String>,
    pub format: Option<TableFormat>,
}

/// What `preprocess_unsupervised` produced.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PreprocessUnsupervisedOutput {
    pub pipeline_uri: String,
    /// The processed `dataset_uri`.
    pub data_uri: String,
    pub outputs: Vec<ProcessedTable>,
    pub feature_names: Vec<String>,
    pub dropped_columns: Vec<DroppedColumn>,
    pub outlier_rows_removed: usize,
}

impl ToolResponse for PreprocessUnsupervisedOutput {
    fn summary(&self) -> String {
        format!(
            "Fitted an unsupervised pipeline: {} features, {} outlier rows removed. Data: {}; pipeline: {}",
            self.feature_names.len(),
            self.outlier_rows_removed,
            self.data_uri,
            self.pipeline_uri
        )
    }
}

/// Rows to keep: those with no numeric value outside the rule's bounds (missing values are kept).
fn outlier_mask(
    df: &DataFrame,
    rule: OutlierRule,
    skip: &[String],
) -> Result<Vec<bool>, DataError> {
    let mut keep = vec![true; df.height()];
    for c in df.columns().iter().filter(|c| {
        is_numeric(c.dtype())
            && !matches!(c.dtype(), DataType::Boolean)
            && !skip.iter().any(|s| s == c.name().as_str())
    }) {
        let values = finite_values(c)?;
        let Some((mean, std)) = mean_std(&values) else {
            continue;
        };
        let (lo, hi) = match rule {
            OutlierRule::Zscore { threshold } => (mean - threshold * std, mean + threshold * std),
            OutlierRule::Iqr { factor } => {
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
                let (q1, q3) = (q(0.25), q(0.75));
                (q1 - factor * (q3 - q1), q3 + factor * (q3 - q1))
            }
        };
        let s = c.as_materialized_series().cast(&DataType::Float64)?;
        for (k, v) in keep.iter_mut().zip(s.f64()?.iter()) {
            if let Some(v) = v.filter(|v| v.is_finite())
                && (v < lo || v > hi)
            {
                *k = false;
            }
        }
    }
    Ok(keep)
}

async fn preprocess_unsupervised(
    store: &ArtifactStore,
    i: PreprocessUnsupervisedInput,
) -> Result<PreprocessUnsupervisedOutput, DataError> {
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    require_rows(&df, r.uri())?;
    let name = output_name(i.output_name, &r)?;
    let (df, outlier_rows_removed) = match i.outliers {
        Some(rule) => {
            let bound = match rule {
                OutlierRule::Zscore { threshold } => threshold,
                OutlierRule::Iqr { factor } => factor,
            };
            if !(bound.is_finite() && bound > 0.0) {
                return Err(DataError::invalid(
                    "the outlier threshold or factor must be a positive number",
                ));
            }
            let keep = outlier_mask(&df, rule, &i.drop_columns)?;
            let kept = df.filter(&BooleanChunked::from_slice("keep".into(), &keep))?;
            let removed = df.height() - kept.height();
            if kept.height() == 0 {
                return Err(DataError::invalid(
                    "the outlier rule removes every row; loosen it",
                ));
            }
            (kept, removed)
        }
        None => (df, 0),
    };
    let mut tables = vec![Labelled::of(&r, df)];
    tables.extend(read_labelled(store, &i.apply_to).await?);
    let options = PreprocessOptions {
        numeric_imputation: i.numeric_imputation,
        scaling: i.scaling,
        encoding: i.encoding,
        max_categories: i.max_categories,
        drop_columns: i.drop_columns,
    };
    let fitted = fit_and_write(store, &name, tables, None, options, i.format).await?;
    Ok(PreprocessUnsupervisedOutput {
        pipeline_uri: fitted.pipeline_uri,
        data_uri: fitted.outputs[0].uri.clone(),
        feature_names: fitted.pipeline.feature_names.clone(),
        dropped_columns: fitted.pipeline.dropped.clone(),
        outputs: fitted.outputs,
        outlier_rows_removed,
    })
}
