//! The `predict` tool: one model (a folder, or a registered model by version, stage or alias)
//! scores inline rows or a table of raw columns. Small results come back inline, a page at a
//! time; larger ones are written to `predictions/<name>/part-00000.parquet`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlops_core::{ArtifactStore, ToolError, ToolResponse};
use mlops_data::{TableFormat, encode, read_table, require_rows, to_model_input};
use mlops_ml::{Matrix, Prediction};
use polars::prelude::{DataFrame, DataType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::endpoint::Endpoint;
use crate::loaded::{Scored, Served};
use crate::resolve::Selector;
use crate::table::{flatten, frame_of};

/// Most inline rows a call takes.
pub const MAX_RECORDS: usize = 1_000;
/// Results with more rows than this are written to a file rather than returned.
const MAX_INLINE_ROWS: usize = 1_000;
/// Rows shown beside a result written to a file.
const PREVIEW_ROWS: usize = 5;

/// Which model answers: a folder, or a registered model by version, stage or alias. (The tools'
/// inputs repeat these fields: serde cannot flatten them into a struct that refuses unknown
/// fields.)
#[derive(Debug, Clone)]
pub struct ModelChoice {
    pub model_uri: Option<String>,
    pub model_name: Option<String>,
    pub version: Option<i64>,
    pub stage: Option<String>,
    pub alias: Option<String>,
}

impl ModelChoice {
    /// The model now answering for this choice.
    pub async fn served(&self, endpoint: &Arc<Endpoint>) -> Result<Served, ToolError> {
        match (&self.model_uri, &self.model_name) {
            (Some(uri), None) => {
                if self.version.is_some() || self.stage.is_some() || self.alias.is_some() {
                    return Err(ToolError::validation(
                        "version, stage and alias choose among a registered model's versions: give them with model_name, not model_uri",
                    ));
                }
                endpoint.by_uri(uri).await
            }
            (None, Some(name)) => {
                let selector =
                    Selector::from_parts(self.version, self.stage.clone(), self.alias.clone())?;
                endpoint.current(name, &selector).await
            }
            (Some(_), Some(_)) => Err(ToolError::validation(
                "give model_uri or model_name, not both",
            )),
            (None, None) => Err(ToolError::validation(
                "say which model answers: model_uri (a models/<job> folder) or model_name (a registered model)",
            )),
        }
    }
}

/// Input of `predict`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictInput {
    /// A model folder (`models/<training_job_name>`); or give `model_name`.
    pub model_uri: Option<String>,
    /// A registered model, by one of `version`, `stage` or `alias` (default: its Production version).
    pub model_name: Option<String>,
    pub version: Option<i64>,
    /// e.g. Production, Staging.
    pub stage: Option<String>,
    /// e.g. champion.
    pub alias: Option<String>,
    /// A table of the raw columns the model was trained on (CSV or Parquet; a path under the
    /// artifact root, file:// or s3://); the model's pipeline is applied. Or give `records`.
    pub data_uri: Option<String>,
    /// Up to 1,000 rows as objects of raw columns, e.g. [{"age": 41, "plan": "pro"}].
    pub records: Option<Vec<Map<String, Value>>>,
    /// Input columns copied to each prediction (e.g. an id).
    #[serde(default)]
    pub passthrough_columns: Vec<String>,
    /// Results over 1,000 rows go to `predictions/<output_name>/part-00000.parquet` (default: the
    /// model's name and the time).
    pub output_name: Option<String>,
    /// The first prediction of the page returned inline.
    #[serde(default)]
    pub offset: usize,
}

impl PredictInput {
    fn choice(&self) -> ModelChoice {
        ModelChoice {
            model_uri: self.model_uri.clone(),
            model_name: self.model_name.clone(),
            version: self.version,
            stage: self.stage.clone(),
            alias: self.alias.clone(),
        }
    }
}

/// What `predict` answered.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PredictOutput {
    /// The registered model and the version that answered (absent for a folder given directly).
    pub model_name: Option<String>,
    pub version: Option<i64>,
    pub model_uri: String,
    pub task: String,
    pub algorithm: String,
    /// Rows scored.
    pub rows: usize,
    /// Predictions, one object per row: `label` and `probabilities` (classifiers), `value`
    /// (regressors), `cluster` (+ `anomaly_score`, `anomaly` for autoencoders), `components`
    /// (PCA) or `action` (policies), with any passthrough columns. A page, or a preview when the
    /// result went to `output_uri`.
    pub predictions: Vec<Map<String, Value>>,
    /// Pass as `offset` for the next page; absent on the last page.
    pub next_offset: Option<usize>,
    /// The Parquet file holding every prediction, when there were too many to return.
    pub output_uri: Option<String>,
    /// Text values training never saw, per column (at most 20 each).
    pub unseen_categories: BTreeMap<String, Vec<String>>,
    /// How those values were encoded.
    pub unseen_rule: Option<String>,
    /// Counts per label, cluster or action; or the mean, min and max value.
    pub overview: Value,
}

impl ToolResponse for PredictOutput {
    fn summary(&self) -> String {
        let who = match (&self.model_name, self.version) {
            (Some(n), Some(v)) => format!("`{n}` version {v}"),
            _ => format!("`{}`", self.model_uri),
        };
        let mut s = format!(
            "{who} ({} {}) scored {} rows: {}",
            self.task, self.algorithm, self.rows, self.overview
        );
        if let Some(uri) = &self.output_uri {
            s.push_str(&format!(". Every prediction is in {uri}"));
        } else if let Some(next) = self.next_offset {
            s.push_str(&format!(". More: offset {next}"));
        }
        if !self.unseen_categories.is_empty() {
            let cols: Vec<String> = self
                .unseen_categories
                .iter()
                .map(|(c, v)| format!("{c} ({})", v.join(", ")))
                .collect();
            s.push_str(&format!(
                ". Values not seen in training: {}; {}",
                cols.join("; "),
                self.unseen_rule.as_deref().unwrap_or_default()
            ));
        }
        s
    }
}

pub async fn predict(
    endpoint: &Arc<Endpoint>,
    store: &ArtifactStore,
    i: PredictInput,
) -> Result<PredictOutput, ToolError> {
    let served = i.choice().served(endpoint).await?;
    let model = &served.model;
    let (scored, passthrough) = match (&i.records, &i.data_uri) {
        (Some(records), None) => {
            if records.len() > MAX_RECORDS {
                return Err(ToolError::validation(format!(
                    "records holds {} rows; at most {MAX_RECORDS} go inline (put more in a table and give data_uri, or use batch_predict)",
                    records.len()
                )));
            }
            let passthrough = passthrough_of_records(records, &i.passthrough_columns)?;
            (endpoint.predict(&served, records)?, passthrough)
        }
        (None, Some(uri)) => {
            let (r, df) = read_table(store, uri).await?;
            require_rows(&df, r.uri())?;
            let passthrough = passthrough_of_frame(&df, &i.passthrough_columns)?;
            let scored = score_frame(store, &served, &r, df).await?;
            (scored, passthrough)
        }
        (Some(_), Some(_)) => {
            return Err(ToolError::validation("give records or data_uri, not both"));
        }
        (None, None) => {
            return Err(ToolError::validation(
                "give the rows to score: records (inline) or data_uri (a table)",
            ));
        }
    };
    let rows: Vec<Map<String, Value>> = (0..scored.rows)
        .map(|r| {
            let mut row = passthrough.get(r).cloned().unwrap_or_default();
            row.extend(model.row(&scored, r));
            row
        })
        .collect();
    let overview = overview(&served, &scored);
    let (predictions, next_offset, output_uri) = if rows.len() > MAX_INLINE_ROWS {
        let name = match &i.output_name {
            Some(n) => n.clone(),
            None => format!(
                "{}-{}",
                crate::endpoint::metric_name(&served.origin),
                chrono::Utc::now().format("%Y%m%d-%H%M%S")
            ),
        };
        mlops_core::check_folder_name("output_name", &name).map_err(ToolError::validation)?;
        let uri = write_predictions(store, &name, &rows).await?;
        (rows[..PREVIEW_ROWS].to_vec(), None, Some(uri))
    } else {
        if i.offset > rows.len() {
            return Err(ToolError::validation(format!(
                "offset {} is past the {} predictions",
                i.offset,
                rows.len()
            )));
        }
        let mut page = rows[i.offset..].to_vec();
        mlops_core::fit_page(&mut page);
        let end = i.offset + page.len();
        (page, (end < rows.len()).then_some(end), None)
    };
    let unseen_categories: BTreeMap<String, Vec<String>> = scored.unseen.iter().cloned().collect();
    Ok(PredictOutput {
        model_name: served.origin.model_name.clone(),
        version: served.origin.version,
        model_uri: served.origin.artifact_uri.clone(),
        task: model.task.clone(),
        algorithm: model.algorithm.clone(),
        rows: scored.rows,
        predictions,
        next_offset,
        output_uri,
        unseen_rule: (!unseen_categories.is_empty()).then(|| model.unseen_rule().to_string()),
        unseen_categories,
        overview,
    })
}

/// Scores a table of raw columns (or one already processed by the model's pipeline).
pub async fn score_frame(
    store: &ArtifactStore,
    served: &Served,
    r: &mlops_core::ArtifactRef,
    mut df: DataFrame,
) -> Result<Scored, ToolError> {
    let model = &served.model;
    let (x, unseen) = match &model.pipeline {
        Some(p) => {
            // The label is not needed to predict; dropping it keeps rows without one.
            if let Some(t) = &p.target
                && df.schema().contains(&t.name)
            {
                df = df.drop(&t.name).map_err(mlops_data::DataError::from)?;
            }
            let processed = pipeline_beside_matches(store, r, p).await?;
            let unseen = if processed {
                Default::default()
            } else {
                p.inspect(&df)?
            };
            let input = to_model_input(store, r, df, p).await?;
            let x = Matrix::from_frame(&input, &model.feature_names)?;
            (x, unseen.into_iter().collect())
        }
        None => (Matrix::from_frame(&df, &model.feature_names)?, Vec::new()),
    };
    model.score_matrix(x, unseen)
}

/// Whether the table was already processed by this pipeline (its `pipeline.json` is beside it).
async fn pipeline_beside_matches(
    store: &ArtifactStore,
    r: &mlops_core::ArtifactRef,
    p: &mlops_data::FittedPipeline,
) -> Result<bool, ToolError> {
    Ok(mlops_data::pipeline_beside(store, r)
        .await?
        .is_some_and(|beside| beside.fingerprint() == p.fingerprint()))
}

fn passthrough_of_records(
    records: &[Map<String, Value>],
    columns: &[String],
) -> Result<Vec<Map<String, Value>>, ToolError> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let missing: Vec<&str> = columns
        .iter()
        .filter(|c| !records.iter().any(|r| r.contains_key(*c)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ToolError::validation(format!(
            "passthrough_columns names columns no row has: {}",
            missing.join(", ")
        )));
    }
    Ok(records
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| (c.clone(), r.get(c).cloned().unwrap_or(Value::Null)))
                .collect()
        })
        .collect())
}

pub fn passthrough_of_frame(
    df: &DataFrame,
    columns: &[String],
) -> Result<Vec<Map<String, Value>>, ToolError> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let missing: Vec<&str> = columns
        .iter()
        .filter(|c| !df.schema().contains(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ToolError::validation(format!(
            "passthrough_columns names columns the data lacks: {}",
            missing.join(", ")
        )));
    }
    let mut rows = vec![Map::new(); df.height()];
    for c in columns {
        let column = df.column(c).map_err(mlops_data::DataError::from)?;
        let values: Vec<Value> = if column.dtype().is_primitive_numeric() {
            let f = column
                .cast(&DataType::Float64)
                .map_err(mlops_data::DataError::from)?;
            f.f64()
                .map_err(mlops_data::DataError::from)?
                .iter()
                .map(|v| v.map_or(Value::Null, |v| json!(v)))
                .collect()
        } else {
            let s = column
                .cast(&DataType::String)
                .map_err(mlops_data::DataError::from)?;
            s.str()
                .map_err(mlops_data::DataError::from)?
                .iter()
                .map(|v| v.map_or(Value::Null, |v| json!(v)))
                .collect()
        };
        for (row, v) in rows.iter_mut().zip(values) {
            row.insert(c.clone(), v);
        }
    }
    Ok(rows)
}

/// Writes every prediction row to `predictions/<name>/part-00000.parquet`; returns its location.
async fn write_predictions(
    store: &ArtifactStore,
    name: &str,
    rows: &[Map<String, Value>],
) -> Result<String, ToolError> {
    let flat: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let mut out = Map::new();
            flatten(r, "", &mut out);
            out
        })
        .collect();
    let mut df = frame_of(&flat)?;
    let bytes = encode(&mut df, TableFormat::Parquet)?;
    let r = store.key(&format!("predictions/{name}/part-00000.parquet"))?;
    store.put(&r, bytes).await?;
    Ok(r.uri().to_string())
}

/// A glance at a result: counts per label, cluster or action, or the spread of values.
pub fn overview(served: &Served, scored: &Scored) -> Value {
    let counts = |keys: Vec<String>| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        for k in keys {
            *c.entry(k).or_default() += 1;
        }
        json!(c)
    };
    match &scored.prediction {
        Prediction::Probabilities(p) => {
            let k = served.model.classes.len().max(1);
            counts(p.chunks(k).map(|row| served.model.label(row)).collect())
        }
        Prediction::Values(v) => {
            let n = v.len().max(1) as f64;
            json!({
                "mean": v.iter().sum::<f64>() / n,
                "min": v.iter().copied().fold(f64::INFINITY, f64::min),
                "max": v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
        }
        Prediction::Clusters { ids, anomaly } => {
            let mut o = json!({"clusters": counts(ids.iter().map(i64::to_string).collect())});
            if let Some(a) = anomaly {
                o["anomalies"] = json!(a.scores.iter().filter(|s| **s > a.threshold).count());
            }
            o
        }
        Prediction::Components { width, .. } => json!({"components": width}),
        Prediction::Actions(a) => counts(a.iter().map(usize::to_string).collect()),
    }
}
