//! Deterministic sample data, so the demo and the tests need no download.
//!
//! `classification`: two classes from Gaussian clusters on four informative features, two redundant
//! and two noise features, a categorical column that leans with the class, an identifier column,
//! some missing values and 2% flipped labels. `regression`: a smooth non-linear function of six
//! features plus noise. `clustering`: four Gaussian blobs in five dimensions.

use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Which sample data set to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticKind {
    Classification,
    Regression,
    Clustering,
}

impl std::str::FromStr for SyntheticKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classification" => Ok(Self::Classification),
            "regression" => Ok(Self::Regression),
            "clustering" => Ok(Self::Clustering),
            other => Err(format!(
                "unknown data set kind `{other}` (classification, regression, clustering)"
            )),
        }
    }
}

struct Gaussian(ChaCha8Rng);

impl Gaussian {
    /// A standard normal draw (Box–Muller).
    fn next(&mut self) -> f64 {
        let u1: f64 = self.0.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.0.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn uniform(&mut self) -> f64 {
        self.0.random()
    }
}

/// Makes a data set of `rows` rows; the same seed always gives the same data.
pub fn generate(kind: SyntheticKind, rows: usize, seed: u64) -> Result<DataFrame, DataError> {
    if rows < 10 {
        return Err(DataError::invalid("ask for at least 10 rows"));
    }
    let mut g = Gaussian(ChaCha8Rng::seed_from_u64(seed));
    match kind {
        SyntheticKind::Classification => classification(&mut g, rows),
        SyntheticKind::Regression => regression(&mut g, rows),
        SyntheticKind::Clustering => clustering(&mut g, rows),
    }
}

fn classification(g: &mut Gaussian, rows: usize) -> Result<DataFrame, DataError> {
    const INFORMATIVE: usize = 4;
    let centroids: [[f64; INFORMATIVE]; 2] = [[-1.0, 1.0, -1.0, 0.5], [1.0, -0.5, 1.0, -1.0]];
    let mut cols: Vec<Vec<Option<f64>>> = (0..8).map(|_| Vec::with_capacity(rows)).collect();
    let (mut segment, mut ids, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rows {
        let class = usize::from(g.uniform() < 0.4);
        let x: Vec<f64> = (0..INFORMATIVE)
            .map(|j| centroids[class][j] + g.next())
            .collect();
        let features = [
            x[0],
            x[1],
            x[2],
            x[3],
            0.6 * x[0] - 0.4 * x[2] + 0.1 * g.next(),
            0.5 * x[1] + 0.5 * x[3] + 0.1 * g.next(),
            g.next(),
            3.0 * g.uniform(),
        ];
        for (j, v) in features.into_iter().enumerate() {
            let missing = j == 1 && g.uniform() < 0.03;
            cols[j].push((!missing).then_some(v));
        }
        let lean = if class == 1 { 0.6 } else { 0.2 };
        let s = if g.uniform() < 0.02 {
            None
        } else if g.uniform() < lean {
            Some("premium")
        } else if g.uniform() < 0.5 {
            Some("standard")
        } else {
            Some("basic")
        };
        segment.push(s);
        ids.push(format!("c{i:07}"));
        let flipped = g.uniform() < 0.02;
        labels.push(if flipped {
            1 - class as i64
        } else {
            class as i64
        });
    }
    let mut columns: Vec<Column> = vec![Column::new("customer_id".into(), ids)];
    for (j, c) in cols.into_iter().enumerate() {
        columns.push(Column::new(format!("f{j}").into(), c));
    }
    columns.push(Column::new("segment".into(), segment));
    columns.push(Column::new("label".into(), labels));
    Ok(DataFrame::new_infer_height(columns)?)
}

fn regression(g: &mut Gaussian, rows: usize) -> Result<DataFrame, DataError> {
    let mut cols: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(rows)).collect();
    let mut region = Vec::with_capacity(rows);
    let mut target = Vec::with_capacity(rows);
    for _ in 0..rows {
        let x: Vec<f64> = (0..6).map(|_| 4.0 * g.uniform() - 2.0).collect();
        let r = ["north", "south", "east"][(g.uniform() * 3.0) as usize % 3];
        let offset = match r {
            "north" => 1.5,
            "south" => -1.0,
            _ => 0.0,
        };
        let y = 3.0 * x[0] - 2.0 * x[1] + x[2] * x[3] + 2.0 * x[4].sin() + offset + 0.3 * g.next();
        for (j, v) in x.into_iter().enumerate() {
            cols[j].push(v);
        }
        region.push(r);
        target.push(y);
    }
    let mut columns: Vec<Column> = cols
        .into_iter()
        .enumerate()
        .map(|(j, c)| Column::new(format!("x{j}").into(), c))
        .collect();
    columns.push(Column::new("region".into(), region));
    columns.push(Column::new("target".into(), target));
    Ok(DataFrame::new_infer_height(columns)?)
}

fn clustering(g: &mut Gaussian, rows: usize) -> Result<DataFrame, DataError> {
    const DIMS: usize = 5;
    let centers: Vec<[f64; DIMS]> = (0..4)
        .map(|_| std::array::from_fn(|_| 20.0 * g.uniform() - 10.0))
        .collect();
    let mut cols: Vec<Vec<f64>> = (0..DIMS).map(|_| Vec::with_capacity(rows)).collect();
    for i in 0..rows {
        let c = &centers[i % centers.len()];
        for (j, col) in cols.iter_mut().enumerate() {
            col.push(c[j] + g.next());
        }
    }
    let columns: Vec<Column> = cols
        .into_iter()
        .enumerate()
        .map(|(j, c)| Column::new(format!("x{j}").into(), c))
        .collect();
    Ok(DataFrame::new_infer_height(columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_expected_shape() {
        let a = generate(SyntheticKind::Classification, 500, 3).unwrap();
        let b = generate(SyntheticKind::Classification, 500, 3).unwrap();
        assert!(a.equals_missing(&b));
        assert_eq!(a.shape(), (500, 11));
        assert!(a.column("f1").unwrap().null_count() > 0);
        let c = generate(SyntheticKind::Classification, 500, 4).unwrap();
        assert!(!a.equals_missing(&c));
        assert_eq!(
            generate(SyntheticKind::Regression, 100, 1).unwrap().shape(),
            (100, 8)
        );
        assert_eq!(
            generate(SyntheticKind::Clustering, 100, 1).unwrap().shape(),
            (100, 5)
        );
    }
}
