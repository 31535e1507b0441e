//! k-fold cross-validation: folds (stratified by class for a classifier, as scikit-learn's
//! `StratifiedKFold(shuffle=True)` does) and a fold-by-fold score that a tuning trial can stop
//! early when its running mean is already poor.

use mlops_core::metric_names::MetricName;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::control::FitControl;
use crate::error::MlError;
use crate::matrix::Matrix;
use crate::metrics::supervised_metric;
use crate::supervised::{Labels, Supervised};

/// Most folds a cross-validation may have.
pub const MAX_FOLDS: usize = 20;

/// The rows of `k` folds (each fold's held-out rows, ascending), shuffled by `seed`. For class
/// labels every class is dealt round-robin across the folds, so each fold holds each class in
/// about its share; a class with fewer rows than folds is missing from some folds.
pub fn folds(labels: &Labels, k: usize, seed: u64) -> Result<Vec<Vec<usize>>, MlError> {
    let n = labels.len();
    if !(2..=MAX_FOLDS).contains(&k) {
        return Err(MlError::invalid(format!(
            "cv_folds must be between 2 and {MAX_FOLDS}; got {k}"
        )));
    }
    if n < k {
        return Err(MlError::invalid(format!(
            "{k}-fold cross-validation needs at least {k} rows; the data has {n}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let groups: Vec<Vec<usize>> = match labels {
        Labels::Classes(y, classes) => {
            let mut by_class = vec![Vec::new(); *classes];
            for (row, c) in y.iter().enumerate() {
                by_class[*c as usize].push(row);
            }
            by_class
        }
        Labels::Values(_) => vec![(0..n).collect()],
    };
    let mut out = vec![Vec::new(); k];
    // Dealing continues across classes, so fold sizes differ by at most one row.
    let mut next = 0;
    for mut rows in groups {
        rows.shuffle(&mut rng);
        for row in rows {
            out[next % k].push(row);
            next += 1;
        }
    }
    for fold in &mut out {
        fold.sort_unstable();
    }
    Ok(out)
}

/// How a cross-validation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CvOutcome {
    /// Every fold was scored: the fold scores.
    Complete(Vec<f64>),
    /// `keep_going` said stop after these folds.
    Stopped(Vec<f64>),
    /// The control's stop flag was set.
    Cancelled,
}

/// Scores `algorithm` by cross-validation on `x`/`y` over `folds` with `metric`: for each fold, fit
/// on the other folds and score on it. After each fold `keep_going(folds_done, mean_so_far)` may
/// stop the run (a pruned trial).
pub fn cross_validate(
    algorithm: &Supervised,
    x: &Matrix,
    y: &Labels,
    folds: &[Vec<usize>],
    metric: &MetricName,
    control: &FitControl,
    mut keep_going: impl FnMut(usize, f64) -> bool,
) -> Result<CvOutcome, MlError> {
    let mut scores = Vec::with_capacity(folds.len());
    for (i, held_out) in folds.iter().enumerate() {
        let train: Vec<usize> = folds
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        let (train_x, train_y) = (x.select_rows(&train), y.select(&train));
        train_y.check_trainable("the target (in a cross-validation fold)")?;
        let Some((model, _)) = algorithm.fit(&train_x, &train_y, None, control)? else {
            return Ok(CvOutcome::Cancelled);
        };
        let (test_x, test_y) = (x.select_rows(held_out), y.select(held_out));
        let predicted = match &test_y {
            Labels::Classes(..) => model.predict_proba(&test_x)?,
            Labels::Values(_) => model.predict_values(&test_x)?,
        };
        scores.push(supervised_metric(metric, &test_y, &predicted)?);
        if control.is_cancelled() {
            return Ok(CvOutcome::Cancelled);
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        if i + 1 < folds.len() && !keep_going(i + 1, mean) {
            return Ok(CvOutcome::Stopped(scores));
        }
    }
    Ok(CvOutcome::Complete(scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_folds_cover_every_row_once_and_keep_class_shares() {
        // 60 rows of class 0, 30 of class 1.
        let y: Vec<u32> = (0..90).map(|i| u32::from(i % 3 == 0)).collect();
        let labels = Labels::Classes(y.clone(), 2);
        let f = folds(&labels, 3, 7).unwrap();
        let mut all: Vec<usize> = f.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..90).collect::<Vec<_>>());
        for fold in &f {
            assert_eq!(fold.len(), 30);
            assert_eq!(fold.iter().filter(|r| y[**r] == 1).count(), 10);
        }
        assert_eq!(f, folds(&labels, 3, 7).unwrap(), "seeded");
        assert_ne!(f, folds(&labels, 3, 8).unwrap());
    }

    #[test]
    fn bad_fold_counts_are_refused() {
        let labels = Labels::Values(vec![1.0, 2.0, 3.0]);
        let e = folds(&labels, 1, 0).unwrap_err().to_string();
        assert!(e.contains("between 2 and 20"), "{e}");
        let e = folds(&labels, 5, 0).unwrap_err().to_string();
        assert!(e.contains("at least 5 rows"), "{e}");
    }
}
