//! Search on SQL: the query's filters become one WHERE clause with numbered placeholders, run
//! once to count the matches and once more, ordered, for the page. Tag and metric filters are
//! subqueries on the side tables, so their indexes pick the few matching versions.

use mlops_core::metric_names;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::SqlRegistry;
use super::schema::SELECT_VERSION;
use crate::{MetricRange, ModelVersion, RegistryError, SearchOrder, SearchQuery};

impl SqlRegistry {
    /// [`crate::Registry::search`] on SQL.
    pub(super) async fn search_versions(
        &self,
        q: &SearchQuery,
    ) -> Result<(Vec<ModelVersion>, i64), RegistryError> {
        let mut filter = SqlFilter::default();
        match &q.name_pattern {
            // No wildcard: an exact match, which uses the primary key.
            Some(p) if !p.contains(['*', '?']) => {
                filter.clause("v.name = {}", Bind::Text(p.clone()))
            }
            Some(p) => filter.clause("v.name LIKE {} ESCAPE '\\'", Bind::Text(glob_to_like(p))),
            None => {}
        }
        if let Some(s) = q.stage {
            filter.clause("v.stage = {}", Bind::Text(s.as_str().into()));
        }
        if let Some(a) = q.approval_status {
            filter.clause("v.approval_status = {}", Bind::Text(a.as_str().into()));
        }
        for (tag, value) in &q.tags {
            let t = filter.bind(Bind::Text(tag.clone()));
            let v = filter.bind(Bind::Text(value.clone()));
            // Driven from the (tag, value) index: the few matching versions, not every version.
            filter.raw(format!("(v.name, v.version) IN (SELECT t.name, t.version FROM model_version_tags t WHERE t.tag = {t} AND t.value = {v})"));
        }
        if let Some(MetricRange { name, min, max }) = &q.metric {
            let m = filter.bind(Bind::Text(name.clone()));
            let mut cond = format!("m.metric = {m}");
            if let Some(min) = min {
                cond.push_str(&format!(
                    " AND m.value >= {}",
                    filter.bind(Bind::Real(*min))
                ));
            }
            if let Some(max) = max {
                cond.push_str(&format!(
                    " AND m.value <= {}",
                    filter.bind(Bind::Real(*max))
                ));
            }
            filter.raw(format!("(v.name, v.version) IN (SELECT m.name, m.version FROM model_version_metrics m WHERE {cond})"));
        }
        if let Some(after) = &q.created_after {
            filter.clause("v.created_at >= {}", Bind::Text(normalize_time(after)?));
        }
        if let Some(before) = &q.created_before {
            filter.clause("v.created_at < {}", Bind::Text(normalize_time(before)?));
        }
        let where_sql = filter.where_sql();
        let count = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM model_versions v{where_sql}"
        )));
        let total: i64 = filter
            .bind_all(count)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let order = match &q.order {
            None | Some(SearchOrder::CreatedAt) => {
                "ORDER BY v.created_at DESC, v.name, v.version DESC".to_string()
            }
            Some(SearchOrder::Metric { name }) => {
                let m = filter.bind(Bind::Text(name.clone()));
                let best_first = if metric_names::lower_is_better(name) {
                    "ASC"
                } else {
                    "DESC"
                };
                format!(
                    "ORDER BY (SELECT COUNT(*) FROM model_version_metrics o WHERE o.name = v.name AND o.version = v.version AND o.metric = {m}) DESC, \
                     (SELECT o.value FROM model_version_metrics o WHERE o.name = v.name AND o.version = v.version AND o.metric = {m}) {best_first}, v.name, v.version DESC"
                )
            }
        };
        let limit = filter.bind(Bind::Int(q.limit));
        let offset = filter.bind(Bind::Int(q.offset));
        let sql = format!("{SELECT_VERSION}{where_sql} {order} LIMIT {limit} OFFSET {offset}");
        let rows = filter
            .bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.pool)
            .await?;
        Ok((self.fetch_versions(rows).await?, total))
    }
}

/// A value bound to a search query.
enum Bind {
    Text(String),
    Real(f64),
    Int(i64),
}

/// WHERE clauses with numbered placeholders, bound in order of first appearance.
#[derive(Default)]
struct SqlFilter {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl SqlFilter {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
    fn clause(&mut self, template: &str, b: Bind) {
        let p = self.bind(b);
        self.clauses.push(template.replace("{}", &p));
    }
    fn raw(&mut self, clause: String) {
        self.clauses.push(clause);
    }
    /// Binds the values to `query`, whose placeholders are numbered as [`SqlFilter::bind`] said.
    fn bind_all<'q>(
        &self,
        mut query: Query<'q, Any, AnyArguments>,
    ) -> Query<'q, Any, AnyArguments> {
        for b in &self.binds {
            query = match b {
                Bind::Text(t) => query.bind(t.clone()),
                Bind::Real(r) => query.bind(*r),
                Bind::Int(i) => query.bind(*i),
            };
        }
        query
    }
    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// `churn-*` → `churn-%`, with LIKE's own wildcards escaped.
fn glob_to_like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '*' => out.push('%'),
            '?' => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// A date or an RFC 3339 time, as the UTC text `created_at` is stored in, so they compare as text.
fn normalize_time(text: &str) -> Result<String, RegistryError> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| {
            RegistryError::Invalid(format!(
                "`{text}` is not a date (use 2026-11-25 or 2026-11-25T10:00:00Z)"
            ))
        })?;
    Ok(parsed.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_escaped_like_patterns() {
        assert_eq!(glob_to_like("churn-*"), "churn-%");
        assert_eq!(glob_to_like("a_b%c?"), "a\\_b\\%c_");
    }

    #[test]
    fn dates_are_normalised_for_comparison() {
        assert_eq!(
            normalize_time("2026-11-25").unwrap(),
            "2026-11-25T00:00:00.000000Z"
        );
        assert_eq!(
            normalize_time("2026-11-25T10:00:00+01:00").unwrap(),
            "2026-11-25T09:00:00.000000Z"
        );
        assert!(normalize_time("yesterday").is_err());
    }
}
