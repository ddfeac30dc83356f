//! `twotower plot-scale`: the cost curves of several `bench-scale` reports in one SVG: epoch
//! seconds and peak memory against interactions, catalogue size and batch size.
//!
//! Each report is one process (`scale.json`): its data shape, its epochs (one per batch size)
//! and its peak resident memory. A curve varies one quantity with the others fixed, so the
//! panels pick their points by what the reports share: the interactions panel takes every
//! report's batch-2048 epoch at the most common catalogue-per-interactions rule (items chosen by
//! `bench-scale`, not `--items`), the catalogue panel the reports with `--items`, and the batch
//! panel every epoch of the smallest release.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use plotters::prelude::*;

/// Flags of `plot-scale`.
#[derive(Debug, Args)]
pub struct PlotScaleArgs {
    /// `bench-scale` reports (scale.json files).
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Where to write the SVG.
    #[arg(long, default_value = "cost.svg")]
    out: PathBuf,
}

/// One epoch of one report.
#[derive(Debug, Clone, Copy)]
struct Point {
    ratings: f64,
    items: f64,
    items_given: bool,
    batch: f64,
    epoch_seconds: f64,
    peak_gb: f64,
}

impl PlotScaleArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut points = Vec::new();
        for path in &self.reports {
            points.extend(read_report(path)?);
        }
        let by_interactions: Vec<(f64, f64, f64)> = points
            .iter()
            .filter(|p| p.batch == 2048.0 && !p.items_given)
            .map(|p| (p.ratings, p.epoch_seconds, p.peak_gb))
            .collect();
        let by_items: Vec<(f64, f64, f64)> = points
            .iter()
            .filter(|p| p.batch == 2048.0 && p.items_given)
            .map(|p| (p.items, p.epoch_seconds, p.peak_gb))
            .collect();
        let smallest = points.iter().map(|p| p.ratings).fold(f64::INFINITY, f64::min);
        let by_batch: Vec<(f64, f64, f64)> = points
            .iter()
            .filter(|p| p.ratings == smallest && !p.items_given)
            .map(|p| (p.batch, p.epoch_seconds, p.peak_gb))
            .collect();
        let panels = [
            ("interactions (batch 2048)", sorted(by_interactions)),
            ("catalogue items (batch 2048)", sorted(by_items)),
            (&*format!("batch size ({} interactions)", short(smallest)), sorted(by_batch)),
        ];
        if panels.iter().all(|(_, p)| p.is_empty()) {
            bail!("plot-scale: no epochs in {} report(s)", self.reports.len());
        }
        draw(&panels, &self.out)?;
        println!("wrote {}", self.out.display());
        Ok(())
    }
}

fn sorted(mut points: Vec<(f64, f64, f64)>) -> Vec<(f64, f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// The epochs of one `bench-scale` report.
fn read_report(path: &Path) -> anyhow::Result<Vec<Point>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let number = |field: &str| {
        doc[field].as_f64().with_context(|| format!("{}: field {field:?} missing or not a number", path.display()))
    };
    let (ratings, items) = (number("ratings")?, number("items")?);
    let items_given = doc["items_given"].as_bool().unwrap_or(false);
    let peak_gb = number("peak_resident_bytes")? / 1e9;
    let epochs = doc["epochs"].as_array().with_context(|| format!("{}: no \"epochs\" list", path.display()))?;
    epochs
        .iter()
        .enumerate()
        .map(|(i, epoch)| {
            let field = |name: &str| {
                epoch[name]
                    .as_f64()
                    .with_context(|| format!("{}: epochs[{i}].{name} missing or not a number", path.display()))
            };
            Ok(Point {
                ratings,
                items,
                items_given,
                batch: field("batch_size")?,
                epoch_seconds: field("epoch_seconds")?,
                peak_gb,
            })
        })
        .collect()
}

type Panel<'a> = (&'a str, Vec<(f64, f64, f64)>);

/// Two rows of panels (epoch seconds above, peak memory below), one column per varied quantity,
/// log-scaled x axes.
fn draw(panels: &[Panel<'_>], path: &Path) -> anyhow::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 700)).into_drawing_area();
        root.fill(&WHITE)?;
        let cells = root.split_evenly((2, panels.len()));
        for (column, (label, points)) in panels.iter().enumerate() {
            for (row, (what, pick)) in [("epoch seconds", 1usize), ("peak memory GB", 2usize)].into_iter().enumerate() {
                let area = &cells[row * panels.len() + column];
                let value = |p: &(f64, f64, f64)| if pick == 1 { p.1 } else { p.2 };
                let (x_min, x_max) =
                    points.iter().fold((f64::INFINITY, 0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
                let y_max = points.iter().map(value).fold(0f64, f64::max);
                if points.is_empty() {
                    area.titled(&format!("{what} vs {label}: no runs"), ("sans-serif", 14))?;
                    continue;
                }
                let mut chart = ChartBuilder::on(area)
                    .caption(format!("{what} vs {label}"), ("sans-serif", 14))
                    .margin(10)
                    .x_label_area_size(30)
                    .y_label_area_size(50)
                    .build_cartesian_2d((x_min * 0.8..x_max * 1.25).log_scale(), 0.0..y_max * 1.15)?;
                chart
                    .configure_mesh()
                    .x_labels(points.len().max(2))
                    .x_label_formatter(&|x| short(*x))
                    .light_line_style(TRANSPARENT)
                    .draw()?;
                chart.draw_series(LineSeries::new(points.iter().map(|p| (p.0, value(p))), &BLUE))?;
                chart.draw_series(points.iter().map(|p| Circle::new((p.0, value(p)), 3, BLUE.filled())))?;
            }
        }
        root.present()?;
    }
    train::fs::write_atomic(path, svg.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// `1.2M`, `62k`, `2048`.
fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}
