//! Notification templates (minijinja).
//!
//! A template defines a `title` block and a `summary` block (Markdown prose). The metrics table and
//! the links come from the context's `metrics` (name → value) and `links` (label → URL) and are laid
//! out by each channel in its own format (a Markdown table on GitHub, fields in Slack, a FactSet in
//! Teams, embed fields in Discord, an HTML table in email). A template may also define `body`
//! (the whole Markdown text) and `html` (the email's HTML part) to take over the layout entirely;
//! a template without blocks is plain Markdown whose first line is the title.
//!
//! Built-ins: `success`, `failure`, `retry_approval`, `error`. Files `<name>.j2` (or `.jinja`,
//! `.jinja2`) in the template folder override built-ins of the same name and add new templates.
//! Undefined variables are errors (strict mode) naming the missing variable; syntax errors name the
//! template and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::NotifyError;

/// Built-in templates: (name, description, source).
pub const BUILTINS: [(&str, &str, &str); 4] = [
    (
        "success",
        "Training succeeded and the model was registered. Needs `model_name`; optional: version, metric, threshold, summary, metrics, links, issue_number, execution_id.",
        r#"{% block title %}✅ Training succeeded: {{ model_name }}{% if version is defined %} v{{ version }}{% endif %}{% endblock %}
{% block summary %}Model **{{ model_name }}**{% if version is defined %} version {{ version }}{% endif %} passed evaluation{% if metric is defined and threshold is defined %} ({{ metric }} ≥ {{ threshold }}){% endif %} and was registered.
{%- if summary is defined %}

{{ summary }}
{%- endif %}
{%- if issue_number is defined or execution_id is defined %}

{% if issue_number is defined %}Issue #{{ issue_number }}{% endif %}{% if issue_number is defined and execution_id is defined %} · {% endif %}{% if execution_id is defined %}Execution `{{ execution_id }}`{% endif %}
{%- endif %}{% endblock %}"#,
    ),
    (
        "failure",
        "Training finished but the model did not meet its target, or the run failed; the model was rolled back. Needs `model_name` and `reason`; optional: metric, threshold, retry_count, max_retry, summary, metrics, links, issue_number, execution_id.",
        r#"{% block title %}❌ Training failed: {{ model_name }}{% endblock %}
{% block summary %}Model **{{ model_name }}** did not pass: {{ reason }}
{%- if metric is defined and threshold is defined %}

Target: {{ metric }} ≥ {{ threshold }}.
{%- endif %}
{%- if retry_count is defined and max_retry is defined %}

Attempts used: {{ retry_count }} of {{ max_retry }} retries.
{%- endif %}
{%- if summary is defined %}

{{ summary }}
{%- endif %}
{%- if issue_number is defined or execution_id is defined %}

{% if issue_number is defined %}Issue #{{ issue_number }}{% endif %}{% if issue_number is defined and execution_id is defined %} · {% endif %}{% if execution_id is defined %}Execution `{{ execution_id }}`{% endif %}
{%- endif %}{% endblock %}"#,
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
        r#"{% block title %}⚠️ Workflow error{% if step is defined %} in {{ step }}{% endif %}{% if model_name is defined %}: {{ model_name }}{% endif %}{% endblock %}
{% block summary %}{% if step is defined %}Step **{{ step }}** failed{% else %}The workflow failed{% endif %}: {{ error }}
{%- if summary is defined %}

{{ summary }}
{%- endif %}
{%- if issue_number is defined or execution_id is defined %}

{% if issue_number is defined %}Issue #{{ issue_number }}{% endif %}{% if issue_number is defined and execution_id is defined %} · {% endif %}{% if execution_id is defined %}Execution `{{ execution_id }}`{% endif %}
{%- endif %}{% endblock %}"#,
    ),
];

/// The template used for a raw title and message.
pub const RAW_TEMPLATE: &str = "message";

/// Severity, used for colours and icons by the channels that have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Success,
    Failure,
    Warning,
    Info,
}

impl Level {
    fn for_template(name: &str, context: &Map<String, Value>) -> Self {
        match context.get("level").and_then(Value::as_str) {
            Some("success") => return Level::Success,
            Some("failure" | "error") => return Level::Failure,
            Some("warning") => return Level::Warning,
            Some("info") => return Level::Info,
            _ => {}
        }
        match name {
            "success" => Level::Success,
            "failure" | "error" => Level::Failure,
            "retry_approval" => Level::Warning,
            _ => Level::Info,
        }
    }
}

/// A metric shown in the notification's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metric {
    pub name: String,
    /// Formatted: numbers with at most 4 decimals.
    pub value: String,
}

/// A link shown under the notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// A rendered notification, ready for any channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rendered {
    /// The template it came from (`message` for a raw title and message).
    pub template: String,
    pub level: Level,
    pub title: String,
    /// Markdown prose (without the metrics table and links).
    pub summary: String,
    /// The whole text in Markdown: summary, metrics table, links.
    pub body: String,
    /// The HTML version (email).
    pub html: String,
    /// The context's metrics, sorted by name, values formatted.
    pub metrics: Vec<Metric>,
    pub links: Vec<Link>,
}

/// A template as listed to users.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemplateInfo {
    pub name: String,
    /// `builtin`, or the file it was loaded from.
    pub source: String,
    /// True when a user file replaces the built-in of the same name.
    pub overrides_builtin: bool,
    pub description: String,
    /// Variables the template reads from the context (required or optional).
    pub variables: Vec<String>,
    /// A syntax error, when the file does not parse (rendering it fails with this message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The built-ins plus the user's templates, loaded from the template folder.
pub struct Templates {
    env: Environment<'static>,
    infos: BTreeMap<String, TemplateInfo>,
    broken: BTreeMap<String, String>,
}

const EXTENSIONS: [&str; 3] = ["j2", "jinja", "jinja2"];

impl Templates {
    /// The built-ins only.
    pub fn builtin() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(false);
        env.add_filter("metric", |v: minijinja::Value| {
            if v.is_undefined() {
                // Strict: a missing metric is an error, not an empty cell.
                return Err(minijinja::Error::from(ErrorKind::UndefinedError));
            }
            Ok(format_metric_mj(&v))
        });
        let mut infos = BTreeMap::new();
        for (name, description, source) in BUILTINS {
            // Built-ins are tested to parse; a failure here would be a bug caught by the tests.
            if let Err(e) = env.add_template_owned(name.to_string(), source.to_string()) {
                tracing::error!(template = name, error = %e, "built-in template does not parse");
                continue;
            }
            infos.insert(
                name.to_string(),
                TemplateInfo {
                    name: name.into(),
                    source: "builtin".into(),
                    overrides_builtin: false,
                    description: description.into(),
                    variables: Vec::new(),
                    error: None,
                },
            );
        }
        let mut t = Self {
            env,
            infos,
            broken: BTreeMap::new(),
        };
        t.fill_variables();
        t
    }

    /// The built-ins, then every template file in `dir` (a missing folder is fine).
    pub fn load(dir: &Path) -> Result<Self, NotifyError> {
        let mut t = Self::builtin();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(t),
            Err(e) => {
                return Err(NotifyError::Io(format!(
                    "cannot read the template folder {}: {e}",
                    dir.display()
                )));
            }
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter_map(|p| {
                let file = p.file_name()?.to_str()?.to_string();
                let (stem, ext) = file.rsplit_once('.')?;
                let name = stem.split('.').next()?.to_string();
                (EXTENSIONS.contains(&ext) && valid_name(&name)).then_some((name, p))
            })
            .collect();
        files.sort();
        for (name, path) in files {
            let source = std::fs::read_to_string(&path).map_err(|e| {
                NotifyError::Io(format!("cannot read template {}: {e}", path.display()))
            })?;
            let overrides_builtin = BUILTINS.iter().any(|(n, _, _)| *n == name);
            let mut info = TemplateInfo {
                name: name.clone(),
                source: path.display().to_string(),
                overrides_builtin,
                description: first_comment(&source)
                    .unwrap_or_else(|| format!("user template from {}", path.display())),
                variables: Vec::new(),
                error: None,
            };
            match t.env.add_template_owned(name.clone(), source) {
                Ok(()) => {
                    t.broken.remove(&name);
                }
                Err(e) => {
                    let message = syntax_message(&name, &path, &e);
                    info.error = Some(message.clone());
                    t.broken.insert(name.clone(), message);
                    // A broken override must not silently fall back to the built-in.
                    t.env.remove_template(&name);
                }
            }
            t.infos.insert(name, info);
        }
        t.fill_variables();
        Ok(t)
    }

    fn fill_variables(&mut self) {
        for (name, info) in self.infos.iter_mut() {
            if let Ok(tmpl) = self.env.get_template(name) {
                let mut vars: Vec<String> = tmpl.undeclared_variables(false).into_iter().collect();
                vars.sort();
                info.variables = vars;
            }
        }
    }

    /// Every template, by name.
    pub fn list(&self) -> Vec<TemplateInfo> {
        self.infos.values().cloned().collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.infos.keys().cloned().collect()
    }

    /// Renders template `name` with `context` (a JSON object).
    pub fn render(
        &self,
        name: &str,
        context: &Map<String, Value>,
    ) -> Result<Rendered, NotifyError> {
        if let Some(message) = self.broken.get(name) {
            return Err(NotifyError::Template(message.clone()));
        }
        let tmpl = self.env.get_template(name).map_err(|_| {
            NotifyError::Template(format!(
                "unknown template `{name}`; available: {}",
                self.names().join(", ")
            ))
        })?;
        let undeclared = tmpl.undeclared_variables(false);
        let fail = |e: minijinja::Error| {
            // The failure may be in a template this one extends or includes: name that one.
            let other = e
                .name()
                .filter(|n| *n != name)
                .and_then(|n| self.env.get_template(n).ok());
            match other {
                Some(t) => render_error(
                    t.name(),
                    t.source(),
                    &t.undeclared_variables(false),
                    context,
                    e,
                ),
                None => render_error(name, tmpl.source(), &undeclared, context, e),
            }
        };
        let mut captured = tmpl.render_captured(context).map_err(fail)?;
        let mut block = |b: &str| {
            captured.with_state_mut(|state| match state.render_block(b) {
                Ok(s) => Ok(Some(s.trim().to_string())),
                Err(e) if e.kind() == ErrorKind::UnknownBlock => Ok(None),
                Err(e) => Err(e),
            })
        };
        let title = block("title").map_err(fail)?;
        let summary = block("summary").map_err(fail)?;
        let body = block("body").map_err(fail)?;
        let html = block("html").map_err(fail)?;
        let (title, summary) = match (title, summary) {
            (Some(t), Some(s)) => (t, s),
            (Some(t), None) => (t, body.clone().unwrap_or_default()),
            // Plain Markdown: the first line is the title.
            (None, s) => split_title(
                &s.or_else(|| body.clone())
                    .unwrap_or_else(|| captured.output().trim().to_string()),
            ),
        };
        if title.is_empty() {
            return Err(NotifyError::Template(format!(
                "template `{name}` rendered an empty title; give it a `title` block or a first line"
            )));
        }
        Ok(assemble(
            name,
            Level::for_template(name, context),
            title,
            summary,
            body,
            html,
            context,
        ))
    }

    /// A notification from a raw title and message (Markdown), with the context's metrics and links.
    pub fn raw(title: &str, message: &str, context: &Map<String, Value>) -> Rendered {
        assemble(
            RAW_TEMPLATE,
            Level::for_template(RAW_TEMPLATE, context),
            title.trim().to_string(),
            message.trim().to_string(),
            None,
            None,
            context,
        )
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The text of a leading `{# ... #}` comment: the template's description.
fn first_comment(source: &str) -> Option<String> {
    let rest = source.trim_start().strip_prefix("{#")?;
    let (comment, _) = rest.split_once("#}")?;
    let c = comment.trim();
    (!c.is_empty()).then(|| c.to_string())
}

fn split_title(text: &str) -> (String, String) {
    let mut lines = text.lines();
    let title = lines
        .by_ref()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .trim_start_matches('#')
        .trim()
        .to_string();
    let rest: Vec<&str> = lines.collect();
    (title, rest.join("\n").trim().to_string())
}

fn syntax_message(name: &str, path: &Path, e: &minijinja::Error) -> String {
    format!(
        "template `{name}` ({}) has a syntax error{}: {}",
        path.display(),
        e.line()
            .map(|l| format!(" on line {l}"))
            .unwrap_or_default(),
        e.detail().unwrap_or("cannot parse")
    )
}

/// Turns a render failure into a message naming the template, the line and, for an undefined
/// value, the missing variable.
fn render_error(
    name: &str,
    source: &str,
    undeclared: &std::collections::HashSet<String>,
    context: &Map<String, Value>,
    e: minijinja::Error,
) -> NotifyError {
    let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
    if e.kind() == ErrorKind::UndefinedError {
        let expr = e.range().and_then(|r| source.get(r)).unwrap_or_default();
        let line_text = e
            .line()
            .and_then(|l| source.lines().nth(l.saturating_sub(1)))
            .unwrap_or_default();
        let missing = missing_in(expr, undeclared, context)
            .or_else(|| missing_in(line_text, undeclared, context))
            .or_else(|| {
                // Without a usable span: every top-level variable that the context lacks.
                let mut all: Vec<&String> = undeclared
                    .iter()
                    .filter(|v| !context.contains_key(v.as_str()))
                    .collect();
                all.sort();
                (!all.is_empty()).then(|| {
                    all.iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            });
        let given: BTreeSet<&str> = context.keys().map(String::as_str).collect();
        let given = if given.is_empty() {
            "none".to_string()
        } else {
            given.into_iter().collect::<Vec<_>>().join(", ")
        };
        return NotifyError::Template(match missing {
            Some(m) => format!(
                "template `{name}`{line}: missing context value {m}; pass it in `context` (given: {given})"
            ),
            None => format!(
                "template `{name}`{line}: an undefined value was used; check the context (given: {given})"
            ),
        });
    }
    NotifyError::Template(format!(
        "template `{name}`{line}: {}",
        e.detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.kind().to_string())
    ))
}

/// The first dotted name in `expr` that starts with an undeclared variable and is absent from the
/// context, quoted.
fn missing_in(
    expr: &str,
    undeclared: &std::collections::HashSet<String>,
    context: &Map<String, Value>,
) -> Option<String> {
    let mut chars = expr.char_indices().peekable();
    let mut names = Vec::new();
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            // Skip an identifier preceded by '.', '|' or 'is ': attributes, filters, tests.
            let prev = expr[..i].trim_end().chars().last();
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == '.' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if !matches!(prev, Some('.' | '|')) {
                names.push(&expr[i..end]);
            }
        }
    }
    for dotted in names {
        let dotted = dotted.trim_end_matches('.');
        let mut parts = dotted.split('.');
        let Some(root) = parts.next() else { continue };
        if !undeclared.contains(root) {
            continue;
        }
        let mut cur = context.get(root);
        let mut path = root.to_string();
        if cur.is_none() {
            return Some(format!("`{path}`"));
        }
        for p in parts {
            path.push('.');
            path.push_str(p);
            cur = cur.and_then(|v| v.get(p));
            if cur.is_none() {
                return Some(format!("`{path}`"));
            }
        }
    }
    None
}

fn assemble(
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
pub fn format_metric(v: &Value) -> String {
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

fn format_metric_mj(v: &minijinja::Value) -> String {
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

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The small Markdown subset the templates use: paragraphs, `- ` lists, **bold**, `code`, links.
fn markdown_to_html(md: &str) -> String {
    let mut out = String::new();
    for para in md.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let lines: Vec<&str> = para.lines().collect();
        if lines.iter().all(|l| l.trim_start().starts_with("- ")) {
            out.push_str("<ul>\n");
            for l in lines {
                out.push_str(&format!(
                    "<li>{}</li>\n",
                    inline_html(l.trim_start().trim_start_matches("- "))
                ));
            }
            out.push_str("</ul>\n");
        } else {
            let html: Vec<String> = lines.iter().map(|l| inline_html(l)).collect();
            out.push_str(&format!("<p>{}</p>\n", html.join("<br>\n")));
        }
    }
    out
}

fn inline_html(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    let mut bold = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`')
            && let Some((code, after)) = r.split_once('`')
        {
            out.push_str(&format!("<code>{}</code>", escape(code)));
            rest = after;
        } else if let Some(r) = rest.strip_prefix('[')
            && let Some((label, after)) = r.split_once("](")
            && let Some((url, after)) = after.split_once(')')
        {
            out.push_str(&format!(
                "<a href=\"{}\">{}</a>",
                escape(url),
                escape(label)
            ));
            rest = after;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push_str(&escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

/// Markdown to Slack mrkdwn: `**bold**` → `*bold*`, `[label](url)` → `<url|label>`.
pub(crate) fn to_mrkdwn(md: &str) -> String {
    let mut out = String::new();
    let mut rest = md;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push('*');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('[')
            && let Some((label, after)) = r.split_once("](")
            && !label.contains('\n')
            && let Some((url, after)) = after.split_once(')')
        {
            out.push_str(&format!("<{url}|{label}>"));
            rest = after;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

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
    fn a_missing_value_is_named() {
        let t = Templates::builtin();
        let e = t
            .render(
                "retry_approval",
                &ctx(json!({"model_name": "churn", "retry_count": 0, "max_retry": 2})),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("template `retry_approval`"), "{e}");
        assert!(e.contains("missing context value `task_token`"), "{e}");
        assert!(e.contains("line "), "{e}");
        let e = t.render("success", &Map::new()).unwrap_err().to_string();
        assert!(e.contains("missing context value `model_name`"), "{e}");
        assert!(e.contains("given: none"), "{e}");
    }

    #[test]
    fn unknown_template_lists_the_available_ones() {
        let e = Templates::builtin()
            .render("sucess", &Map::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown template `sucess`; available: error, failure, retry_approval, success"
        );
    }

    #[test]
    fn user_templates_override_builtins_and_report_syntax_errors_with_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("success.j2"),
            "{# Our own success message #}\n{% block title %}Shipped {{ model_name }}{% endblock %}{% block summary %}Nice: {{ metrics.accuracy | metric }}{% endblock %}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("weekly.md.j2"),
            "# Weekly report for {{ team }}\n\nAll good.\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("broken.j2"),
            "line one\n{% if x %}\nno end\n{{ oops(\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "{{").unwrap();
        let t = Templates::load(dir.path()).unwrap();
        let r = t
            .render(
                "success",
                &ctx(json!({"model_name": "m", "metrics": {"accuracy": 0.912345}})),
            )
            .unwrap();
        assert_eq!(r.title, "Shipped m");
        assert_eq!(r.summary, "Nice: 0.9123");
        let r = t.render("weekly", &ctx(json!({"team": "ml"}))).unwrap();
        assert_eq!(r.title, "Weekly report for ml");
        assert_eq!(r.summary, "All good.");
        let e = t.render("broken", &Map::new()).unwrap_err().to_string();
        assert!(
            e.contains("template `broken`") && e.contains("syntax error on line 4"),
            "{e}"
        );
        let list = t.list();
        let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "broken",
                "error",
                "failure",
                "retry_approval",
                "success",
                "weekly"
            ]
        );
        let success = list.iter().find(|i| i.name == "success").unwrap();
        assert!(success.overrides_builtin);
        assert_eq!(success.description, "Our own success message");
        assert!(
            list.iter()
                .find(|i| i.name == "broken")
                .unwrap()
                .error
                .is_some()
        );
        let weekly = list.iter().find(|i| i.name == "weekly").unwrap();
        assert_eq!(weekly.variables, ["team"]);
        // A missing nested value is named with its path.
        let e = t
            .render("success", &ctx(json!({"model_name": "m", "metrics": {}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`metrics.accuracy`"), "{e}");
    }

    #[test]
    fn errors_in_an_extended_template_name_that_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.j2"),
            "{% block title %}Run {{ run_id }}{% endblock %}\n{% block summary %}{% endblock %}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("child.j2"),
            "{% extends \"base\" %}{% block summary %}Done.{% endblock %}",
        )
        .unwrap();
        let t = Templates::load(dir.path()).unwrap();
        let r = t.render("child", &ctx(json!({"run_id": 5}))).unwrap();
        assert_eq!((r.title.as_str(), r.summary.as_str()), ("Run 5", "Done."));
        let e = t.render("child", &Map::new()).unwrap_err().to_string();
        assert!(
            e.starts_with("template `base` line 1: missing context value `run_id`"),
            "{e}"
        );
    }

    #[test]
    fn html_is_escaped_and_mrkdwn_converted() {
        let r = Templates::raw(
            "<b>hi</b>",
            "a **b** <script> [x](https://e.com/a?b=1&c=2)",
            &Map::new(),
        );
        assert!(r.html.contains("<h2>&lt;b&gt;hi&lt;/b&gt;</h2>"));
        assert!(
            r.html.contains(
                "a <strong>b</strong> &lt;script&gt; <a href=\"https://e.com/a?b=1&amp;c=2\">x</a>"
            ),
            "{}",
            r.html
        );
        assert_eq!(
            to_mrkdwn("a **b** [x](https://e.com)"),
            "a *b* <https://e.com|x>"
        );
    }
}
