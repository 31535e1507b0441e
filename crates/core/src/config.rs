//! Configuration, read once at start-up from the environment and an optional env-style file.
//!
//! Names follow the specification (`AWS_REGION`, `MLOPS_S3_BUCKET`, ...). With nothing set, the
//! server runs on embedded defaults: artifacts and the SQLite database under `./mlops-data`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting the server reads. Build it with [`Config::from_env`] (or [`Config::from_map`] in tests).
#[derive(Debug, Clone)]
pub struct Config {
    /// Local home folder: the default artifact root and the default SQLite database live here.
    pub home: PathBuf,
    /// Where artifacts live: a local folder, or `s3://bucket/prefix` when `MLOPS_S3_BUCKET` is set.
    pub artifact_root: String,
    /// Extra local folders that clients may read datasets from (besides the artifact root).
    pub data_dirs: Vec<PathBuf>,
    /// Database URL for the registry and job state (`sqlite://...` or `postgres://...`).
    pub database_url: String,
    pub aws_region: String,
    pub s3_bucket: Option<String>,
    /// KMS key id for server-side encryption of S3 writes (`MLOPS_S3_KMS_KEY_ID` or
    /// `MLOPS_KMS_KEY_ID`).
    pub kms_key_id: Option<String>,
    /// Prefix of the server's secrets in AWS Secrets Manager (`mlops/` → `mlops/github-token`).
    pub secrets_prefix: String,
    /// Read secrets from AWS Secrets Manager too (`MLOPS_SECRETS_MANAGER`), after the environment
    /// and the secrets file.
    pub secrets_manager: bool,
    /// A local secrets file (`MLOPS_SECRETS_FILE`): JSON or `KEY=value`, not readable by others.
    pub secrets_file: Option<PathBuf>,
    /// How long a secret read from a store is reused before it is read again (rotation).
    pub secrets_ttl: Duration,
    pub log_level: String,
    /// Ship the log lines to this CloudWatch Logs group as well as stderr.
    pub cloudwatch_log_group: Option<String>,
    /// The log stream in that group (default `mlops-mcp`).
    pub cloudwatch_log_stream: Option<String>,
    /// How often buffered log lines are sent to CloudWatch Logs.
    pub cloudwatch_flush_interval: Duration,
    /// Publish tool and job metrics to CloudWatch under this namespace (`CLOUDWATCH_METRICS=1`,
    /// namespace `CLOUDWATCH_METRICS_NAMESPACE`, default `MLOpsMCP`); off when `None`.
    pub cloudwatch_metrics_namespace: Option<String>,
    /// How often metrics are published.
    pub cloudwatch_metrics_interval: Duration,
    pub sagemaker_role_arn: Option<String>,
    /// `MLOPS_REGISTRY=sagemaker`: model versions live in SageMaker Model Registry instead of the
    /// database (which still holds jobs, the outbox and workflows).
    pub sagemaker_registry: bool,
    /// Publish each tool's output schema in `tools/list`. Off by default: the schemas double the
    /// list's size (and a model's context) while clients read the structured content either way.
    pub tool_output_schemas: bool,
    /// Capabilities whose tools clients see (`MLOPS_TOOLSETS`, comma-separated); all when absent.
    pub toolsets: Option<Vec<String>>,
    /// Offer only tools that change nothing (`MLOPS_READ_ONLY`).
    pub read_only: bool,
    /// Largest table file a tool reads into memory (`MLOPS_MAX_TABLE_BYTES`; default: half the
    /// machine's memory), so an oversized file is a clear error rather than an out-of-memory kill.
    pub max_table_bytes: u64,
}

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the process environment; if `MLOPS_CONFIG` names a file, its `KEY=VALUE` lines fill
    /// in whatever the environment does not set.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut values: BTreeMap<String, String> = std::env::vars().collect();
        if let Some(file) = values.get("MLOPS_CONFIG").cloned() {
            for (k, v) in read_env_file(Path::new(&file))? {
                values.entry(k).or_insert(v);
            }
        }
        Self::from_map(&values)
    }

    /// Builds the configuration from explicit key/value pairs (the environment's names).
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| setting(values, k);
        let (home, database_url) = home_and_database_url(values);
        let s3_bucket = get("MLOPS_S3_BUCKET");
        let artifact_root = match (&s3_bucket, get("MLOPS_ARTIFACT_ROOT")) {
            (_, Some(root)) => root,
            (Some(bucket), None) => format!("s3://{bucket}"),
            (None, None) => home.display().to_string(),
        };
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(ConfigError(format!(
                "MLOPS_DATABASE_URL must start with sqlite:// or postgres://, got `{}`",
                redact_url(&database_url)
            )));
        }
        let data_dirs = get("MLOPS_DATA_DIRS")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        Ok(Config {
            home,
            artifact_root,
            data_dirs,
            database_url,
            aws_region: get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            s3_bucket,
            kms_key_id: get("MLOPS_S3_KMS_KEY_ID").or_else(|| get("MLOPS_KMS_KEY_ID")),
            secrets_prefix: get("MLOPS_SECRETS_PREFIX").unwrap_or_else(|| "mlops/".into()),
            secrets_manager: is_on(get("MLOPS_SECRETS_MANAGER")),
            secrets_file: get("MLOPS_SECRETS_FILE").map(PathBuf::from),
            secrets_ttl: seconds(&get, "MLOPS_SECRETS_TTL_SECONDS", 300.0)?,
            log_level: get("LOG_LEVEL").unwrap_or_else(|| "INFO".into()),
            cloudwatch_log_group: get("CLOUDWATCH_LOG_GROUP"),
            cloudwatch_log_stream: get("CLOUDWATCH_LOG_STREAM"),
            cloudwatch_flush_interval: seconds(&get, "CLOUDWATCH_FLUSH_SECONDS", 5.0)?,
            cloudwatch_metrics_namespace: (is_on(get("CLOUDWATCH_METRICS"))
                || get("CLOUDWATCH_METRICS_NAMESPACE").is_some())
            .then(|| get("CLOUDWATCH_METRICS_NAMESPACE").unwrap_or_else(|| "MLOpsMCP".into())),
            cloudwatch_metrics_interval: seconds(
                &get,
                "CLOUDWATCH_METRICS_INTERVAL_SECONDS",
                60.0,
            )?,
            sagemaker_role_arn: get("SAGEMAKER_ROLE_ARN"),
            sagemaker_registry: match get("MLOPS_REGISTRY").as_deref() {
                None | Some("sql") => false,
                Some("sagemaker") => true,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "MLOPS_REGISTRY must be `sql` (the database, default) or `sagemaker`, got `{other}`"
                    )));
                }
            },
            max_table_bytes: match get("MLOPS_MAX_TABLE_BYTES") {
                Some(v) => v.parse().map_err(|_| {
                    ConfigError(format!(
                        "MLOPS_MAX_TABLE_BYTES must be a number of bytes, got `{v}`"
                    ))
                })?,
                None => half_of_memory(),
            },
            tool_output_schemas: is_on(get("MLOPS_TOOL_OUTPUT_SCHEMAS")),
            toolsets: get("MLOPS_TOOLSETS")
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
            read_only: is_on(get("MLOPS_READ_ONLY")),
        })
    }
}

/// One setting by its environment name, trimmed; `None` when it is unset or blank, so that an
/// empty variable (`FOO=` in an env file) means the default. Every capability reads its settings
/// this way, so they agree on what "set" means.
pub fn setting(values: &BTreeMap<String, String>, name: &str) -> Option<String> {
    values
        .get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The home folder (`MLOPS_HOME`, default `./mlops-data`) and the database URL
/// (`MLOPS_DATABASE_URL`, default the SQLite file `mlops.db` in that folder): read alike by every
/// part that keeps state, so they all find it in the same place.
pub fn home_and_database_url(values: &BTreeMap<String, String>) -> (PathBuf, String) {
    let home =
        PathBuf::from(setting(values, "MLOPS_HOME").unwrap_or_else(|| "./mlops-data".into()));
    let database_url = setting(values, "MLOPS_DATABASE_URL")
        .unwrap_or_else(|| format!("sqlite://{}", home.join("mlops.db").display()));
    (home, database_url)
}

/// A switch: `1`, `true` or `yes` turn it on.
fn is_on(value: Option<String>) -> bool {
    matches!(value.as_deref(), Some("1" | "true" | "yes"))
}

/// A positive number of seconds (fractions allowed), or `default` when unset.
fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: f64,
) -> Result<Duration, ConfigError> {
    let Some(v) = get(name) else {
        return Ok(Duration::from_secs_f64(default));
    };
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ConfigError(format!(
                "{name} must be a number of seconds above 0 and at most 86400, got `{v}`"
            ))
        })
}

/// Half the machine's memory (from /proc/meminfo), or 4 GiB where that cannot be read.
fn half_of_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024 / 2)
        .unwrap_or(4 << 30)
}

/// Hides the password of a URL such as `postgres://user:pass@host/db`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read MLOPS_CONFIG file {}: {e}",
            path.display()
        ))
    })?;
    parse_env_lines(&text)
        .map_err(|n| ConfigError(format!("{}:{n}: expected KEY=VALUE", path.display())))
}

/// `KEY=VALUE` lines (blank lines, `#` comments and `export ` allowed; quotes stripped). The error
/// is the number of the first malformed line: never its text, which may hold a secret.
pub(crate) fn parse_env_lines(text: &str) -> Result<Vec<(String, String)>, usize> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or(n + 1)?;
        let v = v.trim().trim_matches('"').trim_matches('\'');
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use mlops_testkit::settings;

    use super::*;

    #[test]
    fn embedded_defaults_when_nothing_is_set() {
        let c = Config::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(c.home, PathBuf::from("./mlops-data"));
        assert_eq!(c.artifact_root, "./mlops-data");
        assert_eq!(c.database_url, "sqlite://./mlops-data/mlops.db");
        assert_eq!(c.aws_region, "us-east-1");
        assert_eq!(c.secrets_prefix, "mlops/");
        assert_eq!(c.log_level, "INFO");
        assert!(!c.secrets_manager);
        assert_eq!(c.secrets_ttl, Duration::from_secs(300));
        assert_eq!(c.cloudwatch_metrics_namespace, None);
    }

    #[test]
    fn aws_integrations_are_switched_on_by_their_variables() {
        let c = Config::from_map(&settings(&[
            ("MLOPS_SECRETS_MANAGER", "true"),
            ("MLOPS_SECRETS_TTL_SECONDS", "0.5"),
            ("CLOUDWATCH_METRICS", "1"),
            ("CLOUDWATCH_FLUSH_SECONDS", "2"),
            ("MLOPS_S3_KMS_KEY_ID", "alias/mlops"),
        ]))
        .unwrap();
        assert!(c.secrets_manager);
        assert_eq!(c.secrets_ttl, Duration::from_millis(500));
        assert_eq!(c.cloudwatch_metrics_namespace.as_deref(), Some("MLOpsMCP"));
        assert_eq!(c.cloudwatch_flush_interval, Duration::from_secs(2));
        assert_eq!(c.kms_key_id.as_deref(), Some("alias/mlops"));
        let e = Config::from_map(&settings(&[("CLOUDWATCH_FLUSH_SECONDS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CLOUDWATCH_FLUSH_SECONDS must be a number of seconds"),
            "{e}"
        );
    }

    #[test]
    fn bucket_moves_artifacts_to_s3() {
        let c = Config::from_map(&settings(&[
            ("MLOPS_S3_BUCKET", "ml"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(c.artifact_root, "s3://ml");
        assert_eq!(c.aws_region, "eu-west-1");
    }

    #[test]
    fn bad_database_url_is_rejected_without_its_password() {
        let e = Config::from_map(&settings(&[(
            "MLOPS_DATABASE_URL",
            "mysql://u:hunter2@h/db",
        )]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sqlite://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn env_file_fills_gaps_but_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mlops.env");
        std::fs::write(
            &file,
            "# comment\nLOG_LEVEL=DEBUG\nexport AWS_REGION=\"ap-northeast-1\"\n",
        )
        .unwrap();
        let mut values = settings(&[("AWS_REGION", "us-west-2")]);
        for (k, v) in read_env_file(&file).unwrap() {
            values.entry(k).or_insert(v);
        }
        let c = Config::from_map(&values).unwrap();
        assert_eq!(c.log_level, "DEBUG");
        assert_eq!(c.aws_region, "us-west-2");
    }
}
