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
//!
//! Here: loading and rendering. The built-ins are in [`builtins`], the error messages in
//! [`diagnostics`], the bodies laid out around a template's blocks in [`layout`], and the Markdown
//! conversions for HTML and Slack in [`markup`].

mod builtins;
mod diagnostics;
mod layout;
mod markup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::NotifyError;
use builtins::{BUILTINS, RAW_TEMPLATE};
use diagnostics::{render_error, syntax_message};
use layout::{assemble, format_metric_mj};

pub use layout::text_body;
pub(crate) use markup::to_mrkdwn;

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
            "retry_approval" | "drift" => Level::Warning,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// Templates loaded from a new folder holding `files` (name, text); the folder lives as long as
    /// the first value.
    pub(super) fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Templates) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let t = Templates::load(dir.path()).unwrap();
        (dir, t)
    }

    #[test]
    fn unknown_template_lists_the_available_ones() {
        let e = Templates::builtin()
            .render("sucess", &Map::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown template `sucess`; available: drift, error, failure, retry_approval, success"
        );
    }

    #[test]
    fn user_templates_override_builtins_and_report_syntax_errors_with_line() {
        let (_dir, t) = load(&[
            (
                "success.j2",
                "{# Our own success message #}\n{% block title %}Shipped {{ model_name }}{% endblock %}{% block summary %}Nice: {{ metrics.accuracy | metric }}{% endblock %}",
            ),
            (
                "weekly.md.j2",
                "# Weekly report for {{ team }}\n\nAll good.\n",
            ),
            ("broken.j2", "line one\n{% if x %}\nno end\n{{ oops(\n"),
            ("ignored.txt", "{{"),
        ]);
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
                "drift",
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
}
