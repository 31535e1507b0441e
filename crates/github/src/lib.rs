//! mlops-github: Capability 4, GitHub Integration.
//!
//! - [`Repository`]: the repository operations the training workflow needs (issues, comments,
//!   labels, committing the training history), with two implementations: [`GithubRepository`]
//!   (the REST API through octocrab; GitHub.com or Enterprise) and [`LocalRepository`] (a local git
//!   repository with issues kept as JSON files: the embedded default, fully offline).
//! - [`GithubCapability`]: the MCP tools (`create_issue`, `commit_file`, `parse_training_issue`, ...).
//!   `parse_training_issue` reads the issue format of `mlops-request`, the library crate that the
//!   workflow engine reads it with too.
//! - [`webhook_router`]: `POST /webhooks/github`, verifying `X-Hub-Signature-256`, deduplicating
//!   deliveries and queueing typed [`WebhookEvent`]s for the workflow engine.

mod capability;
mod config;
mod error;
#[cfg(any(test, feature = "test-fixture"))]
mod fixture;
mod github;
mod local;
mod repo;
mod webhook;

pub use capability::GithubCapability;
pub use config::{GithubConfig, repository_from_config, repository_from_env};
pub use error::RepoError;
#[cfg(any(test, feature = "test-fixture"))]
pub use fixture::{GithubFixture, RecordedRequest};
pub use github::GithubRepository;
pub use local::LocalRepository;
// The labels and the path rule are part of the `Repository` contract (its docs name them).
pub use repo::{
    CloseReason, Comment, CommitRequest, CommitResult, EnsuredLabels, HISTORY_DIR, Issue,
    IssueFilter, IssueState, LabelSpec, MLOPS_LABELS, NewIssue, Repository, validate_repo_path,
};
pub use webhook::{
    ApprovalCommand, WebhookConfig, WebhookEvent, WebhookIssue, WebhookState, sign, webhook_router,
};
