//! `load_dataset`: read a table and describe it, a page of rows at a time.

use mlops_core::{Annotations, ArtifactStore, ToolDef, ToolResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::off_runtime;
use crate::error::DataError;
use crate::io::{TableFormat, read_table, require_column};
use crate::profile::{ColumnProfile, head_rows, profile};

/// Most rows one `load_dataset` page asks for.
const MAX_PAGE_ROWS: usize = 1000;

pub(super) fn tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "load_dataset",
        "Load dataset",
        "Read a CSV or Parquet table (a path under the artifact root such as `datasets/x.csv`, a file:// URI, or s3://bucket/key) and describe it: row count, each column's type, missing values and summary statistics, and a page of rows. Use it first to learn the column names. Page through rows with `offset` (pass back `next_offset`) and `limit`; pick columns with `columns`. Example: {\"dataset_uri\":\"datasets/x.csv\",\"offset\":100,\"limit\":50,\"columns\":[\"age\",\"label\"]}",
        Annotations::READ_ONLY,
        |s, i: LoadDatasetInput, _ctx| async move { load_dataset(&s, i).await },
    )
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
        // A polars clone shares the column buffers; the page below still needs `df`.
        let df = df.clone();
        off_runtime("profiling", move || profile(&df)).await?
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
