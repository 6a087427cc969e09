//! `noisescope plot ROOT` on a campaign (`seed-N/` folders of one escape experiment, see
//! [`noisescope_runs::campaign`]): its figure of mean ± s.e. curves over seeds, its table and
//! its `summary.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use noisescope_runs::campaign::{
    DIRECTION, GENERALIZATION, curve_over_seeds, lines_by_step, tabulate, units_of,
};
use noisescope_runs::rundir::write_atomic;
use serde_json::{Value, json};

use crate::draw::{Panel, Points, Series, comparison};
use crate::escape_cmd::EscapeConfig;

pub use noisescope_runs::campaign::seed_folders;

/// Writes `figures/escape-seeds.svg`, `table.md` and `summary.json` under `dir` from its
/// seed folders, prints the table; returns the figure.
pub fn report(dir: &Path, seeds: &[(u64, PathBuf)]) -> Result<Vec<PathBuf>> {
    let first = &seeds
        .first()
        .context("a campaign has at least one seed folder")?
        .1;
    let cfg: EscapeConfig = noisescope_runs::config::load(&first.join("escape.toml"), &[])?;
    let names: Vec<String> = cfg.dynamics.iter().map(|d| d.to_string()).collect();
    let shift = -(cfg.phase1.steps as f64);
    let phase1: Vec<BTreeMap<u64, Value>> = seeds
        .iter()
        .map(|(_, p)| lines_by_step(&p.join("phase1")))
        .collect();
    let layout = if cfg
        .run
        .probes
        .list
        .contains(&noisescope_probe::config::Probe::Direction)
    {
        &DIRECTION
    } else {
        &GENERALIZATION
    };
    let mut panels: Vec<Panel> = layout
        .panels
        .iter()
        .map(|&(key, with_phase1, title, y, log_y)| {
            let curves = if with_phase1 {
                let p1 = curve_over_seeds(&phase1, key, shift);
                vec![Series {
                    name: format!("phase 1 (GD, lr {})", cfg.phase1.lr),
                    points: p1.iter().map(|&(x, y, _)| (x, y)).collect(),
                    color: Some(7),
                    dashed: true,
                }]
            } else {
                Vec::new()
            };
            Panel {
                title: format!("{title}, mean ± s.e. over {} seed(s)", seeds.len()),
                x_label: if with_phase1 {
                    "step (phase 1 negative, θ* at 0)".into()
                } else {
                    "phase-2 step".into()
                },
                y_label: y.into(),
                log_x: false,
                log_y,
                curves,
                points: Vec::new(),
                vlines: if with_phase1 { vec![0.0] } else { vec![] },
                jitter: 0.0,
                legend_low: key == "test_acc",
                x_ticks: vec![],
            }
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        let units = units_of(seeds, name);
        for (panel, &(key, ..)) in panels.iter_mut().zip(layout.panels) {
            let pts = curve_over_seeds(&units, key, 0.0);
            if pts.is_empty() {
                continue;
            }
            panel.curves.push(Series {
                name: name.clone(),
                points: pts.iter().map(|&(x, y, _)| (x, y)).collect(),
                color: Some(i),
                dashed: false,
            });
            panel.points.push(Points {
                name: String::new(),
                points: pts,
                color: Some(i),
            });
        }
    }
    let t = tabulate(layout, &names, seeds);
    let (completed, started, table) = (t.completed, t.started, t.table);
    let dynamics = t.dynamics;
    let total = seeds.len() * names.len();
    let summary = json!({
        "seeds": seeds.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "units": {"completed": completed, "started": started, "total": total},
        "steps": cfg.run.steps,
        "dynamics": dynamics,
    });
    std::fs::create_dir_all(dir.join("figures"))
        .with_context(|| format!("creating {}", dir.join("figures").display()))?;
    let fig = dir.join("figures/escape-seeds.svg");
    comparison(&fig, &panels)?;
    let table_file = dir.join("table.md");
    write_atomic(
        &table_file,
        format!(
            "Units completed: {completed} of {total} ({started} started; {} seed(s) × {} dynamics, {} steps each). {}, mean ± s.e. over seeds.\n\n{table}",
            seeds.len(),
            names.len(),
            cfg.run.steps,
            if layout.steps.is_empty() {
                "Each row: the last probe step all started seeds reached"
            } else {
                "Each row: a step every started seed logged"
            }
        )
        .as_bytes(),
    )?;
    let summary_file = dir.join("summary.json");
    write_atomic(
        &summary_file,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    println!("units completed: {completed} of {total} ({started} started)");
    print!("{table}");
    println!("table: {}", table_file.display());
    println!("summary: {}", summary_file.display());
    Ok(vec![fig])
}
