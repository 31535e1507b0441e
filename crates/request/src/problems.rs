//! Problems: collecting them while the fields are read, hints for an issue written in prose, and
//! the Markdown comment that tells the author everything to fix.

use crate::keys::known_keys_list;
use crate::request::Problem;

/// A valid request, shown in the comment as the format to follow.
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

/// The problems found so far, collected field by field so one comment lists them all.
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn new(found: Vec<Problem>) -> Self {
        Self(found)
    }

    /// A field's value, or `None` with its problem noted.
    pub(crate) fn keep<T>(&mut self, field: Result<T, Problem>) -> Option<T> {
        field.map_err(|p| self.0.push(p)).ok()
    }

    /// A field's value, or `None` with all its problems noted.
    pub(crate) fn keep_all<T>(&mut self, field: Result<T, Vec<Problem>>) -> Option<T> {
        field.map_err(|p| self.0.extend(p)).ok()
    }

    /// `Err` with every problem, if there is one.
    pub(crate) fn finish(mut self) -> Result<(), Vec<Problem>> {
        if self.0.is_empty() {
            return Ok(());
        }
        // A misspelt key already says what to fix; "`x` is missing" for the same field is noise.
        let misspelt: Vec<String> = self
            .0
            .iter()
            .filter(|p| p.message.contains("did you mean"))
            .filter_map(|p| p.field.clone())
            .collect();
        self.0.retain(|p| {
            !(p.message.contains(" is missing:")
                && p.field.as_ref().is_some_and(|f| misspelt.contains(f)))
        });
        Err(self.0)
    }
}

/// The answer to an issue with no parameters at all: what to add, and hints drawn from its prose.
pub(crate) fn nothing_found(title: &str, body: &str) -> Vec<Problem> {
    let mut p = vec![Problem::new(
        None,
        "I could not find any training parameters in this issue. Add them as a fenced ```yaml block (or as `key: value` lines) with at least `dataset`, `task_type`, `target_column`, `metric` and `threshold`.",
    )];
    p.extend(prose_hints(title, body));
    p
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
    use crate::parse_training_request;
    use crate::testing::{has, ok, problems};

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
}
