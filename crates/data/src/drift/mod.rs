//! Data drift: a reference profile of the rows a model learned from, and the comparison of new
//! data (a table or the prediction log) with it — PSI, Kolmogorov–Smirnov, chi-square and
//! Jensen–Shannon per feature, with verdicts from documented thresholds.

mod compare;
mod reference;
mod stats;

pub use crate::profile::ValueCount;
pub use compare::{
    Band, BinShare, DriftComparison, DriftThresholds, Extras, FeatureDrift, Verdict, compare,
    compare_feature,
};
pub use reference::{Distribution, FeatureProfile, PROFILE_FILE, ReferenceProfile};
pub use stats::{chi_square, js_distance, kolmogorov_sf, ks_p_value, ks_statistic, psi};
