//! One local moto server (the AWS stand-in) per test binary, started on first use
//! ([`mlops_testkit::Moto::shared`]). Without `moto_server` on PATH the tests fail: CI installs it,
//! and a skipped AWS test proves nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use mlops_aws::AwsConfig;

/// The endpoint of this binary's moto server, e.g. `http://127.0.0.1:40123`.
pub fn moto() -> String {
    mlops_testkit::Moto::shared().endpoint()
}

/// A client configuration pointed at moto, with dummy credentials.
pub fn config() -> AwsConfig {
    config_at(&moto())
}

/// A client configuration pointed at `endpoint`, with moto's dummy credentials.
pub fn config_at(endpoint: &str) -> AwsConfig {
    AwsConfig::with_static_credentials("us-east-1", "testing", "testing")
        .unwrap()
        .with_endpoint(endpoint)
        .unwrap()
}

/// A name no other test uses (moto's state outlives each test).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
