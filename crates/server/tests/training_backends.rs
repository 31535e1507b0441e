//! The SageMaker training backend, end to end through the real binary against moto (the AWS
//! stand-in): the server creates the training job; moto runs no containers, so the test plays the
//! container and runs `mlops-mcp train-worker --spec <uri>` itself. Without moto_server the test is
//! skipped loudly, except in CI. (Ray has its own test binary, `ray_backend.rs`: its head binds
//! many ports and is best kept apart from other tests.)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::jobs::{err, generate, ok, train_args, wait_for};
use mlops_aws::{AwsClient, AwsConfig, Service};
use serde_json::{Value, json};

const BUCKET: &str = "mlops-train";
const ROLE: &str = "arn:aws:iam::123456789012:role/mlops-training";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-mcp:test";

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
