//! What the TPE sampler costs per trial as a study grows: a sequential TPE run of TRIALS trials
//! (default 500) on a 6-parameter space (ints, a log-scale int, log floats, a categorical) with a
//! cheap synthetic objective, timing every `sample` call (the objective is not timed).
//!
//! Prints one JSON line: mean, p50, p95 and max milliseconds per `sample` call over the whole run,
//! the mean over the last 50 trials (the cost at the end of the run), the total, and the best
//! objective value found. `bench/tune_vs_optuna.py` runs it beside Optuna's `TPESampler` on the
//! same space and objective.
//!
//! Usage: cargo run --release -p mlops-ml --example sampler_overhead -- [TRIALS] [SEED]

use std::time::Instant;

use mlops_ml::search::{Observation, SamplerKind, SearchSpace, sample};
use serde_json::{Map, Value, json};

/// The space (the same as `SPACE` in bench/tune_vs_optuna.py).
fn space() -> SearchSpace {
    SearchSpace::from_json(&json!({
        "n_estimators": {"type": "int", "low": 50, "high": 500},
        "max_depth": {"type": "int", "low": 2, "high": 16},
        "min_child_weight": {"type": "int", "low": 1, "high": 100, "log": true},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 0.3, "log": true},
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 10.0, "log": true},
        "booster": {"type": "categorical", "choices": ["gbtree", "dart", "gblinear"]},
    }))
    .expect("the benchmark's space is valid")
}

/// A cheap bowl with its minimum 0 at n_estimators 300, max_depth 8, min_child_weight 10,
/// learning_rate 10^-1.5, reg_lambda 1, booster gbtree (the same as `objective` in
/// bench/tune_vs_optuna.py).
fn objective(p: &Map<String, Value>) -> f64 {
    let num = |k: &str| p[k].as_f64().expect("numeric parameter");
    let n = num("n_estimators");
    let depth = num("max_depth");
    let mcw = num("min_child_weight");
    let lr = num("learning_rate");
    let lambda = num("reg_lambda");
    let booster = match p["booster"].as_str() {
        Some("gbtree") => 0.0,
        Some("dart") => 0.2,
        _ => 0.5,
    };
    ((n - 300.0) / 300.0).powi(2)
        + ((depth - 8.0) / 8.0).powi(2)
        + (mcw.log10() - 1.0).powi(2) / 4.0
        + (lr.log10() + 1.5).powi(2)
        + lambda.log10().powi(2) / 4.0
        + booster
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Linear interpolation between the closest ranks (numpy's default).
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let trials: usize = args
        .next()
        .map(|a| a.parse().expect("TRIALS is a count"))
        .unwrap_or(500);
    let seed: u64 = args
        .next()
        .map(|a| a.parse().expect("SEED is an integer"))
        .unwrap_or(0);
    let space = space();
    let mut history: Vec<Observation> = Vec::with_capacity(trials);
    let mut ms = Vec::with_capacity(trials);
    let started = Instant::now();
    for number in 0..trials {
        let t = Instant::now();
        let params = sample(SamplerKind::Tpe, &space, &history, seed, number as u64);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        let value = objective(&params);
        history.push(Observation { params, value });
    }
    let wall = started.elapsed().as_secs_f64();
    let total_ms: f64 = ms.iter().sum();
    let tail = &ms[ms.len().saturating_sub(50)..];
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let best = history
        .iter()
        .map(|o| o.value)
        .fold(f64::INFINITY, f64::min);
    println!(
        "{}",
        json!({
            "sampler": "mlops_ml::search TPE",
            "trials": trials,
            "seed": seed,
            "mean_ms": total_ms / trials.max(1) as f64,
            "p50_ms": percentile(&sorted, 0.50),
            "p95_ms": percentile(&sorted, 0.95),
            "max_ms": sorted.last().copied().unwrap_or(f64::NAN),
            "last50_mean_ms": tail.iter().sum::<f64>() / tail.len().max(1) as f64,
            "total_ms": total_ms,
            "wall_s": wall,
            "best_value": best,
        })
    );
}
