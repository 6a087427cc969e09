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
use noisescope_runs::rundir::{check_folder_name, default_out};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use noisescope_runs::config::{self, RunConfig};
use noisescope_runs::units::{self, Combined, UnitState};

use crate::args::{Global, SweepArgs};
use crate::backend;
use crate::draw::{Panel, Series, comparison, line_panels, metric_series};
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
    let summary = json!({
        "key": sweep.key,
        "runs": finals,
        "units": units::tally(states.iter().map(|(n, s)| (n.as_str(), s))),
        "device": devices.join(", "),
    });
    Ok(Combined {
        config: sweep,
        summary,
        states,
    })
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
            log_y: sweep.log_y,
            curves: series_names
                .iter()
                .map(|sn| {
                    let pts = runs
                        .iter()
                        .filter(|r| &r.series == sn)
                        .filter_map(|r| {
                            let x = r
                                .value
                                .as_float()
                                .or_else(|| r.value.as_integer().map(|i| i as f64))?;
                            let y = summary["runs"][&r.name]["summary"][m].as_f64()?;
                            Some((x, y))
                        })
                        .collect();
                    Series::new(sn.clone().unwrap_or_else(|| m.clone()), pts)
                })
                .collect(),
            points: vec![],
            vlines: vec![],
            jitter: 0.0,
            legend_low: false,
        })
        .collect();
    let p = out.join("figures/summary.svg");
    comparison(&p, &panels)?;
    Ok(Some(p))
}
