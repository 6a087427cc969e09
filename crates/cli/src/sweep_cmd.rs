//! `noisescope sweep`: one run per value of a config key (a width, a learning rate, a seed),
//! each in its own run directory, then one figure of chosen metrics against step with a curve
//! per value, and a table of their final values.

use anyhow::{Context, Result};
use noisescope_data::SearchPath;
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

use crate::args::{Global, SweepArgs};
use crate::backend;
use crate::config::{self, RunConfig};
use crate::experiment;
use crate::plot;
use crate::rundir::{RunDir, create_experiment_dir, default_out, write_atomic};
use crate::train_cmd::{RunContext, initial_theta, train_loop};

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
    /// The base run.
    pub run: toml::Table,
}

pub fn run(g: &Global, a: &SweepArgs) -> Result<()> {
    let sweep: SweepConfig = config::load(&a.config, &a.set)?;
    let opened = backend::open(g.backend, g.device)?;
    let search = SearchPath::from_env(g.data_dir.clone());
    let out = a.out.clone().unwrap_or_else(|| default_out(&a.config, ""));
    create_experiment_dir(&out, "a sweep", "sweep.toml", &toml::to_string(&sweep)?)?;
    let mut finals = Map::new();
    let mut names = Vec::new();
    for v in &sweep.values {
        let label = match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let name = format!("{}={label}", sweep.key);
        let mut table = sweep.run.clone();
        config::set_key(&mut table, &sweep.key, &v.to_string())?;
        let mut cfg: RunConfig =
            config::parse_with_overrides(&toml::to_string(&table)?, &a.config, &[])?;
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
        let dir = RunDir::create(&out.join(&name))?;
        dir.write("config.toml", toml::to_string(&cfg)?.as_bytes())?;
        let theta0 = initial_theta(&cfg, &exp.net, &opened.device)?;
        let ctx = RunContext {
            cfg: &cfg,
            exp: &exp,
            quiet: g.quiet,
            until: None,
            device_name: &opened.description,
        };
        let o = train_loop(&ctx, theta0, Some(&dir), false).with_context(|| name.clone())?;
        finals.insert(name.clone(), json!({"final": o.summary["final"], "dim": o.summary["dim"], "time": o.summary["time"]}));
        names.push(name);
    }
    let summary = json!({"key": sweep.key, "runs": finals, "device": opened.description});
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if let Some(p) = plot::sweep_figure(&out, &sweep, &names)?
        && !g.quiet
    {
        eprintln!("figure: {}", p.display());
    }
    if g.json {
        crate::output::print_json(&summary);
    } else {
        let keys: Vec<String> = sweep
            .plot
            .iter()
            .map(|m| m.trim_start_matches("probes.").to_string())
            .collect();
        print!("{:<24}", sweep.key);
        for k in &keys {
            print!(" {k:>18}");
        }
        println!();
        for n in &names {
            print!("{n:<24}");
            let f = &finals[n]["final"];
            for m in &sweep.plot {
                let v = match m.strip_prefix("probes.") {
                    Some(p) => &f["probes"][p],
                    None => &f[m.as_str()],
                };
                print!(
                    " {:>18}",
                    v.as_f64().map_or("-".into(), |x| format!("{x:.5e}"))
                );
            }
            println!();
        }
        println!("results: {}", out.display());
    }
    Ok(())
}
