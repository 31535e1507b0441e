//! Seeded initialisation and safetensors (de)serialisation of a [`VarMap`].

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::NnError;

/// Overwrites every variable with PyTorch's `nn.Linear` default, U(-1/√fan_in, 1/√fan_in), drawn
/// from `seed`. Candle's own CPU initialisers draw from an unseedable thread RNG, so a seed alone
/// would not make training reproducible. A bias `<layer>.bias` uses the fan-in of `<layer>.weight`.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<(), NnError> {
    let data = varmap.data().lock().map_err(|_| poisoned())?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let fan_in = match name.strip_suffix(".bias") {
            Some(layer) => data
                .get(&format!("{layer}.weight"))
                .map(|w| w.dims().last().copied().unwrap_or(1))
                .unwrap_or(1),
            None => var.dims().last().copied().unwrap_or(1),
        };
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..=bound))
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu)?)?;
    }
    Ok(())
}

pub(crate) fn poisoned() -> NnError {
    NnError::Failed("the model's weights were left inconsistent by a failed thread".into())
}

/// The variables as safetensors bytes (names sorted, so equal weights give equal bytes).
pub fn to_safetensors(varmap: &VarMap) -> Result<Vec<u8>, NnError> {
    let data = varmap.data().lock().map_err(|_| poisoned())?;
    serialize(
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect(),
    )
}

/// Named tensors as safetensors bytes, in memory (candle itself only writes files).
pub(crate) fn serialize(mut tensors: Vec<(String, Tensor)>) -> Result<Vec<u8>, NnError> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    safetensors::tensor::serialize(tensors, None)
        .map_err(|e| NnError::Failed(format!("could not encode the weights: {e}")))
}

/// A variable builder over saved weights, refusing bytes that are not safetensors.
pub fn from_safetensors(bytes: &[u8]) -> Result<VarBuilder<'static>, NnError> {
    // Parse once up front so malformed input is reported as such, not as a missing tensor.
    safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| NnError::invalid(format!("the weights are not valid safetensors: {e}")))?;
    VarBuilder::from_buffered_safetensors(bytes.to_vec(), DType::F32, &Device::Cpu)
        .map_err(|e| NnError::invalid(format!("the weights cannot be read: {e}")))
}

/// A row-major `rows × cols` f32 tensor.
pub fn matrix(values: &[f32], rows: usize, cols: usize) -> Result<Tensor, NnError> {
    Ok(Tensor::from_slice(values, (rows, cols), &Device::Cpu)?)
}

/// A copy of every variable (the best epoch's weights, for early stopping).
pub(crate) fn snapshot(varmap: &VarMap) -> Result<Vec<(String, Tensor)>, NnError> {
    let data = varmap.data().lock().map_err(|_| poisoned())?;
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect()
}

/// Puts a [`snapshot`] back.
pub(crate) fn restore(varmap: &VarMap, saved: &[(String, Tensor)]) -> Result<(), NnError> {
    let data = varmap.data().lock().map_err(|_| poisoned())?;
    for (k, t) in saved {
        if let Some(v) = data.get(k) {
            v.set(t)?;
        }
    }
    Ok(())
}
