//! One vocabulary of metric names. A name a person may type for a metric — in a training issue, a
//! tool's `metric`, a registry search — means the same metric everywhere: `f1`, `F1 score` and
//! `f1_macro` are one metric, the macro-averaged F1, whose value evaluation reports as `f1_macro`.

use crate::words::normalize;

/// A metric every tool knows by the same names.
#[derive(Debug, PartialEq)]
pub struct MetricName {
    /// The name people use and messages show (`f1`).
    pub name: &'static str,
    /// The key of its value in evaluation results and registry records (`f1_macro`).
    pub key: &'static str,
    /// The task whose models it scores.
    pub task: &'static str,
    pub lower_is_better: bool,
    /// The range a value (or a threshold) can take, and a phrase for messages.
    pub range: (f64, f64, &'static str),
    /// Other spellings, already normalised (see [`normalize`]).
    pub aliases: &'static [&'static str],
    /// What it measures, for documentation.
    pub meaning: &'static str,
}

const FRACTION: (f64, f64, &str) = (0.0, 1.0, "a fraction between 0 and 1");
const NON_NEGATIVE: (f64, f64, &str) = (0.0, f64::INFINITY, "0 or more");
const ANY: (f64, f64, &str) = (f64::NEG_INFINITY, f64::INFINITY, "a number");

const fn metric(
    name: &'static str,
    key: &'static str,
    task: &'static str,
    lower_is_better: bool,
    range: (f64, f64, &'static str),
    aliases: &'static [&'static str],
    meaning: &'static str,
) -> MetricName {
    MetricName {
        name,
        key,
        task,
        lower_is_better,
        range,
        aliases,
        meaning,
    }
}

/// Every metric, each task's default first.
#[rustfmt::skip]
pub static METRICS: &[MetricName] = &[
    metric("accuracy", "accuracy", "classification", false, FRACTION, &["acc", "accuracy_score"],
        "share of rows whose predicted class is right"),
    metric("f1", "f1_macro", "classification", false, FRACTION,
        &["f1_macro", "f1_score", "f1score", "f_1", "macro_f1", "f1_macro_average"],
        "F1, macro-averaged: the mean of the per-class F1 scores, every class counting the same"),
    metric("precision", "precision_macro", "classification", false, FRACTION,
        &["precision_macro", "macro_precision", "precision_score"],
        "precision, macro-averaged over the classes"),
    metric("recall", "recall_macro", "classification", false, FRACTION,
        &["recall_macro", "macro_recall", "recall_score", "sensitivity"],
        "recall, macro-averaged over the classes"),
    metric("roc_auc", "roc_auc", "classification", false, FRACTION,
        &["auc", "rocauc", "roc_auc_score", "auroc", "area_under_curve"],
        "area under the ROC curve (multi-class: one-vs-rest, macro-averaged)"),
    metric("f1_weighted", "f1_weighted", "classification", false, FRACTION, &["weighted_f1"],
        "F1 averaged over the classes weighted by their row counts"),
    metric("precision_weighted", "precision_weighted", "classification", false, FRACTION,
        &["weighted_precision"], "precision averaged over the classes weighted by their row counts"),
    metric("recall_weighted", "recall_weighted", "classification", false, FRACTION,
        &["weighted_recall"], "recall averaged over the classes weighted by their row counts"),
    metric("log_loss", "log_loss", "classification", true, NON_NEGATIVE,
        &["logloss", "cross_entropy", "neg_log_loss"],
        "cross-entropy of the predicted probabilities"),
    metric("r2", "r2", "regression", false, (f64::NEG_INFINITY, 1.0, "at most 1"),
        &["r_squared", "r^2", "r2_score", "rsquared", "coefficient_of_determination"],
        "coefficient of determination"),
    metric("rmse", "rmse", "regression", true, NON_NEGATIVE, &["root_mean_squared_error"],
        "root mean squared error"),
    metric("mae", "mae", "regression", true, NON_NEGATIVE, &["mean_absolute_error"],
        "mean absolute error"),
    metric("mse", "mse", "regression", true, NON_NEGATIVE, &["mean_squared_error"],
        "mean squared error"),
    metric("mape", "mape", "regression", true, NON_NEGATIVE,
        &["mean_absolute_percentage_error"], "mean absolute percentage error, as a fraction"),
    metric("silhouette", "silhouette", "clustering", false, (-1.0, 1.0, "between -1 and 1"),
        &["silhouette_score"], "mean silhouette coefficient"),
    metric("davies_bouldin", "davies_bouldin", "clustering", true, NON_NEGATIVE,
        &["davies_bouldin_score", "davies_bouldin_index", "dbi"], "Davies–Bouldin index"),
    metric("calinski_harabasz", "calinski_harabasz", "clustering", false, NON_NEGATIVE,
        &["calinski_harabasz_score", "variance_ratio"], "Calinski–Harabasz index"),
    metric("explained_variance", "explained_variance", "dimension_reduction", false, FRACTION,
        &["explained_variance_ratio"], "share of the variance the components keep"),
    metric("mean_reward", "mean_reward", "reinforcement", false, ANY,
        &["reward", "mean_episode_reward", "average_reward", "mean_return", "mean_episode_return"],
        "mean return of the evaluation episodes"),
];

/// The metric `name` stands for, by its name, key or any alias, in any spelling.
pub fn lookup(name: &str) -> Option<&'static MetricName> {
    let n = normalize(name);
    METRICS
        .iter()
        .find(|m| m.name == n || m.key == n || m.aliases.contains(&n.as_str()))
}

/// The metrics of `task`, its default first.
pub fn for_task(task: &str) -> impl Iterator<Item = &'static MetricName> {
    METRICS.iter().filter(move |m| m.task == task)
}

/// The default metric of `task` (classification: accuracy; regression: r2; …).
pub fn default_for(task: &str) -> Option<&'static MetricName> {
    for_task(task).next()
}

/// Every spelling accepted for the metrics of `task`: names, keys and aliases.
pub fn accepted_names(task: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for m in for_task(task) {
        for n in [m.name, m.key].into_iter().chain(m.aliases.iter().copied()) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The metric `name` of `task`, or a message naming the task's metrics.
pub fn resolve(name: &str, task: &str) -> Result<&'static MetricName, String> {
    let names = || {
        for_task(task)
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match lookup(name) {
        Some(m) if m.task == task => Ok(m),
        Some(m) => Err(format!(
            "`{name}` is a {} metric, not a {task} one; use one of {}",
            m.task,
            names()
        )),
        None => Err(format!(
            "`{name}` is not a {task} metric; use one of {}",
            names()
        )),
    }
}

/// The key under which `name`'s values are stored: the vocabulary's key for a known metric
/// (`F1` → `f1_macro`), else the name itself, so custom metrics keep their names.
pub fn storage_key(name: &str) -> String {
    lookup(name).map_or_else(|| name.to_string(), |m| m.key.to_string())
}

/// Whether a smaller value of `name` is better (false for metrics this vocabulary does not know).
pub fn lower_is_better(name: &str) -> bool {
    lookup(name).is_some_and(|m| m.lower_is_better)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_resolve_to_one_metric() {
        for s in [
            "f1", "F1", "f1_macro", "F1-score", "f1 score", "`f1`", "macro_f1",
        ] {
            assert_eq!(lookup(s).map(|m| m.key), Some("f1_macro"), "{s}");
        }
        assert_eq!(lookup("AUC").unwrap().key, "roc_auc");
        assert_eq!(lookup("R^2").unwrap().name, "r2");
        assert!(lookup("f2").is_none());
        assert_eq!(storage_key("Precision"), "precision_macro");
        assert_eq!(storage_key("my_custom_score"), "my_custom_score");
    }

    #[test]
    fn no_spelling_means_two_metrics() {
        let mut seen = std::collections::HashMap::new();
        for m in METRICS {
            for n in [m.name, m.key].into_iter().chain(m.aliases.iter().copied()) {
                assert_eq!(normalize(n), n, "{n} is not normalised");
                if let Some(other) = seen.insert(n, m.key) {
                    assert_eq!(other, m.key, "`{n}` names {other} and {}", m.key);
                }
            }
        }
    }

    #[test]
    fn resolution_checks_the_task() {
        assert_eq!(
            resolve("recall", "classification").unwrap().key,
            "recall_macro"
        );
        let e = resolve("rmse", "classification").unwrap_err();
        assert!(
            e.contains("regression metric") && e.contains("accuracy, f1"),
            "{e}"
        );
        let e = resolve("nonsense", "regression").unwrap_err();
        assert!(e.contains("r2, rmse, mae, mse, mape"), "{e}");
        assert_eq!(default_for("regression").unwrap().name, "r2");
        assert!(lower_is_better("RMSE") && !lower_is_better("accuracy"));
    }
}
