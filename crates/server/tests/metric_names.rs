//! One vocabulary of metric names: every spelling the issue parser accepts for a metric is
//! accepted, and means the same value, in every tool that takes a metric — `parse_training_issue`
//! (and so the workflow), `compare_models`, `register_model` and `search_models` (range and
//! order).

mod common;

use common::Server;
use mlops_core::metric_names::{self, MetricName};
use serde_json::{Value, json};

/// A task whose models compare_models can score, and how to train one.
struct Case {
    task: &'static str,
    tool: &'static str,
    algorithm: &'static str,
    data: &'static str,
    target: Option<&'static str>,
}

/// A threshold inside the metric's range.
fn threshold(m: &MetricName) -> f64 {
    let (lo, hi, _) = m.range;
    match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (lo + hi) / 2.0,
        (false, true) => hi / 2.0,
        (true, false) => lo + 1.0,
        (false, false) => 0.0,
    }
}

fn issue_body(task: &str, name: &str, m: &MetricName) -> String {
    let target = match task {
        "classification" => "target_column: label\n",
        "regression" => "target_column: target\n",
        _ => "",
    };
    format!(
        "dataset: datasets/d.csv\n{target}task_type: {task}\nmetric: {name}\nthreshold: {}\n",
        threshold(m)
    )
}

/// What `parse_training_issue` makes of an issue naming `name` as the metric.
async fn parse(s: &Server, task: &str, name: &str, m: &MetricName) -> Value {
    s.ok(
        "parse_training_issue",
        json!({"title": "t", "body": issue_body(task, name, m)}),
    )
    .await
}

/// Trains two models of a task on `data` (predicting `target`, if any); returns their folders.
async fn two_models(s: &Server, case: &Case, model: &str) -> [String; 2] {
    let Case {
        tool,
        algorithm,
        data,
        target,
        ..
    } = *case;
    let mut uris = Vec::new();
    for (i, extra) in [json!({}), json!({"seed": 7})].into_iter().enumerate() {
        let job = format!("{model}-{i}");
        let mut args =
            json!({"algorithm": algorithm, "train_data_uri": data, "training_job_name": job});
        match target {
            Some(t) => {
                args["target_column"] = json!(t);
                args["hyperparameters"] = json!({"n_estimators": 5});
            }
            None => args["hyperparameters"] = json!({"n_clusters": 3}),
        }
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s.ok(tool, args).await;
        uris.push(format!("models/{job}"));
    }
    [uris[0].clone(), uris[1].clone()]
}

#[tokio::test]
async fn every_tool_accepts_every_metric_name_the_issue_parser_accepts() {
    let s = Server::start().await;
    s.generate("classification", 300, "datasets/d.csv");
    s.generate("regression", 300, "datasets/r.csv");
    s.generate("clustering", 300, "datasets/c.csv");
    let cases = [
        Case {
            task: "classification",
            tool: "train_supervised_classifier",
            algorithm: "random_forest",
            data: "datasets/d.csv",
            target: Some("label"),
        },
        Case {
            task: "regression",
            tool: "train_supervised_regressor",
            algorithm: "random_forest",
            data: "datasets/r.csv",
            target: Some("target"),
        },
        Case {
            task: "clustering",
            tool: "train_unsupervised_clustering",
            algorithm: "kmeans",
            data: "datasets/c.csv",
            target: None,
        },
    ];
    for case in &cases {
        let (task, data) = (case.task, case.data);
        let model = format!("{task}-model");
        let uris = two_models(&s, case, &model).await;
        // Register with every metric compare_models measures, under the names it reports them.
        let measured = s
            .ok(
                "compare_models",
                json!({"model_uris": uris, "test_data_uri": data}),
            )
            .await;
        let metrics = measured["ranking"][0]["metrics"].clone();
        s.ok(
            "register_model",
            json!({"model_name": model, "model_uri": uris[0], "metrics": metrics}),
        )
        .await;

        let names = metric_names::accepted_names(task);
        assert!(names.len() >= 3, "{task}: {names:?}");
        for name in names {
            let m = metric_names::lookup(name).unwrap();
            // The parser accepts it and reads it as the vocabulary's name.
            let parsed = parse(&s, task, name, m).await;
            assert_eq!(parsed["valid"], true, "{task} `{name}`: {parsed}");
            assert_eq!(parsed["request"]["metric"], m.name, "{name}: {parsed}");
            let goal = if m.lower_is_better {
                "minimize"
            } else {
                "maximize"
            };
            assert_eq!(parsed["request"]["metric_goal"], goal, "{name}");

            // compare_models ranks by the same value, in the metric's direction.
            let ranked = s
                .ok(
                    "compare_models",
                    json!({"model_uris": uris, "test_data_uri": data, "metric": name}),
                )
                .await;
            assert_eq!(ranked["metric"], m.key, "{name}: {ranked}");
            assert_eq!(ranked["higher_is_better"], !m.lower_is_better, "{name}");
            let first = &ranked["ranking"][0];
            assert_eq!(first["value"], first["metrics"][m.key], "{name}: {ranked}");

            // The registry finds the version by a range and sorts by the metric, by this name.
            let value = metrics[m.key].as_f64();
            let Some(value) = value else {
                continue; // undefined on this data (e.g. an AUC with a missing class)
            };
            let found = s
                .ok(
                    "search_models",
                    json!({
                        "name_pattern": model,
                        "metric": {"name": name, "min": value - 1e-9, "max": value + 1e-9},
                        "order": {"metric": {"name": name}}
                    }),
                )
                .await;
            let versions = found["versions"].as_array().unwrap();
            assert_eq!(versions.len(), 1, "{task} `{name}`: {found}");
            assert_eq!(versions[0]["metrics"][m.key], json!(value), "{name}");
        }
    }

    // Tasks compare_models cannot score still share the names with the parser and the registry.
    for task in ["dimension_reduction", "reinforcement"] {
        for name in metric_names::accepted_names(task) {
            let m = metric_names::lookup(name).unwrap();
            let parsed = parse(&s, task, name, m).await;
            assert_eq!(
                parsed["request"]["metric"], m.name,
                "{task} `{name}`: {parsed}"
            );
        }
    }

    // A name that fits another task is refused, naming the task's metrics.
    let uris = [
        "models/classification-model-0",
        "models/classification-model-1",
    ];
    s.err(
        "compare_models",
        json!({"model_uris": uris, "test_data_uri": "datasets/d.csv", "metric": "rmse"}),
        "`rmse` is a regression metric, not a classification one; use one of accuracy, f1,",
    )
    .await;
    // Two names of one metric in one registration are refused rather than one silently lost.
    s.err(
        "register_model",
        json!({"model_name": "twice", "model_uri": uris[0], "metrics": {"f1": 0.5, "F1_macro": 0.6}}),
        "metric `f1_macro` is given twice",
    )
    .await;
    let listed: Value = s
        .ok(
            "search_models",
            json!({"order": {"metric": {"name": "F1 score"}}}),
        )
        .await;
    assert_eq!(
        listed["versions"][0]["name"], "classification-model",
        "{listed}"
    );
}
