//! The plots of a tuning study, as Optuna's visualisation module draws them: the score of every
//! trial with the best so far, each trial's settings as a line across parallel axes coloured by
//! its score, and the parameters' importance.

use super::*;

/// Every trial's score (points) and the best so far (a step line), by trial number.
pub fn optimization_history(
    metric: &str,
    trials: &[(f64, f64)],
    best_so_far: &[(f64, f64)],
) -> Result<Vec<u8>, PlotError> {
    render("optimisation history", |root| {
        let all = trials.iter().chain(best_so_far);
        let x = padded_range(all.clone().map(|p| p.0));
        let y = padded_range(all.map(|p| p.1));
        let mut chart = xy_chart(&root, "Optimisation history", (x, y), ("Trial", metric), 70)?;
        chart
            .draw_series(
                trials
                    .iter()
                    .map(|p| Circle::new(*p, 4, palette(0).mix(0.7).filled())),
            )
            .map_err(e)?
            .label("trial")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, palette(0).filled()));
        let mut steps = Vec::with_capacity(best_so_far.len() * 2);
        for (i, p) in best_so_far.iter().enumerate() {
            if i > 0 {
                steps.push((p.0, best_so_far[i - 1].1));
            }
            steps.push(*p);
        }
        let best = palette(3);
        chart
            .draw_series(LineSeries::new(steps, best.stroke_width(2)))
            .map_err(e)?
            .label("best so far")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], best.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        Ok(())
    })
}

/// One line per trial across one vertical axis per parameter (values scaled to 0–1 along each
/// axis; the last axis is the score), coloured from red (worst) to blue (best). `lines` holds
/// each trial's scaled values and its score's rank from 0 (worst) to 1 (best).
pub fn parallel_coordinates(
    axes: &[String],
    lines: &[(Vec<f64>, f64)],
) -> Result<Vec<u8>, PlotError> {
    render("parallel coordinates", |root| {
        let n = axes.len().max(2);
        let mut chart = ChartBuilder::on(&root)
            .caption("Parallel coordinates", title_style())
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.1..(n - 1) as f64 + 0.1, -0.02..1.02)
            .map_err(e)?;
        let names = axes.to_vec();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("Scaled value (low to high)")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(e)?;
        // Worst lines first, so the best are drawn on top.
        let mut order: Vec<&(Vec<f64>, f64)> = lines.iter().collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (values, rank) in order {
            let t = rank.clamp(0.0, 1.0);
            let color = RGBColor(
                (214.0 * (1.0 - t) + 31.0 * t) as u8,
                (39.0 * (1.0 - t) + 119.0 * t) as u8,
                (40.0 * (1.0 - t) + 180.0 * t) as u8,
            );
            let points = values.iter().enumerate().map(|(i, v)| (i as f64, *v));
            chart
                .draw_series(LineSeries::new(
                    points,
                    color.mix(0.4 + 0.5 * t).stroke_width(2),
                ))
                .map_err(e)?;
        }
        for i in 0..axes.len() {
            chart
                .draw_series(LineSeries::new(
                    [(i as f64, 0.0), (i as f64, 1.0)],
                    BLACK.stroke_width(1),
                ))
                .map_err(e)?;
        }
        Ok(())
    })
}

/// Each parameter's share of the variation of the score, largest on top.
pub fn parameter_importance(shares: &[(String, f64)]) -> Result<Vec<u8>, PlotError> {
    bars(("parameter importance", "Parameter importance"), shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_plots_are_png_images() {
        let trials = [(0.0, 0.8), (1.0, 0.9), (2.0, 0.85)];
        let best = [(0.0, 0.8), (1.0, 0.9), (2.0, 0.9)];
        let png = optimization_history("accuracy", &trials, &best).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let axes = [
            "max_depth".to_string(),
            "learning_rate".into(),
            "accuracy".into(),
        ];
        let lines = [(vec![0.1, 0.5, 0.0], 0.0), (vec![0.9, 0.2, 1.0], 1.0)];
        assert!(parallel_coordinates(&axes, &lines).unwrap().len() > 1000);
        let png = parameter_importance(&[("max_depth".into(), 0.7), ("lr".into(), 0.3)]).unwrap();
        assert!(png.len() > 1000);
    }
}
