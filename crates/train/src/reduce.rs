//! Dimension reduction: PCA (fitted by smartcore, kept as our own projection so new data can be
//! transformed) and t-SNE (bhtsne's Barnes–Hut implementation; an embedding of the training rows).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use smartcore::decomposition::pca::{PCA, PCAParameters};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;

use crate::cluster::rows_of;
use crate::error::TrainError;
use crate::matrix::Matrix;

/// A fitted PCA: `transform(x) = (x - mean) · componentsᵀ`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pca {
    pub n_features: usize,
    pub mean: Vec<f64>,
    /// One row per component, `n_features` long.
    pub components: Vec<Vec<f64>>,
    /// Variance of the training data along each component (n - 1 denominator, as scikit-learn).
    pub explained_variance: Vec<f64>,
    pub explained_variance_ratio: Vec<f64>,
}

impl Pca {
    pub fn fit(x: &Matrix, n_components: usize) -> Result<Self, TrainError> {
        if n_components == 0 || n_components > x.cols {
            return Err(TrainError::invalid(format!(
                "n_components must be between 1 and the number of features ({}); got {n_components}",
                x.cols
            )));
        }
        if x.rows < 2 {
            return Err(TrainError::invalid("PCA needs at least two rows"));
        }
        let data = DenseMatrix::new(x.rows, x.cols, x.data.clone(), true)
            .map_err(|e| TrainError::Failed(e.to_string()))?;
        let fitted = PCA::fit(
            &data,
            PCAParameters::default().with_n_components(n_components),
        )
        .map_err(|e| TrainError::Failed(format!("PCA failed: {e}")))?;
        let projection = fitted.components(); // n_features × n_components
        let components: Vec<Vec<f64>> = (0..n_components)
            .map(|c| (0..x.cols).map(|f| *projection.get((f, c))).collect())
            .collect();
        let mean: Vec<f64> = (0..x.cols)
            .map(|c| x.column(c).iter().sum::<f64>() / x.rows as f64)
            .collect();
        let denom = (x.rows - 1) as f64;
        let total: f64 = (0..x.cols)
            .map(|c| {
                x.column(c)
                    .iter()
                    .map(|v| (v - mean[c]).powi(2))
                    .sum::<f64>()
                    / denom
            })
            .sum();
        let mut pca = Self {
            n_features: x.cols,
            mean,
            components,
            explained_variance: Vec::new(),
            explained_variance_ratio: Vec::new(),
        };
        let projected = pca.transform(x);
        pca.explained_variance = (0..n_components)
            .map(|c| {
                projected
                    .iter()
                    .skip(c)
                    .step_by(n_components)
                    .map(|v| v * v)
                    .sum::<f64>()
                    / denom
            })
            .collect();
        pca.explained_variance_ratio = pca
            .explained_variance
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        Ok(pca)
    }

    /// Projects rows onto the components; row-major `rows × n_components`.
    pub fn transform(&self, x: &Matrix) -> Vec<f64> {
        let k = self.components.len();
        let mut out = vec![0.0; x.rows * k];
        for (c, w) in self.components.iter().enumerate() {
            for (f, wf) in w.iter().enumerate() {
                for (r, v) in x.column(f).iter().enumerate() {
                    out[r * k + c] += wf * (v - self.mean[f]);
                }
            }
        }
        out
    }
}

/// t-SNE settings.
#[derive(Debug, Clone, Copy)]
pub struct TsneParams {
    pub n_components: usize,
    pub perplexity: f64,
    pub epochs: usize,
    pub theta: f64,
    pub seed: u64,
}

/// Embeds the rows of `x` in 2 or 3 dimensions; row-major `rows × n_components`.
/// `on_epoch(epoch)` is called as the optimisation runs.
pub fn tsne(
    x: &Matrix,
    p: &TsneParams,
    on_epoch: &mut dyn FnMut(usize),
) -> Result<Vec<f64>, TrainError> {
    if !(2..=3).contains(&p.n_components) {
        return Err(TrainError::invalid(format!(
            "t-SNE embeds in 2 or 3 dimensions; got n_components {}",
            p.n_components
        )));
    }
    if p.perplexity.is_nan()
        || p.perplexity <= 0.0
        || x.rows < 2
        || ((x.rows - 1) as f64) < 3.0 * p.perplexity
    {
        return Err(TrainError::invalid(format!(
            "perplexity must be positive and at most (rows - 1) / 3 = {:.1} for {} rows; got {}",
            (x.rows.saturating_sub(1)) as f64 / 3.0,
            x.rows,
            p.perplexity
        )));
    }
    if p.theta.is_nan() || p.theta <= 0.0 {
        return Err(TrainError::invalid("theta must be greater than 0"));
    }
    let rows = rows_of(x);
    let vectors: Vec<&[f64]> = rows.chunks(x.cols.max(1)).collect();
    // A seeded start (bhtsne's own is unseeded): small Gaussian noise, as scikit-learn's random init.
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let init: Vec<f64> = (0..x.rows * p.n_components)
        .map(|_| standard_normal(&mut rng) * 1e-4)
        .collect();
    let distance = |a: &&[f64], b: &&[f64]| {
        a.iter()
            .zip(b.iter())
            .map(|(u, v)| (u - v) * (u - v))
            .sum::<f64>()
            .sqrt()
    };
    let embedding = if p.n_components == 2 {
        let mut t: bhtsne::tSNE<f64, &[f64], 2> = bhtsne::tSNE::new(&vectors);
        t.perplexity(p.perplexity)
            .epochs(p.epochs)
            .initial_embedding(init)
            .epoch_callback(|e, _| on_epoch(e))
            .barnes_hut(p.theta, distance);
        t.embedding()
    } else {
        let mut t: bhtsne::tSNE<f64, &[f64], 3> = bhtsne::tSNE::new(&vectors);
        t.perplexity(p.perplexity)
            .epochs(p.epochs)
            .initial_embedding(init)
            .epoch_callback(|e, _| on_epoch(e))
            .barnes_hut(p.theta, distance);
        t.embedding()
    };
    Ok(embedding)
}

/// A standard normal draw (Box–Muller); one call site does not justify a distributions crate.
fn standard_normal(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_main_direction() {
        // Points along y = 2x with a little noise: the first component carries almost everything.
        let n = 200;
        let xs: Vec<f64> = (0..n).map(|i| i as f64 / 10.0).collect();
        let ys: Vec<f64> = (0..n)
            .map(|i| 2.0 * i as f64 / 10.0 + ((i * 13) % 7) as f64 * 0.01)
            .collect();
        let mut data = xs;
        data.extend(ys);
        let x = Matrix {
            rows: n,
            cols: 2,
            data,
        };
        let pca = Pca::fit(&x, 2).unwrap();
        assert!(pca.explained_variance_ratio[0] > 0.999);
        let sum: f64 = pca.explained_variance_ratio.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9);
        let dir = &pca.components[0];
        assert!((dir[1] / dir[0] - 2.0).abs() < 0.01, "{dir:?}");
    }
}
