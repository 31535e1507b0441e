//! The built-in templates. They define only the `title` and `summary` blocks, so that every
//! channel lays out the metrics and links in its own format.

/// The end of the `summary` block of most built-ins: the caller's own summary, then the issue and
/// the execution the notification is about, worded alike in every one. A macro rather than a
/// constant because `concat!` joins only literals.
macro_rules! summary_tail {
    () => {
        r#"
{%- if summary is defined %}

{{ summary }}
{%- endif %}
{%- if issue_number is defined or execution_id is defined %}

{% if issue_number is defined %}Issue #{{ issue_number }}{% endif %}{% if issue_number is defined and execution_id is defined %} · {% endif %}{% if execution_id is defined %}Execution `{{ execution_id }}`{% endif %}
{%- endif %}{% endblock %}"#
    };
}

/// Built-in templates: (name, description, source).
pub(super) const BUILTINS: [(&str, &str, &str); 5] = [
    (
        "success",
        "Training succeeded and the model was registered. Needs `model_name`; optional: version, metric, threshold, endpoint, sample_prediction, summary, metrics, links, issue_number, execution_id.",
        concat!(
            r#"{% block title %}✅ Training succeeded: {{ model_name }}{% if version is defined %} v{{ version }}{% endif %}{% endblock %}
{% block summary %}Model **{{ model_name }}**{% if version is defined %} version {{ version }}{% endif %} passed evaluation{% if metric is defined and threshold is defined %} ({{ metric }} ≥ {{ threshold }}){% endif %} and was registered.
{%- if endpoint is defined %}

It answers predictions at `{{ endpoint }}` (Open Inference Protocol v2; MLflow scoring at `/v1/models/{{ model_name }}/invocations`).
{%- endif %}
{%- if sample_prediction is defined %}

Sample prediction: {{ sample_prediction }}.
{%- endif %}"#,
            summary_tail!()
        ),
    ),
    (
        "failure",
        "Training finished but the model did not meet its target, or the run failed; the model was rolled back. Needs `model_name` and `reason`; optional: metric, threshold, retry_count, max_retry, summary, metrics, links, issue_number, execution_id.",
        concat!(
            r#"{% block title %}❌ Training failed: {{ model_name }}{% endblock %}
{% block summary %}Model **{{ model_name }}** did not pass: {{ reason }}
{%- if metric is defined and threshold is defined %}

Target: {{ metric }} ≥ {{ threshold }}.
{%- endif %}
{%- if retry_count is defined and max_retry is defined %}

Attempts used: {{ retry_count }} of {{ max_retry }} retries.
{%- endif %}"#,
            summary_tail!()
        ),
    ),
    (
        "retry_approval",
        "Ask the operator whether to retry training. Needs `model_name`, `task_token`, `retry_count` and `max_retry`; optional: reason, metric, threshold, summary, metrics, links, issue_number, execution_id.",
        r#"{% block title %}⏸ Approval needed: retry training {{ model_name }}?{% endblock %}
{% block summary %}Model **{{ model_name }}** did not meet its target{% if reason is defined %}: {{ reason }}{% else %}.{% endif %}
{%- if metric is defined and threshold is defined %}

Target: {{ metric }} ≥ {{ threshold }}.
{%- endif %}

Retry {{ retry_count + 1 }} of {{ max_retry }} is waiting for your decision.
{%- if summary is defined %}

{{ summary }}
{%- endif %}

**To approve the retry**, comment `/approve` on {% if issue_number is defined %}issue #{{ issue_number }}{% else %}the issue{% endif %}; **to reject it**, comment `/reject`.
Or call the `approve_workflow_step` tool with task token `{{ task_token }}` (approve or reject).
{%- if execution_id is defined %}

Execution `{{ execution_id }}`
{%- endif %}{% endblock %}"#,
    ),
    (
        "error",
        "A workflow step failed with an error. Needs `error`; optional: step, model_name, summary, metrics, links, issue_number, execution_id.",
        concat!(
            r#"{% block title %}⚠️ Workflow error{% if step is defined %} in {{ step }}{% endif %}{% if model_name is defined %}: {{ model_name }}{% endif %}{% endblock %}
{% block summary %}{% if step is defined %}Step **{{ step }}** failed{% else %}The workflow failed{% endif %}: {{ error }}"#,
            summary_tail!()
        ),
    ),
    (
        "drift",
        "A monitor found drift in a model's inputs or predictions. Needs `model_name` and `drifted_features` (a list); optional: version, monitor, report, retraining_issue, summary, metrics, links, issue_number, execution_id.",
        concat!(
            r#"{% block title %}📉 Drift detected: {{ model_name }}{% if version is defined %} v{{ version }}{% endif %}{% endblock %}
{% block summary %}{% if monitor is defined %}Monitor **{{ monitor }}** found{% else %}Found{% endif %} drift in {{ drifted_features | length }} feature{% if drifted_features | length != 1 %}s{% endif %} of **{{ model_name }}**: {{ drifted_features | join(", ") }}.
{%- if report is defined %}

Report: {{ report }}
{%- endif %}
{%- if retraining_issue is defined %}

Retraining requested in issue #{{ retraining_issue }}.
{%- endif %}"#,
            summary_tail!()
        ),
    ),
];

/// The template used for a raw title and message.
pub(super) const RAW_TEMPLATE: &str = "message";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::ctx;
    use crate::template::{Level, Metric, Templates};

    #[test]
    fn builtins_render_title_summary_metrics_and_links() {
        let t = Templates::builtin();
        let r = t
            .render(
                "success",
                &ctx(json!({
                    "model_name": "churn", "version": 3, "metric": "accuracy", "threshold": 0.9,
                    "metrics": {"accuracy": 0.95123456, "f1": 0.9},
                    "links": {"Issue": "https://github.com/acme/m/issues/7"},
                    "issue_number": 7, "execution_id": "exec-1"
                })),
            )
            .unwrap();
        assert_eq!(r.title, "✅ Training succeeded: churn v3");
        assert_eq!(r.level, Level::Success);
        assert!(
            r.summary
                .starts_with("Model **churn** version 3 passed evaluation (accuracy ≥ 0.9)"),
            "{}",
            r.summary
        );
        assert!(
            r.summary.contains("Issue #7 · Execution `exec-1`"),
            "{}",
            r.summary
        );
        assert_eq!(
            r.metrics,
            vec![
                Metric {
                    name: "accuracy".into(),
                    value: "0.9512".into()
                },
                Metric {
                    name: "f1".into(),
                    value: "0.9".into()
                }
            ]
        );
        assert!(
            r.body
                .contains("| Metric | Value |\n|---|---|\n| accuracy | 0.9512 |\n| f1 | 0.9 |"),
            "{}",
            r.body
        );
        assert!(
            r.body
                .ends_with("- [Issue](https://github.com/acme/m/issues/7)"),
            "{}",
            r.body
        );
        assert!(
            r.html.contains("<h2>✅ Training succeeded: churn v3</h2>"),
            "{}",
            r.html
        );
        assert!(r.html.contains("<strong>churn</strong>"), "{}", r.html);
        assert!(
            r.html.contains("<tr><td>accuracy</td><td>0.9512</td></tr>"),
            "{}",
            r.html
        );
        assert!(
            r.html
                .contains("<a href=\"https://github.com/acme/m/issues/7\">Issue</a>")
        );
    }

    #[test]
    fn optional_values_may_be_left_out() {
        let t = Templates::builtin();
        let r = t
            .render("success", &ctx(json!({"model_name": "churn"})))
            .unwrap();
        assert_eq!(r.title, "✅ Training succeeded: churn");
        assert_eq!(
            r.summary,
            "Model **churn** passed evaluation and was registered."
        );
        assert!(r.metrics.is_empty() && r.links.is_empty());
        let r = t
            .render(
                "error",
                &ctx(json!({"error": "disk full", "step": "TrainModel"})),
            )
            .unwrap();
        assert_eq!(r.title, "⚠️ Workflow error in TrainModel");
        assert_eq!(r.summary, "Step **TrainModel** failed: disk full");
        assert_eq!(r.level, Level::Failure);
        let r = t
            .render("failure", &ctx(json!({"model_name": "m", "reason": "accuracy 0.7 < 0.9", "retry_count": 3, "max_retry": 3})))
            .unwrap();
        assert!(
            r.summary.contains("Attempts used: 3 of 3 retries."),
            "{}",
            r.summary
        );
    }

    #[test]
    fn retry_approval_says_how_to_approve_or_reject() {
        let t = Templates::builtin();
        let r = t
            .render(
                "retry_approval",
                &ctx(json!({"model_name": "churn", "task_token": "tok-123", "retry_count": 0, "max_retry": 2, "issue_number": 12, "reason": "accuracy 0.81 below 0.9"})),
            )
            .unwrap();
        assert_eq!(r.level, Level::Warning);
        assert!(
            r.summary.contains("comment `/approve` on issue #12"),
            "{}",
            r.summary
        );
        assert!(r.summary.contains("comment `/reject`"), "{}", r.summary);
        assert!(
            r.summary
                .contains("`approve_workflow_step` tool with task token `tok-123`"),
            "{}",
            r.summary
        );
        assert!(r.summary.contains("Retry 1 of 2"), "{}", r.summary);
    }

    #[test]
    fn the_drift_template_names_the_features_and_the_issue() {
        let r = Templates::builtin()
            .render(
                "drift",
                &ctx(json!({
                    "model_name": "churn", "version": 2, "monitor": "churn-daily",
                    "drifted_features": ["income", "region"], "retraining_issue": 12,
                    "report": "file:///m/report.html"
                })),
            )
            .unwrap();
        assert_eq!(r.title, "📉 Drift detected: churn v2");
        assert_eq!(r.level, Level::Warning);
        assert!(
            r.summary.starts_with(
                "Monitor **churn-daily** found drift in 2 features of **churn**: income, region."
            ),
            "{}",
            r.summary
        );
        assert!(r.summary.contains("issue #12"), "{}", r.summary);
    }
}
