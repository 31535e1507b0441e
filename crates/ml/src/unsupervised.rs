//! Unsupervised fits: clustering (k-means with k chosen by silhouette, DBSCAN, k-means on an
//! autoencoder's latent codes) and dimension reduction (PCA, t-SNE).

use serde_json::{Value, json};

use crate::cluster::{ClusterScores, Dbscan, KMeans, cluster_scores};
use crate::control::FitControl;
use crate::error::MlError;
use crate::matrix::Matrix;
use crate::model::TrainedModel;
use crate::neural::{Autoencoder, from_row_major, row_major};
use crate::params::{AutoencoderSettings, KMeansSettings};
use crate::reduce::{Pca, TsneSettings, tsne};
use mlops_nn::mlp::{Data, Mlp, Targets};

/// A clustering algorithm with validated settings.
pub enum Clustering {
    KMeans(KMeansSettings),
    Dbscan(f64, usize),
    /// k-means on the latent codes of an autoencoder trained first.
    Autoencoder(Box<AutoencoderSettings>, KMeansSettings),
}

/// Each training row's reconstruction error and the error above which a row is an anomaly.
pub struct AnomalyScores {
    pub errors: Vec<f64>,
    pub threshold: f64,
    /// The autoencoder's training: epochs run, the epoch kept, whether it stopped early.
    pub training: Value,
}

/// What a clustering fit produced.
pub struct ClusteringFit {
    pub model: TrainedModel,
    pub labels: Vec<i64>,
    pub scores: ClusterScores,
    /// For a k range: the silhouette of each k tried.
    pub silhouette_by_k: Vec<(usize, Option<f64>)>,
    /// For an autoencoder.
    pub anomaly: Option<AnomalyScores>,
}

impl Clustering {
    pub fn hyperparameters(&self, seed: u64) -> Value {
        match self {
            Clustering::KMeans(p) => json!({
                "k_tried": p.ks, "n_init": p.n_init, "max_iter": p.max_iter, "tol": p.tol, "seed": seed
            }),
            Clustering::Dbscan(eps, min_samples) => {
                json!({ "eps": eps, "min_samples": min_samples })
            }
            Clustering::Autoencoder(a, k) => json!({
                "network": a.network, "contamination": a.contamination,
                "k_tried": k.ks, "n_init": k.n_init, "seed": seed
            }),
        }
    }

    pub fn fit(
        &self,
        x: &Matrix,
        seed: u64,
        control: &FitControl,
    ) -> Result<Option<ClusteringFit>, MlError> {
        match self {
            Clustering::KMeans(KMeansSettings {
                ks,
                n_init,
                max_iter,
                tol,
            }) => {
                let mut best: Option<ClusteringFit> = None;
                let mut silhouette_by_k = Vec::new();
                for (i, &k) in ks.iter().enumerate() {
                    let single = ks.len() == 1;
                    let mut on_iteration = |it: usize, inertia: f64| {
                        if single {
                            control.metric(it, "inertia", inertia);
                            control.progress(
                                it,
                                *max_iter,
                                format!("iteration {it}, inertia {inertia:.4}"),
                            );
                        }
                    };
                    let Some((model, labels)) = KMeans::fit(
                        x,
                        k,
                        *n_init,
                        *max_iter,
                        *tol,
                        seed,
                        &control.cancelled,
                        &mut on_iteration,
                    )?
                    else {
                        return Ok(None);
                    };
                    let scores = cluster_scores(x, &labels, seed);
                    silhouette_by_k.push((k, scores.silhouette));
                    if !single {
                        if let Some(s) = scores.silhouette {
                            control.metric(k, "silhouette", s);
                        }
                        control.metric(k, "inertia", model.inertia);
                        control.progress(i + 1, ks.len(), format!("k = {k} done"));
                    }
                    let better = match &best {
                        None => true,
                        Some(b) => {
                            scores.silhouette.unwrap_or(f64::NEG_INFINITY)
                                > b.scores.silhouette.unwrap_or(f64::NEG_INFINITY)
                        }
                    };
                    if better {
                        best = Some(ClusteringFit {
                            model: TrainedModel::KMeans(model),
                            labels,
                            scores,
                            silhouette_by_k: Vec::new(),
                            anomaly: None,
                        });
                    }
                }
                Ok(best.map(|mut b| {
                    b.silhouette_by_k = silhouette_by_k;
                    b
                }))
            }
            Clustering::Dbscan(eps, min_samples) => {
                control.progress(0, 1, "clustering".into());
                let model = Dbscan::fit(x, *eps, *min_samples)?;
                let labels = model.predict(x)?;
                let scores = cluster_scores(x, &labels, seed);
                Ok(Some(ClusteringFit {
                    model: TrainedModel::Dbscan(model),
                    labels,
                    scores,
                    silhouette_by_k: Vec::new(),
                    anomaly: None,
                }))
            }
            Clustering::Autoencoder(settings, kmeans) => {
                let rows = row_major(x);
                let data = Data {
                    x: &rows,
                    rows: x.rows,
                    cols: x.cols,
                    y: Targets::Inputs,
                };
                let Some(fit) =
                    control.run_nn(|hooks| Mlp::fit(&data, None, &settings.network, hooks))?
                else {
                    return Ok(None);
                };
                let errors = fit.model.reconstruction_errors(&rows, x.rows)?;
                let threshold = quantile(&errors, 1.0 - settings.contamination);
                let codes = fit.model.encode(&rows, x.rows)?;
                let latent = from_row_major(&codes, x.rows, fit.model.latent_size());
                let Some(clustered) =
                    Clustering::KMeans(kmeans.clone()).fit(&latent, seed, control)?
                else {
                    return Ok(None);
                };
                let TrainedModel::KMeans(kmeans) = clustered.model else {
                    return Err(MlError::Failed("k-means gave another model kind".into()));
                };
                let training = json!({
                    "epochs": fit.history.len(),
                    "best_epoch": fit.best_epoch,
                    "stopped_early": fit.stopped_early,
                    "final_loss": fit.history.last().map(|e| e.train_loss),
                });
                Ok(Some(ClusteringFit {
                    model: TrainedModel::Autoencoder(Autoencoder {
                        network: fit.model,
                        kmeans,
                        threshold,
                    }),
                    anomaly: Some(AnomalyScores {
                        errors,
                        threshold,
                        training,
                    }),
                    ..clustered
                }))
            }
        }
    }
}

/// The `q` quantile of `values` (linear interpolation, as NumPy's default).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len().saturating_sub(1)) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A reduction's result: the PCA model (none for t-SNE), the row-major embedding, its width.
pub type ReductionFit = (Option<Pca>, Vec<f64>, usize);

/// A dimension-reduction algorithm with validated settings.
pub enum Reduction {
    Pca(usize),
    Tsne(TsneSettings),
}

impl Reduction {
    pub fn hyperparameters(&self) -> Value {
        match self {
            Reduction::Pca(k) => json!({ "n_components": k }),
            Reduction::Tsne(p) => json!({
                "n_components": p.n_components,
                "perplexity": p.perplexity,
                "max_iter": p.epochs,
                "angle": p.theta,
                "seed": p.seed,
            }),
        }
    }

    /// Fits; returns the PCA model (None for t-SNE, which has no transform for new rows) and the
    /// row-major embedding of the training rows.
    pub fn fit(&self, x: &Matrix, control: &FitControl) -> Result<Option<ReductionFit>, MlError> {
        match self {
            Reduction::Pca(k) => {
                control.progress(0, 1, "fitting".into());
                let pca = Pca::fit(x, *k)?;
                let embedding = pca.transform(x);
                Ok(Some((Some(pca), embedding, *k)))
            }
            Reduction::Tsne(p) => {
                let total = p.epochs;
                let mut on_epoch = |e: usize| {
                    if e.is_multiple_of(50) {
                        control.progress(e, total, format!("iteration {e}/{total}"));
                    }
                };
                let embedding = tsne(x, p, &mut on_epoch)?;
                if control.is_cancelled() {
                    return Ok(None);
                }
                Ok(Some((None, embedding, p.n_components)))
            }
        }
    }
}
