//! Clustering: k-means (ours), DBSCAN (smartcore's), and the clustering quality scores.
//!
//! k-means is written here because the crates' versions lack what a job needs: smartcore's is
//! single-threaded and hides its centroids, linfa's brings ndarray and a second linear-algebra stack.
//! Ours is k-means++ seeding plus Lloyd iterations with rayon, reporting inertia per iteration and
//! stopping between iterations when cancelled.

use std::sync::atomic::{AtomicBool, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smartcore::cluster::dbscan::{DBSCAN, DBSCANParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::metrics::distance::euclidian::Euclidian;

use crate::error::MlError;
use crate::matrix::Matrix;

/// Row-major copy of a matrix: clustering works row by row.
pub fn rows_of(x: &Matrix) -> Vec<f64> {
    let mut out = vec![0.0; x.rows * x.cols];
    for c in 0..x.cols {
        for (r, v) in x.column(c).iter().enumerate() {
            out[r * x.cols + c] = *v;
        }
    }
    out
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// A fitted k-means model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KMeans {
    pub n_features: usize,
    /// `k × n_features`, row-major.
    pub centroids: Vec<f64>,
    pub inertia: f64,
    pub iterations: usize,
}

impl KMeans {
    pub fn k(&self) -> usize {
        self.centroids.len() / self.n_features.max(1)
    }

    fn centroid(&self, c: usize) -> &[f64] {
        &self.centroids[c * self.n_features..(c + 1) * self.n_features]
    }

    /// Nearest centroid of each row (rows row-major) and the squared distance to it.
    fn assign(&self, rows: &[f64]) -> Vec<(u32, f64)> {
        rows.par_chunks(self.n_features.max(1))
            .map(|row| {
                (0..self.k())
                    .map(|c| (c as u32, sq_dist(row, self.centroid(c))))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap_or((0, 0.0))
            })
            .collect()
    }

    /// Fits `k` clusters `n_init` times from different seeds and keeps the lowest inertia; also
    /// returns each row's cluster. `tol` is relative to the data's mean feature variance, as in
    /// scikit-learn. `on_iteration(iteration, inertia)` is called after each Lloyd step of the
    /// first run; `None` means the fit was cancelled.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        x: &Matrix,
        k: usize,
        n_init: usize,
        max_iter: usize,
        tol: f64,
        seed: u64,
        cancelled: &AtomicBool,
        on_iteration: &mut dyn FnMut(usize, f64),
    ) -> Result<Option<(Self, Vec<i64>)>, MlError> {
        if k == 0 || k > x.rows {
            return Err(MlError::invalid(format!(
                "n_clusters must be between 1 and the number of rows ({}); got {k}",
                x.rows
            )));
        }
        // One row-major copy serves every run.
        let rows = rows_of(x);
        let mean_variance = (0..x.cols)
            .map(|c| {
                let col = x.column(c);
                let mean = col.iter().sum::<f64>() / x.rows as f64;
                col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.rows as f64
            })
            .sum::<f64>()
            / x.cols.max(1) as f64;
        let tol = tol * mean_variance;
        let mut best: Option<Self> = None;
        for run in 0..n_init.max(1) {
            let mut quiet = |_: usize, _: f64| {};
            let report: &mut dyn FnMut(usize, f64) =
                if run == 0 { on_iteration } else { &mut quiet };
            let Some(model) = Self::fit_once(
                &rows,
                x.cols,
                k,
                max_iter,
                tol,
                seed.wrapping_add(run as u64),
                cancelled,
                report,
            ) else {
                return Ok(None);
            };
            if best.as_ref().is_none_or(|b| model.inertia < b.inertia) {
                best = Some(model);
            }
        }
        Ok(best.map(|m| {
            let labels = m.assign(&rows).into_iter().map(|(c, _)| c as i64).collect();
            (m, labels)
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn fit_once(
        rows: &[f64],
        d: usize,
        k: usize,
        max_iter: usize,
        tol: f64,
        seed: u64,
        cancelled: &AtomicBool,
        on_iteration: &mut dyn FnMut(usize, f64),
    ) -> Option<Self> {
        let mut model = Self {
            n_features: d,
            centroids: plus_plus_seeds(rows, d, k, seed),
            inertia: f64::INFINITY,
            iterations: 0,
        };
        for iteration in 1..=max_iter {
            if cancelled.load(Ordering::Relaxed) {
                return None;
            }
            let assigned = model.assign(rows);
            let inertia: f64 = assigned.iter().map(|a| a.1).sum();
            let (sums, counts) = rows
                .par_chunks(d)
                .zip(assigned.par_iter())
                .fold(
                    || (vec![0.0; k * d], vec![0usize; k]),
                    |(mut sums, mut counts), (row, (c, _))| {
                        let c = *c as usize;
                        counts[c] += 1;
                        for (s, v) in sums[c * d..(c + 1) * d].iter_mut().zip(row) {
                            *s += v;
                        }
                        (sums, counts)
                    },
                )
                .reduce(
                    || (vec![0.0; k * d], vec![0usize; k]),
                    |(mut s1, mut c1), (s2, c2)| {
                        s1.iter_mut().zip(s2).for_each(|(a, b)| *a += b);
                        c1.iter_mut().zip(c2).for_each(|(a, b)| *a += b);
                        (s1, c1)
                    },
                );
            let mut shift = 0.0;
            for c in 0..k {
                if counts[c] == 0 {
                    continue; // an empty cluster keeps its centroid
                }
                for j in 0..d {
                    let new = sums[c * d + j] / counts[c] as f64;
                    shift += (new - model.centroids[c * d + j]).powi(2);
                    model.centroids[c * d + j] = new;
                }
            }
            model.inertia = inertia;
            model.iterations = iteration;
            on_iteration(iteration, inertia);
            if shift <= tol {
                break;
            }
        }
        // Inertia of the final centroids.
        model.inertia = model.assign(rows).iter().map(|a| a.1).sum();
        Some(model)
    }

    /// Cluster of each row.
    pub fn predict(&self, x: &Matrix) -> Vec<i64> {
        self.assign(&rows_of(x))
            .into_iter()
            .map(|(c, _)| c as i64)
            .collect()
    }
}

/// Greedy k-means++ (scikit-learn's default): each next seed is the best, by total squared
/// distance, of `2 + ln k` candidates drawn with probability proportional to their squared
/// distance from the nearest seed so far.
fn plus_plus_seeds(rows: &[f64], d: usize, k: usize, seed: u64) -> Vec<f64> {
    let n = rows.len() / d.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let trials = 2 + (k as f64).ln() as usize;
    let first = rng.random_range(0..n);
    let mut centroids = rows[first * d..(first + 1) * d].to_vec();
    let mut nearest: Vec<f64> = rows
        .par_chunks(d)
        .map(|r| sq_dist(r, &centroids[..d]))
        .collect();
    for _ in 1..k {
        let total: f64 = nearest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let pick = if total > 0.0 {
                let mut target = rng.random::<f64>() * total;
                nearest
                    .iter()
                    .position(|w| {
                        target -= w;
                        target <= 0.0
                    })
                    .unwrap_or(n - 1)
            } else {
                rng.random_range(0..n)
            };
            let candidate = &rows[pick * d..(pick + 1) * d];
            let updated: Vec<f64> = nearest
                .par_iter()
                .zip(rows.par_chunks(d))
                .map(|(w, r)| w.min(sq_dist(r, candidate)))
                .collect();
            let potential: f64 = updated.iter().sum();
            if best.as_ref().is_none_or(|b| potential < b.0) {
                best = Some((potential, pick, updated));
            }
        }
        if let Some((_, pick, updated)) = best {
            nearest = updated;
            centroids.extend_from_slice(&rows[pick * d..(pick + 1) * d]);
        }
    }
    centroids
}

type SmartDbscan = DBSCAN<f64, i32, DenseMatrix<f64>, Vec<i32>, Euclidian<f64>>;

/// A fitted DBSCAN: smartcore's model, which keeps the training points to place new ones.
#[derive(Serialize, Deserialize)]
pub struct Dbscan {
    pub n_features: usize,
    pub eps: f64,
    pub min_samples: usize,
    model: SmartDbscan,
}

impl Dbscan {
    pub fn fit(x: &Matrix, eps: f64, min_samples: usize) -> Result<Self, MlError> {
        let data = DenseMatrix::new(x.rows, x.cols, x.data.clone(), true)
            .map_err(|e| MlError::Failed(e.to_string()))?;
        let params = DBSCANParameters::default()
            .with_eps(eps)
            .with_min_samples(min_samples);
        let model = DBSCAN::fit(&data, params)
            .map_err(|e| MlError::Failed(format!("DBSCAN failed: {e}")))?;
        Ok(Self {
            n_features: x.cols,
            eps,
            min_samples,
            model,
        })
    }

    /// Cluster of each row; -1 is noise.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<i64>, MlError> {
        let data = DenseMatrix::new(x.rows, x.cols, x.data.clone(), true)
            .map_err(|e| MlError::Failed(e.to_string()))?;
        let labels = self
            .model
            .predict(&data)
            .map_err(|e| MlError::Failed(format!("DBSCAN prediction failed: {e}")))?;
        // smartcore numbers clusters from 1 and gives 0 for noise.
        Ok(labels.into_iter().map(|l| i64::from(l) - 1).collect())
    }
}

/// Clustering quality, as scikit-learn computes it. Noise points (label -1) are left out.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClusterScores {
    pub n_clusters: usize,
    /// Rows labelled noise (DBSCAN).
    pub n_noise: usize,
    /// In [-1, 1], higher is better. Computed on at most `SILHOUETTE_SAMPLE` rows.
    pub silhouette: Option<f64>,
    /// Lower is better (0 is best).
    pub davies_bouldin: Option<f64>,
    /// Higher is better.
    pub calinski_harabasz: Option<f64>,
    /// Rows in each cluster, by cluster id.
    pub cluster_sizes: Vec<usize>,
}

/// Most rows the silhouette is computed on (it is quadratic); a seeded sample beyond that.
pub const SILHOUETTE_SAMPLE: usize = 5000;

/// Scores `labels` (one per row of `x`; -1 = noise). Scores need at least two clusters.
pub fn cluster_scores(x: &Matrix, labels: &[i64], seed: u64) -> ClusterScores {
    let d = x.cols;
    let rows = rows_of(x);
    let kept: Vec<usize> = (0..x.rows).filter(|&r| labels[r] >= 0).collect();
    let n_noise = x.rows - kept.len();
    let n_clusters = labels.iter().copied().max().map_or(0, |m| (m + 1).max(0)) as usize;
    let mut sizes = vec![0usize; n_clusters];
    let mut centroids = vec![0.0; n_clusters * d];
    for &r in &kept {
        let c = labels[r] as usize;
        sizes[c] += 1;
        for j in 0..d {
            centroids[c * d + j] += rows[r * d + j];
        }
    }
    for c in 0..n_clusters {
        for j in 0..d {
            centroids[c * d + j] /= sizes[c].max(1) as f64;
        }
    }
    let present: Vec<usize> = (0..n_clusters).filter(|&c| sizes[c] > 0).collect();
    if present.len() < 2 || kept.len() <= present.len() {
        return ClusterScores {
            n_clusters: present.len(),
            n_noise,
            silhouette: None,
            davies_bouldin: None,
            calinski_harabasz: None,
            cluster_sizes: sizes,
        };
    }
    let row = |r: usize| &rows[r * d..(r + 1) * d];
    let centroid = |c: usize| &centroids[c * d..(c + 1) * d];

    // Calinski–Harabasz: between-cluster over within-cluster dispersion.
    let n = kept.len() as f64;
    let mut mean = vec![0.0; d];
    for &r in &kept {
        mean.iter_mut().zip(row(r)).for_each(|(m, v)| *m += v / n);
    }
    let between: f64 = present
        .iter()
        .map(|&c| sizes[c] as f64 * sq_dist(centroid(c), &mean))
        .sum();
    let within: f64 = kept
        .iter()
        .map(|&r| sq_dist(row(r), centroid(labels[r] as usize)))
        .sum();
    let k = present.len() as f64;
    let calinski = if within > 0.0 {
        between * (n - k) / (within * (k - 1.0))
    } else {
        1.0
    };

    // Davies–Bouldin: mean over clusters of the worst (s_i + s_j) / d(c_i, c_j).
    let mut scatter = vec![0.0; n_clusters];
    for &r in &kept {
        let c = labels[r] as usize;
        scatter[c] += sq_dist(row(r), centroid(c)).sqrt();
    }
    for c in 0..n_clusters {
        scatter[c] /= sizes[c].max(1) as f64;
    }
    let davies = present
        .iter()
        .map(|&i| {
            present
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| {
                    let dist = sq_dist(centroid(i), centroid(j)).sqrt();
                    if dist > 0.0 {
                        (scatter[i] + scatter[j]) / dist
                    } else {
                        f64::INFINITY
                    }
                })
                .fold(0.0, f64::max)
        })
        .sum::<f64>()
        / k;

    ClusterScores {
        n_clusters: present.len(),
        n_noise,
        silhouette: Some(silhouette(&rows, d, labels, &kept, n_clusters, seed)),
        davies_bouldin: Some(davies),
        calinski_harabasz: Some(calinski),
        cluster_sizes: sizes,
    }
}

/// Mean silhouette over a seeded sample of the labelled rows (all of them up to the sample size).
fn silhouette(
    rows: &[f64],
    d: usize,
    labels: &[i64],
    kept: &[usize],
    n_clusters: usize,
    seed: u64,
) -> f64 {
    let sample: Vec<usize> = if kept.len() > SILHOUETTE_SAMPLE {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rand::seq::index::sample(&mut rng, kept.len(), SILHOUETTE_SAMPLE)
            .into_iter()
            .map(|i| kept[i])
            .collect()
    } else {
        kept.to_vec()
    };
    let row = |r: usize| &rows[r * d..(r + 1) * d];
    let scores: Vec<f64> = sample
        .par_iter()
        .map(|&i| {
            let mut sum = vec![0.0; n_clusters];
            let mut count = vec![0usize; n_clusters];
            for &j in &sample {
                if j != i {
                    let c = labels[j] as usize;
                    sum[c] += sq_dist(row(i), row(j)).sqrt();
                    count[c] += 1;
                }
            }
            let own = labels[i] as usize;
            if count[own] == 0 {
                return 0.0; // a singleton cluster scores 0, as in scikit-learn
            }
            let a = sum[own] / count[own] as f64;
            let b = (0..n_clusters)
                .filter(|&c| c != own && count[c] > 0)
                .map(|c| sum[c] / count[c] as f64)
                .fold(f64::INFINITY, f64::min);
            if b.is_finite() {
                (b - a) / a.max(b)
            } else {
                0.0
            }
        })
        .collect();
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tight blobs far apart.
    fn blobs() -> (Matrix, Vec<i64>) {
        let centers = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        let mut labels = Vec::new();
        for (c, (cx, cy)) in centers.iter().enumerate() {
            for i in 0..30 {
                let jitter = (i as f64 * 0.37).sin() * 0.5;
                xs.push(cx + jitter);
                ys.push(cy + (i as f64 * 0.91).cos() * 0.5);
                labels.push(c as i64);
            }
        }
        let rows = xs.len();
        xs.extend(ys);
        (
            Matrix {
                rows,
                cols: 2,
                data: xs,
            },
            labels,
        )
    }

    #[test]
    fn kmeans_finds_separated_blobs() {
        let (x, truth) = blobs();
        let never = AtomicBool::new(false);
        let mut inertias = Vec::new();
        let (m, labels) = KMeans::fit(&x, 3, 1, 100, 1e-9, 7, &never, &mut |_, i| inertias.push(i))
            .unwrap()
            .unwrap();
        assert_eq!(labels, m.predict(&x));
        // Same partition as the truth, whatever the numbering.
        for a in 0..x.rows {
            for b in 0..x.rows {
                assert_eq!(truth[a] == truth[b], labels[a] == labels[b]);
            }
        }
        assert!(inertias.windows(2).all(|w| w[1] <= w[0] + 1e-9));
        let scores = cluster_scores(&x, &labels, 0);
        assert!(scores.silhouette.unwrap() > 0.9);
        assert!(scores.davies_bouldin.unwrap() < 0.2);
        assert_eq!(scores.cluster_sizes, vec![30, 30, 30]);
    }

    #[test]
    fn dbscan_marks_an_outlier_as_noise() {
        let (mut x, _) = blobs();
        // One far point appended to both columns.
        let mut data = x.data[..x.rows].to_vec();
        data.push(100.0);
        data.extend_from_slice(&x.data[x.rows..]);
        data.push(100.0);
        x = Matrix {
            rows: x.rows + 1,
            cols: 2,
            data,
        };
        let m = Dbscan::fit(&x, 2.0, 4).unwrap();
        let labels = m.predict(&x).unwrap();
        assert_eq!(labels[x.rows - 1], -1);
        assert_eq!(
            labels[..x.rows - 1]
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
    }
}
