//! Search on SageMaker: its list calls filter on little more than a group name's substring, so
//! the groups are narrowed by the name pattern's longest literal part, every version of those
//! groups is described, and the filters, the order and the page are applied here.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use mlops_core::metric_names;
use serde_json::json;

use super::codec::{
    Group, MAX_GROUP_NAME, Package, Stored, check_model_name, parse_group, to_version,
};
use super::{PAGE_SIZE, SageMakerRegistry, arns, to_usize};
use crate::{MetricRange, ModelVersion, RegistryError, SearchOrder, SearchQuery};

impl SageMakerRegistry {
    /// [`crate::Registry::search`] on SageMaker.
    pub(super) async fn search_versions(
        &self,
        q: &SearchQuery,
    ) -> Result<(Vec<ModelVersion>, i64), RegistryError> {
        let after = q.created_after.as_deref().map(parse_time).transpose()?;
        let before = q.created_before.as_deref().map(parse_time).transpose()?;
        let in_range =
            |t: DateTime<Utc>| after.is_none_or(|a| t >= a) && before.is_none_or(|b| t < b);
        let groups = self.groups_matching(q.name_pattern.as_deref()).await?;
        // Matching versions, with the index of their group.
        let mut hits: Vec<(usize, Package)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let summaries = self.summaries(group, q.approval_status).await?;
            // The listing's creation time spares describing versions outside the date range.
            let candidates = arns(
                summaries
                    .iter()
                    .filter(|s| s.created_at.is_none_or(in_range)),
            );
            for p in self.describe_all(&group.name, candidates).await? {
                let keep = in_range(p.created_at)
                    && q.stage.is_none_or(|s| p.stage == s)
                    && q.tags.iter().all(|(k, v)| p.stored.tags.get(k) == Some(v))
                    && q.metric
                        .as_ref()
                        .is_none_or(|m| metric_in_range(&p.stored, m));
                if keep {
                    hits.push((g, p));
                }
            }
        }
        let name = |g: usize| groups[g].name.as_str();
        match &q.order {
            None | Some(SearchOrder::CreatedAt) => hits.sort_by(|(ag, a), (bg, b)| {
                b.created_at
                    .cmp(&a.created_at)
                    .then_with(|| name(*ag).cmp(name(*bg)))
                    .then_with(|| b.version.cmp(&a.version))
            }),
            Some(SearchOrder::Metric { name: metric }) => {
                let value = |p: &Package| p.stored.metrics.get(metric).copied();
                let lower_first = metric_names::lower_is_better(metric);
                hits.sort_by(|(ag, a), (bg, b)| {
                    let (x, y) = (value(a), value(b));
                    let best_first = if lower_first {
                        x.unwrap_or(0.0).total_cmp(&y.unwrap_or(0.0))
                    } else {
                        y.unwrap_or(0.0).total_cmp(&x.unwrap_or(0.0))
                    };
                    y.is_some()
                        .cmp(&x.is_some())
                        .then(best_first)
                        .then_with(|| name(*ag).cmp(name(*bg)))
                        .then_with(|| b.version.cmp(&a.version))
                })
            }
        }
        let total = hits.len() as i64;
        let mut aliases: HashMap<usize, BTreeMap<String, i64>> = HashMap::new();
        let mut page = Vec::new();
        for (g, p) in hits
            .into_iter()
            .skip(to_usize(q.offset))
            .take(to_usize(q.limit))
        {
            if let std::collections::hash_map::Entry::Vacant(e) = aliases.entry(g) {
                e.insert(self.aliases(&groups[g]).await?);
            }
            page.push(to_version(name(g), p, &aliases[&g]));
        }
        Ok((page, total))
    }

    /// The groups whose names match a `*`/`?` pattern (all groups without one). SageMaker filters
    /// by the pattern's longest literal part (`NameContains`); the pattern itself is matched here.
    async fn groups_matching(&self, pattern: Option<&str>) -> Result<Vec<Group>, RegistryError> {
        let Some(pattern) = pattern else {
            return self.list_groups(None, |_| true).await;
        };
        // A character no group name can hold: nothing matches.
        if !pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-*?".contains(c))
        {
            return Ok(Vec::new());
        }
        if !pattern.contains(['*', '?']) {
            if check_model_name(pattern).is_err() {
                return Ok(Vec::new());
            }
            return Ok(self.find_group(pattern).await?.into_iter().collect());
        }
        let literal = pattern
            .split(['*', '?'])
            .max_by_key(|s| s.len())
            .unwrap_or_default();
        if literal.len() > MAX_GROUP_NAME {
            return Ok(Vec::new());
        }
        let contains = Some(literal).filter(|l| !l.is_empty());
        self.list_groups(contains, |name| glob_match(pattern, name))
            .await
    }

    async fn list_groups(
        &self,
        name_contains: Option<&str>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<Group>, RegistryError> {
        let mut input = json!({ "MaxResults": PAGE_SIZE });
        if let Some(c) = name_contains {
            input["NameContains"] = json!(c);
        }
        let items = self
            .paged(
                "ListModelPackageGroups",
                input,
                "ModelPackageGroupSummaryList",
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(parse_group)
            .filter(|g| keep(&g.name))
            .collect())
    }
}

fn metric_in_range(stored: &Stored, range: &MetricRange) -> bool {
    stored.metrics.get(&range.name).is_some_and(|v| {
        range.min.is_none_or(|min| *v >= min) && range.max.is_none_or(|max| *v <= max)
    })
}

/// A search date: RFC 3339, or a day (its midnight, UTC).
fn parse_time(text: &str) -> Result<DateTime<Utc>, RegistryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            RegistryError::Invalid(format!(
                "`{text}` is not a date (use 2026-11-25 or 2026-11-25T10:00:00Z)"
            ))
        })
}

/// `*` matches any run of characters, `?` one character; everything else itself, case-sensitively.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("churn-*", "churn-eu"));
        assert!(glob_match("*-eu", "churn-eu"));
        assert!(glob_match("c?urn*", "churn"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("churn-*", "xchurn-eu"));
        assert!(!glob_match("CHURN-*", "churn-eu"));
        assert!(!glob_match("a?", "a"));
    }
}
