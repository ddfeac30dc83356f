//! SVG plots of validation accuracy against epoch, one panel per k (1, 5, 10, 50, 100), like
//! the deep-retrieval tutorial's.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use train::EpochRecord;

/// A named curve: per validation epoch, the accuracy at each of [`eval::TFRS_KS`].
type Curve = (String, Vec<(f64, Vec<f64>)>);

/// One curve per named history and panel per k, from the validation epochs.
pub fn accuracy_curves(runs: &[(String, &Vec<EpochRecord>)], path: &Path) -> anyhow::Result<()> {
    let curves: Vec<Curve> = runs
        .iter()
        .map(|(name, history)| {
            let points = history
                .iter()
                .filter_map(|r| {
                    let v = r.validation.as_ref()?;
                    Some((r.epoch as f64, eval::TFRS_KS.iter().map(|&k| v.all.at(k).unwrap_or(0.0)).collect()))
                })
                .collect();
            (name.clone(), points)
        })
        .collect();
    draw(&curves, path)
}

/// Reads `metrics.json` from each run directory and plots their curves together.
pub fn compare_runs(dirs: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let mut curves = Vec::new();
    for dir in dirs {
        let path = dir.join("metrics.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let points: Vec<(f64, Vec<f64>)> = doc["history"]
            .as_array()
            .with_context(|| format!("{}: no \"history\" array", path.display()))?
            .iter()
            .filter_map(|r| {
                let all = &r["validation"]["all"];
                let ks: Option<Vec<f64>> = eval::TFRS_KS.iter().map(|k| all[format!("top_{k}")].as_f64()).collect();
                Some((r["epoch"].as_f64()?, ks?))
            })
            .collect();
        let name = doc["experiment"].as_str().map_or_else(|| dir.display().to_string(), str::to_string);
        curves.push((name, points));
    }
    draw(&curves, out)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn draw(curves: &[Curve], path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut svg = String::new();
    draw_into(curves, path, &mut svg)?;
    train::fs::write_atomic(path, svg.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Renders one panel per k as SVG text; `path` only names the plot in errors.
fn draw_into(curves: &[Curve], path: &Path, svg: &mut String) -> anyhow::Result<()> {
    let max_epoch = curves.iter().flat_map(|(_, p)| p.iter().map(|(e, _)| *e)).fold(1.0, f64::max);
    let root = SVGBackend::with_string(svg, (1500, 900)).into_drawing_area();
    let plot_error = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let panels = root.split_evenly((2, 3));
    for (panel_index, (panel, &k)) in panels.iter().zip(eval::TFRS_KS.iter()).enumerate() {
        let max_acc = curves.iter().flat_map(|(_, p)| p.iter().map(|(_, a)| a[panel_index])).fold(0.01, f64::max);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("Validation top-{k} accuracy"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..max_epoch, 0.0..max_acc * 1.1)
            .map_err(|e| plot_error(&e))?;
        chart.configure_mesh().x_desc("epoch").y_desc(format!("top-{k}")).draw().map_err(|e| plot_error(&e))?;
        for (i, (name, points)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.iter().map(|(e, a)| (*e, a[panel_index])), color.stroke_width(2)))
                .map_err(|e| plot_error(&e))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(&e))?;
    }
    root.present().map_err(|e| plot_error(&e))?;
    Ok(())
}
