//! `mlops-mcp run-issue FILE`: file an issue from a Markdown file and run its training workflow
//! here, to the end (or to an approval it cannot give), printing what happened.

use std::path::Path;

use anyhow::{Context, bail};
use mlops_core::ToolContext;
use mlops_request::{format_problems_comment, parse_training_request, split_issue_markdown};
use mlops_workflow::{Decision, Status};
use serde_json::{Value, json};

use crate::app::App;

async fn call(app: &App, tool: &str, args: Value) -> anyhow::Result<Value> {
    let out = app
        .router
        .call(tool, args, ToolContext::default())
        .await
        .with_context(|| format!("{tool} failed"))?;
    Ok(out.structured)
}

pub async fn run(app: &App, file: &Path, auto_approve: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the issue file {}", file.display()))?;
    let (title, body) = split_issue_markdown(&text);
    // Check the parameters before anything is filed.
    if let Err(problems) = parse_training_request(&title, &body) {
        bail!("{}", format_problems_comment(&problems));
    }
    call(app, "ensure_labels", json!({})).await?;
    let issue = call(
        app,
        "create_issue",
        json!({"title": title, "body": body, "labels": ["mlops:train"]}),
    )
    .await?;
    let number = issue["issue"]["number"]
        .as_u64()
        .context("create_issue returned no issue number")?;
    println!("Filed issue #{number}: {title}");
    let started = call(app, "start_workflow", json!({"issue_number": number})).await?;
    let id = started["id"]
        .as_str()
        .context("start_workflow returned no execution id")?
        .to_string();
    println!("Started execution {id}");
    let execution = loop {
        let e = app.workflows.run_to_rest(&id).await?;
        let token = e.context["task_token"].as_str().map(String::from);
        match (e.status, token) {
            (Status::Waiting, Some(token)) if auto_approve => {
                println!(
                    "  {}: approving retry {} (--auto-approve)",
                    e.context["reason"]
                        .as_str()
                        .unwrap_or("the model did not pass"),
                    e.context["retry_count"].as_u64().unwrap_or(0) + 1
                );
                app.workflows
                    .store()
                    .decide(
                        &token,
                        Decision::Approve,
                        "run-issue --auto-approve",
                        None,
                        None,
                    )
                    .await?;
            }
            _ => break e,
        }
    };
    for step in app.workflows.store().steps(&id).await? {
        let mark = match step.status.as_str() {
            "succeeded" => "ok ",
            "failed" => "ERR",
            _ => "...",
        };
        println!(
            "  {mark} {:<22} attempt {}{}",
            step.state,
            step.attempt,
            step.error.map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let c = &execution.context;
    println!(
        "Execution {id}: {} ({})",
        execution.status.as_str(),
        c["reason"].as_str().unwrap_or("")
    );
    if let Some(v) = c["promoted_version"].as_i64() {
        println!(
            "Registered {} version {v} in Production",
            execution.model_name
        );
    }
    if let Some(path) = c["outputs"]["WriteHistory"]["path"].as_str() {
        let place = match (&app.github.token, &app.github.repository) {
            (Some(_), Some((owner, name))) => format!("github.com/{owner}/{name}"),
            _ => app.github.history_repo.display().to_string(),
        };
        println!("History: {path} in {place}");
    }
    println!(
        "Notifications: {}",
        app.config.home.join("notifications/outbox.jsonl").display()
    );
    if execution.status == Status::Waiting {
        println!(
            "Waiting for approval: run `mlops-mcp serve` and call approve_workflow_step with task_token {} (or rerun with --auto-approve)",
            c["task_token"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
