//! `noisescope sweep`: one run per value of a config key (a width, a learning rate, a seed),
//! optionally for several named series of overrides (SGD and Adam, a fixed and a rescaled
//! learning rate), each in its own run directory; then a figure of chosen metrics against
//! step with a curve per value, a figure of chosen summary values against the key with a
//! curve per series, and a table. A run that diverges is recorded and the sweep goes on.

use anyhow::{Context, Result};
use noisescope_data::SearchPath;
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

use crate::args::{Global, SweepArgs};
use crate::backend;
use crate::config::{self, RunConfig};
use crate::experiment;
use crate::plot;
use crate::rundir::{check_folder_name, default_out, open_experiment_dir, write_atomic};
use crate::train_cmd::{RunContext, initial_theta, run_unit};

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
        .collect()
}

/// A dotted path into a JSON value.
pub fn lookup<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    path.split('.').fold(v, |v, k| &v[k])
}

pub fn run(g: &Global, a: &SweepArgs) -> Result<()> {
    let sweep: SweepConfig = config::load(&a.config, &a.set)?;
    let opened = backend::open(g.backend, g.device)?;
    let search = SearchPath::from_env(g.data_dir.clone());
    let out = a.out.clone().unwrap_or_else(|| default_out(&a.config, ""));
    let units = runs(&sweep)?;
    open_experiment_dir(
        &out,
        "a sweep",
        "sweep.toml",
        &toml::to_string(&sweep)?,
        a.restart,
    )?;
    let mut finals = Map::new();
    let mut names = Vec::new();
    for r in units {
        let name = r.name.clone();
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
        let mut cfg: RunConfig =
            config::parse_with_overrides(&toml::to_string(&table)?, &a.config, &[])
                .with_context(|| name.clone())?;
        cfg.backend = Some(format!("{:?}", g.backend).to_lowercase());
        let exp = experiment::build(&cfg, &opened, &search).with_context(|| name.clone())?;
        if !g.quiet {
            eprintln!(
                "{name}: {} (D = {}), {} steps",
                exp.net.name,
                exp.net.dim(),
                cfg.steps
            );
        }
        let dir = out.join(&name);
        let theta0 = initial_theta(&cfg, &exp.net, &opened.device)?;
        let ctx = RunContext {
            cfg: &cfg,
            exp: &exp,
            quiet: g.quiet,
            until: None,
            device_name: &opened.description,
        };
        // A diverged run is a result (the learning rate was too large for this width, say):
        // its summary is on disk; record it and go on.
        let summary = match run_unit(&ctx, theta0, &dir) {
            Ok(o) => o.summary,
            Err(e) => {
                let written = std::fs::read_to_string(dir.join("summary.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                match written {
                    Some(s) if s["status"] == "diverged" => {
                        eprintln!("{name}: {e:#}");
                        s
                    }
                    _ => return Err(e.context(name.clone())),
                }
            }
        };
        let mut entry = json!({
            "status": summary["status"], "final": summary["final"], "dim": summary["dim"],
            "time": summary["time"], "effective_lr": summary["effective_lr"],
        });
        for m in &sweep.summary {
            entry["summary"][m.as_str()] = lookup(&summary, m).clone();
        }
        finals.insert(name.clone(), entry);
        names.push(name);
    }
    let summary = json!({
        "key": sweep.key,
        "runs": finals,
        "device": opened.description,
        "provenance": crate::provenance::this_process(&opened.description),
    });
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let figures = plot::sweep_figure(&out, &sweep, &names)?
        .into_iter()
        .chain(plot::sweep_summary_figure(&out, &sweep, &summary)?);
    for p in figures {
        if !g.quiet {
            eprintln!("figure: {}", p.display());
        }
    }
    if g.json {
        crate::output::print_json(&summary);
    } else {
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
        let width = names.iter().map(|n| n.len()).max().unwrap_or(8).max(12) + 2;
        print!("{:<width$}", "run");
        for (k, _) in &cols {
            print!(" {k:>22}");
        }
        println!();
        for n in &names {
            print!("{n:<width$}");
            for (_, path) in &cols {
                let v = match path.strip_prefix("summary.") {
                    Some(m) => &finals[n]["summary"][m],
                    None => lookup(&finals[n], path),
                };
                let cell = match v.as_f64() {
                    Some(x) => format!("{x:.5e}"),
                    None if finals[n]["status"] == "diverged" => "diverged".into(),
                    None => "-".into(),
                };
                print!(" {cell:>22}");
            }
            println!();
        }
        println!("results: {}", out.display());
    }
    Ok(())
}
