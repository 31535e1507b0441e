//! A job's training data: the table with the pipeline that turns it into model input (given,
//! found beside the data, or fitted now on raw data).

use mlops_core::ArtifactStore;
use mlops_data::FittedPipeline;
use mlops_data::read_table;
use mlops_data::{PreprocessOptions, TargetSpec, TaskType};
use mlops_data::{ReferenceProfile, profile_beside};
use mlops_data::{load_pipeline, pipeline_beside, to_model_input};
use mlops_ml::{Labels, Matrix};
use polars::prelude::DataFrame;

use crate::error::TrainError;

/// Training data with the pipeline that turns it into model input.
pub struct Prepared {
    pub pipeline: FittedPipeline,
    pub frame: DataFrame,
    pub data_uri: String,
    /// The raw training rows' distribution (saved beside the pipeline, or taken now from raw
    /// data); absent for data processed before profiles existed.
    pub profile: Option<ReferenceProfile>,
}

/// Finds the pipeline for `uri` (given, beside the data, or fitted now on raw data, with `target`
/// when `supervised`) and returns the model input.
pub async fn prepare(
    store: &ArtifactStore,
    uri: &str,
    target: Option<(&str, TaskType)>,
    supervised: bool,
    pipeline_uri: Option<&str>,
) -> Result<Prepared, TrainError> {
    let (r, df) = read_table(store, uri).await?;
    mlops_data::require_rows(&df, r.uri())?;
    let (pipeline, profile) = match pipeline_uri {
        Some(uri) => (
            load_pipeline(store, uri).await?,
            profile_beside(store, &store.resolve(uri)?).await?,
        ),
        None => match pipeline_beside(store, &r).await? {
            Some(p) => (p, profile_beside(store, &r).await?),
            None if supervised && target.is_none() => {
                return Err(TrainError::invalid(format!(
                    "`{}` is raw data (no pipeline.json beside it): give target_column, or preprocess it first with preprocess_supervised",
                    r.uri()
                )));
            }
            None => {
                let df = df.clone();
                let target = target.map(|(t, task)| (t.to_string(), task));
                let source = r.uri().to_string();
                tokio::task::spawn_blocking(move || {
                    let target = target.as_ref().map(|(t, task)| (t.as_str(), *task));
                    let p = FittedPipeline::fit(&df, target, &PreprocessOptions::default())?;
                    let profile = ReferenceProfile::build(
                        &df,
                        &p.input_columns(),
                        target.map(|(t, _)| t),
                        Some(source),
                    )?;
                    Ok::<_, mlops_data::DataError>((p, Some(profile)))
                })
                .await
                .map_err(|e| TrainError::failed(e.to_string()))??
            }
        },
    };
    let frame = to_model_input(store, &r, df, &pipeline).await?;
    Ok(Prepared {
        pipeline,
        frame,
        data_uri: r.uri().into(),
        profile,
    })
}

/// As [`prepare`], for a supervised `task`: checks the pipeline's target and that the data has it.
pub async fn prepare_supervised(
    store: &ArtifactStore,
    train_uri: &str,
    target_column: Option<&str>,
    pipeline_uri: Option<&str>,
    task: TaskType,
) -> Result<(Prepared, TargetSpec), TrainError> {
    let prepared = prepare(
        store,
        train_uri,
        target_column.map(|t| (t, task)),
        true,
        pipeline_uri,
    )
    .await?;
    let spec = prepared.pipeline.target.clone().ok_or_else(|| {
        TrainError::invalid(
            "the pipeline has no target column; it was fitted for unsupervised data",
        )
    })?;
    if spec.task != task {
        return Err(TrainError::invalid(format!(
            "the data was prepared for {} but this tool trains {} models",
            spec.task.as_str(),
            task.as_str()
        )));
    }
    if let Some(t) = target_column.filter(|t| *t != spec.name) {
        return Err(TrainError::invalid(format!(
            "target_column `{t}` differs from the pipeline's target `{}`",
            spec.name
        )));
    }
    if !prepared.frame.schema().contains(&spec.name) {
        return Err(TrainError::invalid(format!(
            "`{}` has no target column `{}`",
            prepared.data_uri, spec.name
        )));
    }
    Ok((prepared, spec))
}

/// A supervised job's rows as the learners take them: the training matrix and labels, and the
/// validation table's when there is one.
pub struct SupervisedRows {
    pub prepared: Prepared,
    pub target: TargetSpec,
    pub x: Matrix,
    pub y: Labels,
    pub validation: Option<(Matrix, Labels)>,
}

/// Prepares `train_uri` (see [`prepare_supervised`]) and `validation_uri` through its pipeline,
/// as matrices; refuses training data with a single class.
pub async fn supervised_rows(
    store: &ArtifactStore,
    train_uri: &str,
    target_column: Option<&str>,
    pipeline_uri: Option<&str>,
    validation_uri: Option<&str>,
    task: TaskType,
) -> Result<SupervisedRows, TrainError> {
    let (prepared, target) =
        prepare_supervised(store, train_uri, target_column, pipeline_uri, task).await?;
    let features = &prepared.pipeline.feature_names;
    let x = Matrix::from_frame(&prepared.frame, features)?;
    let y = Labels::of(&prepared.frame, &target)?;
    y.check_trainable(&target.name)?;
    let validation = match validation_uri {
        Some(uri) => {
            let df = mlops_data::load_model_input(store, uri, &prepared.pipeline).await?;
            Some((
                Matrix::from_frame(&df, features)?,
                Labels::of(&df, &target)?,
            ))
        }
        None => None,
    };
    Ok(SupervisedRows {
        prepared,
        target,
        x,
        y,
        validation,
    })
}
