//! `noisescope plot DIR`: redraws the figures of a run, an escape experiment, a sweep, a
//! campaign or a theory experiment from the files they wrote, and combines a theory
//! experiment's `seed-N/` folders into one table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::draw::{Panel, Series, comparison, line_panels, metric_series};

/// A theory experiment's figure data (`figures/<experiment>.json`, written beside its SVG),
/// when `dir` holds one.
fn theory_panels(dir: &Path) -> Result<Option<(String, Vec<Panel>)>> {
    let summary = dir.join("summary.json");
    let Ok(text) = std::fs::read_to_string(&summary) else {
        return Ok(None);
    };
    let Some(name) = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["experiment"].as_str().map(str::to_string))
    else {
        return Ok(None);
    };
    let data = dir.join(format!("figures/{name}.json"));
    let panels: Vec<Panel> = serde_json::from_slice(
        &std::fs::read(&data).with_context(|| format!("reading {}", data.display()))?,
    )
    .with_context(|| format!("{}: not a figure's data", data.display()))?;
    Ok(Some((name, panels)))
}

/// `noisescope plot DIR`: redraws the figures of an escape experiment, a sweep, a theory
/// experiment or a run from the files they wrote.
pub fn run(a: &crate::args::PlotArgs) -> Result<()> {
    let dir = &a.dir;
    // An escape experiment or a sweep is drawn from its unit folders, as they are (a partial,
    // sharded one too), without writing its summary.
    let made: Vec<PathBuf> = if dir.join("escape.toml").is_file() {
        let c = crate::escape_cmd::combined_summary(dir)?;
        crate::escape_cmd::figures(dir, &c.config, &c.summary)?
    } else if dir.join("sweep.toml").is_file() {
        let noisescope_runs::units::Combined {
            config: sweep,
            summary,
            states,
        } = noisescope_runs::sweep::combined_summary(dir)?;
        let names: Vec<String> = states
            .into_iter()
            .filter(|(_, s)| *s != noisescope_runs::units::UnitState::Missing)
            .map(|(n, _)| n)
            .collect();
        crate::sweep_cmd::figure(dir, &sweep, &names)?
            .into_iter()
            .chain(crate::sweep_cmd::summary_figure(dir, &sweep, &summary)?)
            .collect()
    } else if let seeds @ [_, ..] = crate::campaign::seed_folders(dir).as_slice() {
        crate::campaign::report(dir, seeds)?
    } else if let seeds @ [_, _, ..] = noisescope_runs::theory_seeds::seed_folders(dir).as_slice() {
        // One theory experiment on two or more seeds: its combined table; each seed keeps its
        // own figure.
        print!("{}", noisescope_runs::theory_seeds::report(dir, seeds)?);
        println!("table: {}", dir.join("table.md").display());
        Vec::new()
    } else if let Some(panels) = theory_panels(dir)? {
        let (name, panels) = panels;
        let p = dir.join(format!("figures/{name}.svg"));
        comparison(&p, &panels)?;
        vec![p]
    } else if dir.join("metrics.jsonl").is_file() {
        let keys = ["train_loss", "test_loss", "test_acc", "train_acc"];
        let mut panels: Vec<(&str, &str, bool, Vec<Series>)> = Vec::new();
        for k in keys {
            // A damaged metrics.jsonl is its own error, not "no metric line yet".
            let points = metric_series(dir, k)?;
            if !points.is_empty() {
                panels.push((k, k, k.ends_with("loss"), vec![Series::new(k, points)]));
            }
        }
        if panels.is_empty() {
            anyhow::bail!(
                "{}: no complete metric line yet (a run writes its first at step 0)",
                dir.join("metrics.jsonl").display()
            );
        }
        let p = dir.join("figures/curves.svg");
        std::fs::create_dir_all(dir.join("figures"))?;
        line_panels(&p, "step", &panels)?;
        vec![p]
    } else {
        anyhow::bail!(
            "{}: neither a run, an escape experiment, a campaign, a sweep nor a theory experiment (no metrics.jsonl, escape.toml, seed-N/escape.toml, sweep.toml or theory summary)",
            dir.display()
        );
    };
    for p in made {
        println!("figure: {}", p.display());
    }
    Ok(())
}
