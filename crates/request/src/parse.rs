//! [`parse_training_request`]: find the parameters, resolve their keys, then read each field with
//! its own parser.

use crate::extract::{self, Format};
use crate::fields;
use crate::keys::Given;
use crate::problems::{self, Problems};
use crate::request::{Problem, TrainingRequest};

/// Parses an issue into training parameters, or returns every problem found.
pub fn parse_training_request(title: &str, body: &str) -> Result<TrainingRequest, Vec<Problem>> {
    let found = extract::parameters(body);
    let mut problems = found.problems;
    let given = Given::resolve(
        found.entries,
        found.format == Format::YamlBlock,
        &mut problems,
    );
    if given.is_empty() {
        // Nothing readable (a broken YAML block, only typos): the missing-field list would be noise.
        return Err(if problems.is_empty() {
            problems::nothing_found(title, body)
        } else {
            problems
        });
    }

    // In this order: a field may depend on one read before it, and the problems keep this order.
    let mut p = Problems::new(problems);
    let dataset = p.keep(fields::dataset(given.get("dataset")));
    let task_type = p.keep(fields::task_type(
        given.get("task_type"),
        given.get("algorithm"),
        given.get("metric"),
    ));
    let target_column = p.keep(fields::target_column(given.get("target_column"), task_type));
    let algorithm = p.keep(fields::algorithm(given.get("algorithm"), task_type));
    let metric = p
        .keep(fields::metric(given.get("metric"), task_type))
        .flatten();
    let threshold = p.keep(fields::threshold(given.get("threshold"), metric.as_deref()));
    let max_retry = p.keep(fields::max_retry(given.get("max_retry")));
    let hyperparameters = p.keep(fields::hyperparameters(given.get("hyperparameters")));
    let notify = p.keep_all(fields::notify(given.get("notify")));
    let model_name = p.keep(fields::model_name(given.get("model_name")));
    let seed = p.keep(fields::seed(given.get("seed")));
    let tune = p.keep(fields::tune(given.get("tune"), task_type));
    p.finish()?;

    // Without problems every required field was read; an algorithm or metric is only unread
    // when the task is, which is a problem of its own.
    let (
        Some(dataset),
        Some(task_type),
        Some(Some(algorithm)),
        Some(metric),
        Some(threshold),
        Some(max_retry),
    ) = (dataset, task_type, algorithm, metric, threshold, max_retry)
    else {
        return Err(vec![Problem::new(
            None,
            "The parameters are incomplete; see the example format.",
        )]);
    };
    Ok(TrainingRequest {
        title: title.trim().to_string(),
        dataset,
        target_column: target_column.flatten(),
        task_type,
        metric_goal: fields::metric_goal(&metric),
        algorithm,
        hyperparameters: hyperparameters.unwrap_or_default(),
        metric,
        threshold,
        max_retry,
        notify: notify.unwrap_or_default(),
        model_name: model_name.flatten(),
        seed: seed.flatten(),
        tune: tune.flatten(),
        source: found.format.as_str().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use crate::testing::{has, problems};

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
}
