//! A check's report: Markdown for people and agents, a self-contained HTML page (no script, no
//! external fetch; every value escaped by the template engine) with bar charts of the worst
//! features, and the full result as JSON, under `monitoring/<model>/<time>-<check>/`.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use mlops_core::{ArtifactStore, ToolError};
use mlops_data::drift::{DriftComparison, FeatureDrift};
use serde::Serialize;

use crate::detect::DriftResult;

/// Features drawn in the HTML report.
const PLOTTED: usize = 3;

/// Where a check's files go.
pub fn folder(model: Option<&str>, at: DateTime<Utc>, check_id: &str) -> Result<String, ToolError> {
    let model = model.unwrap_or("tables");
    mlops_core::check_folder_name("model_name", model).map_err(ToolError::validation)?;
    Ok(format!(
        "monitoring/{model}/{}-{}",
        at.format("%Y%m%dT%H%M%SZ"),
        &check_id[..8]
    ))
}

/// The report's URIs.
pub struct Written {
    pub markdown: String,
    pub html: String,
}

/// Writes `report.md`, `report.html` and `result.json` into `folder`.
pub async fn write(
    store: &ArtifactStore,
    folder: &str,
    result: &DriftResult,
    comparison: &DriftComparison,
) -> Result<Written, ToolError> {
    let mut full = serde_json::to_value(result)
        .map_err(|e| ToolError::Execution(format!("could not encode the result: {e}")))?;
    full["comparison"] = serde_json::to_value(comparison)
        .map_err(|e| ToolError::Execution(format!("could not encode the result: {e}")))?;
    let json = serde_json::to_vec_pretty(&full).unwrap_or_default();
    let put = |name: &'static str, body: Vec<u8>| async move {
        let r = store.key(&format!("{folder}/{name}"))?;
        store.put(&r, Bytes::from(body)).await?;
        Ok::<_, ToolError>(r.uri().to_string())
    };
    put("result.json", json).await?;
    let html = put("report.html", html(result, comparison)?.into_bytes()).await?;
    let markdown = put("report.md", markdown(result, comparison).into_bytes()).await?;
    Ok(Written { markdown, html })
}

fn subject(r: &DriftResult) -> String {
    match (&r.model_name, r.model_version) {
        (Some(m), Some(v)) => format!("{m} (version {v})"),
        (Some(m), None) => m.clone(),
        _ => "tables".into(),
    }
}

fn number(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into())
}

/// Markdown: the verdict, one table row per feature (worst first), and the performance.
pub fn markdown(r: &DriftResult, c: &DriftComparison) -> String {
    let mut out = format!(
        "# Drift check: {}\n\n**Verdict: {}** — {} drifted, {} warned of {} features.\n\n- Reference: {} ({} rows)\n- Current: {} ({} rows)\n- Check: `{}`\n\n",
        subject(r),
        c.verdict.as_str().to_uppercase(),
        c.drifted_features.len(),
        c.warned_features.len(),
        c.features.len(),
        r.reference,
        c.reference_rows,
        r.current,
        c.current_rows,
        r.check_id
    );
    out.push_str("| feature | kind | verdict | severity | PSI | KS | KS p | χ² p | JS | missing ref → now | why |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    let rows = c.features.iter().chain(&c.prediction).chain(&c.target);
    for f in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.4} | {} | {} | {} | {} | {:.3} → {:.3} | {} |\n",
            cell(&f.feature),
            f.kind,
            f.verdict.as_str(),
            f.severity,
            f.psi,
            number(f.ks_statistic),
            number(f.ks_p_value),
            number(f.chi_square_p_value),
            number(f.js_distance),
            f.missing_rate_reference,
            f.missing_rate_current,
            cell(&f.reasons.join("; "))
        ));
    }
    if let Some(p) = &r.performance {
        out.push_str(&format!(
            "\n**Performance** on {} labelled rows: {} {:.4} now, {} at training.\n",
            p.rows,
            p.metric,
            p.current,
            number(p.reference)
        ));
    }
    out.push_str(&format!(
        "\nThresholds (warn/drift): PSI {}/{}, KS {}/{}, Jensen–Shannon {}/{}, missing-rate change {}/{}; tests significant below p = {}.\n",
        c.thresholds.psi.warn,
        c.thresholds.psi.drift,
        c.thresholds.ks_statistic.warn,
        c.thresholds.ks_statistic.drift,
        c.thresholds.js_distance.warn,
        c.thresholds.js_distance.drift,
        c.thresholds.missing_rate_change.warn,
        c.thresholds.missing_rate_change.drift,
        c.thresholds.p_value
    ));
    out
}

/// Markdown table cells: no pipes or line breaks from feature names or values.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drift check: {{ subject }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1b1f24;background:#fff}
@media (prefers-color-scheme:dark){body{color:#e6e6e6;background:#15181c}th,td{border-color:#333}}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left}
.drift{color:#c62828;font-weight:600}.warn{color:#b26a00;font-weight:600}.ok{color:#2e7d32}
figure{display:inline-block;margin:0 1.5rem 1.5rem 0}figcaption{font-weight:600}
.ref{fill:#7a8ca3}.cur{fill:#e0603a}svg text{font-size:10px;fill:currentColor}
</style></head><body>
<h1>Drift check: {{ subject }}</h1>
<p>Verdict: <span class="{{ verdict }}">{{ verdict | upper }}</span> — {{ drifted }} drifted, {{ warned }} warned of {{ total }} features.</p>
<p>Reference: {{ reference }} ({{ reference_rows }} rows)<br>Current: {{ current }} ({{ current_rows }} rows)<br>Check {{ check_id }}</p>
{% if performance %}<p>Performance on {{ performance.rows }} labelled rows: {{ performance.metric }} {{ performance.current | round(4) }} now{% if performance.reference is defined %}, {{ performance.reference | round(4) }} at training{% endif %}.</p>{% endif %}
<h2>Worst features</h2>
{% for plot in plots %}<figure><figcaption>{{ plot.feature }} ({{ plot.verdict }})</figcaption>
<svg width="{{ plot.width }}" height="170" role="img" aria-label="reference and current shares of {{ plot.feature }}">
{% for bar in plot.bars %}<rect class="ref" x="{{ bar.x }}" y="{{ 140 - bar.reference }}" width="8" height="{{ bar.reference }}"><title>{{ bar.bin }}: reference {{ bar.reference_share }}</title></rect>
<rect class="cur" x="{{ bar.x + 9 }}" y="{{ 140 - bar.current }}" width="8" height="{{ bar.current }}"><title>{{ bar.bin }}: current {{ bar.current_share }}</title></rect>
{% endfor %}<text x="0" y="160">grey: reference · orange: current</text></svg></figure>
{% endfor %}
<h2>Every feature</h2>
<table><tr><th>feature</th><th>kind</th><th>verdict</th><th>severity</th><th>PSI</th><th>KS</th><th>KS p</th><th>χ² p</th><th>JS</th><th>missing ref → now</th><th>why</th></tr>
{% for f in features %}<tr><td>{{ f.feature }}</td><td>{{ f.kind }}</td><td class="{{ f.verdict }}">{{ f.verdict }}</td><td>{{ f.severity | round(2) }}</td><td>{{ f.psi | round(4) }}</td><td>{{ f.ks_statistic | round(4) if f.ks_statistic is defined else "–" }}</td><td>{{ f.ks_p_value | round(4) if f.ks_p_value is defined else "–" }}</td><td>{{ f.chi_square_p_value | round(4) if f.chi_square_p_value is defined else "–" }}</td><td>{{ f.js_distance | round(4) if f.js_distance is defined else "–" }}</td><td>{{ f.missing_rate_reference | round(3) }} → {{ f.missing_rate_current | round(3) }}</td><td>{{ f.reasons | join("; ") }}</td></tr>
{% endfor %}</table>
</body></html>
"#;

#[derive(Serialize)]
struct Plot {
    feature: String,
    verdict: &'static str,
    width: usize,
    bars: Vec<Bar>,
}

#[derive(Serialize)]
struct Bar {
    bin: String,
    x: usize,
    reference: f64,
    current: f64,
    reference_share: String,
    current_share: String,
}

fn plot(f: &FeatureDrift) -> Plot {
    // Bars scaled so the tallest share is 130 px.
    let top = f
        .bins
        .iter()
        .map(|b| b.reference.max(b.current))
        .fold(0.0, f64::max)
        .max(1e-9);
    let bars = f
        .bins
        .iter()
        .enumerate()
        .map(|(i, b)| Bar {
            bin: b.bin.clone(),
            x: 4 + i * 22,
            reference: (b.reference / top * 130.0).round(),
            current: (b.current / top * 130.0).round(),
            reference_share: format!("{:.1}%", b.reference * 100.0),
            current_share: format!("{:.1}%", b.current * 100.0),
        })
        .collect::<Vec<_>>();
    Plot {
        feature: f.feature.clone(),
        verdict: f.verdict.as_str(),
        width: (bars.len() * 22 + 8).max(180),
        bars,
    }
}

/// The HTML page.
pub fn html(r: &DriftResult, c: &DriftComparison) -> Result<String, ToolError> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", PAGE)
        .map_err(|e| ToolError::Execution(format!("the report template is broken: {e}")))?;
    let features: Vec<&FeatureDrift> = c
        .features
        .iter()
        .chain(&c.prediction)
        .chain(&c.target)
        .collect();
    let plots: Vec<Plot> = c.features.iter().take(PLOTTED).map(plot).collect();
    env.get_template("report.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                subject => subject(r),
                verdict => c.verdict.as_str(),
                drifted => c.drifted_features.len(),
                warned => c.warned_features.len(),
                total => c.features.len(),
                reference => &r.reference,
                reference_rows => c.reference_rows,
                current => &r.current,
                current_rows => c.current_rows,
                check_id => &r.check_id,
                performance => &r.performance,
                plots => plots,
                features => features,
            })
        })
        .map_err(|e| ToolError::Execution(format!("could not render the report: {e}")))
}
