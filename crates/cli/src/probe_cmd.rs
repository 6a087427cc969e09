//! `noisescope probe`: the probes of SPEC §3 on a run's checkpoint, written as
//! `probes-step-NNNNNNN.json` beside the run's metrics, with figures of the Hessian spectrum
//! and its density. A later probe of the same step rewrites `probes` with its own values and
//! keeps the earlier records under `earlier`.

use anyhow::{Context, Result, bail};
use noisescope_data::SearchPath;
use noisescope_probe::Session;
use noisescope_runs::config::{self, Probe, RunConfig};
use noisescope_runs::rundir::{self, RunDir};
use serde_json::{Value, json};

use crate::args::{Global, ProbeArgs};
use crate::backend;
use crate::draw::{self, Series};
use crate::experiment;

pub fn run(g: &Global, a: &ProbeArgs) -> Result<()> {
    let rd = RunDir::open(&a.run)?;
    // The data, model and seed must stay the run's: `seed` alone redraws the random labels,
    // and probes of θ on other data mean nothing.
    if let Some(s) = a
        .set
        .iter()
        .find(|s| !s.trim_start().starts_with("probes."))
    {
        bail!(
            "--set {s}: `probe` takes only probes.* settings; the data, model and seed are the run's ({})",
            rd.path.join("config.toml").display()
        );
    }
    let cfg: RunConfig = config::load(&rd.path.join("config.toml"), &a.set)?;
    // Before the data are loaded: a missing checkpoint is the commonest slip.
    let ck = match a.step {
        Some(s) => rd.checkpoint_at(s)?,
        None => rd.latest_checkpoint()?,
    };
    let list: Vec<Probe> = a
        .probes
        .iter()
        .map(|s| s.parse().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    if list.contains(&Probe::Direction) {
        bail!(
            "--probes direction: the escape direction is θ − θ₀ against the top Hessian eigenvectors at θ₀, which only a run that probes while it trains keeps; `probe` of one checkpoint has no θ₀ (add \"direction\" to the run's probes.list instead)"
        );
    }
    let opened = backend::open(g.backend, g.device)?;
    let search = SearchPath::from_env(g.data_dir.clone());
    let exp = experiment::build(&cfg, &opened, &search)?;
    cfg.probes
        .check(exp.net.dim())
        .map_err(anyhow::Error::msg)?;
    let theta = rundir::load_theta(&ck, &opened.device, cfg.precision)
        .with_context(|| format!("checkpoint {}", ck.display()))?;
    let d = exp.net.dim();
    if theta.dims()[0] != d {
        bail!(
            "{}: θ has {} entries, the {} net of {} has D = {d}",
            ck.display(),
            theta.dims()[0],
            exp.net.name,
            rd.path.join("config.toml").display()
        );
    }
    if noisescope_data::transfer::to_host(theta.clone())
        .iter()
        .any(|v| !v.is_finite())
    {
        bail!("{}: θ holds NaN or infinite entries", ck.display());
    }
    let data = match cfg.probes.samples {
        Some(n) if n < exp.train.n => exp.train.gather(&(0..n).collect::<Vec<_>>()),
        _ => exp.train.clone(),
    };
    if list.contains(&Probe::Noise) {
        experiment::check_gram_memory(
            data.n,
            "--probes noise (a smaller --set probes.samples=… needs less)",
        )?;
    }
    let step = ck
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("step-"))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    // A second `probe` of the same step keeps what the first wrote (read first, so that a
    // damaged file stops the command before the probes run rather than after).
    let name = format!("probes-step-{step:07}.json");
    let file = rd.path.join(&name);
    let before: Option<Value> = match std::fs::read(&file) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: not JSON (an earlier probe's results); move it aside to probe step {step} again",
                file.display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let spinner = crate::output::spinner(
        g.quiet,
        &format!(
            "probing {} at step {step} on {} samples",
            a.probes.join(", "),
            data.n
        ),
    );
    let start = std::time::Instant::now();
    let report = Session::new(
        &cfg.probes,
        &exp.net,
        &theta,
        &data,
        cfg.optimizer.weight_decay,
        cfg.seed ^ step,
    )
    .run(&list);
    let elapsed = start.elapsed().as_secs_f64();
    spinner.finish_and_clear();
    let mut out = json!({"step": step, "checkpoint": ck.display().to_string(), "device": opened.description, "samples": data.n, "time_s": elapsed, "probes": report, "provenance": noisescope_runs::provenance::this_process(&opened.description)});
    if let Some(before) = before {
        merge_earlier(&mut out, before);
    }
    rd.write(&name, serde_json::to_string_pretty(&out)?.as_bytes())?;
    // A run copied without its figures folder (only config and a checkpoint) still gets them.
    let figures_dir = rd.path.join("figures");
    std::fs::create_dir_all(&figures_dir)
        .with_context(|| format!("creating {}", figures_dir.display()))?;
    let mut figures = Vec::new();
    if let Some(top) = &report.hessian_top {
        let items: Vec<(String, f64)> = top
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("λ{}", i + 1), *v))
            .collect();
        let p = rd.path.join(format!("figures/spectrum-step-{step:07}.svg"));
        draw::bars(
            &p,
            &format!("top Hessian eigenvalues at step {step}"),
            "eigenvalue",
            &items,
        )?;
        figures.push(p);
    }
    if let Some(density) = &report.density {
        let (lo, hi) = density.range();
        let grid = density.on_grid(400, ((hi - lo) / 100.0).max(1e-12));
        let p = rd.path.join(format!("figures/density-step-{step:07}.svg"));
        draw::line_panels(
            &p,
            "eigenvalue",
            &[(
                "Hessian spectral density (SLQ)",
                "density",
                true,
                vec![Series::new("SLQ", grid)],
            )],
        )?;
        figures.push(p);
    }
    if g.json {
        crate::output::print_json(&out);
    } else {
        for (k, v) in out["probes"].as_object().into_iter().flatten() {
            if k != "density" {
                println!("{k:>20}: {v}");
            }
        }
        println!("{:>20}: {elapsed:.2} s on {} samples", "time", data.n);
        println!("written: {}", rd.path.join(&name).display());
        for f in figures {
            println!("figure: {}", f.display());
        }
    }
    Ok(())
}

/// Keeps an earlier probe of the same step in `out`: its whole record (values with the
/// samples, settings and provenance they were measured with) is appended to `earlier`.
/// `probes` stays this call's alone: values of two calls with other `probes.*` settings side
/// by side would read as one measurement.
fn merge_earlier(out: &mut Value, mut before: Value) {
    let mut earlier = match before.as_object_mut().and_then(|o| o.remove("earlier")) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    earlier.push(before);
    out["earlier"] = Value::Array(earlier);
}
