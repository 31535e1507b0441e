//! Messages for templates that do not parse or do not render. Each names the template and the
//! line; an undefined value is named by its dotted path, with the context's keys beside it, so that
//! the caller can fix the call without reading the template.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use minijinja::ErrorKind;
use serde_json::{Map, Value};

use crate::NotifyError;

/// The message for a template file that does not parse; the template stays listed with it.
pub(super) fn syntax_message(name: &str, path: &Path, e: &minijinja::Error) -> String {
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
pub(super) fn render_error(
    name: &str,
    source: &str,
    undeclared: &HashSet<String>,
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
    undeclared: &HashSet<String>,
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::super::tests::{ctx, load};
    use crate::template::Templates;

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
    fn errors_in_an_extended_template_name_that_template() {
        let (_dir, t) = load(&[
            (
                "base.j2",
                "{% block title %}Run {{ run_id }}{% endblock %}\n{% block summary %}{% endblock %}",
            ),
            (
                "child.j2",
                "{% extends \"base\" %}{% block summary %}Done.{% endblock %}",
            ),
        ]);
        let r = t.render("child", &ctx(json!({"run_id": 5}))).unwrap();
        assert_eq!((r.title.as_str(), r.summary.as_str()), ("Run 5", "Done."));
        let e = t.render("child", &Map::new()).unwrap_err().to_string();
        assert!(
            e.starts_with("template `base` line 1: missing context value `run_id`"),
            "{e}"
        );
    }
}
