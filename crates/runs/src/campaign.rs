//! A campaign: the same escape experiment once per seed, in `seed-N/` folders under one root
//! (scripts/zhu2019-campaign.sh, or `escape --set run.seed=N --out ROOT/seed-N`), combined
//! partial or complete: metric curves as mean ± s.e. over seeds at the steps every seed
//! logged, and a table by dynamic. What is tabulated follows the probes ([`Layout`]):
//! generalization and sharpness at the last common probe step (Zhu et al.'s Fig. 2), or the
//! displacement from θ* and its share in the sharp directions along the way (Wang and Wu).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::rundir::RunDir;

/// The seed folders of a campaign root: `seed-N/` holding an `escape.toml`, by seed.
pub fn seed_folders(dir: &Path) -> Vec<(u64, PathBuf)> {
    crate::units::seed_dirs(dir, |p| p.join("escape.toml").is_file())
}

/// Mean and standard error of the mean (0 for one value).
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let (mean, se) = noisescope_probe::stats::mean_and_se(v);
    (mean, se.unwrap_or(0.0))
}

/// A metric of one line: a top-level key, or `probes.<name>`.
pub fn value(line: &Value, key: &str) -> Option<f64> {
    match key.strip_prefix("probes.") {
        Some(p) => line["probes"][p].as_f64(),
        None => line[key].as_f64(),
    }
}

/// The metric lines of one unit folder, by step (none when it has not started).
pub fn lines_by_step(dir: &Path) -> BTreeMap<u64, Value> {
    let rd = RunDir::at(dir);
    rd.metrics()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| Some((m["step"].as_u64()?, m)))
        .collect()
}

/// Mean ± s.e. over seeds of `key` at every step that every unit logged with a value (so
/// that no point mixes other subsets of seeds); x shifted by `shift`.
pub fn curve_over_seeds(
    units: &[BTreeMap<u64, Value>],
    key: &str,
    shift: f64,
) -> Vec<(f64, f64, f64)> {
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

/// What a campaign's report draws and tabulates.
pub struct Layout {
    /// Table columns: metric key and heading.
    pub columns: &'static [(&'static str, &'static str)],
    /// Panels: metric key, with phase 1 before θ*, title, y label, log y.
    pub panels: &'static [(&'static str, bool, &'static str, &'static str, bool)],
    /// Table rows at these phase-2 steps (those every started seed logged) and at the last
    /// step they all logged; empty: one row at the last probe step every started seed reached.
    pub steps: &'static [u64],
}

/// Zhu et al.'s Fig. 2: generalization and flatness at the end. Test accuracy with phase 1
/// (GD from θ₀ to θ*), the same from θ* on (phase 1's climb from 10% would flatten the
/// dynamics' differences), and the expected sharpness (probed in phase 2 only).
pub const GENERALIZATION: Layout = Layout {
    columns: &[
        ("test_acc", "test acc"),
        ("probes.sharpness", "E[L(θ+ν)] − L(θ)"),
        ("probes.sharpness_abs", "E\\|L(θ+ν) − L(θ)\\|"),
        ("probes.escape_ratio", "Tr(HΣ)/Tr(HΣ̄)"),
        ("probes.lambda_max", "λ_max"),
        ("train_loss", "train loss"),
        ("probes.trace_h_sigma", "Tr(HΣ)"),
    ],
    panels: &[
        (
            "test_acc",
            true,
            "test accuracy; GD phase 1 left of θ* (0)",
            "test accuracy",
            false,
        ),
        (
            "test_acc",
            false,
            "test accuracy from θ*",
            "test accuracy",
            false,
        ),
        (
            "probes.sharpness",
            false,
            "expected sharpness (δ = 0.01)",
            "E[L(θ+ν)] − L(θ)",
            false,
        ),
    ],
    steps: &[],
};

/// Wang and Wu's escape direction: how far each dynamic moves from θ*, how much of it lies in
/// the top-k Hessian directions at θ*, and whether the loss stays low on the way.
pub const DIRECTION: Layout = Layout {
    columns: &[
        ("probes.direction_norm_sq", "‖θ − θ*‖²"),
        ("probes.direction_sharp_fraction", "top-k share"),
        ("probes.direction_top1_fraction", "u₁ share"),
        ("train_loss", "train loss"),
    ],
    panels: &[
        (
            "probes.direction_norm_sq",
            false,
            "displacement from θ*",
            "‖θ − θ*‖²",
            true,
        ),
        (
            "probes.direction_sharp_fraction",
            false,
            "share of ‖θ − θ*‖² in the top-k Hessian directions",
            "top-k share",
            false,
        ),
        ("train_loss", false, "training loss", "train loss", true),
    ],
    steps: &[2, 4, 6, 8, 10, 20, 50, 100, 200, 500, 1000],
};

/// A campaign's table and its numbers.
pub struct Tabulated {
    /// The markdown table: one row per dynamic and step.
    pub table: String,
    /// Per dynamic: the row's `{step, seeds, metric: {mean, se}}`, or a list of them by step
    /// for a layout with `steps`.
    pub dynamics: Map<String, Value>,
    /// Units whose summary says `completed`.
    pub completed: usize,
    /// Units with at least one metric line.
    pub started: usize,
}

/// The table of `names` (the dynamics) over `seeds` in `layout`: mean ± s.e. over the started
/// seeds of each column, at the layout's steps that every started seed logged and the last step
/// they all logged, or (a layout without steps) at the last probe step every started seed
/// reached.
pub fn tabulate(layout: &Layout, names: &[String], seeds: &[(u64, PathBuf)]) -> Tabulated {
    let columns = layout.columns;
    let mut out = Tabulated {
        table: format!(
            "| dynamic | step (seeds) | {} |\n|---|---|{}\n",
            columns
                .iter()
                .map(|(_, h)| *h)
                .collect::<Vec<_>>()
                .join(" | "),
            "---:|".repeat(columns.len())
        ),
        dynamics: Map::new(),
        completed: 0,
        started: 0,
    };
    for name in names {
        let units = units_of(seeds, name);
        for (_, p) in seeds {
            let s: Option<Value> = std::fs::read(p.join(name).join("summary.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if s.as_ref().and_then(|s| s["status"].as_str()) == Some("completed") {
                out.completed += 1;
            }
        }
        out.started += units.len();
        if units.is_empty() {
            out.table.push_str(&format!(
                "| `{name}` | not started |{}\n",
                " |".repeat(columns.len())
            ));
            continue;
        }
        let steps: Vec<u64> = if layout.steps.is_empty() {
            units
                .iter()
                .map(|u| {
                    u.iter()
                        .rev()
                        .find(|(_, l)| l["probes"].is_object())
                        .map_or(0, |(s, _)| *s)
                })
                .min()
                .into_iter()
                .collect()
        } else {
            // The chosen steps, and the last step every started seed logged (so that a run
            // longer than the list, or logged at other steps, still shows where it ended).
            let common = |s: &u64| units.iter().all(|u| u.contains_key(s));
            let mut steps: Vec<u64> = layout.steps.iter().copied().filter(common).collect();
            let last = units[0].keys().rev().copied().find(common);
            if let Some(last) = last.filter(|l| !steps.contains(l)) {
                steps.push(last);
            }
            steps
        };
        if steps.is_empty() {
            out.table.push_str(&format!(
                "| `{name}` | no step logged by every started seed yet ({}) |{}\n",
                units.len(),
                " |".repeat(columns.len())
            ));
            continue;
        }
        let mut rows = Vec::new();
        for &step in &steps {
            let mut entry = Map::new();
            entry.insert("step".into(), json!(step));
            entry.insert("seeds".into(), json!(units.len()));
            let mut cells = Vec::new();
            for &(key, _) in columns {
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
                } else if key.ends_with("fraction") {
                    format!("{m:.2} ± {se:.2}")
                } else {
                    format!("{m:.4e} ± {se:.1e}")
                });
            }
            out.table.push_str(&format!(
                "| `{name}` | {step} ({}) | {} |\n",
                units.len(),
                cells.join(" | ")
            ));
            rows.push(Value::Object(entry));
        }
        // One row: the entry itself (the Fig. 2 page reads it so); several: a list by step.
        match rows.len() {
            0 => {}
            1 if layout.steps.is_empty() => {
                out.dynamics
                    .insert(name.clone(), rows.pop().expect("one row"));
            }
            _ => {
                out.dynamics.insert(name.clone(), Value::Array(rows));
            }
        }
    }
    out
}

/// The metric lines of dynamic `name` in each seed folder that has started it.
pub fn units_of(seeds: &[(u64, PathBuf)], name: &str) -> Vec<BTreeMap<u64, Value>> {
    seeds
        .iter()
        .map(|(_, p)| lines_by_step(&p.join(name)))
        .filter(|u| !u.is_empty())
        .collect()
}
