//! Linear models: least squares (optionally ridge or lasso) and logistic regression.
//!
//! Fitting is smartcore's; the fitted coefficients are kept in our own small struct so that saved
//! artifacts do not depend on smartcore's internal layout, and so that classifiers give class
//! probabilities (smartcore's logistic regression only predicts labels).

use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::lasso::{Lasso, LassoParameters};
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use smartcore::linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters};

use crate::error::MlError;
use crate::matrix::Matrix;

/// The regularisation of a least-squares fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Penalty {
    None,
    /// L2, strength `alpha` (scikit-learn's Ridge).
    Ridge,
    /// L1, strength `alpha` (scikit-learn's Lasso).
    Lasso,
}

/// A fitted linear model: one row of coefficients per output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinearModel {
    /// `logistic` for classifiers, else the least-squares penalty.
    pub kind: String,
    pub n_features: usize,
    /// For a classifier, the class count (a binary model has one coefficient row, for class 1).
    pub n_classes: usize,
    pub coefficients: Vec<Vec<f64>>,
    pub intercepts: Vec<f64>,
}

fn dense(x: &Matrix) -> Result<DenseMatrix<f64>, MlError> {
    DenseMatrix::new(x.rows, x.cols, x.data.clone(), true)
        .map_err(|e| MlError::Failed(format!("could not build the design matrix: {e}")))
}

fn failed(e: impl std::fmt::Display) -> MlError {
    MlError::Failed(format!("the linear solver failed: {e}"))
}

/// Reads the rows of a smartcore coefficient matrix.
fn rows_of(m: &DenseMatrix<f64>) -> Vec<Vec<f64>> {
    let (r, c) = m.shape();
    (0..r)
        .map(|i| (0..c).map(|j| *m.get((i, j))).collect())
        .collect()
}

impl LinearModel {
    /// Least squares with an optional penalty of strength `alpha`.
    pub fn fit_regression(
        x: &Matrix,
        y: &[f64],
        penalty: Penalty,
        alpha: f64,
        max_iter: usize,
    ) -> Result<Self, MlError> {
        let xm = dense(x)?;
        let y = y.to_vec();
        let (coefficients, intercept) = match penalty {
            Penalty::None => {
                let m = LinearRegression::fit(&xm, &y, LinearRegressionParameters::default())
                    .map_err(failed)?;
                (
                    m.coefficients().iterator(0).copied().collect(),
                    *m.intercept(),
                )
            }
            Penalty::Ridge => {
                let params = RidgeRegressionParameters::default()
                    .with_alpha(alpha)
                    .with_normalize(false);
                let m = RidgeRegression::fit(&xm, &y, params).map_err(failed)?;
                (
                    m.coefficients().iterator(0).copied().collect(),
                    *m.intercept(),
                )
            }
            Penalty::Lasso => {
                let params = LassoParameters::default()
                    .with_alpha(alpha)
                    .with_normalize(false)
                    .with_max_iter(max_iter);
                let m = Lasso::fit(&xm, &y, params).map_err(failed)?;
                (
                    m.coefficients().iterator(0).copied().collect(),
                    *m.intercept(),
                )
            }
        };
        let coefficients: Vec<f64> = coefficients;
        if coefficients
            .iter()
            .chain([&intercept])
            .any(|v| !v.is_finite())
        {
            return Err(MlError::invalid(
                "the linear fit did not converge to finite coefficients; the features may be collinear — try penalty ridge",
            ));
        }
        Ok(Self {
            kind: match penalty {
                Penalty::None => "least_squares",
                Penalty::Ridge => "ridge",
                Penalty::Lasso => "lasso",
            }
            .into(),
            n_features: x.cols,
            n_classes: 0,
            coefficients: vec![coefficients],
            intercepts: vec![intercept],
        })
    }

    /// Logistic regression (binary, or multinomial for more classes) with L2 strength `alpha`.
    /// Every class index in `0..n_classes` must occur in `y`.
    pub fn fit_logistic(
        x: &Matrix,
        y: &[u32],
        n_classes: usize,
        alpha: f64,
    ) -> Result<Self, MlError> {
        let xm = dense(x)?;
        let labels: Vec<i32> = y.iter().map(|&c| c as i32).collect();
        let params = LogisticRegressionParameters::default().with_alpha(alpha);
        let m = LogisticRegression::fit(&xm, &labels, params).map_err(failed)?;
        if m.classes().len() != n_classes {
            return Err(MlError::invalid(format!(
                "the training data holds {} of the {n_classes} classes; logistic regression needs examples of every class",
                m.classes().len()
            )));
        }
        let coefficients = rows_of(m.coefficients());
        let intercepts: Vec<f64> = m.intercept().iterator(0).copied().collect();
        Ok(Self {
            kind: "logistic".into(),
            n_features: x.cols,
            n_classes,
            coefficients,
            intercepts,
        })
    }

    pub fn is_classifier(&self) -> bool {
        self.kind == "logistic"
    }

    fn linear_terms(&self, x: &Matrix) -> Vec<Vec<f64>> {
        self.coefficients
            .iter()
            .zip(&self.intercepts)
            .map(|(w, b)| {
                let mut out = vec![*b; x.rows];
                for (col, wj) in w.iter().enumerate() {
                    for (o, v) in out.iter_mut().zip(x.column(col)) {
                        *o += wj * v;
                    }
                }
                out
            })
            .collect()
    }

    /// Class probabilities (`rows × classes`, row-major) for a classifier, values for a regressor.
    pub fn predict_raw(&self, x: &Matrix) -> Vec<f64> {
        let terms = self.linear_terms(x);
        if !self.is_classifier() {
            return terms.into_iter().next().unwrap_or_default();
        }
        let k = self.n_classes;
        let mut out = vec![0.0; x.rows * k];
        for r in 0..x.rows {
            let row = &mut out[r * k..(r + 1) * k];
            if k == 2 {
                let p = 1.0 / (1.0 + (-terms[0][r]).exp());
                row.copy_from_slice(&[1.0 - p, p]);
            } else {
                let max = terms.iter().map(|t| t[r]).fold(f64::NEG_INFINITY, f64::max);
                for (c, t) in terms.iter().enumerate() {
                    row[c] = (t[r] - max).exp();
                }
                let sum: f64 = row.iter().sum();
                row.iter_mut().for_each(|p| *p /= sum);
            }
        }
        out
    }

    /// Absolute coefficients, normalised to sum to 1: a rough importance for standardised inputs.
    pub fn importances(&self) -> Vec<f64> {
        let mut imp = vec![0.0; self.n_features];
        for w in &self.coefficients {
            for (i, v) in w.iter().enumerate() {
                imp[i] += v.abs();
            }
        }
        let total: f64 = imp.iter().sum();
        if total > 0.0 {
            imp.iter_mut().for_each(|v| *v /= total);
        }
        imp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[[f64; 2]]) -> Matrix {
        let mut data = Vec::new();
        for c in 0..2 {
            data.extend(rows.iter().map(|r| r[c]));
        }
        Matrix {
            rows: rows.len(),
            cols: 2,
            data,
        }
    }

    #[test]
    fn least_squares_recovers_a_plane() {
        let rows: Vec<[f64; 2]> = (0..50).map(|i| [i as f64, ((i * 7) % 11) as f64]).collect();
        let y: Vec<f64> = rows.iter().map(|r| 3.0 * r[0] - 2.0 * r[1] + 5.0).collect();
        let x = matrix(&rows);
        let m = LinearModel::fit_regression(&x, &y, Penalty::None, 0.0, 1000).unwrap();
        assert!((m.coefficients[0][0] - 3.0).abs() < 1e-6);
        assert!((m.coefficients[0][1] + 2.0).abs() < 1e-6);
        assert!((m.intercepts[0] - 5.0).abs() < 1e-6);
        let p = m.predict_raw(&x);
        assert!((p[10] - y[10]).abs() < 1e-6);
    }

    #[test]
    fn logistic_probabilities_follow_the_classes() {
        let rows: Vec<[f64; 2]> = (0..60)
            .map(|i| [(i % 3) as f64 * 4.0 + (i % 5) as f64 * 0.1, 1.0])
            .collect();
        let y: Vec<u32> = (0..60).map(|i| (i % 3) as u32).collect();
        let x = matrix(&rows);
        let m = LinearModel::fit_logistic(&x, &y, 3, 0.0).unwrap();
        let p = m.predict_raw(&x);
        for (r, &c) in y.iter().enumerate() {
            let row = &p[r * 3..r * 3 + 3];
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert_eq!(crate::forest::argmax(row), c as usize, "row {r}: {row:?}");
        }
    }
}
