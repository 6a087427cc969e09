//! A campaign: the same escape experiment once per seed, in `seed-N/` folders under one root
//! (scripts/zhu2019-campaign.sh). `noisescope plot ROOT` combines them, partial or complete,
//! into curves of mean ± s.e. over seeds (phase 1 included, θ* at step 0), a final table and
//! a `summary.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use noisescope_runs::rundir::{RunDir, write_atomic};
use serde_json::{Map, Value, json};

use crate::draw::{Panel, Points, Series, comparison};
use crate::escape_cmd::EscapeConfig;

/// The seed folders of a campaign root: `seed-N/` holding an `escape.toml`, by seed.
pub fn seed_folders(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut seeds: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let seed: u64 = name.strip_prefix("seed-")?.parse().ok()?;
            e.path()
                .join("escape.toml")
                .is_file()
                .then_some((seed, e.path()))
        })
        .collect();
    seeds.sort_by_key(|(s, _)| *s);
    seeds
}

/// Mean and standard error of the mean (0 for one value).
fn mean_se(v: &[f64]) -> (f64, f64) {
    let (mean, se) = noisescope_probe::stats::mean_and_se(v);
    (mean, se.unwrap_or(0.0))
}

/// A metric of one line: a top-level key, or `probes.<name>`.
fn value(line: &Value, key: &str) -> Option<f64> {
    match key.strip_prefix("probes.") {
        Some(p) => line["probes"][p].as_f64(),
        None => line[key].as_f64(),
    }
}

/// The metric lines of one unit folder, by step (none when it has not started).
fn lines_by_step(dir: &Path) -> BTreeMap<u64, Value> {
    let rd = RunDir::at(dir);
    rd.metrics()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| Some((m["step"].as_u64()?, m)))
        .collect()
}

/// Mean ± s.e. over seeds of `key` at every step that every unit logged with a value (so
/// that no point mixes other subsets of seeds); x shifted by `shift`.
fn across_seeds(units: &[BTreeMap<u64, Value>], key: &str, shift: f64) -> Vec<(f64, f64, f64)> {
    let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for u in units {
        for (step, line) in u {
            if let Some(v) = value(line, key).filter(|v| v.is_finite()) {
                by_step.entry(*step).or_default().push(v);
            }
        }
    }
    by_step
        .into_iter()
        .filter(|(_, v)| v.len() == units.len())
        .map(|(s, v)| {
            let (m, se) = mean_se(&v);
            (s as f64 + shift, m, se)
        })
        .collect()
}

/// The table's columns: metric key and heading.
const COLUMNS: [(&str, &str); 7] = [
    ("test_acc", "test acc"),
    ("probes.sharpness", "E[L(θ+ν)] − L(θ)"),
    ("probes.sharpness_abs", "E\\|L(θ+ν) − L(θ)\\|"),
    ("probes.escape_ratio", "Tr(HΣ)/Tr(HΣ̄)"),
    ("probes.lambda_max", "λ_max"),
    ("train_loss", "train loss"),
    ("probes.trace_h_sigma", "Tr(HΣ)"),
];

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
    let mut completed = 0usize;
    let mut started = 0usize;
    let mut dynamics = Map::new();
    let mut table = String::new();
    table.push_str(&format!(
        "| dynamic | step (seeds) | {} |\n|---|---|{}\n",
        COLUMNS.map(|(_, h)| h).join(" | "),
        "---:|".repeat(COLUMNS.len())
    ));
    // Test accuracy with phase 1 (GD from θ₀ to θ*), the same from θ* on (phase 1's climb
    // from 10% would flatten the dynamics' differences), and the expected sharpness (probed
    // in phase 2 only).
    const PANELS: [(&str, bool); 3] = [
        ("test_acc", true),
        ("test_acc", false),
        ("probes.sharpness", false),
    ];
    let mut panels: Vec<Panel> = PANELS
        .iter()
        .map(|&(key, with_phase1)| {
            let (title, y) = match (key, with_phase1) {
                ("test_acc", true) => ("test accuracy; GD phase 1 left of θ* (0)", "test accuracy"),
                ("test_acc", false) => ("test accuracy from θ*", "test accuracy"),
                _ => ("expected sharpness (δ = 0.01)", "E[L(θ+ν)] − L(θ)"),
            };
            let curves = if with_phase1 {
                let p1 = across_seeds(&phase1, key, shift);
                vec![Series {
                    name: "phase 1 (GD, lr 0.1)".into(),
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
                log_y: false,
                curves,
                points: Vec::new(),
                vlines: vec![0.0],
                jitter: 0.0,
                legend_low: key == "test_acc",
            }
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        let units: Vec<BTreeMap<u64, Value>> = seeds
            .iter()
            .map(|(_, p)| lines_by_step(&p.join(name)))
            .filter(|u| !u.is_empty())
            .collect();
        for (_, p) in seeds {
            let s: Option<Value> = std::fs::read(p.join(name).join("summary.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if s.as_ref().and_then(|s| s["status"].as_str()) == Some("completed") {
                completed += 1;
            }
        }
        started += units.len();
        for (panel, (key, _)) in panels.iter_mut().zip(PANELS) {
            let pts = across_seeds(&units, key, 0.0);
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
        // The table: the last probe step that every started seed reached.
        let common = units
            .iter()
            .map(|u| {
                u.iter()
                    .rev()
                    .find(|(_, l)| l["probes"].is_object())
                    .map_or(0, |(s, _)| *s)
            })
            .min();
        let Some(step) = common.filter(|_| !units.is_empty()) else {
            table.push_str(&format!(
                "| `{name}` | not started |{}\n",
                " |".repeat(COLUMNS.len())
            ));
            continue;
        };
        let mut entry = Map::new();
        entry.insert("step".into(), json!(step));
        entry.insert("seeds".into(), json!(units.len()));
        let mut cells = Vec::new();
        for (key, _) in COLUMNS {
            let v: Vec<f64> = units
                .iter()
                .filter_map(|u| value(u.get(&step)?, key))
                .filter(|v| v.is_finite())
                .collect();
            if v.is_empty() {
                cells.push("–".to_string());
                continue;
            }
            let (m, se) = mean_se(&v);
            entry.insert(key.replace("probes.", ""), json!({"mean": m, "se": se}));
            cells.push(if key.ends_with("acc") {
                format!("{:.2}% ± {:.2}", 100.0 * m, 100.0 * se)
            } else {
                format!("{m:.4e} ± {se:.1e}")
            });
        }
        table.push_str(&format!(
            "| `{name}` | {step} ({}) | {} |\n",
            units.len(),
            cells.join(" | ")
        ));
        dynamics.insert(name.clone(), Value::Object(entry));
    }
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
            "Units completed: {completed} of {total} ({started} started; {} seed(s) × {} dynamics, {} steps each). Each row: the last probe step all started seeds reached, mean ± s.e. over seeds.\n\n{table}",
            seeds.len(),
            names.len(),
            cfg.run.steps
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
