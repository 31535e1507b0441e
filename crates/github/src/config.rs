//! GitHub settings from the environment, and the choice between GitHub and the local repository.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::RepoError;
use crate::github::GithubRepository;
use crate::local::LocalRepository;
use crate::repo::Repository;

/// GitHub settings. The token is registered as a secret (masked in every log) and never printed by
/// `Debug`.
#[derive(Clone)]
pub struct GithubConfig {
    /// `GITHUB_TOKEN`: with it (and `GITHUB_REPOSITORY`), issues and commits go to GitHub.
    pub token: Option<String>,
    /// `GITHUB_API_URL`: the REST base URL; `https://api.github.com` unless GitHub Enterprise
    /// (`https://HOST/api/v3`).
    pub api_url: Option<String>,
    /// `GITHUB_REPOSITORY`: `owner/name`.
    pub repository: Option<(String, String)>,
    /// `GITHUB_WEBHOOK_SECRET`: the shared secret of the webhook; without it the webhook is off.
    pub webhook_secret: Option<String>,
    /// `MLOPS_HISTORY_REPO`: the local git repository used when no token is set (default
    /// `<MLOPS_HOME>/history-repo`).
    pub history_repo: PathBuf,
}

impl fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubConfig")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("api_url", &self.api_url)
            .field("repository", &self.repository)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "***"),
            )
            .field("history_repo", &self.history_repo)
            .finish()
    }
}

impl GithubConfig {
    /// Reads the process environment; `home` is the server's home folder (`MLOPS_HOME`).
    pub fn from_env(home: &Path) -> Result<Self, RepoError> {
        let values: BTreeMap<String, String> = std::env::vars().collect();
        Self::from_map(&values, home)
    }

    /// Builds the settings from explicit key/value pairs (the environment's names).
    pub fn from_map(values: &BTreeMap<String, String>, home: &Path) -> Result<Self, RepoError> {
        let get = |k: &str| mlops_core::setting(values, k);
        let token = get("GITHUB_TOKEN");
        let webhook_secret = get("GITHUB_WEBHOOK_SECRET");
        for secret in token.iter().chain(webhook_secret.iter()) {
            mlops_core::logging::register_secret(secret);
        }
        let repository = match get("GITHUB_REPOSITORY") {
            None => None,
            Some(r) => Some(parse_owner_repo(&r)?),
        };
        let api_url = get("GITHUB_API_URL");
        if let Some(u) = &api_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(RepoError::invalid(format!(
                "GITHUB_API_URL must be an http(s) URL such as https://api.github.com or https://github.example.com/api/v3, got `{u}`"
            )));
        }
        if token.is_some() && repository.is_none() {
            return Err(RepoError::invalid(
                "GITHUB_TOKEN is set but GITHUB_REPOSITORY is not: set it to `owner/name`, or unset GITHUB_TOKEN to use the local history repository",
            ));
        }
        let history_repo = get("MLOPS_HISTORY_REPO")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("history-repo"));
        Ok(Self {
            token,
            api_url,
            repository,
            webhook_secret,
            history_repo,
        })
    }
}

/// `owner/name` → (owner, name).
pub fn parse_owner_repo(s: &str) -> Result<(String, String), RepoError> {
    let valid = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match s.trim().split_once('/') {
        Some((o, n)) if valid(o) && valid(n) => Ok((o.to_string(), n.to_string())),
        _ => Err(RepoError::invalid(format!(
            "GITHUB_REPOSITORY must be `owner/name` (e.g. `acme/ml-models`), got `{s}`"
        ))),
    }
}

/// The repository the settings select: GitHub when a token is set, else the local git repository
/// (initialised if missing, on first use). Nothing is contacted or spawned here, so it is cheap at
/// start-up.
pub async fn repository_from_config(cfg: &GithubConfig) -> Result<Arc<dyn Repository>, RepoError> {
    match (&cfg.token, &cfg.repository) {
        (Some(token), Some((owner, name))) => Ok(Arc::new(GithubRepository::new(
            token,
            owner,
            name,
            cfg.api_url.as_deref(),
        )?)),
        _ => Ok(Arc::new(LocalRepository::new(&cfg.history_repo))),
    }
}

/// [`GithubConfig::from_env`] then [`repository_from_config`].
pub async fn repository_from_env(home: &Path) -> Result<Arc<dyn Repository>, RepoError> {
    repository_from_config(&GithubConfig::from_env(home)?).await
}

#[cfg(test)]
mod tests {
    use mlops_testkit::settings;

    use super::*;

    #[test]
    fn defaults_to_the_local_history_repo() {
        let c = GithubConfig::from_map(&settings(&[]), Path::new("/h")).unwrap();
        assert!(c.token.is_none());
        assert_eq!(c.history_repo, PathBuf::from("/h/history-repo"));
    }

    #[test]
    fn token_needs_a_repository_and_is_never_printed() {
        let err = GithubConfig::from_map(
            &settings(&[("GITHUB_TOKEN", "ghp_config_test_token_1234")]),
            Path::new("/h"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GITHUB_REPOSITORY"), "{err}");
        let c = GithubConfig::from_map(
            &settings(&[
                ("GITHUB_TOKEN", "ghp_config_test_token_1234"),
                ("GITHUB_REPOSITORY", "acme/models"),
                ("MLOPS_HISTORY_REPO", "/tmp/hist"),
            ]),
            Path::new("/h"),
        )
        .unwrap();
        assert_eq!(c.repository, Some(("acme".into(), "models".into())));
        assert!(!format!("{c:?}").contains("ghp_config_test_token_1234"));
        assert_eq!(
            mlops_core::logging::mask_str("x ghp_config_test_token_1234"),
            "x ***"
        );
        assert!(parse_owner_repo("acme").is_err());
        assert!(parse_owner_repo("acme/x/y").is_err());
        assert!(parse_owner_repo("../x").is_err());
        assert!(
            GithubConfig::from_map(&settings(&[("GITHUB_API_URL", "ftp://x")]), Path::new("/h"))
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_token_selects_github_else_the_local_repository() {
        let dir = tempfile::tempdir().unwrap();
        let local = GithubConfig::from_map(
            &settings(&[("MLOPS_HISTORY_REPO", dir.path().join("h").to_str().unwrap())]),
            Path::new("/unused"),
        )
        .unwrap();
        let repo = repository_from_config(&local).await.unwrap();
        assert!(repo.describe().starts_with("local:"), "{}", repo.describe());
        assert!(
            !dir.path().join("h").exists(),
            "nothing happens before first use"
        );
        assert!(
            repo.list_issues(&Default::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert!(dir.path().join("h/.git").exists());
        let gh = GithubConfig::from_map(
            &settings(&[
                ("GITHUB_TOKEN", "ghp_select_test_token_99"),
                ("GITHUB_REPOSITORY", "acme/models"),
                ("GITHUB_API_URL", "https://github.example.com/api/v3"),
            ]),
            Path::new("/h"),
        )
        .unwrap();
        let repo = repository_from_config(&gh).await.unwrap();
        assert_eq!(repo.describe(), "github:acme/models");
    }
}
