//! A churn-like table for the monitoring tests, drifted on demand, and a model of it in
//! Production.

use std::fmt::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Map, Value, json};

/// `income`, `score`, `age` (numbers), `region`, `plan` (categories) and a `label` that depends
/// on them, as CSV text and as `predict` records. `drifted` shifts income by 1.5 standard
/// deviations, sends 10% of rows from a region never seen, and leaves `age` missing in 12% of
/// rows.
pub fn table(rows: usize, seed: u64, drifted: bool) -> (String, Vec<Map<String, Value>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| {
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        mean + std * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let regions = ["north", "south", "east", "west"];
    let plans = ["basic", "plus", "pro"];
    let mut csv = String::from("income,score,age,region,plan,label\n");
    let mut records = Vec::new();
    for _ in 0..rows {
        let income = normal(
            &mut rng,
            if drifted { 72_500.0 } else { 50_000.0 },
            15_000.0,
        );
        let score = normal(&mut rng, 0.0, 1.0);
        let age = normal(&mut rng, 40.0, 10.0);
        let age_missing = drifted && rng.random::<f64>() < 0.12;
        let region = if drifted && rng.random::<f64>() < 0.10 {
            "atlantis"
        } else {
            regions[rng.random_range(0..4)]
        };
        let plan = plans[rng.random_range(0..3)];
        let churn = score + (income - 50_000.0) / 30_000.0 + if plan == "pro" { 0.8 } else { 0.0 };
        let label = if churn + normal(&mut rng, 0.0, 0.5) > 0.3 {
            "yes"
        } else {
            "no"
        };
        let age_text = if age_missing {
            String::new()
        } else {
            format!("{age:.3}")
        };
        writeln!(
            csv,
            "{income:.2},{score:.5},{age_text},{region},{plan},{label}"
        )
        .unwrap();
        let mut r = Map::new();
        r.insert("income".into(), json!((income * 100.0).round() / 100.0));
        r.insert("score".into(), json!(score));
        r.insert(
            "age".into(),
            if age_missing { Value::Null } else { json!(age) },
        );
        r.insert("region".into(), json!(region));
        r.insert("plan".into(), json!(plan));
        records.push(r);
    }
    (csv, records)
}

/// Writes `text` to `rel` under `home`.
pub fn write(home: &std::path::Path, rel: &str, text: &str) {
    let path = home.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Trains a small random forest `job` on `datasets/train.csv` (target `label`) and makes it
/// version 1 of `model`, approved and in Production.
pub async fn in_production(client: &RunningService<RoleClient, ()>, model: &str, job: &str) {
    let calls = [
        (
            "train_supervised_classifier",
            json!({
                "algorithm": "random_forest", "train_data_uri": "datasets/train.csv", "target_column": "label",
                "training_job_name": job, "hyperparameters": {"n_estimators": 5}
            }),
        ),
        (
            "register_model",
            json!({"model_name": model, "model_uri": format!("models/{job}")}),
        ),
        (
            "set_model_approval",
            json!({"model_name": model, "version": 1, "approval_status": "Approved"}),
        ),
        (
            "transition_model_stage",
            json!({"model_name": model, "version": 1, "stage": "Production"}),
        ),
    ];
    for (tool, args) in calls {
        let r = super::call(client, tool, args).await;
        assert!(!r.is_error, "{tool}: {}", r.text);
    }
}
