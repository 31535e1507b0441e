//! MLPs and the autoencoder on generated data: what they learn, what they keep, what they refuse.

use std::f64::consts::PI;

use mlops_nn::mlp::{Activation, Data, Mlp, MlpParams, Solver, Targets, argmax, r2};
use mlops_nn::silent;
use mlops_nn::{Hooks, NnError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn params(hidden: &[usize]) -> MlpParams {
    MlpParams {
        hidden_layers: hidden.to_vec(),
        activation: Activation::Relu,
        dropout: 0.0,
        optimizer: Solver::Adam,
        learning_rate: 0.01,
        weight_decay: 0.0,
        batch_size: 64,
        epochs: 150,
        early_stopping: true,
        patience: 15,
        validation_fraction: 0.1,
        seed: 7,
    }
}

/// scikit-learn's `make_moons`: two interleaved half circles with Gaussian noise.
fn moons(n: usize, noise: f64, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let class = (i % 2) as u32;
        let t = rng.random::<f64>() * PI;
        let (a, b) = if class == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        let g = |rng: &mut ChaCha8Rng| {
            // Box–Muller
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
        };
        x.push((a + noise * g(&mut rng)) as f32);
        x.push((b + noise * g(&mut rng)) as f32);
        y.push(class);
    }
    (x, y)
}

fn accuracy(proba: &[f64], y: &[u32], k: usize) -> f64 {
    let hits = y
        .iter()
        .enumerate()
        .filter(|(r, c)| argmax(&proba[r * k..(r + 1) * k]) == **c as usize)
        .count();
    hits as f64 / y.len() as f64
}

macro_rules! hooks {
    ($h:ident) => {
        let (cancel, progress, metric) = silent();
        let $h = Hooks {
            cancelled: &cancel,
            progress: &progress,
            metric: &metric,
        };
    };
}

#[test]
fn a_classifier_learns_moons_and_reloads_identically() {
    hooks!(h);
    let (x, y) = moons(1000, 0.2, 1);
    let (tx, ty) = moons(1000, 0.2, 2);
    let data = Data {
        x: &x,
        rows: 1000,
        cols: 2,
        y: Targets::Classes {
            y: &y,
            n_classes: 2,
        },
    };
    let fit = Mlp::fit(&data, None, &params(&[32, 32]), &h).unwrap();
    let proba = fit.model.predict(&tx, 1000).unwrap();
    let acc = accuracy(&proba, &ty, 2);
    assert!(acc >= 0.95, "test accuracy {acc}");
    assert!(!fit.history.is_empty() && fit.best_epoch <= fit.history.len());
    assert!(fit.history.last().unwrap().train_loss < fit.history[0].train_loss);

    let (spec, weights) = fit.model.to_parts().unwrap();
    let reloaded = Mlp::from_parts(&spec, &weights).unwrap();
    assert_eq!(reloaded.predict(&tx, 1000).unwrap(), proba);

    // The same seed trains the same network.
    let again = Mlp::fit(&data, None, &params(&[32, 32]), &h).unwrap();
    assert_eq!(again.model.to_parts().unwrap().1, weights);
}

#[test]
fn a_regressor_fits_a_smooth_function() {
    hooks!(h);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let sample = |rng: &mut ChaCha8Rng, n: usize| {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b) = (
                rng.random_range(-2.0..2.0f64),
                rng.random_range(-2.0..2.0f64),
            );
            x.extend([a as f32, b as f32]);
            y.push(10.0 + 5.0 * (a * 1.5).sin() + b * b);
        }
        (x, y)
    };
    let (x, y) = sample(&mut rng, 2000);
    let (tx, ty) = sample(&mut rng, 500);
    let mut p = params(&[64, 64]);
    p.activation = Activation::Tanh;
    let fit = Mlp::fit(
        &Data {
            x: &x,
            rows: 2000,
            cols: 2,
            y: Targets::Values(&y),
        },
        None,
        &p,
        &h,
    )
    .unwrap();
    let score = r2(&ty, &fit.model.predict(&tx, 500).unwrap());
    assert!(score >= 0.9, "test R² {score}");
}

/// Area under the ROC curve of `scores` for `positive` rows (ties count half).
fn roc_auc(scores: &[f64], positive: &[bool]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, s) in scores.iter().enumerate().filter(|(i, _)| positive[*i]) {
        for (_, t) in scores.iter().enumerate().filter(|(j, _)| !positive[*j]) {
            pairs += 1.0;
            wins += if s > t {
                1.0
            } else if s == t {
                0.5
            } else {
                0.0
            };
        }
        let _ = i;
    }
    wins / pairs
}

#[test]
fn autoencoder_errors_single_out_injected_anomalies() {
    hooks!(h);
    // Normal rows lie near a 2-D plane inside 8-D space; anomalies do not.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let row = |rng: &mut ChaCha8Rng, anomalous: bool| -> Vec<f32> {
        if anomalous {
            (0..8).map(|_| rng.random_range(-2.5..2.5f32)).collect()
        } else {
            let (u, v) = (
                rng.random_range(-1.5..1.5f32),
                rng.random_range(-1.5..1.5f32),
            );
            (0..8)
                .map(|j| {
                    let j = j as f32;
                    (0.3 * j - 1.0) * u + (1.0 - 0.2 * j) * v + rng.random_range(-0.05..0.05)
                })
                .collect()
        }
    };
    let train: Vec<f32> = (0..1500).flat_map(|_| row(&mut rng, false)).collect();
    let mut test = Vec::new();
    let mut truth = Vec::new();
    for i in 0..400 {
        let anomalous = i % 10 == 0;
        test.extend(row(&mut rng, anomalous));
        truth.push(anomalous);
    }
    let mut p = params(&mlops_nn::autoencoder_layers(&[16], 2));
    p.activation = Activation::Tanh;
    let fit = Mlp::fit(
        &Data {
            x: &train,
            rows: 1500,
            cols: 8,
            y: Targets::Inputs,
        },
        None,
        &p,
        &h,
    )
    .unwrap();
    let model = fit.model;
    assert_eq!(model.latent_size(), 2);
    assert_eq!(model.encode(&test, 400).unwrap().len(), 800);
    let errors = model.reconstruction_errors(&test, 400).unwrap();
    let auc = roc_auc(&errors, &truth);
    assert!(auc >= 0.9, "anomaly ROC-AUC {auc}");

    let (spec, weights) = model.to_parts().unwrap();
    let reloaded = Mlp::from_parts(&spec, &weights).unwrap();
    assert_eq!(reloaded.reconstruction_errors(&test, 400).unwrap(), errors);
}

#[test]
fn bad_settings_and_bad_weights_are_refused_with_reasons() {
    hooks!(h);
    let (x, y) = moons(50, 0.1, 1);
    let data = Data {
        x: &x,
        rows: 50,
        cols: 2,
        y: Targets::Classes {
            y: &y,
            n_classes: 2,
        },
    };
    let refused = |p: MlpParams| match Mlp::fit(&data, None, &p, &h) {
        Err(NnError::Invalid(m)) => m,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted bad settings"),
    };
    assert!(refused(params(&[8, 0])).contains("hidden layer 2 has 0 units"));
    let mut p = params(&[8]);
    p.learning_rate = 0.0;
    assert!(refused(p).contains("learning_rate must be greater than 0"));
    let mut p = params(&[8]);
    p.dropout = 1.0;
    assert!(refused(p).contains("dropout"));

    let fit = Mlp::fit(&data, None, &params(&[4]), &h).unwrap();
    let (spec, weights) = fit.model.to_parts().unwrap();
    assert!(matches!(
        Mlp::from_parts(&spec, b"not safetensors"),
        Err(NnError::Invalid(m)) if m.contains("safetensors")
    ));
    let mut wider = spec.clone();
    wider["hidden_layers"] = serde_json::json!([5]);
    assert!(matches!(
        Mlp::from_parts(&wider, &weights),
        Err(NnError::Invalid(m)) if m.contains("do not fit")
    ));
    assert!(fit.model.predict(&[1.0, 2.0, 3.0], 1).is_err());
}

#[test]
fn cancelling_stops_training() {
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let progress = |epoch: usize, _: usize, _: String| {
        if epoch == 2 {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let metric = |_: usize, _: &str, _: f64| {};
    let h = Hooks {
        cancelled: &cancel,
        progress: &progress,
        metric: &metric,
    };
    let (x, y) = moons(500, 0.1, 1);
    let data = Data {
        x: &x,
        rows: 500,
        cols: 2,
        y: Targets::Classes {
            y: &y,
            n_classes: 2,
        },
    };
    assert!(matches!(
        Mlp::fit(&data, None, &params(&[8]), &h),
        Err(NnError::Cancelled)
    ));
}
