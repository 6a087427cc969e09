//! `noisescope escape`: Zhu et al.'s protocol. Phase 1 runs GD to θ* (or loads it); phase 2
//! runs each dynamic from the same θ* with the same seeds, one subdirectory per dynamic, and a
//! combined `summary.json` of the form `{"dynamics": {"<name>": {…}}}`. With `repeats` > 1
//! (the 2-D toy), every repetition draws fresh data and the summary gives success rates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use noisescope_data::SearchPath;
use noisescope_noise::{Dynamic, NoiseConfig, NoiseStream};
use noisescope_probe::Session;
use noisescope_runs::rundir::RunDir;
use noisescope_runs::rundir::{default_out, write_atomic};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use noisescope_runs::config::{self, RunConfig};
use noisescope_runs::units::{self, Combined, UnitState};

use crate::args::{EscapeArgs, Global};
use crate::backend;
use crate::draw::{Series, bars, line_panels, metric_series, toy_trajectories};
use crate::experiment;
use crate::fanout::{self, Role};
use crate::run_loop::{RunContext, initial_theta, progress, run_recorded, run_unit, train_loop};

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
        // Each dynamic is a unit with its own folder: twice would be two writers of one.
        if let Some((i, d)) = self
            .dynamics
            .iter()
            .enumerate()
            .find(|(i, d)| self.dynamics[..*i].contains(d))
        {
            bail!(
                "dynamics: {d} appears twice (entry {i}); each dynamic is one unit with its own folder"
            );
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

/// The experiment of `config` with `--set` overrides, step, phase-1 and repetition counts
/// from the command line and the backend, checked: what `escape.toml` records.
pub fn resolve(
    config: &Path,
    sets: &[String],
    steps: Option<u64>,
    phase1_steps: Option<u64>,
    repeats: Option<usize>,
    backend: crate::args::BackendKind,
) -> Result<EscapeConfig> {
    let mut cfg: EscapeConfig = config::load(config, sets)?;
    if let Some(s) = steps {
        cfg.run.steps = s;
    }
    if let Some(s) = phase1_steps {
        cfg.phase1.steps = s;
    }
    if let Some(r) = repeats {
        cfg.repeats = r;
    }
    cfg.run.backend = Some(format!("{backend:?}").to_lowercase());
    cfg.check()?;
    Ok(cfg)
}

pub fn run(g: &Global, a: &EscapeArgs) -> Result<()> {
    let cfg = resolve(
        &a.config,
        &a.set,
        a.steps,
        a.phase1_steps,
        a.repeats,
        g.backend,
    )?;
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
    let out = a.out.clone().unwrap_or_else(|| default_out(&a.config, ""));
    let text = toml::to_string(&cfg)?;
    let role = Role::open(
        g,
        &a.scale,
        &out,
        ("an escape experiment", "escape.toml", &text),
        a.restart,
    )?;
    if let Role::Parent(workers) = &role {
        let steps = a.until.map_or(cfg.run.steps, |u| u.min(cfg.run.steps));
        let progress: Vec<_> = cfg
            .dynamics
            .iter()
            .filter(|d| selected.contains(d))
            .map(|d| (out.join(d.to_string()), steps))
            .collect();
        let ran = fanout::run(g, &out, workers, &progress);
        report(g, &out)?;
        return ran;
    }
    // This process's units: its shard's dynamics (of the experiment's list), less those that
    // `--dynamics` leaves out and those already finished (skipped before any data is loaded).
    let owned = role.shard().units(cfg.dynamics.len());
    let selected: Vec<Dynamic> = owned
        .into_iter()
        .map(|i| cfg.dynamics[i])
        .filter(|d| selected.contains(d))
        .collect();
    let todo: Vec<Dynamic> = selected
        .iter()
        .copied()
        .filter(|d| !unit_finished(&out, *d, cfg.repeats))
        .collect();
    // Phase 1 has one folder, written by shard 0 (or the only process); any other shard that
    // needs θ* before that folder is finished runs phase 1 in memory: GD from the same θ₀ on
    // the same data gives the same θ*, bit for bit.
    let phase1_dir = out.join("phase1");
    let writes_phase1 = role.shard().index == 0;
    let phase1_done = matches!(UnitState::of(&phase1_dir)?, s if s.finished());
    let phase1_due = writes_phase1 && cfg.phase1.steps > 0 && !phase1_done;
    if let Role::Shard(s) = &role
        && !g.quiet
    {
        eprintln!(
            "shard {s}: dynamics {} ({} to run)",
            selected
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            todo.len()
        );
    }
    let failures = if !todo.is_empty() || phase1_due {
        match run_units(g, a, &cfg, &out, &todo, writes_phase1, phase1_done) {
            Ok(f) => f,
            // Every unit of this process needed what failed.
            Err(e) => {
                for d in todo
                    .iter()
                    .filter(|d| !unit_finished(&out, **d, cfg.repeats))
                {
                    units::record_failure(&out.join(d.to_string()), &e);
                }
                return Err(e);
            }
        }
    } else {
        Vec::new()
    };
    role.finish(g.quiet, &out, &failures, || report(g, &out))
}

/// Whether the unit of dynamic `d` has its final result: its run completed or diverged (one
/// repetition), or its `repetitions.json` is written (several).
fn unit_finished(out: &Path, d: Dynamic, repeats: usize) -> bool {
    let dir = out.join(d.to_string());
    if repeats > 1 {
        return dir.join(REPETITIONS).is_file();
    }
    matches!(UnitState::of(&dir), Ok(s) if s.finished())
}

/// The file of a dynamic's unit that holds the results of all its repetitions.
const REPETITIONS: &str = "repetitions.json";
/// The file of a dynamic's unit that records λ_max(θ*) and the learning rate taken from it
/// (`lr_over_sharpness`).
const START: &str = "start.json";

/// Runs phase 1 where needed and phase 2 for the dynamics `todo`, into their folders;
/// returns the failures of dynamics (each recorded in its folder). An error before phase 2
/// (the data, phase 1) is returned as the error.
fn run_units(
    g: &Global,
    a: &EscapeArgs,
    cfg: &EscapeConfig,
    out: &Path,
    todo: &[Dynamic],
    writes_phase1: bool,
    phase1_done: bool,
) -> Result<Vec<String>> {
    let opened = backend::open(g.backend, g.device)?;
    let search = SearchPath::from_env(g.data_dir.clone());
    let mut failures: Vec<(Dynamic, String)> = Vec::new();
    let mut successes = vec![0usize; todo.len()];
    let mut finals: Vec<Vec<Value>> = vec![Vec::new(); todo.len()];
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
            for d in todo {
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
            let dir = out.join("phase1");
            if first && writes_phase1 {
                run_unit(&ctx, theta0, &dir).context("phase 1")?.theta
            } else if first && phase1_done {
                noisescope_runs::rundir::load_theta(&dir, &opened.device, p1.precision)
                    .context("phase 1's θ*")?
            } else {
                train_loop(&ctx, theta0, None, false)
                    .context("phase 1")?
                    .theta
            }
        } else {
            theta0
        };
        if todo.is_empty() {
            break;
        }
        let lr2 = cfg.lr_over_sharpness.map(|c| {
            let top = Session::new(
                &base.probes,
                &exp.net,
                &theta_star,
                &exp.train,
                base.optimizer.weight_decay,
                seed,
            )
            .top_hessian()
            .values
            .first()
            .copied()
            .unwrap_or(f64::NAN);
            (top, c / top)
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
        for (i, d) in todo.iter().enumerate() {
            let dir = out.join(d.to_string());
            let mut run = base.clone();
            run.noise.dynamic = *d;
            if let Some((top, lr)) = lr2 {
                if !lr.is_finite() || lr <= 0.0 {
                    bail!(
                        "lr_over_sharpness: λ_max(θ*) is not positive, so c / λ_max is no learning rate"
                    );
                }
                run.optimizer.lr = lr;
                // A unit continues with the rate it started with: θ* computed by another
                // process (another device or thread count) may differ in its last bits.
                let started: Option<Value> = std::fs::read(dir.join(START))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                if first && let Some(lr) = started.as_ref().and_then(|v| v["lr"].as_f64()) {
                    run.optimizer.lr = lr;
                } else if first {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    write_atomic(
                        &dir.join(START),
                        serde_json::to_string_pretty(&json!({"lambda_max_star": top, "lr": lr}))?
                            .as_bytes(),
                    )?;
                }
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
            if failures.iter().any(|(x, _)| x == d) {
                continue;
            }
            let context = || format!("phase 2, {d}, repetition {r}");
            let ran = if first {
                units::clear_failure(&dir)?;
                run_recorded(&ctx, theta_star.clone(), &dir)
            } else {
                train_loop(&ctx, theta_star.clone(), None, false).map(Some)
            };
            // A diverged dynamic is a result, a failed one is recorded in its folder; the
            // others go on.
            let o = match ran.with_context(context) {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(e) => {
                    units::record_failure(&dir, &e);
                    eprintln!("{e:#}");
                    failures.push((*d, format!("{e:#}")));
                    continue;
                }
            };
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
    if cfg.repeats > 1 {
        for (i, d) in todo.iter().enumerate() {
            if failures.iter().any(|(x, _)| x == d) {
                continue;
            }
            let record = json!({
                "repeats": cfg.repeats,
                "successes": cfg.success.map(|_| successes[i]),
                "finals": finals[i],
            });
            write_atomic(
                &out.join(d.to_string()).join(REPETITIONS),
                serde_json::to_string_pretty(&record)?.as_bytes(),
            )?;
        }
    }
    Ok(failures.into_iter().map(|(_, e)| e).collect())
}

/// The combined summary of the escape experiment in `out`, built from its unit folders
/// alone: `{"dynamics": {"<name>": {…}}, "phase1", "lambda_max_star", "repeats", "units"}`,
/// with the units' states in the experiment's order. A dynamic without a folder is left out
/// of `dynamics` (and listed as missing).
pub fn combined_summary(out: &Path) -> Result<Combined<EscapeConfig>> {
    let cfg: EscapeConfig = config::load(&out.join("escape.toml"), &[])?;
    let mut results = Map::new();
    let mut states = Vec::new();
    let mut devices: Vec<String> = Vec::new();
    let mut lambda_star = Value::Null;
    for d in &cfg.dynamics {
        let name = d.to_string();
        let dir = out.join(&name);
        let mut state = UnitState::of(&dir)?;
        if let Ok(bytes) = std::fs::read(dir.join(START))
            && lambda_star.is_null()
        {
            let v: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not JSON", dir.join(START).display()))?;
            lambda_star = v["lambda_max_star"].clone();
        }
        if let UnitState::Summarized(s) = &state
            && let Some(dev) = s["device"].as_str()
            && !devices.iter().any(|x| x == dev)
        {
            devices.push(dev.to_string());
        }
        let entry = if cfg.repeats > 1 {
            repetitions_entry(&dir, &cfg, &mut state)?
        } else {
            match &state {
                UnitState::Missing => None,
                UnitState::Summarized(s) => Some(json!({
                    "status": s["status"],
                    "step": s["final"]["step"],
                    "final": s["final"],
                })),
                UnitState::Failed(e) => Some(json!({"status": "failed", "error": e})),
                UnitState::Started => Some(json!({"status": "started"})),
            }
        };
        if let Some(e) = entry {
            results.insert(name.clone(), e);
        }
        states.push((name, state));
    }
    // Folders written before units had their own files keep their results in the root
    // summary: a toy's success rates, λ_max(θ*).
    let legacy: Option<Value> = std::fs::read(out.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(|v| v.get("units").is_none());
    if let Some(old) = &legacy {
        if lambda_star.is_null() {
            lambda_star = old["lambda_max_star"].clone();
        }
        if cfg.repeats > 1 {
            for (name, state) in states.iter_mut() {
                let entry = &old["dynamics"][name.as_str()];
                if entry["success_rate"].is_number()
                    && !out.join(name.as_str()).join(REPETITIONS).is_file()
                {
                    let mut e = entry.clone();
                    e["status"] = json!("completed");
                    results.insert(name.clone(), e);
                    *state = UnitState::Summarized(json!({"status": "completed"}));
                }
            }
        }
    }
    let phase1: Value = match UnitState::of(&out.join("phase1"))? {
        UnitState::Summarized(s) => s["final"].clone(),
        _ => Value::Null,
    };
    let summary = json!({
        "dynamics": results,
        "phase1": phase1,
        "lambda_max_star": lambda_star,
        "repeats": cfg.repeats,
        "units": units::tally(states.iter().map(|(n, s)| (n.as_str(), s))),
        "device": devices.join(", "),
    });
    Ok(Combined {
        config: cfg,
        summary,
        states,
    })
}

/// A dynamic's entry when it has several repetitions: the first repetition's final line,
/// success counts and rates, and mean and s.d. of the final losses and accuracy over the
/// repetitions, from its `repetitions.json`. Without that file the unit is not finished
/// (`state` becomes `Started` where it had a summary).
fn repetitions_entry(
    dir: &Path,
    cfg: &EscapeConfig,
    state: &mut UnitState,
) -> Result<Option<Value>> {
    let file = dir.join(REPETITIONS);
    let record: Value = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not JSON", file.display()))?,
        Err(_) => {
            return Ok(match state {
                UnitState::Missing => None,
                UnitState::Failed(e) => Some(json!({"status": "failed", "error": e})),
                _ => {
                    *state = UnitState::Started;
                    Some(json!({"status": "started"}))
                }
            });
        }
    };
    let finals: Vec<Value> = record["finals"].as_array().cloned().unwrap_or_default();
    let mut entry = Map::new();
    entry.insert("status".into(), json!("completed"));
    entry.insert(
        "final".into(),
        finals.first().cloned().unwrap_or(Value::Null),
    );
    if cfg.success.is_some() {
        let k = record["successes"].as_u64().unwrap_or(0);
        entry.insert("successes".into(), json!(k));
        entry.insert("repeats".into(), json!(cfg.repeats));
        entry.insert("success_rate".into(), json!(k as f64 / cfg.repeats as f64));
    }
    for key in ["train_loss", "test_acc", "test_loss"] {
        let v: Vec<f64> = finals.iter().filter_map(|f| f[key].as_f64()).collect();
        if v.len() > 1 {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
            entry.insert(format!("{key}_mean"), json!(m));
            entry.insert(format!("{key}_sd"), json!(sd));
        }
    }
    if !matches!(state, UnitState::Summarized(_)) {
        *state = UnitState::Summarized(json!({"status": "completed"}));
    } else if let UnitState::Summarized(s) = state {
        s["status"] = json!("completed");
    }
    Ok(Some(Value::Object(entry)))
}

/// Writes the experiment's combined `summary.json` and figures from its unit folders and
/// prints its table (or the summary as JSON) and the units not finished.
pub fn report(g: &Global, out: &Path) -> Result<()> {
    let Combined {
        config: cfg,
        mut summary,
        states,
    } = combined_summary(out)?;
    units::write_summary(out, &mut summary)?;
    let figures = figures(out, &cfg, &summary)?;
    if g.json {
        crate::output::print_json(&summary);
        return Ok(());
    }
    print_table(&cfg, &summary);
    for f in figures {
        println!("figure: {}", f.display());
    }
    if summary["units"]["finished"] != summary["units"]["total"] {
        crate::output::print_unfinished(&summary["units"], &states);
    }
    println!("results: {}", out.display());
    Ok(())
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

/// The figures of an escape experiment: for the toy, trajectories and success rates; else
/// test accuracy and sharpness against step, one curve per dynamic.
pub fn figures(out: &Path, cfg: &EscapeConfig, summary: &Value) -> Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    let names: Vec<String> = cfg.dynamics.iter().map(|d| d.to_string()).collect();
    if cfg.success.is_some() {
        let trajectories: Vec<Series> = names
            .iter()
            .map(|n| {
                let rd = RunDir::at(&out.join(n));
                let pts = rd
                    .metrics()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|m| {
                        let t = m["theta"].as_array()?;
                        Some((t.first()?.as_f64()?, t.get(1)?.as_f64()?))
                    })
                    .collect();
                Series::new(n.clone(), pts)
            })
            .collect();
        if trajectories.iter().any(|t| !t.points.is_empty()) {
            let p = out.join("figures/trajectories.svg");
            toy_trajectories(&p, &trajectories)?;
            made.push(p);
        }
        let rates: Vec<(String, f64)> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    summary["dynamics"][n]["success_rate"]
                        .as_f64()
                        .unwrap_or(0.0),
                )
            })
            .collect();
        let p = out.join("figures/success.svg");
        bars(
            &p,
            &format!("escape success over {} runs", cfg.repeats),
            "success rate",
            &rates,
        )?;
        made.push(p);
        return Ok(made);
    }
    let collect = |key: &str| -> Vec<Series> {
        names
            .iter()
            .map(|n| {
                Series::new(
                    n.clone(),
                    metric_series(&out.join(n), key).unwrap_or_default(),
                )
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let mut panels = vec![("test accuracy", "test accuracy", false, collect("test_acc"))];
    let sharp = collect("probes.sharpness");
    if !sharp.is_empty() {
        panels.push(("expected sharpness", "E[L(θ+ν)] − L(θ)", true, sharp));
    }
    let p = out.join("figures/escape.svg");
    line_panels(&p, "step", &panels)?;
    made.push(p);
    let frac = collect("probes.direction_sharp_fraction");
    if !frac.is_empty() {
        let p = out.join("figures/direction.svg");
        line_panels(
            &p,
            "step",
            &[
                (
                    "share of ‖θ_t − θ_0‖² along the top-k Hessian eigenvectors at θ_0",
                    "top-k fraction",
                    false,
                    frac,
                ),
                (
                    "share along the sharpest eigenvector u_1",
                    "u_1 fraction",
                    false,
                    collect("probes.direction_top1_fraction"),
                ),
                (
                    "distance from θ_0",
                    "‖θ_t − θ_0‖²",
                    true,
                    collect("probes.direction_norm_sq"),
                ),
            ],
        )?;
        made.push(p);
    }
    Ok(made)
}
