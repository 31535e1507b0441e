//! `split_dataset`: train/validation/test files from one table, and the split that
//! `preprocess_supervised` also runs inline.

use mlops_core::{Annotations, ArtifactStore, ToolDef, ToolResponse};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::output_name;
use crate::error::DataError;
use crate::io::{TableFormat, read_table, require_column, require_rows, write_table};
use crate::split::{Fractions, SplitIndices, split_indices, take_rows};

pub(super) fn tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "split_dataset",
        "Split dataset",
        "Split a table into train/validation/test files under `processed/<name>/` (Parquet by default). Seeded and reproducible; stratified by a label column when `stratify_column` is set; in time order (no shuffle) when `time_column` is set. Split raw data before `preprocess_supervised` so the pipeline is fitted on training rows only.",
        Annotations::WRITES,
        |s, i: SplitDatasetInput, _ctx| async move { split_dataset(&s, i).await },
    )
}

// The holdout and seed defaults are shared with `preprocess_supervised`'s inline split, so both
// routes to a split give the same parts.
fn default_train() -> f64 {
    0.7
}
pub(super) fn default_holdout() -> f64 {
    0.15
}
pub(super) fn default_seed() -> u64 {
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

/// Splits `df` into its parts (by stratum labels, or in the order of `time_column`); for
/// `split_dataset` and for `preprocess_supervised`'s inline split.
pub(super) fn split_frame(
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
    let name = output_name(i.output_name, &r)?;
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
