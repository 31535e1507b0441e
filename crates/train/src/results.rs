//! The per-row results of unsupervised jobs (each row's cluster, or its coordinates), written as
//! tables under `results/<training_job_name>/`.

use mlops_core::ArtifactStore;
use mlops_data::{TableFormat, write_table};
use polars::prelude::{Column, DataFrame};

use crate::error::TrainError;

/// Writes a per-row result table (`row` index plus the given columns) to `results/<job>/<file>`.
pub async fn write_rows(
    store: &ArtifactStore,
    job: &str,
    file: &str,
    columns: Vec<Column>,
) -> Result<String, TrainError> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut all = vec![Column::new(
        "row".into(),
        (0..rows as u64).collect::<Vec<_>>(),
    )];
    all.extend(columns);
    let df = DataFrame::new(rows, all)?;
    let r = write_table(
        store,
        &format!("results/{job}/{file}"),
        df,
        TableFormat::Csv,
    )
    .await?;
    Ok(r.uri().to_string())
}

/// The embedding as named columns `component_1..k`.
pub fn embedding_columns(embedding: &[f64], k: usize) -> Vec<Column> {
    (0..k)
        .map(|c| {
            let values: Vec<f64> = embedding.iter().skip(c).step_by(k).copied().collect();
            Column::new(format!("component_{}", c + 1).into(), values)
        })
        .collect()
}
