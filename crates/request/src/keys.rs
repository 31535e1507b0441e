//! The parameter keys: their canonical names and accepted synonyms, suggestions for misspelt keys,
//! and [`Given`], the parameters an issue gave by canonical key.

use std::collections::BTreeMap;

use mlops_core::normalize_name as normalize;
use serde_json::Value;

use crate::extract::Entry;
use crate::request::Problem;
use crate::spelling::edit_distance;

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
    (
        "tune",
        &[
            "tuning",
            "hyperparameter_tuning",
            "hyperparameter_search",
            "search",
        ],
    ),
];

/// The canonical key a normalised key stands for, by name or synonym.
pub(crate) fn canonical_key(norm: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|(k, syn)| *k == norm || syn.contains(&norm))
        .map(|(k, _)| *k)
}

/// A known key close to `norm` (for "did you mean"). `with_synonyms: false` compares with the
/// canonical names only (used for prose lines, where `Date:` must not suggest `data`).
pub(crate) fn suggest_key(norm: &str, with_synonyms: bool) -> Option<&'static str> {
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

/// The canonical keys as a Markdown list for messages: `` `dataset`, `target_column`, ... ``.
pub(crate) fn known_keys_list() -> String {
    KEYS.iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The parameters an issue gave, by canonical key: the key as written (for messages) and the value.
pub(crate) struct Given(BTreeMap<&'static str, (String, Value)>);

impl Given {
    /// Resolves the entries' keys. A key given twice is a problem; so is an unknown key when
    /// `strict` (a YAML block, where every key is meant as a parameter; in `key: value` lines an
    /// unknown key is prose, and typos were already reported while reading them).
    pub(crate) fn resolve(entries: Vec<Entry>, strict: bool, problems: &mut Vec<Problem>) -> Self {
        let mut fields: BTreeMap<&'static str, (String, Value)> = BTreeMap::new();
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
                None if strict => problems.push(unknown_key(&e.raw_key, &norm)),
                None => {}
            }
        }
        Self(fields)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key`, unless absent or null (`key:` with nothing after it).
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).map(|(_, v)| v).filter(|v| !v.is_null())
    }
}

/// An unknown key of a YAML block: a suggestion when it looks like a typo, else the known keys.
fn unknown_key(raw_key: &str, norm: &str) -> Problem {
    let suggestion = suggest_key(norm, true);
    let msg = match suggestion {
        Some(s) => format!("`{raw_key}` is not a known parameter; did you mean `{s}`?"),
        None => format!(
            "`{raw_key}` is not a known parameter; the parameters are {}.",
            known_keys_list()
        ),
    };
    Problem::new(suggestion, msg)
}

#[cfg(test)]
mod tests {
    use crate::testing::{has, problems};

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
    fn duplicate_keys_are_reported() {
        let p = problems(
            "dataset: a.csv\ndata: b.csv\ntarget: y\ntask: classification\nthreshold: 0.5\n",
        );
        assert!(has(&p, Some("dataset"), "given twice"), "{p:#?}");
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
}
