//! The networks of the trainers: multi-layer perceptrons whose parameters live in plain `Vec`s.
//!
//! Why not candle `Var`s throughout? RL steps the environment one observation at a time, and a
//! candle forward pass of a 64x64 network costs tens of microseconds of per-op overhead (candle
//! 0.11's CPU matmul alone re-reads /proc/cpuinfo for its thread count on every call) while the
//! arithmetic takes one or two; acting, evaluating and applying Adam are therefore plain Rust
//! loops over these vectors. Candle builds the differentiable loss of each minibatch: the
//! parameters are copied into fresh `Var`s, the loss is back-propagated, and the gradients are
//! read back. This also lets A3C's workers share one parameter set behind a mutex.

use candle_core::{Device, Tensor, Var, backprop::GradStore};
use rand::Rng;

use super::config::Activation;
use crate::error::NnError;

/// How to initialise a network's weights.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init {
    /// Orthogonal weights scaled by a gain, zero biases (Stable-Baselines3's actor-critic init).
    Orthogonal { hidden_gain: f64, output_gain: f64 },
    /// PyTorch's `nn.Linear` default: weights and biases uniform in ±1/sqrt(fan_in).
    Uniform,
}

/// A fully connected network: `sizes` = [inputs, hidden..., outputs].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mlp {
    sizes: Vec<usize>,
    activation: Activation,
    /// Per layer, the weight (outputs x inputs, row-major, as in `candle_nn::Linear`) then the bias.
    params: Vec<Vec<f32>>,
}

impl Mlp {
    pub(crate) fn new(
        sizes: Vec<usize>,
        activation: Activation,
        init: Init,
        rng: &mut impl Rng,
    ) -> Mlp {
        let layers = sizes.len() - 1;
        let mut params = Vec::with_capacity(2 * layers);
        for (l, pair) in sizes.windows(2).enumerate() {
            let (inputs, outputs) = (pair[0], pair[1]);
            match init {
                Init::Orthogonal {
                    hidden_gain,
                    output_gain,
                } => {
                    let gain = if l + 1 == layers {
                        output_gain
                    } else {
                        hidden_gain
                    };
                    params.push(orthogonal(outputs, inputs, gain, rng));
                    params.push(vec![0.0; outputs]);
                }
                Init::Uniform => {
                    let bound = 1.0 / (inputs as f32).sqrt();
                    let mut draw =
                        |n: usize| (0..n).map(|_| rng.random_range(-bound..=bound)).collect();
                    params.push(draw(outputs * inputs));
                    params.push(draw(outputs));
                }
            }
        }
        Mlp {
            sizes,
            activation,
            params,
        }
    }

    /// Rebuilds a network from its parameters, checking their sizes.
    pub(crate) fn from_params(
        sizes: Vec<usize>,
        activation: Activation,
        params: Vec<Vec<f32>>,
    ) -> Result<Mlp, NnError> {
        let net = Mlp {
            sizes,
            activation,
            params,
        };
        let expected: Vec<usize> = net.shapes().iter().map(|s| s.iter().product()).collect();
        let actual: Vec<usize> = net.params.iter().map(Vec::len).collect();
        if expected != actual {
            return Err(NnError::invalid(format!(
                "network parameters have sizes {actual:?} but layer sizes {:?} need {expected:?}",
                net.sizes
            )));
        }
        if !net.params.iter().flatten().all(|v| v.is_finite()) {
            return Err(NnError::invalid(
                "network parameters include NaN or infinite values",
            ));
        }
        Ok(net)
    }

    pub(crate) fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    pub(crate) fn activation(&self) -> Activation {
        self.activation
    }

    pub(crate) fn params(&self) -> &[Vec<f32>] {
        &self.params
    }

    pub(crate) fn params_mut(&mut self) -> &mut [Vec<f32>] {
        &mut self.params
    }

    /// Shape of each parameter, in `params` order.
    pub(crate) fn shapes(&self) -> Vec<Vec<usize>> {
        parameter_shapes(&self.sizes)
    }

    /// The network's output for one input.
    pub(crate) fn forward(&self, input: &[f32]) -> Vec<f32> {
        debug_assert_eq!(input.len(), self.sizes[0]);
        let layers = self.sizes.len() - 1;
        let mut h = input.to_vec();
        for (l, pair) in self.params.chunks_exact(2).enumerate() {
            let (weight, bias) = (&pair[0], &pair[1]);
            let mut out: Vec<f32> = weight
                .chunks_exact(h.len())
                .zip(bias)
                .map(|(row, b)| b + dot(row, &h))
                .collect();
            if l + 1 < layers {
                self.activation.apply(&mut out);
            }
            h = out;
        }
        h
    }

    /// The index of the largest output (the greedy action).
    pub(crate) fn argmax(&self, input: &[f32]) -> usize {
        argmax(&self.forward(input))
    }

    /// Fresh candle variables holding the parameters, to differentiate a loss against.
    pub(crate) fn vars(&self) -> Result<Vec<Var>, NnError> {
        self.params
            .iter()
            .zip(self.shapes())
            .map(|(p, shape)| Ok(Var::from_slice(p, shape, &Device::Cpu)?))
            .collect()
    }

    /// Constant candle tensors holding the parameters (for forward passes without gradients).
    pub(crate) fn tensors(&self) -> Result<Vec<Tensor>, NnError> {
        self.params
            .iter()
            .zip(self.shapes())
            .map(|(p, shape)| Ok(Tensor::from_slice(p, shape, &Device::Cpu)?))
            .collect()
    }

    /// The candle forward pass of a batch `x` (rows are inputs) through `params`
    /// (this network's `vars()` or `tensors()`).
    pub(crate) fn forward_tensor(&self, params: &[Tensor], x: &Tensor) -> Result<Tensor, NnError> {
        let layers = params.len() / 2;
        let mut h = x.clone();
        for (l, pair) in params.chunks_exact(2).enumerate() {
            h = h.matmul(&pair[0].t()?)?.broadcast_add(&pair[1])?;
            if l + 1 < layers {
                h = match self.activation {
                    Activation::Tanh => h.tanh()?,
                    Activation::Relu => h.relu()?,
                };
            }
        }
        Ok(h)
    }
}

/// Shape of each parameter of a network with these layer sizes: per layer, the weight
/// (outputs x inputs) then the bias.
pub(crate) fn parameter_shapes(sizes: &[usize]) -> Vec<Vec<usize>> {
    sizes
        .windows(2)
        .flat_map(|p| [vec![p[1], p[0]], vec![p[1]]])
        .collect()
}

impl Activation {
    fn apply(self, values: &mut [f32]) {
        match self {
            Activation::Tanh => values.iter_mut().for_each(|v| *v = v.tanh()),
            Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
}

/// Views variables as tensors (for [`Mlp::forward_tensor`]).
pub(crate) fn as_tensors(vars: &[Var]) -> Vec<Tensor> {
    vars.iter().map(|v| v.as_tensor().clone()).collect()
}

/// Reads the gradient of each variable (zeros for one the loss does not depend on).
pub(crate) fn gradients(vars: &[Var], grads: &GradStore) -> Result<Vec<Vec<f32>>, NnError> {
    vars.iter()
        .map(|v| match grads.get(v.as_tensor()) {
            Some(g) => Ok(g.flatten_all()?.to_vec1::<f32>()?),
            None => Ok(vec![0.0; v.elem_count()]),
        })
        .collect()
}

/// Scales the gradients down so that their global L2 norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`).
pub(crate) fn clip_grad_norm(grads: &mut [Vec<f32>], max_norm: f64) {
    let norm = grads
        .iter()
        .flatten()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        grads.iter_mut().flatten().for_each(|g| *g *= scale as f32);
    }
}

/// Adam (Kingma & Ba), with the learning rate given at each step so it can follow a schedule.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    eps: f64,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;

    /// Moments for parameters of these lengths.
    pub(crate) fn new(lengths: impl IntoIterator<Item = usize>, eps: f64) -> Adam {
        let zeros: Vec<Vec<f32>> = lengths.into_iter().map(|n| vec![0.0; n]).collect();
        Adam {
            eps,
            m: zeros.clone(),
            v: zeros,
            t: 0,
        }
    }

    pub(crate) fn step<'p>(
        &mut self,
        params: impl IntoIterator<Item = &'p mut Vec<f32>>,
        grads: &[Vec<f32>],
        lr: f64,
    ) {
        self.t += 1;
        // PyTorch's form, p -= lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections
        // folded into the step size and eps.
        let correction2 = (1.0 - Self::BETA2.powi(self.t)).sqrt();
        let step = (lr * correction2 / (1.0 - Self::BETA1.powi(self.t))) as f32;
        let eps = (self.eps * correction2) as f32;
        let (b1, b2) = (Self::BETA1 as f32, Self::BETA2 as f32);
        for (((p, g), m), v) in params
            .into_iter()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= step * *m / (v.sqrt() + eps);
            }
        }
    }
}

/// Dot product with eight independent accumulators, which the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// A random `rows x cols` matrix with orthonormal rows or columns (whichever are fewer),
/// times `gain`: Gram-Schmidt on Gaussian vectors, as PyTorch's `orthogonal_` does via QR.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut impl Rng) -> Vec<f32> {
    let (long, short) = (rows.max(cols), rows.min(cols));
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(short);
    while basis.len() < short {
        let mut v: Vec<f64> = (0..long).map(|_| normal(rng)).collect();
        for u in &basis {
            let projection: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= projection * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        // A draw (numerically) inside the span so far is retried; it essentially never happens.
        if norm > 1e-6 {
            v.iter_mut().for_each(|a| *a /= norm);
            basis.push(v);
        }
    }
    let mut w = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let value = if rows >= cols {
                basis[c][r]
            } else {
                basis[r][c]
            };
            w[r * cols + c] = (gain * value) as f32;
        }
    }
    w
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn plain_and_candle_forward_agree() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for activation in [Activation::Tanh, Activation::Relu] {
            let net = Mlp::new(vec![5, 16, 3], activation, Init::Uniform, &mut rng);
            let input: Vec<f32> = (0..10).map(|i| (i as f32 * 0.37).sin()).collect();
            let x = Tensor::from_slice(&input, (2, 5), &Device::Cpu).unwrap();
            let batch = net
                .forward_tensor(&net.tensors().unwrap(), &x)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for (row, expected) in input.chunks(5).zip(batch) {
                for (a, b) in net.forward(row).iter().zip(expected) {
                    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn orthogonal_rows_or_columns_are_orthonormal() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (rows, cols) in [(8, 3), (3, 8), (5, 5)] {
            let w = orthogonal(rows, cols, 1.0, &mut rng);
            let (n, get): (usize, Box<dyn Fn(usize, usize) -> f32>) = if rows >= cols {
                (cols, Box::new(|i, k| w[k * cols + i]))
            } else {
                (rows, Box::new(|i, k| w[i * cols + k]))
            };
            for i in 0..n {
                for j in 0..n {
                    let d: f32 = (0..rows.max(cols)).map(|k| get(i, k) * get(j, k)).sum();
                    let expected = if i == j { 1.0 } else { 0.0 };
                    assert!((d - expected).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut params = vec![vec![3.0f32, -2.0]];
        let mut adam = Adam::new([2], 1e-8);
        for _ in 0..2000 {
            let grads = vec![params[0].iter().map(|p| 2.0 * p).collect::<Vec<f32>>()];
            adam.step(params.iter_mut(), &grads, 0.01);
        }
        assert!(params[0].iter().all(|p| p.abs() < 1e-2), "{params:?}");
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let mut grads = vec![vec![3.0f32], vec![4.0]];
        clip_grad_norm(&mut grads, 1.0);
        assert!((grads[0][0] - 0.6).abs() < 1e-4 && (grads[1][0] - 0.8).abs() < 1e-4);
        let mut small = vec![vec![0.1f32]];
        clip_grad_norm(&mut small, 1.0);
        assert_eq!(small[0][0], 0.1);
    }
}
