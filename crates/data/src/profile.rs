//! Column profiles (types, missing values, summary statistics) and row previews.

use std::collections::HashMap;

use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::DataError;

/// A value and how often it occurs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValueCount {
    pub value: String,
    pub count: usize,
}

/// What one column holds.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ColumnProfile {
    pub name: String,
    /// The inferred type, e.g. `f64`, `i64`, `str`.
    pub dtype: String,
    pub null_count: usize,
    pub unique_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// The most frequent values of a text or boolean column (up to 5).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_values: Vec<ValueCount>,
}

/// True for the types treated as numbers (booleans count as 0/1).
pub fn is_numeric(dtype: &DataType) -> bool {
    dtype.is_primitive_numeric() || matches!(dtype, DataType::Boolean)
}

/// The non-null, finite values of a numeric column as f64.
pub fn finite_values(column: &Column) -> Result<Vec<f64>, DataError> {
    let s = column.as_materialized_series().cast(&DataType::Float64)?;
    Ok(s.f64()?
        .iter()
        .flatten()
        .filter(|v| v.is_finite())
        .collect())
}

/// Counts of each distinct text value (nulls excluded), most frequent first, ties by value.
pub fn value_counts(column: &Column) -> Result<Vec<ValueCount>, DataError> {
    let s = column.as_materialized_series().cast(&DataType::String)?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for v in s.str()?.iter().flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let mut out: Vec<ValueCount> = counts
        .into_iter()
        .map(|(value, count)| ValueCount {
            value: value.to_string(),
            count,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    Ok(out)
}

/// Mean and population standard deviation.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// Profiles every column.
pub fn profile(df: &DataFrame) -> Result<Vec<ColumnProfile>, DataError> {
    df.columns()
        .iter()
        .map(|c| {
            let dtype = c.dtype().clone();
            let mut p = ColumnProfile {
                name: c.name().to_string(),
                dtype: dtype.to_string(),
                null_count: c.null_count(),
                unique_count: c.as_materialized_series().drop_nulls().n_unique()?,
                min: None,
                max: None,
                mean: None,
                std: None,
                top_values: Vec::new(),
            };
            if is_numeric(&dtype) && !matches!(dtype, DataType::Boolean) {
                let values = finite_values(c)?;
                if let Some((mean, std)) = mean_std(&values) {
                    p.mean = Some(mean);
                    p.std = Some(std);
                    p.min = values.iter().copied().reduce(f64::min);
                    p.max = values.iter().copied().reduce(f64::max);
                }
            } else if matches!(dtype, DataType::String | DataType::Boolean) {
                p.top_values = value_counts(c)?.into_iter().take(5).collect();
            }
            Ok(p)
        })
        .collect()
}

/// Converts one cell to JSON (numbers stay numbers; NaN and infinities become null).
pub fn any_to_json(v: AnyValue<'_>) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => b.into(),
        AnyValue::String(s) => s.into(),
        AnyValue::StringOwned(s) => s.as_str().into(),
        AnyValue::Int8(x) => x.into(),
        AnyValue::Int16(x) => x.into(),
        AnyValue::Int32(x) => x.into(),
        AnyValue::Int64(x) => x.into(),
        AnyValue::UInt8(x) => x.into(),
        AnyValue::UInt16(x) => x.into(),
        AnyValue::UInt32(x) => x.into(),
        AnyValue::UInt64(x) => x.into(),
        AnyValue::Float32(x) => serde_json::Number::from_f64(x as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AnyValue::Float64(x) => serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        other => other.to_string().into(),
    }
}

/// The first `n` rows as JSON objects (column name → value).
pub fn head_rows(df: &DataFrame, n: usize) -> Vec<Map<String, Value>> {
    let head = df.head(Some(n));
    (0..head.height())
        .map(|i| {
            head.columns()
                .iter()
                .map(|c| {
                    (
                        c.name().to_string(),
                        c.get(i).map(any_to_json).unwrap_or(Value::Null),
                    )
                })
                .collect()
        })
        .collect()
}
