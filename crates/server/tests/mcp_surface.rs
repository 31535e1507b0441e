//! Prompts and resources over MCP: the recipes listed and filled in; model cards, reports, plots
//! and per-row results read as `mlops://` resources, paged; bad names, URIs and cursors refused.

mod common;

use common::Server;
use rmcp::model::{
    CallToolRequestParams, GetPromptRequestParams, PaginatedRequestParams,
    ReadResourceRequestParams, ResourceContents,
};
use serde_json::json;

#[tokio::test]
async fn prompts_and_resources() {
    let s = Server::start().await;

    let prompts = s.client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["train_model", "evaluate_and_compare", "run_issue_workflow"]
    );
    let args = serde_json::Map::from_iter([
        ("dataset_uri".to_string(), json!("datasets/c.csv")),
        ("target_column".to_string(), json!("label")),
    ]);
    let p = s
        .client
        .get_prompt(GetPromptRequestParams::new("train_model").with_arguments(args))
        .await
        .unwrap();
    let text = serde_json::to_string(&p.messages).unwrap();
    assert!(
        text.contains("preprocess_supervised with target_column label"),
        "{text}"
    );
    assert!(text.contains("Train a classification model"), "{text}");
    assert!(
        text.contains("train_supervised_classifier") && !text.contains("{task_type}"),
        "{text}"
    );
    let missing = s
        .client
        .get_prompt(GetPromptRequestParams::new("train_model"))
        .await
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("needs the argument `dataset_uri`"),
        "{missing}"
    );
    let unknown = s
        .client
        .get_prompt(GetPromptRequestParams::new("nope"))
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("unknown prompt `nope`"),
        "{unknown}"
    );

    // A model, its evaluation report and plots, and a clustering result, as resources.
    s.generate("classification", 800, "datasets/c.csv");
    s.generate("clustering", 200, "datasets/blobs.csv");
    s.ok(
        "train_supervised_classifier",
        json!({
            "algorithm": "xgboost", "train_data_uri": "datasets/c.csv", "target_column": "label",
            "training_job_name": "m1", "hyperparameters": {"n_estimators": 20}
        }),
    )
    .await;
    // The reply links the artifacts it names as resources.
    let report = s
        .client
        .call_tool(
            CallToolRequestParams::new("generate_evaluation_report").with_arguments(
                serde_json::Map::from_iter([
                    ("model_uri".to_string(), json!("models/m1")),
                    ("test_data_uri".to_string(), json!("datasets/c.csv")),
                ]),
            ),
        )
        .await
        .unwrap();
    let links: Vec<String> = report
        .content
        .iter()
        .filter_map(|c| c.as_resource_link().map(|r| r.uri.to_string()))
        .collect();
    for expected in [
        "mlops://models/m1",
        "mlops://evaluations/m1/report.md",
        "mlops://evaluations/m1/report.html",
    ] {
        assert!(
            links.iter().any(|l| l == expected),
            "{expected} not in {links:?}"
        );
    }
    s.ok("train_unsupervised_clustering", json!({
        "algorithm": "kmeans", "data_uri": "datasets/blobs.csv", "training_job_name": "km", "hyperparameters": {"n_clusters": 4}
    }))
    .await;
    s.ok(
        "commit_training_history",
        json!({"content": "# Training run\n\naccuracy 0.93\n", "date": "2026-11-26"}),
    )
    .await;
    let templates = s.client.list_all_resource_templates().await.unwrap();
    assert_eq!(templates.len(), 7);
    let resources = s.client.list_all_resources().await.unwrap();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    for expected in [
        "mlops://models/m1",
        "mlops://models/km",
        "mlops://evaluations/m1/report.md",
        "mlops://evaluations/m1/confusion_matrix.png",
        "mlops://results/km/clusters.csv",
        "mlops://datasets/c.csv",
        "mlops://history/train-20261126-001.md",
    ] {
        assert!(uris.contains(&expected), "{expected} missing from {uris:?}");
    }
    let read = |uri: &str| s.client.read_resource(ReadResourceRequestParams::new(uri));
    let card = read("mlops://models/m1").await.unwrap();
    let ResourceContents::TextResourceContents {
        text, mime_type, ..
    } = &card.contents[0]
    else {
        panic!("a model card is text")
    };
    assert_eq!(mime_type.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(text).unwrap()["algorithm"],
        "xgboost"
    );
    let report = read("mlops://evaluations/m1/report.md").await.unwrap();
    assert!(
        matches!(&report.contents[0], ResourceContents::TextResourceContents { text, .. } if text.contains("## Metrics"))
    );
    let plot = read("mlops://evaluations/m1/roc_curve.png").await.unwrap();
    assert!(
        matches!(&plot.contents[0], ResourceContents::BlobResourceContents { mime_type, .. } if mime_type.as_deref() == Some("image/png"))
    );
    let history = read("mlops://history/train-20261126-001.md").await.unwrap();
    assert!(
        matches!(&history.contents[0], ResourceContents::TextResourceContents { text, .. } if text.contains("accuracy 0.93"))
    );
    let data = read("mlops://datasets/c.csv").await.unwrap();
    assert!(
        matches!(&data.contents[0], ResourceContents::TextResourceContents { text, .. } if text.lines().count() == 801)
    );
    for bad in [
        "mlops://models/../../etc",
        "mlops://datasets/nope.csv",
        "mlops://history/train-20261126-002.md",
        "mlops://history/../secrets",
        "mlops://secrets/x",
        "file:///etc/passwd",
        "mlops://models/none",
    ] {
        let e = read(bad).await.unwrap_err();
        assert!(e.to_string().contains("no resource"), "{bad}: {e}");
    }
    let e = s
        .client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some("zzz".into())),
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid cursor"), "{e}");
}
