//! The issue parser: an issue's title and body → a typed [`TrainingRequest`], or every problem found.
//!
//! Accepted formats, tried in this order:
//! 1. a fenced ```` ```yaml ```` (or `yml`, or unlabelled) block holding a mapping, anywhere in the
//!    body, also inside a collapsed `<details>` block. Every key in it must be known.
//! 2. otherwise, `key: value` lines anywhere in the body (list markers, `**bold**` keys and
//!    backticks are tolerated), and GitHub issue-form sections (`### Dataset` followed by the
//!    value). Lines whose key is not a known key are taken as prose and ignored, unless the key is
//!    close to a known one (a likely typo), which is reported with a suggestion.
//!
//! Keys are matched ignoring case, spaces and `-` (`Target Column` = `target_column`), and a few
//! synonyms are accepted (`task` = `task_type`, `max_retries` = `max_retry`, ...). Every problem is
//! collected, as a plain sentence, so one comment can tell the author everything to fix.

use std::collections::BTreeMap;
use std::fmt;

use mlops_core::metric_names;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kind of learning task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    Classification,
    Regression,
    Clustering,
    DimensionReduction,
    Reinforcement,
}

impl TaskType {
    pub const ALL: [TaskType; 5] = [
        TaskType::Classification,
        TaskType::Regression,
        TaskType::Clustering,
        TaskType::DimensionReduction,
        TaskType::Reinforcement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Classification => "classification",
            TaskType::Regression => "regression",
            TaskType::Clustering => "clustering",
            TaskType::DimensionReduction => "dimension_reduction",
            TaskType::Reinforcement => "reinforcement",
        }
    }

    /// Algorithms of this task; the first is the default.
    pub fn algorithms(self) -> &'static [&'static str] {
        match self {
            TaskType::Classification => &["random_forest", "xgboost", "neural_network"],
            TaskType::Regression => &["linear", "xgboost", "neural_network"],
            TaskType::Clustering => &["kmeans", "dbscan", "autoencoder"],
            TaskType::DimensionReduction => &["pca", "tsne"],
            TaskType::Reinforcement => &["ppo", "dqn", "a3c"],
        }
    }

    /// Metrics of this task, by the names people use; the first is the default. The vocabulary
    /// ([`mlops_core::metric_names`]) is the one every tool shares.
    pub fn metrics(self) -> Vec<&'static str> {
        metric_names::for_task(self.as_str())
            .map(|m| m.name)
            .collect()
    }

    /// Whether a target column is needed.
    pub fn supervised(self) -> bool {
        matches!(self, TaskType::Classification | TaskType::Regression)
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a higher or a lower metric value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricGoal {
    /// Passes when metric ≥ threshold.
    Maximize,
    /// Passes when metric ≤ threshold.
    Minimize,
}

impl MetricGoal {
    /// Whether `value` meets `threshold`.
    pub fn passes(self, value: f64, threshold: f64) -> bool {
        match self {
            MetricGoal::Maximize => value >= threshold,
            MetricGoal::Minimize => value <= threshold,
        }
    }
}

/// Where to send notifications: a channel kind and an optional target (`#ml-alerts`, an address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationChannel {
    /// github, slack, email, teams or discord.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The training parameters of an issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrainingRequest {
    /// The issue title.
    pub title: String,
    /// Dataset URI or path (`s3://...`, `file://...`, or a path).
    pub dataset: String,
    /// Column to predict: required for classification and regression, optional otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_column: Option<String>,
    pub task_type: TaskType,
    /// Algorithm name as the training tools spell it (e.g. `random_forest`).
    pub algorithm: String,
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, Value>,
    /// Metric judged against the threshold (e.g. `accuracy`).
    pub metric: String,
    pub metric_goal: MetricGoal,
    pub threshold: f64,
    /// How many retries an operator may approve (default 3).
    pub max_retry: u32,
    /// Notification channels (default: a comment on the issue).
    pub notify: Vec<NotificationChannel>,
    /// Name to register the model under, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Which format the parameters were found in: `yaml_block` or `key_value_lines`.
    pub source: String,
}

/// One thing wrong with an issue, as a plain sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// The field concerned (`dataset`, `threshold`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    fn new(field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

const DEFAULT_MAX_RETRY: u32 = 3;
const MAX_MAX_RETRY: i64 = 10;

/// Canonical keys with their accepted synonyms (already normalised).
const KEYS: &[(&str, &[&str])] = &[
    (
        "dataset",
        &[
            "dataset_uri",
            "dataset_path",
            "dataset_url",
            "dataset_s3_uri",
            "data",
            "data_uri",
            "data_path",
            "training_data",
        ],
    ),
    (
        "target_column",
        &[
            "target",
            "target_col",
            "label_column",
            "label_col",
            "target_variable",
        ],
    ),
    ("task_type", &["task", "problem_type", "task_kind"]),
    (
        "algorithm",
        &["algo", "model", "model_type", "estimator", "algorithm_name"],
    ),
    (
        "hyperparameters",
        &["hyperparams", "hyper_parameters", "params", "parameters"],
    ),
    (
        "metric",
        &[
            "evaluation_metric",
            "eval_metric",
            "metric_name",
            "target_metric",
        ],
    ),
    (
        "threshold",
        &["metric_threshold", "min_score", "target_score"],
    ),
    (
        "max_retry",
        &["max_retries", "retries", "retry_limit", "max_retry_count"],
    ),
    (
        "notify",
        &[
            "notifications",
            "notification",
            "notification_channels",
            "notify_channels",
            "channels",
        ],
    ),
    ("model_name", &["registered_model_name", "registered_model"]),
    ("seed", &["random_seed", "random_state"]),
];

const EXAMPLE: &str = "dataset: s3://my-bucket/datasets/churn.csv
target_column: churned
task_type: classification
algorithm: random_forest
hyperparameters:
  n_estimators: 200
  max_depth: 12
metric: accuracy
threshold: 0.85
max_retry: 3
notify: [github, slack]";

/// Lower-case, `-`/space/`.` → `_`, markdown emphasis and backticks removed.
fn normalize(s: &str) -> String {
    let s = s
        .trim()
        .trim_matches(|c| c == '*' || c == '`' || c == '"' || c == '\'');
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c == ' ' || c == '-' || c == '.' || c == '\t' {
            '_'
        } else {
            c
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('_').to_string()
}

fn canonical_key(norm: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|(k, syn)| *k == norm || syn.contains(&norm))
        .map(|(k, _)| *k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `word`, when close enough to be a typo.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len().min(word.len()) / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A known key close to `norm` (for "did you mean"). `with_synonyms: false` compares with the
/// canonical names only (used for prose lines, where `Date:` must not suggest `data`).
fn suggest_key(norm: &str, with_synonyms: bool) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for (k, syn) in KEYS {
        let syn: &[&str] = if with_synonyms { syn } else { &[] };
        for cand in std::iter::once(k).chain(syn.iter()) {
            let d = edit_distance(norm, cand);
            if d > 0
                && d <= 2.max(cand.len().min(norm.len()) / 4)
                && best.is_none_or(|(bd, _)| d < bd)
            {
                best = Some((d, k));
            }
        }
    }
    best.map(|(_, k)| k)
}

fn known_keys_list() -> String {
    KEYS.iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fenced code block.
struct Block {
    lang: String,
    content: String,
    /// Normalised text of a `#` heading just above it (only blank lines between).
    heading: Option<String>,
}

/// Splits the body into fenced blocks and the lines outside them.
fn scan(body: &str) -> (Vec<Block>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut lines = Vec::new();
    // An open fence: its character, length, language, lines so far, and the heading above it.
    type OpenFence = (char, usize, String, Vec<String>, Option<String>);
    let mut open: Option<OpenFence> = None;
    let mut last_heading: Option<String> = None;
    for raw in body.lines() {
        let line = raw.trim_end_matches('\r');
        let t = line.trim_start();
        let fence = |t: &str| -> Option<(char, usize)> {
            let c = t.chars().next()?;
            if c != '`' && c != '~' {
                return None;
            }
            let n = t.chars().take_while(|x| *x == c).count();
            (n >= 3).then_some((c, n))
        };
        match &mut open {
            Some((c, n, lang, content, heading)) => {
                if let Some((c2, n2)) = fence(t)
                    && c2 == *c
                    && n2 >= *n
                    && t.trim_start_matches(c2).trim().is_empty()
                {
                    blocks.push(Block {
                        lang: std::mem::take(lang),
                        content: dedent(content),
                        heading: heading.take(),
                    });
                    open = None;
                } else {
                    content.push(line.to_string());
                }
            }
            None => {
                if let Some((c, n)) = fence(t) {
                    let lang = t.trim_start_matches(c).trim().to_ascii_lowercase();
                    let lang = lang
                        .split(|x: char| x.is_whitespace() || x == '{' || x == ',')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    open = Some((c, n, lang, Vec::new(), last_heading.take()));
                } else {
                    if let Some(h) = heading_text(t) {
                        last_heading = Some(normalize(h));
                    } else if !t.is_empty() {
                        last_heading = None;
                    }
                    lines.push(line.to_string());
                }
            }
        }
    }
    // An unclosed fence: take what it has.
    if let Some((_, _, lang, content, heading)) = open {
        blocks.push(Block {
            lang,
            content: dedent(&content),
            heading,
        });
    }
    (blocks, lines)
}

fn heading_text(t: &str) -> Option<&str> {
    let hashes = t.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') {
        Some(t[hashes..].trim())
    } else {
        None
    }
}

fn dedent(lines: &[String]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| {
            // Indentation may hold multi-byte whitespace: cut only at a character boundary.
            if l.is_char_boundary(indent) && l[..indent].chars().all(char::is_whitespace) {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One `key: value` found in the issue.
struct Entry {
    /// As written (for messages).
    raw_key: String,
    value: Value,
}

fn parse_yaml(text: &str) -> Result<Value, String> {
    serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// A YAML scalar or flow value; the trimmed text when it is not valid YAML.
fn parse_value(text: &str) -> Value {
    let t = text.trim();
    let t = t
        .strip_prefix('`')
        .and_then(|x| x.strip_suffix('`'))
        .unwrap_or(t)
        .trim();
    if t.is_empty() {
        return Value::Null;
    }
    match parse_yaml(t) {
        Ok(Value::Object(_)) if !t.starts_with('{') => Value::String(t.to_string()),
        Ok(v) => v,
        Err(_) => Value::String(t.to_string()),
    }
}

/// `key` of a `key: value` line (markdown list markers, quotes, bold and backticks removed), and
/// the rest, or `None` when the line is not shaped like one.
fn split_kv(line: &str) -> Option<(String, String, usize)> {
    let indent = line.len() - line.trim_start().len();
    let mut t = line.trim();
    t = t.trim_start_matches('>').trim_start();
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = t.strip_prefix(marker) {
            t = rest.trim_start();
        }
    }
    // `1. key: value`
    if let Some(pos) = t.find(". ")
        && pos > 0
        && t[..pos].bytes().all(|b| b.is_ascii_digit())
    {
        t = t[pos + 2..].trim_start();
    }
    let colon = t.find(':')?;
    let (mut key, mut rest) = (t[..colon].trim(), t[colon + 1..].to_string());
    // `**Key:** value` puts the colon inside the emphasis.
    if let Some(r) = rest.strip_prefix("**") {
        rest = r.to_string();
    }
    if let Some(r) = rest.strip_prefix('`') {
        // `key`: value is handled by trimming the key; a backtick after the colon belongs to the value.
        rest = format!("`{r}");
    }
    key = key.trim_matches(|c| c == '*' || c == '`' || c == '_' || c == '"');
    if rest.starts_with("//") {
        return None; // a URL, not a key
    }
    if key.is_empty()
        || key.len() > 40
        || !key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-.".contains(c))
        || key.split_whitespace().count() > 4
    {
        return None;
    }
    Some((key.to_string(), rest.trim().to_string(), indent))
}

/// Entries from `key: value` lines and `### Heading` sections.
fn entries_from_lines(
    lines: &[String],
    blocks: &[Block],
    problems: &mut Vec<Problem>,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        let t = line.trim();
        // Issue-form section: `### Dataset` then the value on the next non-empty lines.
        if let Some(h) = heading_text(t) {
            let norm = normalize(h);
            if let Some(key) = canonical_key(&norm) {
                let mut j = i + 1;
                let mut value_lines = Vec::new();
                while j < lines.len() && heading_text(lines[j].trim()).is_none() {
                    value_lines.push(lines[j].clone());
                    j += 1;
                }
                let text = value_lines.join("\n");
                let text = text.trim();
                if !text.is_empty() && text != "_No response_" {
                    let value = if key == "hyperparameters" || key == "notify" {
                        parse_yaml(&dedent(&value_lines)).unwrap_or(Value::String(text.into()))
                    } else {
                        parse_value(text)
                    };
                    entries.push(Entry {
                        raw_key: h.to_string(),
                        value,
                    });
                } else if let Some(b) = blocks
                    .iter()
                    .find(|b| b.heading.as_deref() == Some(norm.as_str()))
                {
                    entries.push(Entry {
                        raw_key: h.to_string(),
                        value: parse_yaml(&b.content)
                            .unwrap_or_else(|_| Value::String(b.content.clone())),
                    });
                }
                i = j;
                continue;
            }
            i += 1;
            continue;
        }
        let Some((key, rest, indent)) = split_kv(line) else {
            i += 1;
            continue;
        };
        let norm = normalize(&key);
        if canonical_key(&norm).is_none() {
            if let Some(s) = suggest_key(&norm, false) {
                problems.push(Problem::new(
                    Some(s),
                    format!("`{key}` is not a known parameter; did you mean `{s}`?"),
                ));
            }
            i += 1;
            continue;
        }
        if rest.is_empty() {
            // A nested block: the more-indented lines (or `- item` lines) that follow.
            let mut j = i + 1;
            let mut nested = Vec::new();
            while j < lines.len() {
                let l = &lines[j];
                let lt = l.trim_start();
                let li = l.len() - lt.len();
                if lt.is_empty() || !(li > indent || lt.starts_with("- ")) {
                    break;
                }
                nested.push(l.clone());
                j += 1;
            }
            let value = if nested.is_empty() {
                Value::Null
            } else {
                let text = dedent(&nested);
                parse_yaml(&text).unwrap_or(Value::String(text))
            };
            entries.push(Entry {
                raw_key: key,
                value,
            });
            i = j;
            continue;
        }
        entries.push(Entry {
            raw_key: key,
            value: parse_value(&rest),
        });
        i += 1;
    }
    entries
}

/// Finds the parameters: a YAML block, or else `key: value` lines. Returns the entries, the
/// format's name, and the problems met while reading.
fn extract(body: &str) -> (Vec<Entry>, &'static str, Vec<Problem>) {
    let (blocks, lines) = scan(body);
    let mut problems = Vec::new();
    let is_section = |b: &Block| b.heading.as_deref().and_then(canonical_key).is_some();
    let yaml_block = blocks
        .iter()
        .find(|b| (b.lang == "yaml" || b.lang == "yml") && !is_section(b))
        .or_else(|| {
            blocks.iter().find(|b| {
                (b.lang.is_empty() || b.lang == "text") && !is_section(b) && {
                    matches!(parse_yaml(&b.content), Ok(Value::Object(m))
                        if m.keys().any(|k| canonical_key(&normalize(k)).is_some()))
                }
            })
        });
    if let Some(b) = yaml_block {
        match parse_yaml(&b.content) {
            Ok(Value::Object(map)) => {
                let entries = map
                    .into_iter()
                    .map(|(k, v)| Entry { raw_key: k, value: v })
                    .collect();
                return (entries, "yaml_block", problems);
            }
            Ok(Value::Null) => problems.push(Problem::new(
                None,
                "The YAML block is empty: put the parameters in it as `key: value` lines.",
            )),
            Ok(_) => problems.push(Problem::new(
                None,
                "The YAML block must be a list of `key: value` lines (a mapping), not a single value or a list.",
            )),
            Err(e) => problems.push(Problem::new(
                None,
                format!(
                    "The YAML block could not be read ({e}). Check the indentation and that every line is `key: value`; quote values that contain `: ` or start with `{{`, `[`, `*` or `&`."
                ),
            )),
        }
        return (Vec::new(), "yaml_block", problems);
    }
    let entries = entries_from_lines(&lines, &blocks, &mut problems);
    (entries, "key_value_lines", problems)
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

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
            let hint = closest(&n, names.iter().copied())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            return Err(format!(
                "`{s}` is not a task type I know; {hint}use one of {}.",
                names.join(", ")
            ));
        }
    };
    Ok(t)
}

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

fn canonical_metric(s: &str) -> String {
    metric_names::lookup(s).map_or_else(|| normalize(s), |m| m.name.to_string())
}

fn metric_goal(metric: &str) -> MetricGoal {
    if metric_names::lower_is_better(metric) {
        MetricGoal::Minimize
    } else {
        MetricGoal::Maximize
    }
}

/// Valid range of a metric's threshold, with a phrase for messages.
fn metric_range(metric: &str) -> (f64, f64, &'static str) {
    metric_names::lookup(metric).map_or((f64::NEG_INFINITY, f64::INFINITY, "a number"), |m| m.range)
}

fn task_of_algorithm(alg: &str) -> Option<TaskType> {
    let owners: Vec<TaskType> = TaskType::ALL
        .into_iter()
        .filter(|t| t.algorithms().contains(&alg))
        .collect();
    (owners.len() == 1).then(|| owners[0])
}

fn task_of_metric(metric: &str) -> Option<TaskType> {
    let task = metric_names::lookup(metric)?.task;
    TaskType::ALL.into_iter().find(|t| t.as_str() == task)
}

fn parse_notify(v: &Value, problems: &mut Vec<Problem>) -> Vec<NotificationChannel> {
    const KINDS: [&str; 5] = ["github", "slack", "email", "teams", "discord"];
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) => s
            .split([',', ';'])
            .map(|x| Value::String(x.trim().to_string()))
            .filter(|x| x.as_str().is_some_and(|s| !s.is_empty()))
            .collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| Value::String(format!("{k}:{}", value_text(v).unwrap_or_default())))
            .collect(),
        Value::Null => Vec::new(),
        other => {
            problems.push(Problem::new(
                Some("notify"),
                format!(
                    "`{}` is not a list of channels; write e.g. `notify: [github, slack]`.",
                    show(other)
                ),
            ));
            return Vec::new();
        }
    };
    let mut out: Vec<NotificationChannel> = Vec::new();
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
            if !out.iter().any(|c| c.kind == n && c.target == target) {
                out.push(NotificationChannel { kind: n, target });
            }
        } else {
            let hint = closest(&n, KINDS)
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            problems.push(Problem::new(
                Some("notify"),
                format!(
                    "`{text}` is not a notification channel; {hint}use github, slack, email, teams or discord (optionally with a target, e.g. `slack:#ml-alerts`)."
                ),
            ));
        }
    }
    out
}

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

/// Parses an issue into training parameters, or returns every problem found.
pub fn parse_training_request(title: &str, body: &str) -> Result<TrainingRequest, Vec<Problem>> {
    let (entries, source, mut problems) = extract(body);
    let mut fields: BTreeMap<&'static str, (String, Value)> = BTreeMap::new();
    let strict = source == "yaml_block";
    for e in entries {
        let norm = normalize(&e.raw_key);
        match canonical_key(&norm) {
            Some(k) => {
                if let Some((first, _)) = fields.get(k) {
                    problems.push(Problem::new(
                        Some(k),
                        format!(
                            "`{k}` is given twice (as `{first}` and `{}`); keep one.",
                            e.raw_key
                        ),
                    ));
                } else {
                    fields.insert(k, (e.raw_key, e.value));
                }
            }
            None if strict => {
                let suggestion = suggest_key(&norm, true);
                let msg = match suggestion {
                    Some(s) => format!(
                        "`{}` is not a known parameter; did you mean `{s}`?",
                        e.raw_key
                    ),
                    None => format!(
                        "`{}` is not a known parameter; the parameters are {}.",
                        e.raw_key,
                        known_keys_list()
                    ),
                };
                problems.push(Problem::new(suggestion, msg));
            }
            None => {}
        }
    }

    if fields.is_empty() && !problems.is_empty() {
        // Nothing readable (a broken YAML block, only typos): the missing-field list would be noise.
        return Err(problems);
    }
    if fields.is_empty() {
        let mut p = vec![Problem::new(
            None,
            "I could not find any training parameters in this issue. Add them as a fenced ```yaml block (or as `key: value` lines) with at least `dataset`, `task_type`, `target_column`, `metric` and `threshold`.",
        )];
        p.extend(prose_hints(title, body));
        return Err(p);
    }

    let get = |k: &str| fields.get(k).map(|(_, v)| v).filter(|v| !v.is_null());

    // dataset
    let dataset = match get("dataset").map(|v| (v, value_text(v))) {
        None => {
            problems.push(Problem::new(
                Some("dataset"),
                "The dataset is missing: add `dataset:` with an `s3://` URI, a `file://` URI or a path, e.g. `dataset: s3://my-bucket/datasets/train.csv`.",
            ));
            None
        }
        Some((v, None)) => {
            problems.push(Problem::new(
                Some("dataset"),
                format!(
                    "`{}` is not a dataset location; give one URI or path.",
                    show(v)
                ),
            ));
            None
        }
        Some((_, Some(d))) => {
            let scheme = d.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if d.chars().any(char::is_whitespace) {
                problems.push(Problem::new(
                    Some("dataset"),
                    format!("`{d}` contains spaces; give a single URI or path."),
                ));
                None
            } else if let Some(s) = scheme.filter(|s| s != "s3" && s != "file") {
                problems.push(Problem::new(
                    Some("dataset"),
                    format!(
                        "`{d}` uses `{s}://`, which cannot be read; use an `s3://` URI, a `file://` URI or a path."
                    ),
                ));
                None
            } else {
                Some(d)
            }
        }
    };

    // algorithm and metric (read before the task, which they can imply)
    let algorithm_in = get("algorithm").map(|v| (v, value_text(v)));
    let metric_in = get("metric").map(|v| (v, value_text(v)));
    let alg_canon = algorithm_in
        .as_ref()
        .and_then(|(_, t)| t.as_deref().map(canonical_algorithm));
    let metric_canon = metric_in
        .as_ref()
        .and_then(|(_, t)| t.as_deref().map(canonical_metric));

    // task type
    let task = match get("task_type") {
        Some(v) => match value_text(v) {
            Some(s) => match parse_task(&s) {
                Ok(t) => Some(t),
                Err(m) => {
                    problems.push(Problem::new(Some("task_type"), m));
                    None
                }
            },
            None => {
                problems.push(Problem::new(
                    Some("task_type"),
                    format!(
                        "`{}` is not a task type; use one word such as `classification`.",
                        show(v)
                    ),
                ));
                None
            }
        },
        None => {
            let inferred = alg_canon
                .as_deref()
                .and_then(task_of_algorithm)
                .or_else(|| metric_canon.as_deref().and_then(task_of_metric));
            if inferred.is_none() {
                problems.push(Problem::new(
                    Some("task_type"),
                    "The task type is missing: add `task_type:` with classification, regression, clustering, dimension_reduction or reinforcement.",
                ));
            }
            inferred
        }
    };

    // target column
    let target_column = match get("target_column") {
        Some(v) => match value_text(v) {
            Some(t) => Some(t),
            None => {
                problems.push(Problem::new(
                    Some("target_column"),
                    format!("`{}` is not a column name.", show(v)),
                ));
                None
            }
        },
        None => None,
    };
    if let Some(t) = task
        && t.supervised()
        && target_column.is_none()
        && get("target_column").is_none()
    {
        problems.push(Problem::new(
            Some("target_column"),
            format!(
                "The target column is missing: {t} needs the column to predict, e.g. `target_column: churned`."
            ),
        ));
    }

    // algorithm
    let algorithm = match (task, &algorithm_in, alg_canon) {
        (Some(t), None, _) => Some(t.algorithms()[0].to_string()),
        (_, Some((v, None)), _) => {
            problems.push(Problem::new(
                Some("algorithm"),
                format!("`{}` is not an algorithm name.", show(v)),
            ));
            None
        }
        (Some(t), Some((v, _)), Some(a)) => {
            if t.algorithms().contains(&a.as_str()) {
                Some(a)
            } else {
                let msg = match task_of_algorithm(&a).or_else(|| {
                    TaskType::ALL
                        .into_iter()
                        .find(|o| o.algorithms().contains(&a.as_str()))
                }) {
                    Some(other) => format!(
                        "`{}` is a {other} algorithm, not a {t} one; for {t} use {}.",
                        show(v),
                        t.algorithms().join(", ")
                    ),
                    None => {
                        let hint = closest(&a, t.algorithms().iter().copied())
                            .map(|c| format!("did you mean `{c}`? "))
                            .unwrap_or_default();
                        format!(
                            "`{}` is not an algorithm I know; {hint}for {t} use {}.",
                            show(v),
                            t.algorithms().join(", ")
                        )
                    }
                };
                problems.push(Problem::new(Some("algorithm"), msg));
                None
            }
        }
        _ => None,
    };

    // metric
    let metric = match (task, &metric_in, metric_canon) {
        (Some(t), None, _) => Some(t.metrics()[0].to_string()),
        (_, Some((v, None)), _) => {
            problems.push(Problem::new(
                Some("metric"),
                format!("`{}` is not a metric name.", show(v)),
            ));
            None
        }
        (Some(t), Some((v, _)), Some(m)) => {
            if t.metrics().contains(&m.as_str()) {
                Some(m)
            } else {
                let hint = closest(&m, t.metrics())
                    .map(|c| format!("did you mean `{c}`? "))
                    .unwrap_or_default();
                problems.push(Problem::new(
                    Some("metric"),
                    format!(
                        "`{}` is not a {t} metric; {hint}use one of {}.",
                        show(v),
                        t.metrics().join(", ")
                    ),
                ));
                None
            }
        }
        _ => None,
    };

    // threshold
    let threshold = match get("threshold") {
        None => {
            problems.push(Problem::new(
                Some("threshold"),
                format!(
                    "The threshold is missing: add the value {} must reach, e.g. `threshold: 0.85`.",
                    metric.as_deref().unwrap_or("the metric")
                ),
            ));
            None
        }
        Some(v) => match parse_threshold(v) {
            Err(m) => {
                problems.push(Problem::new(Some("threshold"), m));
                None
            }
            Ok(x) => {
                let m = metric.as_deref().unwrap_or("");
                let (lo, hi, phrase) = metric_range(m);
                if x < lo || x > hi {
                    let extra = if hi == 1.0 && x > 1.0 && x <= 100.0 {
                        format!(" Write {} (or {x}%).", x / 100.0)
                    } else {
                        String::new()
                    };
                    problems.push(Problem::new(
                        Some("threshold"),
                        format!("{x} is out of range: {m} thresholds are {phrase}.{extra}"),
                    ));
                    None
                } else {
                    Some(x)
                }
            }
        },
    };

    // max_retry
    let max_retry = match get("max_retry") {
        None => Some(DEFAULT_MAX_RETRY),
        Some(v) => {
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
                None => {
                    problems.push(Problem::new(
                        Some("max_retry"),
                        format!(
                            "`{}` is not a whole number; write e.g. `max_retry: 3`.",
                            show(v)
                        ),
                    ));
                    None
                }
                Some(n) if n < 0 => {
                    problems.push(Problem::new(
                        Some("max_retry"),
                        format!(
                            "max_retry is {n}, but it cannot be negative; use 0 for no retries."
                        ),
                    ));
                    None
                }
                Some(n) if n > MAX_MAX_RETRY => {
                    problems.push(Problem::new(
                        Some("max_retry"),
                        format!("max_retry is {n}; at most {MAX_MAX_RETRY} retries are allowed."),
                    ));
                    None
                }
                Some(n) => Some(n as u32),
            }
        }
    };

    // hyperparameters
    let hyperparameters = match get("hyperparameters") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (normalize(k), v.clone())).collect(),
        Some(Value::String(s)) if s.trim().is_empty() => BTreeMap::new(),
        Some(v) => {
            problems.push(Problem::new(
                Some("hyperparameters"),
                format!(
                    "`{}` is not a set of `name: value` pairs; write them indented under `hyperparameters:` or as `{{n_estimators: 200, max_depth: 12}}`.",
                    show(v)
                ),
            ));
            BTreeMap::new()
        }
    };

    // notify
    let notify = match get("notify") {
        None => vec![NotificationChannel {
            kind: "github".into(),
            target: None,
        }],
        Some(v) => parse_notify(v, &mut problems),
    };

    // model_name
    let model_name = match get("model_name") {
        None => None,
        Some(v) => match value_text(v) {
            Some(n)
                if n.len() <= 128
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
            {
                Some(n)
            }
            _ => {
                problems.push(Problem::new(
                    Some("model_name"),
                    format!(
                        "`{}` is not a valid model name; use up to 128 letters, digits, `-`, `_` or `.`.",
                        show(v)
                    ),
                ));
                None
            }
        },
    };

    // seed
    let seed = match get("seed") {
        None => None,
        Some(v) => match v.as_u64().or_else(|| value_text(v)?.parse().ok()) {
            Some(s) => Some(s),
            None => {
                problems.push(Problem::new(
                    Some("seed"),
                    format!("`{}` is not a whole number 0 or more.", show(v)),
                ));
                None
            }
        },
    };

    if !problems.is_empty() {
        // A misspelt key already says what to fix; "`x` is missing" for the same field is noise.
        let misspelt: Vec<String> = problems
            .iter()
            .filter(|p| p.message.contains("did you mean"))
            .filter_map(|p| p.field.clone())
            .collect();
        problems.retain(|p| {
            !(p.message.contains(" is missing:")
                && p.field.as_ref().is_some_and(|f| misspelt.contains(f)))
        });
        return Err(problems);
    }
    match (dataset, task, algorithm, metric, threshold, max_retry) {
        (
            Some(dataset),
            Some(task_type),
            Some(algorithm),
            Some(metric),
            Some(threshold),
            Some(max_retry),
        ) => Ok(TrainingRequest {
            title: title.trim().to_string(),
            dataset,
            // Kept when given for an unsupervised task too (e.g. to score clusters against labels).
            target_column,
            task_type,
            metric_goal: metric_goal(&metric),
            algorithm,
            hyperparameters,
            metric,
            threshold,
            max_retry,
            notify,
            model_name,
            seed,
            source: source.to_string(),
        }),
        _ => Err(vec![Problem::new(
            None,
            "The parameters are incomplete; see the example format.",
        )]),
    }
}

/// Hints drawn from an issue written in prose: locations that look like datasets, task words.
fn prose_hints(title: &str, body: &str) -> Vec<Problem> {
    let text = format!("{title}\n{body}");
    let mut hints = Vec::new();
    let lower = text.to_ascii_lowercase();
    let dataset = text
        .split(|c: char| c.is_whitespace() || "()<>[]\"'`,".contains(c))
        .map(|w| w.trim_end_matches(['.', ';', ':', '!', '?']))
        .find(|w| {
            let l = w.to_ascii_lowercase();
            l.starts_with("s3://")
                || l.starts_with("file://")
                || ((l.ends_with(".csv") || l.ends_with(".parquet")) && l.len() > 4)
        });
    if let Some(d) = dataset {
        hints.push(Problem::new(
            Some("dataset"),
            format!("I noticed `{d}` in the text: if it is the dataset, write `dataset: {d}`."),
        ));
    }
    let task = [
        ("classif", "classification"),
        ("regress", "regression"),
        ("cluster", "clustering"),
        ("reinforcement", "reinforcement"),
    ]
    .into_iter()
    .find(|(w, _)| lower.contains(w));
    if let Some((_, t)) = task {
        hints.push(Problem::new(
            Some("task_type"),
            format!("The text mentions {t}: if that is the task, write `task_type: {t}`."),
        ));
    }
    let algo = [
        ("random forest", "random_forest"),
        ("xgboost", "xgboost"),
        ("gradient boost", "xgboost"),
        ("neural net", "neural_network"),
        ("k-means", "kmeans"),
        ("kmeans", "kmeans"),
        ("linear regression", "linear"),
    ]
    .into_iter()
    .find(|(w, _)| lower.contains(w));
    if let Some((_, a)) = algo {
        hints.push(Problem::new(
            Some("algorithm"),
            format!("The text mentions {a}: if that is the algorithm, write `algorithm: {a}`."),
        ));
    }
    hints
}

/// Splits an issue kept as a Markdown file (`mlops-mcp run-issue issue.md`) into title and body.
/// The title is a `title:` in YAML front matter (`---` lines) or else the first `# ` heading;
/// without either it is empty and the whole text is the body.
pub fn split_issue_markdown(text: &str) -> (String, String) {
    let text = text.trim_start_matches('\u{feff}');
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("---")
        && rest.starts_with(['\n', '\r'])
        && let Some(end) = rest.find("\n---")
    {
        let front = &rest[..end];
        let after = rest[end + 4..].trim_start_matches('-');
        let body = after
            .strip_prefix("\r\n")
            .or_else(|| after.strip_prefix('\n'))
            .unwrap_or(after);
        let title = match serde_norway::from_str::<Value>(front) {
            Ok(v) => v["title"].as_str().unwrap_or_default().trim().to_string(),
            Err(_) => String::new(),
        };
        return (title, body.to_string());
    }
    let mut lines = text.lines();
    let mut consumed = 0;
    for line in lines.by_ref() {
        consumed += line.len() + 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(title) = t.strip_prefix("# ") {
            let body = text.get(consumed.min(text.len())..).unwrap_or_default();
            return (title.trim().to_string(), body.to_string());
        }
        break;
    }
    (String::new(), text.to_string())
}

/// The problems as a Markdown comment to post on the issue, with an example of the format.
pub fn format_problems_comment(problems: &[Problem]) -> String {
    let mut s = String::from("### ❌ This training request could not be started\n\n");
    s.push_str(if problems.len() == 1 {
        "I found one problem in the issue:\n\n"
    } else {
        "I found these problems in the issue:\n\n"
    });
    for p in problems {
        match &p.field {
            Some(f) => s.push_str(&format!("- **{f}**: {}\n", p.message)),
            None => s.push_str(&format!("- {}\n", p.message)),
        }
    }
    s.push_str(
        "\nThe parameters go in a fenced YAML block in the issue body, for example:\n\n```yaml\n",
    );
    s.push_str(EXAMPLE);
    s.push_str("\n```\n\nKnown parameters: ");
    s.push_str(&known_keys_list());
    s.push_str(". Edit the issue, then remove and re-add the `mlops:train` label to try again.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> TrainingRequest {
        match parse_training_request("Train", body) {
            Ok(r) => r,
            Err(p) => panic!("unexpected problems: {p:#?}"),
        }
    }

    fn problems(body: &str) -> Vec<Problem> {
        match parse_training_request("Train", body) {
            Ok(r) => panic!("expected problems, got {r:#?}"),
            Err(p) => p,
        }
    }

    fn has(problems: &[Problem], field: Option<&str>, needle: &str) -> bool {
        problems
            .iter()
            .any(|p| p.field.as_deref() == field && p.message.contains(needle))
    }

    #[test]
    fn full_yaml_block() {
        let r = ok(
            "Please train.\n\n```yaml\ndataset: s3://b/datasets/churn.csv\ntarget_column: churned\ntask_type: classification\nalgorithm: xgboost\nhyperparameters:\n  n_estimators: 200\n  learning_rate: 0.1\nmetric: f1\nthreshold: 0.8\nmax_retry: 2\nnotify: [github, 'slack:#ml-alerts', email:ops@example.com]\nmodel_name: churn-model\nseed: 42\n```\n",
        );
        assert_eq!(r.dataset, "s3://b/datasets/churn.csv");
        assert_eq!(r.target_column.as_deref(), Some("churned"));
        assert_eq!(r.task_type, TaskType::Classification);
        assert_eq!(r.algorithm, "xgboost");
        assert_eq!(r.hyperparameters["n_estimators"], serde_json::json!(200));
        assert_eq!(r.hyperparameters["learning_rate"], serde_json::json!(0.1));
        assert_eq!(r.metric, "f1");
        assert_eq!(r.metric_goal, MetricGoal::Maximize);
        assert_eq!(r.threshold, 0.8);
        assert_eq!(r.max_retry, 2);
        assert_eq!(
            r.notify,
            vec![
                NotificationChannel {
                    kind: "github".into(),
                    target: None
                },
                NotificationChannel {
                    kind: "slack".into(),
                    target: Some("#ml-alerts".into())
                },
                NotificationChannel {
                    kind: "email".into(),
                    target: Some("ops@example.com".into())
                },
            ]
        );
        assert_eq!(r.model_name.as_deref(), Some("churn-model"));
        assert_eq!(r.seed, Some(42));
        assert_eq!(r.source, "yaml_block");
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
    fn yaml_block_inside_details() {
        let body = "Weekly retrain.\n\n<details>\n<summary>Training parameters</summary>\n\n  ```yaml\n  dataset: s3://b/house.parquet\n  target_column: price\n  task_type: regression\n  metric: rmse\n  threshold: 25000\n  ```\n\n</details>\n";
        let r = ok(body);
        assert_eq!(r.task_type, TaskType::Regression);
        assert_eq!(r.algorithm, "linear");
        assert_eq!(r.metric_goal, MetricGoal::Minimize);
        assert_eq!(r.threshold, 25000.0);
    }

    #[test]
    fn key_value_lines_with_case_spacing_and_markdown() {
        let body = "Hello!\n\n- **Dataset**: `s3://b/churn.csv`\n- Target Column: churned\n- TASK-TYPE: Classification\n- Algorithm: Random Forest\n- Metric: ROC AUC\n- Threshold: 85%\n- Max Retries: 1\n- Notify: slack, email\n\nThanks, Ana\n";
        let r = ok(body);
        assert_eq!(r.dataset, "s3://b/churn.csv");
        assert_eq!(r.task_type, TaskType::Classification);
        assert_eq!(r.algorithm, "random_forest");
        assert_eq!(r.metric, "roc_auc");
        assert!((r.threshold - 0.85).abs() < 1e-12);
        assert_eq!(r.max_retry, 1);
        assert_eq!(r.notify.len(), 2);
        assert_eq!(r.source, "key_value_lines");
    }

    #[test]
    fn nested_hyperparameters_in_lines() {
        let body = "dataset: d.csv\ntarget: y\ntask: regression\nalgorithm: xgb\nparams:\n  max_depth: 6\n  n_estimators: 300\nmetric: r2\nthreshold: 0.7\n";
        let r = ok(body);
        assert_eq!(r.algorithm, "xgboost");
        assert_eq!(r.hyperparameters.len(), 2);
        assert_eq!(r.hyperparameters["max_depth"], serde_json::json!(6));
    }

    #[test]
    fn issue_form_sections() {
        let body = "### Dataset\n\ns3://b/x.csv\n\n### Target column\n\nlabel\n\n### Task type\n\nclassification\n\n### Threshold\n\n0.75\n\n### Hyperparameters\n\n```yaml\nn_estimators: 50\n```\n\n### Model name\n\n_No response_\n";
        let r = ok(body);
        assert_eq!(r.dataset, "s3://b/x.csv");
        assert_eq!(r.target_column.as_deref(), Some("label"));
        assert_eq!(r.hyperparameters["n_estimators"], serde_json::json!(50));
        assert_eq!(r.model_name, None);
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
    fn collects_every_problem() {
        let p = problems(
            "```yaml\ntarget_column: y\ntask_type: classfication\nthreshold: high\nmax_retry: -1\n```",
        );
        assert!(has(&p, Some("dataset"), "missing"), "{p:#?}");
        assert!(
            has(&p, Some("task_type"), "did you mean `classification`"),
            "{p:#?}"
        );
        assert!(has(&p, Some("threshold"), "not a number"), "{p:#?}");
        assert!(has(&p, Some("max_retry"), "cannot be negative"), "{p:#?}");
        assert_eq!(p.len(), 4, "{p:#?}");
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let p = problems(
            "```yaml\ndataset: d.csv\ntarget_column: y\ntask_type: classification\nthreshhold: 0.9\nlearning_rate: 0.1\n```",
        );
        assert!(
            p.iter().any(|x| x
                .message
                .contains("`threshhold` is not a known parameter; did you mean `threshold`?")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|x| x
                .message
                .contains("`learning_rate` is not a known parameter; the parameters are")),
            "{p:#?}"
        );
    }

    #[test]
    fn typo_keys_in_lines_are_reported_but_prose_is_ignored() {
        let p = problems(
            "Note: this is urgent.\nDate: next Monday\ndataset: d.csv\ntarget_colum: y\ntask_type: classification\nthreshold: 0.9\n",
        );
        assert!(
            has(&p, Some("target_column"), "did you mean `target_column`"),
            "{p:#?}"
        );
        assert!(!p.iter().any(|x| x.message.contains("Note")), "{p:#?}");
        assert_eq!(p.len(), 1, "prose lines are not reported: {p:#?}");
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
    fn supervised_task_needs_a_target_and_metric_must_fit_the_task() {
        let p = problems(
            "```yaml\ndataset: d.csv\ntask_type: regression\nmetric: accuracy\nthreshold: 0.9\n```",
        );
        assert!(has(&p, Some("target_column"), "missing"), "{p:#?}");
        assert!(has(&p, Some("metric"), "not a regression metric"), "{p:#?}");
    }

    #[test]
    fn bad_yaml_is_explained() {
        let p = problems("```yaml\ndataset: d.csv\n  target_column: [y\n```");
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].message.contains("could not be read"), "{p:#?}");
        let p = problems("```yaml\n- a\n- b\n```");
        assert!(p[0].message.contains("mapping"), "{p:#?}");
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

    #[test]
    fn free_prose_gets_helpful_hints() {
        let body = "Hi team! Could you please train a random forest classifier on s3://acme-ml/datasets/churn.csv so we can predict which customers leave? We'd like at least 90% accuracy. Thanks!";
        let p = match parse_training_request("Churn model", body) {
            Err(p) => p,
            Ok(r) => panic!("{r:?}"),
        };
        assert!(
            p[0].message
                .contains("could not find any training parameters"),
            "{p:#?}"
        );
        assert!(
            has(
                &p,
                Some("dataset"),
                "dataset: s3://acme-ml/datasets/churn.csv"
            ),
            "{p:#?}"
        );
        assert!(
            has(&p, Some("task_type"), "task_type: classification"),
            "{p:#?}"
        );
        assert!(
            has(&p, Some("algorithm"), "algorithm: random_forest"),
            "{p:#?}"
        );
    }

    #[test]
    fn prose_with_embedded_key_value_lines() {
        let body = "We need a new churn model before the quarterly review; the last one drifted.\n\nHere is what I have in mind:\n\ndataset: s3://acme-ml/datasets/churn.csv\ntarget column: churned\ntask type: classification\nthreshold: 0.88\n\nLet me know if anything is unclear. Cheers: Bob\n";
        let r = ok(body);
        assert_eq!(r.target_column.as_deref(), Some("churned"));
        assert_eq!(r.threshold, 0.88);
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let p = problems(
            "dataset: a.csv\ndata: b.csv\ntarget: y\ntask: classification\nthreshold: 0.5\n",
        );
        assert!(has(&p, Some("dataset"), "given twice"), "{p:#?}");
    }

    #[test]
    fn comment_lists_problems_and_shows_the_format() {
        let p = problems("```yaml\ntask_type: classification\n```");
        let c = format_problems_comment(&p);
        assert!(c.contains("- **dataset**: The dataset is missing"), "{c}");
        assert!(c.contains("- **threshold**:"), "{c}");
        assert!(
            c.contains("```yaml\ndataset: s3://my-bucket/datasets/churn.csv"),
            "{c}"
        );
        // The example in the comment is itself a valid request.
        ok(&format!("```yaml\n{EXAMPLE}\n```"));
    }

    #[test]
    fn unlabelled_fence_with_parameters_is_used_and_other_code_is_not() {
        let body = "Logs:\n```\nERROR: something\n```\n\n```\ndataset: d.csv\ntarget_column: y\ntask_type: classification\nthreshold: 0.6\n```\n";
        let r = ok(body);
        assert_eq!(r.threshold, 0.6);
    }

    #[test]
    fn crlf_tilde_fences_and_comments() {
        let body = "Intro\r\n~~~yaml\r\ndataset: d.csv   # the data\r\ntarget_column: y\r\ntask_type: Regression\r\nmetric: MAE\r\nthreshold: 1.5 # at most\r\n~~~\r\n";
        let r = ok(body);
        assert_eq!(r.dataset, "d.csv");
        assert_eq!(r.metric, "mae");
        assert_eq!(r.metric_goal, MetricGoal::Minimize);
        assert!(r.metric_goal.passes(1.2, r.threshold));
        assert!(!r.metric_goal.passes(1.6, r.threshold));
    }

    #[test]
    fn misspelt_yaml_key_is_tied_to_its_field_without_a_missing_twin() {
        let p = problems(
            "```yaml\ndatset: d.csv\ntarget_column: y\ntask_type: classification\nthreshold: 0.9\n```",
        );
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].field.as_deref(), Some("dataset"));
        assert!(p[0].message.contains("did you mean `dataset`"), "{p:#?}");
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
    fn issue_files_with_front_matter_or_a_heading() {
        let (t, b) = split_issue_markdown(
            "---\ntitle: Retrain churn\nlabels: [mlops:train]\n---\ndataset: d.csv\n",
        );
        assert_eq!(
            (t.as_str(), b.as_str()),
            ("Retrain churn", "dataset: d.csv\n")
        );
        let (t, b) = split_issue_markdown("\n# Title here\n\nBody\n");
        assert_eq!((t.as_str(), b.as_str()), ("Title here", "\nBody\n"));
        let (t, b) = split_issue_markdown("dataset: d.csv\n# Not a title\n");
        assert_eq!(
            (t.as_str(), b.as_str()),
            ("", "dataset: d.csv\n# Not a title\n")
        );
        for odd in ["---", "---\n", "---\ntitle: x", "# ", "\u{feff}# T\r\nB"] {
            let _ = split_issue_markdown(odd);
        }
    }

    #[test]
    fn odd_input_never_panics() {
        let nasty = [
            "",
            "```",
            "```yaml",
            "~~~~\n```\n~~~",
            "###",
            "### ",
            "#### Dataset",
            ":",
            "::::",
            "a:",
            "dataset:\n",
            "hyperparameters:\n  - 1\n  - {",
            "\u{3000}\u{3000}dataset: x\n  target: y",
            "```yaml\n  a: 1\n\u{3000}b: 2\n```",
            "```yaml\n\u{a0}\u{a0}x: 1\n  y: 2\n```",
            "1. 2. 3: 4",
            "- * + > dataset: d.csv",
            "**:** x",
            "`threshold`: `0.5`",
            "threshold: .inf\ndataset: d\ntask: regression\ntarget: y",
            "threshold: nan\ndataset: d\ntask: regression\ntarget: y",
            "max_retry: 1e30\ndataset: d\ntask: clustering\nthreshold: 0.1",
            "seed: -1\ndataset: d\ntask: clustering\nthreshold: 0.1",
            "notify: {slack: '#a', email: [x]}\ndataset: d\ntask: clustering\nthreshold: 0.1",
            "```yaml\ndataset: [a, b]\ntask_type: {x: 1}\nthreshold: [0.5]\nhyperparameters: 3\n```",
            "\u{feff}dataset: d.csv",
            "ｄａｔａｓｅｔ: 全角",
        ];
        for body in nasty {
            let _ = parse_training_request("t", body);
            let _ = parse_training_request(body, body);
        }
        let long_key = format!("```yaml\n{}: 1\n```", "k".repeat(20_000));
        assert!(parse_training_request("t", &long_key).is_err());
    }

    #[test]
    fn yaml_alias_bombs_are_refused_quickly() {
        let bomb = "```yaml\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\ndataset: *h\n```";
        let start = std::time::Instant::now();
        let p = parse_training_request("t", bomb).unwrap_err();
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
        assert!(!p.is_empty());
    }

    #[test]
    fn example_issue_file_parses() {
        let text = include_str!("../examples/train-issue.md");
        let (title, body) = split_issue_markdown(text);
        assert_eq!(title, "Train the churn classifier (weekly refresh)");
        let r = parse_training_request(&title, &body).unwrap_or_else(|p| panic!("{p:#?}"));
        assert_eq!(r.title, title);
        assert_eq!(r.task_type, TaskType::Classification);
        assert_eq!(r.algorithm, "random_forest");
        assert!(r.hyperparameters.contains_key("n_estimators"));
        assert!(r.notify.iter().any(|c| c.kind == "slack"));
    }
}
