//! Our metrics against scikit-learn's on the same predictions. The fixture and the script that
//! made it (scikit-learn 1.9) are in tests/fixtures/.

use mlops_eval::{classification_report, regression_report};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics_fixture.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(name: &str, ours: f64, theirs: &Value) {
    let theirs = theirs.as_f64().unwrap();
    assert!(
        (ours - theirs).abs() < 1e-9,
        "{name}: ours {ours}, scikit-learn {theirs}"
    );
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let f = fixture();
    for case in ["binary", "multiclass"] {
        let c = &f[case];
        let y: Vec<u32> = c["y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let proba: Vec<f64> = c["proba"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(floats)
            .collect();
        let k = proba.len() / y.len();
        let classes: Vec<String> = (0..k).map(|i| i.to_string()).collect();
        let r = classification_report(&y, &proba, &classes);
        for (name, ours) in [
            ("accuracy", r.accuracy),
            ("precision_macro", r.precision_macro),
            ("recall_macro", r.recall_macro),
            ("f1_macro", r.f1_macro),
            ("precision_weighted", r.precision_weighted),
            ("recall_weighted", r.recall_weighted),
            ("f1_weighted", r.f1_weighted),
            ("roc_auc", r.roc_auc.unwrap()),
            ("log_loss", r.log_loss),
        ] {
            close(&format!("{case} {name}"), ours, &c[name]);
        }
        for (i, m) in r.per_class.iter().enumerate() {
            close(
                &format!("{case} precision[{i}]"),
                m.precision,
                &c["per_class_precision"][i],
            );
            close(
                &format!("{case} recall[{i}]"),
                m.recall,
                &c["per_class_recall"][i],
            );
            close(&format!("{case} f1[{i}]"), m.f1, &c["per_class_f1"][i]);
            assert_eq!(m.support, c["support"][i].as_u64().unwrap());
        }
        let cm: Vec<Vec<u64>> = serde_json::from_value(c["confusion_matrix"].clone()).unwrap();
        assert_eq!(r.confusion_matrix, cm, "{case}");
    }
}

#[test]
fn regression_metrics_match_scikit_learn() {
    let f = fixture();
    let c = &f["regression"];
    let r = regression_report(&floats(&c["y"]), &floats(&c["pred"]));
    for (name, ours) in [
        ("mae", r.mae),
        ("mse", r.mse),
        ("rmse", r.rmse),
        ("r2", r.r2),
        ("mape", r.mape),
    ] {
        close(name, ours, &c[name]);
    }
}

#[test]
fn clustering_scores_match_scikit_learn() {
    let f = fixture();
    let c = &f["clustering"];
    let rows: Vec<Vec<f64>> = c["x"].as_array().unwrap().iter().map(floats).collect();
    let cols = rows[0].len();
    let data: Vec<f64> = (0..cols)
        .flat_map(|j| rows.iter().map(move |r| r[j]))
        .collect();
    let x = mlops_ml::Matrix {
        rows: rows.len(),
        cols,
        data,
    };
    let labels: Vec<i64> = c["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let s = mlops_ml::cluster_scores(&x, &labels, 0);
    close("silhouette", s.silhouette.unwrap(), &c["silhouette"]);
    close(
        "davies_bouldin",
        s.davies_bouldin.unwrap(),
        &c["davies_bouldin"],
    );
    close(
        "calinski_harabasz",
        s.calinski_harabasz.unwrap(),
        &c["calinski_harabasz"],
    );
}
