//! Comparing current data with a reference profile: the statistics per feature, a verdict per
//! feature from the thresholds, and the features ranked by how far they moved.

use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::reference::{
    Distribution, FeatureProfile, ReferenceProfile, bin_counts, categories, numbers,
};
use super::stats::{chi_square, js_distance, ks_p_value, ks_statistic, psi, shares};
use crate::error::DataError;
use crate::profile::{ValueCount, value_counts};

/// A warning level and a drift level for one statistic (larger means further apart).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub warn: f64,
    pub drift: f64,
}

/// The levels at which a feature is reported as warned or drifted. KS and Jensen–Shannon count
/// only when their test is significant (p-value below `p_value`), so large samples do not raise
/// alarms over differences too small to matter, and small ones do not over noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DriftThresholds {
    /// Population Stability Index (every feature). Default 0.1 warn, 0.25 drift.
    pub psi: Band,
    /// Kolmogorov–Smirnov statistic (numbers). Default 0.1 warn, 0.2 drift.
    pub ks_statistic: Band,
    /// Jensen–Shannon distance, natural log (categories). Default 0.1 warn, 0.2 drift.
    pub js_distance: Band,
    /// Change in the share of missing values. Default 0.05 warn, 0.1 drift.
    pub missing_rate_change: Band,
    /// Significance level of the KS and chi-square tests. Default 0.05.
    pub p_value: f64,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        Self {
            psi: Band {
                warn: 0.1,
                drift: 0.25,
            },
            ks_statistic: Band {
                warn: 0.1,
                drift: 0.2,
            },
            js_distance: Band {
                warn: 0.1,
                drift: 0.2,
            },
            missing_rate_change: Band {
                warn: 0.05,
                drift: 0.1,
            },
            p_value: 0.05,
        }
    }
}

impl DriftThresholds {
    /// Checks every level is in its statistic's range, and warn ≤ drift.
    pub fn validate(&self) -> Result<(), DataError> {
        let bands = [
            ("psi", self.psi, f64::INFINITY),
            ("ks_statistic", self.ks_statistic, 1.0),
            (
                "js_distance",
                self.js_distance,
                std::f64::consts::LN_2.sqrt(),
            ),
            ("missing_rate_change", self.missing_rate_change, 1.0),
        ];
        for (name, band, max) in bands {
            let in_range = |v: f64| v.is_finite() && v > 0.0 && v <= max;
            if !in_range(band.warn) || !in_range(band.drift) || band.warn > band.drift {
                return Err(DataError::invalid(format!(
                    "thresholds.{name} must have 0 < warn ≤ drift ≤ {max:.3}; got warn {}, drift {}",
                    band.warn, band.drift
                )));
            }
        }
        if !(self.p_value > 0.0 && self.p_value < 1.0) {
            return Err(DataError::invalid(format!(
                "thresholds.p_value must be between 0 and 1 (exclusive); got {}",
                self.p_value
            )));
        }
        Ok(())
    }
}

/// A feature's (or the whole data's) state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Warn,
    Drift,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Drift => "drift",
        }
    }

    fn of(value: f64, band: Band) -> Self {
        if value >= band.drift {
            Verdict::Drift
        } else if value >= band.warn {
            Verdict::Warn
        } else {
            Verdict::Ok
        }
    }
}

/// One bin's (or category's) share of the rows on each side, for plots and reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BinShare {
    pub bin: String,
    pub reference: f64,
    pub current: f64,
}

/// How one feature moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeatureDrift {
    pub feature: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    pub verdict: Verdict,
    /// How far past its drift level the worst statistic is (1.0 = exactly at it); features are
    /// ranked by this.
    pub severity: f64,
    pub psi: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks_statistic: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks_p_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi_square: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi_square_p_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub js_distance: Option<f64>,
    pub missing_rate_reference: f64,
    pub missing_rate_current: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_reference: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_current: Option<f64>,
    /// Values never seen in the reference (when the reference kept all of its values).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_categories: Vec<ValueCount>,
    /// Which statistics crossed which level, in words.
    pub reasons: Vec<String>,
    /// Reference and current shares per bin or category.
    pub bins: Vec<BinShare>,
}

/// A comparison of current data with a reference profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DriftComparison {
    /// `drift` when any feature drifted, else `warn` when any was warned, else `ok`.
    pub verdict: Verdict,
    pub reference_rows: usize,
    pub current_rows: usize,
    /// Drifted features, most severe first.
    pub drifted_features: Vec<String>,
    pub warned_features: Vec<String>,
    /// Every feature, drifted first, then warned, then the rest; by severity within each.
    pub features: Vec<FeatureDrift>,
    /// The model's predictions, when both sides have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<FeatureDrift>,
    /// The target, when both sides have it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<FeatureDrift>,
    pub thresholds: DriftThresholds,
}

/// Columns of the current data that stand for the profile's prediction and target.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    pub prediction: Option<&'a Column>,
    pub target: Option<&'a Column>,
}

/// Compares `current` with `reference` feature by feature. Every profiled feature must be a
/// column of `current` (all missing ones are named at once); other columns are ignored.
pub fn compare(
    reference: &ReferenceProfile,
    current: &DataFrame,
    extras: Extras<'_>,
    thresholds: &DriftThresholds,
) -> Result<DriftComparison, DataError> {
    thresholds.validate()?;
    reference.require_features(current)?;
    if current.height() == 0 {
        return Err(DataError::invalid("the current data has no rows"));
    }
    let mut features = reference
        .features
        .iter()
        .map(|f| {
            let column = current.column(&f.name)?;
            compare_feature(f, column, thresholds)
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    features.sort_by(|a, b| {
        b.verdict
            .cmp(&a.verdict)
            .then(b.severity.total_cmp(&a.severity))
            .then_with(|| a.feature.cmp(&b.feature))
    });
    let named = |verdict: Verdict| -> Vec<String> {
        features
            .iter()
            .filter(|f| f.verdict == verdict)
            .map(|f| f.feature.clone())
            .collect()
    };
    let (drifted_features, warned_features) = (named(Verdict::Drift), named(Verdict::Warn));
    let side = |profile: &Option<FeatureProfile>, column: Option<&Column>| match (profile, column) {
        (Some(p), Some(c)) => compare_feature(p, c, thresholds).map(Some),
        _ => Ok(None),
    };
    Ok(DriftComparison {
        verdict: features
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Ok),
        reference_rows: reference.rows,
        current_rows: current.height(),
        drifted_features,
        warned_features,
        prediction: side(&reference.prediction, extras.prediction)?,
        target: side(&reference.target, extras.target)?,
        features,
        thresholds: *thresholds,
    })
}

/// The statistics and verdict of one column against its reference.
pub fn compare_feature(
    reference: &FeatureProfile,
    column: &Column,
    thresholds: &DriftThresholds,
) -> Result<FeatureDrift, DataError> {
    let rows = column.len();
    let mut drift = match &reference.distribution {
        Distribution::Numeric {
            mean,
            bin_edges,
            bin_counts: reference_counts,
            sketch,
            ..
        } => {
            let mut values = numbers(column)?;
            values.sort_unstable_by(f64::total_cmp);
            let counts = bin_counts(bin_edges, &values);
            let d = ks_statistic(sketch, &values);
            let present = reference.rows - reference.missing;
            let mut drift = blank(reference, "numeric", rows, rows - values.len());
            drift.psi = psi(reference_counts, &counts);
            drift.ks_statistic = Some(d);
            drift.ks_p_value = Some(ks_p_value(d, present, values.len()));
            drift.mean_reference = *mean;
            drift.mean_current =
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
            drift.bins = bin_shares(&numeric_bin_names(bin_edges), reference_counts, &counts);
            drift
        }
        Distribution::Categorical {
            values,
            other,
            distinct,
        } => {
            let text = categories(column)?;
            let current = value_counts(&text)?;
            let present: usize = current.iter().map(|v| v.count).sum();
            let mut reference_counts: Vec<u64> = values.iter().map(|v| v.count as u64).collect();
            reference_counts.push(*other);
            let mut counts = vec![0u64; values.len() + 1];
            let mut new_categories = Vec::new();
            for v in &current {
                match values.iter().position(|r| r.value == v.value) {
                    Some(i) => counts[i] += v.count as u64,
                    None => {
                        counts[values.len()] += v.count as u64;
                        // Only a reference that kept every value can call a value new.
                        if *distinct == values.len() {
                            new_categories.push(v.clone());
                        }
                    }
                }
            }
            let (statistic, p) = chi_square(&reference_counts, &counts);
            let mut drift = blank(reference, "categorical", rows, rows - present);
            drift.psi = psi(&reference_counts, &counts);
            drift.chi_square = Some(statistic);
            drift.chi_square_p_value = Some(p);
            drift.js_distance = Some(js_distance(&reference_counts, &counts));
            let mut names: Vec<String> = values.iter().map(|v| v.value.clone()).collect();
            names.push("(other)".into());
            drift.bins = bin_shares(&names, &reference_counts, &counts);
            drift.new_categories = new_categories;
            drift
        }
    };
    judge(&mut drift, thresholds);
    Ok(drift)
}

fn blank(reference: &FeatureProfile, kind: &str, rows: usize, missing: usize) -> FeatureDrift {
    FeatureDrift {
        feature: reference.name.clone(),
        kind: kind.into(),
        verdict: Verdict::Ok,
        severity: 0.0,
        psi: 0.0,
        ks_statistic: None,
        ks_p_value: None,
        chi_square: None,
        chi_square_p_value: None,
        js_distance: None,
        missing_rate_reference: reference.missing_rate(),
        missing_rate_current: missing as f64 / rows.max(1) as f64,
        mean_reference: None,
        mean_current: None,
        new_categories: Vec::new(),
        reasons: Vec::new(),
        bins: Vec::new(),
    }
}

/// Sets the verdict, severity and reasons from the statistics.
fn judge(f: &mut FeatureDrift, t: &DriftThresholds) {
    let significant = |p: Option<f64>| p.is_some_and(|p| p < t.p_value);
    let mut checks = vec![("PSI", f.psi, t.psi)];
    if let Some(d) = f.ks_statistic.filter(|_| significant(f.ks_p_value)) {
        checks.push(("KS statistic", d, t.ks_statistic));
    }
    if let Some(js) = f.js_distance.filter(|_| significant(f.chi_square_p_value)) {
        checks.push(("Jensen–Shannon distance", js, t.js_distance));
    }
    let missing_change = (f.missing_rate_current - f.missing_rate_reference).abs();
    checks.push(("missing-rate change", missing_change, t.missing_rate_change));
    for (name, value, band) in checks {
        let verdict = Verdict::of(value, band);
        f.severity = f.severity.max(value / band.drift);
        if verdict > Verdict::Ok {
            let level = if verdict == Verdict::Drift {
                band.drift
            } else {
                band.warn
            };
            f.reasons.push(format!(
                "{name} {value:.4} ≥ {} level {level}",
                verdict.as_str()
            ));
        }
        f.verdict = f.verdict.max(verdict);
    }
    if !f.new_categories.is_empty() {
        let names: Vec<&str> = f.new_categories.iter().map(|v| v.value.as_str()).collect();
        f.reasons
            .push(format!("new categories: {}", names.join(", ")));
    }
}

fn numeric_bin_names(edges: &[f64]) -> Vec<String> {
    if edges.is_empty() {
        return vec!["all".into()];
    }
    let mut names = vec![format!("≤ {}", short(edges[0]))];
    names.extend(
        edges
            .windows(2)
            .map(|w| format!("({}, {}]", short(w[0]), short(w[1]))),
    );
    names.push(format!("> {}", short(edges[edges.len() - 1])));
    names
}

fn short(v: f64) -> String {
    format!("{v:.4}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

fn bin_shares(names: &[String], reference: &[u64], current: &[u64]) -> Vec<BinShare> {
    let (p, q) = (shares(reference), shares(current));
    names
        .iter()
        .zip(p.iter().zip(&q))
        .map(|(bin, (r, c))| BinShare {
            bin: bin.clone(),
            reference: *r,
            current: *c,
        })
        .collect()
}
