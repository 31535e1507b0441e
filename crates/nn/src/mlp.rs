//! Multi-layer perceptrons for classification (softmax, cross-entropy), regression (squared
//! error on a standardised target) and reconstruction of their own input (the autoencoder, see
//! [`crate::autoencoder`]), trained by minibatch Adam or SGD with optional dropout, L2 weight decay
//! and early stopping on a validation split (the best epoch's weights are kept).

use candle_core::{D, Device, Tensor};
use candle_nn::{AdamW, Linear, Module, Optimizer, ParamsAdamW, SGD, VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::NnError;
use crate::hooks::Hooks;
use crate::weights::{
    from_safetensors, matrix, poisoned, restore, seeded_init, snapshot, to_safetensors,
};

/// The non-linearity between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Tanh,
    #[serde(alias = "logistic")]
    Sigmoid,
    Gelu,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(x),
            Activation::Gelu => x.gelu_erf(),
        }
    }
}

/// How the weights are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    Adam,
    /// Plain minibatch gradient descent (candle's SGD has no momentum).
    Sgd,
}

/// Training settings (validated by [`MlpParams::validate`]).
#[derive(Debug, Clone, Serialize)]
pub struct MlpParams {
    pub hidden_layers: Vec<usize>,
    pub activation: Activation,
    /// Share of hidden units dropped in each training step, in [0, 1).
    pub dropout: f64,
    pub optimizer: Solver,
    pub learning_rate: f64,
    /// L2 penalty on the weights (scikit-learn's `alpha`).
    pub weight_decay: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Stop when the validation loss has not improved for `patience` epochs.
    pub early_stopping: bool,
    pub patience: usize,
    /// Share of the training rows held out for validation when no validation data is given.
    pub validation_fraction: f64,
    pub seed: u64,
}

impl MlpParams {
    pub fn validate(&self) -> Result<(), NnError> {
        if self.hidden_layers.is_empty() || self.hidden_layers.len() > 16 {
            return Err(NnError::invalid(
                "hidden_layers must list 1 to 16 layer sizes, e.g. [64, 32]",
            ));
        }
        if let Some(i) = self.hidden_layers.iter().position(|&n| n == 0 || n > 4096) {
            return Err(NnError::invalid(format!(
                "hidden layer {} has {} units; each layer needs 1 to 4096",
                i + 1,
                self.hidden_layers[i]
            )));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 10.0) {
            return Err(NnError::invalid(format!(
                "learning_rate must be greater than 0 and at most 10 (got {})",
                self.learning_rate
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(NnError::invalid(format!(
                "dropout must be at least 0 and below 1 (got {})",
                self.dropout
            )));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(NnError::invalid(format!(
                "weight_decay must be 0 or more (got {})",
                self.weight_decay
            )));
        }
        if self.batch_size == 0 || self.epochs == 0 || self.epochs > 100_000 {
            return Err(NnError::invalid(
                "batch_size must be at least 1 and epochs between 1 and 100000",
            ));
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(NnError::invalid(format!(
                "validation_fraction must be between 0 and 1 (got {})",
                self.validation_fraction
            )));
        }
        if self.patience == 0 {
            return Err(NnError::invalid("patience must be at least 1 epoch"));
        }
        Ok(())
    }
}

/// What the network learns to predict.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    Classes {
        y: &'a [u32],
        n_classes: usize,
    },
    Values(&'a [f64]),
    /// The features themselves (an autoencoder).
    Inputs,
}

/// What a network was trained for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
    Reconstruction,
}

/// Rows of features (row-major `rows × cols`) with their targets.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub y: Targets<'a>,
}

/// The architecture, saved as JSON beside the weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    pub inputs: usize,
    pub hidden_layers: Vec<usize>,
    /// Classes for a classifier, 1 for a regressor, the inputs for an autoencoder.
    pub outputs: usize,
    pub activation: Activation,
    pub task: Task,
    /// The regression target is learnt standardised; predictions are mapped back.
    pub target_mean: f64,
    pub target_std: f64,
}

/// One epoch of training.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    /// Accuracy (classifier) or R² (regressor; per feature, pooled, for an autoencoder) on the
    /// validation rows.
    pub validation_score: f64,
}

/// One optimisation step on a loss (Adam or SGD behind one type).
type OptimizerStep = Box<dyn FnMut(&Tensor) -> candle_core::Result<()>>;

/// The epoch with the lowest validation loss so far, with a copy of its weights.
struct BestEpoch {
    loss: f64,
    epoch: usize,
    weights: Vec<(String, Tensor)>,
}

/// A fitted network.
pub struct Mlp {
    spec: MlpSpec,
    layers: Vec<Linear>,
    // Kept so the trained weights can be saved; absent for a network loaded from bytes.
    varmap: Option<VarMap>,
    weights: Option<Vec<u8>>,
}

/// A finished fit.
pub struct MlpFit {
    pub model: Mlp,
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    pub stopped_early: bool,
}

fn build_layers(spec: &MlpSpec, vb: &VarBuilder) -> candle_core::Result<Vec<Linear>> {
    let mut sizes = vec![spec.inputs];
    sizes.extend(&spec.hidden_layers);
    sizes.push(spec.outputs);
    sizes
        .windows(2)
        .enumerate()
        .map(|(i, w)| candle_nn::linear(w[0], w[1], vb.pp(format!("layer{i}"))))
        .collect()
}

/// A dropout mask drawn from our seeded generator (candle's own dropout uses an unseeded one).
fn dropout(x: &Tensor, p: f64, rng: &mut ChaCha8Rng) -> candle_core::Result<Tensor> {
    let keep = 1.0 / (1.0 - p) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

fn check_data(d: &Data, what: &str) -> Result<(), NnError> {
    if d.rows == 0 || d.x.len() != d.rows * d.cols {
        return Err(NnError::invalid(format!(
            "the {what} data must hold at least one row of {} features",
            d.cols
        )));
    }
    if d.x.iter().any(|v| !v.is_finite()) {
        return Err(NnError::invalid(format!(
            "the {what} features hold missing or non-finite values; preprocess them first"
        )));
    }
    match d.y {
        Targets::Classes { y, n_classes } => {
            if y.len() != d.rows || y.iter().any(|&c| c as usize >= n_classes) {
                return Err(NnError::invalid(format!(
                    "the {what} labels must be one class index below {n_classes} per row"
                )));
            }
        }
        Targets::Values(y) => {
            if y.len() != d.rows || y.iter().any(|v| !v.is_finite()) {
                return Err(NnError::invalid(format!(
                    "the {what} targets must be one finite number per row"
                )));
            }
        }
        Targets::Inputs => {}
    }
    Ok(())
}

/// Rows `idx` of `d` as owned features and targets.
struct Owned {
    x: Vec<f32>,
    classes: Vec<u32>,
    values: Vec<f64>,
    rows: usize,
}

impl Owned {
    fn take(d: &Data, idx: &[usize]) -> Self {
        let mut x = Vec::with_capacity(idx.len() * d.cols);
        for &r in idx {
            x.extend_from_slice(&d.x[r * d.cols..(r + 1) * d.cols]);
        }
        let (classes, values) = match d.y {
            Targets::Classes { y, .. } => (idx.iter().map(|&r| y[r]).collect(), Vec::new()),
            Targets::Values(y) => (Vec::new(), idx.iter().map(|&r| y[r]).collect()),
            Targets::Inputs => (Vec::new(), Vec::new()),
        };
        Owned {
            x,
            classes,
            values,
            rows: idx.len(),
        }
    }

    fn all(d: &Data) -> Self {
        Self::take(d, &(0..d.rows).collect::<Vec<_>>())
    }
}

impl Mlp {
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    pub(crate) fn layers(&self) -> &[Linear] {
        &self.layers
    }

    fn forward(
        &self,
        x: &Tensor,
        train_dropout: Option<(f64, &mut ChaCha8Rng)>,
    ) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        let mut train_dropout = train_dropout;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i < last {
                h = self.spec.activation.apply(&h)?;
                if let Some((p, rng)) = train_dropout.as_mut()
                    && *p > 0.0
                {
                    h = dropout(&h, *p, rng)?;
                }
            }
        }
        Ok(h)
    }

    /// The loss of outputs `out` for inputs `x` in training units.
    fn loss(
        &self,
        out: &Tensor,
        x: &Tensor,
        classes: &[u32],
        scaled: &[f32],
    ) -> candle_core::Result<Tensor> {
        match self.spec.task {
            Task::Classification => {
                let y = Tensor::from_slice(classes, classes.len(), &Device::Cpu)?;
                candle_nn::loss::cross_entropy(out, &y)
            }
            Task::Regression => {
                let y = Tensor::from_slice(scaled, (scaled.len(), 1), &Device::Cpu)?;
                candle_nn::loss::mse(out, &y)
            }
            Task::Reconstruction => candle_nn::loss::mse(out, x),
        }
    }

    fn scale(&self, values: &[f64]) -> Vec<f32> {
        values
            .iter()
            .map(|v| ((v - self.spec.target_mean) / self.spec.target_std) as f32)
            .collect()
    }

    /// Loss and score (accuracy or R²) on `o`.
    fn assess(&self, o: &Owned) -> Result<(f64, f64), NnError> {
        let x = matrix(&o.x, o.rows, self.spec.inputs)?;
        let out = self.forward(&x, None)?;
        let loss = self
            .loss(&out, &x, &o.classes, &self.scale(&o.values))?
            .to_scalar::<f32>()? as f64;
        let predicted = self.decode(&out)?;
        let score = match self.spec.task {
            Task::Classification => {
                let k = self.spec.outputs;
                let correct = o
                    .classes
                    .iter()
                    .enumerate()
                    .filter(|(r, c)| argmax(&predicted[r * k..(r + 1) * k]) == **c as usize)
                    .count();
                correct as f64 / o.rows as f64
            }
            Task::Regression => r2(&o.values, &predicted),
            Task::Reconstruction => {
                let inputs: Vec<f64> = o.x.iter().map(|&v| f64::from(v)).collect();
                r2(&inputs, &predicted)
            }
        };
        Ok((loss, score))
    }

    /// Network outputs as probabilities (row-major `rows × classes`), target values or
    /// reconstructed features.
    fn decode(&self, out: &Tensor) -> Result<Vec<f64>, NnError> {
        let out = match self.spec.task {
            Task::Classification => candle_nn::ops::softmax(out, D::Minus1)?,
            Task::Regression | Task::Reconstruction => out.clone(),
        };
        let (mean, std) = (self.spec.target_mean, self.spec.target_std);
        Ok(out
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| f64::from(v) * std + mean)
            .collect())
    }

    /// Class probabilities (classifier, `rows × classes`), values (regressor) or reconstructed
    /// features (autoencoder, `rows × features`) for row-major `x`.
    pub fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f64>, NnError> {
        if x.len() != rows * self.spec.inputs {
            return Err(NnError::invalid(format!(
                "the network expects {} features per row",
                self.spec.inputs
            )));
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        // Bounded chunks keep the activations' memory small on large inputs.
        let mut out = Vec::with_capacity(rows * self.spec.outputs);
        for start in (0..rows).step_by(8192) {
            let n = (rows - start).min(8192);
            let chunk = &x[start * self.spec.inputs..(start + n) * self.spec.inputs];
            let t = self.forward(&matrix(chunk, n, self.spec.inputs)?, None)?;
            out.extend(self.decode(&t)?);
        }
        Ok(out)
    }

    /// Fits on `train`; `validation` (or, when absent, a held-out share of `train`) is scored
    /// after every epoch and drives early stopping.
    pub fn fit(
        train: &Data,
        validation: Option<&Data>,
        params: &MlpParams,
        hooks: &Hooks,
    ) -> Result<MlpFit, NnError> {
        params.validate()?;
        check_data(train, "training")?;
        if let Some(v) = validation {
            check_data(v, "validation")?;
            if v.cols != train.cols {
                return Err(NnError::invalid(
                    "the validation data has a different number of features from the training data",
                ));
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let (fit_rows, held_out) = match validation {
            Some(v) => ((0..train.rows).collect::<Vec<_>>(), Owned::all(v)),
            None => {
                let mut idx: Vec<usize> = (0..train.rows).collect();
                idx.shuffle(&mut rng);
                let n_val = ((train.rows as f64 * params.validation_fraction).round() as usize)
                    .clamp(1, train.rows.saturating_sub(1).max(1));
                if train.rows < 2 {
                    return Err(NnError::invalid(
                        "a neural network needs at least 2 training rows (one is held out for validation)",
                    ));
                }
                let val = Owned::take(train, &idx[..n_val]);
                (idx[n_val..].to_vec(), val)
            }
        };
        let fitted = Owned::take(train, &fit_rows);
        let (task, outputs) = match train.y {
            Targets::Classes { n_classes, .. } => (Task::Classification, n_classes),
            Targets::Values(_) => (Task::Regression, 1),
            Targets::Inputs => (Task::Reconstruction, train.cols),
        };
        let (target_mean, target_std) = if task == Task::Regression {
            let n = fitted.values.len() as f64;
            let mean = fitted.values.iter().sum::<f64>() / n;
            let var = fitted
                .values
                .iter()
                .map(|v| (v - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
        } else {
            (0.0, 1.0)
        };
        let spec = MlpSpec {
            inputs: train.cols,
            hidden_layers: params.hidden_layers.clone(),
            outputs,
            activation: params.activation,
            task,
            target_mean,
            target_std,
        };
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
        let layers = build_layers(&spec, &vb)?;
        seeded_init(&varmap, params.seed)?;
        let mut model = Mlp {
            spec,
            layers,
            varmap: None,
            weights: None,
        };
        let mut optimizer: OptimizerStep = match params.optimizer {
            Solver::Adam => {
                let mut opt = AdamW::new(
                    varmap.all_vars(),
                    ParamsAdamW {
                        lr: params.learning_rate,
                        weight_decay: 0.0,
                        ..Default::default()
                    },
                )?;
                Box::new(move |loss| opt.backward_step(loss))
            }
            Solver::Sgd => {
                let mut opt = SGD::new(varmap.all_vars(), params.learning_rate)?;
                Box::new(move |loss| opt.backward_step(loss))
            }
        };
        let weight_vars: Vec<Tensor> = {
            let data = varmap.data().lock().map_err(|_| poisoned())?;
            data.iter()
                .filter(|(k, _)| k.ends_with(".weight"))
                .map(|(_, v)| v.as_tensor().clone())
                .collect()
        };
        let scaled = model.scale(&fitted.values);
        let batch = params.batch_size.min(fitted.rows);
        let mut order: Vec<usize> = (0..fitted.rows).collect();
        let mut history = Vec::new();
        let mut best: Option<BestEpoch> = None;
        let mut stale = 0;
        let mut stopped_early = false;
        for epoch in 1..=params.epochs {
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0;
            for chunk in order.chunks(batch) {
                hooks.check()?;
                let mut bx = Vec::with_capacity(chunk.len() * model.spec.inputs);
                for &r in chunk {
                    bx.extend_from_slice(
                        &fitted.x[r * model.spec.inputs..(r + 1) * model.spec.inputs],
                    );
                }
                let classes: Vec<u32> = match task {
                    Task::Classification => chunk.iter().map(|&r| fitted.classes[r]).collect(),
                    _ => Vec::new(),
                };
                let values: Vec<f32> = match task {
                    Task::Regression => chunk.iter().map(|&r| scaled[r]).collect(),
                    _ => Vec::new(),
                };
                let bx = matrix(&bx, chunk.len(), model.spec.inputs)?;
                let out = model.forward(&bx, Some((params.dropout, &mut rng)))?;
                let mut loss = model.loss(&out, &bx, &classes, &values)?;
                loss_sum += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
                if params.weight_decay > 0.0 {
                    // scikit-learn's L2 term: alpha / 2 · ‖W‖², divided by the batch size.
                    let mut penalty = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu)?;
                    for w in &weight_vars {
                        penalty = penalty.add(&w.sqr()?.sum_all()?)?;
                    }
                    loss =
                        loss.add(&(penalty * (params.weight_decay / 2.0 / chunk.len() as f64))?)?;
                }
                optimizer(&loss)?;
            }
            let train_loss = loss_sum / fitted.rows as f64;
            if !train_loss.is_finite() {
                return Err(NnError::invalid(format!(
                    "training diverged at epoch {epoch} (the loss is not finite); lower learning_rate"
                )));
            }
            let (validation_loss, validation_score) = model.assess(&held_out)?;
            let score_name = match task {
                Task::Classification => "val_accuracy",
                Task::Regression => "val_r2",
                Task::Reconstruction => "val_reconstruction_r2",
            };
            (hooks.metric)(epoch, "loss", train_loss);
            (hooks.metric)(epoch, "val_loss", validation_loss);
            (hooks.metric)(epoch, score_name, validation_score);
            (hooks.progress)(
                epoch,
                params.epochs,
                format!(
                    "epoch {epoch}/{}: loss {train_loss:.4}, {score_name} {validation_score:.4}",
                    params.epochs
                ),
            );
            history.push(EpochRecord {
                epoch,
                train_loss,
                validation_loss,
                validation_score,
            });
            let improved = best
                .as_ref()
                .is_none_or(|b| validation_loss < b.loss - 1e-4 * b.loss.abs().max(1e-8));
            if improved {
                best = Some(BestEpoch {
                    loss: validation_loss,
                    epoch,
                    weights: snapshot(&varmap)?,
                });
                stale = 0;
            } else {
                stale += 1;
                if params.early_stopping && stale >= params.patience {
                    stopped_early = true;
                    break;
                }
            }
        }
        let best_epoch = match best {
            Some(b) if params.early_stopping => {
                restore(&varmap, &b.weights)?;
                b.epoch
            }
            _ => history.len(),
        };
        model.varmap = Some(varmap);
        Ok(MlpFit {
            model,
            history,
            best_epoch,
            stopped_early,
        })
    }

    /// The architecture (JSON) and the weights (safetensors).
    pub fn to_parts(&self) -> Result<(Value, Vec<u8>), NnError> {
        let spec = serde_json::to_value(&self.spec)
            .map_err(|e| NnError::Failed(format!("could not describe the network: {e}")))?;
        let weights = match (&self.varmap, &self.weights) {
            (Some(v), _) => to_safetensors(v)?,
            (None, Some(w)) => w.clone(),
            (None, None) => return Err(NnError::Failed("the network has no weights".into())),
        };
        Ok((spec, weights))
    }

    /// Rebuilds a saved network, checking the weights against the architecture.
    pub fn from_parts(spec: &Value, weights: &[u8]) -> Result<Self, NnError> {
        let spec: MlpSpec = serde_json::from_value(spec.clone())
            .map_err(|e| NnError::invalid(format!("the network description is not valid: {e}")))?;
        if spec.inputs == 0
            || spec.outputs == 0
            || spec.hidden_layers.contains(&0)
            || !(spec.target_std > 0.0 && spec.target_mean.is_finite())
        {
            return Err(NnError::invalid(
                "the network description has impossible sizes",
            ));
        }
        if spec.task == Task::Reconstruction
            && (spec.outputs != spec.inputs || spec.hidden_layers.len().is_multiple_of(2))
        {
            return Err(NnError::invalid(
                "the autoencoder description is not symmetric around a latent layer",
            ));
        }
        let vb = from_safetensors(weights)?;
        let layers = build_layers(&spec, &vb).map_err(|e| {
            NnError::invalid(format!("the weights do not fit the described network: {e}"))
        })?;
        Ok(Mlp {
            spec,
            layers,
            varmap: None,
            weights: Some(weights.to_vec()),
        })
    }
}

/// Index of the largest value (the first on ties, as numpy's argmax).
pub fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// Coefficient of determination (1 is perfect; 0 is no better than the mean).
pub fn r2(y: &[f64], predicted: &[f64]) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let ss_res: f64 = y.iter().zip(predicted).map(|(a, b)| (a - b).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    }
}
