//! AWS Secrets Manager as a [`SecretProvider`]: the secret `GITHUB_TOKEN` is read from the secret
//! id `<prefix>github-token` (`mlops/github-token` with the default prefix), as a `SecretString`.

use mlops_core::logging::register_secret;
use mlops_core::secrets::{SecretError, SecretProvider, secret_key};
use serde_json::json;

use crate::client::{AwsClient, AwsConfig, Service};

/// Reads secrets with `GetSecretValue`. A secret that does not exist is "not set" (the next
/// provider, or the setting's default, applies); any other failure is an error naming the secret.
pub struct SecretsManager {
    client: AwsClient,
    prefix: String,
}

impl SecretsManager {
    /// `prefix` such as `mlops/`; a `/` is added when it lacks a separator.
    pub fn new(config: &AwsConfig, prefix: &str) -> Self {
        let prefix = match prefix.trim() {
            "" => String::new(),
            p if p.ends_with(['/', '-', '_']) => p.to_string(),
            p => format!("{p}/"),
        };
        Self {
            client: AwsClient::json(config, Service::SECRETS_MANAGER, "secretsmanager"),
            prefix,
        }
    }

    /// The secret id a name is stored under: `GITHUB_TOKEN` → `mlops/github-token`.
    pub fn secret_id(&self, name: &str) -> String {
        format!("{}{}", self.prefix, secret_key(name))
    }
}

#[async_trait::async_trait]
impl SecretProvider for SecretsManager {
    fn describe(&self) -> String {
        format!(
            "AWS Secrets Manager ({}*, {})",
            self.prefix,
            self.client.endpoint()
        )
    }

    async fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        let id = self.secret_id(name);
        let provider = format!("AWS Secrets Manager ({id})");
        let out = match self
            .client
            .call("GetSecretValue", json!({ "SecretId": id }))
            .await
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(SecretError::new(name, provider, e.to_string())),
        };
        match out["SecretString"].as_str() {
            Some(v) => {
                register_secret(v);
                Ok(Some(v.trim().to_string()).filter(|v| !v.is_empty()))
            }
            None if out.get("SecretBinary").is_some() => Err(SecretError::new(
                name,
                provider,
                "the secret is stored as binary; store it as a string (SecretString)",
            )),
            None => Err(SecretError::new(
                name,
                provider,
                "the answer has no SecretString",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RetryPolicy;
    use crate::mock::MockServer;
    use std::time::Duration;

    fn provider(server: &MockServer, prefix: &str) -> SecretsManager {
        let config = AwsConfig::with_static_credentials("us-east-1", "AKID", "sk-test-123456")
            .unwrap()
            .with_endpoint(&server.url())
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(10),
            });
        SecretsManager::new(&config, prefix)
    }

    #[tokio::test]
    async fn reads_the_prefixed_kebab_id_after_throttling() {
        let throttled = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
        let server = MockServer::start(vec![
            (400, throttled),
            (400, throttled),
            (
                200,
                r#"{"Name":"mlops/github-token","SecretString":"ghp_from_sm_value_1"}"#,
            ),
        ])
        .await;
        let p = provider(&server, "mlops/");
        assert_eq!(
            p.get("GITHUB_TOKEN").await.unwrap().as_deref(),
            Some("ghp_from_sm_value_1")
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&requests[2].body).unwrap()["SecretId"],
            "mlops/github-token"
        );
        assert_eq!(
            mlops_core::logging::mask_str("x ghp_from_sm_value_1"),
            "x ***"
        );
    }

    #[tokio::test]
    async fn a_missing_secret_is_not_set_and_other_errors_name_the_secret() {
        let server = MockServer::start(vec![
            (
                400,
                r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#,
            ),
            (
                400,
                r#"{"__type":"AccessDeniedException","message":"not authorized"}"#,
            ),
        ])
        .await;
        let p = provider(&server, "prod");
        assert_eq!(p.get("SMTP_PASSWORD").await.unwrap(), None);
        let e = p.get("SMTP_PASSWORD").await.unwrap_err().to_string();
        assert!(
            e.starts_with(
                "cannot read secret SMTP_PASSWORD from AWS Secrets Manager (prod/smtp-password)"
            ) && e.contains("AccessDeniedException"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn binary_secrets_are_refused_clearly() {
        let server = MockServer::start(vec![(200, r#"{"SecretBinary":"AAEC"}"#)]).await;
        let e = provider(&server, "")
            .get("X_KEY")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("(x-key)") && e.contains("SecretString"), "{e}");
    }
}
