//! Dense feature matrices (column-major f64) and label vectors taken from data frames.

use polars::prelude::*;

use crate::error::MlError;

/// A dense matrix stored column by column: `data[col * rows + row]`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    #[inline]
    pub fn get(&self, row: usize, col: usize) -> f64 {
        self.data[col * self.rows + row]
    }

    pub fn column(&self, col: usize) -> &[f64] {
        &self.data[col * self.rows..(col + 1) * self.rows]
    }

    /// The rows at `rows`, in that order (a cross-validation fold).
    pub fn select_rows(&self, rows: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(rows.len() * self.cols);
        for col in 0..self.cols {
            let column = self.column(col);
            data.extend(rows.iter().map(|r| column[*r]));
        }
        Matrix {
            rows: rows.len(),
            cols: self.cols,
            data,
        }
    }

    /// Takes `names` from `df` in order. Every value must be a finite number.
    pub fn from_frame(df: &DataFrame, names: &[String]) -> Result<Self, MlError> {
        let rows = df.height();
        let mut data = Vec::with_capacity(rows * names.len());
        for name in names {
            let c = df.column(name).map_err(|_| {
                MlError::invalid(format!("the data has no feature column `{name}`"))
            })?;
            let s = c.as_materialized_series().cast(&DataType::Float64)?;
            let ca = s.f64()?;
            let before = data.len();
            data.extend(ca.iter().map(|v| v.unwrap_or(f64::NAN)));
            if data[before..].iter().any(|v| !v.is_finite()) {
                return Err(MlError::invalid(format!(
                    "feature `{name}` has missing or non-finite values; preprocess the data (preprocess_supervised imputes them) before training"
                )));
            }
        }
        Ok(Self {
            rows,
            cols: names.len(),
            data,
        })
    }
}

/// Class indices of a label column, given the class list (labels compare as text).
pub fn class_indices(
    df: &DataFrame,
    target: &str,
    classes: &[String],
) -> Result<Vec<u32>, MlError> {
    let c = df
        .column(target)
        .map_err(|_| MlError::invalid(format!("the data has no target column `{target}`")))?;
    let s = c.as_materialized_series().cast(&DataType::String)?;
    let lookup: std::collections::HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    s.str()?
        .iter()
        .map(|v| match v {
            Some(v) => lookup.get(v).copied().ok_or_else(|| {
                MlError::invalid(format!(
                    "label `{v}` in `{target}` is not one of the model's classes ({})",
                    classes.join(", ")
                ))
            }),
            None => Err(MlError::invalid(format!(
                "the target column `{target}` has missing values"
            ))),
        })
        .collect()
}

/// Numeric targets (regression).
pub fn numeric_target(df: &DataFrame, target: &str) -> Result<Vec<f64>, MlError> {
    let c = df
        .column(target)
        .map_err(|_| MlError::invalid(format!("the data has no target column `{target}`")))?;
    let s = c.as_materialized_series().cast(&DataType::Float64)?;
    let v: Vec<f64> = s.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(MlError::invalid(format!(
            "the target column `{target}` has missing or non-numeric values"
        )));
    }
    Ok(v)
}
