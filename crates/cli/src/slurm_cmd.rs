//! `noisescope slurm sweep|escape --config F …`: fixes the experiment into its folder (the
//! resolved config, as a first shard would write it) and writes `DIR/slurm/array.sbatch`, a
//! Slurm job array of one task per shard, each running this binary with `--shard
//! $SLURM_ARRAY_TASK_ID/n`. Submitting it again continues the experiment: finished units are
//! skipped and unfinished ones continue from their latest checkpoints.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use noisescope_runs::config;
use noisescope_runs::provenance::shell_quote;
use noisescope_runs::rundir::{default_out, open_experiment_dir, write_atomic};
use serde_json::json;

use crate::args::{BackendKind, Global, SlurmArgs, SlurmKind};

/// `path` made absolute against the current folder (array tasks may start elsewhere).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn quote(p: &Path) -> String {
    shell_quote(&p.to_string_lossy())
}

/// A value for an `#SBATCH` line: Slurm reads the rest of the line as the value, so it must
/// hold no whitespace or `#`.
fn sbatch_value(what: &str, v: &str) -> Result<String> {
    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '#') {
        bail!(
            "--{what} `{v}`: expected one word, without spaces or `#` (an #SBATCH line ends at the first space)"
        );
    }
    Ok(v.to_string())
}

pub fn run(g: &Global, a: &SlurmArgs) -> Result<()> {
    let config: PathBuf = match (a.kind, &a.config, a.theory) {
        (SlurmKind::Theory, _, None) => {
            bail!("slurm theory: name the experiment, e.g. `noisescope slurm theory label-noise`")
        }
        (SlurmKind::Theory, c, Some(t)) => c
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("theory-{}", t.name()))),
        (_, _, Some(t)) => bail!(
            "`{}`: only `slurm theory` takes an experiment name",
            t.name()
        ),
        (_, None, _) => bail!("--config FILE: the sweep's or escape experiment's config"),
        (_, Some(c), None) => c.clone(),
    };
    let out = absolute(&a.out.clone().unwrap_or_else(|| default_out(&config, "")))?;
    // A task with GPUs computes on them.
    let backend = if a.gpus_per_task.is_some_and(|n| n > 0) {
        BackendKind::Wgpu
    } else {
        g.backend
    };
    // The experiments: one, or one per seed (a campaign), each fixed into its folder.
    let (command, config_name, what) = match a.kind {
        SlurmKind::Sweep => ("sweep", "sweep.toml", "a sweep"),
        SlurmKind::Escape => ("escape", "escape.toml", "an escape experiment"),
        SlurmKind::Theory => ("theory", "config.toml", "a theory experiment"),
    };
    let mut units = 0;
    let mut folders: Vec<PathBuf> = Vec::new();
    match a.kind {
        SlurmKind::Sweep => {
            if a.steps.is_some() || a.until.is_some() || a.seeds.is_some() {
                bail!(
                    "--steps, --until and --seeds are for escape experiments; set a sweep's steps with --set run.steps=N"
                );
            }
            let sweep: noisescope_runs::sweep::SweepConfig = config::load(&config, &a.set)?;
            units = noisescope_runs::sweep::runs(&sweep)?.len();
            open_experiment_dir(
                &out,
                what,
                config_name,
                &toml::to_string(&sweep)?,
                false,
                false,
            )?;
            folders.push(out.clone());
        }
        SlurmKind::Theory => {
            if a.steps.is_some() || a.until.is_some() || a.seeds.is_some() || a.tasks.is_some() {
                bail!(
                    "--steps, --until, --seeds and --tasks are not for theory experiments: one task runs one"
                );
            }
            // Its settings are checked now, so that a typo fails here rather than in the queue;
            // the task resolves them again (`theory` refuses a folder holding results).
            crate::theory::check_settings(
                a.theory.expect("checked above"),
                a.config.as_deref(),
                &a.set,
            )?;
            if out.join("summary.json").exists() {
                bail!(
                    "{} already holds results; choose another --out",
                    out.display()
                );
            }
            units = 1;
            folders.push(out.clone());
        }
        SlurmKind::Escape => {
            let seeds: Vec<Option<u64>> = match &a.seeds {
                Some(list) if list.is_empty() => bail!("--seeds: expected a list, e.g. 0,1,2"),
                Some(list) if list.iter().enumerate().any(|(i, s)| list[..i].contains(s)) => {
                    bail!("--seeds: a seed appears twice; each seed is one folder")
                }
                Some(list) => list.iter().copied().map(Some).collect(),
                None => vec![None],
            };
            for seed in seeds {
                let mut sets = a.set.clone();
                if let Some(s) = seed {
                    sets.push(format!("run.seed={s}"));
                }
                let cfg = crate::escape_cmd::resolve(&config, &sets, a.steps, None, None, backend)?;
                if a.until.is_some() && cfg.repeats > 1 {
                    bail!(
                        "--until: only for experiments of one repetition (this one has {})",
                        cfg.repeats
                    );
                }
                units = cfg.dynamics.len();
                let dir = match seed {
                    Some(s) => out.join(format!("seed-{s}")),
                    None => out.clone(),
                };
                open_experiment_dir(
                    &dir,
                    what,
                    config_name,
                    &toml::to_string(&cfg)?,
                    false,
                    false,
                )?;
                folders.push(dir);
            }
        }
    }
    if units == 0 {
        bail!("the experiment has no units to run");
    }
    // Tasks per experiment; task t runs shard t mod n of experiment t div n.
    let per = a.tasks.map_or(units, |t| t as usize).min(units);
    let tasks = per * folders.len();
    let slurm_dir = out.join("slurm");
    std::fs::create_dir_all(&slurm_dir)
        .with_context(|| format!("creating {}", slurm_dir.display()))?;

    let exe = std::env::current_exe().context("locating the noisescope binary")?;
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let name: String = out
        .file_name()
        .map_or("experiment".into(), |n| n.to_string_lossy().to_string())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!(
            "# Written by `noisescope slurm`: {tasks} task(s), {per} shard(s) of each of {} experiment(s) ({what}, {units} unit(s) each) in",
            folders.len()
        ),
        format!("#   {}", out.display()),
        format!(
            "# Submit: sbatch {}",
            quote(&slurm_dir.join("array.sbatch"))
        ),
        "# Submitting again continues: finished units are skipped, unfinished ones continue from"
            .into(),
        "# their latest checkpoints. Combine (during or after): noisescope collect DIR".into(),
        format!("#SBATCH --job-name=ns-{name}"),
    ];
    let array = match a.max_parallel {
        Some(m) => format!("0-{}%{m}", tasks - 1),
        None => format!("0-{}", tasks - 1),
    };
    lines.push(format!("#SBATCH --array={array}"));
    // `%` is Slurm's pattern character: a literal one in the folder's path is `%%`.
    let logs = slurm_dir.to_string_lossy().replace('%', "%%");
    lines.push(format!(
        "#SBATCH --output={}",
        sbatch_value("out", &format!("{logs}/%A_%a.out"))?
    ));
    if let Some(p) = &a.partition {
        lines.push(format!(
            "#SBATCH --partition={}",
            sbatch_value("partition", p)?
        ));
    }
    if let Some(c) = a.cpus_per_task {
        lines.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    if let Some(gpus) = a.gpus_per_task {
        lines.push(format!("#SBATCH --gpus-per-task={gpus}"));
    }
    if let Some(t) = &a.time {
        lines.push(format!("#SBATCH --time={}", sbatch_value("time", t)?));
    }
    if let Some(m) = &a.mem {
        lines.push(format!("#SBATCH --mem={}", sbatch_value("mem", m)?));
    }
    lines.push("set -euo pipefail".into());
    lines.push(format!("cd {}", quote(&cwd)));
    let mut cmd = vec![quote(&exe), "--quiet".into()];
    cmd.push(format!(
        "--backend {}",
        format!("{backend:?}").to_lowercase()
    ));
    if let Some(d) = &g.data_dir {
        cmd.push(format!("--data-dir {}", quote(&absolute(d)?)));
    }
    if let Some(c) = a.cpus_per_task {
        cmd.push(format!("--threads {c}"));
    } else if let Some(t) = g.threads {
        cmd.push(format!("--threads {t}"));
    }
    if let Some(b) = &g.blas {
        cmd.push(format!("--blas {}", shell_quote(b)));
    }
    if let Some(l) = g.autotune {
        cmd.push(format!("--autotune {}", l.as_env()));
    }
    cmd.push(command.into());
    match &a.seeds {
        None if a.kind == SlurmKind::Theory => {
            cmd.push(a.theory.expect("checked above").name().into());
            if let Some(c) = &a.config {
                cmd.push(format!("--config {}", quote(&absolute(c)?)));
            }
            for set in &a.set {
                cmd.push(format!("--set {}", shell_quote(set)));
            }
            cmd.push(format!("--out {}", quote(&out)));
        }
        None => {
            cmd.push(format!("--config {}", quote(&out.join(config_name))));
            cmd.push(format!("--out {}", quote(&out)));
            cmd.push(format!("--shard \"${{SLURM_ARRAY_TASK_ID}}/{per}\""));
        }
        Some(seeds) => {
            let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
            lines.push(format!("seeds=({})", list.join(" ")));
            lines.push(format!("seed=${{seeds[$((SLURM_ARRAY_TASK_ID / {per}))]}}"));
            let dir = format!("{}\"/seed-${{seed}}\"", quote(&out));
            cmd.push(format!("--config {dir}/{config_name}"));
            cmd.push(format!("--out {dir}"));
            cmd.push(format!(
                "--shard \"$((SLURM_ARRAY_TASK_ID % {per}))/{per}\""
            ));
        }
    }
    if let Some(u) = a.until {
        cmd.push(format!("--until {u}"));
    }
    lines.push(format!("exec {}", cmd.join(" ")));
    let script = slurm_dir.join("array.sbatch");
    write_atomic(&script, (lines.join("\n") + "\n").as_bytes())?;
    if g.json {
        crate::output::print_json(&json!({
            "script": script, "tasks": tasks, "units": units * folders.len(), "out": out,
        }));
    } else {
        println!(
            "wrote {}: {tasks} array task(s) for {} unit(s){}",
            script.display(),
            units * folders.len(),
            a.max_parallel
                .map_or(String::new(), |m| format!(", at most {m} at once"))
        );
        println!("submit:  sbatch {}", quote(&script));
        println!("combine: noisescope collect {}", quote(&out));
    }
    Ok(())
}
