//! Remote training backends, end to end through the real binary. SageMaker against moto (the AWS
//! stand-in): the server creates the training job; moto runs no containers, so the test plays the
//! container and runs `mlops-mcp train-worker --spec <uri>` itself. Ray against a real local Ray
//! head (`pip install 'ray[default]'`), which runs the worker itself. Without moto_server or ray
//! the tests are skipped loudly, except in CI.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mlops_aws::{AwsClient, AwsConfig, Service};
use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

const BUCKET: &str = "mlops-train";
const ROLE: &str = "arn:aws:iam::123456789012:role/mlops-training";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-mcp:test";

/// A raw, unsigned HTTP request to moto (which does not check signatures); returns the status line.
fn generate(rows: usize, out: &Path) {
    let status = Command::new(common::BIN)
        .args(["datasets", "generate", "classification", "--rows"])
        .arg(rows.to_string())
        .arg("--out")
        .arg(out)
        .env("LOG_LEVEL", "WARN")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = common::call(client, tool, args.clone()).await;
    assert!(!r.is_error, "{tool} {args}: {}", r.text);
    r.structured
}

async fn err(client: &Client, tool: &str, args: Value) -> String {
    let r = common::call(client, tool, args.clone()).await;
    assert!(r.is_error, "{tool} {args} should fail, got {}", r.text);
    r.text
}

/// Polls `get_training_metrics` until the job has `status`.
async fn wait_for(client: &Client, job: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let report = ok(
            client,
            "get_training_metrics",
            json!({"training_job_name": job}),
        )
        .await;
        if report["status"] == status {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "job {job} is not {status} after {within:?}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn train_args(job: &str, data: &str, extra: Value) -> Value {
    let mut args = json!({
        "algorithm": "random_forest", "train_data_uri": data, "target_column": "label",
        "training_job_name": job, "hyperparameters": {"n_estimators": 20}
    });
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    args
}

/// The one SageMaker training job moto holds for `job` (the server names it `mlops-<job>-<id>`).
async fn sagemaker_job(sagemaker: &AwsClient, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = sagemaker
            .call(
                "ListTrainingJobs",
                json!({"NameContains": format!("mlops-{job}-")}),
            )
            .await
            .unwrap();
        if let [summary] = list["TrainingJobSummaries"].as_array().unwrap().as_slice() {
            let name = &summary["TrainingJobName"];
            return sagemaker
                .call("DescribeTrainingJob", json!({"TrainingJobName": name}))
                .await
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no SageMaker job for {job}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sagemaker_jobs_run_the_worker_and_report_like_local_ones() {
    let Some(moto) = common::start_moto() else {
        return;
    };
    let endpoint = moto.endpoint();
    assert!(
        moto.status("PUT", &format!("/{BUCKET}"), b"")
            .contains("200")
    );
    let local = tempfile::tempdir().unwrap();
    let csv = local.path().join("train.csv");
    generate(400, &csv);
    let put = moto.status(
        "PUT",
        &format!("/{BUCKET}/prefix/datasets/train.csv"),
        &std::fs::read(&csv).unwrap(),
    );
    assert!(put.contains("200"), "{put}");
    let root = format!("s3://{BUCKET}/prefix");
    let data_dirs = local.path().display().to_string();
    let aws: Vec<(&str, &str)> = vec![
        ("MLOPS_ARTIFACT_ROOT", &root),
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let mut env = aws.clone();
    env.extend([
        ("MLOPS_TRAINING_BACKEND", "sagemaker"),
        ("MLOPS_SAGEMAKER_IMAGE", IMAGE),
        ("MLOPS_TRAINING_POLL_SECONDS", "0.2"),
        ("MLOPS_DATA_DIRS", &data_dirs),
    ]);
    let home = tempfile::tempdir().unwrap();

    // Without a role nothing starts, and the tool says which setting is missing.
    let no_role = common::Server::connect_with(home.path(), &env).await;
    let e = err(
        &no_role,
        "train_supervised_classifier",
        train_args("no-role", "datasets/train.csv", json!({})),
    )
    .await;
    assert!(e.contains("SAGEMAKER_ROLE_ARN is not set"), "{e}");
    let head = moto.status(
        "HEAD",
        &format!("/{BUCKET}/prefix/jobs/no-role/spec.json"),
        b"",
    );
    assert!(head.contains("404"), "{head}");
    no_role.cancel().await.unwrap();

    env.push(("SAGEMAKER_ROLE_ARN", ROLE));
    let client = common::Server::connect_with(home.path(), &env).await;
    // A SageMaker job cannot read this machine's files.
    let e = err(
        &client,
        "train_supervised_classifier",
        train_args("local-data", &csv.display().to_string(), json!({})),
    )
    .await;
    assert!(e.contains("is on this machine"), "{e}");

    let started = ok(
        &client,
        "train_supervised_classifier",
        train_args(
            "sm-rf",
            "datasets/train.csv",
            json!({"wait": false, "max_runtime_seconds": 600}),
        ),
    )
    .await;
    assert_eq!(started["status"], "running");

    // The training job as SageMaker got it.
    let aws_config = AwsConfig::with_static_credentials("us-east-1", "testing", "testing")
        .unwrap()
        .with_endpoint(&endpoint)
        .unwrap();
    let sagemaker = AwsClient::json(&aws_config, Service::SAGEMAKER, "SageMaker");
    let described = sagemaker_job(&sagemaker, "sm-rf").await;
    let spec_uri = format!("{root}/jobs/sm-rf/spec.json");
    assert_eq!(described["RoleArn"], ROLE);
    let algorithm = &described["AlgorithmSpecification"];
    assert_eq!(algorithm["TrainingImage"], IMAGE);
    assert_eq!(algorithm["TrainingInputMode"], "File");
    assert_eq!(
        algorithm["ContainerEntrypoint"],
        json!(["mlops-mcp", "train-worker"])
    );
    assert_eq!(algorithm["ContainerArguments"], json!(["--spec", spec_uri]));
    assert_eq!(
        described["OutputDataConfig"]["S3OutputPath"],
        format!("{root}/jobs/sm-rf/sagemaker")
    );
    assert_eq!(described["ResourceConfig"]["InstanceType"], "ml.m5.xlarge");
    assert_eq!(described["ResourceConfig"]["InstanceCount"], 1);
    assert_eq!(described["StoppingCondition"]["MaxRuntimeInSeconds"], 600);

    // Play the container: the worker reads the spec and data from S3 and writes the model there.
    let worker_home = tempfile::tempdir().unwrap();
    let worker = Command::new(common::BIN)
        .args(["train-worker", "--spec", &spec_uri])
        .env_clear()
        .envs(aws.iter().copied())
        .env("MLOPS_HOME", worker_home.path())
        .env("LOG_LEVEL", "WARN")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&worker.stdout);
    assert!(
        worker.status.success(),
        "train-worker failed: {stdout}{}",
        String::from_utf8_lossy(&worker.stderr)
    );
    assert!(stdout.contains("completed"), "{stdout}");

    let done = wait_for(&client, "sm-rf", "completed", Duration::from_secs(30)).await;
    assert_eq!(done["model_uri"], format!("{root}/models/sm-rf"));
    assert_eq!(done["algorithm"], "random_forest");
    assert!(
        done["metrics"]["train_accuracy"].as_f64().unwrap() > 0.8,
        "{done}"
    );
    assert!(!done["metrics_history"].as_array().unwrap().is_empty());
    let card = ok(&client, "load_model", json!({"model_uri": "models/sm-rf"})).await;
    assert_eq!(card["verified"], true);
    let eval = ok(
        &client,
        "evaluate_classifier",
        json!({"model_uri": "models/sm-rf", "test_data_uri": "datasets/train.csv"}),
    )
    .await;
    assert!(eval["accuracy"].as_f64().unwrap() > 0.8, "{eval}");

    // Cancelling stops the SageMaker job (moto does not implement StopTrainingJob: then the job
    // is cancelled here and its message says the stop failed).
    ok(
        &client,
        "train_supervised_classifier",
        train_args("sm-cancel", "datasets/train.csv", json!({"wait": false})),
    )
    .await;
    let described = sagemaker_job(&sagemaker, "sm-cancel").await;
    ok(
        &client,
        "cancel_training_job",
        json!({"training_job_name": "sm-cancel"}),
    )
    .await;
    let cancelled = wait_for(&client, "sm-cancel", "cancelled", Duration::from_secs(30)).await;
    let message = cancelled["message"].as_str().unwrap_or_default();
    if message.contains("could not stop") {
        assert!(message.contains("StopTrainingJob"), "{message}");
    } else {
        let now = sagemaker
            .call(
                "DescribeTrainingJob",
                json!({"TrainingJobName": described["TrainingJobName"]}),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                now["TrainingJobStatus"].as_str(),
                Some("Stopping" | "Stopped")
            ),
            "{now}"
        );
    }
    let text = format!("{cancelled}{done}");
    assert!(
        !text.contains("testing"),
        "credentials must not leak: {text}"
    );
}

/// A local Ray head started for one test, stopped (SIGTERM to `ray start --block`) when dropped.
struct RayHead {
    child: Child,
    url: String,
    _temp: tempfile::TempDir,
}

impl Drop for RayHead {
    fn drop(&mut self) {
        // `ray start --block` stops the processes it started on SIGTERM; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a Ray head with its dashboard (the Jobs API) on free ports; without `ray` the caller
/// skips loudly, except in CI.
async fn start_ray() -> Option<RayHead> {
    if let Err(e) = Command::new("ray").arg("--version").output() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ray is required in CI: {e}; pip install 'ray[default]'"
        );
        eprintln!("\n!!! SKIPPING a Ray test: cannot run ray ({e}); pip install 'ray[default]'\n");
        return None;
    }
    let temp = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(temp.path().join("ray-start.log")).unwrap();
    let dashboard = common::free_port();
    let port = |p: u16| p.to_string();
    let child = Command::new("ray")
        .args([
            "start",
            "--head",
            "--block",
            "--num-cpus=1",
            "--disable-usage-stats",
        ])
        .args(["--include-dashboard=true", "--dashboard-host=127.0.0.1"])
        .args(["--dashboard-port", &port(dashboard)])
        .args(["--port", &port(common::free_port())])
        .args(["--ray-client-server-port", &port(common::free_port())])
        .args(["--dashboard-agent-listen-port", &port(common::free_port())])
        .arg("--temp-dir")
        .arg(temp.path().join("ray"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{dashboard}");
    let head = RayHead {
        child,
        url,
        _temp: temp,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/api/jobs/", head.url)).await
            && r.status().is_success()
        {
            return Some(head);
        }
        let log =
            std::fs::read_to_string(head._temp.path().join("ray-start.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "the Ray head did not serve its Jobs API within 120 s:\n{log}"
        );
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
    generate(400, &home.path().join("datasets/train.csv"));
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
}
