//! Where a check's two sides come from: the reference (the model's saved profile, or a table
//! profiled now) and the current rows (a table, or the prediction log over a time window).

use chrono::{DateTime, NaiveDate, Utc};
use mlops_core::{
    ArtifactStore, ModelArtifact, Selector, StoreError, ToolError, ToolRouter, resolve_registered,
};
use mlops_data::drift::{Distribution, PROFILE_FILE};
use mlops_data::{FittedPipeline, ReferenceProfile, read_table};
use polars::prelude::*;

/// The prediction log's folder of one model (written by the serving capability).
const LOG_FOLDER: &str = "predictions/log";
/// The most log files one check reads.
const MAX_LOG_FILES: usize = 100_000;
/// The output columns of the log that stand for the model's prediction, by model kind.
const LOGGED_PREDICTIONS: [&str; 3] = ["_label", "_value", "_cluster"];

/// The model a check is about.
pub struct Watched {
    /// The registered model's name, or the model folder's name.
    pub name: String,
    /// Set when the model came through the registry.
    pub registered: bool,
    pub version: Option<i64>,
    pub artifact: ModelArtifact,
}

impl Watched {
    /// The model's own reference profile, if it was saved with one.
    pub fn profile(&self) -> Result<Option<ReferenceProfile>, ToolError> {
        match self.artifact.blobs.get(PROFILE_FILE) {
            Some(bytes) => Ok(Some(ReferenceProfile::from_json(bytes)?)),
            None => Ok(None),
        }
    }

    /// The fitted pipeline that turns raw rows into the model's input.
    pub fn pipeline(&self) -> Result<Option<FittedPipeline>, ToolError> {
        match &self.artifact.manifest.pipeline {
            Some(p) => serde_json::from_value(p.clone()).map(Some).map_err(|e| {
                ToolError::Execution(format!("the model's pipeline is not valid: {e}"))
            }),
            None => Ok(None),
        }
    }
}

/// Loads the model named by a folder (`model_uri`) or a registered name and selector.
pub async fn watched_model(
    store: &ArtifactStore,
    router: Option<&ToolRouter>,
    model_uri: Option<&str>,
    model_name: Option<&str>,
    selector: Selector,
) -> Result<Option<Watched>, ToolError> {
    let (name, registered, version, uri) = match (model_uri, model_name) {
        (Some(_), Some(_)) => {
            return Err(ToolError::validation(
                "give model_name or model_uri, not both",
            ));
        }
        (None, None) => return Ok(None),
        (Some(uri), None) => {
            let name = uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri);
            (name.to_string(), false, None, uri.to_string())
        }
        (None, Some(name)) => {
            let router = router.ok_or_else(|| {
                ToolError::Execution("the monitoring tools are not attached to a registry".into())
            })?;
            let found = resolve_registered(router, name, &selector, "check").await?;
            (name.to_string(), true, found.version, found.artifact_uri)
        }
    };
    let artifact = ModelArtifact::load(store, &uri).await.map_err(|e| match e {
        StoreError::NotFound { .. } => ToolError::validation(format!(
            "no model at `{uri}`; pass a folder a training job wrote (models/<training_job_name>)"
        )),
        e => e.into(),
    })?;
    Ok(Some(Watched {
        name,
        registered,
        version,
        artifact,
    }))
}

/// The reference profile: profiled now from `reference_data_uri` (on the model's raw features
/// when there is a model), else the model's own.
pub async fn reference_profile(
    store: &ArtifactStore,
    model: Option<&Watched>,
    reference_data_uri: Option<&str>,
) -> Result<(ReferenceProfile, String), ToolError> {
    if let Some(uri) = reference_data_uri {
        let (r, df) = read_table(store, uri).await?;
        let pipeline = model.map(Watched::pipeline).transpose()?.flatten();
        let (features, target): (Vec<String>, Option<String>) = match &pipeline {
            Some(p) => (
                p.input_columns().into_iter().map(String::from).collect(),
                p.target.as_ref().map(|t| t.name.clone()),
            ),
            None => (
                df.get_column_names()
                    .into_iter()
                    .map(|c| c.to_string())
                    .filter(|c| !c.starts_with('_'))
                    .collect(),
                None,
            ),
        };
        let source = r.uri().to_string();
        let profile = blocking(move || {
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            ReferenceProfile::build(&df, &features, target.as_deref(), Some(source))
                .map_err(ToolError::from)
        })
        .await?;
        return Ok((profile, format!("the table {}", r.uri())));
    }
    let Some(model) = model else {
        return Err(ToolError::validation(
            "give a model (model_name or model_uri) or a reference table (reference_data_uri)",
        ));
    };
    match model.profile()? {
        Some(p) => Ok((p, format!("the training profile of `{}`", model.name))),
        None => Err(ToolError::validation(format!(
            "model `{}` has no reference profile (it was trained before profiles were saved, or is a reinforcement policy); pass reference_data_uri, e.g. its training table{}",
            model.name,
            model
                .artifact
                .manifest
                .training_data_uri
                .as_deref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default()
        ))),
    }
}

/// The time window of a prediction-log check.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Window {
    /// `since` and `until` as RFC 3339 times or dates (a date means its midnight, UTC); `until`
    /// defaults to now and `since` to a day before `until`.
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<Self, ToolError> {
        let until = match until {
            Some(t) => time(t, "until")?,
            None => Utc::now(),
        };
        let since = match since {
            Some(t) => time(t, "since")?,
            None => until - chrono::Duration::days(1),
        };
        if since >= until {
            return Err(ToolError::validation(format!(
                "since ({since}) must be before until ({until})"
            )));
        }
        Ok(Self { since, until })
    }
}

fn time(text: &str, field: &str) -> Result<DateTime<Utc>, ToolError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(ToolError::validation(format!(
        "{field} `{text}` is not a time: use RFC 3339 (2026-12-07T09:00:00Z) or a date (2026-12-07)"
    )))
}

/// The logged rows of `model` inside `window`: the profile's features (cast to their kind, null
/// where a request lacked one) and the logged prediction as `prediction`. Returns the rows and
/// how many files were read.
pub async fn logged_rows(
    store: &ArtifactStore,
    model: &str,
    profile: &ReferenceProfile,
    window: Window,
) -> Result<(DataFrame, usize), ToolError> {
    mlops_core::check_folder_name("model_name", model).map_err(ToolError::validation)?;
    let folder = format!("{LOG_FOLDER}/{model}");
    let (first, last) = (
        window.since.format("%Y-%m-%d").to_string(),
        window.until.format("%Y-%m-%d").to_string(),
    );
    let keys: Vec<String> = store
        .list(&folder, MAX_LOG_FILES)
        .await?
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .filter(|k| {
            k.split('/')
                .find_map(|part| part.strip_prefix("date="))
                .is_some_and(|day| day >= first.as_str() && day <= last.as_str())
        })
        .collect();
    let mut wanted: Vec<(String, DataType)> = profile
        .features
        .iter()
        .map(|f| {
            let dtype = match f.distribution {
                Distribution::Numeric { .. } => DataType::Float64,
                Distribution::Categorical { .. } => DataType::String,
            };
            (f.name.clone(), dtype)
        })
        .collect();
    wanted.push(("_ts_ms".into(), DataType::Int64));
    let mut rows: Option<DataFrame> = None;
    for key in &keys {
        let (_, part) = read_table(store, key).await?;
        let mut columns: Vec<Column> = wanted
            .iter()
            .map(|(name, dtype)| match part.column(name) {
                Ok(c) => c.cast(dtype),
                Err(_) => Ok(Column::full_null(name.into(), part.height(), dtype)),
            })
            .collect::<PolarsResult<_>>()
            .map_err(polars_error)?;
        let prediction = LOGGED_PREDICTIONS
            .iter()
            .find_map(|name| part.column(name).ok());
        let prediction = match (prediction, &profile.prediction) {
            (Some(c), Some(p)) if p.is_numeric() => c.cast(&DataType::Float64),
            (Some(c), _) => c.cast(&DataType::String),
            (None, _) => Ok(Column::full_null(
                "prediction".into(),
                part.height(),
                &DataType::String,
            )),
        }
        .map_err(polars_error)?;
        columns.push(prediction.with_name("prediction".into()));
        let part = DataFrame::new(part.height(), columns).map_err(polars_error)?;
        match &mut rows {
            None => rows = Some(part),
            Some(all) => {
                // Parts disagree on the prediction's type only when the model kind changed.
                if let Err(e) = all.vstack_mut(&part) {
                    return Err(ToolError::validation(format!(
                        "the prediction log of `{model}` mixes model kinds in this window ({e}); narrow since/until to one kind"
                    )));
                }
            }
        }
    }
    let Some(all) = rows else {
        return Ok((DataFrame::empty(), 0));
    };
    let ts = all
        .column("_ts_ms")
        .map_err(polars_error)?
        .i64()
        .map_err(polars_error)?;
    let mask = ts.gt_eq(window.since.timestamp_millis()) & ts.lt(window.until.timestamp_millis());
    let inside = all.filter(&mask).map_err(polars_error)?;
    Ok((inside, keys.len()))
}

/// Runs blocking work (profiling, comparing) off the async runtime.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ToolError::Execution(format!("the drift check was interrupted: {e}")))?
}

pub fn polars_error(e: PolarsError) -> ToolError {
    ToolError::Execution(format!("data processing failed: {e}"))
}
