//! Registry throughput and search latency, the same workload as bench/registry_anchor.py runs on
//! MLflow: N versions of one model registered one after another (each with a tag `i`), then 50
//! searches by name and tag.
//!
//! cargo run --release -p mlops-registry --example registry_bench -- URL N
//! (URL: sqlite:///tmp/bench.db or postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dbench)

use std::collections::BTreeMap;
use std::time::Instant;

use mlops_registry::{Lineage, NewVersion, Registry, SearchQuery, SqlRegistry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: registry_bench URL N")?;
    let n: usize = args.next().ok_or("usage: registry_bench URL N")?.parse()?;
    let reg = SqlRegistry::connect(&url).await?;
    let started = Instant::now();
    for i in 0..n {
        reg.register(NewVersion {
            name: "anchor".into(),
            artifact_uri: format!("models/{i}"),
            algorithm: None,
            task: None,
            metrics: BTreeMap::new(),
            parameters: serde_json::Value::Null,
            tags: BTreeMap::from([("i".to_string(), i.to_string())]),
            description: None,
            lineage: Lineage::default(),
        })
        .await?;
    }
    let registration_s = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for k in 0..50 {
        let q = SearchQuery {
            name_pattern: Some("anchor".into()),
            tags: BTreeMap::from([("i".to_string(), (k * (n / 50)).to_string())]),
            limit: 20,
            ..Default::default()
        };
        let t = Instant::now();
        let (hits, _) = reg.search(&q).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(hits.len(), 1);
    }
    latencies.sort_by(f64::total_cmp);
    let backend = url.split(':').next().unwrap_or("?");
    println!(
        "{{\"workload\": \"mlops_registry_{backend}_{n}\", \"registrations_per_s\": {:.1}, \"search_p50_ms\": {:.2}, \"search_p99_ms\": {:.2}}}",
        n as f64 / registration_s,
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    Ok(())
}
