//! The neural models as this server stores and runs them (the networks themselves are in
//! `mlops-nn`): the MLP classifier/regressor, the autoencoder with k-means on its latent codes, and
//! reinforcement-learning policies. Each is saved as a JSON description plus safetensors weights.

use bytes::Bytes;
use mlops_nn::mlp::Mlp;
use mlops_nn::rl::Policy;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::KMeans;
use crate::error::MlError;
use crate::matrix::Matrix;
use crate::model::encode;

/// The weights blob of every neural model.
pub const WEIGHTS_BLOB: &str = "weights.safetensors";

/// A column-major matrix as the row-major f32 rows the networks take.
pub fn row_major(x: &Matrix) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.rows * x.cols);
    for r in 0..x.rows {
        out.extend((0..x.cols).map(|c| x.get(r, c) as f32));
    }
    out
}

/// Row-major f32 rows as a column-major matrix.
pub fn from_row_major(values: &[f32], rows: usize, cols: usize) -> Matrix {
    let mut data = vec![0.0; rows * cols];
    for (i, v) in values.iter().enumerate() {
        data[(i % cols) * rows + i / cols] = f64::from(*v);
    }
    Matrix { rows, cols, data }
}

/// An autoencoder with the k-means model of its latent codes and its anomaly threshold.
pub struct Autoencoder {
    pub network: Mlp,
    pub kmeans: KMeans,
    /// Rows whose reconstruction error is above this are anomalies.
    pub threshold: f64,
}

/// The autoencoder's `model.json`: its network's description, the k-means model, the threshold.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoencoderDescription {
    network: Value,
    kmeans: KMeans,
    threshold: f64,
}

impl Autoencoder {
    /// The k-means cluster of each row's latent code.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<i64>, MlError> {
        let codes = self.network.encode(&row_major(x), x.rows)?;
        let latent = from_row_major(&codes, x.rows, self.network.latent_size());
        Ok(self.kmeans.predict(&latent))
    }
}

/// The description (JSON) and weights of each neural model kind.
pub fn mlp_parts(net: &Mlp) -> Result<(Bytes, Bytes), MlError> {
    let (spec, weights) = net.to_parts()?;
    Ok((encode(&spec)?, Bytes::from(weights)))
}

pub fn mlp_from_parts(desc: Value, weights: &[u8]) -> Result<Mlp, MlError> {
    Ok(Mlp::from_parts(&desc, weights)?)
}

pub fn autoencoder_parts(a: &Autoencoder) -> Result<(Bytes, Bytes), MlError> {
    let (network, weights) = a.network.to_parts()?;
    let desc = AutoencoderDescription {
        network,
        kmeans: a.kmeans.clone(),
        threshold: a.threshold,
    };
    Ok((encode(&desc)?, Bytes::from(weights)))
}

pub(crate) fn autoencoder_from_parts(
    d: AutoencoderDescription,
    weights: &[u8],
) -> Result<Autoencoder, MlError> {
    let network = Mlp::from_parts(&d.network, weights)?;
    if d.kmeans.n_features != network.latent_size() {
        return Err(MlError::invalid(
            "the autoencoder's k-means model does not fit its latent size",
        ));
    }
    Ok(Autoencoder {
        network,
        kmeans: d.kmeans,
        threshold: d.threshold,
    })
}

pub fn policy_parts(p: &Policy) -> Result<(Bytes, Bytes), MlError> {
    let (desc, weights) = p.to_parts()?;
    Ok((encode(&desc)?, Bytes::from(weights)))
}

pub fn policy_from_parts(desc: Value, weights: &[u8]) -> Result<Policy, MlError> {
    Ok(Policy::from_parts(&desc, weights)?)
}

/// The transitions of a replay table written by `preprocess_reinforcement` (columns `s_0…`,
/// `action`, `reward`, `ns_0…`, `done`).
pub fn transitions(
    df: &polars::prelude::DataFrame,
) -> Result<Vec<mlops_nn::rl::Transition>, MlError> {
    let width = df
        .get_column_names()
        .iter()
        .filter(|c| c.starts_with("s_"))
        .count();
    if width == 0 {
        return Err(MlError::invalid(
            "the offline data is not a replay table (no `s_0` column); prepare it with preprocess_reinforcement",
        ));
    }
    let names =
        |prefix: &str| -> Vec<String> { (0..width).map(|i| format!("{prefix}{i}")).collect() };
    let states = Matrix::from_frame(df, &names("s_"))?;
    let next = Matrix::from_frame(df, &names("ns_"))?;
    let scalars = Matrix::from_frame(df, &["action".into(), "reward".into()])?;
    let done = df
        .column("done")
        .map_err(|_| MlError::invalid("the replay table has no `done` column"))?
        .as_materialized_series()
        .cast(&polars::prelude::DataType::Boolean)?;
    let done = done.bool()?;
    let row = |m: &Matrix, r: usize| (0..width).map(|c| m.get(r, c) as f32).collect();
    (0..df.height())
        .map(|r| {
            let action = scalars.get(r, 0);
            if action < 0.0 || action.fract() != 0.0 {
                return Err(MlError::invalid(format!(
                    "replay row {r}: the action {action} is not a whole number from 0"
                )));
            }
            Ok(mlops_nn::rl::Transition {
                state: row(&states, r),
                action: action as usize,
                reward: scalars.get(r, 1) as f32,
                next_state: row(&next, r),
                done: done.get(r).unwrap_or(false),
            })
        })
        .collect()
}
