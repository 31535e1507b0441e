//! Finding the parameters in an issue body: a fenced YAML block (also inside a collapsed
//! `<details>` block), or else `key: value` lines and issue-form `### Heading` sections. The result
//! is a list of raw entries; what their keys and values mean is for `keys` and
//! `fields`.

use mlops_core::normalize_name as normalize;
use serde_json::Value;

use crate::keys::{canonical_key, suggest_key};
use crate::request::Problem;

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

/// The text of a Markdown `#` to `######` heading line.
fn heading_text(t: &str) -> Option<&str> {
    let hashes = t.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') {
        Some(t[hashes..].trim())
    } else {
        None
    }
}

/// The lines joined, less the indentation they all share (a block indented inside `<details>` or
/// a list).
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
pub(crate) struct Entry {
    /// As written (for messages).
    pub(crate) raw_key: String,
    pub(crate) value: Value,
}

/// YAML text as a JSON value, or the YAML reader's message.
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

/// Where the parameters were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A fenced YAML block: every key in it is meant as a parameter.
    YamlBlock,
    /// `key: value` lines and issue-form sections among prose.
    KeyValueLines,
}

impl Format {
    /// The name recorded in [`crate::TrainingRequest::source`].
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::YamlBlock => "yaml_block",
            Format::KeyValueLines => "key_value_lines",
        }
    }
}

/// The parameters found in a body, and the problems met while reading them.
pub(crate) struct Found {
    pub(crate) entries: Vec<Entry>,
    pub(crate) format: Format,
    pub(crate) problems: Vec<Problem>,
}

/// Finds the parameters: a YAML block, or else `key: value` lines.
pub(crate) fn parameters(body: &str) -> Found {
    let (blocks, lines) = scan(body);
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
        let (entries, problems) = match yaml_entries(&b.content) {
            Ok(entries) => (entries, Vec::new()),
            Err(problem) => (Vec::new(), vec![problem]),
        };
        return Found {
            entries,
            format: Format::YamlBlock,
            problems,
        };
    }
    let mut problems = Vec::new();
    let entries = entries_from_lines(&lines, &blocks, &mut problems);
    Found {
        entries,
        format: Format::KeyValueLines,
        problems,
    }
}

/// The entries of a YAML block, which must be a mapping.
fn yaml_entries(content: &str) -> Result<Vec<Entry>, Problem> {
    match parse_yaml(content) {
        Ok(Value::Object(map)) => Ok(map
            .into_iter()
            .map(|(k, v)| Entry {
                raw_key: k,
                value: v,
            })
            .collect()),
        Ok(Value::Null) => Err(Problem::new(
            None,
            "The YAML block is empty: put the parameters in it as `key: value` lines.",
        )),
        Ok(_) => Err(Problem::new(
            None,
            "The YAML block must be a list of `key: value` lines (a mapping), not a single value or a list.",
        )),
        Err(e) => Err(Problem::new(
            None,
            format!(
                "The YAML block could not be read ({e}). Check the indentation and that every line is `key: value`; quote values that contain `: ` or start with `{{`, `[`, `*` or `&`."
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{has, ok, problems};
    use crate::{MetricGoal, NotificationChannel, TaskType, parse_training_request};

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
    fn prose_with_embedded_key_value_lines() {
        let body = "We need a new churn model before the quarterly review; the last one drifted.\n\nHere is what I have in mind:\n\ndataset: s3://acme-ml/datasets/churn.csv\ntarget column: churned\ntask type: classification\nthreshold: 0.88\n\nLet me know if anything is unclear. Cheers: Bob\n";
        let r = ok(body);
        assert_eq!(r.target_column.as_deref(), Some("churned"));
        assert_eq!(r.threshold, 0.88);
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
    fn bad_yaml_is_explained() {
        let p = problems("```yaml\ndataset: d.csv\n  target_column: [y\n```");
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].message.contains("could not be read"), "{p:#?}");
        let p = problems("```yaml\n- a\n- b\n```");
        assert!(p[0].message.contains("mapping"), "{p:#?}");
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
}
