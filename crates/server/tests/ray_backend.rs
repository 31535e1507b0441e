//! The Ray training backend against a real local Ray head (`pip install 'ray[default]'`), which
//! runs `mlops-mcp train-worker` itself. Without `ray` the test is skipped loudly, except in CI.
//!
//! Its own test binary: a Ray head binds dozens of ports, so it runs apart from the tests that
//! start services of their own (cargo runs test binaries one after another).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::jobs::{err, ok, train_args, wait_for};
use mlops_testkit::{ChildService, port_after};
use serde_json::{Value, json};

/// A local Ray head started for one test, stopped (SIGTERM to `ray start --block`) when dropped.
struct RayHead {
    head: ChildService,
    url: String,
    _temp: tempfile::TempDir,
}

impl Drop for RayHead {
    fn drop(&mut self) {
        // `ray start --block` stops the processes it started on SIGTERM; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.head.id().to_string()])
            .status();
        self.head.wait_exit(Duration::from_secs(40));
    }
}

/// Starts a Ray head with its dashboard (the Jobs API); without `ray` the caller skips loudly,
/// except in CI. Ray picks its own ports (`0`) and prints the dashboard's; only the Ray client
/// server needs a fixed port, so a start that fails is tried again on another.
async fn start_ray() -> Option<RayHead> {
    if let Err(e) = Command::new("ray").arg("--version").output() {
        assert!(
            !mlops_testkit::in_ci(),
            "ray is required in CI: {e}; pip install 'ray[default]'"
        );
        eprintln!("\n!!! SKIPPING a Ray test: cannot run ray ({e}); pip install 'ray[default]'\n");
        return None;
    }
    let mut failures = Vec::new();
    for _ in 0..3 {
        match try_start_ray().await {
            Ok(head) => return Some(head),
            Err(e) => failures.push(e),
        }
    }
    panic!(
        "the Ray head did not start in 3 tries:\n{}",
        failures.join("\n---\n")
    );
}

async fn try_start_ray() -> Result<RayHead, String> {
    let temp = tempfile::tempdir().unwrap();
    // Ray refuses 0 for this port alone; a port taken meanwhile fails the start, which is retried.
    let client_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut cmd = Command::new("ray");
    cmd.args([
        "start",
        "--head",
        "--block",
        "--num-cpus=1",
        "--disable-usage-stats",
    ])
    .args(["--include-dashboard=true", "--dashboard-host=127.0.0.1"])
    .args([
        "--port=0",
        "--dashboard-port=0",
        "--dashboard-agent-listen-port=0",
    ])
    .arg(format!("--ray-client-server-port={client_port}"))
    .arg("--temp-dir")
    .arg(temp.path().join("ray"));
    let head = ChildService::spawn(
        cmd,
        |line| port_after(line, "RAY_API_SERVER_ADDRESS='http://127.0.0.1:"),
        Duration::from_secs(120),
    )?;
    let head = RayHead {
        url: head.base_url(),
        head,
        _temp: temp,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/api/jobs/", head.url)).await
            && r.status().is_success()
        {
            return Ok(head);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the Ray head did not serve its Jobs API within 120 s:\n{}",
                head.head.output()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ray's record of the one job submitted for training job `job`.
async fn ray_job(url: &str, job: &str) -> Value {
    let jobs: Value = reqwest::get(format!("{url}/api/jobs/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prefix = format!("mlops-{job}-");
    let found: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            j["submission_id"]
                .as_str()
                .is_some_and(|s| s.starts_with(&prefix))
        })
        .collect();
    assert_eq!(found.len(), 1, "{jobs}");
    found[0].clone()
}

#[tokio::test]
async fn ray_runs_the_worker_and_the_job_reports_like_a_local_one() {
    let Some(ray) = start_ray().await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    common::jobs::generate(400, &home.path().join("datasets/train.csv"));
    let client = common::Server::connect_with(
        home.path(),
        &[
            ("MLOPS_TRAINING_BACKEND", "ray"),
            ("MLOPS_RAY_DASHBOARD_URL", &ray.url),
            ("MLOPS_TRAINING_POLL_SECONDS", "0.5"),
        ],
    )
    .await;

    let done = ok(
        &client,
        "train_supervised_classifier",
        train_args("ray-rf", "datasets/train.csv", json!({})),
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    let root = home.path().canonicalize().unwrap();
    assert_eq!(
        done["model_uri"],
        format!("file://{}/models/ray-rf", root.display())
    );
    assert!(
        done["metrics"]["train_accuracy"].as_f64().unwrap() > 0.8,
        "{done}"
    );
    // The tool returns once the worker's result is saved; Ray marks the job finished when the
    // worker process has exited, a moment later.
    let mut ran = ray_job(&ray.url, "ray-rf").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ["PENDING", "RUNNING"].contains(&ran["status"].as_str().unwrap_or_default())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ran = ray_job(&ray.url, "ray-rf").await;
    }
    assert_eq!(ran["status"], "SUCCEEDED", "{ran}");
    let entrypoint = ran["entrypoint"].as_str().unwrap();
    assert!(
        entrypoint.starts_with(common::BIN)
            && entrypoint.ends_with(&format!(
                "train-worker --spec file://{}/jobs/ray-rf/spec.json",
                root.display()
            )),
        "{entrypoint}"
    );
    assert_eq!(
        ran["runtime_env"]["env_vars"]["MLOPS_ARTIFACT_ROOT"],
        root.display().to_string()
    );
    let card = ok(&client, "load_model", json!({"model_uri": "models/ray-rf"})).await;
    assert_eq!(card["verified"], true);
    let eval = ok(
        &client,
        "evaluate_classifier",
        json!({"model_uri": "models/ray-rf", "test_data_uri": "datasets/train.csv"}),
    )
    .await;
    assert!(eval["accuracy"].as_f64().unwrap() > 0.8, "{eval}");

    // The worker's own error comes back as the tool's.
    let e = err(
        &client,
        "train_supervised_classifier",
        train_args(
            "ray-bad",
            "datasets/train.csv",
            json!({"target_column": "no_such_column"}),
        ),
    )
    .await;
    assert!(e.contains("no_such_column"), "{e}");

    // Cancelling stops the Ray job.
    ok(
        &client,
        "train_supervised_classifier",
        train_args(
            "ray-cancel",
            "datasets/train.csv",
            json!({"wait": false, "hyperparameters": {"n_estimators": 5000}}),
        ),
    )
    .await;
    ok(
        &client,
        "cancel_training_job",
        json!({"training_job_name": "ray-cancel"}),
    )
    .await;
    wait_for(&client, "ray-cancel", "cancelled", Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = ray_job(&ray.url, "ray-cancel").await;
        if job["status"] == "STOPPED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Ray job was not stopped: {job}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A tuning study runs each trial as a Ray job of its own, two at once.
    let study = ok(
        &client,
        "tune_hyperparameters",
        json!({
            "study_name": "ray-study", "task": "classification", "algorithm": "random_forest",
            "train_data_uri": "datasets/train.csv", "target_column": "label",
            "search_space": {"n_estimators": {"type": "int", "low": 5, "high": 30},
                             "max_depth": {"type": "int", "low": 2, "high": 8}},
            "n_trials": 4, "n_parallel": 2, "seed": 1
        }),
    )
    .await;
    assert_eq!(study["status"], "completed", "{study}");
    assert_eq!(study["trial_counts"]["complete"], 4, "{study}");
    let mut trials = Vec::new();
    for n in 0..4 {
        let job = ray_job(&ray.url, &format!("ray-study-trial-{n}")).await;
        let entrypoint = job["entrypoint"].as_str().unwrap();
        assert!(
            entrypoint.ends_with(&format!(
                "train-worker --spec file://{}/jobs/ray-study-trial-{n}/spec.json",
                root.display()
            )),
            "{entrypoint}"
        );
        trials.push(job);
    }
    // Two ran at once: some trial started before another had ended.
    let span = |j: &Value| {
        (
            j["start_time"].as_u64().unwrap(),
            j["end_time"].as_u64().unwrap_or(u64::MAX),
        )
    };
    let overlapping = trials.iter().enumerate().any(|(i, a)| {
        trials[i + 1..].iter().any(|b| {
            let ((a0, a1), (b0, b1)) = (span(a), span(b));
            a0 < b1 && b0 < a1
        })
    });
    assert!(overlapping, "{trials:?}");
}
