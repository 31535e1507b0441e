//! mlops-plot: charts as PNG bytes, drawn with plotters into memory — evaluation's (confusion
//! matrix, ROC and precision–recall curves, residuals, clusters, learning and reward curves) and
//! tuning's ([`tuning`]: optimisation history, parallel coordinates, parameter importance).
//!
//! Text uses DejaVu Sans compiled into the binary (the `dejavu` crate), registered with plotters'
//! ab_glyph backend, so no system font library is needed on a fresh machine.

use std::ops::Range;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

mod tuning;
pub use tuning::{optimization_history, parallel_coordinates, parameter_importance};

const WIDTH: u32 = 800;
const HEIGHT: u32 = 600;
const FONT: &str = "sans-serif";

/// A plot that could not be drawn (it names the plot; plotters' own errors are terse).
#[derive(Debug, thiserror::Error)]
#[error("could not draw the {plot} plot: {reason}")]
pub struct PlotError {
    plot: &'static str,
    reason: String,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            // The embedded font is valid; were it not, plots would lack text rather than fail.
            let _ = plotters::style::register_font(FONT, style, bytes);
        }
    });
}

/// Draws on an in-memory RGB canvas with `draw` and encodes it as PNG.
fn render(
    plot: &'static str,
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, PlotError> {
    register_font();
    let fail = |reason: String| PlotError { plot, reason };
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        draw(root.clone()).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(png_bytes)
}

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

fn title_style() -> TextStyle<'static> {
    (FONT, 26).into_font().style(FontStyle::Bold).into()
}

/// One colour per series or cluster, repeating after ten.
fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()]
}

/// A categorical axis of `n` segments (plotters' integer ranges include their end).
fn categories(n: usize) -> SegmentedCoord<RangedCoordusize> {
    (0..n.saturating_sub(1)).into_segmented()
}

/// The name of a segment's centre on a categorical axis; nothing at the segment edges.
fn category(names: &[String], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// A heat map of `matrix[true][predicted]` with the counts written in the cells.
pub fn confusion_matrix(matrix: &[Vec<u64>], classes: &[String]) -> Result<Vec<u8>, PlotError> {
    render("confusion matrix", |root| {
        let k = classes.len();
        let max = matrix.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
        // True classes top to bottom: class t sits at y = k - 1 - t.
        let rows: Vec<String> = classes.iter().rev().cloned().collect();
        let mut chart = ChartBuilder::on(&root)
            .caption("Confusion matrix", title_style())
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(110)
            .build_cartesian_2d(categories(k), categories(k))
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("Predicted")
            .y_desc("True")
            .x_labels(k)
            .y_labels(k)
            .x_label_formatter(&|v| category(classes, v))
            .y_label_formatter(&|v| category(&rows, v))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(matrix.iter().enumerate().flat_map(|(t, row)| {
                row.iter().enumerate().map(move |(p, &n)| {
                    let shade = 255 - (200.0 * n as f64 / max) as u8;
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(p), SegmentValue::Exact(k - 1 - t)),
                            (SegmentValue::Exact(p + 1), SegmentValue::Exact(k - t)),
                        ],
                        RGBColor(shade, shade, 255).filled(),
                    )
                })
            }))
            .map_err(e)?;
        let cell = (WIDTH as f64 - 150.0) / k as f64;
        let font_size = (cell / 5.0).clamp(10.0, 28.0);
        let centred = Pos::new(HPos::Center, VPos::Center);
        chart
            .draw_series(matrix.iter().enumerate().flat_map(|(t, row)| {
                row.iter().enumerate().map(move |(p, &n)| {
                    let dark = n as f64 / max > 0.6;
                    let color = if dark { WHITE } else { BLACK };
                    Text::new(
                        n.to_string(),
                        (SegmentValue::CenterOf(p), SegmentValue::CenterOf(k - 1 - t)),
                        (FONT, font_size).into_font().color(&color).pos(centred),
                    )
                })
            }))
            .map_err(e)?;
        Ok(())
    })
}

/// Curves (x, y) per series, in the unit square, with an optional diagonal and legend.
fn unit_curves(
    plot: &'static str,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    diagonal: bool,
) -> Result<Vec<u8>, PlotError> {
    render(plot, |root| {
        let mut chart = xy_chart(&root, title, (0.0..1.0, 0.0..1.02), (x_desc, y_desc), 60)?;
        if diagonal {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    BLACK.mix(0.3).stroke_width(1),
                ))
                .map_err(e)?;
        }
        draw_lines(&mut chart, series, SeriesLabelPosition::LowerRight)
    })
}

type LineChart<'a> =
    ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart on two numeric axes, captioned `title`, with its grid and the axis descriptions `axes`
/// drawn: where every plot of points and lines starts. `y_label_width` leaves room for the
/// widest tick labels of `y`.
fn xy_chart<'a>(
    root: &DrawingArea<BitMapBackend<'a>, Shift>,
    title: &str,
    (x, y): (Range<f64>, Range<f64>),
    axes: (&str, &str),
    y_label_width: u32,
) -> Result<LineChart<'a>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, title_style())
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(y_label_width)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(e)?;
    Ok(chart)
}

/// One coloured line per series, with a legend at `legend`.
fn draw_lines<'a>(
    chart: &mut LineChart<'a>,
    series: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> Result<(), String> {
    for (i, (name, points)) in series.iter().enumerate() {
        let color = palette(i);
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

/// ROC curves: one per series (the positive class, or each class one-vs-rest).
pub fn roc_curve(series: &[(String, Vec<(f64, f64)>)]) -> Result<Vec<u8>, PlotError> {
    unit_curves(
        "ROC curve",
        "ROC curve",
        "False positive rate",
        "True positive rate",
        series,
        true,
    )
}

/// Precision–recall curves (x = recall, y = precision).
pub fn precision_recall_curve(series: &[(String, Vec<(f64, f64)>)]) -> Result<Vec<u8>, PlotError> {
    unit_curves(
        "precision-recall",
        "Precision–recall curve",
        "Recall",
        "Precision",
        series,
        false,
    )
}

/// Horizontal bars of the most important features, largest on top.
pub fn feature_importance(features: &[(String, f64)]) -> Result<Vec<u8>, PlotError> {
    bars(("feature importance", "Feature importance"), features)
}

/// Horizontal bars of named shares, largest on top: `title` is (plot name for errors, caption).
fn bars(title: (&'static str, &str), features: &[(String, f64)]) -> Result<Vec<u8>, PlotError> {
    render(title.0, |root| {
        let n = features.len().max(1);
        let max = features.iter().map(|f| f.1).fold(0.0, f64::max).max(1e-12);
        // Largest on top: feature i sits at y = n - 1 - i.
        let names: Vec<String> = features.iter().rev().map(|f| f.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title.1, title_style())
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d(0.0..max * 1.05, categories(n))
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| category(&names, v))
            .x_desc("Importance")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(features.iter().enumerate().map(|(i, (_, v))| {
                let y = n - 1 - i;
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (*v, SegmentValue::Exact(y + 1)),
                    ],
                    palette(0).filled(),
                );
                bar.set_margin(3, 3, 0, 0);
                bar
            }))
            .map_err(e)?;
        Ok(())
    })
}

fn padded_range(values: impl Iterator<Item = f64> + Clone) -> Range<f64> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad)..(hi + pad)
}

/// Residuals (true - predicted) against predicted values, with the zero line.
pub fn residuals(predicted: &[f64], truth: &[f64]) -> Result<Vec<u8>, PlotError> {
    render("residuals", |root| {
        let points: Vec<(f64, f64)> = predicted
            .iter()
            .zip(truth)
            .map(|(p, t)| (*p, t - p))
            .collect();
        let x = padded_range(points.iter().map(|p| p.0));
        let y = padded_range(points.iter().map(|p| p.1).chain([0.0]));
        let axes = ("Predicted", "Residual (true - predicted)");
        let mut chart = xy_chart(&root, "Residuals vs predicted", (x.clone(), y), axes, 70)?;
        chart
            .draw_series(LineSeries::new(
                [(x.start, 0.0), (x.end, 0.0)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(e)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(*p, 2, palette(0).mix(0.5).filled())),
            )
            .map_err(e)?;
        Ok(())
    })
}

/// Rows on two axes (e.g. the first two principal components), coloured by cluster; noise grey.
pub fn cluster_scatter(
    coords: &[(f64, f64)],
    labels: &[i64],
    axes: (&str, &str),
) -> Result<Vec<u8>, PlotError> {
    render("cluster scatter", |root| {
        let x = padded_range(coords.iter().map(|p| p.0));
        let y = padded_range(coords.iter().map(|p| p.1));
        let mut chart = xy_chart(&root, "Clusters", (x, y), axes, 60)?;
        chart
            .draw_series(coords.iter().zip(labels).map(|(p, &l)| {
                let color = if l < 0 {
                    RGBColor(170, 170, 170)
                } else {
                    palette(l as usize)
                };
                Circle::new(*p, 3, color.mix(0.7).filled())
            }))
            .map_err(e)?;
        Ok(())
    })
}

/// A metric's history over steps (trees, boosting rounds, iterations), one line per metric.
pub fn learning_curve(series: &[(String, Vec<(f64, f64)>)]) -> Result<Vec<u8>, PlotError> {
    line_chart(
        ("learning curve", "Learning curve"),
        ("Step (tree, round, iteration or epoch)", "Metric"),
        series,
        SeriesLabelPosition::UpperRight,
    )
}

/// Episode returns of a reinforcement-learning policy: over training timesteps, or over the
/// evaluation episodes.
pub fn reward_curve(
    series: &[(String, Vec<(f64, f64)>)],
    x_desc: &str,
) -> Result<Vec<u8>, PlotError> {
    line_chart(
        ("reward curve", "Reward curve"),
        (x_desc, "Episode return"),
        series,
        SeriesLabelPosition::LowerRight,
    )
}

/// Lines on free axes: `names` is (plot name for errors, caption), `axes` the axis labels.
fn line_chart(
    names: (&'static str, &str),
    axes: (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> Result<Vec<u8>, PlotError> {
    render(names.0, |root| {
        let all = series.iter().flat_map(|s| s.1.iter());
        let x = padded_range(all.clone().map(|p| p.0));
        let y = padded_range(all.map(|p| p.1));
        let mut chart = xy_chart(&root, names.1, (x, y), axes, 70)?;
        draw_lines(&mut chart, series, legend)
    })
}

/// ROC points (false positive rate, true positive rate) of scores against a positive flag.
pub fn roc_points(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let (order, pos, neg) = ranked(scores, positive);
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, &r) in order.iter().enumerate() {
        if positive[r] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        // One point per distinct score, as scikit-learn's thresholds.
        if order.get(i + 1).is_none_or(|&n| scores[n] != scores[r]) {
            points.push((fp / neg.max(1.0), tp / pos.max(1.0)));
        }
    }
    points
}

/// Precision–recall points (recall, precision).
pub fn pr_points(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let (order, pos, _) = ranked(scores, positive);
    let mut points = vec![(0.0, 1.0)];
    let mut tp = 0.0;
    for (i, &r) in order.iter().enumerate() {
        if positive[r] {
            tp += 1.0;
        }
        if order.get(i + 1).is_none_or(|&n| scores[n] != scores[r]) {
            points.push((tp / pos.max(1.0), tp / (i + 1) as f64));
        }
    }
    points
}

/// Row indices by descending score, with the positive and negative counts.
fn ranked(scores: &[f64], positive: &[bool]) -> (Vec<usize>, f64, f64) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let pos = positive.iter().filter(|p| **p).count() as f64;
    (order, pos, positive.len() as f64 - pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_of_a_perfect_ranking_reaches_the_corner() {
        let scores = [0.9, 0.8, 0.3, 0.1];
        let positive = [true, true, false, false];
        let roc = roc_points(&scores, &positive);
        assert!(roc.contains(&(0.0, 1.0)));
        assert_eq!(*roc.last().unwrap(), (1.0, 1.0));
        let pr = pr_points(&scores, &positive);
        assert_eq!(pr[2], (1.0, 1.0));
    }

    #[test]
    fn plots_are_png_images() {
        let png = confusion_matrix(&[vec![5, 1], vec![2, 7]], &["a".into(), "b".into()]).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let png = residuals(&[1.0, 2.0, 3.0], &[1.1, 1.9, 3.4]).unwrap();
        assert!(png.len() > 1000);
    }
}
