//! How names people type are compared: in one normal form (so `F1-Score` and `f1_score` are one
//! name), and by edit distance (so a message can say "did you mean ...").

/// Lower case, spaces, `-` and `.` as `_`, no doubled or edge `_`, quotes and `*` trimmed:
/// `"F1-Score"` → `f1_score`.
pub fn normalize(s: &str) -> String {
    let s = s
        .trim()
        .trim_matches(|c| c == '*' || c == '`' || c == '"' || c == '\'');
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if matches!(c, ' ' | '-' | '.' | '\t') {
            '_'
        } else {
            c
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('_').to_string()
}

/// Levenshtein distance, by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}
