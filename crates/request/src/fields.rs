//! One parser per field. Each takes the value the issue gave (`None` when absent) and returns the
//! field, its default, or the problem with it. A field that depends on another takes it as an
//! argument: the algorithm and the metric must fit the task, the threshold the metric's range.
//! An argument is `None` when that field could not be read; its own problem is already reported,
//! so the dependent field then stays quiet rather than add a second complaint.

use std::collections::BTreeMap;

use mlops_core::metric_names;
use mlops_core::normalize_name as normalize;
use serde_json::Value;

use crate::request::{MetricGoal, NotificationChannel, Problem, TaskType, TuneRequest};
use crate::spelling::did_you_mean;

/// Retries an operator may approve when the issue does not say.
const DEFAULT_MAX_RETRY: u32 = 3;
const MAX_MAX_RETRY: i64 = 10;

/// A scalar as trimmed text; `None` for lists, mappings, null and empty text.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value as the author wrote it, for messages (text without JSON quotes).
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `dataset`: one `s3://` URI, `file://` URI or path. Required.
pub(crate) fn dataset(v: Option<&Value>) -> Result<String, Problem> {
    let problem = |m: String| Problem::new(Some("dataset"), m);
    let Some(v) = v else {
        return Err(problem("The dataset is missing: add `dataset:` with an `s3://` URI, a `file://` URI or a path, e.g. `dataset: s3://my-bucket/datasets/train.csv`.".into()));
    };
    let Some(d) = value_text(v) else {
        return Err(problem(format!(
            "`{}` is not a dataset location; give one URI or path.",
            show(v)
        )));
    };
    let scheme = d.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if d.chars().any(char::is_whitespace) {
        Err(problem(format!(
            "`{d}` contains spaces; give a single URI or path."
        )))
    } else if let Some(s) = scheme.filter(|s| s != "s3" && s != "file") {
        Err(problem(format!(
            "`{d}` uses `{s}://`, which cannot be read; use an `s3://` URI, a `file://` URI or a path."
        )))
    } else {
        Ok(d)
    }
}

/// `task_type`. When absent it is implied by an algorithm or a metric that belongs to one task
/// only (`kmeans`, `mae`); otherwise it is required.
pub(crate) fn task_type(
    v: Option<&Value>,
    algorithm: Option<&Value>,
    metric: Option<&Value>,
) -> Result<TaskType, Problem> {
    let problem = |m: String| Problem::new(Some("task_type"), m);
    match v {
        Some(v) => match value_text(v) {
            Some(s) => parse_task(&s).map_err(problem),
            None => Err(problem(format!(
                "`{}` is not a task type; use one word such as `classification`.",
                show(v)
            ))),
        },
        None => algorithm
            .and_then(value_text)
            .and_then(|a| task_of_algorithm(&canonical_algorithm(&a)))
            .or_else(|| metric.and_then(value_text).and_then(|m| task_of_metric(&canonical_metric(&m))))
            .ok_or_else(|| problem("The task type is missing: add `task_type:` with classification, regression, clustering, dimension_reduction or reinforcement.".into())),
    }
}

/// A task type by any of its usual names.
fn parse_task(s: &str) -> Result<TaskType, String> {
    let n = normalize(s);
    let t = match n.as_str() {
        "classification"
        | "classify"
        | "classifier"
        | "binary_classification"
        | "multiclass_classification"
        | "multi_class_classification"
        | "multiclass"
        | "supervised_classification" => TaskType::Classification,
        "regression" | "regress" | "regressor" | "supervised_regression" => TaskType::Regression,
        "clustering" | "cluster" | "unsupervised_clustering" => TaskType::Clustering,
        "dimension_reduction"
        | "dimensionality_reduction"
        | "dim_reduction"
        | "dimensionreduction"
        | "unsupervised_dimension_reduction" => TaskType::DimensionReduction,
        "reinforcement" | "reinforcement_learning" | "rl" => TaskType::Reinforcement,
        _ => {
            let names: Vec<&str> = TaskType::ALL.iter().map(|t| t.as_str()).collect();
            let hint = did_you_mean(&n, names.iter().copied());
            return Err(format!(
                "`{s}` is not a task type I know; {hint}use one of {}.",
                names.join(", ")
            ));
        }
    };
    Ok(t)
}

/// `target_column`: required for a supervised task, kept when given for another (e.g. to score
/// clusters against labels).
pub(crate) fn target_column(
    v: Option<&Value>,
    task: Option<TaskType>,
) -> Result<Option<String>, Problem> {
    let problem = |m: String| Problem::new(Some("target_column"), m);
    match (v, task) {
        (Some(v), _) => value_text(v)
            .map(Some)
            .ok_or_else(|| problem(format!("`{}` is not a column name.", show(v)))),
        (None, Some(t)) if t.supervised() => Err(problem(format!(
            "The target column is missing: {t} needs the column to predict, e.g. `target_column: churned`."
        ))),
        (None, _) => Ok(None),
    }
}

/// `algorithm`, as the training tools spell it; the task's first algorithm when absent. `Ok(None)`
/// when the task is unknown (already a problem).
pub(crate) fn algorithm(
    v: Option<&Value>,
    task: Option<TaskType>,
) -> Result<Option<String>, Problem> {
    let problem = |m: String| Problem::new(Some("algorithm"), m);
    let Some(v) = v else {
        return Ok(task.map(|t| t.algorithms()[0].to_string()));
    };
    let Some(text) = value_text(v) else {
        return Err(problem(format!("`{}` is not an algorithm name.", show(v))));
    };
    let Some(t) = task else { return Ok(None) };
    let a = canonical_algorithm(&text);
    if t.algorithms().contains(&a.as_str()) {
        return Ok(Some(a));
    }
    let choices = t.algorithms().join(", ");
    Err(problem(
        match TaskType::ALL
            .into_iter()
            .find(|o| o.algorithms().contains(&a.as_str()))
        {
            Some(other) => format!(
                "`{}` is a {other} algorithm, not a {t} one; for {t} use {choices}.",
                show(v)
            ),
            None => format!(
                "`{}` is not an algorithm I know; {}for {t} use {choices}.",
                show(v),
                did_you_mean(&a, t.algorithms().iter().copied())
            ),
        },
    ))
}

/// An algorithm's name as the training tools spell it, from its usual names and abbreviations.
fn canonical_algorithm(s: &str) -> String {
    let n = normalize(s);
    match n.as_str() {
        "rf"
        | "randomforest"
        | "random_forests"
        | "random_forest_classifier"
        | "random_forest_regressor"
        | "forest" => "random_forest".into(),
        "xgb"
        | "gbm"
        | "gbdt"
        | "gradient_boosting"
        | "gradient_boosted_trees"
        | "gradient_boosted_tree"
        | "boosting"
        | "xg_boost" => "xgboost".into(),
        "nn" | "mlp" | "neural_net" | "neuralnetwork" | "neural_networks" | "deep_learning" => {
            "neural_network".into()
        }
        "linear_regression" | "ols" | "linreg" => "linear".into(),
        "k_means" => "kmeans".into(),
        "t_sne" => "tsne".into(),
        _ => n,
    }
}

/// The task an algorithm implies, when exactly one task has it.
fn task_of_algorithm(alg: &str) -> Option<TaskType> {
    let owners: Vec<TaskType> = TaskType::ALL
        .into_iter()
        .filter(|t| t.algorithms().contains(&alg))
        .collect();
    (owners.len() == 1).then(|| owners[0])
}

/// `metric`, by the name people use (`f1`); the task's first metric when absent. `Ok(None)` when
/// the task is unknown (already a problem).
pub(crate) fn metric(v: Option<&Value>, task: Option<TaskType>) -> Result<Option<String>, Problem> {
    let problem = |m: String| Problem::new(Some("metric"), m);
    let Some(v) = v else {
        return Ok(task.map(|t| t.metrics()[0].to_string()));
    };
    let Some(text) = value_text(v) else {
        return Err(problem(format!("`{}` is not a metric name.", show(v))));
    };
    let Some(t) = task else { return Ok(None) };
    let m = canonical_metric(&text);
    if t.metrics().contains(&m.as_str()) {
        return Ok(Some(m));
    }
    Err(problem(format!(
        "`{}` is not a {t} metric; {}use one of {}.",
        show(v),
        did_you_mean(&m, t.metrics()),
        t.metrics().join(", ")
    )))
}

/// A metric's shared name ([`metric_names`]); an unknown one normalised.
fn canonical_metric(s: &str) -> String {
    metric_names::lookup(s).map_or_else(|| normalize(s), |m| m.name.to_string())
}

/// The task a metric scores.
fn task_of_metric(metric: &str) -> Option<TaskType> {
    let task = metric_names::lookup(metric)?.task;
    TaskType::ALL.into_iter().find(|t| t.as_str() == task)
}

/// Whether the metric is maximised or minimised.
pub(crate) fn metric_goal(metric: &str) -> MetricGoal {
    if metric_names::lower_is_better(metric) {
        MetricGoal::Minimize
    } else {
        MetricGoal::Maximize
    }
}

/// `threshold`: the value the metric must reach, within the metric's range (`metric` is `None`
/// when it could not be read). Required.
pub(crate) fn threshold(v: Option<&Value>, metric: Option<&str>) -> Result<f64, Problem> {
    let problem = |m: String| Problem::new(Some("threshold"), m);
    let Some(v) = v else {
        return Err(problem(format!(
            "The threshold is missing: add the value {} must reach, e.g. `threshold: 0.85`.",
            metric.unwrap_or("the metric")
        )));
    };
    let x = parse_threshold(v).map_err(problem)?;
    let m = metric.unwrap_or("");
    let (lo, hi, phrase) =
        metric_names::lookup(m).map_or((f64::NEG_INFINITY, f64::INFINITY, "a number"), |m| m.range);
    if x < lo || x > hi {
        let extra = if hi == 1.0 && x > 1.0 && x <= 100.0 {
            format!(" Write {} (or {x}%).", x / 100.0)
        } else {
            String::new()
        };
        return Err(problem(format!(
            "{x} is out of range: {m} thresholds are {phrase}.{extra}"
        )));
    }
    Ok(x)
}

/// A finite number: `0.85`, `85%`, or one number followed by words (`0.9 (accuracy)`).
fn parse_threshold(v: &Value) -> Result<f64, String> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let number = |s: &str| match s.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().ok().map(|x| x / 100.0),
                None => s.parse::<f64>().ok(),
            };
            let s = s.trim();
            number(s).or_else(|| {
                // `0.9 (accuracy)`, `85% or better`: one number followed by words.
                let mut words = s.split_whitespace();
                let first = number(words.next()?)?;
                words
                    .all(|w| !w.chars().any(|c| c.is_ascii_digit()))
                    .then_some(first)
            })
        }
        _ => None,
    };
    match x {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(format!(
            "`{}` is not a number; write the value the metric must reach, e.g. `threshold: 0.85` (or `85%`).",
            show(v)
        )),
    }
}

/// `max_retry`: a whole number from 0 to 10; 3 when absent.
pub(crate) fn max_retry(v: Option<&Value>) -> Result<u32, Problem> {
    let problem = |m: String| Problem::new(Some("max_retry"), m);
    let Some(v) = v else {
        return Ok(DEFAULT_MAX_RETRY);
    };
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e9)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        None => Err(problem(format!(
            "`{}` is not a whole number; write e.g. `max_retry: 3`.",
            show(v)
        ))),
        Some(n) if n < 0 => Err(problem(format!(
            "max_retry is {n}, but it cannot be negative; use 0 for no retries."
        ))),
        Some(n) if n > MAX_MAX_RETRY => Err(problem(format!(
            "max_retry is {n}; at most {MAX_MAX_RETRY} retries are allowed."
        ))),
        Some(n) => Ok(n as u32),
    }
}

/// `hyperparameters`: `name: value` pairs, names normalised; none when absent.
pub(crate) fn hyperparameters(v: Option<&Value>) -> Result<BTreeMap<String, Value>, Problem> {
    match v {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m.iter().map(|(k, v)| (normalize(k), v.clone())).collect()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(BTreeMap::new()),
        Some(v) => Err(Problem::new(
            Some("hyperparameters"),
            format!(
                "`{}` is not a set of `name: value` pairs; write them indented under `hyperparameters:` or as `{{n_estimators: 200, max_depth: 12}}`.",
                show(v)
            ),
        )),
    }
}

/// Most trials a `tune:` block may ask for.
const MAX_TUNE_TRIALS: u64 = 1000;
/// The longest time limit of a `tune:` block: 30 days.
const MAX_TUNE_SECONDS: u64 = 30 * 24 * 3600;

/// `tune`: `n_trials`, `search_space` (per setting a range or a list of choices) and
/// `timeout_seconds`, for a classifier or a regressor; none when absent. The ranges themselves
/// are checked against the algorithm when the search runs.
pub(crate) fn tune(
    v: Option<&Value>,
    task: Option<TaskType>,
) -> Result<Option<TuneRequest>, Problem> {
    let problem = |m: String| Problem::new(Some("tune"), m);
    let example = "e.g.\n```yaml\ntune:\n  n_trials: 30\n  search_space:\n    max_depth: {type: int, low: 2, high: 12}\n    learning_rate: {type: float, low: 0.01, high: 0.3, log: true}\n```";
    let m = match v {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(problem(format!(
                "`{}` is not a tuning block; write `n_trials` and `search_space` indented under `tune:`, {example}",
                show(v)
            )));
        }
    };
    if let Some(t) = task.filter(|t| !t.supervised()) {
        return Err(problem(format!(
            "tuning searches classifiers and regressors; this issue asks for {t}. Remove the `tune:` block."
        )));
    }
    let mut n_trials = 20;
    let mut search_space = None;
    let mut timeout_seconds = None;
    for (key, value) in m {
        match normalize(key).as_str() {
            "n_trials" | "trials" => match value.as_u64() {
                Some(n) if (1..=MAX_TUNE_TRIALS).contains(&n) => n_trials = n as u32,
                _ => {
                    return Err(problem(format!(
                        "tune.n_trials is `{}`; give a whole number from 1 to {MAX_TUNE_TRIALS}.",
                        show(value)
                    )));
                }
            },
            "search_space" | "space" => match value {
                Value::Object(s) if !s.is_empty() => {
                    search_space = Some(s.iter().map(|(k, v)| (normalize(k), v.clone())).collect())
                }
                _ => {
                    return Err(problem(format!(
                        "tune.search_space is `{}`; give each searched setting its range or choices, {example}",
                        show(value)
                    )));
                }
            },
            "timeout_seconds" | "timeout" => match value.as_u64() {
                Some(s) if (1..=MAX_TUNE_SECONDS).contains(&s) => timeout_seconds = Some(s),
                _ => {
                    return Err(problem(format!(
                        "tune.timeout_seconds is `{}`; give a whole number of seconds from 1 to {MAX_TUNE_SECONDS} (30 days).",
                        show(value)
                    )));
                }
            },
            other => {
                return Err(problem(format!(
                    "tune has no setting `{other}`; it takes n_trials, search_space and timeout_seconds."
                )));
            }
        }
    }
    let Some(search_space) = search_space else {
        return Err(problem(format!(
            "the tune block needs a search_space, {example}"
        )));
    };
    Ok(Some(TuneRequest {
        n_trials,
        search_space,
        timeout_seconds,
    }))
}

/// `notify`: channels as a list, a comma-separated line or a mapping, each `kind` or
/// `kind:target`; a comment on the issue when absent. Every unknown channel is a problem.
pub(crate) fn notify(v: Option<&Value>) -> Result<Vec<NotificationChannel>, Vec<Problem>> {
    const KINDS: [&str; 5] = ["github", "slack", "email", "teams", "discord"];
    let problem = |m: String| Problem::new(Some("notify"), m);
    let items: Vec<Value> = match v {
        None => {
            return Ok(vec![NotificationChannel {
                kind: "github".into(),
                target: None,
            }]);
        }
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => s
            .split([',', ';'])
            .map(|x| Value::String(x.trim().to_string()))
            .filter(|x| x.as_str().is_some_and(|s| !s.is_empty()))
            .collect(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Value::String(format!("{k}:{}", value_text(v).unwrap_or_default())))
            .collect(),
        Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(vec![problem(format!(
                "`{}` is not a list of channels; write e.g. `notify: [github, slack]`.",
                show(other)
            ))]);
        }
    };
    let mut channels: Vec<NotificationChannel> = Vec::new();
    let mut problems = Vec::new();
    for item in items {
        let text = match &item {
            Value::Object(m) if m.len() == 1 => m
                .iter()
                .map(|(k, v)| format!("{k}:{}", value_text(v).unwrap_or_default()))
                .next()
                .unwrap_or_default(),
            other => value_text(other).unwrap_or_default(),
        };
        let (kind, target) = match text.split_once(':') {
            Some((k, t)) => (
                k.trim(),
                Some(t.trim().to_string()).filter(|t| !t.is_empty()),
            ),
            None => (text.trim(), None),
        };
        let n = normalize(kind);
        let n = match n.as_str() {
            "mail" | "e_mail" | "smtp" => "email".to_string(),
            "ms_teams" | "microsoft_teams" | "msteams" => "teams".to_string(),
            "gh" | "issue" | "issue_comment" | "github_comment" => "github".to_string(),
            _ => n,
        };
        if KINDS.contains(&n.as_str()) {
            if !channels.iter().any(|c| c.kind == n && c.target == target) {
                channels.push(NotificationChannel { kind: n, target });
            }
        } else {
            problems.push(problem(format!(
                "`{text}` is not a notification channel; {}use github, slack, email, teams or discord (optionally with a target, e.g. `slack:#ml-alerts`).",
                did_you_mean(&n, KINDS)
            )));
        }
    }
    if problems.is_empty() {
        Ok(channels)
    } else {
        Err(problems)
    }
}

/// `model_name`: up to 128 letters, digits, `-`, `_` or `.`. Optional.
pub(crate) fn model_name(v: Option<&Value>) -> Result<Option<String>, Problem> {
    let Some(v) = v else { return Ok(None) };
    match value_text(v) {
        Some(n)
            if n.len() <= 128
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Ok(Some(n))
        }
        _ => Err(Problem::new(
            Some("model_name"),
            format!(
                "`{}` is not a valid model name; use up to 128 letters, digits, `-`, `_` or `.`.",
                show(v)
            ),
        )),
    }
}

/// `seed`: a whole number 0 or more. Optional.
pub(crate) fn seed(v: Option<&Value>) -> Result<Option<u64>, Problem> {
    let Some(v) = v else { return Ok(None) };
    match v.as_u64().or_else(|| value_text(v)?.parse().ok()) {
        Some(s) => Ok(Some(s)),
        None => Err(Problem::new(
            Some("seed"),
            format!("`{}` is not a whole number 0 or more.", show(v)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{has, ok, problems};
    use crate::{NotificationChannel, TaskType};

    #[test]
    fn a_tune_block_is_read_in_a_yaml_block_and_in_lines() {
        let r = ok(
            "```yaml\ndataset: d.csv\ntarget_column: y\ntask_type: classification\nalgorithm: xgboost\nthreshold: 0.8\ntune:\n  n_trials: 12\n  timeout_seconds: 600\n  search_space:\n    max_depth: {type: int, low: 2, high: 8}\n    learning_rate: {type: float, low: 0.01, high: 0.3, log: true}\n```",
        );
        let tune = r.tune.unwrap();
        assert_eq!(tune.n_trials, 12);
        assert_eq!(tune.timeout_seconds, Some(600));
        assert_eq!(tune.search_space["max_depth"]["high"], serde_json::json!(8));
        let r = ok(
            "dataset: d.csv\ntarget: y\ntask: regression\nthreshold: 0.5\ntuning:\n  search_space:\n    alpha: [0.1, 1.0]\n",
        );
        assert_eq!(r.tune.unwrap().n_trials, 20, "the default");
        assert_eq!(
            ok("dataset: d.csv\ntarget: y\ntask: regression\nthreshold: 0.5\n").tune,
            None
        );
    }

    #[test]
    fn a_bad_tune_block_is_a_problem_naming_it() {
        let base = "```yaml\ndataset: d.csv\ntarget_column: y\ntask_type: classification\nthreshold: 0.8\n";
        for (tune, expected) in [
            ("tune: 30", "is not a tuning block"),
            (
                "tune:\n  n_trials: 0\n  search_space: {a: [1, 2]}",
                "tune.n_trials is `0`",
            ),
            ("tune:\n  n_trials: 5", "needs a search_space"),
            ("tune:\n  search_space: {}", "tune.search_space"),
            (
                "tune:\n  search_space: {a: [1]}\n  sampler: grid",
                "no setting `sampler`",
            ),
        ] {
            let p = problems(&format!("{base}{tune}\n```"));
            assert!(has(&p, Some("tune"), expected), "{tune}: {p:#?}");
        }
        let p = problems(
            "```yaml\ndataset: d.csv\ntask_type: clustering\nthreshold: 0.3\ntune:\n  search_space: {eps: [0.1, 0.5]}\n```",
        );
        assert!(
            has(&p, Some("tune"), "classifiers and regressors"),
            "{p:#?}"
        );
    }

    #[test]
    fn defaults_fill_what_is_optional() {
        let r = ok(
            "```yml\ndataset: data/iris.csv\ntarget_column: species\ntask_type: classification\nthreshold: 0.9\n```",
        );
        assert_eq!(r.algorithm, "random_forest");
        assert_eq!(r.metric, "accuracy");
        assert_eq!(r.max_retry, 3);
        assert_eq!(
            r.notify,
            vec![NotificationChannel {
                kind: "github".into(),
                target: None
            }]
        );
        assert!(r.hyperparameters.is_empty());
    }

    #[test]
    fn task_type_inferred_from_algorithm_or_metric() {
        let r = ok("```yaml\ndataset: d.csv\nalgorithm: k-means\nthreshold: 0.4\n```");
        assert_eq!(r.task_type, TaskType::Clustering);
        assert_eq!(r.metric, "silhouette");
        assert_eq!(r.target_column, None);
        let r = ok("```yaml\ndataset: d.csv\ntarget_column: y\nmetric: mae\nthreshold: 3\n```");
        assert_eq!(r.task_type, TaskType::Regression);
    }

    #[test]
    fn supervised_task_needs_a_target_and_metric_must_fit_the_task() {
        let p = problems(
            "```yaml\ndataset: d.csv\ntask_type: regression\nmetric: accuracy\nthreshold: 0.9\n```",
        );
        assert!(has(&p, Some("target_column"), "missing"), "{p:#?}");
        assert!(has(&p, Some("metric"), "not a regression metric"), "{p:#?}");
    }

    #[test]
    fn algorithm_of_the_wrong_task() {
        let p = problems(
            "```yaml\ndataset: d.csv\ntarget_column: y\ntask_type: classification\nalgorithm: kmeans\nthreshold: 0.9\n```",
        );
        assert!(
            has(
                &p,
                Some("algorithm"),
                "`kmeans` is a clustering algorithm, not a classification one"
            ),
            "{p:#?}"
        );
        let p = problems(
            "```yaml\ndataset: d.csv\ntarget_column: y\ntask_type: classification\nalgorithm: randm_forest\nthreshold: 0.9\n```",
        );
        assert!(
            has(&p, Some("algorithm"), "did you mean `random_forest`"),
            "{p:#?}"
        );
    }

    #[test]
    fn reinforcement_and_dimension_reduction_need_no_target() {
        let r = ok(
            "```yaml\ndataset: envs/cartpole.json\ntask_type: RL\nalgorithm: DQN\nmetric: mean reward\nthreshold: 475\n```",
        );
        assert_eq!(r.task_type, TaskType::Reinforcement);
        assert_eq!(r.algorithm, "dqn");
        assert_eq!(r.metric, "mean_reward");
        let r = ok(
            "```yaml\ndataset: d.csv\ntask_type: dimensionality reduction\nalgorithm: t-SNE\nthreshold: 0.5\n```",
        );
        assert_eq!(r.task_type, TaskType::DimensionReduction);
        assert_eq!(r.algorithm, "tsne");
    }

    #[test]
    fn threshold_out_of_range_and_percent_hint() {
        let p = problems(
            "```yaml\ndataset: d.csv\ntarget_column: y\ntask_type: classification\nmetric: accuracy\nthreshold: 90\n```",
        );
        assert!(
            has(
                &p,
                Some("threshold"),
                "a fraction between 0 and 1. Write 0.9"
            ),
            "{p:#?}"
        );
        let p = problems(
            "```yaml\ndataset: d.csv\ntarget_column: y\ntask_type: regression\nmetric: rmse\nthreshold: -2\n```",
        );
        assert!(has(&p, Some("threshold"), "0 or more"), "{p:#?}");
    }

    #[test]
    fn threshold_with_words_after_the_number() {
        let base = "dataset: d.csv\ntarget: y\ntask: classification\n";
        let r = ok(&format!("{base}threshold: 0.9 (accuracy)"));
        assert_eq!(r.threshold, 0.9);
        let r = ok(&format!("{base}threshold: 85% or better"));
        assert!((r.threshold - 0.85).abs() < 1e-12);
        let p = problems(&format!("{base}threshold: between 0.8 and 0.9"));
        assert!(has(&p, Some("threshold"), "not a number"), "{p:#?}");
        let p = problems(&format!("{base}threshold: 0.8 to 0.9"));
        assert!(has(&p, Some("threshold"), "not a number"), "{p:#?}");
    }

    #[test]
    fn bad_dataset_and_channels_and_retry_limit() {
        let p = problems(
            "```yaml\ndataset: gs://bucket/x.csv\ntarget_column: y\ntask_type: classification\nthreshold: 0.9\nmax_retry: 50\nnotify: [slak, pager]\n```",
        );
        assert!(has(&p, Some("dataset"), "`gs://`"), "{p:#?}");
        assert!(has(&p, Some("max_retry"), "at most 10"), "{p:#?}");
        assert!(has(&p, Some("notify"), "did you mean `slack`"), "{p:#?}");
        assert!(
            has(&p, Some("notify"), "`pager` is not a notification channel"),
            "{p:#?}"
        );
    }
}
