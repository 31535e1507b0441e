//! The drift statistics against NumPy/SciPy (fixtures made by `scripts/drift_fixtures.py`), and
//! the verdicts on data drawn from the training distribution and on data drifted three ways.

use std::path::{Path, PathBuf};

use mlops_data::drift::{
    Distribution, DriftThresholds, Extras, FeatureProfile, ReferenceProfile, Verdict, compare,
    compare_feature, kolmogorov_sf,
};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drift")
}

fn read_column(file: &str, categorical: bool) -> Column {
    let mut schema = Schema::default();
    let dtype = if categorical {
        DataType::String
    } else {
        DataType::Float64
    };
    schema.with_column("value".into(), dtype);
    let df = CsvReadOptions::default()
        .with_schema(Some(Arc::new(schema)))
        .try_into_reader_with_file_path(Some(fixtures().join(file)))
        .unwrap()
        .finish()
        .unwrap();
    df.column("value").unwrap().clone()
}

#[track_caller]
fn close(ours: f64, theirs: &Value, what: &str) {
    let theirs = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no expected value"));
    let tolerance = 1e-6 * theirs.abs().max(1.0);
    assert!(
        (ours - theirs).abs() <= tolerance,
        "{what}: ours {ours}, SciPy/NumPy {theirs}"
    );
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect()
}

#[test]
fn statistics_equal_scipy_and_numpy_on_the_fixtures() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let cases = expected["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 6);
    for (case, want) in cases {
        let categorical = want["kind"] == "categorical";
        let reference = read_column(&format!("{case}_reference.csv"), categorical);
        let current = read_column(&format!("{case}_current.csv"), categorical);
        let profile = FeatureProfile::of(&reference).unwrap();
        let got = compare_feature(&profile, &current, &DriftThresholds::default()).unwrap();
        let what = |s: &str| format!("{case}: {s}");
        close(got.psi, &want["psi"], &what("PSI"));
        close(
            got.missing_rate_reference,
            &want["missing_rate_reference"],
            &what("reference missing rate"),
        );
        close(
            got.missing_rate_current,
            &want["missing_rate_current"],
            &what("current missing rate"),
        );
        match &profile.distribution {
            Distribution::Numeric {
                mean,
                std,
                bin_edges,
                bin_counts,
                ..
            } => {
                close(mean.unwrap(), &want["mean"], &what("mean"));
                close(std.unwrap(), &want["std"], &what("std"));
                let edges = want["bin_edges"].as_array().unwrap();
                assert_eq!(bin_edges.len(), edges.len(), "{case}: bin edges");
                for (ours, theirs) in bin_edges.iter().zip(edges) {
                    close(*ours, theirs, &what("bin edge"));
                }
                assert_eq!(bin_counts, &counts(&want["bin_counts"]), "{case}");
                close(
                    got.ks_statistic.unwrap(),
                    &want["ks_statistic"],
                    &what("KS"),
                );
                close(got.ks_p_value.unwrap(), &want["ks_p_value"], &what("KS p"));
            }
            Distribution::Categorical { values, other, .. } => {
                let names: Vec<&str> = values.iter().map(|v| v.value.as_str()).collect();
                let want_names: Vec<&str> = want["categories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(names, want_names, "{case}: categories in order");
                let mut ours: Vec<u64> = values.iter().map(|v| v.count as u64).collect();
                ours.push(*other);
                assert_eq!(ours, counts(&want["bin_counts"]), "{case}");
                close(
                    got.chi_square.unwrap(),
                    &want["chi_square"],
                    &what("chi-square"),
                );
                close(
                    got.chi_square_p_value.unwrap(),
                    &want["chi_square_p_value"],
                    &what("chi-square p"),
                );
                close(got.js_distance.unwrap(), &want["js_distance"], &what("JS"));
            }
        }
    }
    for (y, want) in expected["kolmogorov"].as_object().unwrap() {
        close(
            kolmogorov_sf(y.parse().unwrap()),
            want,
            &format!("kolmogorov({y})"),
        );
    }
}

#[test]
fn a_new_category_is_named() {
    let reference = read_column("categories_new_value_reference.csv", true);
    let current = read_column("categories_new_value_current.csv", true);
    let profile = FeatureProfile::of(&reference).unwrap();
    let got = compare_feature(&profile, &current, &DriftThresholds::default()).unwrap();
    assert_eq!(got.new_categories.len(), 1);
    assert_eq!(got.new_categories[0].value, "elder");
    assert_eq!(got.new_categories[0].count, 50);
    assert_eq!(got.verdict, Verdict::Drift);
    // A long tail cannot say what is new: values past the kept ones are only "other".
    let reference = read_column("categories_long_tail_reference.csv", true);
    let current = read_column("categories_long_tail_current.csv", true);
    let profile = FeatureProfile::of(&reference).unwrap();
    let got = compare_feature(&profile, &current, &DriftThresholds::default()).unwrap();
    assert!(got.new_categories.is_empty());
}

/// Rows from the "training" distribution: three numbers and two categories; `drifted` shifts
/// `income`'s mean by 1.5 standard deviations, gives `region` a new value in 10% of rows and
/// leaves `age` missing in 12% of rows.
fn sample(rows: usize, seed: u64, drifted: bool) -> DataFrame {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = |mean: f64, std: f64| {
        // Box–Muller.
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        mean + std * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let shift = if drifted { 1.5 * 15_000.0 } else { 0.0 };
    let income: Vec<f64> = (0..rows)
        .map(|_| normal(50_000.0 + shift, 15_000.0))
        .collect();
    let score: Vec<f64> = (0..rows).map(|_| normal(0.0, 1.0)).collect();
    let mut age: Vec<Option<f64>> = (0..rows).map(|_| Some(normal(40.0, 10.0))).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    if drifted {
        for a in age.iter_mut() {
            if rng.random::<f64>() < 0.12 {
                *a = None;
            }
        }
    }
    let regions = ["north", "south", "east", "west"];
    let region: Vec<&str> = (0..rows)
        .map(|_| {
            if drifted && rng.random::<f64>() < 0.10 {
                "atlantis"
            } else {
                regions[rng.random_range(0..4)]
            }
        })
        .collect();
    let plan = ["basic", "plus", "pro"];
    let plan: Vec<&str> = (0..rows).map(|_| plan[rng.random_range(0..3)]).collect();
    df!(
        "income" => income,
        "score" => score,
        "age" => age,
        "region" => region,
        "plan" => plan,
    )
    .unwrap()
}

const FEATURES: [&str; 5] = ["income", "score", "age", "region", "plan"];

#[test]
fn a_fresh_sample_raises_no_alarm() {
    let reference =
        ReferenceProfile::build(&sample(5000, 1, false), &FEATURES, None, None).unwrap();
    for seed in [10, 20, 30] {
        let current = sample(5000, seed, false);
        let got = compare(
            &reference,
            &current,
            Extras::default(),
            &DriftThresholds::default(),
        )
        .unwrap();
        assert_eq!(got.verdict, Verdict::Ok, "seed {seed}: {:#?}", got.features);
        assert!(got.drifted_features.is_empty());
    }
}

#[test]
fn the_three_drifted_features_are_flagged_most_severe_first() {
    let reference =
        ReferenceProfile::build(&sample(5000, 1, false), &FEATURES, None, None).unwrap();
    let current = sample(5000, 99, true);
    let got = compare(
        &reference,
        &current,
        Extras::default(),
        &DriftThresholds::default(),
    )
    .unwrap();
    assert_eq!(got.verdict, Verdict::Drift);
    assert_eq!(
        got.drifted_features,
        ["income", "region", "age"],
        "{:#?}",
        got.features
    );
    assert!(got.warned_features.is_empty(), "{:?}", got.warned_features);
    let region = got.features.iter().find(|f| f.feature == "region").unwrap();
    assert_eq!(region.new_categories[0].value, "atlantis");
    let age = got.features.iter().find(|f| f.feature == "age").unwrap();
    assert!((age.missing_rate_current - 0.12).abs() < 0.02);
    assert!(
        age.reasons
            .iter()
            .any(|r| r.contains("missing-rate change"))
    );
}

#[test]
fn a_profile_survives_its_json_form() {
    let reference =
        ReferenceProfile::build(&sample(3000, 1, false), &FEATURES, None, None).unwrap();
    let again = ReferenceProfile::from_json(&reference.to_json()).unwrap();
    assert_eq!(reference, again);
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let reference = ReferenceProfile::build(&sample(500, 1, false), &FEATURES, None, None).unwrap();
    let current = sample(100, 2, false).drop_many(["income", "plan"]);
    let e = compare(
        &reference,
        &current,
        Extras::default(),
        &DriftThresholds::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("lacks 2 of the model's features: income, plan"),
        "{e}"
    );

    let empty = sample(100, 2, false).head(Some(0));
    let e = compare(
        &reference,
        &empty,
        Extras::default(),
        &DriftThresholds::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no rows"), "{e}");

    let mut thresholds = DriftThresholds::default();
    thresholds.psi.warn = 0.5;
    let e = compare(
        &reference,
        &sample(100, 2, false),
        Extras::default(),
        &thresholds,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("thresholds.psi"), "{e}");
    thresholds = DriftThresholds {
        p_value: 1.5,
        ..Default::default()
    };
    assert!(thresholds.validate().is_err());

    let text = df!("income" => ["a", "b"], "score" => [1.0, 2.0], "age" => [1.0, 2.0],
        "region" => ["north", "south"], "plan" => ["basic", "pro"])
    .unwrap();
    let e = compare(
        &reference,
        &text,
        Extras::default(),
        &DriftThresholds::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`income` holds"), "{e}");
}
