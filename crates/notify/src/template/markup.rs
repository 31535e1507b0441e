//! The small Markdown subset that templates write, converted for the channels that do not take
//! Markdown: HTML for email, mrkdwn for Slack.

/// Text for HTML: in element content and in quoted attribute values alike.
pub(super) fn escape(s: &str) -> String {
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
pub(super) fn markdown_to_html(md: &str) -> String {
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

/// One line of Markdown: **bold**, `code` and links; everything else escaped.
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
    use serde_json::Map;

    use super::*;
    use crate::template::Templates;

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
