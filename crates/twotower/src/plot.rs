//! SVG plots of validation top-100 accuracy against epoch, like the deep-retrieval tutorial's.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use train::EpochRecord;

/// One curve per named history, `top_100` of the validation epochs.
pub fn accuracy_curves(runs: &[(String, &Vec<EpochRecord>)], path: &Path) -> anyhow::Result<()> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(name, history)| {
            let points =
                history.iter().filter_map(|r| Some((r.epoch as f64, r.validation.as_ref()?.all.at(100)?))).collect();
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
        let points: Vec<(f64, f64)> = doc["history"]
            .as_array()
            .with_context(|| format!("{}: no \"history\" array", path.display()))?
            .iter()
            .filter_map(|r| Some((r["epoch"].as_f64()?, r["validation"]["all"]["top_100"].as_f64()?)))
            .collect();
        let name = doc["experiment"].as_str().map_or_else(|| dir.display().to_string(), str::to_string);
        curves.push((name, points));
    }
    draw(&curves, out)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn draw(curves: &[(String, Vec<(f64, f64)>)], path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let max_epoch = curves.iter().flat_map(|(_, p)| p.iter().map(|&(e, _)| e)).fold(1.0, f64::max);
    let max_acc = curves.iter().flat_map(|(_, p)| p.iter().map(|&(_, a)| a)).fold(0.05, f64::max);
    let mut svg = String::new();
    draw_into(curves, max_epoch, max_acc, path, &mut svg)?;
    train::fs::write_atomic(path, svg.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Renders the curves as SVG text; `path` only names the plot in errors.
fn draw_into(
    curves: &[(String, Vec<(f64, f64)>)],
    max_epoch: f64,
    max_acc: f64,
    path: &Path,
    svg: &mut String,
) -> anyhow::Result<()> {
    let root = SVGBackend::with_string(svg, (800, 500)).into_drawing_area();
    let plot_error = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Validation top-100 accuracy", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_epoch, 0.0..max_acc * 1.1)
        .map_err(|e| plot_error(&e))?;
    chart.configure_mesh().x_desc("epoch").y_desc("top-100 accuracy").draw().map_err(|e| plot_error(&e))?;
    for (i, (name, points)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| plot_error(&e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))?;
    Ok(())
}
