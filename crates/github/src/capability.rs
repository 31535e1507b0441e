//! The GitHub Integration tools.

use std::sync::Arc;

use mlops_core::{Annotations, Capability, ToolDef, ToolError, ToolResponse};
use mlops_request::{
    MetricGoal, Problem, TrainingRequest, format_problems_comment, parse_training_request,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::repo::{
    CloseReason, Comment, CommitRequest, CommitResult, EnsuredLabels, Issue, IssueFilter,
    IssueState, LabelSpec, NewIssue, Repository,
};

/// Longest issue or comment body accepted (GitHub's own limit is 65,536 characters).
const MAX_BODY: usize = 65_536;
/// Largest file `commit_file` accepts.
const MAX_FILE: usize = 1024 * 1024;

/// Capability 4: GitHub Integration.
pub struct GithubCapability {
    repo: Arc<dyn Repository>,
}

impl GithubCapability {
    pub fn new(repo: Arc<dyn Repository>) -> Arc<Self> {
        Arc::new(Self { repo })
    }

    /// The repository the tools act on.
    pub fn repository(&self) -> Arc<dyn Repository> {
        self.repo.clone()
    }
}

/// Changes GitHub state (issues, labels, files) without destroying any.
const REMOTE_WRITE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};
const REMOTE_IDEMPOTENT: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: true,
    open_world: true,
};
const REMOTE_READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: true,
};

fn check_body(what: &str, body: &str) -> Result<(), ToolError> {
    if body.chars().count() > MAX_BODY {
        return Err(ToolError::validation(format!(
            "{what} is longer than {MAX_BODY} characters; shorten it or commit the detail as a file with `commit_file`"
        )));
    }
    Ok(())
}

fn check_number(n: u64) -> Result<(), ToolError> {
    if n == 0 {
        return Err(ToolError::validation(
            "issue_number starts at 1; use `list_issues` to find issues",
        ));
    }
    Ok(())
}

impl Capability for GithubCapability {
    fn name(&self) -> &'static str {
        "github_integration"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let r = &self.repo;
        vec![
            ToolDef::with(
                r.clone(),
                "create_issue",
                "Create an issue",
                "Open a new issue in the configured repository (GitHub, or the local stand-in when no GITHUB_TOKEN is set), optionally with labels. Add the `mlops:train` label to request a training run.",
                REMOTE_WRITE,
                |repo, i: CreateIssueInput, _ctx| async move {
                    check_body("the body", &i.body)?;
                    let issue = repo
                        .create_issue(NewIssue {
                            title: i.title,
                            body: i.body,
                            labels: i.labels,
                        })
                        .await?;
                    Ok::<_, ToolError>(IssueReport {
                        issue,
                        comments: None,
                    })
                },
            ),
            ToolDef::with(
                r.clone(),
                "get_issue",
                "Get an issue",
                "Read one issue: title, body, state, labels; with `include_comments` also its latest comments (e.g. to look for an operator's /approve).",
                REMOTE_READ,
                |repo, i: GetIssueInput, _ctx| async move {
                    check_number(i.issue_number)?;
                    let issue = repo.get_issue(i.issue_number).await?;
                    let comments = if i.include_comments {
                        Some(
                            repo.list_comments(i.issue_number, i.comment_limit.clamp(1, 100))
                                .await?,
                        )
                    } else {
                        None
                    };
                    Ok::<_, ToolError>(IssueReport { issue, comments })
                },
            ),
            ToolDef::with(
                r.clone(),
                "list_issues",
                "List issues",
                "List issues, newest first, optionally only those carrying all the given labels (e.g. `mlops:train`) and in a given state. Pull requests are left out.",
                REMOTE_READ,
                |repo, i: ListIssuesInput, _ctx| async move {
                    if !(1..=100).contains(&i.limit) {
                        return Err(ToolError::validation("limit must be between 1 and 100"));
                    }
                    let mut labels = i.labels;
                    if let Some(l) = i.label {
                        labels.push(l);
                    }
                    let filter = IssueFilter {
                        labels,
                        state: match i.state {
                            StateFilter::Open => Some(IssueState::Open),
                            StateFilter::Closed => Some(IssueState::Closed),
                            StateFilter::All => None,
                        },
                        limit: i.limit,
                    };
                    let issues = repo.list_issues(&filter).await?;
                    Ok::<_, ToolError>(IssueList { issues })
                },
            ),
            ToolDef::with(
                r.clone(),
                "comment_on_issue",
                "Comment on an issue",
                "Post a Markdown comment on an issue (status updates, results, problems found in a training request).",
                REMOTE_WRITE,
                |repo, i: CommentInput, _ctx| async move {
                    check_number(i.issue_number)?;
                    check_body("the comment", &i.body)?;
                    let comment = repo.comment(i.issue_number, &i.body).await?;
                    Ok::<_, ToolError>(CommentReport {
                        issue_number: i.issue_number,
                        comment,
                    })
                },
            ),
            ToolDef::with(
                r.clone(),
                "close_issue",
                "Close an issue",
                "Close an issue as completed (default) or not_planned, optionally posting a final comment first.",
                REMOTE_IDEMPOTENT,
                |repo, i: CloseInput, _ctx| async move {
                    check_number(i.issue_number)?;
                    if let Some(c) = i.comment.as_deref().filter(|c| !c.trim().is_empty()) {
                        check_body("the comment", c)?;
                        repo.comment(i.issue_number, c).await?;
                    }
                    let issue = repo.close_issue(i.issue_number, Some(i.reason)).await?;
                    Ok::<_, ToolError>(IssueReport {
                        issue,
                        comments: None,
                    })
                },
            ),
            ToolDef::with(
                r.clone(),
                "add_labels",
                "Add labels to an issue",
                "Add labels to an issue (e.g. `mlops:running`); labels the repository lacks are created. Returns the issue's labels afterwards.",
                REMOTE_IDEMPOTENT,
                |repo, i: AddLabelsInput, _ctx| async move {
                    check_number(i.issue_number)?;
                    if i.labels.is_empty() {
                        return Err(ToolError::validation("give at least one label"));
                    }
                    let labels = repo.add_labels(i.issue_number, &i.labels).await?;
                    Ok::<_, ToolError>(LabelsReport {
                        issue_number: i.issue_number,
                        labels,
                    })
                },
            ),
            ToolDef::with(
                r.clone(),
                "remove_label",
                "Remove a label from an issue",
                "Remove one label from an issue (e.g. `mlops:running` when a run ends). Removing a label the issue does not carry is not an error. Returns the labels left.",
                REMOTE_IDEMPOTENT,
                |repo, i: RemoveLabelInput, _ctx| async move {
                    check_number(i.issue_number)?;
                    let labels = repo.remove_label(i.issue_number, &i.label).await?;
                    Ok::<_, ToolError>(LabelsReport {
                        issue_number: i.issue_number,
                        labels,
                    })
                },
            ),
            ToolDef::with(
                r.clone(),
                "ensure_labels",
                "Create the workflow's labels",
                "Make sure the workflow's labels exist in the repository (`mlops:train`, `mlops:running`, `mlops:succeeded`, `mlops:failed`, `mlops:awaiting-approval`), plus any extra ones given. Existing labels are left as they are.",
                REMOTE_IDEMPOTENT,
                |repo, i: EnsureLabelsInput, _ctx| async move {
                    let mut specs = LabelSpec::mlops();
                    for name in i.extra_labels {
                        if !specs.iter().any(|s| s.name.eq_ignore_ascii_case(&name)) {
                            specs.push(LabelSpec {
                                name,
                                color: "ededed".into(),
                                description: String::new(),
                            });
                        }
                    }
                    let report = repo.ensure_labels(&specs).await?;
                    Ok::<_, ToolError>(LabelsEnsured(report))
                },
            ),
            ToolDef::with(
                r.clone(),
                "commit_file",
                "Commit a file",
                "Create or update one text file on a branch (default: the repository's default branch) as a single commit, e.g. a training history record. The path is relative to the repository root. A file that already has this content is left alone (no empty commit).",
                REMOTE_WRITE,
                |repo, i: CommitFileInput, _ctx| async move {
                    if i.content.len() > MAX_FILE {
                        return Err(ToolError::validation(format!(
                            "content is {} bytes; commit_file takes at most {MAX_FILE} bytes",
                            i.content.len()
                        )));
                    }
                    let result = repo
                        .commit_file(&CommitRequest {
                            path: i.path,
                            content: i.content.into_bytes(),
                            message: i.message,
                            branch: i.branch,
                            create_only: false,
                        })
                        .await?;
                    Ok::<_, ToolError>(CommitReport(result))
                },
            ),
            ToolDef::with(
                r.clone(),
                "commit_training_history",
                "Commit a training history record",
                "Commit a Markdown record of a training run as `training_history/train-YYYYMMDD-NNN.md`, with NNN the next free number of that day (001, 002, ...). `date` defaults to today (UTC).",
                REMOTE_WRITE,
                |repo, i: HistoryInput, _ctx| async move {
                    if i.content.len() > MAX_FILE {
                        return Err(ToolError::validation(format!(
                            "content is {} bytes; at most {MAX_FILE} bytes",
                            i.content.len()
                        )));
                    }
                    let date = match i.date.as_deref() {
                        None => chrono::Utc::now().date_naive(),
                        Some(d) => {
                            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                                ToolError::validation(format!("date `{d}` must be YYYY-MM-DD"))
                            })?
                        }
                    };
                    let message = i.message.unwrap_or_else(|| {
                        format!("Add training history for {}", date.format("%Y-%m-%d"))
                    });
                    let result = repo
                        .commit_history(date, i.content.as_bytes(), &message, i.branch.as_deref())
                        .await?;
                    Ok::<_, ToolError>(CommitReport(result))
                },
            ),
            ToolDef::with(
                r.clone(),
                "parse_training_issue",
                "Parse a training request",
                "Read the training parameters of an issue (by `issue_number`, or from `title` and `body` directly): dataset, target_column, task_type, algorithm, hyperparameters, metric, threshold, max_retry, notify. Returns the typed request, or every problem found in plain sentences; with `comment_problems: true` the problems are also posted on the issue.",
                REMOTE_WRITE,
                |repo, i: ParseIssueInput, _ctx| async move { parse_issue(repo.as_ref(), i).await },
            ),
        ]
    }
}

async fn parse_issue(repo: &dyn Repository, i: ParseIssueInput) -> Result<ParseReport, ToolError> {
    let (title, body, number) = match (i.issue_number, i.title, i.body) {
        (Some(n), None, None) => {
            check_number(n)?;
            let issue = repo.get_issue(n).await?;
            (issue.title, issue.body, Some(n))
        }
        (None, title, Some(body)) => (title.unwrap_or_default(), body, None),
        (Some(_), _, _) => {
            return Err(ToolError::validation(
                "give either `issue_number`, or `title` and `body`, not both",
            ));
        }
        (None, _, None) => {
            return Err(ToolError::validation(
                "give `issue_number` (to read the issue) or `body` (to parse text directly)",
            ));
        }
    };
    if i.comment_problems && number.is_none() {
        return Err(ToolError::validation(
            "`comment_problems` needs `issue_number`: there is no issue to comment on",
        ));
    }
    check_body("the body", &body)?;
    match parse_training_request(&title, &body) {
        Ok(request) => Ok(ParseReport {
            issue_number: number,
            valid: true,
            request: Some(request),
            problems: Vec::new(),
            comment: None,
            commented: false,
        }),
        Err(problems) => {
            let comment = format_problems_comment(&problems);
            let commented = match (i.comment_problems, number) {
                (true, Some(n)) => {
                    repo.comment(n, &comment).await?;
                    true
                }
                _ => false,
            };
            Ok(ParseReport {
                issue_number: number,
                valid: false,
                request: None,
                problems,
                comment: Some(comment),
                commented,
            })
        }
    }
}

// ---- inputs ----

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIssueInput {
    /// Issue title.
    pub title: String,
    /// Issue body (Markdown).
    #[serde(default)]
    pub body: String,
    /// Labels to set, e.g. ["mlops:train"].
    #[serde(default)]
    pub labels: Vec<String>,
}

fn default_comment_limit() -> usize {
    20
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetIssueInput {
    /// Issue number.
    pub issue_number: u64,
    /// Also return the latest comments.
    #[serde(default)]
    pub include_comments: bool,
    /// How many of the latest comments (1–100, default 20).
    #[serde(default = "default_comment_limit")]
    pub comment_limit: usize,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    #[default]
    Open,
    Closed,
    All,
}

fn default_limit() -> usize {
    30
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIssuesInput {
    /// Only issues with this label (e.g. `mlops:train`).
    #[serde(default)]
    pub label: Option<String>,
    /// Only issues with all of these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// open (default), closed or all.
    #[serde(default)]
    pub state: StateFilter,
    /// At most this many issues (1–100, default 30).
    #[serde(default = "default_limit")]
    pub limit: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    pub issue_number: u64,
    /// Comment text (Markdown).
    pub body: String,
}

fn default_reason() -> CloseReason {
    CloseReason::Completed
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseInput {
    pub issue_number: u64,
    /// completed (default) or not_planned.
    #[serde(default = "default_reason")]
    pub reason: CloseReason,
    /// A comment to post before closing.
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLabelsInput {
    pub issue_number: u64,
    /// Labels to add.
    pub labels: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveLabelInput {
    pub issue_number: u64,
    /// The label to remove.
    pub label: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnsureLabelsInput {
    /// More labels to create besides the workflow's own.
    #[serde(default)]
    pub extra_labels: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitFileInput {
    /// Path relative to the repository root, e.g. `training_history/notes.md`.
    pub path: String,
    /// The whole new content of the file (UTF-8 text).
    pub content: String,
    /// Commit message.
    pub message: String,
    /// Branch to commit to (default: the repository's default branch). It must exist.
    #[serde(default)]
    pub branch: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryInput {
    /// The Markdown record.
    pub content: String,
    /// The run's date, YYYY-MM-DD (default: today, UTC).
    #[serde(default)]
    pub date: Option<String>,
    /// Commit message (default: "Add training history for DATE").
    #[serde(default)]
    pub message: Option<String>,
    /// Branch (default: the repository's default branch).
    #[serde(default)]
    pub branch: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParseIssueInput {
    /// Read this issue.
    #[serde(default)]
    pub issue_number: Option<u64>,
    /// Or parse this title...
    #[serde(default)]
    pub title: Option<String>,
    /// ...and this body.
    #[serde(default)]
    pub body: Option<String>,
    /// Post the problems (if any) as a comment on the issue.
    #[serde(default)]
    pub comment_problems: bool,
}

// ---- outputs ----

#[derive(Debug, Serialize, JsonSchema)]
pub struct IssueReport {
    pub issue: Issue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<Comment>>,
}

impl ToolResponse for IssueReport {
    fn summary(&self) -> String {
        let i = &self.issue;
        let labels = if i.labels.is_empty() {
            String::new()
        } else {
            format!(" [{}]", i.labels.join(", "))
        };
        let mut s = format!(
            "#{} {} ({}){labels}",
            i.number,
            i.title,
            match i.state {
                IssueState::Open => "open",
                IssueState::Closed => "closed",
            }
        );
        if let Some(c) = &self.comments {
            s.push_str(&format!(", {} comment(s) returned", c.len()));
        }
        s
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct IssueList {
    pub issues: Vec<Issue>,
}

impl ToolResponse for IssueList {
    fn summary(&self) -> String {
        if self.issues.is_empty() {
            return "No matching issues.".into();
        }
        let mut s = format!("{} issue(s):", self.issues.len());
        for i in &self.issues {
            s.push_str(&format!(
                "\n#{} {} [{}]",
                i.number,
                i.title,
                i.labels.join(", ")
            ));
        }
        s
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CommentReport {
    pub issue_number: u64,
    pub comment: Comment,
}

impl ToolResponse for CommentReport {
    fn summary(&self) -> String {
        format!(
            "Commented on #{} (comment {}).",
            self.issue_number, self.comment.id
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LabelsReport {
    pub issue_number: u64,
    pub labels: Vec<String>,
}

impl ToolResponse for LabelsReport {
    fn summary(&self) -> String {
        format!(
            "#{} now has labels: {}",
            self.issue_number,
            if self.labels.is_empty() {
                "(none)".into()
            } else {
                self.labels.join(", ")
            }
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct LabelsEnsured(pub EnsuredLabels);

impl ToolResponse for LabelsEnsured {
    fn summary(&self) -> String {
        format!(
            "Created {} label(s){}; {} already existed.",
            self.0.created.len(),
            if self.0.created.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.0.created.join(", "))
            },
            self.0.existing.len()
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct CommitReport(pub CommitResult);

impl ToolResponse for CommitReport {
    fn summary(&self) -> String {
        let c = &self.0;
        match &c.commit_sha {
            None => format!(
                "`{}` on `{}` already has this content; nothing committed.",
                c.path, c.branch
            ),
            Some(sha) => format!(
                "{} `{}` on `{}` in commit {}.",
                if c.created { "Created" } else { "Updated" },
                c.path,
                c.branch,
                &sha[..sha.len().min(12)]
            ),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ParseReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_number: Option<u64>,
    /// Whether the request is complete and valid.
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<TrainingRequest>,
    pub problems: Vec<Problem>,
    /// The Markdown comment listing the problems (when invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether that comment was posted on the issue.
    pub commented: bool,
}

impl ToolResponse for ParseReport {
    fn summary(&self) -> String {
        match &self.request {
            Some(r) => format!(
                "Valid training request: {} {} with {} on {} (target {}), pass when {} {} {}; max_retry {}.",
                r.task_type,
                r.algorithm,
                if r.hyperparameters.is_empty() {
                    "default hyperparameters".to_string()
                } else {
                    format!("{} hyperparameter(s)", r.hyperparameters.len())
                },
                r.dataset,
                r.target_column.as_deref().unwrap_or("none"),
                r.metric,
                match r.metric_goal {
                    MetricGoal::Maximize => ">=",
                    MetricGoal::Minimize => "<=",
                },
                r.threshold,
                r.max_retry
            ),
            None => {
                let mut s = format!(
                    "Invalid training request ({} problem(s)){}:",
                    self.problems.len(),
                    if self.commented {
                        ", commented on the issue"
                    } else {
                        ""
                    }
                );
                for p in &self.problems {
                    s.push_str(&format!("\n- {p}"));
                }
                s
            }
        }
    }
}
