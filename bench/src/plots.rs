//! The SVG plots linked from `bench/RESULTS.md`, drawn with `plotters`.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One line of a plot: a label and its points.
pub struct Series {
    /// The legend.
    pub label: String,
    /// `(x, y)` points, x rising.
    pub points: Vec<(f64, f64)>,
}

/// A chart with a logarithmic x axis and a linear y axis, one line per series, and an optional
/// horizontal goal line.
pub struct Chart<'a> {
    /// Title.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series>,
    /// A horizontal line at this y, labelled.
    pub goal: Option<(f64, &'a str)>,
}

const COLOURS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];

impl Chart<'_> {
    /// Draws the chart to an SVG file (nothing when no series has points).
    pub fn draw(&self, path: &Path) -> anyhow::Result<bool> {
        let all: Vec<(f64, f64)> = self.series.iter().flat_map(|s| s.points.clone()).collect();
        if all.is_empty() {
            return Ok(false);
        }
        let x_min = all
            .iter()
            .map(|p| p.0)
            .fold(f64::INFINITY, f64::min)
            .max(1.0);
        let x_max = all.iter().map(|p| p.0).fold(0.0, f64::max).max(x_min * 2.0);
        let goal_y = self.goal.map_or(0.0, |g| g.0);
        let y_max = all.iter().map(|p| p.1).fold(goal_y, f64::max) * 1.15;
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x_min / 1.5..x_max * 1.5).log_scale(), 0.0..y_max.max(1.0))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_labels(8)
            .max_light_lines(1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(plot_error)?;
        if let Some((y, label)) = self.goal {
            chart
                .draw_series(LineSeries::new(
                    [(x_min / 1.5, y), (x_max * 1.5, y)],
                    BLACK.stroke_width(1),
                ))
                .map_err(plot_error)?
                .label(label)
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        }
        for (series, colour) in self.series.iter().zip(COLOURS.iter().cycle()) {
            chart
                .draw_series(LineSeries::new(
                    series.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(series.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    series
                        .points
                        .iter()
                        .map(|&p| Circle::new(p, 4, colour.filled())),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_error)?;
        root.present()
            .map_err(plot_error)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(true)
    }
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e}")
}
