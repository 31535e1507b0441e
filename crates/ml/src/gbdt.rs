//! Gradient-boosted trees on forust-ml (XGBoost's histogram algorithm in pure Rust).
//!
//! forust-ml has binary log loss and squared loss; more than two classes are handled one-vs-rest
//! (one booster per class, probabilities normalised), which is our addition. A booster's fit cannot
//! be interrupted, so cancellation is checked between boosters.

use forust_ml::GradientBooster;
use forust_ml::data::Matrix as ForustMatrix;
use forust_ml::gradientbooster::ImportanceMethod;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use serde::{Deserialize, Serialize};

use crate::error::MlError;
use crate::forest::Targets;
use crate::matrix::Matrix;

/// Boosting settings (XGBoost's names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GbdtParams {
    pub n_estimators: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    pub min_child_weight: f64,
    pub reg_lambda: f64,
    pub reg_alpha: f64,
    pub gamma: f64,
    pub subsample: f64,
    pub colsample_bytree: f64,
    pub max_bin: usize,
    pub seed: u64,
}

/// A fitted ensemble: one booster for regression or two classes, one per class beyond that.
#[derive(Serialize, Deserialize)]
pub struct Gbdt {
    pub classification: bool,
    pub n_classes: usize,
    pub n_features: usize,
    pub boosters: Vec<GradientBooster>,
    pub feature_importances: Vec<f64>,
}

/// One point of a booster's evaluation history: (round, metric name, value).
pub type HistoryPoint = (usize, String, f64);

fn failed(e: impl std::fmt::Display) -> MlError {
    MlError::Failed(format!("gradient boosting failed: {e}"))
}

impl Gbdt {
    /// Fits the ensemble. `eval` (features and targets, e.g. the validation set) is scored after
    /// every round into the returned history. `None` means the fit was cancelled.
    pub fn fit(
        x: &Matrix,
        targets: Targets<'_>,
        eval: Option<(&Matrix, Targets<'_>)>,
        params: &GbdtParams,
        cancelled: &std::sync::atomic::AtomicBool,
        on_booster: &dyn Fn(usize, usize),
    ) -> Result<Option<(Self, Vec<HistoryPoint>)>, MlError> {
        let classification = matches!(targets, Targets::Classes { .. });
        // ObjectiveType is not Copy: one is made per booster.
        let objective = || {
            if classification {
                ObjectiveType::LogLoss
            } else {
                ObjectiveType::SquaredLoss
            }
        };
        let (metric, metric_name) = if classification {
            (Metric::LogLoss, "log_loss")
        } else {
            (Metric::RootMeanSquaredError, "rmse")
        };
        // The 0/1 (or value) target of each booster.
        let per_booster: Vec<Vec<f64>> = match targets {
            Targets::Classes { y, n_classes: 2 } => vec![y.iter().map(|&c| c as f64).collect()],
            Targets::Classes { y, n_classes } => (0..n_classes)
                .map(|k| y.iter().map(|&c| f64::from(c as usize == k)).collect())
                .collect(),
            Targets::Values(y) => vec![y.to_vec()],
        };
        let eval_targets: Option<Vec<Vec<f64>>> = eval.as_ref().map(|(_, t)| match t {
            Targets::Classes { y, n_classes } if *n_classes == 2 => {
                vec![y.iter().map(|&c| c as f64).collect()]
            }
            Targets::Classes { y, n_classes } => (0..*n_classes)
                .map(|k| y.iter().map(|&c| f64::from(c as usize == k)).collect())
                .collect(),
            Targets::Values(y) => vec![y.to_vec()],
        });
        let data = ForustMatrix::new(&x.data, x.rows, x.cols);
        let weights = vec![1.0; x.rows];
        let mut boosters = Vec::with_capacity(per_booster.len());
        let mut history: Vec<HistoryPoint> = Vec::new();
        let total = per_booster.len();
        for (k, y) in per_booster.iter().enumerate() {
            if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(None);
            }
            let mut booster = GradientBooster::default()
                .set_objective_type(objective())
                .set_iterations(params.n_estimators)
                .set_learning_rate(params.learning_rate as f32)
                .set_max_depth(params.max_depth)
                .set_min_leaf_weight(params.min_child_weight as f32)
                .set_l2(params.reg_lambda as f32)
                .set_l1(params.reg_alpha as f32)
                .set_gamma(params.gamma as f32)
                .set_subsample(params.subsample as f32)
                .set_colsample_bytree(params.colsample_bytree)
                .set_nbins(params.max_bin as u16)
                .set_seed(params.seed.wrapping_add(k as u64))
                .set_parallel(true)
                .set_evaluation_metric(eval.is_some().then_some(metric));
            let eval_weights = eval.as_ref().map(|(ex, _)| vec![1.0; ex.rows]);
            let eval_data = match (&eval, &eval_targets, &eval_weights) {
                (Some((ex, _)), Some(et), Some(w)) => Some(vec![(
                    ForustMatrix::new(&ex.data, ex.rows, ex.cols),
                    et[k].as_slice(),
                    w.as_slice(),
                )]),
                _ => None,
            };
            booster.fit(&data, y, &weights, eval_data).map_err(failed)?;
            if let Some(h) = &booster.evaluation_history {
                let name = if total > 1 {
                    format!("validation_{metric_name}_class_{k}")
                } else {
                    format!("validation_{metric_name}")
                };
                for round in 0..h.rows {
                    history.push((round + 1, name.clone(), h.data[round * h.cols]));
                }
            }
            boosters.push(booster);
            on_booster(k + 1, total);
        }
        let mut importances = vec![0.0; x.cols];
        for b in &boosters {
            for (f, v) in b.calculate_feature_importance(ImportanceMethod::TotalGain, false) {
                if f < importances.len() {
                    importances[f] += v as f64;
                }
            }
        }
        let sum: f64 = importances.iter().sum();
        if sum > 0.0 {
            importances.iter_mut().for_each(|v| *v /= sum);
        }
        let n_classes = match targets {
            Targets::Classes { n_classes, .. } => n_classes,
            Targets::Values(_) => 0,
        };
        Ok(Some((
            Self {
                classification,
                n_classes,
                n_features: x.cols,
                boosters,
                feature_importances: importances,
            },
            history,
        )))
    }

    /// Class probabilities (`rows × classes`, row-major) for a classifier, values for a regressor.
    pub fn predict_raw(&self, x: &Matrix) -> Vec<f64> {
        let data = ForustMatrix::new(&x.data, x.rows, x.cols);
        let margins: Vec<Vec<f64>> = self
            .boosters
            .iter()
            .map(|b| b.predict(&data, true))
            .collect();
        if !self.classification {
            return margins.into_iter().next().unwrap_or_default();
        }
        let sigmoid = |m: f64| 1.0 / (1.0 + (-m).exp());
        let k = self.n_classes;
        let mut out = vec![0.0; x.rows * k];
        for r in 0..x.rows {
            let row = &mut out[r * k..(r + 1) * k];
            if k == 2 {
                let p = sigmoid(margins[0][r]);
                row.copy_from_slice(&[1.0 - p, p]);
            } else {
                for (c, m) in margins.iter().enumerate() {
                    row[c] = sigmoid(m[r]);
                }
                let sum: f64 = row.iter().sum();
                if sum > 0.0 {
                    row.iter_mut().for_each(|p| *p /= sum);
                }
            }
        }
        out
    }
}
