//! Seeded train/validation/test splits: shuffled, stratified by a label, or in time order.

use std::collections::BTreeMap;

use polars::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::DataError;

/// The share of rows for each part; they must add up to 1.
#[derive(Debug, Clone, Copy)]
pub struct Fractions {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
}

impl Fractions {
    pub fn validate(&self) -> Result<(), DataError> {
        let parts = [self.train, self.validation, self.test];
        if parts.iter().any(|f| !(0.0..=1.0).contains(f) || f.is_nan()) {
            return Err(DataError::invalid("fractions must each be between 0 and 1"));
        }
        if self.train <= 0.0 {
            return Err(DataError::invalid("train_fraction must be above 0"));
        }
        let sum: f64 = parts.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(DataError::invalid(format!(
                "train, validation and test fractions must add up to 1 (they add up to {sum})"
            )));
        }
        Ok(())
    }
}

/// Row indices for train, validation and test.
pub struct SplitIndices {
    pub train: Vec<IdxSize>,
    pub validation: Vec<IdxSize>,
    pub test: Vec<IdxSize>,
}

/// Splits `n` rows. With `strata`, each stratum is split in the same proportions (so class balance
/// holds in every part); with `shuffle` false, rows keep their order (time-ordered splits).
pub fn split_indices(
    n: usize,
    strata: Option<&[Option<String>]>,
    f: Fractions,
    seed: u64,
    shuffle: bool,
) -> SplitIndices {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut groups: BTreeMap<Option<&str>, Vec<IdxSize>> = BTreeMap::new();
    match strata {
        Some(labels) => {
            for (i, l) in labels.iter().enumerate() {
                groups.entry(l.as_deref()).or_default().push(i as IdxSize);
            }
        }
        None => {
            groups.insert(None, (0..n as IdxSize).collect());
        }
    }
    let mut out = SplitIndices {
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
    };
    for (_, mut rows) in groups {
        if shuffle {
            rows.shuffle(&mut rng);
        }
        let len = rows.len();
        let n_test = (len as f64 * f.test).round() as usize;
        let n_val = ((len as f64 * f.validation).round() as usize).min(len - n_test);
        let n_train = len - n_test - n_val;
        out.train.extend_from_slice(&rows[..n_train]);
        out.validation
            .extend_from_slice(&rows[n_train..n_train + n_val]);
        out.test.extend_from_slice(&rows[n_train + n_val..]);
    }
    for part in [&mut out.train, &mut out.validation, &mut out.test] {
        if shuffle {
            part.shuffle(&mut rng);
        } else {
            part.sort_unstable();
        }
    }
    out
}

/// Takes the given rows of a frame.
pub fn take_rows(df: &DataFrame, rows: Vec<IdxSize>) -> Result<DataFrame, DataError> {
    Ok(df.take(&IdxCa::from_vec("idx".into(), rows))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_class_balance_and_is_seeded() {
        let labels: Vec<Option<String>> = (0..1000)
            .map(|i| Some(if i % 10 < 3 { "a" } else { "b" }.to_string()))
            .collect();
        let f = Fractions {
            train: 0.6,
            validation: 0.2,
            test: 0.2,
        };
        let s = split_indices(1000, Some(&labels), f, 7, true);
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (600, 200, 200)
        );
        let share_a = |rows: &[IdxSize]| {
            rows.iter()
                .filter(|&&i| labels[i as usize].as_deref() == Some("a"))
                .count() as f64
                / rows.len() as f64
        };
        for part in [&s.train, &s.validation, &s.test] {
            assert!((share_a(part) - 0.3).abs() < 1e-9);
        }
        let mut all: Vec<IdxSize> = s
            .train
            .iter()
            .chain(&s.validation)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..1000).collect::<Vec<_>>(),
            "every row lands in exactly one part"
        );
        let again = split_indices(1000, Some(&labels), f, 7, true);
        assert_eq!(again.test, s.test);
        let other = split_indices(1000, Some(&labels), f, 8, true);
        assert_ne!(other.test, s.test);
    }

    #[test]
    fn unshuffled_split_keeps_time_order() {
        let f = Fractions {
            train: 0.5,
            validation: 0.25,
            test: 0.25,
        };
        let s = split_indices(8, None, f, 0, false);
        assert_eq!(s.train, vec![0, 1, 2, 3]);
        assert_eq!(s.validation, vec![4, 5]);
        assert_eq!(s.test, vec![6, 7]);
    }

    #[test]
    fn fractions_must_add_up() {
        assert!(
            Fractions {
                train: 0.5,
                validation: 0.1,
                test: 0.1
            }
            .validate()
            .is_err()
        );
        assert!(
            Fractions {
                train: 0.0,
                validation: 0.5,
                test: 0.5
            }
            .validate()
            .is_err()
        );
        assert!(
            Fractions {
                train: 0.8,
                validation: 0.0,
                test: 0.2
            }
            .validate()
            .is_ok()
        );
    }
}
