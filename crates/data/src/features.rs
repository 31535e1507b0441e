//! Feature engineering: derived columns from arithmetic expressions, polynomial and interaction
//! terms, binning, date/time parts, and feature selection. Operations are fitted on the first table
//! (bin edges, the columns selection keeps) and re-applied unchanged to the others.
//!
//! The expression language is ours (a few lines of recursive descent): it reads only numbers,
//! column names and `+ - * / ^` with `log exp sqrt abs`, so an expression can never run code.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::io::require_column;
use crate::profile::{finite_values, is_numeric, mean_std};

/// One feature-engineering step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// A new column from an expression over numeric columns, e.g. `price / area` or `log(income + 1)`.
    /// Names with spaces go in backticks.
    Derive { name: String, expression: String },
    /// Squares (and cubes for degree 3) and pairwise products of the columns.
    Polynomial {
        columns: Vec<String>,
        #[serde(default = "two")]
        degree: u32,
        /// Only the products of different columns.
        #[serde(default)]
        interaction_only: bool,
    },
    /// A `<column>_bin` column of bin numbers (0-based): equal-width or quantile bins, or given edges.
    Bin {
        column: String,
        #[serde(default = "five")]
        bins: usize,
        #[serde(default)]
        strategy: BinStrategy,
        /// Explicit inner edges (ascending); overrides `bins` and `strategy`.
        edges: Option<Vec<f64>>,
    },
    /// Parts of a date or date-time column (text such as 2024-03-01 or 2024-03-01T10:00:00):
    /// `<column>_<part>` for each of year, month, day, weekday (0 = Monday), dayofyear, hour.
    DateParts {
        column: String,
        parts: Vec<DatePart>,
    },
    /// Keep only some numeric features (the target and text columns stay).
    Select { method: Selection },
}

fn two() -> u32 {
    2
}
fn five() -> usize {
    5
}

/// How bin edges are placed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BinStrategy {
    #[default]
    Uniform,
    Quantile,
}

/// A part of a date.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    Year,
    Month,
    Day,
    Weekday,
    Dayofyear,
    Hour,
}

/// How features are selected.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selection {
    /// Drop numeric columns whose variance is below `threshold`.
    VarianceThreshold { threshold: f64 },
    /// Keep numeric columns whose absolute correlation with `target` is at least `min_abs`.
    Correlation { target: String, min_abs: f64 },
    /// Keep the `k` numeric columns most correlated (in absolute value) with `target`.
    TopK { target: String, k: usize },
}

/// An operation with what it learned from the first table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FittedOperation {
    pub operation: Operation,
    /// Bin edges used (for `bin`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<f64>,
    /// Numeric columns dropped (for `select`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

/// Applies `ops` to `df`, fitting each on it; returns the new frame and the fitted operations.
pub fn fit_apply(
    df: &DataFrame,
    ops: &[Operation],
) -> Result<(DataFrame, Vec<FittedOperation>), DataError> {
    let mut df = df.clone();
    let mut fitted = Vec::with_capacity(ops.len());
    for op in ops {
        let f = fit(&df, op)?;
        df = apply(&df, &f)?;
        fitted.push(f);
    }
    Ok((df, fitted))
}

/// Re-applies fitted operations to another table.
pub fn reapply(df: &DataFrame, fitted: &[FittedOperation]) -> Result<DataFrame, DataError> {
    fitted.iter().try_fold(df.clone(), |df, f| apply(&df, f))
}

fn numeric_column(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>, DataError> {
    require_column(df, name)?;
    let c = df.column(name)?;
    if !is_numeric(c.dtype()) {
        return Err(DataError::invalid(format!(
            "column `{name}` is not numeric (it holds {})",
            c.dtype()
        )));
    }
    let s = c.as_materialized_series().cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().collect())
}

fn fit(df: &DataFrame, op: &Operation) -> Result<FittedOperation, DataError> {
    let mut f = FittedOperation {
        operation: op.clone(),
        edges: Vec::new(),
        dropped: Vec::new(),
    };
    match op {
        Operation::Bin {
            column,
            bins,
            strategy,
            edges,
        } => {
            f.edges = match edges {
                Some(e) => {
                    if e.windows(2).any(|w| w[0] >= w[1]) || e.iter().any(|v| !v.is_finite()) {
                        return Err(DataError::invalid(format!(
                            "bin edges for `{column}` must be finite and strictly increasing"
                        )));
                    }
                    e.clone()
                }
                None => {
                    if !(2..=1000).contains(bins) {
                        return Err(DataError::invalid(format!(
                            "bins must be between 2 and 1000 (got {bins})"
                        )));
                    }
                    numeric_column(df, column)?;
                    let mut values = finite_values(df.column(column)?)?;
                    if values.is_empty() {
                        return Err(DataError::invalid(format!(
                            "`{column}` has no values to bin"
                        )));
                    }
                    values.sort_by(f64::total_cmp);
                    let (lo, hi) = (values[0], values[values.len() - 1]);
                    let mut e: Vec<f64> = (1..*bins)
                        .map(|k| match strategy {
                            BinStrategy::Uniform => lo + (hi - lo) * k as f64 / *bins as f64,
                            BinStrategy::Quantile => values[(k * (values.len() - 1)) / bins],
                        })
                        .collect();
                    e.dedup();
                    e
                }
            };
        }
        Operation::Select { method } => {
            let target = match method {
                Selection::Correlation { target, .. } | Selection::TopK { target, .. } => {
                    Some(target.as_str())
                }
                Selection::VarianceThreshold { .. } => None,
            };
            let y = target.map(|t| numeric_column(df, t)).transpose()?;
            let mut scored = Vec::new();
            for c in df
                .columns()
                .iter()
                .filter(|c| is_numeric(c.dtype()) && Some(c.name().as_str()) != target)
            {
                let x: Vec<Option<f64>> = c
                    .as_materialized_series()
                    .cast(&DataType::Float64)?
                    .f64()?
                    .iter()
                    .collect();
                let score = match (&method, &y) {
                    (Selection::VarianceThreshold { .. }, _) => {
                        mean_std(&x.iter().flatten().copied().collect::<Vec<_>>())
                            .map(|(_, s)| s * s)
                            .unwrap_or(0.0)
                    }
                    (_, Some(y)) => correlation(&x, y).abs(),
                    _ => 0.0,
                };
                scored.push((c.name().to_string(), score));
            }
            f.dropped = match method {
                Selection::VarianceThreshold { threshold } => scored
                    .iter()
                    .filter(|(_, s)| s < threshold)
                    .map(|(n, _)| n.clone())
                    .collect(),
                Selection::Correlation { min_abs, .. } => scored
                    .iter()
                    .filter(|(_, s)| s < min_abs)
                    .map(|(n, _)| n.clone())
                    .collect(),
                Selection::TopK { k, .. } => {
                    if *k == 0 {
                        return Err(DataError::invalid("top_k needs k of at least 1"));
                    }
                    let mut ranked = scored.clone();
                    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    ranked.into_iter().skip(*k).map(|(n, _)| n).collect()
                }
            };
        }
        _ => {}
    }
    Ok(f)
}

fn apply(df: &DataFrame, f: &FittedOperation) -> Result<DataFrame, DataError> {
    let mut out = df.clone();
    let add =
        |out: &mut DataFrame, name: String, values: Vec<Option<f64>>| -> Result<(), DataError> {
            if out.schema().contains(&name) {
                return Err(DataError::invalid(format!(
                    "a column named `{name}` already exists; choose another name"
                )));
            }
            out.with_column(Column::new(name.into(), values))?;
            Ok(())
        };
    match &f.operation {
        Operation::Derive { name, expression } => {
            let ast = Parser::new(expression).parse()?;
            let mut cols: HashMap<String, Vec<Option<f64>>> = HashMap::new();
            for c in ast.columns() {
                cols.insert(c.clone(), numeric_column(df, &c)?);
            }
            let values = (0..df.height())
                .map(|row| ast.eval(&cols, row).filter(|v| v.is_finite()))
                .collect();
            add(&mut out, name.clone(), values)?;
        }
        Operation::Polynomial {
            columns,
            degree,
            interaction_only,
        } => {
            if !(2..=3).contains(degree) {
                return Err(DataError::invalid(format!(
                    "polynomial degree must be 2 or 3 (got {degree})"
                )));
            }
            let data: Vec<Vec<Option<f64>>> = columns
                .iter()
                .map(|c| numeric_column(df, c))
                .collect::<Result<_, _>>()?;
            let mul = |a: &[Option<f64>], b: &[Option<f64>]| -> Vec<Option<f64>> {
                a.iter().zip(b).map(|(x, y)| Some((*x)? * (*y)?)).collect()
            };
            for i in 0..columns.len() {
                if !interaction_only {
                    add(
                        &mut out,
                        format!("{}^2", columns[i]),
                        mul(&data[i], &data[i]),
                    )?;
                    if *degree == 3 {
                        add(
                            &mut out,
                            format!("{}^3", columns[i]),
                            mul(&mul(&data[i], &data[i]), &data[i]),
                        )?;
                    }
                }
                for j in i + 1..columns.len() {
                    add(
                        &mut out,
                        format!("{}*{}", columns[i], columns[j]),
                        mul(&data[i], &data[j]),
                    )?;
                }
            }
        }
        Operation::Bin { column, .. } => {
            let values = numeric_column(df, column)?;
            let bins = values
                .iter()
                .map(|v| v.map(|v| f.edges.partition_point(|e| *e < v) as f64))
                .collect();
            add(&mut out, format!("{column}_bin"), bins)?;
        }
        Operation::DateParts { column, parts } => {
            require_column(df, column)?;
            let text = df
                .column(column)?
                .as_materialized_series()
                .cast(&DataType::String)?;
            let parsed: Vec<Option<NaiveDateTime>> = text
                .str()?
                .iter()
                .map(|v| v.and_then(parse_datetime))
                .collect();
            let present = text.str()?.iter().flatten().count();
            if present > 0 && parsed.iter().flatten().count() == 0 {
                return Err(DataError::invalid(format!(
                    "`{column}` holds no dates this tool can read (use 2024-03-01 or 2024-03-01T10:00:00)"
                )));
            }
            for part in parts {
                let values = parsed
                    .iter()
                    .map(|d| {
                        d.map(|d| match part {
                            DatePart::Year => d.year() as f64,
                            DatePart::Month => d.month() as f64,
                            DatePart::Day => d.day() as f64,
                            DatePart::Weekday => d.weekday().num_days_from_monday() as f64,
                            DatePart::Dayofyear => d.ordinal() as f64,
                            DatePart::Hour => d.hour() as f64,
                        })
                    })
                    .collect();
                let suffix = serde_json::to_value(part)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                add(&mut out, format!("{column}_{suffix}"), values)?;
            }
        }
        Operation::Select { .. } => {
            let keep: Vec<String> = out
                .get_column_names()
                .into_iter()
                .map(|s| s.to_string())
                .filter(|n| !f.dropped.contains(n))
                .collect();
            out = out.select(keep)?;
        }
    }
    Ok(out)
}

fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok())
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.naive_utc())
        })
}

/// Pearson correlation over rows where both values are present.
fn correlation(x: &[Option<f64>], y: &[Option<f64>]) -> f64 {
    let pairs: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let n = pairs.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in &pairs {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// An arithmetic expression over columns.
#[derive(Debug, Clone, PartialEq)]
enum Ast {
    Number(f64),
    Column(String),
    Neg(Box<Ast>),
    Binary(char, Box<Ast>, Box<Ast>),
    Call(String, Box<Ast>),
}

impl Ast {
    fn columns(&self) -> Vec<String> {
        match self {
            Ast::Number(_) => vec![],
            Ast::Column(c) => vec![c.clone()],
            Ast::Neg(a) | Ast::Call(_, a) => a.columns(),
            Ast::Binary(_, a, b) => [a.columns(), b.columns()].concat(),
        }
    }

    fn eval(&self, cols: &HashMap<String, Vec<Option<f64>>>, row: usize) -> Option<f64> {
        Some(match self {
            Ast::Number(v) => *v,
            Ast::Column(c) => cols.get(c)?[row]?,
            Ast::Neg(a) => -a.eval(cols, row)?,
            Ast::Binary(op, a, b) => {
                let (a, b) = (a.eval(cols, row)?, b.eval(cols, row)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    '/' => a / b,
                    _ => a.powf(b),
                }
            }
            Ast::Call(f, a) => {
                let v = a.eval(cols, row)?;
                match f.as_str() {
                    "log" => v.ln(),
                    "exp" => v.exp(),
                    "sqrt" => v.sqrt(),
                    _ => v.abs(),
                }
            }
        })
    }
}

/// Recursive-descent parser for `Ast`.
struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn error(&self, what: &str) -> DataError {
        DataError::invalid(format!(
            "cannot read the expression `{}`: {what} at position {}",
            self.text,
            self.pos + 1
        ))
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.get(self.pos).copied()
    }

    fn parse(mut self) -> Result<Ast, DataError> {
        if self.text.len() > 1000 {
            return Err(DataError::invalid(
                "expressions are limited to 1000 characters",
            ));
        }
        let ast = self.sum(0)?;
        match self.peek() {
            None => Ok(ast),
            Some(c) => Err(self.error(&format!("unexpected `{c}`"))),
        }
    }

    fn sum(&mut self, depth: usize) -> Result<Ast, DataError> {
        if depth > 50 {
            return Err(self.error("nested too deeply"));
        }
        let mut left = self.product(depth)?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            left = Ast::Binary(op, Box::new(left), Box::new(self.product(depth)?));
        }
        Ok(left)
    }

    fn product(&mut self, depth: usize) -> Result<Ast, DataError> {
        let mut left = self.power(depth)?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            left = Ast::Binary(op, Box::new(left), Box::new(self.power(depth)?));
        }
        Ok(left)
    }

    fn power(&mut self, depth: usize) -> Result<Ast, DataError> {
        let base = self.unary(depth)?;
        if self.peek() == Some('^') {
            self.pos += 1;
            return Ok(Ast::Binary(
                '^',
                Box::new(base),
                Box::new(self.power(depth + 1)?),
            ));
        }
        Ok(base)
    }

    fn unary(&mut self, depth: usize) -> Result<Ast, DataError> {
        match self.peek() {
            Some('-') => {
                self.pos += 1;
                Ok(Ast::Neg(Box::new(self.unary(depth + 1)?)))
            }
            Some('(') => {
                self.pos += 1;
                let inner = self.sum(depth + 1)?;
                self.expect(')')?;
                Ok(inner)
            }
            Some('`') => {
                self.pos += 1;
                let start = self.pos;
                while self.chars.get(self.pos).is_some_and(|c| *c != '`') {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().collect();
                self.expect('`')?;
                Ok(Ast::Column(name))
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.pos;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == 'E')
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                text.parse()
                    .map(Ast::Number)
                    .map_err(|_| self.error(&format!("`{text}` is not a number")))
            }
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                if self.peek() == Some('(') {
                    if !["log", "exp", "sqrt", "abs"].contains(&word.as_str()) {
                        return Err(
                            self.error(&format!("unknown function `{word}` (log, exp, sqrt, abs)"))
                        );
                    }
                    self.pos += 1;
                    let arg = self.sum(depth + 1)?;
                    self.expect(')')?;
                    return Ok(Ast::Call(word, Box::new(arg)));
                }
                Ok(Ast::Column(word))
            }
            Some(c) => Err(self.error(&format!("unexpected `{c}`"))),
            None => Err(self.error("the expression ends too early")),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), DataError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{c}`")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        df! {
            "price" => [100.0, 200.0, 300.0, 400.0],
            "area" => [50.0, 50.0, 100.0, 80.0],
            "noise" => [1.0, 1.0, 1.0, 1.0],
            "when" => ["2024-03-01", "2024-12-25T10:30:00", "2023-01-02", "bad"],
            "y" => [1.0, 2.0, 3.0, 4.0],
        }
        .unwrap()
    }

    fn col(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
        df.column(name)
            .unwrap()
            .as_materialized_series()
            .cast(&DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .collect()
    }

    #[test]
    fn expressions_follow_precedence_and_functions() {
        let ops = [Operation::Derive {
            name: "x".into(),
            expression: "-price / area + 2 ^ 3 ^ 0 * sqrt(`area`) - log(exp(1))".into(),
        }];
        let (out, _) = fit_apply(&frame(), &ops).unwrap();
        let x = col(&out, "x");
        let expected = -100.0 / 50.0 + 2.0 * 50f64.sqrt() - 1.0;
        assert!((x[0].unwrap() - expected).abs() < 1e-12, "{x:?}");
        for (bad, msg) in [
            ("price +", "ends too early"),
            ("price $ 2", "unexpected `$`"),
            ("system(1)", "unknown function `system`"),
            ("(price", "expected `)`"),
        ] {
            let e = fit_apply(
                &frame(),
                &[Operation::Derive {
                    name: "z".into(),
                    expression: bad.into(),
                }],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
        let e = fit_apply(
            &frame(),
            &[Operation::Derive {
                name: "z".into(),
                expression: "when * 2".into(),
            }],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not numeric"), "{e}");
    }

    #[test]
    fn polynomial_bins_dates_and_selection() {
        let ops = [
            Operation::Polynomial {
                columns: vec!["price".into(), "area".into()],
                degree: 2,
                interaction_only: false,
            },
            Operation::Bin {
                column: "price".into(),
                bins: 3,
                strategy: BinStrategy::Uniform,
                edges: None,
            },
            Operation::DateParts {
                column: "when".into(),
                parts: vec![
                    DatePart::Year,
                    DatePart::Month,
                    DatePart::Weekday,
                    DatePart::Hour,
                ],
            },
            Operation::Select {
                method: Selection::VarianceThreshold { threshold: 1e-9 },
            },
        ];
        let (out, fitted) = fit_apply(&frame(), &ops).unwrap();
        assert_eq!(col(&out, "price^2")[1], Some(40000.0));
        assert_eq!(col(&out, "price*area")[2], Some(30000.0));
        assert_eq!(
            col(&out, "price_bin"),
            vec![Some(0.0), Some(0.0), Some(1.0), Some(2.0)]
        );
        assert_eq!(
            col(&out, "when_year"),
            vec![Some(2024.0), Some(2024.0), Some(2023.0), None]
        );
        assert_eq!(
            col(&out, "when_weekday")[0],
            Some(4.0),
            "2024-03-01 was a Friday"
        );
        assert_eq!(col(&out, "when_hour")[1], Some(10.0));
        assert!(
            !out.schema().contains("noise"),
            "the constant column is selected away"
        );
        assert_eq!(fitted[3].dropped, vec!["noise"]);

        // Fitted edges are reused on other data, not refitted.
        let other = df! {"price" => [1000.0], "area" => [1.0], "noise" => [1.0], "when" => ["2024-01-01"], "y" => [0.0]}.unwrap();
        let again = reapply(&other, &fitted).unwrap();
        assert_eq!(col(&again, "price_bin"), vec![Some(2.0)]);
        assert!(!again.schema().contains("noise"));
    }

    #[test]
    fn top_k_keeps_the_most_correlated() {
        let ops = [Operation::Select {
            method: Selection::TopK {
                target: "y".into(),
                k: 1,
            },
        }];
        let (out, _) = fit_apply(&frame(), &ops).unwrap();
        let names: Vec<String> = out
            .get_column_names()
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, vec!["price", "when", "y"]);
    }
}
