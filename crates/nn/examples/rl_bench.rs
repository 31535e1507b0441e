//! Full-budget CartPole-v1 benchmark of the RL trainers with their default settings.
//!
//! `cargo run --release -p mlops-nn --example rl_bench [-- ALGORITHMS [SEEDS]]`, e.g.
//! `-- ppo,dqn 0,1,2`. Prints one JSON line per run: the timestep at which the greedy
//! evaluation first reached the target (null if never), wall-clock seconds, and the best
//! policy's mean and std over 100 fresh evaluation episodes. A3C runs twice: to 195 (the old
//! CartPole-v0 threshold) and to 475.

use std::time::Instant;

use mlops_nn::hooks::silent;
use mlops_nn::rl::{Algorithm, RlConfig, evaluate, train};
use mlops_nn::{Hooks, NnError};

/// Seed of the first of the 100 final evaluation episodes, apart from training's seeds.
const FINAL_EVAL_SEED: u64 = 10_000;

fn main() -> Result<(), NnError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let algorithms = args.first().map_or("ppo,dqn,a3c", String::as_str);
    let seeds: Vec<u64> = args
        .get(1)
        .map_or("0", String::as_str)
        .split(',')
        .map(|s| {
            s.parse()
                .map_err(|_| NnError::invalid(format!("bad seed {s:?}")))
        })
        .collect::<Result<_, _>>()?;
    for name in algorithms.split(',') {
        let (algorithm, targets): (Algorithm, &[f64]) = match name {
            "ppo" => (Algorithm::Ppo, &[475.0]),
            "dqn" => (Algorithm::Dqn, &[475.0]),
            "a3c" => (Algorithm::A3c, &[195.0, 475.0]),
            _ => return Err(NnError::invalid(format!("unknown algorithm {name:?}"))),
        };
        for &seed in &seeds {
            for &target in targets {
                run(algorithm, seed, target)?;
            }
        }
    }
    Ok(())
}

fn run(algorithm: Algorithm, seed: u64, target: f64) -> Result<(), NnError> {
    let mut config = RlConfig::defaults(algorithm, "CartPole-v1");
    config.seed = seed;
    config.target_return = Some(target);
    let (cancelled, progress, metric) = silent();
    let hooks = Hooks {
        cancelled: &cancelled,
        progress: &progress,
        metric: &metric,
    };
    let start = Instant::now();
    let outcome = train(&config, None, &hooks)?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = evaluate(&outcome.policy, "CartPole-v1", 100, FINAL_EVAL_SEED, None)?;
    let line = serde_json::json!({
        "algorithm": algorithm,
        "seed": seed,
        "target_return": target,
        "reached_target": outcome.reached_target,
        "timesteps_to_target": outcome.evaluations.iter().find(|&&(_, m)| m >= target).map(|&(t, _)| t),
        "timesteps": outcome.timesteps,
        "episodes": outcome.episodes,
        "best_training_eval": outcome.evaluations.iter().map(|&(_, m)| m).fold(f64::NEG_INFINITY, f64::max),
        "seconds": (seconds * 100.0).round() / 100.0,
        "eval100_mean": stats.mean,
        "eval100_std": (stats.std * 100.0).round() / 100.0,
    });
    println!("{line}");
    Ok(())
}
