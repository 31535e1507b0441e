//! Hyperparameters of every algorithm: typed, with the reference libraries' names and defaults,
//! checked for range before any work starts.
//!
//! Tools take `hyperparameters` as one JSON object (its description lists every algorithm's
//! settings: a full schema per algorithm tripled the size of `tools/list`); it is decoded strictly
//! for the chosen algorithm, so a misspelt or foreign setting is an error that names the
//! algorithm and the accepted names.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::MlError;
use crate::forest::{ForestParams, MaxFeatures};
use crate::gbdt::GbdtParams;
use crate::linear::Penalty;

/// Decodes `raw` as the settings of `algorithm`, naming it in the error.
pub fn decode<P: DeserializeOwned>(
    algorithm: &str,
    raw: &Map<String, Value>,
) -> Result<P, MlError> {
    serde_json::from_value(Value::Object(raw.clone()))
        .map_err(|e| MlError::invalid(format!("hyperparameters for {algorithm}: {e}")))
}

fn int_in(name: &str, v: i64, lo: i64, hi: i64) -> Result<usize, MlError> {
    if (lo..=hi).contains(&v) {
        Ok(v as usize)
    } else {
        Err(MlError::invalid(format!(
            "{name} must be between {lo} and {hi} (got {v})"
        )))
    }
}

fn float_in(name: &str, v: f64, lo: f64, hi: f64, lo_open: bool) -> Result<f64, MlError> {
    let above = if lo_open { v > lo } else { v >= lo };
    if above && v <= hi && v.is_finite() {
        return Ok(v);
    }
    let bound = if lo_open { "greater than" } else { "at least" };
    Err(MlError::invalid(if hi >= f64::MAX {
        format!("{name} must be {bound} {lo} (got {v})")
    } else {
        format!("{name} must be {bound} {lo} and at most {hi} (got {v})")
    }))
}

/// How many features a split considers: `sqrt`, `log2`, `all`, or a fraction in (0, 1].
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum MaxFeaturesInput {
    Named(NamedMaxFeatures),
    Fraction(f64),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedMaxFeatures {
    Sqrt,
    Log2,
    All,
}

/// random_forest (scikit-learn's names and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomForestParams {
    /// Number of trees (1 to 5000).
    pub n_estimators: i64,
    /// Deepest a tree may grow (1 to 64); unlimited when absent.
    pub max_depth: Option<i64>,
    pub min_samples_split: i64,
    pub min_samples_leaf: i64,
    /// Default: `sqrt` for classification, `all` for regression (scikit-learn's defaults).
    pub max_features: Option<MaxFeaturesInput>,
    /// Train each tree on a bootstrap sample (enables the out-of-bag score).
    pub bootstrap: bool,
    /// Histogram bins per feature (2 to 256).
    pub max_bins: i64,
}

impl Default for RandomForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: None,
            bootstrap: true,
            max_bins: 256,
        }
    }
}

impl RandomForestParams {
    pub fn validate(&self, seed: u64, classification: bool) -> Result<ForestParams, MlError> {
        let default = if classification {
            MaxFeaturesInput::Named(NamedMaxFeatures::Sqrt)
        } else {
            MaxFeaturesInput::Named(NamedMaxFeatures::All)
        };
        let max_features = match self.max_features.unwrap_or(default) {
            MaxFeaturesInput::Named(NamedMaxFeatures::Sqrt) => MaxFeatures::Sqrt,
            MaxFeaturesInput::Named(NamedMaxFeatures::Log2) => MaxFeatures::Log2,
            MaxFeaturesInput::Named(NamedMaxFeatures::All) => MaxFeatures::All,
            MaxFeaturesInput::Fraction(f) => {
                MaxFeatures::Fraction(float_in("max_features", f, 0.0, 1.0, true)?)
            }
        };
        Ok(ForestParams {
            n_estimators: int_in("n_estimators", self.n_estimators, 1, 5000)?,
            max_depth: self
                .max_depth
                .map(|d| int_in("max_depth", d, 1, 64))
                .transpose()?,
            min_samples_split: int_in("min_samples_split", self.min_samples_split, 2, i64::MAX)?,
            min_samples_leaf: int_in("min_samples_leaf", self.min_samples_leaf, 1, i64::MAX)?,
            max_features,
            bootstrap: self.bootstrap,
            max_bins: int_in("max_bins", self.max_bins, 2, 256)?,
            seed,
        })
    }

    pub fn describe(p: &ForestParams) -> Value {
        json!({
            "n_estimators": p.n_estimators,
            "max_depth": p.max_depth,
            "min_samples_split": p.min_samples_split,
            "min_samples_leaf": p.min_samples_leaf,
            "max_features": format!("{:?}", p.max_features).to_lowercase(),
            "bootstrap": p.bootstrap,
            "max_bins": p.max_bins,
            "seed": p.seed,
        })
    }
}

/// xgboost: gradient-boosted trees (XGBoost's names and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XgboostParams {
    /// Boosting rounds (1 to 10000).
    pub n_estimators: i64,
    /// Shrinkage per round, in (0, 1].
    pub learning_rate: f64,
    /// Deepest a tree may grow (1 to 32).
    pub max_depth: i64,
    /// Least hessian sum in a leaf.
    pub min_child_weight: f64,
    /// L2 penalty on leaf weights.
    pub reg_lambda: f64,
    /// L1 penalty on leaf weights.
    pub reg_alpha: f64,
    /// Least loss reduction to split.
    pub gamma: f64,
    /// Share of rows each round samples, in (0, 1].
    pub subsample: f64,
    /// Share of features each tree uses, in (0, 1].
    pub colsample_bytree: f64,
    /// Histogram bins per feature (2 to 256).
    pub max_bin: i64,
}

impl Default for XgboostParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            learning_rate: 0.3,
            max_depth: 6,
            min_child_weight: 1.0,
            reg_lambda: 1.0,
            reg_alpha: 0.0,
            gamma: 0.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            max_bin: 256,
        }
    }
}

impl XgboostParams {
    pub fn validate(&self, seed: u64) -> Result<GbdtParams, MlError> {
        let non_negative = |name: &str, v: f64| float_in(name, v, 0.0, f64::MAX, false);
        Ok(GbdtParams {
            n_estimators: int_in("n_estimators", self.n_estimators, 1, 10_000)?,
            learning_rate: float_in("learning_rate", self.learning_rate, 0.0, 1.0, true)?,
            max_depth: int_in("max_depth", self.max_depth, 1, 32)?,
            min_child_weight: non_negative("min_child_weight", self.min_child_weight)?,
            reg_lambda: non_negative("reg_lambda", self.reg_lambda)?,
            reg_alpha: non_negative("reg_alpha", self.reg_alpha)?,
            gamma: non_negative("gamma", self.gamma)?,
            subsample: float_in("subsample", self.subsample, 0.0, 1.0, true)?,
            colsample_bytree: float_in("colsample_bytree", self.colsample_bytree, 0.0, 1.0, true)?,
            max_bin: int_in("max_bin", self.max_bin, 2, 256)?,
            seed,
        })
    }

    pub fn describe(p: &GbdtParams) -> Value {
        json!({
            "n_estimators": p.n_estimators,
            "learning_rate": p.learning_rate,
            "max_depth": p.max_depth,
            "min_child_weight": p.min_child_weight,
            "reg_lambda": p.reg_lambda,
            "reg_alpha": p.reg_alpha,
            "gamma": p.gamma,
            "subsample": p.subsample,
            "colsample_bytree": p.colsample_bytree,
            "max_bin": p.max_bin,
            "seed": p.seed,
        })
    }
}

/// logistic_regression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticParams {
    /// L2 penalty strength (0 for none); a little keeps separable data finite.
    pub alpha: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self { alpha: 1e-4 }
    }
}

impl LogisticParams {
    pub fn validate(&self) -> Result<f64, MlError> {
        float_in("alpha", self.alpha, 0.0, 1e6, false)
    }
}

/// linear: least squares, optionally ridge (L2) or lasso (L1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearParams {
    /// `none` (ordinary least squares), `ridge` or `lasso`.
    pub penalty: PenaltyInput,
    /// Penalty strength (ignored for `none`).
    pub alpha: f64,
    /// Most coordinate-descent passes (lasso).
    pub max_iter: i64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyInput {
    #[default]
    None,
    Ridge,
    Lasso,
}

impl Default for LinearParams {
    fn default() -> Self {
        Self {
            penalty: PenaltyInput::None,
            alpha: 1.0,
            max_iter: 1000,
        }
    }
}

impl LinearParams {
    pub fn validate(&self) -> Result<(Penalty, f64, usize), MlError> {
        let penalty = match self.penalty {
            PenaltyInput::None => Penalty::None,
            PenaltyInput::Ridge => Penalty::Ridge,
            PenaltyInput::Lasso => Penalty::Lasso,
        };
        let alpha = if penalty == Penalty::None {
            0.0
        } else {
            float_in("alpha", self.alpha, 0.0, 1e9, true)?
        };
        Ok((
            penalty,
            alpha,
            int_in("max_iter", self.max_iter, 1, 1_000_000)?,
        ))
    }
}

/// kmeans: give `n_clusters`, or `k_min`..`k_max` to choose k by the best silhouette.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KMeansParams {
    pub n_clusters: Option<i64>,
    pub k_min: Option<i64>,
    pub k_max: Option<i64>,
    /// Runs from different seeds for each k; the lowest inertia is kept (1 to 100).
    pub n_init: i64,
    /// Most Lloyd iterations per fit.
    pub max_iter: i64,
    /// Stop when the centroids move less than this (sum of squared shifts), relative to the
    /// data's mean feature variance (scikit-learn's rule).
    pub tol: f64,
}

impl Default for KMeansParams {
    fn default() -> Self {
        Self {
            n_clusters: None,
            k_min: None,
            k_max: None,
            n_init: 3,
            max_iter: 300,
            tol: 1e-4,
        }
    }
}

impl KMeansParams {
    /// The k values to try, runs per k, the iteration cap and the tolerance.
    pub fn validate(&self, rows: usize) -> Result<KMeansSettings, MlError> {
        let rows_i = rows as i64;
        let ks = match (self.n_clusters, self.k_min, self.k_max) {
            (Some(k), None, None) => {
                if k < 1 || k > rows_i {
                    return Err(MlError::invalid(format!(
                        "n_clusters must be between 1 and the number of rows ({rows}); got {k}"
                    )));
                }
                vec![k as usize]
            }
            (None, Some(lo), Some(hi)) => {
                if lo < 2 || hi < lo || hi > rows_i.min(50) {
                    return Err(MlError::invalid(format!(
                        "k_min..k_max must satisfy 2 <= k_min <= k_max <= min(50, rows = {rows}); got {lo}..{hi}"
                    )));
                }
                (lo as usize..=hi as usize).collect()
            }
            (None, None, None) => {
                if rows < 8 {
                    return Err(MlError::invalid(format!(
                        "{rows} rows are too few for k-means; give n_clusters"
                    )));
                }
                vec![8]
            }
            _ => {
                return Err(MlError::invalid(
                    "give either n_clusters, or both k_min and k_max",
                ));
            }
        };
        Ok(KMeansSettings {
            ks,
            n_init: int_in("n_init", self.n_init, 1, 100)?,
            max_iter: int_in("max_iter", self.max_iter, 1, 100_000)?,
            tol: float_in("tol", self.tol, 0.0, 1e9, false)?,
        })
    }
}

/// Validated k-means settings.
#[derive(Debug, Clone)]
pub struct KMeansSettings {
    /// The k values to try; the best silhouette wins.
    pub ks: Vec<usize>,
    pub n_init: usize,
    pub max_iter: usize,
    pub tol: f64,
}

/// dbscan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbscanParams {
    /// Neighbourhood radius (Euclidean, on the preprocessed features).
    pub eps: f64,
    /// Neighbours (the point included) that make a point a core point.
    pub min_samples: i64,
}

impl Default for DbscanParams {
    fn default() -> Self {
        Self {
            eps: 0.5,
            min_samples: 5,
        }
    }
}

impl DbscanParams {
    pub fn validate(&self) -> Result<(f64, usize), MlError> {
        Ok((
            float_in("eps", self.eps, 0.0, f64::MAX, true)?,
            int_in("min_samples", self.min_samples, 1, 100_000)?,
        ))
    }
}

/// pca.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcaParams {
    /// Components to keep (1 to the feature count).
    pub n_components: i64,
}

impl Default for PcaParams {
    fn default() -> Self {
        Self { n_components: 2 }
    }
}

/// tsne.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsneParams {
    /// 2 or 3.
    pub n_components: i64,
    /// Effective neighbour count, at most (rows - 1) / 3.
    pub perplexity: f64,
    /// Optimisation iterations (250 to 10000).
    pub max_iter: i64,
    /// Barnes–Hut accuracy/speed trade-off, > 0 (scikit-learn's `angle`).
    pub angle: f64,
}

impl Default for TsneParams {
    fn default() -> Self {
        Self {
            n_components: 2,
            perplexity: 30.0,
            max_iter: 1000,
            angle: 0.5,
        }
    }
}

impl TsneParams {
    pub fn validate(&self, seed: u64) -> Result<crate::reduce::TsneSettings, MlError> {
        Ok(crate::reduce::TsneSettings {
            n_components: int_in("n_components", self.n_components, 2, 3)?,
            perplexity: float_in("perplexity", self.perplexity, 0.0, 1e4, true)?,
            epochs: int_in("max_iter", self.max_iter, 250, 10_000)?,
            theta: float_in("angle", self.angle, 0.0, 1.0, true)?,
            seed,
        })
    }
}

/// neural_network: a multi-layer perceptron (scikit-learn's MLP names and defaults, with the
/// deep-learning names accepted as aliases).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeuralNetworkParams {
    /// Units of each hidden layer, e.g. [64, 32].
    #[serde(alias = "hidden_layers", alias = "layers")]
    pub hidden_layer_sizes: Vec<i64>,
    /// relu, tanh, logistic (sigmoid) or gelu.
    pub activation: mlops_nn::mlp::Activation,
    /// adam or sgd.
    #[serde(alias = "optimizer")]
    pub solver: mlops_nn::mlp::Solver,
    #[serde(alias = "learning_rate")]
    pub learning_rate_init: f64,
    /// L2 penalty.
    #[serde(alias = "weight_decay")]
    pub alpha: f64,
    /// Share of hidden units dropped per training step, in [0, 1).
    pub dropout: f64,
    pub batch_size: i64,
    #[serde(alias = "epochs")]
    pub max_iter: i64,
    pub early_stopping: bool,
    #[serde(alias = "patience")]
    pub n_iter_no_change: i64,
    pub validation_fraction: f64,
}

impl Default for NeuralNetworkParams {
    fn default() -> Self {
        Self {
            hidden_layer_sizes: vec![100],
            activation: mlops_nn::mlp::Activation::Relu,
            solver: mlops_nn::mlp::Solver::Adam,
            learning_rate_init: 0.001,
            alpha: 0.0001,
            dropout: 0.0,
            batch_size: 200,
            max_iter: 200,
            early_stopping: true,
            n_iter_no_change: 10,
            validation_fraction: 0.1,
        }
    }
}

fn layer_sizes(name: &str, sizes: &[i64]) -> Result<Vec<usize>, MlError> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            if (1..=4096).contains(&n) {
                Ok(n as usize)
            } else {
                Err(MlError::invalid(format!(
                    "{name}: layer {} has {n} units; each layer needs 1 to 4096",
                    i + 1
                )))
            }
        })
        .collect()
}

impl NeuralNetworkParams {
    pub fn validate(&self, seed: u64) -> Result<mlops_nn::mlp::MlpParams, MlError> {
        let params = mlops_nn::mlp::MlpParams {
            hidden_layers: layer_sizes("hidden_layer_sizes", &self.hidden_layer_sizes)?,
            activation: self.activation,
            dropout: self.dropout,
            optimizer: self.solver,
            learning_rate: self.learning_rate_init,
            weight_decay: self.alpha,
            batch_size: int_in("batch_size", self.batch_size, 1, 1 << 20)?,
            epochs: int_in("max_iter", self.max_iter, 1, 100_000)?,
            early_stopping: self.early_stopping,
            patience: int_in("n_iter_no_change", self.n_iter_no_change, 1, 100_000)?,
            validation_fraction: self.validation_fraction,
            seed,
        };
        params.validate()?;
        Ok(params)
    }
}

/// autoencoder: an encoder–latent–decoder network; the latent codes are clustered with k-means
/// and each row's reconstruction error is its anomaly score.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoencoderParams {
    /// Units of the encoder's layers; the decoder mirrors them.
    #[serde(alias = "hidden_layers", alias = "encoder_layers")]
    pub hidden_layer_sizes: Vec<i64>,
    /// Size of the latent code.
    pub latent_dim: i64,
    pub activation: mlops_nn::mlp::Activation,
    #[serde(alias = "learning_rate")]
    pub learning_rate_init: f64,
    pub batch_size: i64,
    #[serde(alias = "max_iter")]
    pub epochs: i64,
    pub early_stopping: bool,
    #[serde(alias = "n_iter_no_change")]
    pub patience: i64,
    pub validation_fraction: f64,
    /// Clusters of the latent codes (k-means), or `k_min`..`k_max` to pick k by silhouette.
    pub n_clusters: Option<i64>,
    pub k_min: Option<i64>,
    pub k_max: Option<i64>,
    /// Share of the training rows expected to be anomalies: rows whose reconstruction error is
    /// above this quantile of the training errors are flagged.
    pub contamination: f64,
}

impl Default for AutoencoderParams {
    fn default() -> Self {
        Self {
            hidden_layer_sizes: vec![32],
            latent_dim: 2,
            activation: mlops_nn::mlp::Activation::Tanh,
            learning_rate_init: 0.005,
            batch_size: 128,
            epochs: 200,
            early_stopping: true,
            patience: 10,
            validation_fraction: 0.1,
            n_clusters: None,
            k_min: None,
            k_max: None,
            contamination: 0.05,
        }
    }
}

/// Validated autoencoder settings: the network's, the latent k-means', and the anomaly share.
pub struct AutoencoderSettings {
    pub network: mlops_nn::mlp::MlpParams,
    pub kmeans: KMeansParams,
    pub contamination: f64,
}

impl AutoencoderParams {
    pub fn validate(&self, seed: u64) -> Result<AutoencoderSettings, MlError> {
        let encoder = layer_sizes("hidden_layer_sizes", &self.hidden_layer_sizes)?;
        let latent = int_in("latent_dim", self.latent_dim, 1, 4096)?;
        let network = mlops_nn::mlp::MlpParams {
            hidden_layers: mlops_nn::autoencoder_layers(&encoder, latent),
            activation: self.activation,
            dropout: 0.0,
            optimizer: mlops_nn::mlp::Solver::Adam,
            learning_rate: self.learning_rate_init,
            weight_decay: 0.0,
            batch_size: int_in("batch_size", self.batch_size, 1, 1 << 20)?,
            epochs: int_in("epochs", self.epochs, 1, 100_000)?,
            early_stopping: self.early_stopping,
            patience: int_in("patience", self.patience, 1, 100_000)?,
            validation_fraction: self.validation_fraction,
            seed,
        };
        network.validate()?;
        Ok(AutoencoderSettings {
            network,
            kmeans: KMeansParams {
                n_clusters: self.n_clusters,
                k_min: self.k_min,
                k_max: self.k_max,
                ..KMeansParams::default()
            },
            contamination: float_in("contamination", self.contamination, 0.0, 0.5, true)?,
        })
    }
}

/// The settings of a reinforcement-learning job: the algorithm's tuned defaults for the
/// environment (see [`mlops_nn::rl::RlConfig::defaults`]) with `raw` laid over them. The algorithm,
/// environment and seed are the tool's own arguments, not hyperparameters.
pub fn rl_config(
    algorithm: crate::algorithms::ReinforcementAlgorithm,
    environment: &str,
    raw: &Map<String, Value>,
    seed: u64,
) -> Result<mlops_nn::rl::RlConfig, MlError> {
    let algorithm = algorithm.nn();
    let name = algorithm.name().to_lowercase();
    let mut config = mlops_nn::rl::RlConfig::defaults(algorithm, environment);
    config.seed = seed;
    let mut merged = serde_json::to_value(&config)
        .map_err(|e| MlError::Failed(format!("could not describe the settings: {e}")))?;
    let fields = merged
        .as_object_mut()
        .ok_or_else(|| MlError::Failed("the settings are not an object".into()))?;
    for (key, value) in raw {
        if ["algorithm", "environment", "seed"].contains(&key.as_str()) {
            return Err(MlError::invalid(format!(
                "`{key}` is an argument of train_reinforcement itself, not a hyperparameter"
            )));
        }
        if !fields.contains_key(key) {
            let mut known: Vec<&String> = fields
                .keys()
                .filter(|k| !["algorithm", "environment", "seed"].contains(&k.as_str()))
                .collect();
            known.sort();
            let known: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
            return Err(MlError::invalid(format!(
                "hyperparameters for {name}: unknown setting `{key}`; known: {}",
                known.join(", ")
            )));
        }
        fields.insert(key.clone(), value.clone());
    }
    let config: mlops_nn::rl::RlConfig = serde_json::from_value(merged)
        .map_err(|e| MlError::invalid(format!("hyperparameters for {name}: {e}")))?;
    config.validate()?;
    Ok(config)
}
