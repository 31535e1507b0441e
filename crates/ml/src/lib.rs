//! mlops-ml: the model library. The learners (random forest, gradient-boosted trees, linear and
//! logistic models, k-means, DBSCAN, PCA, t-SNE, and the neural models of `mlops-nn`), the
//! matrix they take, [`TrainedModel`] and its checksummed artifact form, the algorithms and their
//! settings, and a model's metrics history. Training, evaluation, serving and tuning all load and
//! run models through here; none of them needs another capability to do it.
//!
//! The tree ensembles are built on our own histogram tree learner: features are binned once into
//! at most 256 quantile bins, split search scans bin histograms, and trees are grown in parallel
//! with rayon. We wrote it because no maintained crate offers a parallel, histogram-based,
//! serializable random forest (smartcore's is exact-split and single-threaded, about 9× slower
//! than scikit-learn on our benchmark).

mod algorithms;
mod cluster;
mod control;
mod error;
mod forest;
mod gbdt;
mod history;
mod linear;
mod matrix;
mod metrics;
mod model;
mod neural;
mod params;
mod reduce;
pub mod search;
mod supervised;
mod unsupervised;
mod validation;

pub use algorithms::{
    ClassifierAlgorithm, ClusteringAlgorithm, ReductionAlgorithm, RegressorAlgorithm,
    ReinforcementAlgorithm,
};
pub use cluster::{ClusterScores, cluster_scores};
pub use control::FitControl;
pub use error::MlError;
pub use history::{HISTORY_BLOB, MetricPoint, saved_history};
pub use matrix::{Matrix, class_indices, numeric_target};
pub use metrics::{
    ClassMetrics, ClassificationReport, RegressionReport, binary_auc, classification_report,
    regression_report, supervised_metric,
};
pub use mlops_nn::mlp::argmax;
pub use model::{Anomaly, Prediction, TrainedModel};
pub use neural::transitions;
pub use params::{
    AutoencoderParams, AutoencoderSettings, DbscanParams, KMeansParams, KMeansSettings,
    LinearParams, LogisticParams, NeuralNetworkParams, PcaParams, RandomForestParams, TsneParams,
    XgboostParams, decode, rl_config,
};
pub use reduce::{Pca, TsneSettings};
pub use supervised::{Labels, Supervised, accuracy, r2, score};
pub use unsupervised::{AnomalyScores, Clustering, ClusteringFit, Reduction, ReductionFit};
pub use validation::{CvOutcome, MAX_FOLDS, cross_validate, folds};
