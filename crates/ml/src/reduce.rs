//! Dimension reduction: PCA (the covariance's eigendecomposition, by smartcore; kept as our own
//! projection so new data can be transformed) and t-SNE (bhtsne's Barnes–Hut implementation; an
//! embedding of the training rows).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linalg::traits::evd::EVDDecomposable;

use crate::cluster::rows_of;
use crate::error::MlError;
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
    /// Fits on the covariance matrix: means and the `d × d` covariance computed in parallel, then
    /// smartcore's symmetric eigendecomposition of that small matrix (scikit-learn's
    /// `covariance_eigh` route). smartcore's own PCA takes an SVD of the whole data matrix,
    /// single-threaded: 70× slower on a million rows.
    pub fn fit(x: &Matrix, n_components: usize) -> Result<Self, MlError> {
        if n_components == 0 || n_components > x.cols {
            return Err(MlError::invalid(format!(
                "n_components must be between 1 and the number of features ({}); got {n_components}",
                x.cols
            )));
        }
        if x.rows < 2 {
            return Err(MlError::invalid("PCA needs at least two rows"));
        }
        let d = x.cols;
        let mean: Vec<f64> = (0..d)
            .into_par_iter()
            .map(|c| x.column(c).iter().sum::<f64>() / x.rows as f64)
            .collect();
        let denom = (x.rows - 1) as f64;
        let pairs: Vec<(usize, usize)> = (0..d).flat_map(|i| (i..d).map(move |j| (i, j))).collect();
        let values: Vec<f64> = pairs
            .par_iter()
            .map(|&(i, j)| {
                let (a, b) = (x.column(i), x.column(j));
                a.iter()
                    .zip(b)
                    .map(|(u, v)| (u - mean[i]) * (v - mean[j]))
                    .sum::<f64>()
                    / denom
            })
            .collect();
        let mut cov = vec![0.0; d * d];
        for (&(i, j), v) in pairs.iter().zip(&values) {
            cov[i * d + j] = *v;
            cov[j * d + i] = *v;
        }
        let total: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        let matrix = DenseMatrix::new(d, d, cov, false)
            .map_err(|e| MlError::Failed(format!("PCA failed: {e}")))?;
        let evd = matrix
            .evd(true)
            .map_err(|e| MlError::Failed(format!("PCA failed: {e}")))?;
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|a, b| evd.d[*b].total_cmp(&evd.d[*a]));
        let top = &order[..n_components];
        let components: Vec<Vec<f64>> = top
            .iter()
            .map(|&c| (0..d).map(|f| *evd.V.get((f, c))).collect())
            .collect();
        let explained_variance: Vec<f64> = top.iter().map(|&c| evd.d[c].max(0.0)).collect();
        let explained_variance_ratio = explained_variance
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        Ok(Self {
            n_features: d,
            mean,
            components,
            explained_variance,
            explained_variance_ratio,
        })
    }

    /// Projects rows onto the components; row-major `rows × n_components`.
    pub fn transform(&self, x: &Matrix) -> Vec<f64> {
        let k = self.components.len();
        let mut out = vec![0.0; x.rows * k];
        out.par_chunks_mut(k).enumerate().for_each(|(r, row)| {
            for (c, w) in self.components.iter().enumerate() {
                row[c] = w
                    .iter()
                    .enumerate()
                    .map(|(f, wf)| wf * (x.get(r, f) - self.mean[f]))
                    .sum();
            }
        });
        out
    }
}

/// t-SNE settings.
#[derive(Debug, Clone, Copy)]
pub struct TsneSettings {
    pub n_components: usize,
    pub perplexity: f64,
    pub epochs: usize,
    pub theta: f64,
    pub seed: u64,
}

/// bhtsne's Barnes–Hut t-SNE of `vectors` in `D` dimensions, from `init`.
fn embed<const D: usize>(
    vectors: &[&[f64]],
    init: Vec<f64>,
    p: &TsneSettings,
    on_epoch: &mut dyn FnMut(usize),
) -> Vec<f64>
where
    bhtsne::Dim<D>: bhtsne::Morton<D>,
{
    let distance = |a: &&[f64], b: &&[f64]| {
        a.iter()
            .zip(b.iter())
            .map(|(u, v)| (u - v) * (u - v))
            .sum::<f64>()
            .sqrt()
    };
    let mut t: bhtsne::tSNE<f64, &[f64], D> = bhtsne::tSNE::new(vectors);
    t.perplexity(p.perplexity)
        .epochs(p.epochs)
        .initial_embedding(init)
        .epoch_callback(|e, _| on_epoch(e))
        .barnes_hut(p.theta, distance);
    t.embedding()
}

/// Embeds the rows of `x` in 2 or 3 dimensions; row-major `rows × n_components`.
/// `on_epoch(epoch)` is called as the optimisation runs.
pub fn tsne(
    x: &Matrix,
    p: &TsneSettings,
    on_epoch: &mut dyn FnMut(usize),
) -> Result<Vec<f64>, MlError> {
    if !(2..=3).contains(&p.n_components) {
        return Err(MlError::invalid(format!(
            "t-SNE embeds in 2 or 3 dimensions; got n_components {}",
            p.n_components
        )));
    }
    if p.perplexity.is_nan()
        || p.perplexity <= 0.0
        || x.rows < 2
        || ((x.rows - 1) as f64) < 3.0 * p.perplexity
    {
        return Err(MlError::invalid(format!(
            "perplexity must be positive and at most (rows - 1) / 3 = {:.1} for {} rows; got {}",
            (x.rows.saturating_sub(1)) as f64 / 3.0,
            x.rows,
            p.perplexity
        )));
    }
    if p.theta.is_nan() || p.theta <= 0.0 {
        return Err(MlError::invalid("theta must be greater than 0"));
    }
    let rows = rows_of(x);
    let vectors: Vec<&[f64]> = rows.chunks(x.cols.max(1)).collect();
    // A seeded start (bhtsne's own is unseeded): small Gaussian noise, as scikit-learn's random init.
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let init: Vec<f64> = (0..x.rows * p.n_components)
        .map(|_| standard_normal(&mut rng) * 1e-4)
        .collect();
    // bhtsne fixes the embedding's width at compile time.
    let embedding = if p.n_components == 2 {
        embed::<2>(&vectors, init, p, on_epoch)
    } else {
        embed::<3>(&vectors, init, p, on_epoch)
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
        // The explained variance is the variance of the projected data.
        let projected = pca.transform(&x);
        let var0 = projected.iter().step_by(2).map(|v| v * v).sum::<f64>() / (n - 1) as f64;
        assert!((var0 - pca.explained_variance[0]).abs() < 1e-9 * var0.max(1.0));
    }
}
