//! Data validation: missing values, types, duplicates, constant columns, ranges and allowed values
//! against optional expectations, and class balance, as a report with an overall pass/fail.

use std::collections::BTreeMap;

use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::profile::{finite_values, is_numeric, value_counts};

/// What one column is expected to hold. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnExpectation {
    /// `numeric` or `text`.
    pub kind: Option<ExpectedKind>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The only values allowed (compared as text).
    pub allowed_values: Option<Vec<String>>,
    /// Most missing values allowed, as a fraction of rows (0 to 1).
    pub max_missing_fraction: Option<f64>,
}

/// The broad kind a column should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedKind {
    Numeric,
    Text,
}

/// Expectations for a whole table.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Columns that must be present.
    #[serde(default)]
    pub required_columns: Vec<String>,
    /// Per-column expectations, by column name.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnExpectation>,
    /// Most missing values allowed in any column not listed (default 1: no limit).
    pub max_missing_fraction: Option<f64>,
    /// Fail when duplicate rows exist (default false: a warning).
    #[serde(default)]
    pub forbid_duplicates: bool,
    /// Warn when the rarest class of the target is below this share of rows (default 0.1).
    pub min_class_fraction: Option<f64>,
}

/// How serious a finding is: errors fail validation, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Finding {
    pub severity: Severity,
    pub check: String,
    pub column: Option<String>,
    pub message: String,
}

/// A class and its share of rows.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClassShare {
    pub value: String,
    pub count: usize,
    pub fraction: f64,
}

/// The validation report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidationReport {
    pub passed: bool,
    pub row_count: usize,
    pub column_count: usize,
    pub duplicate_rows: usize,
    /// Missing values per column.
    pub missing: BTreeMap<String, usize>,
    /// Inferred type per column.
    pub dtypes: BTreeMap<String, String>,
    pub class_balance: Vec<ClassShare>,
    pub findings: Vec<Finding>,
}

/// Share of a text column's values that parse as numbers, when it looks like a number column
/// spoiled by a few stray values (a mixed-type column).
fn numeric_share(column: &Column) -> Result<Option<(f64, Vec<String>)>, DataError> {
    let s = column.as_materialized_series().cast(&DataType::String)?;
    let (mut numbers, mut others, mut examples) = (0usize, 0usize, Vec::new());
    for v in s.str()?.iter().flatten() {
        if v.trim().parse::<f64>().is_ok() {
            numbers += 1;
        } else {
            others += 1;
            if examples.len() < 3 && !examples.iter().any(|e| e == v) {
                examples.push(v.to_string());
            }
        }
    }
    let total = numbers + others;
    Ok((total > 0 && numbers > 0 && others > 0).then(|| (numbers as f64 / total as f64, examples)))
}

/// Validates `df` against `expectations`; `target` adds a class-balance check.
pub fn validate(
    df: &DataFrame,
    target: Option<&str>,
    x: &Expectations,
) -> Result<ValidationReport, DataError> {
    let rows = df.height();
    let mut findings = Vec::new();
    let mut add = |severity, check: &str, column: Option<&str>, message: String| {
        findings.push(Finding {
            severity,
            check: check.into(),
            column: column.map(str::to_string),
            message,
        })
    };
    for fraction in x
        .columns
        .values()
        .filter_map(|c| c.max_missing_fraction)
        .chain(x.max_missing_fraction)
        .chain(x.min_class_fraction)
    {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(DataError::invalid(format!(
                "fractions in expectations must be between 0 and 1 (got {fraction})"
            )));
        }
    }
    let names: Vec<&str> = df
        .get_column_names()
        .into_iter()
        .map(|s| s.as_str())
        .collect();
    for required in x
        .required_columns
        .iter()
        .chain(x.columns.keys())
        .chain(target.map(str::to_string).as_ref())
    {
        if !names.contains(&required.as_str()) {
            add(
                Severity::Error,
                "required_column",
                Some(required),
                format!("column `{required}` is missing"),
            );
        }
    }
    if rows == 0 {
        add(
            Severity::Error,
            "rows",
            None,
            "the table has no data rows".into(),
        );
    }
    let duplicate_rows = if rows > 0 {
        rows - df
            .unique_stable(None, UniqueKeepStrategy::First, None)?
            .height()
    } else {
        0
    };
    if duplicate_rows > 0 {
        let severity = if x.forbid_duplicates {
            Severity::Error
        } else {
            Severity::Warning
        };
        add(
            severity,
            "duplicates",
            None,
            format!("{duplicate_rows} rows are exact duplicates of earlier rows"),
        );
    }
    let mut missing = BTreeMap::new();
    let mut dtypes = BTreeMap::new();
    for c in df.columns() {
        let name = c.name().as_str();
        let nulls = c.null_count();
        missing.insert(name.to_string(), nulls);
        dtypes.insert(name.to_string(), c.dtype().to_string());
        let expect = x.columns.get(name).cloned().unwrap_or_default();
        if rows > 0 && nulls == rows {
            add(
                Severity::Warning,
                "all_missing",
                Some(name),
                format!("every value of `{name}` is missing"),
            );
            continue;
        }
        let missing_fraction = if rows > 0 {
            nulls as f64 / rows as f64
        } else {
            0.0
        };
        if let Some(limit) = expect.max_missing_fraction.or(x.max_missing_fraction)
            && missing_fraction > limit
        {
            add(
                Severity::Error,
                "missing",
                Some(name),
                format!(
                    "`{name}` is {:.1}% missing, above the {:.1}% allowed",
                    missing_fraction * 100.0,
                    limit * 100.0
                ),
            );
        }
        let unique = c.as_materialized_series().drop_nulls().n_unique()?;
        if rows > 1 && unique == 1 {
            add(
                Severity::Warning,
                "constant",
                Some(name),
                format!("`{name}` has a single value: it carries no information"),
            );
        }
        let numeric = is_numeric(c.dtype());
        if matches!(c.dtype(), DataType::String)
            && let Some((share, examples)) = numeric_share(c)?
            && share >= 0.5
        {
            add(
                Severity::Warning,
                "mixed_types",
                Some(name),
                format!(
                    "`{name}` is read as text, but {:.1}% of its values are numbers; non-numbers include {}",
                    share * 100.0,
                    examples
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        match expect.kind {
            Some(ExpectedKind::Numeric) if !numeric => {
                add(
                    Severity::Error,
                    "type",
                    Some(name),
                    format!("`{name}` should be numeric but holds {}", c.dtype()),
                );
            }
            Some(ExpectedKind::Text) if !matches!(c.dtype(), DataType::String) => {
                add(
                    Severity::Error,
                    "type",
                    Some(name),
                    format!("`{name}` should be text but holds {}", c.dtype()),
                );
            }
            _ => {}
        }
        if expect.min.is_some() || expect.max.is_some() {
            if numeric {
                let values = finite_values(c)?;
                let below = expect
                    .min
                    .map(|m| values.iter().filter(|v| **v < m).count())
                    .unwrap_or(0);
                let above = expect
                    .max
                    .map(|m| values.iter().filter(|v| **v > m).count())
                    .unwrap_or(0);
                if below + above > 0 {
                    add(
                        Severity::Error,
                        "range",
                        Some(name),
                        format!(
                            "{} values of `{name}` fall outside [{}, {}]",
                            below + above,
                            expect.min.map(|v| v.to_string()).unwrap_or("-inf".into()),
                            expect.max.map(|v| v.to_string()).unwrap_or("inf".into())
                        ),
                    );
                }
            } else {
                add(
                    Severity::Error,
                    "range",
                    Some(name),
                    format!("`{name}` is not numeric, so min/max cannot apply"),
                );
            }
        }
        if let Some(allowed) = &expect.allowed_values {
            let bad: Vec<String> = value_counts(c)?
                .into_iter()
                .filter(|v| !allowed.contains(&v.value))
                .map(|v| format!("`{}` ({}×)", v.value, v.count))
                .collect();
            if !bad.is_empty() {
                let shown: Vec<String> = bad.iter().take(5).cloned().collect();
                add(
                    Severity::Error,
                    "allowed_values",
                    Some(name),
                    format!(
                        "`{name}` holds values outside the allowed set: {}{}",
                        shown.join(", "),
                        if bad.len() > 5 { ", ..." } else { "" }
                    ),
                );
            }
        }
    }
    let mut class_balance = Vec::new();
    if let Some(t) = target.filter(|t| names.contains(t)) {
        let counts = value_counts(df.column(t)?)?;
        let labelled: usize = counts.iter().map(|v| v.count).sum();
        class_balance = counts
            .iter()
            .map(|v| ClassShare {
                value: v.value.clone(),
                count: v.count,
                fraction: v.count as f64 / labelled.max(1) as f64,
            })
            .collect();
        let min_share = x.min_class_fraction.unwrap_or(0.1);
        if class_balance.len() < 2 {
            add(
                Severity::Error,
                "class_balance",
                Some(t),
                format!("the target `{t}` has fewer than two classes"),
            );
        } else if let Some(rare) = class_balance
            .iter()
            .filter(|c| c.fraction < min_share)
            .min_by(|a, b| a.fraction.total_cmp(&b.fraction))
        {
            add(
                Severity::Warning,
                "class_balance",
                Some(t),
                format!(
                    "class `{}` of `{t}` is only {:.1}% of rows; consider stratified splits and class-aware metrics",
                    rare.value,
                    rare.fraction * 100.0
                ),
            );
        }
    }
    let passed = !findings.iter().any(|f| f.severity == Severity::Error);
    Ok(ValidationReport {
        passed,
        row_count: rows,
        column_count: df.width(),
        duplicate_rows,
        missing,
        dtypes,
        class_balance,
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_is_wrong_and_passes_what_is_right() {
        let df = df! {
            "age" => [Some(20.0), Some(130.0), None, Some(20.0)],
            "plan" => ["a", "b", "zz", "a"],
            "const" => [1, 1, 1, 1],
            "amount" => ["1.5", "2", "n/a", "1.5"],
            "y" => [0, 0, 0, 1],
        }
        .unwrap();
        let x = Expectations {
            required_columns: vec!["age".into(), "income".into()],
            columns: BTreeMap::from([
                (
                    "age".into(),
                    ColumnExpectation {
                        min: Some(0.0),
                        max: Some(120.0),
                        max_missing_fraction: Some(0.1),
                        ..Default::default()
                    },
                ),
                (
                    "plan".into(),
                    ColumnExpectation {
                        allowed_values: Some(vec!["a".into(), "b".into()]),
                        ..Default::default()
                    },
                ),
            ]),
            min_class_fraction: Some(0.3),
            ..Default::default()
        };
        let r = validate(&df, Some("y"), &x).unwrap();
        assert!(!r.passed);
        let checks: Vec<(&str, Option<&str>)> = r
            .findings
            .iter()
            .map(|f| (f.check.as_str(), f.column.as_deref()))
            .collect();
        for expected in [
            ("required_column", Some("income")),
            ("missing", Some("age")),
            ("range", Some("age")),
            ("allowed_values", Some("plan")),
            ("constant", Some("const")),
            ("mixed_types", Some("amount")),
            ("class_balance", Some("y")),
        ] {
            assert!(checks.contains(&expected), "{expected:?} not in {checks:?}");
        }
        assert_eq!(r.duplicate_rows, 0);
        assert_eq!(r.missing["age"], 1);
        assert_eq!(r.class_balance[0].value, "0");
        assert!((r.class_balance[0].fraction - 0.75).abs() < 1e-12);

        let clean = df! {"a" => [1.0, 2.0, 2.0], "b" => ["x", "y", "y"]}.unwrap();
        let r = validate(&clean, None, &Expectations::default()).unwrap();
        assert!(r.passed, "{:?}", r.findings);
        assert_eq!(r.duplicate_rows, 1, "the third row repeats the second");
    }
}
