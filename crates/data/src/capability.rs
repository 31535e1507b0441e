//! The Data Preparation tools.

use std::sync::Arc;

use mlops_core::{Annotations, ArtifactStore, Capability, ToolDef, ToolResponse};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::DataError;
use crate::io::{TableFormat, dataset_name, read_table, require_column, require_rows, write_table};
use crate::pipeline::{
    DroppedColumn, Encoding, FittedPipeline, NumericImputation, PreprocessOptions, Scaling,
    TargetSpec, TaskType,
};
use crate::prepared::save_pipeline;
use crate::profile::{ColumnProfile, finite_values, head_rows, is_numeric, profile};
use crate::split::{Fractions, SplitIndices, split_indices, take_rows};
use crate::validate::{Expectations, ValidationReport, validate};

/// Most rows one `load_dataset` page asks for.
const MAX_PAGE_ROWS: usize = 1000;

/// Capability 1: Data Preparation.
pub struct DataCapability {
    store: ArtifactStore,
}

impl DataCapability {
    pub fn new(store: ArtifactStore) -> Arc<Self> {
        Arc::new(Self { store })
    }
}

impl Capability for DataCapability {
    fn name(&self) -> &'static str {
        "data_preparation"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let load = ToolDef::with(
            self.store.clone(),
            "load_dataset",
            "Load dataset",
            "Read a CSV or Parquet table (a path under the artifact root such as `datasets/x.csv`, a file:// URI, or s3://bucket/key) and describe it: row count, each column's type, missing values and summary statistics, and a page of rows. Use it first to learn the column names. Page through rows with `offset` (pass back `next_offset`) and `limit`; pick columns with `columns`. Example: {\"dataset_uri\":\"datasets/x.csv\",\"offset\":100,\"limit\":50,\"columns\":[\"age\",\"label\"]}",
            Annotations::READ_ONLY,
            |s, i: LoadDatasetInput, _ctx| async move { load_dataset(&s, i).await },
        );
        let split = ToolDef::with(
            self.store.clone(),
            "split_dataset",
            "Split dataset",
            "Split a table into train/validation/test files under `processed/<name>/` (Parquet by default). Seeded and reproducible; stratified by a label column when `stratify_column` is set; in time order (no shuffle) when `time_column` is set. Split raw data before `preprocess_supervised` so the pipeline is fitted on training rows only.",
            Annotations::WRITES,
            |s, i: SplitDatasetInput, _ctx| async move { split_dataset(&s, i).await },
        );
        let preprocess = ToolDef::with(
            self.store.clone(),
            "preprocess_supervised",
            "Preprocess for supervised learning",
            "Fit a preprocessing pipeline for a classification or regression target (impute missing values, scale numbers, one-hot or ordinal encode text, drop identifier and constant columns) on `dataset_uri`, then apply it to that table and to every table in `apply_to`. Writes the processed tables and `pipeline.json` to `processed/<name>/preprocessed/`; the pipeline travels with every model trained on them. Pass `split` to split raw data first (the pipeline is then fitted on the training part only).",
            Annotations::WRITES,
            |s, i: PreprocessSupervisedInput, _ctx| async move { preprocess_supervised(&s, i).await },
        );
        let validate = ToolDef::with(
            self.store.clone(),
            "validate_data",
            "Validate data",
            "Check a table before training: missing values per column, inferred types, duplicate rows, constant and all-missing columns, text columns that are mostly numbers (mixed types), and, against optional `expectations`, required columns, numeric ranges, allowed values and missing-value limits; with `target_column`, class balance. Returns every finding and an overall pass/fail (errors fail, warnings do not).",
            Annotations::READ_ONLY,
            |s, i: ValidateDataInput, _ctx| async move { validate_data(&s, i).await },
        );
        let unsupervised = ToolDef::with(
            self.store.clone(),
            "preprocess_unsupervised",
            "Preprocess for unsupervised learning",
            "As preprocess_supervised, without a target: fit imputation, scaling and encoding on `dataset_uri` (optionally after removing outlier rows by z-score or IQR) and apply the pipeline to it and to `apply_to`. Writes the tables and `pipeline.json` to `processed/<name>/preprocessed/`.",
            Annotations::WRITES,
            |s, i: PreprocessUnsupervisedInput, _ctx| async move {
                preprocess_unsupervised(&s, i).await
            },
        );
        let save = ToolDef::with(
            self.store.clone(),
            "save_processed_data",
            "Save processed data",
            "Copy a table to `processed/<output_name>/` as CSV or Parquet (atomic; on S3 encrypted with the configured KMS key). A `pipeline.json` beside the source travels with it, so models still recognise the data as processed.",
            Annotations::WRITES,
            |s, i: SaveProcessedInput, _ctx| async move { save_processed(&s, i).await },
        );
        let features = ToolDef::with(
            self.store.clone(),
            "feature_engineering",
            "Engineer features",
            "Add and select features with a list of `operations`, applied in order: `derive` (a column from an expression such as `log(income + 1)` or `price / area`), `polynomial` (squares and products), `bin`, `date_parts` (year, month, weekday… from a date column) and `select` (variance threshold, correlation with a target, top-k). Fitted on `dataset_uri` (bin edges, chosen columns) and re-applied unchanged to `apply_to`. Writes to `processed/<name>/features/` with `features.json`.",
            Annotations::WRITES,
            |s, i: FeatureEngineeringInput, _ctx| async move { feature_engineering(&s, i).await },
        );
        let reinforcement = ToolDef::with(
            self.store.clone(),
            "preprocess_reinforcement",
            "Prepare reinforcement-learning data",
            "Either turn logged transitions (state, action, reward, next state, done columns) into a validated replay table at `processed/<name>/replay/` for offline training, or check a built-in environment's configuration (CartPole-v1, MountainCar-v0, Acrobot-v1). Give `dataset_uri` with `transitions`, or `environment`.",
            Annotations::WRITES,
            |s, i: PreprocessReinforcementInput, _ctx| async move {
                preprocess_reinforcement(&s, i).await
            },
        );
        vec![
            load,
            validate,
            split,
            preprocess,
            unsupervised,
            features,
            reinforcement,
            save,
        ]
    }
}

fn default_page_rows() -> usize {
    5
}

/// Input of `load_dataset`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadDatasetInput {
    /// The table: `datasets/x.csv` (under the artifact root), `file:///abs/path.parquet`, or `s3://bucket/key.csv`.
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// The first row of the page (0-based); pass the previous page's `next_offset`.
    #[serde(default)]
    pub offset: usize,
    /// Rows in the page (0 for the profile only, at most 1000); a page also stops at about 12 KB.
    #[serde(default = "default_page_rows", alias = "head_rows")]
    #[schemars(range(max = 1000))]
    pub limit: usize,
    /// Only these columns, in the profile and the rows.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Include the column profile (types, missing values, statistics); by default only on the
    /// first page.
    #[serde(default)]
    pub profile: Option<bool>,
}

/// What `load_dataset` found.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LoadDatasetOutput {
    pub dataset_uri: String,
    pub format: TableFormat,
    pub row_count: usize,
    pub column_count: usize,
    /// Per-column profile (empty when not asked for).
    pub columns: Vec<ColumnProfile>,
    /// The row the page starts at.
    pub offset: usize,
    /// The page of rows, as column → value objects.
    pub rows: Vec<Map<String, Value>>,
    /// Pass as `offset` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
}

impl ToolResponse for LoadDatasetOutput {
    fn summary(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                if c.null_count > 0 {
                    format!("{} ({}, {} missing)", c.name, c.dtype, c.null_count)
                } else {
                    format!("{} ({})", c.name, c.dtype)
                }
            })
            .collect();
        let page = match (self.rows.len(), self.next_offset) {
            (0, _) => String::new(),
            (n, Some(next)) => format!(
                "; rows {}..{} (next offset {next})",
                self.offset,
                self.offset + n
            ),
            (n, None) => format!("; rows {}..{} (last page)", self.offset, self.offset + n),
        };
        format!(
            "{}: {} rows × {} columns{}{page}",
            self.dataset_uri,
            self.row_count,
            self.column_count,
            if cols.is_empty() {
                String::new()
            } else {
                format!(": {}", cols.join(", "))
            }
        )
    }
}

async fn load_dataset(
    store: &ArtifactStore,
    i: LoadDatasetInput,
) -> Result<LoadDatasetOutput, DataError> {
    if i.limit > MAX_PAGE_ROWS {
        return Err(DataError::invalid(format!(
            "limit must be at most {MAX_PAGE_ROWS} rows (got {}); page through larger tables with offset and next_offset",
            i.limit
        )));
    }
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    let format = TableFormat::of(&r)?;
    let row_count = df.height();
    let column_count = df.width();
    if i.offset > row_count {
        return Err(DataError::invalid(format!(
            "offset {} is past the end of the table ({row_count} rows); start again from 0",
            i.offset
        )));
    }
    let df = match &i.columns {
        Some(names) if names.is_empty() => {
            return Err(DataError::invalid(
                "columns is empty: leave it out for all columns, or name some",
            ));
        }
        Some(names) => {
            for n in names {
                require_column(&df, n)?;
            }
            df.select(names.iter().map(String::as_str))?
        }
        None => df,
    };
    let profiled = if i.profile.unwrap_or(i.offset == 0) {
        let df = Arc::new(df.clone());
        tokio::task::spawn_blocking(move || profile(&df))
            .await
            .map_err(|e| DataError::invalid(format!("profiling was interrupted: {e}")))??
    } else {
        Vec::new()
    };
    let mut rows = head_rows(&df.slice(i.offset as i64, i.limit), i.limit);
    mlops_core::fit_page(&mut rows);
    let end = i.offset + rows.len();
    Ok(LoadDatasetOutput {
        dataset_uri: r.uri().into(),
        format,
        row_count,
        column_count,
        columns: profiled,
        offset: i.offset,
        next_offset: (end < row_count && !rows.is_empty()).then_some(end),
        rows,
    })
}

fn default_train() -> f64 {
    0.7
}
fn default_holdout() -> f64 {
    0.15
}
fn default_seed() -> u64 {
    42
}

/// Input of `split_dataset`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitDatasetInput {
    /// The table to split.
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    #[serde(default = "default_train")]
    pub train_fraction: f64,
    /// May be 0 (no validation file).
    #[serde(default = "default_holdout")]
    pub validation_fraction: f64,
    #[serde(default = "default_holdout")]
    pub test_fraction: f64,
    /// Keep this column's class proportions equal in every part (usually the classification target).
    pub stratify_column: Option<String>,
    /// Order rows by this column and split in that order, without shuffling (for time series).
    pub time_column: Option<String>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Folder name under `processed/` (default: the dataset's name).
    pub output_name: Option<String>,
    /// Output format (default parquet).
    pub format: Option<TableFormat>,
}

/// One written part of a split.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SplitPart {
    pub uri: String,
    pub rows: usize,
}

/// The files `split_dataset` wrote.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SplitDatasetOutput {
    pub train: SplitPart,
    pub validation: Option<SplitPart>,
    pub test: Option<SplitPart>,
    pub seed: u64,
    pub stratified_by: Option<String>,
}

impl ToolResponse for SplitDatasetOutput {
    fn summary(&self) -> String {
        let mut parts = vec![format!(
            "train {} rows → {}",
            self.train.rows, self.train.uri
        )];
        if let Some(v) = &self.validation {
            parts.push(format!("validation {} rows → {}", v.rows, v.uri));
        }
        if let Some(t) = &self.test {
            parts.push(format!("test {} rows → {}", t.rows, t.uri));
        }
        parts.join("; ")
    }
}

fn check_output_name(name: &str) -> Result<(), DataError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(DataError::invalid(format!(
            "output_name `{name}` must be letters, digits, `-`, `_` or `.` (it names a folder under processed/)"
        )));
    }
    Ok(())
}

/// Splits `df` into its parts (by stratum labels, or in the order of `time_column`).
fn split_frame(
    df: &DataFrame,
    f: Fractions,
    stratify: Option<&str>,
    time_column: Option<&str>,
    seed: u64,
) -> Result<[DataFrame; 3], DataError> {
    f.validate()?;
    let df = match time_column {
        Some(t) => {
            require_column(df, t)?;
            df.sort([t], SortMultipleOptions::default())?
        }
        None => df.clone(),
    };
    let labels: Option<Vec<Option<String>>> = match stratify {
        Some(c) => {
            require_column(&df, c)?;
            let s = df
                .column(c)?
                .as_materialized_series()
                .cast(&DataType::String)?;
            Some(s.str()?.iter().map(|v| v.map(str::to_string)).collect())
        }
        None => None,
    };
    let SplitIndices {
        train,
        validation,
        test,
    } = split_indices(
        df.height(),
        labels.as_deref(),
        f,
        seed,
        time_column.is_none(),
    );
    for (name, rows, frac) in [
        ("train", &train, f.train),
        ("validation", &validation, f.validation),
        ("test", &test, f.test),
    ] {
        if frac > 0.0 && rows.is_empty() {
            return Err(DataError::invalid(format!(
                "the {name} part would be empty: {} rows are too few for a {frac} fraction",
                df.height()
            )));
        }
    }
    Ok([
        take_rows(&df, train)?,
        take_rows(&df, validation)?,
        take_rows(&df, test)?,
    ])
}

async fn split_dataset(
    store: &ArtifactStore,
    i: SplitDatasetInput,
) -> Result<SplitDatasetOutput, DataError> {
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    require_rows(&df, r.uri())?;
    let name = i.output_name.clone().unwrap_or_else(|| dataset_name(&r));
    check_output_name(&name)?;
    let f = Fractions {
        train: i.train_fraction,
        validation: i.validation_fraction,
        test: i.test_fraction,
    };
    if i.stratify_column.is_some() && i.time_column.is_some() {
        return Err(DataError::invalid(
            "use either stratify_column or time_column, not both",
        ));
    }
    let [train, validation, test] = split_frame(
        &df,
        f,
        i.stratify_column.as_deref(),
        i.time_column.as_deref(),
        i.seed,
    )?;
    let format = i.format.unwrap_or(TableFormat::Parquet);
    let mut written = Vec::new();
    for (part, frame) in [("train", train), ("validation", validation), ("test", test)] {
        if frame.height() == 0 {
            written.push(None);
            continue;
        }
        let rows = frame.height();
        let out = write_table(
            store,
            &format!("processed/{name}/{part}.{}", format.extension()),
            frame,
            format,
        )
        .await?;
        written.push(Some(SplitPart {
            uri: out.uri().into(),
            rows,
        }));
    }
    let mut written = written.into_iter();
    Ok(SplitDatasetOutput {
        train: written
            .next()
            .flatten()
            .ok_or_else(|| DataError::invalid("the train part is empty"))?,
        validation: written.next().flatten(),
        test: written.next().flatten(),
        seed: i.seed,
        stratified_by: i.stratify_column,
    })
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

/// One processed table.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessedTable {
    /// The table it came from (or the split part).
    pub source: String,
    pub uri: String,
    pub rows: usize,
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
    let name = i.output_name.clone().unwrap_or_else(|| dataset_name(&r));
    check_output_name(&name)?;
    let options = PreprocessOptions {
        numeric_imputation: i.numeric_imputation,
        scaling: i.scaling,
        encoding: i.encoding,
        max_categories: i.max_categories,
        drop_columns: i.drop_columns.clone(),
    };
    // (label, source, frame): the first is the one the pipeline is fitted on.
    let mut tables: Vec<(String, String, DataFrame)> = Vec::new();
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
                    tables.push((part.into(), format!("{}#{part}", r.uri()), frame));
                }
            }
        }
        None => tables.push((stem(&r), r.uri().into(), df)),
    }
    for extra in &i.apply_to {
        let (er, edf) = read_table(store, extra).await?;
        tables.push((stem(&er), er.uri().into(), edf));
    }
    let fitted = fit_and_write(
        store,
        &name,
        tables,
        Some((i.target_column.clone(), i.task_type)),
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
pub(crate) struct Fitted {
    pub pipeline: FittedPipeline,
    pub pipeline_uri: String,
    pub outputs: Vec<ProcessedTable>,
    pub format: TableFormat,
    /// Rows the transform removed from the first table (those without a target).
    pub rows_removed: usize,
}

/// Fits a pipeline on `tables[0]` (label, source, frame), transforms every table, and writes them
/// with `pipeline.json` to `processed/<name>/preprocessed/`. Nothing is written until every
/// transform has succeeded; the pipeline is written last, so a folder with one is complete.
pub(crate) async fn fit_and_write(
    store: &ArtifactStore,
    name: &str,
    tables: Vec<(String, String, DataFrame)>,
    target: Option<(String, TaskType)>,
    options: PreprocessOptions,
    format: Option<TableFormat>,
) -> Result<Fitted, DataError> {
    if options.max_categories == 0 {
        return Err(DataError::invalid("max_categories must be at least 1"));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((dup, _, _)) = tables
        .iter()
        .find(|(label, _, _)| !seen.insert(label.clone()))
    {
        return Err(DataError::invalid(format!(
            "two inputs are both named `{dup}`; their outputs would collide"
        )));
    }
    let (pipeline, processed) = tokio::task::spawn_blocking(move || -> Result<_, DataError> {
        let target = target.as_ref().map(|(t, task)| (t.as_str(), *task));
        let pipeline = FittedPipeline::fit(&tables[0].2, target, &options)?;
        let processed = tables
            .into_iter()
            .map(|(label, source, frame)| {
                Ok((label, source, frame.height(), pipeline.transform(&frame)?))
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        Ok((pipeline, processed))
    })
    .await
    .map_err(|e| DataError::invalid(format!("preprocessing was interrupted: {e}")))??;
    let format = format.unwrap_or(TableFormat::Parquet);
    let folder = format!("processed/{name}/preprocessed");
    let rows_removed = processed[0].2 - processed[0].3.height();
    let mut outputs = Vec::new();
    for (label, source, _, frame) in processed {
        let rows = frame.height();
        let out = write_table(
            store,
            &format!("{folder}/{label}.{}", format.extension()),
            frame,
            format,
        )
        .await?;
        outputs.push(ProcessedTable {
            source,
            uri: out.uri().into(),
            rows,
        });
    }
    let pipeline_ref = save_pipeline(store, &folder, &pipeline).await?;
    Ok(Fitted {
        pipeline,
        pipeline_uri: pipeline_ref.uri().into(),
        outputs,
        format,
        rows_removed,
    })
}

pub(crate) fn stem(r: &mlops_core::ArtifactRef) -> String {
    let f = r.file_name();
    f.rsplit_once('.').map(|(s, _)| s).unwrap_or(f).to_string()
}

/// Input of `validate_data`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateDataInput {
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// The label column, for the class-balance check.
    pub target_column: Option<String>,
    #[serde(default)]
    pub expectations: Expectations,
}

/// The report of `validate_data`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ValidateDataOutput {
    pub dataset_uri: String,
    #[serde(flatten)]
    pub report: ValidationReport,
}

impl ToolResponse for ValidateDataOutput {
    fn summary(&self) -> String {
        let r = &self.report;
        let mut lines = vec![format!(
            "{}: {} ({} rows, {} columns, {} duplicate rows)",
            self.dataset_uri,
            if r.passed { "PASSED" } else { "FAILED" },
            r.row_count,
            r.column_count,
            r.duplicate_rows
        )];
        lines.extend(r.findings.iter().map(|f| {
            let severity = match f.severity {
                crate::validate::Severity::Error => "error",
                crate::validate::Severity::Warning => "warning",
            };
            format!("- {severity}: {}", f.message)
        }));
        lines.join("\n")
    }
}

async fn validate_data(
    store: &ArtifactStore,
    i: ValidateDataInput,
) -> Result<ValidateDataOutput, DataError> {
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    let report = tokio::task::spawn_blocking(move || {
        validate(&df, i.target_column.as_deref(), &i.expectations)
    })
    .await
    .map_err(|e| DataError::invalid(format!("validation was interrupted: {e}")))??;
    Ok(ValidateDataOutput {
        dataset_uri: r.uri().into(),
        report,
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
        let Some((mean, std)) = crate::profile::mean_std(&values) else {
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
    let name = i.output_name.clone().unwrap_or_else(|| dataset_name(&r));
    check_output_name(&name)?;
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
    let mut tables = vec![(stem(&r), r.uri().to_string(), df)];
    for extra in &i.apply_to {
        let (er, edf) = read_table(store, extra).await?;
        tables.push((stem(&er), er.uri().into(), edf));
    }
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

/// Input of `save_processed_data`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveProcessedInput {
    /// The table to save.
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// Folder under `processed/`.
    pub output_name: String,
    /// CSV or Parquet (default parquet).
    pub format: Option<TableFormat>,
}

/// Where `save_processed_data` wrote.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SaveProcessedOutput {
    pub uri: String,
    pub rows: usize,
    pub format: TableFormat,
    /// The pipeline copied along, when the source had one.
    pub pipeline_uri: Option<String>,
}

impl ToolResponse for SaveProcessedOutput {
    fn summary(&self) -> String {
        format!("Saved {} rows to {}", self.rows, self.uri)
    }
}

async fn save_processed(
    store: &ArtifactStore,
    i: SaveProcessedInput,
) -> Result<SaveProcessedOutput, DataError> {
    check_output_name(&i.output_name)?;
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    let pipeline = crate::prepared::pipeline_beside(store, &r).await?;
    let format = i.format.unwrap_or(TableFormat::Parquet);
    let folder = format!("processed/{}", i.output_name);
    let rows = df.height();
    let out = write_table(
        store,
        &format!("{folder}/{}.{}", stem(&r), format.extension()),
        df,
        format,
    )
    .await?;
    let pipeline_uri = match pipeline {
        Some(p) => Some(save_pipeline(store, &folder, &p).await?.uri().to_string()),
        None => None,
    };
    Ok(SaveProcessedOutput {
        uri: out.uri().into(),
        rows,
        format,
        pipeline_uri,
    })
}

/// Input of `feature_engineering`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureEngineeringInput {
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// Steps, applied in order.
    pub operations: Vec<crate::features::Operation>,
    /// Further tables to apply the same fitted steps to (validation, test).
    #[serde(default)]
    pub apply_to: Vec<String>,
    pub output_name: Option<String>,
    pub format: Option<TableFormat>,
}

/// What `feature_engineering` wrote.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FeatureEngineeringOutput {
    /// The engineered `dataset_uri`.
    pub data_uri: String,
    pub outputs: Vec<ProcessedTable>,
    pub added_columns: Vec<String>,
    pub removed_columns: Vec<String>,
    /// The fitted steps, to apply again later.
    pub features_uri: String,
}

impl ToolResponse for FeatureEngineeringOutput {
    fn summary(&self) -> String {
        format!(
            "Added {} ({}), removed {} ({}). Data: {}",
            self.added_columns.len(),
            self.added_columns.join(", "),
            self.removed_columns.len(),
            self.removed_columns.join(", "),
            self.data_uri
        )
    }
}

async fn feature_engineering(
    store: &ArtifactStore,
    i: FeatureEngineeringInput,
) -> Result<FeatureEngineeringOutput, DataError> {
    if i.operations.is_empty() {
        return Err(DataError::invalid("give at least one operation"));
    }
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    require_rows(&df, r.uri())?;
    let name = i.output_name.clone().unwrap_or_else(|| dataset_name(&r));
    check_output_name(&name)?;
    let mut tables = vec![(stem(&r), r.uri().to_string(), df)];
    for extra in &i.apply_to {
        let (er, edf) = read_table(store, extra).await?;
        tables.push((stem(&er), er.uri().into(), edf));
    }
    let ops = i.operations;
    let (fitted, before, results) = tokio::task::spawn_blocking(move || -> Result<_, DataError> {
        let before: Vec<String> = tables[0]
            .2
            .get_column_names()
            .into_iter()
            .map(|c| c.to_string())
            .collect();
        let (first, fitted) = crate::features::fit_apply(&tables[0].2, &ops)?;
        let mut results = vec![(tables[0].0.clone(), tables[0].1.clone(), first)];
        for (label, source, frame) in tables.into_iter().skip(1) {
            results.push((label, source, crate::features::reapply(&frame, &fitted)?));
        }
        Ok((fitted, before, results))
    })
    .await
    .map_err(|e| DataError::invalid(format!("feature engineering was interrupted: {e}")))??;
    let after: Vec<String> = results[0]
        .2
        .get_column_names()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    let format = i.format.unwrap_or(TableFormat::Parquet);
    let folder = format!("processed/{name}/features");
    let mut outputs = Vec::new();
    for (label, source, frame) in results {
        let rows = frame.height();
        let out = write_table(
            store,
            &format!("{folder}/{label}.{}", format.extension()),
            frame,
            format,
        )
        .await?;
        outputs.push(ProcessedTable {
            source,
            uri: out.uri().into(),
            rows,
        });
    }
    let features_ref = store.key(&format!("{folder}/features.json"))?;
    let json = serde_json::to_vec_pretty(&fitted).map_err(|e| DataError::invalid(e.to_string()))?;
    store.put(&features_ref, bytes::Bytes::from(json)).await?;
    Ok(FeatureEngineeringOutput {
        data_uri: outputs[0].uri.clone(),
        added_columns: after
            .iter()
            .filter(|c| !before.contains(c))
            .cloned()
            .collect(),
        removed_columns: before
            .iter()
            .filter(|c| !after.contains(c))
            .cloned()
            .collect(),
        outputs,
        features_uri: features_ref.uri().into(),
    })
}

/// Input of `preprocess_reinforcement`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreprocessReinforcementInput {
    /// A table of logged transitions (with `transitions`).
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: Option<String>,
    pub transitions: Option<crate::replay::TransitionColumns>,
    /// A built-in environment to check instead.
    pub environment: Option<crate::replay::EnvironmentConfig>,
    pub output_name: Option<String>,
}

/// What `preprocess_reinforcement` produced.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PreprocessReinforcementOutput {
    /// The replay table (for transitions).
    pub replay_uri: Option<String>,
    pub replay: Option<crate::replay::ReplaySummary>,
    /// The checked environment (for an environment).
    pub environment: Option<crate::replay::EnvironmentSpec>,
}

impl ToolResponse for PreprocessReinforcementOutput {
    fn summary(&self) -> String {
        match (&self.replay, &self.environment) {
            (Some(r), _) => format!(
                "Replay table of {} transitions in {} episodes (state size {}, actions {:?}, mean reward {:.3}) at {}",
                r.transitions,
                r.episodes,
                r.state_size,
                r.actions,
                r.reward_mean,
                self.replay_uri.as_deref().unwrap_or("")
            ),
            (None, Some(e)) => format!(
                "{}: observations of {} values, {} actions, episodes of at most {} steps",
                e.name, e.observation_size, e.actions, e.max_episode_steps
            ),
            _ => String::new(),
        }
    }
}

async fn preprocess_reinforcement(
    store: &ArtifactStore,
    i: PreprocessReinforcementInput,
) -> Result<PreprocessReinforcementOutput, DataError> {
    match (i.dataset_uri, i.transitions, i.environment) {
        (Some(uri), Some(cols), None) => {
            let (r, df) = read_table(store, &uri).await?;
            let name = i.output_name.unwrap_or_else(|| dataset_name(&r));
            check_output_name(&name)?;
            let (replay, summary) = crate::replay::to_replay(&df, &cols)?;
            let folder = format!("processed/{name}/replay");
            let out = write_table(
                store,
                &format!("{folder}/replay.parquet"),
                replay,
                TableFormat::Parquet,
            )
            .await?;
            let meta = store.key(&format!("{folder}/replay.json"))?;
            let json = serde_json::to_vec_pretty(&summary)
                .map_err(|e| DataError::invalid(e.to_string()))?;
            store.put(&meta, bytes::Bytes::from(json)).await?;
            Ok(PreprocessReinforcementOutput {
                replay_uri: Some(out.uri().into()),
                replay: Some(summary),
                environment: None,
            })
        }
        (None, None, Some(env)) => Ok(PreprocessReinforcementOutput {
            replay_uri: None,
            replay: None,
            environment: Some(crate::replay::check_environment(&env)?),
        }),
        _ => Err(DataError::invalid(
            "give either dataset_uri with transitions (logged data), or environment (a built-in environment), not both",
        )),
    }
}
