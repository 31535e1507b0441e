//! Where secrets come from: an ordered chain of sources (the environment, a local secrets file, and
//! whatever else implements [`SecretProvider`], such as AWS Secrets Manager in `mlops-aws`), with a
//! TTL cache so that a rotated secret is picked up, and every value registered with the log masker.
//!
//! A secret is named as its environment variable (`GITHUB_TOKEN`); a store keyed by names such as
//! `github-token` uses [`secret_key`] to translate.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logging::{mask_str, register_secret};

/// A secret that could not be read. Never carries a secret value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read secret {name} from {provider}: {message}")]
pub struct SecretError {
    /// The secret's name, e.g. `GITHUB_TOKEN`.
    pub name: String,
    /// Which source failed, e.g. `AWS Secrets Manager (mlops/github-token)`.
    pub provider: String,
    pub message: String,
}

impl SecretError {
    pub fn new(name: &str, provider: impl Into<String>, message: impl AsRef<str>) -> Self {
        Self {
            name: name.to_string(),
            provider: provider.into(),
            message: mask_str(message.as_ref()),
        }
    }
}

/// A source of secrets.
#[async_trait::async_trait]
pub trait SecretProvider: Send + Sync {
    /// What the source is, for messages: `environment`, `secrets file /etc/mlops.json`, ...
    fn describe(&self) -> String;
    /// The secret's value; `Ok(None)` when this source does not have it, an error when the source
    /// cannot say (unreachable, refused, malformed).
    async fn get(&self, name: &str) -> Result<Option<String>, SecretError>;
}

/// `GITHUB_TOKEN` → `github-token`: the name of a secret in a store keyed that way.
pub fn secret_key(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Secrets from environment variables (a snapshot taken when built).
pub struct EnvSecrets {
    values: BTreeMap<String, String>,
}

impl EnvSecrets {
    pub fn from_env() -> Self {
        Self::from_map(std::env::vars().collect())
    }

    pub fn from_map(values: BTreeMap<String, String>) -> Self {
        Self { values }
    }
}

#[async_trait::async_trait]
impl SecretProvider for EnvSecrets {
    fn describe(&self) -> String {
        "environment".into()
    }
    async fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        Ok(self
            .values
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()))
    }
}

/// Secrets from a local file (`MLOPS_SECRETS_FILE`): a JSON object of strings, or `KEY=value`
/// lines. Keys may be the variable name (`GITHUB_TOKEN`) or its [`secret_key`] (`github-token`).
/// The file is read again on every lookup, so editing it rotates a secret. On Unix a file that
/// every user may read (mode `o+r`) is refused.
pub struct FileSecrets {
    path: PathBuf,
}

impl FileSecrets {
    /// Checks that the file exists, is private and parses.
    pub fn open(path: &Path) -> Result<Self, SecretError> {
        let file = Self {
            path: path.to_path_buf(),
        };
        file.read("MLOPS_SECRETS_FILE")?;
        Ok(file)
    }

    fn error(&self, name: &str, message: impl AsRef<str>) -> SecretError {
        SecretError::new(name, self.describe(), message)
    }

    fn read(&self, name: &str) -> Result<BTreeMap<String, String>, SecretError> {
        let meta = std::fs::metadata(&self.path).map_err(|e| self.error(name, e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                return Err(self.error(
                    name,
                    format!(
                        "the file is readable by every user (mode {mode:o}); run `chmod 600 {}`",
                        self.path.display()
                    ),
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| self.error(name, e.to_string()))?;
        if text.trim_start().starts_with('{') {
            let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| self.error(name, format!("not a JSON object of strings: {e}")))?;
            map.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k, s)),
                    _ => Err(self.error(name, format!("the value of `{k}` is not a string"))),
                })
                .collect()
        } else {
            crate::config::parse_env_lines(&text)
                .map(|pairs| pairs.into_iter().collect())
                .map_err(|line| self.error(name, format!("line {line}: expected KEY=VALUE")))
        }
    }
}

#[async_trait::async_trait]
impl SecretProvider for FileSecrets {
    fn describe(&self) -> String {
        format!("secrets file {}", self.path.display())
    }
    async fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        let mut values = self.read(name)?;
        let value = values
            .remove(name)
            .or_else(|| values.remove(&secret_key(name)))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if let Some(v) = &value {
            register_secret(v);
        }
        Ok(value)
    }
}

struct Cached {
    value: Option<String>,
    fetched: Instant,
}

/// Providers asked in order (the first that has a secret wins), answers cached for a TTL.
#[derive(Clone)]
pub struct SecretChain {
    providers: Vec<Arc<dyn SecretProvider>>,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl SecretChain {
    /// `ttl`: how long an answer (a value, or "not set") is reused before the providers are asked
    /// again.
    pub fn new(providers: Vec<Arc<dyn SecretProvider>>, ttl: Duration) -> Self {
        Self {
            providers,
            ttl,
            cache: Arc::default(),
        }
    }

    /// The providers, in order, for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.describe()).collect()
    }

    /// The secret's value, or `None` when no provider has it. Every value is registered with the
    /// log masker. When a refresh fails, the previous value is kept (with a warning) rather than
    /// losing a working secret to a passing outage; with no previous value the error is returned.
    pub async fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        let stale = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(name) {
                Some(c) if c.fetched.elapsed() < self.ttl => return Ok(c.value.clone()),
                Some(c) => c.value.clone(),
                None => None,
            }
        };
        match self.fetch(name).await {
            Ok(value) => {
                if let Some(v) = &value {
                    register_secret(v);
                }
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    name.to_string(),
                    Cached {
                        value: value.clone(),
                        fetched: Instant::now(),
                    },
                );
                Ok(value)
            }
            Err(e) if stale.is_some() => {
                tracing::warn!(secret = name, error = %e, "keeping the previous value of a secret that could not be refreshed");
                Ok(stale)
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self, name: &str) -> Result<Option<String>, SecretError> {
        for p in &self.providers {
            if let Some(v) = p.get(name).await? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Reads several secrets concurrently; returns those that are set. The first failure is the
    /// error (naming its secret and source).
    pub async fn resolve(&self, names: &[&str]) -> Result<BTreeMap<String, String>, SecretError> {
        let answers = futures::future::join_all(names.iter().map(|n| self.get(n))).await;
        let mut out = BTreeMap::new();
        for (name, answer) in names.iter().zip(answers) {
            if let Some(v) = answer? {
                out.insert(name.to_string(), v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A provider whose answers the test changes, counting lookups.
    struct Scripted {
        value: Mutex<Result<Option<String>, String>>,
        calls: AtomicUsize,
    }

    impl Default for Scripted {
        fn default() -> Self {
            Self {
                value: Mutex::new(Ok(None)),
                calls: AtomicUsize::new(0),
            }
        }
    }

    impl Scripted {
        fn set(&self, v: Result<Option<&str>, &str>) {
            *self.value.lock().unwrap() = v.map(|o| o.map(String::from)).map_err(String::from);
        }
    }

    #[async_trait::async_trait]
    impl SecretProvider for Arc<Scripted> {
        fn describe(&self) -> String {
            "scripted".into()
        }
        async fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.value
                .lock()
                .unwrap()
                .clone()
                .map_err(|m| SecretError::new(name, "scripted", m))
        }
    }

    fn env(pairs: &[(&str, &str)]) -> EnvSecrets {
        EnvSecrets::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[tokio::test]
    async fn first_provider_wins_and_values_are_masked() {
        let chain = SecretChain::new(
            vec![
                Arc::new(env(&[("GITHUB_TOKEN", "ghp_from_env_value_1")])),
                Arc::new(env(&[
                    ("GITHUB_TOKEN", "ghp_second_value_22"),
                    ("SMTP_PASSWORD", "smtp-pass-from-second"),
                ])),
            ],
            Duration::from_secs(60),
        );
        let got = chain
            .resolve(&["GITHUB_TOKEN", "SMTP_PASSWORD", "SLACK_WEBHOOK_URL"])
            .await
            .unwrap();
        assert_eq!(got["GITHUB_TOKEN"], "ghp_from_env_value_1");
        assert_eq!(got["SMTP_PASSWORD"], "smtp-pass-from-second");
        assert!(!got.contains_key("SLACK_WEBHOOK_URL"));
        assert_eq!(
            mask_str("pw smtp-pass-from-second, token ghp_from_env_value_1"),
            "pw ***, token ***"
        );
    }

    #[tokio::test]
    async fn answers_are_cached_for_the_ttl_then_refreshed() {
        let p = Arc::new(Scripted::default());
        p.set(Ok(Some("rotating-value-one")));
        let chain = SecretChain::new(vec![Arc::new(p.clone())], Duration::from_millis(200));
        assert_eq!(
            chain.get("X").await.unwrap().as_deref(),
            Some("rotating-value-one")
        );
        p.set(Ok(Some("rotating-value-two")));
        assert_eq!(
            chain.get("X").await.unwrap().as_deref(),
            Some("rotating-value-one")
        );
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            chain.get("X").await.unwrap().as_deref(),
            Some("rotating-value-two")
        );
        assert_eq!(mask_str("rotating-value-two"), "***");
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_old_value_but_a_first_failure_is_an_error() {
        let p = Arc::new(Scripted::default());
        p.set(Err("endpoint unreachable"));
        let chain = SecretChain::new(vec![Arc::new(p.clone())], Duration::ZERO);
        let e = chain.get("SLACK_WEBHOOK_URL").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read secret SLACK_WEBHOOK_URL from scripted: endpoint unreachable"
        );
        p.set(Ok(Some("https://hooks.example/one")));
        chain.get("SLACK_WEBHOOK_URL").await.unwrap();
        p.set(Err("endpoint unreachable"));
        assert_eq!(
            chain.get("SLACK_WEBHOOK_URL").await.unwrap().as_deref(),
            Some("https://hooks.example/one")
        );
    }

    #[tokio::test]
    async fn files_in_json_or_env_form_by_either_name() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("s.json");
        std::fs::write(
            &json,
            r#"{"github-token": "ghp_file_json_value", "SMTP_PASSWORD": "file-smtp-pass"}"#,
        )
        .unwrap();
        let lines = dir.path().join("s.env");
        std::fs::write(
            &lines,
            "# comment\nexport SLACK_WEBHOOK_URL=\"https://hooks.example/file\"\n",
        )
        .unwrap();
        #[cfg(unix)]
        for f in [&json, &lines] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let j = FileSecrets::open(&json).unwrap();
        assert_eq!(
            j.get("GITHUB_TOKEN").await.unwrap().as_deref(),
            Some("ghp_file_json_value")
        );
        assert_eq!(
            j.get("SMTP_PASSWORD").await.unwrap().as_deref(),
            Some("file-smtp-pass")
        );
        assert_eq!(j.get("OTHER").await.unwrap(), None);
        let l = FileSecrets::open(&lines).unwrap();
        assert_eq!(
            l.get("SLACK_WEBHOOK_URL").await.unwrap().as_deref(),
            Some("https://hooks.example/file")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.env");
        std::fs::write(&f, "GITHUB_TOKEN=ghp_world_readable_1\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = FileSecrets::open(&f).err().unwrap().to_string();
        assert!(
            e.contains("readable by every user (mode 644)") && e.contains("chmod 600"),
            "{e}"
        );
        assert!(!e.contains("ghp_world_readable_1"), "{e}");
    }

    #[test]
    fn malformed_files_name_the_line_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.env");
        std::fs::write(&f, "A=1\nhunter2-no-equals\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let e = FileSecrets::open(&f).err().unwrap().to_string();
        assert!(e.contains("line 2: expected KEY=VALUE"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn store_keys_are_kebab_case() {
        assert_eq!(secret_key("SLACK_WEBHOOK_URL"), "slack-webhook-url");
    }
}
