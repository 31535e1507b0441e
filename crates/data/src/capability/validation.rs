//! `validate_data`: the checks of [`crate::validate`] on a stored table, as a tool.

use mlops_core::{Annotations, ArtifactStore, ToolDef, ToolResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::off_runtime;
use crate::error::DataError;
use crate::io::read_table;
use crate::validate::{Expectations, Severity, ValidationReport, validate};

pub(super) fn tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "validate_data",
        "Validate data",
        "Check a table before training: missing values per column, inferred types, duplicate rows, constant and all-missing columns, text columns that are mostly numbers (mixed types), and, against optional `expectations`, required columns, numeric ranges, allowed values and missing-value limits; with `target_column`, class balance. Returns every finding and an overall pass/fail (errors fail, warnings do not).",
        Annotations::READ_ONLY,
        |s, i: ValidateDataInput, _ctx| async move { validate_data(&s, i).await },
    )
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
                Severity::Error => "error",
                Severity::Warning => "warning",
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
    let report = off_runtime("validation", move || {
        validate(&df, i.target_column.as_deref(), &i.expectations)
    })
    .await?;
    Ok(ValidateDataOutput {
        dataset_uri: r.uri().into(),
        report,
    })
}
