//! Typo detection: the edit distance between two words, and the candidate a misspelt word most
//! likely meant, so messages can say "did you mean ...". The distance is `mlops-core`'s.

pub(crate) use mlops_core::edit_distance;

/// The closest of `candidates` to `word`, when close enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len().min(word.len()) / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`? ` when `word` looks like a typo of one of `candidates`, else nothing.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_are_typos_and_far_ones_are_not() {
        assert_eq!(edit_distance("slak", "slack"), 1);
        assert_eq!(closest("slak", ["github", "slack"]), Some("slack"));
        assert_eq!(closest("pager", ["github", "slack"]), None);
        // The word itself is not a typo of itself.
        assert_eq!(closest("slack", ["slack"]), None);
        assert_eq!(
            did_you_mean("randm_forest", ["random_forest"]),
            "did you mean `random_forest`? "
        );
    }
}
