//! AWS through a local moto server (the AWS stand-in): artifacts on S3 (the artifact root in a
//! bucket, processed data written with SSE-KMS and read back), and the model registry on SageMaker
//! Model Registry (`MLOPS_REGISTRY=sagemaker`) behind the same tools.
//! moto is started here; without `moto_server` the test is skipped loudly, except in CI.

mod common;

use serde_json::json;

/// A raw, unsigned HTTP request to moto (which does not check signatures); returns the response head.
#[tokio::test]
async fn processed_data_round_trips_through_s3_with_kms() {
    let Some(moto) = common::start_moto() else {
        return;
    };
    assert!(
        moto.status("PUT", "/mlops-test", b"")
            .starts_with("HTTP/1.1 200")
    );
    let home = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    common::generate("classification", 500, &local.path().join("raw.csv"));
    let endpoint = moto.endpoint();
    let data_dirs = local.path().display().to_string();
    let client = common::Server::connect_with(
        home.path(),
        &[
            ("MLOPS_S3_BUCKET", "mlops-test"),
            (
                "MLOPS_KMS_KEY_ID",
                "arn:aws:kms:us-east-1:123456789012:key/test-key",
            ),
            ("MLOPS_DATA_DIRS", &data_dirs),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .await;

    let raw = local.path().join("raw.csv").display().to_string();
    let saved = common::call(
        &client,
        "save_processed_data",
        json!({"dataset_uri": raw, "output_name": "s3demo"}),
    )
    .await;
    assert!(!saved.is_error, "{}", saved.text);
    let uri = saved.structured["uri"].as_str().unwrap().to_string();
    assert_eq!(uri, "s3://mlops-test/processed/s3demo/raw.parquet");

    // The object exists in the bucket, encrypted with the configured KMS key (moto answers reads
    // of SSE-KMS objects only when signed, so boto3 asks).
    let head = std::process::Command::new("python3")
        .args(["-c", "import boto3,sys; h=boto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing').head_object(Bucket='mlops-test',Key='processed/s3demo/raw.parquet'); print(h['ServerSideEncryption'], h['SSEKMSKeyId'])"])
        .arg(&endpoint)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(
        head,
        "aws:kms arn:aws:kms:us-east-1:123456789012:key/test-key"
    );

    let loaded = common::call(&client, "load_dataset", json!({"dataset_uri": uri})).await;
    assert!(!loaded.is_error, "{}", loaded.text);
    assert_eq!(loaded.structured["row_count"], 500);

    // The whole data path works on S3: split, preprocess, train from the bucket.
    let split = common::call(
        &client,
        "split_dataset",
        json!({"dataset_uri": uri, "stratify_column": "label"}),
    )
    .await;
    assert!(!split.is_error, "{}", split.text);
    assert!(
        split.structured["train"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("s3://mlops-test/processed/s3demo/")
    );
    let job = common::call(&client, "train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": split.structured["train"]["uri"], "target_column": "label",
        "training_job_name": "s3-rf", "hyperparameters": {"n_estimators": 10}
    }))
    .await;
    assert!(!job.is_error, "{}", job.text);
    assert_eq!(job.structured["model_uri"], "s3://mlops-test/models/s3-rf");
    let eval = common::call(
        &client,
        "evaluate_classifier",
        json!({"model_uri": "models/s3-rf", "test_data_uri": split.structured["test"]["uri"]}),
    )
    .await;
    assert!(!eval.is_error, "{}", eval.text);
    assert!(eval.structured["accuracy"].as_f64().unwrap() > 0.8);

    let missing_bucket = common::call(
        &client,
        "load_dataset",
        json!({"dataset_uri": "s3://no-such-bucket/x.csv"}),
    )
    .await;
    assert!(missing_bucket.is_error);
    assert!(
        missing_bucket.text.contains("no-such-bucket"),
        "{}",
        missing_bucket.text
    );
    let missing_key = common::call(
        &client,
        "load_dataset",
        json!({"dataset_uri": "s3://mlops-test/datasets/none.csv"}),
    )
    .await;
    assert!(
        missing_key.is_error && missing_key.text.contains("does not exist"),
        "{}",
        missing_key.text
    );
    assert!(
        !missing_key.text.contains("testing"),
        "credentials must not leak: {}",
        missing_key.text
    );
}

#[tokio::test]
async fn the_registry_tools_work_on_sagemaker() {
    let Some(moto) = common::start_moto() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let endpoint = moto.endpoint();
    let env = [
        ("MLOPS_REGISTRY", "sagemaker"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let client = common::Server::connect_with(home.path(), &env).await;
    common::generate("classification", 400, &home.path().join("datasets/c.csv"));
    let trained = common::call(
        &client,
        "train_supervised_classifier",
        json!({"algorithm": "random_forest", "train_data_uri": "datasets/c.csv",
               "target_column": "label", "training_job_name": "sm-rf",
               "hyperparameters": {"n_estimators": 10}}),
    )
    .await;
    assert!(!trained.is_error, "{}", trained.text);
    let model_uri = trained.structured["model_uri"].clone();
    for expected in 1..=2 {
        let r = common::call(
            &client,
            "register_model",
            json!({"model_name": "churn-sm", "model_uri": model_uri, "metrics": {"accuracy": 0.9}}),
        )
        .await;
        assert!(!r.is_error, "{}", r.text);
        assert_eq!(r.structured["version"], expected, "{}", r.structured);
    }
    let approved = common::call(
        &client,
        "set_model_approval",
        json!({"model_name": "churn-sm", "version": 2, "approval_status": "Approved"}),
    )
    .await;
    assert!(!approved.is_error, "{}", approved.text);
    let got = common::call(
        &client,
        "get_model_version",
        json!({"model_name": "churn-sm", "version": 2}),
    )
    .await;
    assert_eq!(
        got.structured["approval_status"], "Approved",
        "{}",
        got.structured
    );
    assert_eq!(got.structured["metrics"]["accuracy"], 0.9);
    let found = common::call(&client, "search_models", json!({"name_pattern": "churn-*"})).await;
    assert_eq!(found.structured["total"], 2, "{}", found.structured);
    // SageMaker's naming rule is explained, not hidden behind an AWS error.
    let bad = common::call(
        &client,
        "register_model",
        json!({"model_name": "churn_sm", "model_uri": model_uri}),
    )
    .await;
    assert!(
        bad.is_error && bad.text.contains("SageMaker"),
        "{}",
        bad.text
    );
}
