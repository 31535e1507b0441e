//! Reading and writing tables (CSV, Parquet) through the artifact store.

use std::io::Cursor;

use bytes::Bytes;
use mlops_core::{ArtifactRef, ArtifactStore};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// The rows a CSV reader looks at to infer column types.
pub(crate) const INFER_SCHEMA_ROWS: usize = 10_000;

/// A table file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    Csv,
    Parquet,
}

impl TableFormat {
    pub fn extension(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Parquet => "parquet",
        }
    }

    /// The format named by a location's extension.
    pub fn of(r: &ArtifactRef) -> Result<Self, DataError> {
        match r.extension().as_deref() {
            Some("csv") | Some("txt") => Ok(TableFormat::Csv),
            Some("parquet") | Some("pq") => Ok(TableFormat::Parquet),
            other => Err(DataError::invalid(format!(
                "cannot tell the format of `{}` from its extension ({}); use a .csv or .parquet file",
                r.uri(),
                other
                    .map(|e| format!(".{e}"))
                    .unwrap_or_else(|| "none".into())
            ))),
        }
    }
}

/// Reads a whole table. Local files are read in place; remote ones are fetched first.
pub async fn read_table(
    store: &ArtifactStore,
    uri: &str,
) -> Result<(ArtifactRef, DataFrame), DataError> {
    let r = store.resolve(uri)?;
    let format = TableFormat::of(&r)?;
    store.check_size(&r).await?;
    let df = match r.local_path() {
        Some(path) => {
            if !path.is_file() {
                return Err(mlops_core::StoreError::NotFound {
                    uri: r.uri().into(),
                }
                .into());
            }
            let path = path.to_path_buf();
            let uri = r.uri().to_string();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path).map_err(mlops_core::StoreError::from)?;
                parse(format, file, &uri)
            })
            .await
            .map_err(|e| DataError::invalid(format!("reading was interrupted: {e}")))??
        }
        None => {
            let bytes = store.get(&r).await?;
            let uri = r.uri().to_string();
            tokio::task::spawn_blocking(move || parse(format, Cursor::new(bytes), &uri))
                .await
                .map_err(|e| DataError::invalid(format!("reading was interrupted: {e}")))??
        }
    };
    Ok((r, df))
}

fn parse<R: polars::io::mmap::MmapBytesReader + 'static>(
    format: TableFormat,
    reader: R,
    uri: &str,
) -> Result<DataFrame, DataError> {
    let malformed = |e: PolarsError| DataError::Malformed {
        uri: uri.into(),
        format: format.extension(),
        reason: e.to_string(),
    };
    match format {
        TableFormat::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(INFER_SCHEMA_ROWS))
            .into_reader_with_file_handle(reader)
            .finish()
            .map_err(malformed),
        TableFormat::Parquet => ParquetReader::new(reader).finish().map_err(malformed),
    }
}

/// Encodes a table in memory.
pub fn encode(df: &mut DataFrame, format: TableFormat) -> Result<Bytes, DataError> {
    let mut buf = Vec::new();
    match format {
        TableFormat::Csv => CsvWriter::new(&mut buf).include_header(true).finish(df)?,
        TableFormat::Parquet => {
            ParquetWriter::new(&mut buf)
                .with_compression(ParquetCompression::Snappy)
                .finish(df)?;
        }
    }
    Ok(Bytes::from(buf))
}

/// Writes a table atomically to a key under the artifact root; returns its location.
pub async fn write_table(
    store: &ArtifactStore,
    key: &str,
    mut df: DataFrame,
    format: TableFormat,
) -> Result<ArtifactRef, DataError> {
    let r = store.key(key)?;
    let bytes = tokio::task::spawn_blocking(move || encode(&mut df, format))
        .await
        .map_err(|e| DataError::invalid(format!("writing was interrupted: {e}")))??;
    store.put(&r, bytes).await?;
    Ok(r)
}

/// Fails with a clear message when a table has no rows.
pub fn require_rows(df: &DataFrame, uri: &str) -> Result<(), DataError> {
    if df.height() == 0 {
        return Err(DataError::invalid(format!("`{uri}` has no data rows")));
    }
    Ok(())
}

/// Fails with the list of available columns when `name` is not a column of `df`.
pub fn require_column(df: &DataFrame, name: &str) -> Result<(), DataError> {
    if df.schema().contains(name) {
        Ok(())
    } else {
        Err(DataError::unknown_column(
            name,
            df.get_column_names().into_iter().map(|s| s.as_str()),
        ))
    }
}

/// A dataset's short name: its file stem, or the folder name for `processed/<name>/<file>`.
pub fn dataset_name(r: &ArtifactRef) -> String {
    let uri = r.uri();
    let mut parts: Vec<&str> = uri.rsplit('/').take(4).collect();
    parts.reverse();
    if let Some(i) = parts.iter().position(|p| *p == "processed")
        && let Some(name) = parts.get(i + 1).filter(|_| i + 2 < parts.len())
    {
        return name.to_string();
    }
    let file = r.file_name();
    file.rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(file)
        .to_string()
}
