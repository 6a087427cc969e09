//! `noisescope sweep`: one run per value of a config key (a width, a learning rate, a seed),
//! optionally for several named series of overrides (SGD and Adam, a fixed and a rescaled
//! learning rate), each in its own run directory; then a figure of chosen metrics against
//! step with a curve per value, a figure of chosen summary values against the key with a
//! curve per series, and a table. With `seeds`, every run repeats once per seed and the
//! summary figure and a second table show the mean ± s.e. over them. A run that diverges is
//! recorded and the sweep goes on.
//!
//! Every run is a unit with its own folder: `--shard i/n` (or a Slurm array task) runs a
//! share of them, `--jobs`/`--devices` runs them in parallel processes, and the combined
//! summary is always built from the folders (`noisescope collect`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use noisescope_data::SearchPath;
use noisescope_runs::config;
use noisescope_runs::rundir::default_out;
use noisescope_runs::sweep::{
    SweepConfig, combined_summary, key_number, lookup, runs, unit_config,
};
use noisescope_runs::units::{self, Combined, UnitState};
use serde_json::Value;

use crate::args::{Global, SweepArgs};
use crate::backend;
use crate::draw::{Panel, Points, Series, comparison, line_panels, metric_series};
use crate::experiment;
use crate::fanout::{self, Role};
use crate::run_loop::{RunContext, initial_theta, run_recorded};

pub fn run(g: &Global, a: &SweepArgs) -> Result<()> {
    let sweep: SweepConfig = config::load(&a.config, &a.set)?;
    let out = a.out.clone().unwrap_or_else(|| default_out(&a.config, ""));
    let units = runs(&sweep)?;
    let text = toml::to_string(&sweep)?;
    let role = Role::open(
        g,
        &a.scale,
        &out,
        ("a sweep", "sweep.toml", &text),
        a.restart,
    )?;
    if let Role::Parent(workers) = &role {
        let progress = units
            .iter()
            .map(|r| Ok((out.join(&r.name), unit_config(&sweep, r, &a.config)?.steps)))
            .collect::<Result<Vec<_>>>()?;
        let ran = fanout::run(g, &out, workers, &progress);
        report(g, &out)?;
        return ran;
    }
    let opened = backend::open(g.backend, g.device)?;
    let search = SearchPath::from_env(g.data_dir.clone());
    let mine = role.shard().units(units.len());
    if let Role::Shard(s) = &role
        && !g.quiet
    {
        eprintln!(
            "shard {s}: {} of the sweep's {} units",
            mine.len(),
            units.len()
        );
    }
    // A failing unit is recorded in its folder and the others go on.
    let mut failures = Vec::new();
    for &i in &mine {
        let r = &units[i];
        let dir = out.join(&r.name);
        units::clear_failure(&dir)?;
        let ran = (|| -> Result<()> {
            let mut cfg = unit_config(&sweep, r, &a.config)?;
            // A completed unit is a result as it stands, without loading its data: the sweep
            // needs only its summary (its checkpoints may have been deleted to save disk).
            if let UnitState::Summarized(s) = UnitState::of(&dir)?
                && s["status"] == "completed"
                && s["steps_done"].as_u64().is_some_and(|d| d >= cfg.steps)
            {
                return Ok(());
            }
            cfg.backend = Some(format!("{:?}", g.backend).to_lowercase());
            let exp = experiment::build(&cfg, &opened, &search)?;
            if !g.quiet {
                eprintln!(
                    "{}: {} (D = {}), {} steps",
                    r.name,
                    exp.net.name,
                    exp.net.dim(),
                    cfg.steps
                );
            }
            let theta0 = initial_theta(&cfg, &exp.net, &opened.device)?;
            let ctx = RunContext {
                cfg: &cfg,
                exp: &exp,
                quiet: g.quiet,
                until: None,
                device_name: &opened.description,
            };
            // A diverged run is a result (the learning rate was too large for this width,
            // say): its summary is on disk.
            run_recorded(&ctx, theta0, &dir)?;
            Ok(())
        })();
        if let Err(e) = ran {
            units::record_failure(&dir, &e);
            eprintln!("{}: {e:#}", r.name);
            failures.push(format!("{}: {e:#}", r.name));
        }
    }
    role.finish(g.quiet, &out, &failures, || report(g, &out))
}

/// Whether positive `values` span at least a factor of 10: a log axis then shows them
/// better; otherwise (an accuracy between 0.8 and 0.92, say) it would show a single tick.
fn spans_a_decade(values: impl Iterator<Item = f64>) -> bool {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite()) {
        if v <= 0.0 {
            return false;
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    hi >= 10.0 * lo
}

/// Writes the sweep's combined `summary.json` and figures from its unit folders and prints
/// its table (or the summary as JSON) and any units not finished.
pub fn report(g: &Global, out: &Path) -> Result<()> {
    let Combined {
        config: sweep,
        mut summary,
        states,
    } = combined_summary(out)?;
    units::write_summary(out, &mut summary)?;
    let names: Vec<String> = states
        .iter()
        .filter(|(_, s)| !matches!(s, UnitState::Missing))
        .map(|(n, _)| n.clone())
        .collect();
    let figures = figure(out, &sweep, &names)?
        .into_iter()
        .chain(summary_figure(out, &sweep, &summary)?);
    for p in figures {
        if !g.quiet {
            eprintln!("figure: {}", p.display());
        }
    }
    if g.json {
        crate::output::print_json(&summary);
        return Ok(());
    }
    print_table(&sweep, &summary, &states);
    print_seed_table(&sweep, &summary);
    if summary["units"]["finished"] != summary["units"]["total"] {
        crate::output::print_unfinished(&summary["units"], &states);
    }
    println!("results: {}", out.display());
    Ok(())
}

/// The sweep's table: one row per unit, the final value of every plotted metric and every
/// chosen summary value (or the unit's status where it has none).
fn print_table(sweep: &SweepConfig, summary: &Value, states: &[(String, UnitState)]) {
    let finals = &summary["runs"];
    let mut cols: Vec<(String, String)> = sweep
        .plot
        .iter()
        .map(|m| {
            let k = m.trim_start_matches("probes.").to_string();
            let path = if m.starts_with("probes.") {
                format!("final.probes.{k}")
            } else {
                format!("final.{m}")
            };
            (k, path)
        })
        .collect();
    cols.extend(
        sweep
            .summary
            .iter()
            .map(|m| (m.clone(), format!("summary.{m}"))),
    );
    let width = states
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(8)
        .max(12)
        + 2;
    print!("{:<width$}", "run");
    for (k, _) in &cols {
        print!(" {k:>22}");
    }
    println!();
    for (n, state) in states {
        print!("{n:<width$}");
        for (_, path) in &cols {
            let v = match path.strip_prefix("summary.") {
                Some(m) => &finals[n]["summary"][m],
                None => lookup(&finals[n], path),
            };
            let cell = match v.as_f64() {
                Some(x) => format!("{x:.5e}"),
                None if !state.finished() || finals[n]["status"] == "diverged" => state.status(),
                None => "-".into(),
            };
            print!(" {cell:>22}");
        }
        println!();
    }
}

/// With `seeds`, a second table: each summary value's mean ± s.e. over the seeds, one row
/// per series and value (`n` counts the finite values among the seeds').
fn print_seed_table(sweep: &SweepConfig, summary: &Value) {
    if sweep.seeds.is_empty() || sweep.summary.is_empty() {
        return;
    }
    let rows = summary["across_seeds"][&sweep.summary[0]]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let labels: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{}{}={}",
                row["series"]
                    .as_str()
                    .map(|s| format!("{s}, "))
                    .unwrap_or_default(),
                sweep.key,
                row["label"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(14)
        + 2;
    println!("\nmean ± s.e. over seeds {:?}:", sweep.seeds);
    print!("{:<width$}", "series, value");
    for m in &sweep.summary {
        print!(" {m:>30}");
    }
    println!();
    for (i, label) in labels.iter().enumerate() {
        print!("{label:<width$}");
        for m in &sweep.summary {
            let r = &summary["across_seeds"][m][i];
            let cell = match (r["mean"].as_f64(), r["se"].as_f64()) {
                (Some(mean), Some(se)) => format!("{mean:.4e} ± {se:.1e} ({})", r["n"]),
                (Some(mean), None) => format!("{mean:.4e} ({})", r["n"]),
                _ => "-".into(),
            };
            print!(" {cell:>30}");
        }
        println!();
    }
}

/// The figure of a sweep: the chosen metrics against step, one curve per value and metric.
pub fn figure(out: &Path, sweep: &SweepConfig, names: &[String]) -> Result<Option<PathBuf>> {
    if sweep.plot.is_empty() {
        return Ok(None);
    }
    // With seeds, the first started seed's curves only: three times the curves would hide
    // each other.
    let started = |seed: &&u64| names.iter().any(|n| n.ends_with(&format!("/seed={seed}")));
    let (names, title): (Vec<&String>, String) = match sweep.seeds.iter().find(started) {
        Some(first) => (
            names
                .iter()
                .filter(|n| n.ends_with(&format!("/seed={first}")))
                .collect(),
            format!(
                "by {}, seed {first} of {}",
                readable(&sweep.key),
                sweep.seeds.len()
            ),
        ),
        None => (
            names.iter().collect(),
            format!("by {}", readable(&sweep.key)),
        ),
    };
    // The y axis names the quantities, the first solid and the others dashed.
    let y_label = sweep
        .plot
        .iter()
        .enumerate()
        .map(|(j, m)| format!("{}{}", quantity(m), if j == 0 { "" } else { " (dashed)" }))
        .collect::<Vec<_>>()
        .join(", ");
    // One colour per value of the key; the first metric solid, the others dashed.
    let series: Vec<Series> = names
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            sweep.plot.iter().enumerate().map(move |(j, m)| Series {
                name: format!("{n} {}", quantity(m)),
                points: metric_series(&out.join(n), m).unwrap_or_default(),
                color: Some(i),
                dashed: j > 0,
            })
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let p = out.join("figures/sweep.svg");
    line_panels(&p, "step", &[(&title, &y_label, sweep.log_y, series)])?;
    Ok(Some(p))
}

/// A config key or summary path as a figure's words: the quantity first, the key itself in
/// brackets so that the figure still names what to look up.
fn readable(key: &str) -> String {
    let (when, rest) = match key.split_once('.') {
        Some(("final", r)) => (" at the end", r),
        Some(("late_mean", r)) => (", mean of the last fifth", r),
        _ => ("", key),
    };
    match quantity_name(rest) {
        Some(what) => format!("{what}{when} ({key})"),
        None => key.to_string(),
    }
}

/// A metric's name alone (`probes.trace_h_sigma` → "Tr(HΣ)"), or the key where it has none.
fn quantity(key: &str) -> String {
    quantity_name(key).map_or_else(|| key.to_string(), str::to_string)
}

/// The words for a config key or metric (without `final.`/`late_mean.`), when known.
fn quantity_name(key: &str) -> Option<&'static str> {
    Some(match key.trim_start_matches("probes.") {
        "optimizer.weight_decay" => "weight decay γ",
        "optimizer.lr" => "learning rate",
        "model.width" | "model.widths.1" => "hidden width",
        "data.n" => "training samples n",
        "noise.batch" => "batch size",
        "test_loss" => "test loss",
        "test_acc" => "test accuracy",
        "train_loss" => "training loss",
        "alignment_mu" => "alignment μ",
        "trace_h_sigma" => "Tr(HΣ)",
        // Σ_iso rather than Σ̄: the combining macron is lost in many fonts.
        "trace_h_sigma_iso" => "Tr(HΣ_iso), isotropic noise",
        "escape_ratio" => "Tr(HΣ)/Tr(HΣ_iso)",
        "step_loss.variance" => "variance of the step loss",
        "step_loss.mean" => "mean step loss",
        _ => return None,
    })
}

/// The rows of `across_seeds` for summary value `m` and `series` (None: rows without one), as
/// (value, mean, standard error); a missing standard error (one seed) is drawn as 0.
fn seed_means(summary: &Value, m: &str, series: Option<&str>) -> Vec<(f64, f64, f64)> {
    summary["across_seeds"][m]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["series"].as_str() == series)
        .filter_map(|r| {
            Some((
                r["value"].as_f64()?,
                r["mean"].as_f64()?,
                r["se"].as_f64().unwrap_or(0.0),
            ))
        })
        .collect()
}

/// The summary figure of a sweep: each chosen summary value against the key, one curve per
/// series (diverged runs are left out of the curve and named in the table); with `seeds`,
/// each curve is the series' mean over the seeds with ±1 s.e. bars.
pub fn summary_figure(out: &Path, sweep: &SweepConfig, summary: &Value) -> Result<Option<PathBuf>> {
    if sweep.summary.is_empty() {
        return Ok(None);
    }
    let runs = runs(sweep)?;
    let over_seeds = !sweep.seeds.is_empty();
    let mut series_names: Vec<Option<String>> = Vec::new();
    for r in &runs {
        if !series_names.contains(&r.series) {
            series_names.push(r.series.clone());
        }
    }
    let panels: Vec<Panel> = sweep
        .summary
        .iter()
        .map(|m| Panel {
            title: readable(m),
            x_label: readable(&sweep.key),
            y_label: readable(m),
            log_x: sweep.log_x,
            log_y: sweep.log_y
                && spans_a_decade(
                    runs.iter()
                        .filter_map(|r| summary["runs"][&r.name]["summary"][m].as_f64()),
                ),
            curves: series_names
                .iter()
                .enumerate()
                .map(|(i, sn)| {
                    let name = sn.clone().unwrap_or_else(|| m.clone());
                    let pts = if over_seeds {
                        seed_means(summary, m, sn.as_deref())
                            .into_iter()
                            .map(|(x, y, _)| (x, y))
                            .collect()
                    } else {
                        runs.iter()
                            .filter(|r| &r.series == sn)
                            .filter_map(|r| {
                                let x = key_number(&r.value)?;
                                let y = summary["runs"][&r.name]["summary"][m].as_f64()?;
                                Some((x, y))
                            })
                            .collect()
                    };
                    Series {
                        name: if over_seeds {
                            format!("{name}, mean ± s.e. over {} seeds", sweep.seeds.len())
                        } else {
                            name
                        },
                        points: pts,
                        color: Some(i),
                        dashed: false,
                    }
                })
                .collect(),
            points: if over_seeds {
                // Each series' error bars, in its curve's colour (the curve has the legend).
                series_names
                    .iter()
                    .enumerate()
                    .map(|(i, sn)| Points {
                        name: String::new(),
                        points: seed_means(summary, m, sn.as_deref()),
                        color: Some(i),
                    })
                    .collect()
            } else {
                // Series that are seeds: the mean with its standard error, beside each
                // seed's curve.
                Some(seed_means(summary, m, None))
                    .filter(|p| !p.is_empty())
                    .map(|points| Points {
                        name: "mean ± s.e. over seeds".into(),
                        points,
                        color: Some(7),
                    })
                    .into_iter()
                    .collect()
            },
            vlines: vec![],
            jitter: 0.0,
            legend_low: false,
            x_ticks: vec![],
        })
        .collect();
    let p = out.join("figures/summary.svg");
    comparison(&p, &panels)?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_axis_only_for_values_over_a_decade() {
        assert!(spans_a_decade([0.5, 7.0].into_iter()));
        assert!(!spans_a_decade([0.8, 0.92].into_iter()));
        assert!(!spans_a_decade([-1.0, 100.0].into_iter()));
    }

    #[test]
    fn figure_names_say_the_quantity_and_keep_the_key() {
        assert_eq!(
            readable("late_mean.test_loss"),
            "test loss, mean of the last fifth (late_mean.test_loss)"
        );
        assert_eq!(
            readable("optimizer.weight_decay"),
            "weight decay γ (optimizer.weight_decay)"
        );
        assert_eq!(
            readable("final.probes.escape_ratio"),
            "Tr(HΣ)/Tr(HΣ_iso) at the end (final.probes.escape_ratio)"
        );
        assert_eq!(readable("run.some_new_key"), "run.some_new_key");
        assert_eq!(quantity("probes.trace_h_sigma"), "Tr(HΣ)");
        assert_eq!(quantity("probes.new_probe"), "probes.new_probe");
    }
}
