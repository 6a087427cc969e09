//! The run loop shared by `train`, `escape` and `sweep`: θ₀, the steps of one run from θ₀ or
//! from its folder's latest checkpoint, online probes, metric lines, checkpoints, divergence,
//! and the run's tallies (step-loss moments, late means, clocks) that its summary reports.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use indicatif::ProgressBar;
use noisescope_data::DeviceDataset;
use noisescope_models::{ModelSpec, Net};
use noisescope_noise::{OptimizerConfig, StepError, Trainer};
use noisescope_probe::{Anchor, Session};
use noisescope_runs::config::{self, Probe, RunConfig};
use noisescope_runs::rundir::{self, RunDir};
use serde_json::{Map, Value, json};

use crate::experiment::{self, Experiment};

/// Test and training evaluation runs in chunks of this many samples.
const EVAL_CHUNK: usize = 2000;

/// Why a `--resume` of `dir` has nothing left to run, if so: the run completed (its summary
/// says so and its last checkpoint is at the end), or its last checkpoint is at or past
/// `--until`. An error when the run has a summary but no checkpoint: it can neither continue
/// nor start over without overwriting its metrics.
pub(crate) fn nothing_to_do(
    dir: &RunDir,
    cfg: &RunConfig,
    until: Option<u64>,
) -> Result<Option<String>> {
    let summary: Option<Value> = std::fs::read(dir.path.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let status = summary.as_ref().and_then(|s| s["status"].as_str());
    // The same steps from the same checkpoint would diverge again, bit for bit.
    if status == Some("diverged") {
        let at = summary
            .as_ref()
            .map_or(Value::Null, |s| s["final"]["step"].clone());
        return Ok(Some(format!("the run diverged (step {at})")));
    }
    let Some(ck) = dir.find_checkpoint()? else {
        // A run that wrote its summary wrote a checkpoint with it. Without one it cannot
        // continue, and starting over would overwrite the metrics it has.
        if let Some(status) = status {
            let at = summary
                .as_ref()
                .map_or(Value::Null, |s| s["steps_done"].clone());
            bail!(
                "{}: summary.json says the run {status} at step {at}, but checkpoints/ holds no checkpoint to continue from; its metrics are kept (move the folder aside to start over)",
                dir.path.display()
            );
        }
        return Ok(None);
    };
    let step = rundir::checkpoint_step(&ck)?;
    if step >= cfg.steps && status == Some("completed") {
        return Ok(Some(format!("the run completed all {} steps", cfg.steps)));
    }
    if let Some(u) = until.filter(|&u| step >= u)
        && summary.is_some()
    {
        return Ok(Some(format!(
            "its last checkpoint is at step {step}, at or past --until {u}"
        )));
    }
    Ok(None)
}

/// θ₀: explicit values, a checkpoint's θ, or the init scheme with the run's seed.
pub fn initial_theta(cfg: &RunConfig, net: &Net, device: &Device) -> Result<Tensor<1>> {
    let d = net.dim();
    if let Some(v) = &cfg.init.values {
        if v.len() != d {
            bail!(
                "init.values has {} entries, the {} net has D = {d}",
                v.len(),
                net.name
            );
        }
        return Ok(Tensor::from_data(
            TensorData::new(v.clone(), [d]),
            (device, cfg.precision.dtype()),
        ));
    }
    if let Some(from) = &cfg.init.from {
        let t = rundir::load_theta(from, device, cfg.precision)?;
        if t.dims()[0] != d {
            bail!(
                "init.from {}: θ has {} entries, the {} net has D = {d}",
                from.display(),
                t.dims()[0],
                net.name
            );
        }
        return Ok(t);
    }
    Ok(cfg
        .init
        .scheme
        .tensor(&net.layout, cfg.seed, device, cfg.precision))
}

/// The model's hidden width d, for the 1/width learning-rate scaling.
fn hidden_width(spec: &ModelSpec) -> Option<usize> {
    match spec {
        ModelSpec::Mlp { widths, .. } if widths.len() > 2 => Some(widths[1]),
        ModelSpec::FixedOutputRelu { width, .. } | ModelSpec::TwoLayer { width, .. } => {
            Some(*width)
        }
        _ => None,
    }
}

/// The optimizer settings with the 1/width scaling applied to η.
pub fn effective_optimizer(cfg: &RunConfig) -> Result<OptimizerConfig> {
    let mut o = cfg.optimizer.clone();
    if let Some(c) = o.width_scale.take() {
        let w = hidden_width(&cfg.model).with_context(|| {
            format!(
                "optimizer.width_scale: the {} model has no hidden width",
                cfg.model.name()
            )
        })?;
        o.lr *= c / w as f64;
    }
    Ok(o)
}

/// One run of a multi-run experiment (a phase, a dynamic, a sweep point) in its own run
/// directory `path`: started there, continued from its latest checkpoint when a previous
/// process left it unfinished, or, when it completed, read back (its summary and final θ)
/// without running again. A folder holding a run with other settings is an error.
pub fn run_unit(ctx: &RunContext, theta0: Tensor<1>, path: &std::path::Path) -> Result<Outcome> {
    let cfg = ctx.cfg;
    if !path.join("config.toml").is_file() {
        let rd = RunDir::create(path)?;
        rd.write("config.toml", toml::to_string(cfg)?.as_bytes())?;
        return train_loop(ctx, theta0, Some(&rd), false);
    }
    let rd = RunDir::open(path)?;
    let saved: RunConfig = config::load(&rd.path.join("config.toml"), &[])?;
    if let Some(key) = config::changed_key(&saved, cfg, &[])? {
        bail!(
            "{} holds a run whose `{key}` differs from this experiment's; pass --restart to start over",
            rd.path.display()
        );
    }
    rd.remove_leftovers()?;
    if let Some(why) = nothing_to_do(&rd, cfg, ctx.until)? {
        let file = rd.path.join("summary.json");
        let summary: Value = serde_json::from_slice(
            &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
        )
        .with_context(|| format!("{}: not JSON", file.display()))?;
        if summary["status"] == "diverged" {
            bail!("{why}; its metrics and summary are kept");
        }
        let theta = rundir::load_theta(&rd.path, &theta0.device(), cfg.precision)?;
        return Ok(Outcome { summary, theta });
    }
    train_loop(ctx, theta0, Some(&rd), true)
}

/// What a run needs besides θ₀.
pub struct RunContext<'a> {
    pub cfg: &'a RunConfig,
    pub exp: &'a Experiment,
    pub quiet: bool,
    /// Stop (with a checkpoint) after this many steps, to be resumed later.
    pub until: Option<u64>,
    pub device_name: &'a str,
}

/// The end of a run.
pub struct Outcome {
    pub summary: Value,
    pub theta: Tensor<1>,
}

/// Runs the steps of `ctx.cfg` from θ₀ (or from the run directory's latest checkpoint when
/// `resume`), logging into `dir` when given.
pub fn train_loop(
    ctx: &RunContext,
    theta0: Tensor<1>,
    dir: Option<&RunDir>,
    resume: bool,
) -> Result<Outcome> {
    let cfg = ctx.cfg;
    let exp = ctx.exp;
    let net = &exp.net;
    crate::experiment::check_sample_space(cfg, exp.train.n)?;
    let opt = effective_optimizer(cfg)?;
    let lr = opt.lr;
    let mut trainer = Trainer::new(
        net,
        &exp.train,
        cfg.noise.clone(),
        opt,
        theta0,
        cfg.steps,
        cfg.seed,
    )?;
    // The direction probe measures θ_t − θ_0 over the top Hessian eigenvectors at θ_0: taken
    // at θ₀ before any restore, so that a resumed run measures from the same anchor.
    let wants_anchor = cfg.probes.every > 0 && cfg.probes.list.contains(&Probe::Direction);
    let probe_data = match cfg.probes.samples {
        Some(n) if n < exp.train.n => exp.train.gather(&(0..n).collect::<Vec<_>>()),
        _ => exp.train.clone(),
    };
    let anchor_start = Instant::now();
    let anchor = wants_anchor.then(|| {
        Anchor::at(&Session::new(
            &cfg.probes,
            net,
            trainer.theta(),
            &probe_data,
            cfg.optimizer.weight_decay,
            cfg.seed,
        ))
    });
    let anchor_s = anchor_start.elapsed().as_secs_f64();
    let mut tally = Tally {
        start: Instant::now(),
        before_s: 0.0,
        probe_s: anchor_s,
        eval_s: 0.0,
        step_loss: StepLoss::default(),
        late: LateMeans::new(cfg.steps),
        last_line: Value::Null,
        earlier: Vec::new(),
        hvps_since_line: Some(0),
    };
    // The last probe's top Hessian eigenvectors, for `probes.warm_start`.
    let mut warm: Option<Tensor<2>> = None;
    // The step whose metric line a resumed run already holds.
    let mut logged_at: Option<u64> = None;
    if resume {
        let dir = dir.expect("resume needs a run directory");
        match dir.find_checkpoint()? {
            Some(ck) => {
                let device = exp.train.x.device();
                let rundir::Checkpoint {
                    state,
                    run,
                    warm: kept,
                } = rundir::load_checkpoint(&ck, &device, cfg.precision)?;
                let step = state.step;
                if step > cfg.steps {
                    bail!(
                        "{}: step {step} is past the run's {} steps",
                        ck.display(),
                        cfg.steps
                    );
                }
                trainer
                    .restore(state)
                    .with_context(|| format!("{}: does not fit this run", ck.display()))?;
                tally
                    .restore(&run)
                    .with_context(|| format!("{}/state.json: run tallies", ck.display()))?;
                warm = kept;
                if let Some(w) = &warm
                    && (w.dims()[1] != net.dim() || w.dims()[0] > net.dim())
                {
                    bail!(
                        "{}: warm-start vectors {:?} do not fit D = {}",
                        ck.join("state.safetensors").display(),
                        w.dims(),
                        net.dim()
                    );
                }
                // Lines up to the checkpoint are kept byte for byte; the late means and the
                // last line are rebuilt from them in the order they were first added.
                for line in dir.truncate_metrics(step)? {
                    let t = line["step"].as_u64().unwrap_or_default();
                    tally.late.add(t, &line);
                    logged_at = Some(t);
                    tally.last_line = line;
                }
                logged_at = logged_at.filter(|&t| t == step);
                // At a line step nothing is pending, whatever the checkpoint's age.
                if logged_at.is_some() {
                    tally.hvps_since_line.get_or_insert(0);
                }
            }
            None => {
                // Killed before its first checkpoint: the run starts over in its folder.
                dir.clear_metrics()?;
            }
        }
    }
    let stop = ctx.until.unwrap_or(cfg.steps).min(cfg.steps);
    let bar = progress(ctx.quiet, cfg.steps, trainer.steps_done());
    let mut last: Option<noisescope_noise::StepReport> = None;
    let log_every = cfg.log_every.max(1);
    loop {
        let t = trainer.steps_done();
        let probe_now = cfg.probes.every > 0
            && t.is_multiple_of(cfg.probes.every)
            && !cfg.probes.list.is_empty();
        // A resumed run keeps the metric line of its checkpoint's step (it holds the noise of
        // the step before, which the checkpoint does not) and logs from the next step on.
        if (t.is_multiple_of(log_every) || t == cfg.steps || probe_now)
            && logged_at.take() != Some(t)
        {
            let e0 = Instant::now();
            let mut line = evaluate_line(
                net,
                trainer.theta(),
                &exp.train,
                exp.test.as_ref(),
                t,
                trainer.lr(),
            );
            tally.eval_s += e0.elapsed().as_secs_f64();
            if let Some(r) = &last {
                line.insert("trace_c".into(), json!(r.trace_c));
                if let Some(s) = r.trace_sigma_m {
                    line.insert("trace_sigma_m".into(), json!(s));
                }
            }
            // Step 0's line comes before any refresh.
            if let Some(h) = tally.hvps_since_line
                && cfg.noise.dynamic.solves_hessian()
                && t > 0
            {
                line.insert("refresh_hvps".into(), json!(h));
            }
            tally.hvps_since_line = Some(0);
            if probe_now {
                let p0 = Instant::now();
                let session = Session::new(
                    &cfg.probes,
                    net,
                    trainer.theta(),
                    &probe_data,
                    cfg.optimizer.weight_decay,
                    cfg.seed ^ t,
                )
                .warm_started(warm.as_ref())
                .anchored(anchor.as_ref());
                let report = session.run(&cfg.probes.list);
                let next_warm = session.warm_vectors();
                drop(session);
                warm = next_warm;
                let dt = p0.elapsed().as_secs_f64();
                tally.probe_s += dt;
                line.insert("probes".into(), serde_json::to_value(report)?);
                line.insert("probe_time_s".into(), json!(dt));
            }
            line.insert("time_s".into(), json!(tally.elapsed_s()));
            let line = Value::Object(line);
            tally.late.add(t, &line);
            if let Some(d) = dir {
                d.append_metrics(&line)?;
            }
            tally.last_line = line;
        }
        if t >= stop {
            break;
        }
        // θ_t is saved only once its loss has come out finite in the step below.
        // The tallies are saved as they stand before step t, like the state.
        let pending = (dir.is_some()
            && cfg.checkpoint_every > 0
            && t > 0
            && t.is_multiple_of(cfg.checkpoint_every))
        .then(|| (trainer.state(), tally.to_checkpoint(ctx.device_name)));
        match trainer.step() {
            Ok(r) => {
                if let (Some(d), Some((state, run))) = (dir, pending) {
                    d.save_checkpoint(&state, &net.layout, &run, warm.as_ref())?;
                    d.prune_checkpoints(cfg.keep_checkpoints)?;
                }
                bar.set_message(format!("loss {:.4e}", r.loss));
                bar.inc(1);
                tally.step_loss.add(r.loss);
                if let Some(h) = &mut tally.hvps_since_line {
                    *h += r.hvps as u64;
                }
                last = Some(r);
            }
            Err(StepError::Diverged { step, loss }) => {
                bar.abandon();
                tally.step_loss.add(loss);
                tally.write(ctx, dir, "diverged", step, lr)?;
                let kept = dir
                    .and_then(|d| d.latest_checkpoint().ok())
                    .map_or("no checkpoint was written before".to_string(), |p| {
                        format!("the last good checkpoint is {}", p.display())
                    });
                bail!(
                    "step {step}: the training loss is {loss} (diverged); the run stops, its metrics are kept and {kept}"
                );
            }
            Err(e) => {
                bar.abandon();
                return Err(e).with_context(|| format!("step {}", trainer.steps_done()));
            }
        }
    }
    bar.finish_and_clear();
    let done = trainer.steps_done();
    let final_loss = tally.last_line["train_loss"].as_f64().unwrap_or(f64::NAN);
    if !final_loss.is_finite() {
        tally.write(ctx, dir, "diverged", done, lr)?;
        bail!(
            "step {done}: the training loss is {final_loss} (diverged); the run stops, its metrics are kept"
        );
    }
    let status = if done >= cfg.steps {
        "completed"
    } else {
        "stopped"
    };
    if let Some(d) = dir {
        d.save_checkpoint(
            &trainer.state(),
            &net.layout,
            &tally.to_checkpoint(ctx.device_name),
            warm.as_ref(),
        )?;
        d.prune_checkpoints(cfg.keep_checkpoints)?;
    }
    let summary = tally.write(ctx, dir, status, done, lr)?;
    Ok(Outcome {
        summary,
        theta: trainer.theta().clone(),
    })
}

/// Mean and variance of the loss each step's gradient was taken on (the minibatch loss for
/// SGD), over the steps of the run, resumed runs included (Welford's update).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct StepLoss {
    n: u64,
    mean: f64,
    m2: f64,
}

impl StepLoss {
    fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
}

/// Means of the logged losses, accuracies and scalar probe values over the last fifth of the
/// run (steps ≥ 0.8 T): a steadier summary than the final line when SGD keeps fluctuating.
/// Probe values are averaged over the probe lines alone.
struct LateMeans {
    from: u64,
    sums: std::collections::BTreeMap<String, (f64, u64)>,
}

impl LateMeans {
    const KEYS: [&str; 4] = ["train_loss", "train_acc", "test_loss", "test_acc"];

    fn new(steps: u64) -> Self {
        LateMeans {
            from: steps - steps / 5,
            sums: Default::default(),
        }
    }

    fn add(&mut self, t: u64, line: &Value) {
        if t < self.from {
            return;
        }
        let mut put = |k: String, v: Option<f64>| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                let e = self.sums.entry(k).or_insert((0.0, 0));
                e.0 += v;
                e.1 += 1;
            }
        };
        for k in Self::KEYS {
            put(k.to_string(), line[k].as_f64());
        }
        if let Some(p) = line["probes"].as_object() {
            for (k, v) in p {
                put(format!("probes.{k}"), v.as_f64());
            }
        }
    }

    fn to_json(&self) -> Option<Value> {
        if self.sums.is_empty() {
            return None;
        }
        let mut out = json!({});
        for (k, (sum, n)) in &self.sums {
            let mean = json!(sum / *n as f64);
            match k.strip_prefix("probes.") {
                Some(p) => out["probes"][p] = mean,
                None => out[k.as_str()] = mean,
            }
        }
        Some(out)
    }
}

/// JSON has no NaN or ∞: those become null.
fn finite(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// Loss and accuracy on the training and test sets at θ_t; θ itself for nets with D ≤ 16.
fn evaluate_line(
    net: &Net,
    theta: &Tensor<1>,
    train: &DeviceDataset,
    test: Option<&DeviceDataset>,
    t: u64,
    lr: f64,
) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert("step".into(), json!(t));
    line.insert("lr".into(), json!(lr));
    let (loss, acc) = experiment::evaluate(net, theta, train, EVAL_CHUNK);
    line.insert("train_loss".into(), json!(loss));
    if let Some(a) = acc {
        line.insert("train_acc".into(), json!(a));
    }
    if let Some(te) = test {
        let (loss, acc) = experiment::evaluate(net, theta, te, EVAL_CHUNK);
        line.insert("test_loss".into(), json!(loss));
        if let Some(a) = acc {
            line.insert("test_acc".into(), json!(a));
        }
    }
    if net.dim() <= 16 {
        let v = theta
            .clone()
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("float");
        line.insert("theta".into(), json!(v));
    }
    line
}

/// What a run accumulates for its summary: its clocks, the per-step loss statistics, the
/// late-run means and the last metric line.
struct Tally {
    /// When this process started on the run.
    start: Instant,
    /// Wall time the run had taken before this process (resumed runs).
    before_s: f64,
    probe_s: f64,
    eval_s: f64,
    step_loss: StepLoss,
    late: LateMeans,
    last_line: Value,
    /// The provenance records of the processes that ran this run before this one.
    earlier: Vec<Value>,
    /// Hessian-vector products of the refreshes since the last metric line; `None` when
    /// unknown (resumed between lines from a checkpoint that did not keep the count).
    hvps_since_line: Option<u64>,
}

impl Tally {
    /// Wall time of the run so far, over all the processes that ran it.
    fn elapsed_s(&self) -> f64 {
        self.before_s + self.start.elapsed().as_secs_f64()
    }

    /// What a checkpoint keeps so that a resumed run's summary continues this one: the step
    /// loss moments, the clocks, and the provenance records of every process that ran it so
    /// far, this one (on `device`) last (the late means and the last line come back from the
    /// metric lines).
    fn to_checkpoint(&self, device: &str) -> Value {
        let mut processes = self.earlier.clone();
        processes.push(noisescope_runs::provenance::this_process(device));
        json!({
            "step_loss": self.step_loss,
            "elapsed_s": self.elapsed_s(),
            "probe_s": self.probe_s,
            "eval_s": self.eval_s,
            "processes": processes,
            "hvps_since_line": self.hvps_since_line,
        })
    }

    /// Continues the tallies of a checkpoint (see [`Tally::to_checkpoint`]); a checkpoint
    /// from before they were saved leaves them at zero.
    fn restore(&mut self, run: &Value) -> Result<()> {
        if run.is_null() {
            return Ok(());
        }
        self.step_loss = serde_json::from_value(run["step_loss"].clone())?;
        let clock = |k: &str| {
            run[k]
                .as_f64()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .with_context(|| format!("`{k}` is not a time"))
        };
        self.before_s = clock("elapsed_s")?;
        self.probe_s += clock("probe_s")?;
        self.eval_s = clock("eval_s")?;
        // Checkpoints from before provenance was kept have none.
        self.earlier = match &run["processes"] {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            _ => bail!("`processes` is not a list"),
        };
        // Checkpoints from before the count was kept: unknown until the next line (whose
        // `refresh_hvps` is left out rather than undercounted), unless taken at a line step.
        self.hvps_since_line = match &run["hvps_since_line"] {
            Value::Null => None,
            v => Some(v.as_u64().context("`hvps_since_line` is not a count")?),
        };
        Ok(())
    }

    /// The run's summary, written as `summary.json` when there is a run directory.
    fn write(
        &self,
        ctx: &RunContext,
        dir: Option<&RunDir>,
        status: &str,
        steps_done: u64,
        lr: f64,
    ) -> Result<Value> {
        let (cfg, exp) = (ctx.cfg, ctx.exp);
        let total = self.elapsed_s();
        let l = &self.step_loss;
        let var = if l.n > 1 {
            l.m2 / (l.n - 1) as f64
        } else {
            f64::NAN
        };
        let mut s = json!({
            "status": status,
            "steps_done": steps_done,
            "steps": cfg.steps,
            "dynamic": cfg.noise.dynamic.to_string(),
            "model": exp.net.name,
            "dim": exp.net.dim(),
            "data": exp.describe,
            "device": ctx.device_name,
            "seed": cfg.seed,
            "effective_lr": lr,
            "final": self.last_line,
            "time": {
                "total_s": total,
                "train_s": total - self.probe_s - self.eval_s,
                "probe_s": self.probe_s,
                "eval_s": self.eval_s,
            },
            "step_loss": {"mean": finite(l.mean), "variance": finite(var), "steps": l.n},
        });
        if let Some(v) = self.late.to_json() {
            s["late_mean"] = v;
        }
        s["provenance"] = noisescope_runs::provenance::with_earlier(ctx.device_name, &self.earlier);
        if let Some(d) = dir {
            // TensorBoard's text tab: what made the run, as of this summary. Written first: a
            // run whose summary landed is not run again, so its text must be there already.
            d.append_provenance(steps_done, &s["provenance"])?;
            d.write("summary.json", serde_json::to_string_pretty(&s)?.as_bytes())?;
        }
        Ok(s)
    }
}

/// A step-count progress bar showing loss and steps per second; hidden under `--quiet`.
pub fn progress(quiet: bool, total: u64, done: u64) -> ProgressBar {
    crate::output::steps_bar(quiet, total, done, 20, "")
}

/// Runs one unit into `dir` ([`run_unit`]: a new run, a continuation from its latest
/// checkpoint, or nothing when finished). A diverged run is a result: `Ok(None)`, its
/// summary on disk.
pub fn run_recorded(
    ctx: &RunContext,
    theta0: burn::Tensor<1>,
    dir: &std::path::Path,
) -> Result<Option<Outcome>> {
    match run_unit(ctx, theta0, dir) {
        Ok(o) => Ok(Some(o)),
        Err(e) => match noisescope_runs::units::UnitState::of(dir) {
            Ok(noisescope_runs::units::UnitState::Summarized(s)) if s["status"] == "diverged" => {
                if !ctx.quiet {
                    eprintln!("{}: {e:#}", dir.display());
                }
                Ok(None)
            }
            _ => Err(e),
        },
    }
}
