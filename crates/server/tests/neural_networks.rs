//! Neural networks, the autoencoder and reinforcement learning over MCP: what they learn on
//! generated data, that a new process reproduces their outputs exactly, and the input they refuse.

mod common;

use std::f64::consts::PI;

use common::Server;
use mlops_nn::rl::make_env;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-12);
    (-2.0 * u.ln()).sqrt() * (2.0 * PI * rng.random::<f64>()).cos()
}

/// scikit-learn's `make_moons` with Gaussian noise, as CSV (x, y, label).
fn moons(s: &Server, rel: &str, rows: usize, noise: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut csv = String::from("x,y,label\n");
    for i in 0..rows {
        let t = rng.random::<f64>() * PI;
        let (a, b, label) = if i % 2 == 0 {
            (t.cos(), t.sin(), "upper")
        } else {
            (1.0 - t.cos(), 0.5 - t.sin(), "lower")
        };
        let (a, b) = (a + noise * normal(&mut rng), b + noise * normal(&mut rng));
        csv.push_str(&format!("{a:.5},{b:.5},{label}\n"));
    }
    std::fs::create_dir_all(s.path("datasets")).unwrap();
    std::fs::write(s.path(rel), csv).unwrap();
}

async fn split(s: &Server, uri: &str) -> Value {
    s.ok("split_dataset", json!({"dataset_uri": uri, "seed": 5}))
        .await
}

#[tokio::test]
async fn an_mlp_matches_the_forest_on_moons_and_reloads_identically() {
    let s = Server::start().await;
    moons(&s, "datasets/moons.csv", 3000, 0.3);
    let d = split(&s, "datasets/moons.csv").await;
    let train = |algorithm: &str, name: &str, params: Value| {
        json!({
            "algorithm": algorithm, "train_data_uri": d["train"]["uri"], "target_column": "label",
            "validation_data_uri": d["validation"]["uri"], "training_job_name": name,
            "hyperparameters": params,
        })
    };
    let forest = s
        .ok(
            "train_supervised_classifier",
            train("random_forest", "moons-rf", json!({})),
        )
        .await;
    assert_eq!(forest["status"], "completed", "{forest}");
    let mlp = s
        .ok(
            "train_supervised_classifier",
            train(
                "neural_network",
                "moons-mlp",
                json!({"hidden_layer_sizes": [32, 32], "learning_rate": 0.01, "batch_size": 64, "epochs": 200}),
            ),
        )
        .await;
    assert_eq!(mlp["status"], "completed", "{mlp}");
    assert!(mlp["metrics"]["epochs"].as_u64().unwrap() >= 2, "{mlp}");
    let history: Vec<&str> = mlp["metrics_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metric"].as_str().unwrap())
        .collect();
    for metric in ["loss", "val_loss", "val_accuracy"] {
        assert!(
            history.contains(&metric),
            "{metric} missing from {history:?}"
        );
    }
    assert!(s.path("models/moons-mlp/weights.safetensors").exists());

    let test = json!(d["test"]["uri"]);
    let score = |name: &str| json!({"model_uri": format!("models/{name}"), "test_data_uri": test});
    let rf = s.ok("evaluate_classifier", score("moons-rf")).await;
    let nn = s.ok("evaluate_classifier", score("moons-mlp")).await;
    let (rf_acc, nn_acc) = (
        rf["accuracy"].as_f64().unwrap(),
        nn["accuracy"].as_f64().unwrap(),
    );
    assert!(nn_acc >= rf_acc, "MLP {nn_acc} < random forest {rf_acc}");
    assert!(nn_acc > 0.85, "MLP accuracy {nn_acc}");

    // Another process loads the safetensors weights and gives the same probabilities.
    let again = Server::connect(s.home.path()).await;
    let reloaded = common::call(&again, "evaluate_classifier", score("moons-mlp")).await;
    assert!(!reloaded.is_error, "{}", reloaded.text);
    assert_eq!(reloaded.structured["log_loss"], nn["log_loss"]);
    assert_eq!(
        reloaded.structured["confusion_matrix"],
        nn["confusion_matrix"]
    );
}

#[tokio::test]
async fn an_mlp_regressor_fits_a_smooth_function() {
    let s = Server::start().await;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut csv = String::from("a,b,c,y\n");
    for _ in 0..3000 {
        let (a, b, c) = (
            rng.random_range(-2.0..2.0f64),
            rng.random_range(-2.0..2.0f64),
            rng.random_range(-1.0..1.0f64),
        );
        let y = 3.0 * (1.5 * a).sin() + b * b - 2.0 * a * c;
        csv.push_str(&format!("{a:.5},{b:.5},{c:.5},{y:.5}\n"));
    }
    std::fs::create_dir_all(s.path("datasets")).unwrap();
    std::fs::write(s.path("datasets/smooth.csv"), csv).unwrap();
    let d = split(&s, "datasets/smooth.csv").await;
    let job = s
        .ok(
            "train_supervised_regressor",
            json!({
                "algorithm": "neural_network", "train_data_uri": d["train"]["uri"], "target_column": "y",
                "training_job_name": "smooth-mlp",
                "hyperparameters": {"hidden_layer_sizes": [64, 64], "activation": "tanh", "learning_rate": 0.005, "batch_size": 64, "max_iter": 300},
            }),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let eval = s
        .ok(
            "evaluate_regressor",
            json!({"model_uri": "models/smooth-mlp", "test_data_uri": d["test"]["uri"]}),
        )
        .await;
    let r2 = eval["r2"].as_f64().unwrap();
    assert!(r2 >= 0.9, "test R² {r2}");
}

/// Share of (anomaly, normal) pairs where the anomaly scores higher (ties count half).
fn roc_auc(scores: &[f64], anomalous: &[bool]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (a, _) in scores.iter().zip(anomalous).filter(|p| *p.1) {
        for (n, _) in scores.iter().zip(anomalous).filter(|p| !*p.1) {
            pairs += 1.0;
            wins += if a > n {
                1.0
            } else if a == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / pairs
}

#[tokio::test]
async fn the_autoencoder_clusters_and_scores_injected_anomalies() {
    let s = Server::start().await;
    // Three clusters on a 2-D plane inside 6-D space; every 20th row is off the plane.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut csv = String::from("f0,f1,f2,f3,f4,f5\n");
    let mut anomalous = Vec::new();
    let centres = [(-2.0, -1.0), (2.0, -1.0), (0.0, 2.0)];
    for i in 0..2000 {
        let odd = i % 20 == 0;
        let row: Vec<f64> = if odd {
            (0..6).map(|_| rng.random_range(-3.0..3.0)).collect()
        } else {
            let (cu, cv) = centres[i % 3];
            let (u, v) = (cu + 0.4 * normal(&mut rng), cv + 0.4 * normal(&mut rng));
            (0..6)
                .map(|j| {
                    let j = j as f64;
                    (0.5 * j - 1.0) * u + (1.0 - 0.3 * j) * v + 0.05 * normal(&mut rng)
                })
                .collect()
        };
        anomalous.push(odd);
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.5}")).collect();
        csv.push_str(&(cells.join(",") + "\n"));
    }
    std::fs::create_dir_all(s.path("datasets")).unwrap();
    std::fs::write(s.path("datasets/plane.csv"), csv).unwrap();
    let job = s
        .ok(
            "train_unsupervised_clustering",
            json!({
                "algorithm": "autoencoder", "data_uri": "datasets/plane.csv", "training_job_name": "plane-ae",
                "hyperparameters": {"hidden_layer_sizes": [16], "latent_dim": 2, "n_clusters": 3},
            }),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let m = &job["metrics"];
    assert!(m["anomalies"].as_u64().unwrap() > 0, "{m}");
    assert!(m["anomaly_threshold"].as_f64().unwrap() > 0.0, "{m}");

    let table = std::fs::read_to_string(s.path("results/plane-ae/clusters.csv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        ["row", "cluster", "reconstruction_error", "anomaly"]
    );
    let errors: Vec<f64> = lines
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    let auc = roc_auc(&errors, &anomalous);
    assert!(auc >= 0.9, "anomaly ROC-AUC {auc}");

    // The saved model assigns new rows to the latent clusters.
    let eval = s
        .ok(
            "evaluate_clustering",
            json!({"model_uri": "models/plane-ae", "data_uri": "datasets/plane.csv"}),
        )
        .await;
    assert_eq!(eval["n_clusters"], 3, "{eval}");
}

/// CartPole transitions from a random policy, as a logged table.
fn cartpole_log(s: &Server, rel: &str, steps: usize) {
    let mut env = make_env("CartPole-v1", None).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut csv = String::from("s0,s1,s2,s3,action,reward,n0,n1,n2,n3,done\n");
    let mut obs = env.reset(0);
    for episode in 1.. {
        loop {
            let action = rng.random_range(0..2usize);
            let step = env.step(action).unwrap();
            let cells = |v: &[f32]| {
                v.iter()
                    .map(|x| format!("{x:.6}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            csv.push_str(&format!(
                "{},{action},{},{},{}\n",
                cells(&obs),
                step.reward,
                cells(&step.observation),
                u8::from(step.terminated)
            ));
            obs = step.observation;
            if step.terminated || step.truncated {
                obs = env.reset(episode);
                break;
            }
        }
        if csv.lines().count() > steps {
            break;
        }
    }
    std::fs::create_dir_all(s.path("logs")).unwrap();
    std::fs::write(s.path(rel), csv).unwrap();
}

#[tokio::test]
async fn policies_learn_cartpole_evaluate_and_replay_identically() {
    let s = Server::start().await;
    cartpole_log(&s, "logs/cartpole.csv", 3000);
    let replay = s
        .ok(
            "preprocess_reinforcement",
            json!({"dataset_uri": "logs/cartpole.csv", "transitions": {
                "state_columns": ["s0","s1","s2","s3"], "next_state_columns": ["n0","n1","n2","n3"],
                "action_column": "action", "reward_column": "reward", "done_column": "done"}}),
        )
        .await;
    let replay_uri = replay["replay_uri"].as_str().unwrap().to_string();

    // PPO with a test-sized budget and bar; the full 475 runs are in bench/.
    let ppo = s
        .ok(
            "train_reinforcement",
            json!({"algorithm": "ppo", "training_job_name": "cart-ppo", "seed": 1,
                   "hyperparameters": {"total_timesteps": 60000, "target_return": 300.0, "eval_every_steps": 2560}}),
        )
        .await;
    assert_eq!(ppo["status"], "completed", "{ppo}");
    let history: Vec<&str> = ppo["metrics_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metric"].as_str().unwrap())
        .collect();
    assert!(history.contains(&"episode_return") && history.contains(&"eval_mean_return"));

    // DQN starts from the logged transitions.
    let dqn = s
        .ok(
            "train_reinforcement",
            json!({"algorithm": "dqn", "training_job_name": "cart-dqn", "replay_data_uri": replay_uri,
                   "hyperparameters": {"total_timesteps": 30000, "target_return": 200.0}}),
        )
        .await;
    assert_eq!(dqn["status"], "completed", "{dqn}");
    assert_eq!(
        dqn["metrics"]["offline_transitions"],
        replay["replay"]["transitions"]
    );
    // A random CartPole policy lasts about 22 steps.
    let best = dqn["metrics"]["best_eval_mean_return"].as_f64().unwrap();
    assert!(best >= 100.0, "{dqn}");

    let eval = s
        .ok(
            "evaluate_reinforcement",
            json!({"model_uri": "models/cart-ppo", "n_episodes": 20, "seed": 100}),
        )
        .await;
    assert!(eval["mean_return"].as_f64().unwrap() >= 250.0, "{eval}");
    assert_eq!(eval["returns"].as_array().unwrap().len(), 20);
    assert!(s.path("evaluations/cart-ppo/reward_curve.png").exists());
    assert!(s.path("evaluations/cart-ppo/results.json").exists());

    // Another process replays the same episodes with the reloaded policy.
    let again = Server::connect(s.home.path()).await;
    let replayed = common::call(
        &again,
        "evaluate_reinforcement",
        json!({"model_uri": "models/cart-ppo", "n_episodes": 20, "seed": 100, "evaluation_name": "ppo-again"}),
    )
    .await;
    assert!(!replayed.is_error, "{}", replayed.text);
    assert_eq!(replayed.structured["returns"], eval["returns"]);
    assert_eq!(replayed.images, ["image/png"]);

    // A long run in the background stops when cancelled, and saves nothing.
    let started = s
        .ok(
            "train_reinforcement",
            json!({"algorithm": "a3c", "training_job_name": "cart-cancel", "wait": false,
                   "hyperparameters": {"total_timesteps": 10_000_000, "target_return": null}}),
        )
        .await;
    assert_eq!(started["status"], "running", "{started}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    s.ok(
        "cancel_training_job",
        json!({"training_job_name": "cart-cancel"}),
    )
    .await;
    let mut status = Value::Null;
    for _ in 0..50 {
        let m = s
            .ok(
                "get_training_metrics",
                json!({"training_job_name": "cart-cancel"}),
            )
            .await;
        status = m["status"].clone();
        if status != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "cancelled");
    assert!(!s.path("models/cart-cancel").exists());

    // A policy cannot play an environment of another shape.
    s.err(
        "evaluate_reinforcement",
        json!({"model_uri": "models/cart-ppo", "environment": "Acrobot-v1", "evaluation_name": "bad"}),
        "the policy was trained on CartPole-v1 with 4 observations and 2 actions",
    )
    .await;
}

#[tokio::test]
async fn bad_network_and_reinforcement_input_is_refused() {
    let s = Server::start().await;
    moons(&s, "datasets/m.csv", 200, 0.1);
    let nn = |params: Value| json!({"algorithm": "neural_network", "train_data_uri": "datasets/m.csv", "target_column": "label", "hyperparameters": params});
    s.err(
        "train_supervised_classifier",
        nn(json!({"hidden_layer_sizes": [8, 0]})),
        "layer 2 has 0 units",
    )
    .await;
    s.err(
        "train_supervised_classifier",
        nn(json!({"learning_rate": 0})),
        "learning_rate must be greater than 0",
    )
    .await;
    s.err(
        "train_supervised_classifier",
        nn(json!({"dropout": 1.5})),
        "dropout must be at least 0 and below 1",
    )
    .await;
    s.err(
        "train_supervised_classifier",
        nn(json!({"momentum": 0.9})),
        "hyperparameters for neural_network: unknown field `momentum`",
    )
    .await;
    s.err("train_unsupervised_clustering", json!({"algorithm": "autoencoder", "data_uri": "datasets/m.csv", "hyperparameters": {"latent_dim": 0}}), "latent_dim must be between 1").await;

    let rl = |algorithm: &str, extra: Value| {
        let mut args = json!({"algorithm": algorithm});
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        args
    };
    s.err(
        "train_reinforcement",
        rl("ppo", json!({"environment": "Pong-v5"})),
        "CartPole-v1",
    )
    .await;
    s.err(
        "train_reinforcement",
        rl("dqn", json!({"hyperparameters": {"learning_rate": -1}})),
        "learning_rate must be a positive number",
    )
    .await;
    s.err(
        "train_reinforcement",
        rl(
            "a3c",
            json!({"hyperparameters": {"hidden_layers": [64, 0]}}),
        ),
        "has 0 units",
    )
    .await;
    s.err(
        "train_reinforcement",
        rl("ppo", json!({"hyperparameters": {"n_estimators": 3}})),
        "unknown setting `n_estimators`",
    )
    .await;

    // Offline data must fit the environment and the algorithm.
    std::fs::create_dir_all(s.path("logs")).unwrap();
    std::fs::write(
        s.path("logs/small.csv"),
        "a,b,act,r,na,nb,d\n0.1,0.2,0,1,0.2,0.3,0\n0.2,0.3,1,1,0.3,0.4,1\n",
    )
    .unwrap();
    let replay = s
        .ok(
            "preprocess_reinforcement",
            json!({"dataset_uri": "logs/small.csv", "transitions": {
                "state_columns": ["a","b"], "next_state_columns": ["na","nb"],
                "action_column": "act", "reward_column": "r", "done_column": "d"}}),
        )
        .await;
    let uri = replay["replay_uri"].clone();
    s.err(
        "train_reinforcement",
        rl("dqn", json!({"replay_data_uri": uri})),
        "state",
    )
    .await;
    s.err(
        "train_reinforcement",
        rl("ppo", json!({"replay_data_uri": uri})),
        "only be used with DQN",
    )
    .await;
}
