//! A finished study's plots, saved as `studies/<study>/<plot>.png`: the optimisation history,
//! parallel coordinates of the searched settings, and the parameters' importance.

use bytes::Bytes;
use mlops_core::{ArtifactStore, ToolImage};
use mlops_ml::search::Distribution;
use serde_json::Value;

use crate::error::TrainError;
use crate::tune::store::{TrialRow, status};
use crate::tune::study::StudySpec;

/// The plots, by file name.
pub const PLOTS: [&str; 3] = [
    "optimization_history",
    "parallel_coordinates",
    "parameter_importance",
];

/// Where a study's plot is saved.
pub fn plot_key(study: &str, plot: &str) -> String {
    format!("studies/{study}/{plot}.png")
}

/// Draws the plots of `trials` and saves them; returns them as images.
pub async fn save_plots(
    store: &ArtifactStore,
    study: &str,
    spec: &StudySpec,
    trials: &[TrialRow],
    importance: &[(String, f64)],
) -> Result<Vec<ToolImage>, TrainError> {
    let (spec_c, trials_c, importance_c) = (spec.clone(), trials.to_vec(), importance.to_vec());
    let drawn = tokio::task::spawn_blocking(move || draw(&spec_c, &trials_c, &importance_c))
        .await
        .map_err(|e| TrainError::failed(format!("the plots' thread stopped: {e}")))??;
    let mut images = Vec::new();
    for (name, png) in PLOTS.iter().zip(drawn) {
        let png = Bytes::from(png);
        store
            .put(&store.key(&plot_key(study, name))?, png.clone())
            .await?;
        images.push(ToolImage {
            mime_type: "image/png".into(),
            data: png,
        });
    }
    Ok(images)
}

fn draw(
    spec: &StudySpec,
    trials: &[TrialRow],
    importance: &[(String, f64)],
) -> Result<Vec<Vec<u8>>, TrainError> {
    let plot = |e: mlops_plot::PlotError| TrainError::failed(e.to_string());
    let complete: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.status == status::COMPLETE && t.value.is_some_and(f64::is_finite))
        .collect();
    let points: Vec<(f64, f64)> = complete
        .iter()
        .map(|t| (t.number as f64, t.value.unwrap_or_default()))
        .collect();
    let mut best: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for &(x, y) in &points {
        let keep = match best.last() {
            Some(&(_, b)) if spec.loss(b) <= spec.loss(y) => b,
            _ => y,
        };
        best.push((x, keep));
    }
    let history = mlops_plot::optimization_history(&spec.metric, &points, &best).map_err(plot)?;

    let mut axes: Vec<String> = spec.search_space.params.keys().cloned().collect();
    axes.push(spec.metric.clone());
    let values: Vec<f64> = complete
        .iter()
        .map(|t| spec.loss(t.value.unwrap_or_default()))
        .collect();
    let lines: Vec<(Vec<f64>, f64)> = complete
        .iter()
        .zip(&values)
        .map(|(t, loss)| {
            let mut scaled: Vec<f64> = spec
                .search_space
                .params
                .iter()
                .map(|(name, d)| scale(d, t.params.get(name)))
                .collect();
            scaled.push(unit(
                t.value.unwrap_or_default(),
                complete.iter().filter_map(|c| c.value),
            ));
            // Rank of the loss: 1 for the best trial, 0 for the worst.
            let worse = values.iter().filter(|v| *v > loss).count() as f64;
            (scaled, worse / (values.len().max(2) - 1) as f64)
        })
        .collect();
    let parallel = mlops_plot::parallel_coordinates(&axes, &lines).map_err(plot)?;
    let shares = mlops_plot::parameter_importance(importance).map_err(plot)?;
    Ok(vec![history, parallel, shares])
}

/// `v` scaled to 0–1 over the range of `all`.
fn unit(v: f64, all: impl Iterator<Item = f64> + Clone) -> f64 {
    let lo = all.clone().fold(f64::INFINITY, f64::min);
    let hi = all.fold(f64::NEG_INFINITY, f64::max);
    if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }
}

/// A setting's position along its axis: its range (on a log scale where the space says so), or
/// its choice's place among the choices.
fn scale(d: &Distribution, v: Option<&Value>) -> f64 {
    let Some(v) = v else { return 0.5 };
    let along = |x: f64, lo: f64, hi: f64, log: bool| {
        let (x, lo, hi) = if log {
            (x.max(f64::MIN_POSITIVE).ln(), lo.ln(), hi.ln())
        } else {
            (x, lo, hi)
        };
        if hi > lo {
            ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    };
    match d {
        Distribution::Int { low, high, log, .. } => {
            along(v.as_f64().unwrap_or(0.0), *low as f64, *high as f64, *log)
        }
        Distribution::Float { low, high, log, .. } => {
            along(v.as_f64().unwrap_or(0.0), *low, *high, *log)
        }
        Distribution::Categorical { choices } => {
            let i = choices.iter().position(|c| c == v).unwrap_or(0);
            if choices.len() > 1 {
                i as f64 / (choices.len() - 1) as f64
            } else {
                0.5
            }
        }
    }
}
