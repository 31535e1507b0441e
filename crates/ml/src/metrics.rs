//! Classification and regression metrics, defined as scikit-learn defines them (zero when a ratio
//! is 0/0). Evaluation reports them all; tuning scores trials by one, named as
//! [`mlops_core::metric_names`] names it.

use mlops_core::metric_names::MetricName;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::MlError;
use crate::supervised::Labels;
use mlops_nn::mlp::argmax;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows whose true class this is.
    pub support: u64,
}

/// Classification metrics of predictions against true classes.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClassificationReport {
    pub accuracy: f64,
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    pub precision_weighted: f64,
    pub recall_weighted: f64,
    pub f1_weighted: f64,
    /// Binary: AUC of the second class's probability. Multi-class: macro one-vs-rest AUC.
    /// Absent when a class has no rows (AUC is undefined).
    pub roc_auc: Option<f64>,
    /// Cross-entropy of the predicted probabilities (clipped at 1e-15).
    pub log_loss: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion_matrix[true][predicted]`, classes in `classes` order.
    pub confusion_matrix: Vec<Vec<u64>>,
    pub classes: Vec<String>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// Computes the report. `proba` is row-major `rows × classes`; `y` holds true class indices.
pub fn classification_report(y: &[u32], proba: &[f64], classes: &[String]) -> ClassificationReport {
    let k = classes.len();
    let pred: Vec<usize> = (0..y.len())
        .map(|r| argmax(&proba[r * k..(r + 1) * k]))
        .collect();
    let mut cm = vec![vec![0u64; k]; k];
    for (t, p) in y.iter().zip(&pred) {
        cm[*t as usize][*p] += 1;
    }
    let n = y.len() as f64;
    let correct: u64 = (0..k).map(|c| cm[c][c]).sum();
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = cm[c][c] as f64;
            let predicted: f64 = (0..k).map(|t| cm[t][c] as f64).sum();
            let support: u64 = cm[c].iter().sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support as f64);
            ClassMetrics {
                class: classes[c].clone(),
                precision,
                recall,
                f1: ratio(2.0 * precision * recall, precision + recall),
                support,
            }
        })
        .collect();
    let macro_avg = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k as f64;
    let weighted = |f: fn(&ClassMetrics) -> f64| {
        ratio(
            per_class
                .iter()
                .map(|m| f(m) * m.support as f64)
                .sum::<f64>(),
            n,
        )
    };
    let log_loss = -y
        .iter()
        .enumerate()
        .map(|(r, t)| proba[r * k + *t as usize].clamp(1e-15, 1.0 - 1e-15).ln())
        .sum::<f64>()
        / n.max(1.0);
    let roc_auc = if k == 2 {
        let scores: Vec<f64> = (0..y.len()).map(|r| proba[r * 2 + 1]).collect();
        let positive: Vec<bool> = y.iter().map(|t| *t == 1).collect();
        binary_auc(&scores, &positive)
    } else {
        (0..k)
            .map(|c| {
                let scores: Vec<f64> = (0..y.len()).map(|r| proba[r * k + c]).collect();
                let positive: Vec<bool> = y.iter().map(|t| *t as usize == c).collect();
                binary_auc(&scores, &positive)
            })
            .collect::<Option<Vec<f64>>>()
            .map(|aucs| aucs.iter().sum::<f64>() / k as f64)
    };
    ClassificationReport {
        accuracy: ratio(correct as f64, n),
        precision_macro: macro_avg(|m| m.precision),
        recall_macro: macro_avg(|m| m.recall),
        f1_macro: macro_avg(|m| m.f1),
        precision_weighted: weighted(|m| m.precision),
        recall_weighted: weighted(|m| m.recall),
        f1_weighted: weighted(|m| m.f1),
        roc_auc,
        log_loss,
        per_class,
        confusion_matrix: cm,
        classes: classes.to_vec(),
    }
}

/// Regression metrics of predictions against true values.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RegressionReport {
    pub mae: f64,
    pub mse: f64,
    pub rmse: f64,
    pub r2: f64,
    /// Mean absolute percentage error, as a fraction (scikit-learn's definition: the denominator
    /// is at least machine epsilon, so zero targets give very large values).
    pub mape: f64,
}

/// Computes the regression report.
pub fn regression_report(y: &[f64], predicted: &[f64]) -> RegressionReport {
    let n = y.len().max(1) as f64;
    let mean = y.iter().sum::<f64>() / n;
    let mae = y
        .iter()
        .zip(predicted)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / n;
    let mse = y
        .iter()
        .zip(predicted)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / n;
    let ss_tot: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
    let mape = y
        .iter()
        .zip(predicted)
        .map(|(a, b)| (a - b).abs() / a.abs().max(f64::EPSILON))
        .sum::<f64>()
        / n;
    RegressionReport {
        mae,
        mse,
        rmse: mse.sqrt(),
        r2: if ss_tot > 0.0 {
            1.0 - mse * n / ss_tot
        } else {
            0.0
        },
        mape,
    }
}

/// The value of `metric` for predictions against `labels`: class probabilities (row-major, one
/// column per class) for a classifier, values for a regressor. Errors when the metric is not one
/// of the labels' task, or is undefined on these rows (ROC AUC when a class has no rows).
pub fn supervised_metric(
    metric: &MetricName,
    labels: &Labels,
    predicted: &[f64],
) -> Result<f64, MlError> {
    let report = match labels {
        Labels::Classes(y, k) => {
            let classes: Vec<String> = (0..*k).map(|c| c.to_string()).collect();
            serde_json::to_value(classification_report(y, predicted, &classes))
        }
        Labels::Values(y) => serde_json::to_value(regression_report(y, predicted)),
    }
    .map_err(|e| MlError::Failed(e.to_string()))?;
    match report.get(metric.key) {
        Some(v) => v.as_f64().ok_or_else(|| {
            MlError::invalid(format!(
                "{} is undefined on these rows (a class has no rows)",
                metric.name
            ))
        }),
        None => Err(MlError::invalid(format!(
            "{} scores {} models, not these",
            metric.name, metric.task
        ))),
    }
}

/// Area under the ROC curve by the rank-sum formula, ties sharing their average rank.
pub fn binary_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&t| positive[order[t]]).count() as f64 * avg_rank;
        i = j + 1;
    }
    Some((rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos * n_neg) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn binary_report_matches_hand_computed_values() {
        // true:      0   0   1   1   1
        // p(class1): .2  .6  .7  .4  .9  → predicted 0 1 1 0 1
        let y = [0, 0, 1, 1, 1];
        let p1 = [0.2, 0.6, 0.7, 0.4, 0.9];
        let proba: Vec<f64> = p1.iter().flat_map(|p| [1.0 - p, *p]).collect();
        let r = classification_report(&y, &proba, &["0".into(), "1".into()]);
        close(r.accuracy, 0.6);
        assert_eq!(r.confusion_matrix, vec![vec![1, 1], vec![1, 2]]);
        close(r.per_class[1].precision, 2.0 / 3.0);
        close(r.per_class[1].recall, 2.0 / 3.0);
        close(r.per_class[0].precision, 0.5);
        close(r.f1_macro, (0.5 + 2.0 / 3.0) / 2.0);
        close(r.f1_weighted, (0.5 * 2.0 + 2.0 / 3.0 * 3.0) / 5.0);
        // Pairs (pos, neg) ranked right: (.7>.2,.6) (.4>.2) (.9>.2,.6) = 5 of 6.
        close(r.roc_auc.unwrap(), 5.0 / 6.0);
        let ll =
            -((0.8f64).ln() + (0.4f64).ln() + (0.7f64).ln() + (0.4f64).ln() + (0.9f64).ln()) / 5.0;
        close(r.log_loss, ll);
    }

    #[test]
    fn regression_report_matches_hand_computed_values() {
        let r = regression_report(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]);
        close(r.mae, 0.5);
        close(r.mse, 0.375);
        close(r.rmse, 0.375f64.sqrt());
        // scikit-learn's r2_score docs example: 0.948...
        close(r.r2, 1.0 - 1.5 / 29.1875);
        close(r.mape, (0.5 / 3.0 + 0.5 / 0.5 + 0.0 + 1.0 / 7.0) / 4.0);
    }

    #[test]
    fn ties_share_ranks_and_missing_classes_leave_auc_undefined() {
        close(binary_auc(&[0.5, 0.5], &[true, false]).unwrap(), 0.5);
        assert_eq!(binary_auc(&[0.1, 0.9], &[true, true]), None);
    }
}
