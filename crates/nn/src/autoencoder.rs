//! The autoencoder: an [`Mlp`] trained to reconstruct its input through a narrow middle layer.
//! The middle layer's activations are the latent code (clustered by the caller), and each row's
//! reconstruction error is its anomaly score: rows unlike the training data reconstruct badly.

use candle_core::Module;

use crate::error::NnError;
use crate::mlp::{Mlp, Task};
use crate::weights::matrix;

/// The hidden layers of an autoencoder: the encoder, the latent layer, the encoder mirrored.
pub fn layers(encoder: &[usize], latent: usize) -> Vec<usize> {
    let mut all = encoder.to_vec();
    all.push(latent);
    all.extend(encoder.iter().rev());
    all
}

impl Mlp {
    fn check_autoencoder(&self, x: &[f32], rows: usize) -> Result<(), NnError> {
        if self.spec().task != Task::Reconstruction {
            return Err(NnError::invalid("this network is not an autoencoder"));
        }
        if x.len() != rows * self.spec().inputs {
            return Err(NnError::invalid(format!(
                "the autoencoder expects {} features per row",
                self.spec().inputs
            )));
        }
        Ok(())
    }

    /// Size of the latent code.
    pub fn latent_size(&self) -> usize {
        let hidden = &self.spec().hidden_layers;
        hidden[hidden.len() / 2]
    }

    /// The latent code of each row (row-major `rows × latent_size`).
    pub fn encode(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, NnError> {
        self.check_autoencoder(x, rows)?;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let middle = self.spec().hidden_layers.len() / 2;
        let mut h = matrix(x, rows, self.spec().inputs)?;
        for layer in &self.layers()[..=middle] {
            h = self.spec().activation.apply(&layer.forward(&h)?)?;
        }
        Ok(h.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Mean squared reconstruction error of each row.
    pub fn reconstruction_errors(&self, x: &[f32], rows: usize) -> Result<Vec<f64>, NnError> {
        self.check_autoencoder(x, rows)?;
        let cols = self.spec().inputs;
        let rebuilt = self.predict(x, rows)?;
        Ok((0..rows)
            .map(|r| {
                let span = r * cols..(r + 1) * cols;
                x[span.clone()]
                    .iter()
                    .zip(&rebuilt[span])
                    .map(|(a, b)| (f64::from(*a) - b).powi(2))
                    .sum::<f64>()
                    / cols as f64
            })
            .collect())
    }
}
