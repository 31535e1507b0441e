//! Hyperparameter search: the space a tuning study searches, the samplers that propose each
//! trial's parameters (TPE, random, grid), the pruners that stop hopeless trials early, and which
//! parameters mattered afterwards.
//!
//! Everything here is a pure function of its inputs: a sampler's proposal depends only on the
//! space, the finished trials, the study's seed and the trial's number, so a study resumed after a
//! crash goes on drawing from the same sequence (a trial the crash interrupted is skipped, not
//! redrawn), and two sequential runs of a study with the same seed are the same study. The tuning capability owns the loop, storage and concurrency.
//!
//! The TPE sampler follows Optuna 5.1's default `TPESampler` (multivariate; the estimator, its
//! bandwidths, weights and priors, the split into good and bad trials), so results are
//! comparable with Optuna's: the estimator's unit tests check it against Optuna's numbers, and
//! `crates/ml/tests/search.rs` holds whole studies to Optuna's on the Hartmann-6 benchmark.

mod dim;
mod importance;
mod normal;
mod parse;
mod parzen;
mod prune;
mod sampler;
mod space;
mod tpe;

pub use importance::parameter_importance;
pub use prune::{PrunerKind, should_prune};
pub use sampler::{Observation, SamplerKind, grid_size, sample};
pub use space::{Distribution, SearchError, SearchSpace};
