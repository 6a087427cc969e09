//! `noisescope train`: one run of any zoo model with any dynamic on any dataset, into a run
//! directory, with progress, online probes, checkpoints, resume and divergence handling.

use anyhow::{Context, Result, bail};
use noisescope_data::SearchPath;
use noisescope_runs::config::{self, RunConfig};
use noisescope_runs::rundir::{self, RunDir};
use serde_json::Value;

use crate::args::{Global, TrainArgs};
use crate::backend;
use crate::experiment;
use crate::run_loop::{RunContext, initial_theta, nothing_to_do, train_loop};

pub fn run(g: &Global, a: &TrainArgs) -> Result<()> {
    let opened = backend::open(g.backend, g.device)?;
    let search = SearchPath::from_env(g.data_dir.clone());
    let (cfg, dir, resume) = match &a.resume {
        Some(dir) => {
            let rd = RunDir::open(dir)?;
            let path = rd.path.join("config.toml");
            let saved: RunConfig = config::load(&path, &[])?;
            let cfg: RunConfig = config::load(&path, &a.set)?;
            // A resumed run continues the run that its config.toml describes: only its length
            // may change, and the new length is written back there.
            if let Some(key) = config::changed_key(&saved, &cfg, &["steps"])? {
                bail!(
                    "--resume {}: --set may change only `steps` (the run continues the settings of its config.toml); `{key}` differs",
                    rd.path.display()
                );
            }
            rd.remove_leftovers()?;
            if cfg.steps != saved.steps {
                // Checked before config.toml changes: a length the run has already passed
                // would leave a config that no later --resume can continue.
                if let Some(ck) = rd.find_checkpoint()? {
                    let step = rundir::checkpoint_step(&ck)?;
                    if step > cfg.steps {
                        bail!(
                            "--resume {}: --set steps={} is shorter than the run's last checkpoint (step {step}); config.toml is unchanged",
                            rd.path.display(),
                            cfg.steps
                        );
                    }
                }
                rd.write("config.toml", toml::to_string(&cfg)?.as_bytes())?;
            }
            if let Some(why) = nothing_to_do(&rd, &cfg, a.until)? {
                if !g.quiet {
                    eprintln!("{}: {why}; nothing to do", rd.path.display());
                }
                return Ok(());
            }
            (cfg, rd, true)
        }
        None => {
            let path = a
                .config
                .as_ref()
                .context("give --config FILE (or --resume DIR)")?;
            let mut cfg: RunConfig = config::load(path, &a.set)?;
            cfg.backend = Some(format!("{:?}", g.backend).to_lowercase());
            let out = match &a.out {
                Some(out) => out.clone(),
                None => rundir::claim_default_out(
                    path,
                    &format!("-{}-s{}", cfg.noise.dynamic, cfg.seed),
                )?,
            };
            let rd = RunDir::create(&out)?;
            rd.write("config.toml", toml::to_string(&cfg)?.as_bytes())?;
            (cfg, rd, false)
        }
    };
    let exp = experiment::build(&cfg, &opened, &search)?;
    if !g.quiet {
        eprintln!(
            "{} · {} (D = {}) · {} · {} → {}",
            opened.description,
            exp.net.name,
            exp.net.dim(),
            cfg.noise.dynamic,
            exp.describe,
            dir.path.display()
        );
    }
    let theta0 = initial_theta(&cfg, &exp.net, &opened.device)?;
    let ctx = RunContext {
        cfg: &cfg,
        exp: &exp,
        quiet: g.quiet,
        until: a.until,
        device_name: &opened.description,
    };
    let outcome = train_loop(&ctx, theta0, Some(&dir), resume)?;
    if g.json {
        crate::output::print_json(&outcome.summary);
    } else {
        println!("{}", summary_line(&outcome.summary));
    }
    Ok(())
}

fn summary_line(s: &Value) -> String {
    let f = &s["final"];
    let mut out = format!(
        "{} after {} steps: train loss {:.4e}",
        s["status"].as_str().unwrap_or("?"),
        s["steps_done"],
        f["train_loss"].as_f64().unwrap_or(f64::NAN)
    );
    if let Some(a) = f["test_acc"].as_f64() {
        out += &format!(", test accuracy {:.2}%", 100.0 * a);
    }
    out += &format!(" ({:.1} s)", s["time"]["total_s"].as_f64().unwrap_or(0.0));
    let p = &f["probes"];
    if let Some(l) = p["lambda_max"].as_f64() {
        out += &format!("\n  λ_max {l:.4e}");
    }
    if let (Some(a), Some(b)) = (p["trace_h_sigma"].as_f64(), p["trace_h_sigma_iso"].as_f64()) {
        out += &format!("\n  Tr(HΣ) {a:.4e} vs Tr(HΣ̄) {b:.4e}: ratio {:.1}", a / b);
    }
    if let Some(x) = p["sharpness"].as_f64() {
        out += &format!(
            "\n  expected sharpness {x:.4e} ± {:.1e}",
            p["sharpness_se"].as_f64().unwrap_or(f64::NAN)
        );
    }
    out
}
