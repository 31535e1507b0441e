//! Issues kept as Markdown files (`mlops-mcp run-issue issue.md`): the title and the body.

use serde_json::Value;

/// Splits an issue kept as a Markdown file (`mlops-mcp run-issue issue.md`) into title and body.
/// The title is a `title:` in YAML front matter (`---` lines) or else the first `# ` heading;
/// without either it is empty and the whole text is the body.
pub fn split_issue_markdown(text: &str) -> (String, String) {
    let text = text.trim_start_matches('\u{feff}');
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("---")
        && rest.starts_with(['\n', '\r'])
        && let Some(end) = rest.find("\n---")
    {
        let front = &rest[..end];
        let after = rest[end + 4..].trim_start_matches('-');
        let body = after
            .strip_prefix("\r\n")
            .or_else(|| after.strip_prefix('\n'))
            .unwrap_or(after);
        let title = match serde_norway::from_str::<Value>(front) {
            Ok(v) => v["title"].as_str().unwrap_or_default().trim().to_string(),
            Err(_) => String::new(),
        };
        return (title, body.to_string());
    }
    let mut lines = text.lines();
    let mut consumed = 0;
    for line in lines.by_ref() {
        consumed += line.len() + 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(title) = t.strip_prefix("# ") {
            let body = text.get(consumed.min(text.len())..).unwrap_or_default();
            return (title.trim().to_string(), body.to_string());
        }
        break;
    }
    (String::new(), text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TaskType, parse_training_request};

    #[test]
    fn issue_files_with_front_matter_or_a_heading() {
        let (t, b) = split_issue_markdown(
            "---\ntitle: Retrain churn\nlabels: [mlops:train]\n---\ndataset: d.csv\n",
        );
        assert_eq!(
            (t.as_str(), b.as_str()),
            ("Retrain churn", "dataset: d.csv\n")
        );
        let (t, b) = split_issue_markdown("\n# Title here\n\nBody\n");
        assert_eq!((t.as_str(), b.as_str()), ("Title here", "\nBody\n"));
        let (t, b) = split_issue_markdown("dataset: d.csv\n# Not a title\n");
        assert_eq!(
            (t.as_str(), b.as_str()),
            ("", "dataset: d.csv\n# Not a title\n")
        );
        for odd in ["---", "---\n", "---\ntitle: x", "# ", "\u{feff}# T\r\nB"] {
            let _ = split_issue_markdown(odd);
        }
    }

    #[test]
    fn example_issue_file_parses() {
        let text = include_str!("../examples/train-issue.md");
        let (title, body) = split_issue_markdown(text);
        assert_eq!(title, "Train the churn classifier (weekly refresh)");
        let r = parse_training_request(&title, &body).unwrap_or_else(|p| panic!("{p:#?}"));
        assert_eq!(r.title, title);
        assert_eq!(r.task_type, TaskType::Classification);
        assert_eq!(r.algorithm, "random_forest");
        assert!(r.hyperparameters.contains_key("n_estimators"));
        assert!(r.notify.iter().any(|c| c.kind == "slack"));
    }
}
