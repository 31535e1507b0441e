//! `feature_engineering`: the steps of [`crate::features`] fitted on one table and re-applied to
//! the others.

use mlops_core::{Annotations, ArtifactStore, ToolDef, ToolResponse};
use polars::prelude::DataFrame;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Labelled, ProcessedTable, off_runtime, output_name, put_json, read_labelled, write_labelled,
};
use crate::error::DataError;
use crate::features::{Operation, fit_apply, reapply};
use crate::io::{TableFormat, read_table, require_rows};

pub(super) fn tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "feature_engineering",
        "Engineer features",
        "Add and select features with a list of `operations`, applied in order: `derive` (a column from an expression such as `log(income + 1)` or `price / area`), `polynomial` (squares and products), `bin`, `date_parts` (year, month, weekday… from a date column) and `select` (variance threshold, correlation with a target, top-k). Fitted on `dataset_uri` (bin edges, chosen columns) and re-applied unchanged to `apply_to`. Writes to `processed/<name>/features/` with `features.json`.",
        Annotations::WRITES,
        |s, i: FeatureEngineeringInput, _ctx| async move { feature_engineering(&s, i).await },
    )
}

/// Input of `feature_engineering`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureEngineeringInput {
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// Steps, applied in order.
    pub operations: Vec<Operation>,
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
    let name = output_name(i.output_name, &r)?;
    let first = Labelled::of(&r, df);
    let rest = read_labelled(store, &i.apply_to).await?;
    let ops = i.operations;
    let (fitted, before, results) = off_runtime("feature engineering", move || {
        let before = column_names(&first.frame);
        let (frame, fitted) = fit_apply(&first.frame, &ops)?;
        let mut results = vec![Labelled { frame, ..first }];
        for t in rest {
            results.push(Labelled {
                frame: reapply(&t.frame, &fitted)?,
                ..t
            });
        }
        Ok((fitted, before, results))
    })
    .await?;
    let after = column_names(&results[0].frame);
    let format = i.format.unwrap_or(TableFormat::Parquet);
    let folder = format!("processed/{name}/features");
    let outputs = write_labelled(store, &folder, format, results).await?;
    let features_ref = put_json(store, &format!("{folder}/features.json"), &fitted).await?;
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

/// The column names, owned, to compare before and after the steps.
fn column_names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .into_iter()
        .map(|c| c.to_string())
        .collect()
}
