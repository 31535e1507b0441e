//! Hyperparameter tuning over MCP with the real binary: a study on real data (the breast cancer
//! set) beats the default settings and `train_best` keeps its score; the same seed draws the same
//! trials, a grid is run once, a validation table or a time limit is honoured, and the pruner
//! stops poor trials; bad studies are refused; a cancelled study stops at once; a `tune:` block in
//! an issue tunes before the workflow trains;
//! and on PostgreSQL a study whose server is killed is finished by another server without
//! running a finished trial again.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

const BREAST_CANCER: &str = include_str!("fixtures/breast_cancer.csv");

/// The breast cancer set under `datasets/`, split into train and test (stratified, seeded).
async fn breast_cancer(s: &Server) -> (String, String) {
    let path = s.path("datasets/breast_cancer.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, BREAST_CANCER).unwrap();
    let split = s
        .ok(
            "split_dataset",
            json!({"dataset_uri": "datasets/breast_cancer.csv", "stratify_column": "diagnosis",
                   "seed": 3, "train_fraction": 0.75, "validation_fraction": 0.0, "test_fraction": 0.25, "output_name": "bc"}),
        )
        .await;
    (
        split["train"]["uri"].as_str().unwrap().to_string(),
        split["test"]["uri"].as_str().unwrap().to_string(),
    )
}

/// Polls `get_tuning_study` until `done` holds (or fails after `secs`).
async fn until(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    study: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = common::call(client, "get_tuning_study", json!({"study_name": study})).await;
        assert!(!r.is_error, "{}", r.text);
        if done(&r.structured) {
            return r.structured;
        }
        assert!(
            Instant::now() < deadline,
            "after {secs} s: {}",
            r.structured
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn xgboost_space() -> Value {
    json!({
        "n_estimators": {"type": "int", "low": 20, "high": 300, "log": true},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": true},
        "max_depth": {"type": "int", "low": 1, "high": 8},
        "min_child_weight": {"type": "float", "low": 0.5, "high": 10.0, "log": true},
        "subsample": {"type": "float", "low": 0.5, "high": 1.0}
    })
}

#[tokio::test]
async fn a_study_on_real_data_beats_the_defaults_and_its_best_model_keeps_the_score() {
    let s = Server::start().await;
    let (train, test) = breast_cancer(&s).await;
    let reply = s
        .call(
            "tune_hyperparameters",
            json!({
                "study_name": "bc-xgb", "task": "classification", "algorithm": "xgboost",
                "train_data_uri": train, "target_column": "diagnosis",
                "search_space": xgboost_space(), "metric": "log loss", "n_trials": 30,
                "seed": 1, "train_best": true, "model_name": "bc-best"
            }),
        )
        .await;
    assert!(!reply.is_error, "{}", reply.text);
    let study = reply.structured;
    assert_eq!(study["status"], "completed", "{study}");
    // The plots come back as images and are saved beside the study.
    assert_eq!(reply.images, ["image/png"; 3], "{}", reply.text);
    for plot in study["plots"].as_array().unwrap() {
        let path = plot.as_str().unwrap().strip_prefix("file://").unwrap();
        assert!(
            std::fs::read(path).unwrap().starts_with(b"\x89PNG"),
            "{plot}"
        );
    }
    assert_eq!(study["plots"].as_array().unwrap().len(), 3, "{study}");
    assert_eq!(study["trial_counts"]["complete"], 30, "{study}");
    assert_eq!(study["direction"], "minimize");
    assert_eq!(study["evaluation"], "3-fold cross-validation");
    let baseline = study["baseline_value"].as_f64().unwrap();
    let best = study["best_trial"]["value"].as_f64().unwrap();
    eprintln!("cross-validated log loss: defaults {baseline:.4}, best of 30 trials {best:.4}");
    assert!(
        best < baseline * 0.97,
        "the best trial ({best}) should clearly beat the defaults ({baseline})"
    );
    let importance = study["parameter_importance"].as_array().unwrap();
    assert_eq!(importance.len(), 5, "{study}");
    let shares: f64 = importance
        .iter()
        .map(|i| i["importance"].as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-6, "{importance:?}");

    // The final model: trained with the best settings, the study in its lineage, and its score
    // on held-out rows close to the cross-validated one.
    let model = study["model_uri"].as_str().unwrap();
    assert!(model.ends_with("models/bc-best"), "{model}");
    let card = s.ok("load_model", json!({"model_uri": model})).await;
    let lineage = &card["metrics"]["tuning_study"];
    assert_eq!(lineage["study_name"], "bc-xgb", "{card}");
    assert_eq!(lineage["best_trial"], study["best_trial"]["number"]);
    for (k, v) in study["best_hyperparameters"].as_object().unwrap() {
        let used = &card["hyperparameters"][k];
        assert!(
            used == v
                || used
                    .as_f64()
                    .zip(v.as_f64())
                    .is_some_and(|(a, b)| (a - b).abs() < 1e-9),
            "{k}: {used} vs {v}"
        );
    }
    let eval = s
        .ok(
            "evaluate_classifier",
            json!({"model_uri": "models/bc-best", "test_data_uri": test}),
        )
        .await;
    let held_out = eval["log_loss"].as_f64().unwrap();
    eprintln!("held-out log loss of the final model: {held_out:.4}");
    if let Ok(dir) = std::env::var("TUNING_PLOTS_DIR") {
        for plot in study["plots"].as_array().unwrap() {
            let path = plot.as_str().unwrap().strip_prefix("file://").unwrap();
            let name = Path::new(path).file_name().unwrap();
            std::fs::copy(path, Path::new(&dir).join(name)).unwrap();
        }
    }
    assert!(
        (held_out - best).abs() < 0.06,
        "held-out {held_out} vs cross-validated {best}"
    );
}

#[tokio::test]
async fn seeds_grids_validation_tables_time_limits_and_the_pruner_behave_as_asked() {
    let s = Server::start().await;
    let (train, _) = breast_cancer(&s).await;
    let study = |name: &str, extra: Value| {
        let mut args = json!({
            "study_name": name, "task": "classification", "algorithm": "random_forest",
            "train_data_uri": train, "target_column": "diagnosis", "seed": 5,
            "search_space": {
                "n_estimators": {"type": "int", "low": 5, "high": 40},
                "min_samples_leaf": {"type": "int", "low": 1, "high": 150, "log": true},
                "max_features": ["sqrt", "log2", 0.5]
            },
            "n_trials": 16
        });
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        args
    };
    let params = |v: &Value| -> Vec<Value> {
        v["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["params"].clone())
            .collect()
    };
    let a = s
        .ok("tune_hyperparameters", study("seed-a", json!({})))
        .await;
    let b = s
        .ok("tune_hyperparameters", study("seed-b", json!({})))
        .await;
    assert_eq!(params(&a).len(), 16);
    assert_eq!(params(&a), params(&b), "same seed, same trials");
    let c = s
        .ok("tune_hyperparameters", study("seed-c", json!({"seed": 6})))
        .await;
    assert_ne!(params(&a), params(&c), "another seed, other trials");

    // Grid search stops when the grid is done; a validation table replaces the folds; a time
    // limit starts no trial after it.
    let grid = s
        .ok(
            "tune_hyperparameters",
            study(
                "grid",
                json!({"sampler": "grid", "n_trials": 100, "search_space": {
                    "n_estimators": [5, 10], "max_features": ["sqrt", "log2", 0.5]}}),
            ),
        )
        .await;
    assert_eq!(grid["trial_counts"]["complete"], 6, "{grid}");
    let mut seen: Vec<String> = params(&grid).iter().map(|p| p.to_string()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "every grid point once: {seen:?}");
    let validated = s
        .ok(
            "tune_hyperparameters",
            study(
                "validated",
                json!({"validation_data_uri": train, "n_trials": 3}),
            ),
        )
        .await;
    assert_eq!(
        validated["evaluation"],
        format!("the validation table {train}")
    );
    assert_eq!(validated["trial_counts"]["complete"], 3, "{validated}");
    assert!(
        validated["trials"][0]["fold_means"]
            .as_array()
            .unwrap()
            .len()
            == 1,
        "{validated}"
    );
    let started = Instant::now();
    let limited = s
        .ok(
            "tune_hyperparameters",
            study(
                "limited",
                json!({"timeout_seconds": 2, "n_trials": 10000, "search_space": {
                    "n_estimators": {"type": "int", "low": 50, "high": 100}}}),
            ),
        )
        .await;
    let complete = limited["trial_counts"]["complete"].as_u64().unwrap();
    assert_eq!(limited["status"], "completed", "{limited}");
    assert!((1..10000).contains(&complete), "{limited}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    let pruned = s
        .ok(
            "tune_hyperparameters",
            study(
                "pruned",
                json!({"pruner": "median", "cv_folds": 5, "n_trials": 24, "metric": "log_loss"}),
            ),
        )
        .await;
    let counts = &pruned["trial_counts"];
    eprintln!("median pruner: {counts}");
    assert!(counts["pruned"].as_u64().unwrap() > 0, "{pruned}");
    assert_eq!(
        counts["pruned"].as_u64().unwrap() + counts["complete"].as_u64().unwrap(),
        24
    );
    for t in pruned["trials"].as_array().unwrap() {
        let folds = t["fold_means"].as_array().unwrap().len();
        match t["status"].as_str().unwrap() {
            "pruned" => assert!(folds < 5, "{t}"),
            _ => assert_eq!(folds, 5, "{t}"),
        }
    }
}

#[tokio::test]
async fn bad_studies_are_refused_with_a_message_naming_the_problem() {
    let s = Server::start().await;
    let (train, _) = breast_cancer(&s).await;
    let base = json!({
        "task": "classification", "algorithm": "random_forest", "train_data_uri": train,
        "target_column": "diagnosis",
        "search_space": {"n_estimators": {"type": "int", "low": 10, "high": 50}}
    });
    let with = |change: Value| {
        let mut args = base.clone();
        args.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        args
    };
    for (change, expected) in [
        (json!({"search_space": {}}), "search_space"),
        (
            json!({"search_space": {"n_estimators": {"type": "int", "low": 50, "high": 10}}}),
            "inverted",
        ),
        (
            json!({"search_space": {"max_features": {"type": "float", "low": 0.3, "high": 0.3}}}),
            "empty range",
        ),
        (
            json!({"search_space": {"max_features": {"type": "float", "low": 0.0, "high": 0.5, "log": true}}}),
            "max_features",
        ),
        (
            json!({"search_space": {"n_trees": {"type": "int", "low": 10, "high": 50}}}),
            "search_space `n_trees`",
        ),
        (
            json!({"search_space": {"max_features": {"type": "categorical", "choices": []}}}),
            "max_features",
        ),
        (
            json!({"search_space": {"min_samples_leaf": {"type": "int", "low": 0, "high": 5}}}),
            "search_space `min_samples_leaf`",
        ),
        (json!({"n_trials": 0}), "n_trials must be between 1"),
        (json!({"metric": "rmse"}), "rmse scores regression models"),
        (
            json!({"metric": "silhouette"}),
            "silhouette scores clustering models",
        ),
        (
            json!({"metric": "accuracy", "direction": "minimize"}),
            "contradicts accuracy",
        ),
        (
            json!({"algorithm": "dbscan"}),
            "cannot be tuned for classification",
        ),
        (
            json!({"train_data_uri": "datasets/missing.csv"}),
            "missing.csv",
        ),
        (json!({"target_column": "nope"}), "nope"),
    ] {
        s.err("tune_hyperparameters", with(change), expected).await;
    }
    let listed = s.ok("list_tuning_studies", json!({})).await;
    assert_eq!(
        listed["studies"],
        json!([]),
        "a refused study leaves no record"
    );
    s.err(
        "get_tuning_study",
        json!({"study_name": "never"}),
        "no tuning study named `never`",
    )
    .await;
}

/// A table big enough that one trial takes a noticeable moment.
fn big_table(home: &Path, rows: usize) -> String {
    common::generate("classification", rows, &home.join("datasets/big.csv"));
    "datasets/big.csv".into()
}

#[tokio::test]
async fn a_cancelled_study_stops_its_running_trials_within_a_second() {
    let s = Server::start().await;
    let data = big_table(s.home.path(), 20_000);
    let started = s
        .ok(
            "tune_hyperparameters",
            json!({
                "study_name": "long", "task": "classification", "algorithm": "random_forest",
                "train_data_uri": data, "target_column": "label", "n_trials": 50, "n_parallel": 2,
                "search_space": {"n_estimators": {"type": "int", "low": 200, "high": 400}},
                "wait": false
            }),
        )
        .await;
    assert_eq!(started["status"], "running");
    until(&s.client, "long", 60, |v| {
        v["trial_counts"]["running"].as_u64() >= Some(1)
    })
    .await;
    let asked = Instant::now();
    let cancelled = s
        .ok("cancel_tuning_study", json!({"study_name": "long"}))
        .await;
    let stopped = until(&s.client, "long", 5, |v| {
        v["status"] == "cancelled" && v["progress"].is_null()
    })
    .await;
    let took = asked.elapsed();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(stopped["trial_counts"]["running"], 0, "{stopped}");
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
    s.err(
        "cancel_tuning_study",
        json!({"study_name": "long"}),
        "already ended (cancelled)",
    )
    .await;
}

#[tokio::test]
async fn a_killed_server_s_study_is_finished_by_another_without_repeating_a_trial() {
    let Some((url, _schema)) = mlops_db::testing::fresh_pg_schema("tunekill").await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("MLOPS_DATABASE_URL", url.as_str()),
        ("MLOPS_TUNING_LEASE_SECONDS", "2"),
    ];
    let data = big_table(home.path(), 6_000);
    let (a, a_pid) = Server::spawn(home.path(), &env).await;
    let ok = |r: common::Reply| {
        assert!(!r.is_error, "{}", r.text);
        r.structured
    };
    ok(common::call(
        &a,
        "tune_hyperparameters",
        json!({
            "study_name": "durable", "task": "classification", "algorithm": "random_forest",
            "train_data_uri": data, "target_column": "label", "n_trials": 12, "seed": 2,
            "search_space": {"n_estimators": {"type": "int", "low": 30, "high": 80},
                             "max_depth": {"type": "int", "low": 2, "high": 12}},
            "wait": false
        }),
    )
    .await);
    let before = until(&a, "durable", 120, |v| {
        v["trial_counts"]["complete"].as_u64() >= Some(3)
            && v["trial_counts"]["running"].as_u64() >= Some(1)
    })
    .await;
    std::process::Command::new("kill")
        .args(["-9", &a_pid.to_string()])
        .status()
        .unwrap();
    // What A finished, as it was when A died (read again after the kill, from the database).
    let b = Server::connect_with(home.path(), &env).await;
    let at_kill = ok(common::call(&b, "get_tuning_study", json!({"study_name": "durable"})).await);
    let finished_by_a: Vec<Value> = at_kill["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "complete")
        .cloned()
        .collect();
    assert!(finished_by_a.len() >= before["trial_counts"]["complete"].as_u64().unwrap() as usize);

    let done = until(&b, "durable", 180, |v| v["status"] != "running").await;
    assert_eq!(done["status"], "completed", "{done}");
    let trials = done["trials"].as_array().unwrap();
    let complete: Vec<&Value> = trials
        .iter()
        .filter(|t| t["status"] == "complete")
        .collect();
    let interrupted = trials
        .iter()
        .filter(|t| t["status"] == "interrupted")
        .count();
    eprintln!(
        "{} finished before the kill, {interrupted} interrupted, {} trials in all",
        finished_by_a.len(),
        trials.len()
    );
    assert_eq!(complete.len(), 12, "{done}");
    assert!(
        interrupted >= 1,
        "the trial running at the kill is marked: {done}"
    );
    assert_eq!(trials.len(), 12 + interrupted, "no trial ran twice: {done}");
    for t in &finished_by_a {
        let now = complete
            .iter()
            .find(|c| c["number"] == t["number"])
            .unwrap();
        assert_eq!(
            now["value"], t["value"],
            "a finished trial is kept as it was"
        );
        assert_eq!(now["seconds"], t["seconds"]);
    }
}

#[tokio::test]
async fn a_workflow_with_a_tune_block_trains_with_the_best_settings() {
    let s = Server::start().await;
    s.generate("classification", 1500, "datasets/c.csv");
    let body = "Please tune and train.\n\n```yaml\ndataset: datasets/c.csv\ntarget_column: label\ntask_type: classification\nalgorithm: random_forest\nhyperparameters:\n  n_estimators: 30\nmetric: f1\nthreshold: 0.5\nmax_retry: 0\nnotify: [github]\nmodel_name: tuned\nseed: 4\ntune:\n  n_trials: 6\n  search_space:\n    max_depth: {type: int, low: 2, high: 10}\n    min_samples_leaf: {type: int, low: 1, high: 30, log: true}\n```\n";
    let started = s
        .ok(
            "start_workflow",
            json!({"body": body, "timing": {"backoff_ms": 20}}),
        )
        .await;
    let id = started["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let r = s
            .ok("get_workflow_status", json!({"execution_id": id}))
            .await;
        if r["status"] != "running" {
            break r;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    let tuned = &done["context"]["outputs"]["TuneHyperparameters"];
    assert_eq!(tuned["tuned"], true, "{done}");
    assert_eq!(tuned["trials_complete"], 6);
    assert_eq!(
        tuned["metric"], "f1_macro",
        "the issue's `f1` is the vocabulary's f1_macro"
    );
    let best = tuned["best_hyperparameters"].as_object().unwrap();
    assert_eq!(
        best["n_estimators"], 30,
        "the fixed setting is kept: {best:?}"
    );

    // The study the workflow ran, and the model trained with its best settings.
    let study = s
        .ok(
            "get_tuning_study",
            json!({"study_name": tuned["study_name"]}),
        )
        .await;
    assert_eq!(study["status"], "completed");
    let model = done["context"]["outputs"]["TrainModel"]["model_uri"]
        .as_str()
        .unwrap();
    let card = s.ok("load_model", json!({"model_uri": model})).await;
    for key in ["max_depth", "min_samples_leaf", "n_estimators"] {
        assert_eq!(card["hyperparameters"][key], best[key], "{key}: {card}");
    }
    let dir = s.path("history-repo/training_history");
    let record = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .next()
        .unwrap();
    assert!(
        record.contains(&format!(
            "Tuned by study `{}`: 6 trials",
            tuned["study_name"].as_str().unwrap()
        )),
        "{record}"
    );
}
