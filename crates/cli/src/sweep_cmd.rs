//! `noisescope sweep`: one run per value of a config key (a width, a learning rate, a seed),
//! optionally for several named series of overrides (SGD and Adam, a fixed and a rescaled
//! learning rate), each in its own run directory; then a figure of chosen metrics against
//! step with a curve per value, a figure of chosen summary values against the key with a
//! curve per series, and a table. A run that diverges is recorded and the sweep goes on.
//!
//! Every run is a unit with its own folder: `--shard i/n` (or a Slurm array task) runs a
//! share of them, `--jobs`/`--devices` runs them in parallel processes, and the combined
//! summary is always built from the folders (`noisescope collect`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use noisescope_data::SearchPath;
use noisescope_runs::config::{self, RunConfig};
use noisescope_runs::rundir::{check_folder_name, default_out};
use noisescope_runs::units::{self, Combined, UnitState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::args::{Global, SweepArgs};
use crate::backend;
use crate::draw::{Panel, Points, Series, comparison, line_panels, metric_series};
use crate::experiment;
use crate::fanout::{self, Role};
use crate::run_loop::{RunContext, initial_theta, run_recorded};

/// A sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// The swept key (a dotted path into `run`, e.g. `model.width`).
    pub key: String,
    /// Its values.
    pub values: Vec<toml::Value>,
    /// Metrics to plot against step (`train_loss`, `probes.trace_h_sigma`, …); each value of
    /// the key gives one curve per metric.
    #[serde(default)]
    pub plot: Vec<String>,
    /// Plot on a log scale.
    #[serde(default)]
    pub log_y: bool,
    /// Summary values to plot against the key, one curve per series: dotted paths into a
    /// run's `summary.json` (`step_loss.variance`, `late_mean.test_loss`, `final.test_acc`).
    #[serde(default)]
    pub summary: Vec<String>,
    /// The key's axis on a log scale in the summary figure.
    #[serde(default)]
    pub log_x: bool,
    /// Named sets of overrides of the base run; every value of the key runs in each.
    #[serde(default)]
    pub series: Vec<SeriesSpec>,
    /// The base run.
    pub run: toml::Table,
}

/// A named variant of the base run: `set` maps dotted keys (relative to `run`) to values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    pub name: String,
    #[serde(default)]
    pub set: toml::Table,
}

/// One run of a sweep: its series (if any), the key's value and its folder name.
pub struct SweepRun {
    pub series: Option<String>,
    pub value: toml::Value,
    pub name: String,
}

/// The runs of a sweep in order: series by series, value by value. Every series name and
/// value label must be a plain folder name ([`check_folder_name`]).
pub fn runs(sweep: &SweepConfig) -> Result<Vec<SweepRun>> {
    if sweep.values.is_empty() {
        bail!(
            "values: empty, expected at least one value of `{}`",
            sweep.key
        );
    }
    for s in &sweep.series {
        check_folder_name("series name", &s.name)?;
    }
    let label = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let series: Vec<Option<&SeriesSpec>> = if sweep.series.is_empty() {
        vec![None]
    } else {
        sweep.series.iter().map(Some).collect()
    };
    series
        .into_iter()
        .flat_map(|s| {
            sweep.values.iter().map(move |v| {
                let base = format!("{}={}", sweep.key, label(v));
                check_folder_name("sweep value", &base)?;
                Ok(SweepRun {
                    series: s.map(|s| s.name.clone()),
                    value: v.clone(),
                    name: match s {
                        Some(s) => format!("{}/{base}", s.name),
                        None => base,
                    },
                })
            })
        })
        .collect::<Result<Vec<SweepRun>>>()
        .and_then(|runs| {
            // Each run is a unit with its own folder: twice would be two writers of one.
            for (i, r) in runs.iter().enumerate() {
                if runs[..i].iter().any(|q| q.name == r.name) {
                    bail!(
                        "the sweep has two runs named `{}`: values and series names must be distinct",
                        r.name
                    );
                }
            }
            Ok(runs)
        })
}

/// A dotted path into a JSON value.
pub fn lookup<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// The run config of one unit: the base run with its series' overrides and the key's value.
fn unit_config(sweep: &SweepConfig, r: &SweepRun, config: &Path) -> Result<RunConfig> {
    let mut table = sweep.run.clone();
    if let Some(sname) = &r.series {
        let spec = sweep
            .series
            .iter()
            .find(|s| &s.name == sname)
            .expect("runs() names a series of the sweep");
        for (k, v) in &spec.set {
            config::set_key(&mut table, k, &v.to_string())
                .with_context(|| format!("series {sname}: key {k}"))?;
        }
    }
    config::set_key(&mut table, &sweep.key, &r.value.to_string())?;
    config::parse_with_overrides(&toml::to_string(&table)?, config, &[])
        .with_context(|| r.name.clone())
}

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

/// The combined summary of the sweep in `out`, built from its unit folders alone (so it is
/// the same however many processes ran them), with the units' states in list order.
pub fn combined_summary(out: &Path) -> Result<Combined<SweepConfig>> {
    let sweep: SweepConfig = config::load(&out.join("sweep.toml"), &[])?;
    let mut finals = Map::new();
    let mut states = Vec::new();
    let mut devices: Vec<String> = Vec::new();
    for r in runs(&sweep)? {
        let state = UnitState::of(&out.join(&r.name))?;
        let mut entry = json!({"status": state.status()});
        match &state {
            UnitState::Summarized(summary) => {
                entry = json!({
                    "status": summary["status"], "final": summary["final"], "dim": summary["dim"],
                    "time": summary["time"], "effective_lr": summary["effective_lr"],
                });
                for m in &sweep.summary {
                    entry["summary"][m.as_str()] = lookup(summary, m).clone();
                }
                if let Some(d) = summary["device"].as_str()
                    && !devices.iter().any(|x| x == d)
                {
                    devices.push(d.to_string());
                }
            }
            UnitState::Failed(e) => entry["error"] = json!(e),
            _ => {}
        }
        finals.insert(r.name.clone(), entry);
        states.push((r.name, state));
    }
    let mut summary = json!({
        "key": sweep.key,
        "runs": finals,
        "units": units::tally(states.iter().map(|(n, s)| (n.as_str(), s))),
        "device": devices.join(", "),
    });
    if let Some(a) = across_seeds(&sweep, &summary["runs"])? {
        summary["across_seeds"] = a;
    }
    Ok(Combined {
        config: sweep,
        summary,
        states,
    })
}

/// Whether the sweep's series are repetitions: two or more, each setting `seed` alone.
fn seed_series(sweep: &SweepConfig) -> bool {
    sweep.series.len() >= 2
        && sweep
            .series
            .iter()
            .all(|s| s.set.len() == 1 && s.set.contains_key("seed"))
}

/// For a sweep whose series are seeds, each summary value's mean and standard error over the
/// seeds at every value of the key: `{metric: [{"value", "mean", "se", "n"}]}` (`se` null with
/// fewer than two finite values; diverged or missing runs are left out and `n` says how
/// many remain). `None` for other sweeps.
fn across_seeds(sweep: &SweepConfig, runs_json: &Value) -> Result<Option<Value>> {
    if !seed_series(sweep) || sweep.summary.is_empty() {
        return Ok(None);
    }
    let all = runs(sweep)?;
    let mut out = Map::new();
    for m in &sweep.summary {
        let rows: Vec<Value> = sweep
            .values
            .iter()
            .map(|v| {
                let ys: Vec<f64> = all
                    .iter()
                    .filter(|r| &r.value == v)
                    .filter_map(|r| runs_json[&r.name]["summary"][m].as_f64())
                    .filter(|y| y.is_finite())
                    .collect();
                let (mean, se) = noisescope_probe::stats::mean_and_se(&ys);
                json!({"value": key_number(v), "mean": (!ys.is_empty()).then_some(mean), "se": se, "n": ys.len()})
            })
            .collect();
        out.insert(m.clone(), Value::Array(rows));
    }
    Ok(Some(Value::Object(out)))
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

/// A key's value as a number for figures, when it is one.
fn key_number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
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

/// The figure of a sweep: the chosen metrics against step, one curve per value and metric.
pub fn figure(out: &Path, sweep: &SweepConfig, names: &[String]) -> Result<Option<PathBuf>> {
    if sweep.plot.is_empty() {
        return Ok(None);
    }
    // One colour per value of the key; the first metric solid, the others dashed.
    let series: Vec<Series> = names
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            sweep.plot.iter().enumerate().map(move |(j, m)| Series {
                name: format!("{n} {}", m.trim_start_matches("probes.")),
                points: metric_series(&out.join(n), m).unwrap_or_default(),
                color: Some(i),
                dashed: j > 0,
            })
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let p = out.join("figures/sweep.svg");
    line_panels(&p, "step", &[(&sweep.key, "value", sweep.log_y, series)])?;
    Ok(Some(p))
}

/// The summary figure of a sweep: each chosen summary value against the key, one curve per
/// series (diverged runs are left out of the curve and named in the table).
pub fn summary_figure(out: &Path, sweep: &SweepConfig, summary: &Value) -> Result<Option<PathBuf>> {
    if sweep.summary.is_empty() {
        return Ok(None);
    }
    let runs = runs(sweep)?;
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
            title: m.clone(),
            x_label: sweep.key.clone(),
            y_label: m.clone(),
            log_x: sweep.log_x,
            log_y: sweep.log_y
                && spans_a_decade(
                    runs.iter()
                        .filter_map(|r| summary["runs"][&r.name]["summary"][m].as_f64()),
                ),
            curves: series_names
                .iter()
                .map(|sn| {
                    let pts = runs
                        .iter()
                        .filter(|r| &r.series == sn)
                        .filter_map(|r| {
                            let x = key_number(&r.value)?;
                            let y = summary["runs"][&r.name]["summary"][m].as_f64()?;
                            Some((x, y))
                        })
                        .collect();
                    Series::new(sn.clone().unwrap_or_else(|| m.clone()), pts)
                })
                .collect(),
            // Over seeds: the mean with its standard error, beside each seed's curve.
            points: summary["across_seeds"][m]
                .as_array()
                .map(|rows| Points {
                    name: "mean ± s.e. over seeds".into(),
                    points: rows
                        .iter()
                        .filter_map(|r| {
                            Some((
                                r["value"].as_f64()?,
                                r["mean"].as_f64()?,
                                r["se"].as_f64().unwrap_or(0.0),
                            ))
                        })
                        .collect(),
                    color: Some(7),
                })
                .into_iter()
                .collect(),
            vlines: vec![],
            jitter: 0.0,
            legend_low: false,
        })
        .collect();
    let p = out.join("figures/summary.svg");
    comparison(&p, &panels)?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(series: &[(&str, &str)]) -> SweepConfig {
        let text = format!(
            "key = \"optimizer.weight_decay\"\nvalues = [0.0, 0.001]\nsummary = [\"late_mean.test_acc\"]\n{}\n[run]\n",
            series
                .iter()
                .map(|(n, set)| format!("[[series]]\nname = \"{n}\"\nset = {{ {set} }}\n"))
                .collect::<String>()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn seed_series_give_mean_and_standard_error_per_value() {
        let s = sweep(&[
            ("seed0", "seed = 0"),
            ("seed1", "seed = 1"),
            ("seed2", "seed = 2"),
        ]);
        let mut runs_json = Map::new();
        let accs = [[0.8, 0.9], [0.82, f64::NAN], [0.84, 0.7]];
        for (r, acc) in runs(&s).unwrap().iter().zip(accs.iter().flatten()) {
            runs_json.insert(
                r.name.clone(),
                json!({"summary": {"late_mean.test_acc": acc}}),
            );
        }
        let a = across_seeds(&s, &Value::Object(runs_json))
            .unwrap()
            .unwrap();
        let rows = a["late_mean.test_acc"].as_array().unwrap();
        assert_eq!(rows[0]["value"], 0.0);
        assert!((rows[0]["mean"].as_f64().unwrap() - 0.82).abs() < 1e-12);
        // s.e. of (0.8, 0.82, 0.84): sd 0.02 over √3.
        assert!((rows[0]["se"].as_f64().unwrap() - 0.02 / 3f64.sqrt()).abs() < 1e-12);
        // The NaN (diverged) run is left out.
        assert_eq!(rows[1]["n"], 2);
        assert!((rows[1]["mean"].as_f64().unwrap() - 0.8).abs() < 1e-12);
        // Series that change more than the seed are not repetitions.
        let other = sweep(&[("a", "seed = 0"), ("b", "seed = 1, optimizer.lr = 0.1")]);
        assert!(across_seeds(&other, &json!({})).unwrap().is_none());
    }

    #[test]
    fn a_log_axis_only_for_values_over_a_decade() {
        assert!(spans_a_decade([0.5, 7.0].into_iter()));
        assert!(!spans_a_decade([0.8, 0.92].into_iter()));
        assert!(!spans_a_decade([-1.0, 100.0].into_iter()));
    }
}
