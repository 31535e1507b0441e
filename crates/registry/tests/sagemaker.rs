//! The SageMaker registry against moto (`moto_server`, a local stand-in for AWS), each test on a
//! fresh server of its own: the registry's contract, and what SageMaker's own limits refuse. moto
//! must be installed (`pip install 'moto[server]'`): without it these tests fail, they are not
//! skipped.

mod contract;

use std::sync::Arc;
use std::time::Duration;

use mlops_aws::{AwsClient, AwsConfig, RetryPolicy, Service};
use mlops_registry::{Registry, SageMakerRegistry};
use mlops_testkit::Moto;
use serde_json::json;

/// A client configuration for `moto`, with fast retries.
fn config(moto: &Moto) -> AwsConfig {
    AwsConfig::with_static_credentials("us-east-1", "AKIDMOTOTEST", "moto-test-secret-key")
        .unwrap()
        .with_endpoint(&moto.endpoint())
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
}

/// A registry on a fresh moto; the server lives as long as the returned guard.
async fn registry() -> (SageMakerRegistry, Moto) {
    let moto = Moto::start();
    let reg = SageMakerRegistry::new(&config(&moto));
    reg.check()
        .await
        .expect("moto answers ListModelPackageGroups");
    (reg, moto)
}

/// The same, as the contract takes it.
async fn moto_registry() -> Option<(Arc<dyn Registry>, Moto)> {
    let (reg, moto) = registry().await;
    Some((Arc::new(reg), moto))
}

mod moto {
    // Every registration is a few HTTP calls to moto: fewer racers than on SQL.
    crate::contract::contract_tests!(super::moto_registry, racers = 20);
}

#[tokio::test]
async fn bad_input_is_refused_with_clear_errors() {
    let (reg, moto) = registry().await;
    // SageMaker group names: letters, digits and hyphens only.
    let e = reg
        .register(contract::version("fraud_x", 0.9, &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model name `fraud_x` cannot be used with the SageMaker registry"),
        "{e}"
    );
    let e = reg.get("a.b", 1).await.unwrap_err().to_string();
    assert!(e.contains("letters, digits and hyphens"), "{e}");
    let mut nan = contract::version("m", 0.9, &[]);
    nan.metrics.insert("loss".into(), f64::NAN);
    let e = reg.register(nan).await.unwrap_err().to_string();
    assert!(e.contains("metric `loss` is NaN"), "{e}");
    let mut huge = contract::version("m", 0.9, &[]);
    huge.parameters = json!({"blob": "x".repeat(10_000)});
    let e = reg.register(huge).await.unwrap_err().to_string();
    assert!(
        e.contains("too large for SageMaker") && e.contains("at most 9408"),
        "{e}"
    );
    // Nothing was created by the refused calls.
    assert!(
        reg.get("m", 1)
            .await
            .unwrap_err()
            .to_string()
            .contains("no model named `m`")
    );

    // A large version is spread over several metadata values, each within SageMaker's limits
    // (moto does not enforce them, so check what was sent).
    let mut big = contract::version("m", 0.9, &[]);
    big.parameters = json!({"blob": "y".repeat(5_000)});
    let v = reg.register(big.clone()).await.unwrap();
    assert_eq!(
        reg.get("m", v.version).await.unwrap().parameters,
        big.parameters
    );
    let client = AwsClient::json(&config(&moto), Service::SAGEMAKER, "SageMaker");
    let raw = client
        .call(
            "DescribeModelPackage",
            json!({"ModelPackageName": "arn:aws:sagemaker:us-east-1:123456789012:model-package/m/1"}),
        )
        .await
        .unwrap();
    let metadata = raw["CustomerMetadataProperties"].as_object().unwrap();
    assert!(
        metadata.len() > 2 && metadata.len() <= 50,
        "{}",
        metadata.len()
    );
    for (key, value) in metadata {
        let value = value.as_str().unwrap();
        assert!((1..=128).contains(&key.len()), "{key}");
        assert!((1..=256).contains(&value.len()), "{key}");
        let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
        assert!(
            key.chars().all(allowed) && value.chars().all(allowed),
            "{key}={value}"
        );
    }
    assert_eq!(metadata["mlops:stage"], "None");

    let e = reg
        .set_alias("m", "has space", 1, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("alias `has space` must be"), "{e}");
}
