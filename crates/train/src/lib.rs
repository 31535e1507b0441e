//! mlops-train: Capability 2, ML Training.
//!
//! The tree ensembles are built on our own histogram tree learner ([`forest`]): features are binned
//! once into at most 256 quantile bins, split search scans bin histograms, and trees are grown in
//! parallel with rayon. We wrote it because no maintained crate offers a parallel, histogram-based,
//! serializable random forest (smartcore's is exact-split and single-threaded, about 9× slower than
//! scikit-learn on our benchmark). Training runs as a named job ([`jobs`]) with progress, metrics
//! history and cancellation; the result is a checksummed [`mlops_core::ModelArtifact`] that carries
//! the fitted preprocessing pipeline. Jobs run in this process or, through a [`backend`], on Ray or
//! SageMaker, where this project's binary runs the job's [`spec`] as a [`worker`].

pub mod backend;
pub mod capability;
pub mod cluster;
pub mod error;
pub mod forest;
pub mod gbdt;
pub mod jobs;
pub mod linear;
pub mod matrix;
pub mod model;
pub mod neural;
pub mod params;
pub mod reduce;
pub mod runner;
pub mod spec;
pub mod supervised;
pub mod unsupervised;
pub mod worker;

pub use backend::Backend;
pub use capability::TrainingCapability;
pub use error::TrainError;
pub use jobs::JobManager;
pub use matrix::Matrix;
pub use model::TrainedModel;
