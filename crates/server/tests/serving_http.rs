//! Online inference over HTTP with the real binary (`serve --http`): the Open Inference Protocol
//! v2 and MLflow's four payload shapes give the `predict` tool's numbers, behind the same bearer
//! tokens; `/metrics` counts per model; and, with two instances on one PostgreSQL, a promotion,
//! a rollback and an alias move under continuous load are followed by both within 2 s, every
//! answer 200 and from a version that was current at the time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::HttpServer;
use serde_json::{Map, Value, json};

const TOKEN: &str = "serving-token-0123456789abcdef";

/// MCP tool call over HTTP that must succeed.
async fn tool(s: &HttpServer, tool: &str, args: Value) -> Value {
    let client = s.client(Some(TOKEN)).await;
    let r = common::call(&client, tool, args.clone()).await;
    assert!(!r.is_error, "{tool} {args}: {}", r.text);
    client.cancel().await.unwrap();
    r.structured
}

/// The first `n` rows of the generated classification table, as objects of raw columns.
fn rows(s: &HttpServer, n: usize) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(s.path("datasets/d.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .take(n)
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .filter(|(h, _)| h.as_str() != "label")
                .map(|(h, v)| {
                    let v = v.parse::<f64>().map_or_else(|_| json!(v), |x| json!(x));
                    (h.clone(), v)
                })
                .collect()
        })
        .collect()
}

/// An OIP request: one tensor per column.
fn oip_request(rows: &[Map<String, Value>]) -> Value {
    let columns: Vec<&String> = rows[0].keys().collect();
    let inputs: Vec<Value> = columns
        .iter()
        .map(|c| {
            let data: Vec<Value> = rows.iter().map(|r| r[c.as_str()].clone()).collect();
            let datatype = if data[0].is_number() { "FP64" } else { "BYTES" };
            json!({"name": c, "shape": [rows.len()], "datatype": datatype, "data": data})
        })
        .collect();
    json!({"id": "req-1", "inputs": inputs})
}

async fn train_and_register(s: &HttpServer, job: &str, trees: u32) {
    tool(s, "train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": "datasets/d.csv", "target_column": "label",
        "training_job_name": job, "hyperparameters": {"n_estimators": trees, "max_depth": 3}, "seed": trees
    }))
    .await;
    let v = tool(
        s,
        "register_model",
        json!({"model_name": "churn", "model_uri": format!("models/{job}")}),
    )
    .await;
    tool(
        s,
        "set_model_approval",
        json!({"model_name": "churn", "version": v["version"], "approval_status": "Approved"}),
    )
    .await;
}

#[tokio::test]
async fn oip_and_mlflow_give_the_predict_tools_numbers() {
    let s = HttpServer::start(&[("MLOPS_HTTP_TOKENS", TOKEN)]).await;
    s.generate(400, "datasets/d.csv");
    train_and_register(&s, "m1", 10).await;
    tool(
        &s,
        "transition_model_stage",
        json!({"model_name": "churn", "version": 1, "stage": "Production"}),
    )
    .await;
    let records = rows(&s, 5);
    let expected = tool(
        &s,
        "predict",
        json!({"model_name": "churn", "records": records}),
    )
    .await;
    let expected = expected["predictions"].as_array().unwrap().clone();
    let http = &s.http;
    let post =
        |path: &str, body: Value| http.post(s.url(path)).bearer_auth(TOKEN).json(&body).send();

    // Without a token: 401, as for /mcp.
    let r = http
        .post(s.url("/v2/models/churn/infer"))
        .json(&oip_request(&records))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The Open Inference Protocol v2.
    let meta: Value = http
        .get(s.url("/v2/models/churn"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["versions"], json!(["1"]), "{meta}");
    let names: Vec<&str> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"f0") && names.contains(&"segment") && !names.contains(&"label"),
        "{meta}"
    );
    assert_eq!(meta["outputs"][1]["shape"], json!([-1, 2]));
    let ready = http
        .get(s.url("/v2/models/churn/ready"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let r = post("/v2/models/churn/infer", oip_request(&records))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-model-version"], "1");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["id"], "req-1");
    let labels = &answer["outputs"][0];
    let probabilities = &answer["outputs"][1];
    assert_eq!(probabilities["shape"], json!([5, 2]));
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(labels["data"][i], e["label"], "{answer}");
        let classes: Vec<&String> = e["probabilities"].as_object().unwrap().keys().collect();
        for (k, c) in classes.iter().enumerate() {
            assert_eq!(
                probabilities["data"][i * 2 + k],
                e["probabilities"][c.as_str()]
            );
        }
    }
    // One [rows, columns] tensor in the model's input order works too.
    let order: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let flat: Vec<Value> = records
        .iter()
        .flat_map(|r| order.iter().map(|c| r[c].clone()))
        .collect();
    let r: Value = post(
        "/v2/models/churn/versions/1/infer",
        json!({"inputs": [{"name": "input", "shape": [5, order.len()], "datatype": "BYTES", "data": flat}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["outputs"][0], *labels, "{r}");
    // Clear errors.
    let r = post("/v2/models/nobody/infer", oip_request(&records))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("nobody"), "{e}");
    let mut missing = records.clone();
    missing.iter_mut().for_each(|r| {
        r.remove("f3");
    });
    let r = post("/v2/models/churn/infer", oip_request(&missing))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("f3"), "{e}");

    // MLflow's four payloads, the same labels.
    let columns: Vec<String> = records[0].keys().cloned().collect();
    let labels_of = |v: &Value| v["predictions"].clone();
    let want: Value = expected.iter().map(|e| e["label"].clone()).collect();
    let split = json!({"dataframe_split": {
        "columns": columns,
        "data": records.iter().map(|r| columns.iter().map(|c| r[c].clone()).collect::<Vec<_>>()).collect::<Vec<_>>()
    }});
    let by_column: Map<String, Value> = columns
        .iter()
        .map(|c| (c.clone(), records.iter().map(|r| r[c].clone()).collect()))
        .collect();
    let positional: Vec<Vec<Value>> = records
        .iter()
        .map(|r| order.iter().map(|c| r[c].clone()).collect())
        .collect();
    for payload in [
        split,
        json!({"dataframe_records": records}),
        json!({"instances": records}),
        json!({"inputs": by_column}),
        json!({"instances": positional}),
    ] {
        let r = post("/v1/models/churn/invocations", payload.clone())
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{payload}");
        assert_eq!(r.headers()["x-model-version"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(labels_of(&body), want, "{payload}");
    }
    let r = post("/v1/models/churn/invocations", json!({"rows": []}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // /metrics counts requests, errors and latency per model.
    let text = http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("mlops_serving_requests_total{model=\"churn\"}"),
        "{text}"
    );
    // The rows without f3 and the payload of no known shape.
    assert!(
        text.contains("mlops_serving_errors_total{model=\"churn\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("mlops_serving_request_seconds_bucket{model=\"churn\",le=\"+Inf\"}"),
        "{text}"
    );
}

/// One answered request: when it was sent and answered, by which instance, and what it said.
struct Observed {
    sent: Instant,
    answered: Instant,
    route: &'static str,
    status: u16,
    version: Option<i64>,
    probabilities: Value,
}

#[tokio::test]
async fn two_instances_follow_promotion_rollback_and_alias_moves_under_load() {
    let Some((url, _schema)) = mlops_db::testing::fresh_pg_schema("swap").await else {
        return;
    };
    let env = [
        ("MLOPS_HTTP_TOKENS", TOKEN),
        ("MLOPS_DATABASE_URL", url.as_str()),
        ("MLOPS_HTTP_RATE_LIMIT", "0"),
    ];
    let a = HttpServer::start(&env).await;
    let b = a.beside(&env).await;
    a.generate(400, "datasets/d.csv");
    train_and_register(&a, "m1", 3).await;
    train_and_register(&a, "m2", 30).await;
    tool(
        &a,
        "transition_model_stage",
        json!({"model_name": "churn", "version": 1, "stage": "Production"}),
    )
    .await;
    tool(
        &a,
        "set_model_alias",
        json!({"model_name": "churn", "alias": "champion", "version": 1}),
    )
    .await;
    let records = rows(&a, 20);
    // What each version says about these rows, to catch an answer mixed up between versions.
    let mut said = std::collections::HashMap::new();
    for v in [1, 2] {
        let r = a
            .http
            .post(a.url(&format!("/v2/models/churn/versions/{v}/infer")))
            .bearer_auth(TOKEN)
            .json(&oip_request(&records))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        said.insert(v, body["outputs"][1]["data"].clone());
    }
    assert_ne!(
        said[&1], said[&2],
        "the two versions must disagree somewhere for this test to see them"
    );

    let request = Arc::new(oip_request(&records));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for (i, (base, route)) in [
        (a.base.clone(), "/v2/models/churn/infer"),
        (b.base.clone(), "/v2/models/churn/infer"),
        (a.base.clone(), "/v2/models/churn@champion/infer"),
        (b.base.clone(), "/v2/models/churn@champion/infer"),
    ]
    .into_iter()
    .enumerate()
    {
        let (request, stop) = (request.clone(), stop.clone());
        let instance: &'static str = ["a", "b", "a", "b"][i];
        let label: &'static str = if route.contains('@') {
            "alias"
        } else {
            "production"
        };
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let r = http
                    .post(format!("{base}{route}"))
                    .bearer_auth(TOKEN)
                    .json(&*request)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let version = r
                    .headers()
                    .get("x-model-version")
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                let body: Value = r.json().await.unwrap_or(Value::Null);
                seen.push(Observed {
                    sent,
                    answered: Instant::now(),
                    route: if instance == "a" {
                        if label == "alias" {
                            "a-alias"
                        } else {
                            "a-production"
                        }
                    } else if label == "alias" {
                        "b-alias"
                    } else {
                        "b-production"
                    },
                    status,
                    version,
                    probabilities: body["outputs"][1]["data"].clone(),
                });
            }
            seen
        }));
    }
    // The changes, each through the other instance's neighbour, with when they were made.
    let pause = Duration::from_secs(3);
    tokio::time::sleep(pause).await;
    let promoted = (Instant::now(), {
        tool(
            &b,
            "transition_model_stage",
            json!({"model_name": "churn", "version": 2, "stage": "Production"}),
        )
        .await;
        Instant::now()
    });
    tokio::time::sleep(pause).await;
    let rolled_back = (Instant::now(), {
        let r = tool(&a, "rollback_model", json!({"model_name": "churn"})).await;
        assert_eq!(r["to"]["version"], 1, "{r}");
        Instant::now()
    });
    tokio::time::sleep(pause).await;
    let moved = (Instant::now(), {
        tool(
            &b,
            "set_model_alias",
            json!({"model_name": "churn", "alias": "champion", "version": 2, "reassign": true}),
        )
        .await;
        Instant::now()
    });
    tokio::time::sleep(pause).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    assert!(
        seen.len() > 100,
        "only {} requests were answered",
        seen.len()
    );
    // Which versions each route may legitimately answer with at a time: the old one until the
    // change is made, either one while it spreads (up to 2 s after), the new one after that.
    let follow = Duration::from_secs(2);
    let allowed = |o: &Observed| -> Vec<i64> {
        let changes: Vec<((Instant, Instant), i64, i64)> = if o.route.ends_with("alias") {
            vec![(moved, 1, 2)]
        } else {
            vec![(promoted, 1, 2), (rolled_back, 2, 1)]
        };
        let mut current = vec![changes[0].1];
        for ((started, done), before, after) in changes {
            if o.answered < started {
                break;
            }
            current = if o.sent > done + follow {
                vec![after]
            } else {
                vec![before, after]
            };
        }
        current
    };
    let mut switched: std::collections::BTreeMap<&str, Duration> = Default::default();
    for o in &seen {
        assert_eq!(o.status, 200, "a request failed during the switches");
        let v = o.version.expect("every answer names its version");
        assert!(
            allowed(o).contains(&v),
            "{} answered version {v} at a time only {:?} was current",
            o.route,
            allowed(o)
        );
        assert_eq!(
            o.probabilities, said[&v],
            "{}: version {v}'s answer does not match that version",
            o.route
        );
        if o.route.ends_with("production") && v == 2 && o.sent > promoted.1 {
            let took = o.answered.duration_since(promoted.1);
            switched
                .entry(o.route)
                .and_modify(|d| *d = (*d).min(took))
                .or_insert(took);
        }
    }
    for route in ["a-production", "b-production"] {
        let took = switched.get(route).copied();
        assert!(
            took.is_some_and(|t| t <= follow),
            "{route} did not follow the promotion within 2 s: {took:?}"
        );
    }
}
