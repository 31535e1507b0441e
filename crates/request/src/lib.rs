//! mlops-request: the training-issue format. An issue's title and body become a typed
//! [`TrainingRequest`], or every problem found, in plain sentences ready to be commented back on the
//! issue ([`format_problems_comment`]).
//!
//! Accepted formats, tried in this order:
//! 1. a fenced ```` ```yaml ```` (or `yml`, or unlabelled) block holding a mapping, anywhere in the
//!    body, also inside a collapsed `<details>` block. Every key in it must be known.
//! 2. otherwise, `key: value` lines anywhere in the body (list markers, `**bold**` keys and
//!    backticks are tolerated), and GitHub issue-form sections (`### Dataset` followed by the
//!    value). Lines whose key is not a known key are taken as prose and ignored, unless the key is
//!    close to a known one (a likely typo), which is reported with a suggestion.
//!
//! Keys are matched ignoring case, spaces and `-` (`Target Column` = `target_column`), and a few
//! synonyms are accepted (`task` = `task_type`, `max_retries` = `max_retry`, ...). Every problem is
//! collected, as a plain sentence, so one comment can tell the author everything to fix.
//!
//! This is a library crate: the GitHub tools and the workflow engine both read requests with it,
//! and neither depends on the other.

mod extract;
mod fields;
mod issue_file;
mod keys;
mod parse;
mod problems;
mod request;
mod spelling;
#[cfg(test)]
mod testing;

pub use issue_file::split_issue_markdown;
pub use parse::parse_training_request;
pub use problems::format_problems_comment;
pub use request::{
    MetricGoal, NotificationChannel, Problem, TaskType, TrainingRequest, TuneRequest,
};
