//! The layout of a rendered notification: the metrics and links taken from the context, and the
//! Markdown and HTML bodies built from them for the templates that do not write their own.

use serde_json::{Map, Value};

use super::markup::{escape, markdown_to_html};
use super::{Level, Link, Metric, Rendered};

/// A rendered notification from its blocks; a template's own `body` or `html` block replaces the
/// layout built here.
pub(super) fn assemble(
    name: &str,
    level: Level,
    title: String,
    summary: String,
    body: Option<String>,
    html: Option<String>,
    context: &Map<String, Value>,
) -> Rendered {
    let metrics = metrics_of(context);
    let links = links_of(context);
    let body = body.unwrap_or_else(|| markdown_body(&summary, &metrics, &links));
    let html = html.unwrap_or_else(|| html_body(&title, &summary, &metrics, &links));
    Rendered {
        template: name.into(),
        level,
        title,
        summary,
        body,
        html,
        metrics,
        links,
    }
}

fn metrics_of(context: &Map<String, Value>) -> Vec<Metric> {
    match context.get("metrics") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Metric {
                name: k.clone(),
                value: format_metric(v),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn links_of(context: &Map<String, Value>) -> Vec<Link> {
    match context.get("links") {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| {
                Some(Link {
                    label: k.clone(),
                    url: v.as_str()?.to_string(),
                })
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| serde_json::from_value::<Link>(v.clone()).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// Numbers with at most 4 decimals, without trailing zeros; other values as text.
fn format_metric(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            let s = format!("{f:.4}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s.is_empty() || s == "-" {
                "0".into()
            } else {
                s.to_string()
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// [`format_metric`] for minijinja values: the `metric` filter.
pub(super) fn format_metric_mj(v: &minijinja::Value) -> String {
    match serde_json::to_value(v) {
        Ok(j) => format_metric(&j),
        Err(_) => v.to_string(),
    }
}

fn markdown_body(summary: &str, metrics: &[Metric], links: &[Link]) -> String {
    let mut out = summary.to_string();
    if !metrics.is_empty() {
        out.push_str("\n\n| Metric | Value |\n|---|---|\n");
        for m in metrics {
            out.push_str(&format!("| {} | {} |\n", cell(&m.name), cell(&m.value)));
        }
        out = out.trim_end().to_string();
    }
    if !links.is_empty() {
        out.push_str("\n\n");
        let items: Vec<String> = links
            .iter()
            .map(|l| format!("- [{}]({})", l.label, l.url))
            .collect();
        out.push_str(&items.join("\n"));
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Plain text for email: the Markdown body is readable as it is.
pub fn text_body(r: &Rendered) -> String {
    format!("{}\n\n{}\n", r.title, r.body)
}

fn html_body(title: &str, summary: &str, metrics: &[Metric], links: &[Link]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n<h2>{}</h2>\n",
        escape(title)
    );
    out.push_str(&markdown_to_html(summary));
    if !metrics.is_empty() {
        out.push_str("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n<tr><th>Metric</th><th>Value</th></tr>\n");
        for m in metrics {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape(&m.name),
                escape(&m.value)
            ));
        }
        out.push_str("</table>\n");
    }
    if !links.is_empty() {
        out.push_str("<ul>\n");
        for l in links {
            out.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                escape(&l.url),
                escape(&l.label)
            ));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}
