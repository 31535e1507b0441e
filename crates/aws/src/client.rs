//! A small signed AWS client: SigV4 (the official `aws-sigv4` crate) over `reqwest`, with the two
//! wire protocols the server needs. [`AwsClient`] speaks AWS JSON 1.1 (Secrets Manager, CloudWatch
//! Logs, SageMaker); [`QueryClient`] speaks the query protocol (CloudWatch `PutMetricData`).
//!
//! Why not the AWS SDK: its per-service crates and `aws-config` are too heavy to build on the 2-core
//! CI machines. Credentials come from `object_store`'s AWS chain instead, which the workspace
//! already builds: environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
//! web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), the ECS/EKS container endpoint and
//! the instance metadata service. Named profiles (`~/.aws/credentials`, `AWS_PROFILE`) are not
//! supported: export the keys, or run where a role provides them.
//!
//! Every failed call is an [`AwsError`] carrying AWS's error code. Throttling, HTTP 429 and 5xx and
//! connection errors are retried with exponential backoff and full jitter, a bounded number of times.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use mlops_core::error_chain;
use mlops_core::logging::{mask_str, register_secret};
use object_store::aws::{AmazonS3Builder, AwsCredentialProvider};
use serde_json::Value;

/// Error codes that mean "slow down": the call is retried after a backoff.
const THROTTLING_CODES: [&str; 8] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An AWS service: how requests to it are signed and where its endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The SigV4 signing name, e.g. `secretsmanager`, `logs`, `monitoring`, `sagemaker`.
    pub signing_name: &'static str,
    /// The host prefix of the regional endpoint: `https://{prefix}.{region}.amazonaws.com`.
    pub endpoint_prefix: &'static str,
    /// The service id in `AWS_ENDPOINT_URL_<ID>`, e.g. `SECRETS_MANAGER`.
    pub env_id: &'static str,
}

impl Service {
    pub const SECRETS_MANAGER: Service = Service {
        signing_name: "secretsmanager",
        endpoint_prefix: "secretsmanager",
        env_id: "SECRETS_MANAGER",
    };
    pub const CLOUDWATCH_LOGS: Service = Service {
        signing_name: "logs",
        endpoint_prefix: "logs",
        env_id: "CLOUDWATCH_LOGS",
    };
    pub const CLOUDWATCH: Service = Service {
        signing_name: "monitoring",
        endpoint_prefix: "monitoring",
        env_id: "CLOUDWATCH",
    };
    pub const SAGEMAKER: Service = Service {
        signing_name: "sagemaker",
        endpoint_prefix: "api.sagemaker",
        env_id: "SAGEMAKER",
    };
}

/// A failed AWS call. Messages never carry credentials, and registered secrets are masked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error: `code` is its error code (e.g. `ResourceNotFoundException`).
    #[error("AWS {service} {operation} failed: {code}: {message}")]
    Service {
        service: &'static str,
        operation: String,
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, DNS failure, timeout.
    #[error(
        "cannot reach AWS {service} at {endpoint} ({operation}): {message}; check the network, AWS_REGION and AWS_ENDPOINT_URL"
    )]
    Unreachable {
        service: &'static str,
        operation: String,
        endpoint: String,
        message: String,
    },
    #[error(
        "no usable AWS credentials: {0}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with a role (web identity, ECS, EC2)"
    )]
    Credentials(String),
    /// AWS answered 2xx with a body this client cannot read.
    #[error("AWS {service} {operation} returned an unreadable response: {message}")]
    InvalidResponse {
        service: &'static str,
        operation: String,
        message: String,
    },
    #[error("AWS client configuration: {0}")]
    Config(String),
}

impl AwsError {
    /// AWS's error code, for service errors (`ResourceNotFoundException`, `ThrottlingException`...).
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when trying again later may succeed (throttling, 429, 5xx, no connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            AwsError::Service { status, code, .. } => {
                *status == 429 || *status >= 500 || THROTTLING_CODES.contains(&code.as_str())
            }
            AwsError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

pub use mlops_core::RetryPolicy;

/// How AWS calls are retried: 4 tries, waiting up to 0.2, 0.4 and 0.8 s (jittered, capped at 5 s).
pub const AWS_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(5),
};

/// What every AWS client shares: region, credentials, endpoint overrides, HTTP client and retries.
/// Cheap to clone.
#[derive(Clone)]
pub struct AwsConfig {
    region: String,
    credentials: AwsCredentialProvider,
    /// `AWS_ENDPOINT_URL`: one endpoint for every service (a local stand-in such as moto).
    endpoint: Option<String>,
    /// `AWS_ENDPOINT_URL_<ID>` by service id.
    service_endpoints: BTreeMap<String, String>,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("service_endpoints", &self.service_endpoints)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl AwsConfig {
    /// Region from `AWS_REGION` (or `AWS_DEFAULT_REGION`, default `us-east-1`), credentials from
    /// the chain described in the module docs, endpoints from `AWS_ENDPOINT_URL` and
    /// `AWS_ENDPOINT_URL_<SERVICE>`. Nothing is contacted here.
    pub fn from_env() -> Result<Self, AwsError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        // The S3 store is built only for its credential chain; the bucket is never used.
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name("mlops-credential-chain")
            .with_region(&region)
            .build()
            .map_err(|e| AwsError::Config(mask_str(&e.to_string())))?;
        let mut config = Self::new(&region, s3.credentials().clone())?;
        if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
            config = config.with_endpoint(&endpoint)?;
        }
        for (k, v) in std::env::vars() {
            if let Some(id) = k.strip_prefix("AWS_ENDPOINT_URL_")
                && !v.trim().is_empty()
            {
                check_endpoint(&k, &v)?;
                config.service_endpoints.insert(id.to_string(), v);
            }
        }
        Ok(config)
    }

    /// A configuration with explicit credentials (any `object_store` AWS credential provider).
    pub fn new(region: &str, credentials: AwsCredentialProvider) -> Result<Self, AwsError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| AwsError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            region: region.to_string(),
            credentials,
            endpoint: None,
            service_endpoints: BTreeMap::new(),
            http,
            retry: AWS_RETRY,
        })
    }

    /// Static credentials (tests, local stand-ins).
    pub fn with_static_credentials(
        region: &str,
        key_id: &str,
        secret_key: &str,
    ) -> Result<Self, AwsError> {
        let credential = object_store::aws::AwsCredential {
            key_id: key_id.into(),
            secret_key: secret_key.into(),
            token: None,
        };
        Self::new(
            region,
            Arc::new(object_store::StaticCredentialProvider::new(credential)),
        )
    }

    /// Sends every service's calls to `endpoint` (e.g. `http://127.0.0.1:5000` for moto).
    pub fn with_endpoint(mut self, endpoint: &str) -> Result<Self, AwsError> {
        check_endpoint("AWS_ENDPOINT_URL", endpoint)?;
        self.endpoint = Some(endpoint.to_string());
        Ok(self)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint calls to `service` go to.
    pub fn endpoint_for(&self, service: Service) -> String {
        self.service_endpoints
            .get(service.env_id)
            .or(self.endpoint.as_ref())
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| {
                format!(
                    "https://{}.{}.amazonaws.com",
                    service.endpoint_prefix, self.region
                )
            })
    }
}

fn check_endpoint(name: &str, endpoint: &str) -> Result<(), AwsError> {
    match url::Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(AwsError::Config(format!(
            "{name} must be an http(s) URL such as http://127.0.0.1:5000, got `{endpoint}`"
        ))),
    }
}

/// The signing and retrying shared by both protocols.
#[derive(Clone, Debug)]
struct Transport {
    config: AwsConfig,
    service: Service,
    endpoint: String,
}

/// One HTTP answer, before protocol-specific parsing.
struct Answer {
    status: u16,
    error_type_header: Option<String>,
    body: Vec<u8>,
}

impl Transport {
    fn new(config: &AwsConfig, service: Service) -> Self {
        Self {
            endpoint: config.endpoint_for(service),
            config: config.clone(),
            service,
        }
    }

    async fn identity(&self) -> Result<Identity, AwsError> {
        let c = self
            .config
            .credentials
            .get_credential()
            .await
            .map_err(|e| AwsError::Credentials(mask_str(&e.to_string())))?;
        // A credential must never reach a log line, even at trace level.
        register_secret(&c.secret_key);
        if let Some(t) = &c.token {
            register_secret(t);
        }
        Ok(Credentials::new(
            &c.key_id,
            &c.secret_key,
            c.token.clone(),
            None,
            "object_store",
        )
        .into())
    }

    /// POSTs `body` with `headers`, signed, retrying what is retryable; `parse_error` turns a
    /// non-2xx answer into an error.
    async fn post(
        &self,
        operation: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        parse_error: impl Fn(&Answer) -> (String, String),
    ) -> Result<Vec<u8>, AwsError> {
        let retry = self.config.retry;
        let mut attempt = 0;
        loop {
            let e = match self.send_once(operation, headers, &body).await {
                Ok(a) if (200..300).contains(&a.status) => return Ok(a.body),
                Ok(a) => {
                    let (code, message) = parse_error(&a);
                    AwsError::Service {
                        service: self.service.signing_name,
                        operation: operation.to_string(),
                        status: a.status,
                        code,
                        message: mask_str(&message),
                    }
                }
                Err(e) => e,
            };
            attempt += 1;
            if !e.is_retryable() || attempt >= retry.max_attempts.max(1) {
                return Err(e);
            }
            let wait = retry.jittered(attempt - 1);
            tracing::debug!(
                service = self.service.signing_name,
                operation,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %e,
                "retrying an AWS call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        operation: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, AwsError> {
        let identity = self.identity().await?;
        let url = format!("{}/", self.endpoint);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name(self.service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| AwsError::Config(format!("signing: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .and_then(|r| sign(r, &params))
        .map_err(|e| AwsError::Config(format!("signing a request to {url}: {e}")))?;
        let (instructions, _signature) = signable.into_parts();
        let mut request = self.config.http.post(&url).body(body.to_vec());
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let unreachable = |e: reqwest::Error| AwsError::Unreachable {
            service: self.service.signing_name,
            operation: operation.to_string(),
            endpoint: self.endpoint.clone(),
            message: mask_str(&error_chain(&e)),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let error_type_header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.map_err(unreachable)?.to_vec();
        Ok(Answer {
            status,
            error_type_header,
            body,
        })
    }

    fn invalid(&self, operation: &str, message: String) -> AwsError {
        AwsError::InvalidResponse {
            service: self.service.signing_name,
            operation: operation.to_string(),
            message,
        }
    }
}

/// A client for one service speaking AWS JSON 1.1: each call is `POST /` with
/// `X-Amz-Target: <prefix>.<Operation>` and a JSON body, answered with JSON.
#[derive(Clone, Debug)]
pub struct AwsClient {
    transport: Transport,
    target_prefix: String,
}

impl AwsClient {
    /// A JSON 1.1 client, e.g. `AwsClient::json(&config, Service::SECRETS_MANAGER, "secretsmanager")`,
    /// `(.., Service::CLOUDWATCH_LOGS, "Logs_20140328")` or `(.., Service::SAGEMAKER, "SageMaker")`.
    pub fn json(config: &AwsConfig, service: Service, target_prefix: &str) -> Self {
        Self {
            transport: Transport::new(config, service),
            target_prefix: target_prefix.to_string(),
        }
    }

    /// The endpoint this client calls.
    pub fn endpoint(&self) -> &str {
        &self.transport.endpoint
    }

    /// Calls `operation` (e.g. `GetSecretValue`) with its JSON input; returns its JSON output (an
    /// empty object when AWS answers with no body).
    pub async fn call(&self, operation: &str, input: Value) -> Result<Value, AwsError> {
        let target = format!("{}.{operation}", self.target_prefix);
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let body = serde_json::to_vec(&input)
            .map_err(|e| AwsError::Config(format!("encoding {operation}: {e}")))?;
        let out = self
            .transport
            .post(operation, &headers, body, json_error)
            .await?;
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&out).map_err(|e| self.transport.invalid(operation, e.to_string()))
    }
}

/// The code and message of a JSON-protocol error: `x-amzn-ErrorType` or `__type` (without any
/// `namespace#` prefix or `:http://...` suffix), and `message`/`Message`.
fn json_error(a: &Answer) -> (String, String) {
    let body: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    let raw = a
        .error_type_header
        .clone()
        .or_else(|| body["__type"].as_str().map(str::to_string))
        .or_else(|| body["code"].as_str().map(str::to_string));
    let code = raw
        .map(|c| {
            let c = c.split(':').next().unwrap_or(&c);
            c.rsplit('#').next().unwrap_or(c).to_string()
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP{}", a.status));
    let message = body["message"]
        .as_str()
        .or_else(|| body["Message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&a.body).chars().take(200).collect());
    (code, message)
}

/// A client for one service speaking the query protocol: each call is a form-encoded
/// `Action=<Action>&Version=<version>&...`, answered with XML (returned as text).
#[derive(Clone, Debug)]
pub struct QueryClient {
    transport: Transport,
    version: String,
}

impl QueryClient {
    /// E.g. `QueryClient::new(&config, Service::CLOUDWATCH, "2010-08-01")`.
    pub fn new(config: &AwsConfig, service: Service, version: &str) -> Self {
        Self {
            transport: Transport::new(config, service),
            version: version.to_string(),
        }
    }

    /// Calls `action` with its flattened parameters (e.g. `MetricData.member.1.MetricName`);
    /// returns the XML answer.
    pub async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, AwsError> {
        // Built in a block: the serializer is not `Send`, and the future must be.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", &self.version);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish().into_bytes()
        };
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let out = self
            .transport
            .post(action, &headers, body, query_error)
            .await?;
        String::from_utf8(out).map_err(|e| self.transport.invalid(action, e.to_string()))
    }
}

/// The text of the first `<tag>...</tag>` in `xml` (the query protocol's answers are flat enough).
pub fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// The code and message of a query-protocol error: `<Error><Code>..</Code><Message>..</Message>`.
fn query_error(a: &Answer) -> (String, String) {
    let text = String::from_utf8_lossy(&a.body);
    let code = xml_text(&text, "Code")
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP{}", a.status));
    let message = xml_text(&text, "Message")
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockServer;
    use serde_json::json;

    fn fast(config: AwsConfig) -> AwsConfig {
        config.with_retry(RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        })
    }

    fn config_for(server: &MockServer) -> AwsConfig {
        fast(
            AwsConfig::with_static_credentials("eu-west-1", "AKIDTEST", "secret-key-value-123")
                .unwrap()
                .with_endpoint(&server.url())
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn json_calls_are_signed_and_targeted() {
        let server = MockServer::start(vec![(200, r#"{"Name":"x","SecretString":"v"}"#)]).await;
        let client = AwsClient::json(
            &config_for(&server),
            Service::SECRETS_MANAGER,
            "secretsmanager",
        );
        let out = client
            .call("GetSecretValue", json!({"SecretId": "mlops/x"}))
            .await
            .unwrap();
        assert_eq!(out["SecretString"], "v");
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.header("x-amz-target"), "secretsmanager.GetSecretValue");
        assert_eq!(r.header("content-type"), "application/x-amz-json-1.1");
        let auth = r.header("authorization");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
                && auth.contains("/eu-west-1/secretsmanager/aws4_request")
                && auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target"),
            "{auth}"
        );
        assert!(!r.header("x-amz-date").is_empty());
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).unwrap(),
            json!({"SecretId": "mlops/x"})
        );
    }

    #[tokio::test]
    async fn throttling_is_retried_then_succeeds() {
        let throttled = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
        let server = MockServer::start(vec![(400, throttled), (400, throttled), (200, "{}")]).await;
        let client = AwsClient::json(&config_for(&server), Service::CLOUDWATCH_LOGS, "Logs");
        let out = client.call("DescribeLogGroups", json!({})).await.unwrap();
        assert_eq!(out, json!({}));
        assert_eq!(server.requests().len(), 3);
    }

    #[tokio::test]
    async fn server_errors_and_429_are_retried_but_bounded() {
        let server = MockServer::start(vec![(503, "busy"), (429, "{}"), (500, "oops")]).await;
        let client = AwsClient::json(&config_for(&server), Service::SAGEMAKER, "SageMaker");
        let e = client.call("ListModels", json!({})).await.unwrap_err();
        assert_eq!(server.requests().len(), 4, "max_attempts tries in all");
        assert!(e.is_retryable());
        assert_eq!(e.code(), Some("HTTP500"));
    }

    #[tokio::test]
    async fn client_errors_fail_at_once_with_the_code_without_prefix() {
        let body = r#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}"#;
        let server = MockServer::start(vec![(400, body)]).await;
        let client = AwsClient::json(
            &config_for(&server),
            Service::SECRETS_MANAGER,
            "secretsmanager",
        );
        let e = client
            .call("GetSecretValue", json!({"SecretId": "nope"}))
            .await
            .unwrap_err();
        assert_eq!(server.requests().len(), 1);
        assert_eq!(e.code(), Some("ResourceNotFoundException"));
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("GetSecretValue") && text.contains("can't find"),
            "{text}"
        );
        assert!(!text.contains("secret-key-value-123"), "{text}");
    }

    #[tokio::test]
    async fn error_type_header_wins_and_loses_its_suffix() {
        let server = MockServer::start_with_header(
            400,
            "x-amzn-ErrorType",
            "ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
            r#"{"message":"bad input"}"#,
        )
        .await;
        let client = AwsClient::json(&config_for(&server), Service::SAGEMAKER, "SageMaker");
        let e = client.call("X", json!({})).await.unwrap_err();
        assert_eq!(e.code(), Some("ValidationException"));
        assert!(e.to_string().contains("bad input"));
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_retried_then_named() {
        // A port bound but not listening: connection refused.
        let down = mlops_testkit::RefusedPort::new();
        let port = down.port;
        let config = fast(
            AwsConfig::with_static_credentials("us-east-1", "AKID", "secret-key-value-123")
                .unwrap()
                .with_endpoint(&format!("http://127.0.0.1:{port}"))
                .unwrap(),
        );
        let client = AwsClient::json(&config, Service::SECRETS_MANAGER, "secretsmanager");
        let e = client.call("GetSecretValue", json!({})).await.unwrap_err();
        assert!(matches!(e, AwsError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[tokio::test]
    async fn query_calls_are_form_encoded_and_errors_parsed_from_xml() {
        let throttled = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        let denied = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>";
        let server = MockServer::start(vec![
            (400, throttled),
            (200, "<PutMetricDataResponse/>"),
            (403, denied),
        ])
        .await;
        let client = QueryClient::new(&config_for(&server), Service::CLOUDWATCH, "2010-08-01");
        let params = vec![("Namespace".to_string(), "My App".to_string())];
        let out = client.call("PutMetricData", &params).await.unwrap();
        assert_eq!(out, "<PutMetricDataResponse/>");
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            String::from_utf8_lossy(&requests[1].body),
            "Action=PutMetricData&Version=2010-08-01&Namespace=My+App"
        );
        assert!(
            requests[1]
                .header("authorization")
                .contains("/monitoring/aws4_request")
        );
        let e = client.call("PutMetricData", &params).await.unwrap_err();
        assert_eq!(e.code(), Some("AccessDenied"));
    }

    #[test]
    fn call_futures_are_send() {
        fn send<T: Send>(_: T) {}
        let c = AwsConfig::with_static_credentials("r", "a", "b").unwrap();
        send(AwsClient::json(&c, Service::SAGEMAKER, "SageMaker").call("X", json!({})));
        send(QueryClient::new(&c, Service::CLOUDWATCH, "v").call("X", &[]));
    }

    #[test]
    fn endpoints_come_from_overrides_or_the_region() {
        let c = AwsConfig::with_static_credentials("eu-central-1", "a", "b").unwrap();
        assert_eq!(
            c.endpoint_for(Service::SAGEMAKER),
            "https://api.sagemaker.eu-central-1.amazonaws.com"
        );
        let mut c = c.with_endpoint("http://localhost:5000/").unwrap();
        assert_eq!(c.endpoint_for(Service::CLOUDWATCH), "http://localhost:5000");
        c.service_endpoints
            .insert("CLOUDWATCH".into(), "http://other:1".into());
        assert_eq!(c.endpoint_for(Service::CLOUDWATCH), "http://other:1");
        assert!(
            AwsConfig::with_static_credentials("r", "a", "b")
                .unwrap()
                .with_endpoint("localhost:5000")
                .unwrap_err()
                .to_string()
                .contains("AWS_ENDPOINT_URL")
        );
    }
}
