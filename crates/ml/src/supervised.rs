//! Supervised fits: the targets, one fit per algorithm with validated settings, and scoring.

use std::collections::HashSet;

use mlops_data::{TargetSpec, TaskType};
use polars::prelude::DataFrame;
use serde_json::{Value, json};

pub use mlops_nn::mlp::r2;

use crate::control::FitControl;
use crate::error::MlError;
use crate::forest::{FitHooks, Forest, ForestParams, Targets, argmax};
use crate::gbdt::{Gbdt, GbdtParams};
use crate::linear::{LinearModel, Penalty};
use crate::matrix::{Matrix, class_indices, numeric_target};
use crate::model::TrainedModel;
use crate::neural::row_major;
use crate::params::{RandomForestParams, XgboostParams};
use mlops_nn::mlp::{Data, Mlp};

/// The training target: class indices (and the class count) or values.
pub enum Labels {
    Classes(Vec<u32>, usize),
    Values(Vec<f64>),
}

impl Labels {
    pub fn of(df: &DataFrame, spec: &TargetSpec) -> Result<Self, MlError> {
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

    /// The labels of the rows at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Labels {
        match self {
            Labels::Classes(y, k) => Labels::Classes(rows.iter().map(|r| y[*r]).collect(), *k),
            Labels::Values(y) => Labels::Values(rows.iter().map(|r| y[*r]).collect()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Labels::Classes(y, _) => y.len(),
            Labels::Values(y) => y.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A classifier needs two classes present in its training data.
    pub fn check_trainable(&self, target: &str) -> Result<(), MlError> {
        if let Labels::Classes(y, _) = self
            && y.iter().collect::<HashSet<_>>().len() < 2
        {
            return Err(MlError::invalid(format!(
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
    ) -> Result<Option<(TrainedModel, Value)>, MlError> {
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
                    return Err(MlError::invalid("logistic regression needs class labels"));
                };
                control.progress(0, 1, "fitting".into());
                let model = LinearModel::fit_logistic(x, y, *k, *alpha)?;
                Ok(Some((TrainedModel::Linear(model), json!({}))))
            }
            Supervised::Linear(penalty, alpha, max_iter) => {
                let Labels::Values(y) = y else {
                    return Err(MlError::invalid("a linear regressor needs numeric targets"));
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
pub fn score(model: &TrainedModel, x: &Matrix, y: &Labels) -> Result<f64, MlError> {
    Ok(match y {
        Labels::Classes(..) => y.score(&model.predict_proba(x)?),
        Labels::Values(_) => y.score(&model.predict_values(x)?),
    })
}
