//! Full-budget benchmark of the RL trainers with their default settings.
//!
//! `cargo run --release -p mlops-nn --example rl_bench [-- ALGORITHMS [SEEDS] [--env NAME]
//! [--set KEY=JSON]...]`, e.g. `-- ppo,dqn 0,1,2` or `-- ppo 0,1,2 --env MountainCar-v0`.
//! The environment defaults to CartPole-v1; `--set` overrides one `RlConfig` field, e.g.
//! `--set normalize_rewards=true`. Prints one JSON line per run: the timestep at which the
//! greedy evaluation first reached the target (null if never), wall-clock seconds, and the best
//! policy's mean and std over 100 fresh evaluation episodes. The target is the environment's
//! solved return; on CartPole A3C runs twice: to 195 (the old CartPole-v0 threshold) and to 475.

use std::time::Instant;

use mlops_nn::rl::{Algorithm, RlConfig, evaluate, solved_return, train};
use mlops_nn::silent;
use mlops_nn::{Hooks, NnError};

/// Seed of the first of the 100 final evaluation episodes, apart from training's seeds.
const FINAL_EVAL_SEED: u64 = 10_000;

fn main() -> Result<(), NnError> {
    let mut positional = Vec::new();
    let mut environment = "CartPole-v1".to_string();
    let mut overrides = serde_json::Map::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| NnError::invalid(format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "--env" => environment = value("--env")?,
            "--set" => {
                let setting = value("--set")?;
                let (key, json) = setting
                    .split_once('=')
                    .ok_or_else(|| NnError::invalid(format!("--set {setting:?}: use KEY=JSON")))?;
                let json = serde_json::from_str(json)
                    .map_err(|e| NnError::invalid(format!("--set {setting:?}: {e}")))?;
                overrides.insert(key.to_string(), json);
            }
            _ => positional.push(arg),
        }
    }
    let algorithms = positional.first().map_or("ppo,dqn,a3c", String::as_str);
    let seeds: Vec<u64> = positional
        .get(1)
        .map_or("0", String::as_str)
        .split(',')
        .map(|s| {
            s.parse()
                .map_err(|_| NnError::invalid(format!("bad seed {s:?}")))
        })
        .collect::<Result<_, _>>()?;
    let solved = solved_return(&environment)
        .ok_or_else(|| NnError::invalid(format!("unknown environment {environment:?}")))?;
    for name in algorithms.split(',') {
        let algorithm = match name {
            "ppo" => Algorithm::Ppo,
            "dqn" => Algorithm::Dqn,
            "a3c" => Algorithm::A3c,
            _ => return Err(NnError::invalid(format!("unknown algorithm {name:?}"))),
        };
        let targets: &[f64] = match (algorithm, environment.as_str()) {
            (Algorithm::A3c, "CartPole-v1") => &[195.0, 475.0],
            _ => &[solved],
        };
        for &seed in &seeds {
            for &target in targets {
                let mut config = RlConfig::defaults(algorithm, &environment);
                config.seed = seed;
                config.target_return = Some(target);
                run(override_config(config, &overrides)?)?;
            }
        }
    }
    Ok(())
}

/// `config` with the `--set` fields replaced.
fn override_config(
    config: RlConfig,
    overrides: &serde_json::Map<String, serde_json::Value>,
) -> Result<RlConfig, NnError> {
    let mut json = serde_json::to_value(&config)
        .map_err(|e| NnError::Failed(format!("could not describe the settings: {e}")))?;
    for (key, value) in overrides {
        json[key] = value.clone();
    }
    serde_json::from_value(json).map_err(|e| NnError::invalid(format!("--set: {e}")))
}

fn run(config: RlConfig) -> Result<(), NnError> {
    let (cancelled, progress, metric) = silent();
    let hooks = Hooks {
        cancelled: &cancelled,
        progress: &progress,
        metric: &metric,
    };
    let start = Instant::now();
    let outcome = train(&config, None, &hooks)?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = evaluate(
        &outcome.policy,
        &config.environment,
        100,
        FINAL_EVAL_SEED,
        None,
    )?;
    let target = config.target_return.unwrap_or(f64::INFINITY);
    let line = serde_json::json!({
        "algorithm": config.algorithm,
        "environment": config.environment,
        "seed": config.seed,
        "target_return": config.target_return,
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
