//! mlops-github: Capability 4, GitHub Integration.
//!
//! - [`Repository`]: the repository operations the training workflow needs (issues, comments,
//!   labels, committing the training history), with two implementations: [`GithubRepository`]
//!   (the REST API through octocrab; GitHub.com or Enterprise) and [`LocalRepository`] (a local git
//!   repository with issues kept as JSON files: the embedded default, fully offline).
//! - [`parse_training_request`]: an issue's title and body → a typed [`TrainingRequest`], or every
//!   problem found, in plain sentences ready to be commented back on the issue.
//! - [`GithubCapability`]: the MCP tools (`create_issue`, `commit_file`, `parse_training_issue`, ...).
//! - [`webhook_router`]: `POST /webhooks/github`, verifying `X-Hub-Signature-256`, deduplicating
//!   deliveries and queueing typed [`WebhookEvent`]s for the workflow engine.

pub mod capability;
pub mod config;
pub mod error;
#[cfg(any(test, feature = "test-fixture"))]
pub mod fixture;
pub mod github;
pub mod local;
pub mod parser;
pub mod repo;
pub mod webhook;

pub use capability::GithubCapability;
pub use config::{GithubConfig, repository_from_config, repository_from_env};
pub use error::RepoError;
pub use github::GithubRepository;
pub use local::LocalRepository;
pub use parser::{
    MetricGoal, NotificationChannel, Problem, TaskType, TrainingRequest, format_problems_comment,
    parse_training_request, split_issue_markdown,
};
pub use repo::{
    CloseReason, Comment, CommitRequest, CommitResult, EnsuredLabels, HISTORY_DIR, Issue,
    IssueFilter, IssueState, LabelSpec, MLOPS_LABELS, NewIssue, Repository, history_file_name,
    parse_history_number, validate_repo_path,
};
pub use webhook::{
    ApprovalCommand, WEBHOOK_PATH, WebhookConfig, WebhookEvent, WebhookIssue, WebhookState, sign,
    verify_signature, webhook_router,
};
