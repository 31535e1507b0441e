//! Keeps every tool result small enough for a model's context.
//!
//! A result whose text (summary plus JSON) would pass [`MAX_RESULT_BYTES`] is saved whole as
//! `outputs/<tool>/<time>-<id>.json` in the artifact store, readable as the resource
//! `mlops://outputs/...`, and the reply carries a shortened copy: the longest lists are cut (then
//! the longest strings), and a top-level `truncated` object names the full result. Cutting lists
//! and adding one property keeps the reply valid against the tool's output schema.

use mlops_core::{ArtifactStore, ToolOutput};
use serde_json::{Value, json};

/// The most text a tool result carries: its summary plus its JSON.
pub const MAX_RESULT_BYTES: usize = 20_000;
/// The longest summary kept; the rest is in the JSON (or the saved full result).
const MAX_SUMMARY_BYTES: usize = 4_000;

/// Where an oversized result went.
struct Saved {
    uri: String,
}

/// Returns `out` unchanged when it fits, else shortened with a pointer to the saved full result.
pub async fn bound(store: Option<&ArtifactStore>, tool: &str, mut out: ToolOutput) -> ToolOutput {
    if out.text.len() > MAX_SUMMARY_BYTES {
        out.text = format!(
            "{}… (summary shortened; the JSON has the detail)",
            cut_str(&out.text, MAX_SUMMARY_BYTES)
        );
    }
    let json_len = out.structured.to_string().len();
    if out.text.len() + json_len <= MAX_RESULT_BYTES {
        return out;
    }
    let saved = match store {
        Some(store) => save(store, tool, &out.structured).await,
        None => None,
    };
    let budget = MAX_RESULT_BYTES.saturating_sub(out.text.len() + 600);
    shrink(&mut out.structured, budget);
    let pointer = match &saved {
        Some(s) => format!(
            "The full result ({json_len} bytes) is the resource {}; this reply is shortened. Ask for less (limit, offset, columns) to get it whole.",
            s.uri
        ),
        None => format!(
            "The full result ({json_len} bytes) was too large to return and could not be saved; ask for less (limit, offset, columns)."
        ),
    };
    if let Value::Object(map) = &mut out.structured {
        map.insert(
            "truncated".into(),
            json!({
                "full_result_bytes": json_len,
                "full_result_uri": saved.as_ref().map(|s| s.uri.clone()),
                "note": pointer,
            }),
        );
    }
    out.text = format!("{}\n{pointer}", out.text);
    out
}

async fn save(store: &ArtifactStore, tool: &str, value: &Value) -> Option<Saved> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let key = format!(
        "outputs/{tool}/{}-{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        &id[..8]
    );
    let body = serde_json::to_vec_pretty(value).ok()?;
    let r = store.key(&key).ok()?;
    match store.put(&r, body.into()).await {
        Ok(_) => Some(Saved {
            uri: format!("mlops://{key}"),
        }),
        Err(e) => {
            tracing::warn!(tool, error = %e, "could not save an oversized tool result");
            None
        }
    }
}

/// Cuts the largest list in half (or, with no list left to cut, the longest string) until the
/// JSON fits `budget` bytes.
fn shrink(value: &mut Value, budget: usize) {
    // Each round removes at least one element or half a string, so this ends.
    while value.to_string().len() > budget {
        let Some(path) = largest(value, true).or_else(|| largest(value, false)) else {
            return;
        };
        let Some(target) = path.iter().try_fold(&mut *value, |v, step| match step {
            Step::Key(k) => v.get_mut(k.as_str()),
            Step::Index(i) => v.get_mut(*i),
        }) else {
            return;
        };
        match target {
            Value::Array(items) => items.truncate(items.len() / 2),
            Value::String(s) => {
                let keep = cut_str(s, s.len() / 2).to_string();
                *s = format!("{keep}…");
            }
            _ => return,
        }
    }
}

enum Step {
    Key(String),
    Index(usize),
}

/// The path to the largest non-empty array (`arrays`) or longest string worth cutting.
fn largest(value: &Value, arrays: bool) -> Option<Vec<Step>> {
    fn walk(v: &Value, arrays: bool, path: &mut Vec<Step>, best: &mut (usize, Option<Vec<Step>>)) {
        let size = match v {
            Value::Array(items) if arrays && !items.is_empty() => v.to_string().len(),
            Value::String(s) if !arrays && s.len() > 64 => s.len(),
            _ => 0,
        };
        if size > best.0 {
            *best = (
                size,
                Some(
                    path.iter()
                        .map(|s| match s {
                            Step::Key(k) => Step::Key(k.clone()),
                            Step::Index(i) => Step::Index(*i),
                        })
                        .collect(),
                ),
            );
        }
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    walk(item, arrays, path, best);
                    path.pop();
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    path.push(Step::Key(k.clone()));
                    walk(item, arrays, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = (0, None);
    walk(value, arrays, &mut Vec::new(), &mut best);
    best.1
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(structured: Value) -> ToolOutput {
        ToolOutput {
            structured,
            text: "summary".into(),
            images: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_small_result_is_untouched() {
        let v = json!({"rows": [1, 2, 3], "name": "x"});
        let out = bound(None, "t", output(v.clone())).await;
        assert_eq!(out.structured, v);
        assert_eq!(out.text, "summary");
    }

    #[tokio::test]
    async fn a_large_result_is_saved_whole_and_returned_shortened() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            ArtifactStore::open(dir.path().to_str().unwrap(), &[], "us-east-1", None).unwrap();
        let rows: Vec<Value> = (0..5000)
            .map(|i| json!({"id": i, "label": format!("row number {i}")}))
            .collect();
        let small: Vec<u32> = (0..10).collect();
        let v = json!({"row_count": 5000, "rows": rows, "small": small});
        let full = v.to_string().len();
        let out = bound(Some(&store), "load_dataset", output(v.clone())).await;

        let text_len = out.text.len() + out.structured.to_string().len();
        assert!(text_len <= MAX_RESULT_BYTES, "{text_len}");
        let kept = out.structured["rows"].as_array().unwrap();
        assert!(!kept.is_empty() && kept.len() < 5000);
        assert_eq!(kept[0], v["rows"][0], "the first rows are kept in order");
        assert_eq!(out.structured["small"], v["small"], "small lists are kept");
        assert_eq!(out.structured["row_count"], 5000);
        let t = &out.structured["truncated"];
        assert_eq!(t["full_result_bytes"], full);
        let uri = t["full_result_uri"].as_str().unwrap();
        assert!(out.text.contains(uri), "{}", out.text);
        let key = uri.strip_prefix("mlops://").unwrap();
        assert!(key.starts_with("outputs/load_dataset/"), "{key}");
        let saved = std::fs::read(dir.path().join(key)).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&saved).unwrap(), v);
    }

    #[tokio::test]
    async fn long_strings_and_summaries_are_cut_on_character_boundaries() {
        let v = json!({"report": "é".repeat(30_000)});
        let mut o = output(v);
        o.text = "ü".repeat(5_000);
        let out = bound(None, "t", o).await;
        assert!(out.text.len() + out.structured.to_string().len() <= MAX_RESULT_BYTES);
        assert!(out.structured["report"].as_str().unwrap().ends_with('…'));
        assert!(out.text.contains("could not be saved"), "{}", out.text);
    }
}
