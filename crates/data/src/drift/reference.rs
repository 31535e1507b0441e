//! The reference profile: what each raw feature looked like in the training rows, compact enough
//! to travel inside every model (`profile.json`) and complete enough for PSI, KS, chi-square and
//! Jensen–Shannon comparisons later.

use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::stats::quantile;
use crate::error::DataError;
use crate::io::require_column;
use crate::profile::{ValueCount, is_numeric, value_counts};

/// The file name of a profile beside a pipeline and inside a model folder.
pub const PROFILE_FILE: &str = "profile.json";
/// Quantile bins per numeric feature (deciles).
pub const BINS: usize = 10;
/// Reference values kept per numeric feature for the KS test: all of them up to this many,
/// otherwise this many + 1 evenly spaced quantiles.
pub const SKETCH: usize = 1000;
/// Category values kept per text feature; the rest are counted as "other".
pub const TOP_VALUES: usize = 50;

const FORMAT_VERSION: u32 = 1;

/// The distribution of every raw feature (and of the target and the model's predictions) in the
/// rows a model learned from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReferenceProfile {
    pub format_version: u32,
    /// Rows profiled.
    pub rows: usize,
    pub features: Vec<FeatureProfile>,
    /// The target column's distribution, for supervised models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FeatureProfile>,
    /// The model's predictions on the profiled rows (labels or values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<FeatureProfile>,
    /// The table profiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub created_at: String,
}

/// One column's distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeatureProfile {
    pub name: String,
    /// Rows, missing ones included.
    pub rows: usize,
    /// Missing rows (null, NaN or infinite).
    pub missing: usize,
    #[serde(flatten)]
    pub distribution: Distribution,
}

/// A numeric column's quantile bins and sketch, or a text column's value counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Distribution {
    Numeric {
        /// Mean, standard deviation (n − 1), minimum and maximum; absent when every row is missing.
        mean: Option<f64>,
        std: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        /// The inner bin edges: the reference deciles, without repeats. Bin `i` holds values in
        /// `(edges[i-1], edges[i]]`, the first and last bins are open-ended.
        bin_edges: Vec<f64>,
        bin_counts: Vec<u64>,
        /// Sorted reference values (all of them, or [`SKETCH`] + 1 evenly spaced quantiles).
        sketch: Vec<f64>,
    },
    Categorical {
        /// The most frequent values, most frequent first (ties by value).
        values: Vec<ValueCount>,
        /// Rows holding any other value.
        other: u64,
        /// Distinct values in all.
        distinct: usize,
    },
}

impl FeatureProfile {
    /// True for numeric features.
    pub fn is_numeric(&self) -> bool {
        matches!(self.distribution, Distribution::Numeric { .. })
    }

    /// The share of rows missing.
    pub fn missing_rate(&self) -> f64 {
        self.missing as f64 / self.rows.max(1) as f64
    }

    /// Profiles one column: numbers (not booleans) as numeric, anything else as categories.
    pub fn of(column: &Column) -> Result<Self, DataError> {
        let rows = column.len();
        let dtype = column.dtype();
        if is_numeric(dtype) && !matches!(dtype, DataType::Boolean) {
            let mut values = numbers(column)?;
            values.sort_unstable_by(f64::total_cmp);
            Ok(Self::numeric(column.name().as_str(), rows, values))
        } else {
            let counts = value_counts(&categories(column)?)?;
            let present: usize = counts.iter().map(|v| v.count).sum();
            Ok(Self::categorical(
                column.name().as_str(),
                rows,
                rows - present,
                counts,
            ))
        }
    }

    /// A numeric profile of `sorted` values (the non-missing ones of `rows`).
    pub fn numeric(name: &str, rows: usize, sorted: Vec<f64>) -> Self {
        let missing = rows - sorted.len();
        let distribution = if sorted.is_empty() {
            Distribution::Numeric {
                mean: None,
                std: None,
                min: None,
                max: None,
                bin_edges: Vec::new(),
                bin_counts: vec![0],
                sketch: Vec::new(),
            }
        } else {
            let n = sorted.len();
            let mean = sorted.iter().sum::<f64>() / n as f64;
            let std = if n > 1 {
                (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
            } else {
                0.0
            };
            let mut bin_edges: Vec<f64> = (1..BINS)
                .map(|i| quantile(&sorted, i as f64 / BINS as f64))
                .collect();
            bin_edges.dedup();
            let bin_counts = bin_counts(&bin_edges, &sorted);
            let sketch = if n <= SKETCH {
                sorted.clone()
            } else {
                (0..=SKETCH)
                    .map(|i| quantile(&sorted, i as f64 / SKETCH as f64))
                    .collect()
            };
            Distribution::Numeric {
                mean: Some(mean),
                std: Some(std),
                min: Some(sorted[0]),
                max: Some(sorted[n - 1]),
                bin_edges,
                bin_counts,
                sketch,
            }
        };
        Self {
            name: name.into(),
            rows,
            missing,
            distribution,
        }
    }

    /// A categorical profile from value counts (most frequent first).
    pub fn categorical(name: &str, rows: usize, missing: usize, counts: Vec<ValueCount>) -> Self {
        let distinct = counts.len();
        let other = counts.iter().skip(TOP_VALUES).map(|v| v.count as u64).sum();
        Self {
            name: name.into(),
            rows,
            missing,
            distribution: Distribution::Categorical {
                values: counts.into_iter().take(TOP_VALUES).collect(),
                other,
                distinct,
            },
        }
    }
}

impl ReferenceProfile {
    /// Profiles `features` (raw columns) and, when given, the `target` column of `df`.
    pub fn build(
        df: &DataFrame,
        features: &[&str],
        target: Option<&str>,
        source: Option<String>,
    ) -> Result<Self, DataError> {
        let column = |name: &str| {
            require_column(df, name)?;
            Ok::<_, DataError>(df.column(name)?)
        };
        let features = features
            .iter()
            .map(|f| FeatureProfile::of(column(f)?))
            .collect::<Result<Vec<_>, _>>()?;
        let target = match target {
            Some(t) if df.column(t).is_ok() => Some(FeatureProfile::of(column(t)?)?),
            _ => None,
        };
        Ok(Self {
            format_version: FORMAT_VERSION,
            rows: df.height(),
            features,
            target,
            prediction: None,
            source,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
    }

    /// Fails, naming every one, when features of the profile are not columns of `df`.
    pub fn require_features(&self, df: &DataFrame) -> Result<(), DataError> {
        let missing: Vec<&str> = self
            .features
            .iter()
            .map(|f| f.name.as_str())
            .filter(|name| !df.schema().contains(name))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(DataError::invalid(format!(
            "the current data lacks {} of the model's features: {}",
            missing.len(),
            missing.join(", ")
        )))
    }

    /// The profile of a feature by name.
    pub fn feature(&self, name: &str) -> Option<&FeatureProfile> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Reads a profile saved as JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DataError> {
        serde_json::from_slice(bytes)
            .map_err(|e| DataError::invalid(format!("not a reference profile: {e}")))
    }

    /// The profile as JSON, for `profile.json`.
    pub fn to_json(&self) -> Vec<u8> {
        // Only finite numbers and strings: encoding cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How many of the `sorted` values fall in each bin of `edges` (see [`Distribution::Numeric`]).
pub(crate) fn bin_counts(edges: &[f64], values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for v in values {
        counts[edges.partition_point(|e| e < v)] += 1;
    }
    counts
}

/// The non-missing (finite) values of a numeric column.
pub(crate) fn numbers(column: &Column) -> Result<Vec<f64>, DataError> {
    let s = column
        .as_materialized_series()
        .strict_cast(&DataType::Float64)
        .map_err(|_| {
            DataError::invalid(format!(
                "column `{}` holds {} where numbers are expected",
                column.name(),
                column.dtype()
            ))
        })?;
    Ok(s.f64()?
        .iter()
        .flatten()
        .filter(|v| v.is_finite())
        .collect())
}

/// A column as text categories (booleans as `true`/`false`, numbers as written).
pub(crate) fn categories(column: &Column) -> Result<Column, DataError> {
    Ok(column.cast(&DataType::String)?)
}
