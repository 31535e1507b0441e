//! Supervised training: data with its pipeline, the targets, and one fit per algorithm.

use std::collections::HashSet;

use mlops_core::ArtifactStore;
use mlops_data::FittedPipeline;
use mlops_data::io::read_table;
use mlops_data::pipeline::{PreprocessOptions, TargetSpec, TaskType};
use mlops_data::prepared::{load_pipeline, pipeline_beside, to_model_input};
use polars::prelude::DataFrame;
use serde_json::{Value, json};

pub use mlops_nn::mlp::r2;

use crate::error::TrainError;
use crate::forest::{FitHooks, Forest, ForestParams, Targets, argmax};
use crate::gbdt::{Gbdt, GbdtParams};
use crate::linear::{LinearModel, Penalty};
use crate::matrix::{Matrix, class_indices, numeric_target};
use crate::model::TrainedModel;
use crate::neural::row_major;
use crate::params::{RandomForestParams, XgboostParams};
use crate::runner::FitControl;
use mlops_nn::mlp::{Data, Mlp};

/// Training data with the pipeline that turns it into model input.
pub struct Prepared {
    pub pipeline: FittedPipeline,
    pub frame: DataFrame,
    pub data_uri: String,
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
    mlops_data::io::require_rows(&df, r.uri())?;
    let pipeline = match pipeline_uri {
        Some(uri) => load_pipeline(store, uri).await?,
        None => match pipeline_beside(store, &r).await? {
            Some(p) => p,
            None if supervised && target.is_none() => {
                return Err(TrainError::invalid(format!(
                    "`{}` is raw data (no pipeline.json beside it): give target_column, or preprocess it first with preprocess_supervised",
                    r.uri()
                )));
            }
            None => {
                let df = df.clone();
                let target = target.map(|(t, task)| (t.to_string(), task));
                tokio::task::spawn_blocking(move || {
                    FittedPipeline::fit(
                        &df,
                        target.as_ref().map(|(t, task)| (t.as_str(), *task)),
                        &PreprocessOptions::default(),
                    )
                })
                .await
                .map_err(|e| TrainError::Failed(e.to_string()))??
            }
        },
    };
    let frame = to_model_input(store, &r, df, &pipeline).await?;
    Ok(Prepared {
        pipeline,
        frame,
        data_uri: r.uri().into(),
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

/// The training target: class indices (and the class count) or values.
pub enum Labels {
    Classes(Vec<u32>, usize),
    Values(Vec<f64>),
}

impl Labels {
    pub fn of(df: &DataFrame, spec: &TargetSpec) -> Result<Self, TrainError> {
        Ok(match spec.task {
            TaskType::Classification => Labels::Classes(
                class_indices(df, &spec.name, &spec.classes)?,
                spec.classes.len(),
            ),
            TaskType::Regression => Labels::Values(numeric_target(df, &spec.name)?),
        })
    }

    pub fn nn_targets(&self) -> mlops_nn::mlp::Targets<'_> {
        match self {
            Labels::Classes(y, k) => mlops_nn::mlp::Targets::Classes { y, n_classes: *k },
            Labels::Values(y) => mlops_nn::mlp::Targets::Values(y),
        }
    }

    pub fn targets(&self) -> Targets<'_> {
        match self {
            Labels::Classes(y, k) => Targets::Classes { y, n_classes: *k },
            Labels::Values(y) => Targets::Values(y),
        }
    }

    /// Accuracy of class probabilities, or R² of predicted values.
    pub fn score(&self, predicted: &[f64]) -> f64 {
        match self {
            Labels::Classes(y, k) => accuracy(predicted, y, *k),
            Labels::Values(y) => r2(y, predicted),
        }
    }

    /// A classifier needs two classes present in its training data.
    pub fn check_trainable(&self, target: &str) -> Result<(), TrainError> {
        if let Labels::Classes(y, _) = self
            && y.iter().collect::<HashSet<_>>().len() < 2
        {
            return Err(TrainError::invalid(format!(
                "the training data holds only one class of `{target}`; a classifier needs at least two"
            )));
        }
        Ok(())
    }
}

/// Share of rows whose most probable class is the true one.
pub fn accuracy(proba: &[f64], y: &[u32], k: usize) -> f64 {
    let correct = y
        .iter()
        .enumerate()
        .filter(|(r, c)| argmax(&proba[r * k..(r + 1) * k]) == **c as usize)
        .count();
    correct as f64 / y.len().max(1) as f64
}

/// A supervised algorithm with validated settings.
pub enum Supervised {
    RandomForest(ForestParams),
    Gbdt(GbdtParams),
    Logistic(f64),
    Linear(Penalty, f64, usize),
    NeuralNetwork(mlops_nn::mlp::MlpParams),
}

impl Supervised {
    pub fn hyperparameters(&self) -> Value {
        match self {
            Supervised::RandomForest(p) => RandomForestParams::describe(p),
            Supervised::Gbdt(p) => XgboostParams::describe(p),
            Supervised::Logistic(alpha) => json!({ "alpha": alpha }),
            Supervised::Linear(penalty, alpha, max_iter) => {
                json!({ "penalty": penalty, "alpha": alpha, "max_iter": max_iter })
            }
            Supervised::NeuralNetwork(p) => serde_json::to_value(p).unwrap_or(Value::Null),
        }
    }

    /// Fits on `x`/`y`; `validation` is scored after every round where the algorithm has rounds.
    /// Returns the model and extra metrics (out-of-bag scores), or `None` when cancelled.
    pub fn fit(
        &self,
        x: &Matrix,
        y: &Labels,
        validation: Option<&(Matrix, Labels)>,
        control: &FitControl,
    ) -> Result<Option<(TrainedModel, Value)>, TrainError> {
        let metric = match y {
            Labels::Classes(..) => "accuracy",
            Labels::Values(_) => "r2",
        };
        match self {
            Supervised::RandomForest(params) => {
                let on_tree = |done: usize, total: usize| {
                    control.progress(done, total, format!("tree {done}/{total}"))
                };
                let hooks = FitHooks {
                    cancelled: &control.cancelled,
                    on_tree: &on_tree,
                };
                let Ok((forest, oob)) = Forest::fit(x, y.targets(), params, &hooks) else {
                    return Ok(None);
                };
                for (step, score) in &oob {
                    control.metric(*step, &format!("oob_{metric}"), *score);
                }
                let extra = match oob.last() {
                    Some((_, s)) => json!({ format!("oob_{metric}"): s }),
                    None => json!({}),
                };
                Ok(Some((TrainedModel::RandomForest(forest), extra)))
            }
            Supervised::Gbdt(params) => {
                let on_booster = |done: usize, total: usize| {
                    control.progress(done, total, format!("booster {done}/{total}"))
                };
                let eval = validation.map(|(vx, vy)| (vx, vy.targets()));
                let Some((model, history)) = Gbdt::fit(
                    x,
                    y.targets(),
                    eval,
                    params,
                    &control.cancelled,
                    &on_booster,
                )?
                else {
                    return Ok(None);
                };
                for (round, name, value) in &history {
                    control.metric(*round, name, *value);
                }
                Ok(Some((TrainedModel::Gbdt(model), json!({}))))
            }
            Supervised::Logistic(alpha) => {
                let Labels::Classes(y, k) = y else {
                    return Err(TrainError::invalid(
                        "logistic regression needs class labels",
                    ));
                };
                control.progress(0, 1, "fitting".into());
                let model = LinearModel::fit_logistic(x, y, *k, *alpha)?;
                Ok(Some((TrainedModel::Linear(model), json!({}))))
            }
            Supervised::Linear(penalty, alpha, max_iter) => {
                let Labels::Values(y) = y else {
                    return Err(TrainError::invalid(
                        "a linear regressor needs numeric targets",
                    ));
                };
                control.progress(0, 1, "fitting".into());
                let model = LinearModel::fit_regression(x, y, *penalty, *alpha, *max_iter)?;
                Ok(Some((TrainedModel::Linear(model), json!({}))))
            }
            Supervised::NeuralNetwork(params) => {
                let rows = row_major(x);
                let validation_rows = validation.map(|(vx, _)| row_major(vx));
                let train = Data {
                    x: &rows,
                    rows: x.rows,
                    cols: x.cols,
                    y: y.nn_targets(),
                };
                let held_out = validation
                    .zip(validation_rows.as_ref())
                    .map(|((vx, vy), rows)| Data {
                        x: rows,
                        rows: vx.rows,
                        cols: vx.cols,
                        y: vy.nn_targets(),
                    });
                let Some(fit) =
                    control.run_nn(|hooks| Mlp::fit(&train, held_out.as_ref(), params, hooks))?
                else {
                    return Ok(None);
                };
                let extra = json!({
                    "epochs": fit.history.len(),
                    "best_epoch": fit.best_epoch,
                    "stopped_early": fit.stopped_early,
                });
                Ok(Some((TrainedModel::NeuralNetwork(fit.model), extra)))
            }
        }
    }
}

/// Scores a fitted model on `x`/`y`.
pub fn score(model: &TrainedModel, x: &Matrix, y: &Labels) -> Result<f64, TrainError> {
    Ok(match y {
        Labels::Classes(..) => y.score(&model.predict_proba(x)?),
        Labels::Values(_) => y.score(&model.predict_values(x)?),
    })
}
