//! `noisescope escape`: Zhu et al.'s protocol. Phase 1 runs GD to θ* (or loads it); phase 2
//! runs each dynamic from the same θ* with the same seeds, one subdirectory per dynamic, and a
//! combined `summary.json` of the form `{"dynamics": {"<name>": {…}}}`. With `repeats` > 1
//! (the 2-D toy), every repetition draws fresh data and the summary gives success rates.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use noisescope_data::SearchPath;
use noisescope_noise::{Dynamic, NoiseConfig, NoiseStream};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::args::{EscapeArgs, Global};
use crate::backend;
use crate::config::{self, RunConfig};
use crate::experiment;
use crate::plot;
use crate::probes::Anchor;
use crate::rundir::{default_out, open_experiment_dir, write_atomic};
use crate::train_cmd::{RunContext, initial_theta, progress, run_unit, train_loop};

/// An escape experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscapeConfig {
    /// The dynamics of phase 2.
    pub dynamics: Vec<Dynamic>,
    /// Repetitions (each with seed + r, and fresh data when `fresh_data`).
    #[serde(default = "one")]
    pub repeats: usize,
    /// Draw new data for every repetition (the toy).
    #[serde(default)]
    pub fresh_data: bool,
    /// What counts as an escape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<Success>,
    /// Phase 1.
    #[serde(default)]
    pub phase1: Phase1,
    /// Phase 2's learning rate as c / λ_max(θ*) (Lanczos on the training set at θ*): c > 2
    /// makes θ* unstable for GD (Wang and Wu's escape-direction experiment). Replaces
    /// `run.optimizer.lr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_over_sharpness: Option<f64>,
    /// Phase 2 starts from θ* + σ z, z ~ N(0, I), the same z for every dynamic of a
    /// repetition: GD started exactly at a minimum would never move.
    #[serde(default)]
    pub perturb: f64,
    /// Phase 2's run (data, model, optimizer, noise settings; `noise.dynamic` is set per
    /// dynamic).
    pub run: RunConfig,
}

fn one() -> usize {
    1
}

impl EscapeConfig {
    /// Checks the experiment's own settings for range and finiteness; the error names the
    /// field (the run's settings are checked when its net is built).
    pub fn check(&self) -> Result<()> {
        if self.repeats == 0 {
            bail!("repeats = 0: expected at least 1 repetition");
        }
        if self.dynamics.is_empty() {
            bail!("dynamics: empty, expected at least one dynamic");
        }
        if !(self.perturb.is_finite() && self.perturb >= 0.0) {
            bail!("perturb = {}: expected a finite σ ≥ 0", self.perturb);
        }
        if let Some(c) = self.lr_over_sharpness
            && !(c.is_finite() && c > 0.0)
        {
            bail!("lr_over_sharpness = {c}: expected a finite c > 0");
        }
        let lr = self.phase1.lr;
        if self.phase1.steps > 0 && !(lr.is_finite() && lr > 0.0) {
            bail!("phase1.lr = {lr}: expected a finite learning rate > 0");
        }
        if let Some(s) = self.success
            && !s.all_below.is_finite()
        {
            bail!(
                "success.all_below = {}: expected a finite threshold",
                s.all_below
            );
        }
        Ok(())
    }
}

/// Phase 1: GD from the run's θ₀.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase1 {
    /// GD steps (0: θ* = θ₀, e.g. the toy's start at the sharp minimum).
    #[serde(default)]
    pub steps: u64,
    /// GD's learning rate.
    #[serde(default)]
    pub lr: f64,
    /// Steps between metric lines.
    #[serde(default = "hundred")]
    pub log_every: u64,
}

fn hundred() -> u64 {
    100
}

/// An escape succeeds when every coordinate of the final θ is below `all_below`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Success {
    /// The threshold (Zhu's toy: −0.5).
    pub all_below: f64,
}

pub fn run(g: &Global, a: &EscapeArgs) -> Result<()> {
    let mut cfg: EscapeConfig = config::load(&a.config, &a.set)?;
    if let Some(s) = a.steps {
        cfg.run.steps = s;
    }
    if let Some(s) = a.phase1_steps {
        cfg.phase1.steps = s;
    }
    if let Some(r) = a.repeats {
        cfg.repeats = r;
    }
    cfg.run.backend = Some(format!("{:?}", g.backend).to_lowercase());
    cfg.check()?;
    // `--dynamics` picks which of the experiment's units this process runs; the experiment
    // (escape.toml, the combined summary) keeps the config's list, so that processes running
    // different dynamics into one folder agree on it.
    let selected: Vec<Dynamic> = match &a.dynamics {
        Some(list) => {
            let picked: Vec<Dynamic> = list.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
            if let Some(d) = picked.iter().find(|d| !cfg.dynamics.contains(d)) {
                bail!(
                    "--dynamics: {d} is not among the experiment's dynamics ({}); add it with --set 'dynamics=[…]'",
                    cfg.dynamics
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            picked
        }
        None => cfg.dynamics.clone(),
    };
    if let Some(u) = a.until {
        if cfg.repeats > 1 {
            bail!(
                "--until: only for experiments of one repetition (this one has {})",
                cfg.repeats
            );
        }
        if u == 0 {
            bail!("--until 0: expected a phase-2 step ≥ 1");
        }
    }
    let opened = backend::open(g.backend, g.device)?;
    let search = SearchPath::from_env(g.data_dir.clone());
    let out = a.out.clone().unwrap_or_else(|| default_out(&a.config, ""));
    open_experiment_dir(
        &out,
        "an escape experiment",
        "escape.toml",
        &toml::to_string(&cfg)?,
        a.restart,
    )?;
    let start = Instant::now();
    let mut results: Map<String, Value> = Map::new();
    let mut successes = vec![0usize; selected.len()];
    let mut finals: Vec<Vec<Value>> = vec![Vec::new(); selected.len()];
    let mut phase1_summary = Value::Null;
    let mut lambda_star: Option<f64> = None;
    let bar = progress(g.quiet || cfg.repeats == 1, cfg.repeats as u64, 0);
    // Without fresh data every repetition shares the data of the run's own seed: built once.
    let shared = if cfg.fresh_data {
        None
    } else {
        Some(experiment::build(&cfg.run, &opened, &search)?)
    };

    for r in 0..cfg.repeats {
        let seed = cfg.run.seed.wrapping_add(r as u64);
        let mut base = cfg.run.clone();
        base.seed = seed;
        let fresh;
        let exp = match &shared {
            Some(e) => e,
            None => {
                fresh = experiment::build(&base, &opened, &search)?;
                &fresh
            }
        };
        let first = r == 0;
        if first {
            for d in &selected {
                let noise = NoiseConfig {
                    dynamic: *d,
                    ..cfg.run.noise.clone()
                };
                noise
                    .check(exp.net.dim(), exp.train.n)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("dynamics: {d}"))?;
            }
        }
        // Phase 1: GD to θ*.
        let theta0 = initial_theta(&base, &exp.net, &opened.device)?;
        let theta_star = if cfg.phase1.steps > 0 {
            let mut p1 = base.clone();
            p1.steps = cfg.phase1.steps;
            p1.log_every = cfg.phase1.log_every;
            p1.noise = NoiseConfig::default();
            p1.optimizer.lr = cfg.phase1.lr;
            p1.probes.every = 0;
            let ctx = RunContext {
                cfg: &p1,
                exp,
                quiet: g.quiet || !first,
                until: None,
                device_name: &opened.description,
            };
            if !g.quiet && first {
                eprintln!("phase 1: GD, lr {}, {} steps", p1.optimizer.lr, p1.steps);
            }
            let o = if first {
                run_unit(&ctx, theta0, &out.join("phase1"))
            } else {
                train_loop(&ctx, theta0, None, false)
            }
            .context("phase 1")?;
            if first {
                phase1_summary = o.summary["final"].clone();
            }
            o.theta
        } else {
            theta0
        };
        let lr2 = cfg.lr_over_sharpness.map(|c| {
            let a = Anchor::at(
                &base.probes,
                &exp.net,
                &theta_star,
                &exp.train,
                base.optimizer.weight_decay,
                seed,
            );
            let top = a.values.first().copied().unwrap_or(f64::NAN);
            if first {
                lambda_star = Some(top);
            }
            c / top
        });
        let theta_star = if cfg.perturb > 0.0 {
            let d = theta_star.dims()[0];
            let z = NoiseStream::new(seed ^ 0x9E37_79B9)
                .tensor(1, d, &theta_star.device(), theta_star.dtype())
                .reshape([d]);
            theta_star + z * cfg.perturb
        } else {
            theta_star
        };
        // Phase 2: every dynamic from θ*, the same seed for all.
        for (i, d) in selected.iter().enumerate() {
            let mut run = base.clone();
            run.noise.dynamic = *d;
            if let Some(lr) = lr2 {
                if !lr.is_finite() || lr <= 0.0 {
                    bail!(
                        "lr_over_sharpness: λ_max(θ*) is not positive, so c / λ_max is no learning rate"
                    );
                }
                run.optimizer.lr = lr;
            }
            if !first {
                run.log_every = run.steps;
                run.probes.every = 0;
            }
            if !g.quiet && cfg.repeats == 1 {
                eprintln!("phase 2: {d}, lr {}, {} steps", run.optimizer.lr, run.steps);
            }
            let ctx = RunContext {
                cfg: &run,
                exp,
                quiet: g.quiet || cfg.repeats > 1,
                until: a.until,
                device_name: &opened.description,
            };
            let o = if first {
                run_unit(&ctx, theta_star.clone(), &out.join(d.to_string()))
            } else {
                train_loop(&ctx, theta_star.clone(), None, false)
            }
            .with_context(|| format!("phase 2, {d}, repetition {r}"))?;
            if let Some(rule) = cfg.success {
                let th = o
                    .theta
                    .clone()
                    .into_data()
                    .convert::<f64>()
                    .try_into_vec::<f64>()
                    .expect("float");
                if th.iter().all(|&v| v < rule.all_below) {
                    successes[i] += 1;
                }
            }
            finals[i].push(o.summary["final"].clone());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if cfg.repeats == 1 {
        // One unit folder per dynamic: the summary is built from all of them, so that it
        // also holds the units that other processes (or earlier runs) finished.
        results = units_summary(&out, &cfg.dynamics)?;
    } else {
        for (i, d) in selected.iter().enumerate() {
            let mut entry = Map::new();
            entry.insert("final".into(), finals[i][0].clone());
            if cfg.success.is_some() {
                entry.insert("successes".into(), json!(successes[i]));
                entry.insert("repeats".into(), json!(cfg.repeats));
                entry.insert(
                    "success_rate".into(),
                    json!(successes[i] as f64 / cfg.repeats as f64),
                );
            }
            for key in ["train_loss", "test_acc", "test_loss"] {
                let v: Vec<f64> = finals[i].iter().filter_map(|f| f[key].as_f64()).collect();
                if v.len() > 1 {
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>()
                        / (v.len() - 1) as f64)
                        .sqrt();
                    entry.insert(format!("{key}_mean"), json!(m));
                    entry.insert(format!("{key}_sd"), json!(sd));
                }
            }
            results.insert(d.to_string(), Value::Object(entry));
        }
    }
    let shown = EscapeConfig {
        dynamics: if cfg.repeats == 1 {
            cfg.dynamics.clone()
        } else {
            selected.clone()
        },
        ..cfg.clone()
    };
    let summary = json!({
        "dynamics": results,
        "phase1": phase1_summary,
        "lambda_max_star": lambda_star,
        "repeats": cfg.repeats,
        "device": opened.description,
        "time_s": start.elapsed().as_secs_f64(),
        "provenance": crate::provenance::this_process(&opened.description),
    });
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let figures = plot::escape_figures(&out, &shown)?;
    if g.json {
        crate::output::print_json(&summary);
    } else {
        print_table(&shown, &summary);
        for f in figures {
            println!("figure: {}", f.display());
        }
        println!("results: {}", out.display());
    }
    Ok(())
}

/// The summary entry of every dynamic whose unit folder exists: `{"status", "step",
/// "final"}` from its `summary.json` when it has one (finished or stopped by `--until`),
/// else `{"status": "started"}`.
fn units_summary(out: &std::path::Path, dynamics: &[Dynamic]) -> Result<Map<String, Value>> {
    let mut results = Map::new();
    for d in dynamics {
        let dir = out.join(d.to_string());
        if !dir.is_dir() {
            continue;
        }
        let file = dir.join("summary.json");
        let entry = match std::fs::read(&file) {
            Ok(bytes) => {
                let s: Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}: not JSON", file.display()))?;
                json!({
                    "status": s["status"],
                    "step": s["final"]["step"],
                    "final": s["final"],
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({"status": "started"}),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        results.insert(d.to_string(), entry);
    }
    Ok(results)
}

fn print_table(cfg: &EscapeConfig, s: &Value) {
    println!(
        "{:<16} {:>12} {:>12} {:>10} {:>8}",
        "dynamic", "train loss", "test acc", "success", "step"
    );
    for d in &cfg.dynamics {
        let e = &s["dynamics"][d.to_string()];
        if e.is_null() {
            println!("{:<16} not started", d.to_string());
            continue;
        }
        if e["status"] == "started" {
            println!("{:<16} started, no checkpoint yet", d.to_string());
            continue;
        }
        let f = &e["final"];
        let acc = f["test_acc"]
            .as_f64()
            .map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
        let rate = e["success_rate"]
            .as_f64()
            .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r));
        let step = f["step"].as_u64().map_or("-".into(), |s| s.to_string());
        println!(
            "{:<16} {:>12.4e} {:>12} {:>10} {:>8}",
            d.to_string(),
            f["train_loss"].as_f64().unwrap_or(f64::NAN),
            acc,
            rate,
            step
        );
    }
}
