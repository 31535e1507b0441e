//! The model's own outputs on its training rows, added to the reference profile so monitoring can
//! tell prediction drift from input drift.

use mlops_data::ReferenceProfile;
use mlops_data::drift::{FeatureProfile, ValueCount};
use mlops_ml::{Matrix, Prediction, TrainedModel, argmax};

use crate::error::TrainError;

/// The name the prediction goes by in a profile.
const PREDICTION: &str = "prediction";

/// `profile` with the distribution of `model`'s predictions on `x`: predicted labels for a
/// classifier (named as in `classes`), values for a regressor.
pub fn with_predictions(
    mut profile: ReferenceProfile,
    model: &TrainedModel,
    x: &Matrix,
    classes: &[String],
) -> Result<ReferenceProfile, TrainError> {
    profile.prediction = match model.predict(x)? {
        Prediction::Probabilities(p) if !classes.is_empty() => {
            let mut counts = vec![0usize; classes.len()];
            for row in p.chunks(classes.len()) {
                counts[argmax(row)] += 1;
            }
            let labels = classes.iter().zip(counts).map(|(c, n)| (c.clone(), n));
            Some(categorical(x.rows, labels))
        }
        Prediction::Values(mut values) => {
            values.retain(|v| v.is_finite());
            values.sort_unstable_by(f64::total_cmp);
            Some(FeatureProfile::numeric(PREDICTION, x.rows, values))
        }
        _ => None,
    };
    Ok(profile)
}

/// `profile` with the distribution of the cluster each training row was given.
pub fn with_clusters(mut profile: ReferenceProfile, ids: &[i64]) -> ReferenceProfile {
    let mut counts = std::collections::BTreeMap::<i64, usize>::new();
    for id in ids {
        *counts.entry(*id).or_default() += 1;
    }
    let clusters = counts.into_iter().map(|(id, n)| (id.to_string(), n));
    profile.prediction = Some(categorical(ids.len(), clusters));
    profile
}

fn categorical(rows: usize, counts: impl Iterator<Item = (String, usize)>) -> FeatureProfile {
    let mut values: Vec<ValueCount> = counts
        .filter(|(_, n)| *n > 0)
        .map(|(value, count)| ValueCount { value, count })
        .collect();
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    FeatureProfile::categorical(PREDICTION, rows, 0, values)
}
