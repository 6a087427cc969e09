//! How processes share an experiment ([`Role`]: alone, one shard, or the parent of children),
//! and `--jobs N` / `--devices LIST`: an experiment's shards as parallel child processes of
//! this binary on one machine (one per wgpu device, or N sharing the CPU's cores), with one
//! progress bar over every unit's steps read from the unit folders. Each child's output goes
//! to `DIR/logs/shard-i-of-n.log`.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use noisescope_runs::rundir::open_experiment_dir;

use noisescope_runs::units::UnitState;

use crate::args::{BackendKind, Global, ScaleArgs};
use crate::shard::Shard;

/// One child process: its shard, and its wgpu device or CPU thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    pub shard: Shard,
    pub device: Option<usize>,
    pub threads: Option<usize>,
}

/// The children `--jobs` or `--devices` ask for (None: run in this process). `--jobs N`
/// gives each child an equal share of this process's cores (at least one).
pub fn workers(g: &Global, scale: &ScaleArgs) -> Result<Option<Vec<Worker>>> {
    if (scale.jobs.is_some() || scale.devices.is_some())
        && let Ok(id) = std::env::var("SLURM_ARRAY_TASK_ID")
    {
        bail!(
            "--jobs/--devices inside a Slurm array task (SLURM_ARRAY_TASK_ID={id}) would run every unit in every task: give each shard its own task (noisescope slurm --tasks N)"
        );
    }
    if let Some(devices) = &scale.devices {
        if g.backend != BackendKind::Wgpu {
            bail!(
                "--devices: runs one process per wgpu device; add --backend wgpu (or use --jobs N on the CPU)"
            );
        }
        let mut seen = devices.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != devices.len() || devices.is_empty() {
            bail!("--devices: expected a list of distinct device numbers, e.g. 0,1,2,3");
        }
        let n = devices.len();
        return Ok(Some(
            devices
                .iter()
                .enumerate()
                .map(|(index, &d)| Worker {
                    shard: Shard { index, count: n },
                    device: Some(d),
                    threads: None,
                })
                .collect(),
        ));
    }
    let Some(jobs) = scale.jobs else {
        return Ok(None);
    };
    let n = jobs as usize;
    let cores = g
        .threads
        .map(usize::from)
        .unwrap_or_else(noisescope_models::host_threads);
    let threads = (cores / n).max(1);
    Ok(Some(
        (0..n)
            .map(|index| Worker {
                shard: Shard { index, count: n },
                device: g.device,
                threads: Some(threads),
            })
            .collect(),
    ))
}

/// How this process takes part in an experiment: as the parent of `--jobs`/`--devices`
/// children, as one shard, or alone.
pub enum Role {
    Parent(Vec<Worker>),
    Shard(Shard),
    Alone,
}

impl Role {
    /// The role `scale` and the Slurm variables ask for, with the experiment's folder opened
    /// for it ([`open_experiment_dir`]: shared between shards; `restart` refused to a shard,
    /// since the others may be writing the folder).
    pub fn open(
        g: &crate::args::Global,
        scale: &crate::args::ScaleArgs,
        out: &Path,
        experiment: (&str, &str, &str),
        restart: bool,
    ) -> Result<Role> {
        let (what, config_name, config) = experiment;
        let role = match workers(g, scale)? {
            Some(w) => Role::Parent(w),
            None => Shard::resolve(scale.shard)?.map_or(Role::Alone, Role::Shard),
        };
        let shard = matches!(role, Role::Shard(_));
        if restart && shard {
            anyhow::bail!(
                "--restart: not for a shard (the other shards may be writing {}); delete the folder first, or restart without --shard",
                out.display()
            );
        }
        open_experiment_dir(out, what, config_name, config, restart, shard)?;
        Ok(role)
    }

    /// The shard this process runs (all units when alone).
    pub fn shard(&self) -> Shard {
        match self {
            Role::Shard(s) => *s,
            _ => Shard::ALL,
        }
    }

    /// Ends this process's part: alone, it writes the combined report (`report`); a shard
    /// says how to combine. Then the units that failed (each recorded in its folder) are the
    /// error.
    pub fn finish(
        &self,
        quiet: bool,
        out: &Path,
        failures: &[String],
        report: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        match self {
            Role::Shard(s) if !quiet => eprintln!(
                "shard {s} done; `noisescope collect {}` combines the shards",
                out.display()
            ),
            Role::Shard(_) => {}
            _ => report()?,
        }
        if failures.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} unit(s) failed: {}; each error is in the unit's {}, and a re-run tries them again",
            failures.len(),
            failures.join("; "),
            noisescope_runs::units::ERROR_FILE
        )
    }
}

/// The options this process was given that a child must not inherit (with whether each takes
/// a value): the fan-out itself, the choices made per child, and `--restart` (done once, by
/// the parent, before the children start).
const PARENT_ONLY: [(&str, bool); 10] = [
    ("--jobs", true),
    ("--devices", true),
    ("--shard", true),
    ("--device", true),
    ("--threads", true),
    ("--out", true),
    ("--restart", false),
    ("--json", false),
    ("--quiet", false),
    ("-q", false),
];

/// This process's arguments less the [`PARENT_ONLY`] ones (as `--opt value` or
/// `--opt=value`), for a child.
pub fn child_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for a in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        let s = a.to_string_lossy();
        if let Some((_, takes)) = PARENT_ONLY.iter().find(|(o, _)| s == *o) {
            skip_value = *takes;
            continue;
        }
        if PARENT_ONLY
            .iter()
            .any(|(o, takes)| *takes && s.starts_with(&format!("{o}=")))
        {
            continue;
        }
        kept.push(a);
    }
    kept
}

/// The last step a unit has logged (its total when it has finished), read from the tail of
/// its `metrics.jsonl`.
fn unit_progress(dir: &Path, total: u64) -> u64 {
    if matches!(UnitState::of(dir), Ok(s) if s.finished()) {
        return total;
    }
    let Ok(mut f) = std::fs::File::open(dir.join("metrics.jsonl")) else {
        return 0;
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let mut tail = String::new();
    if f.seek(SeekFrom::Start(len.saturating_sub(8192))).is_err()
        || f.read_to_string(&mut tail).is_err()
    {
        return 0;
    }
    tail.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["step"].as_u64())
        .map_or(0, |s| s.min(total))
}

/// Runs `workers` as child processes of this binary on the experiment in `out` and waits for
/// all of them, showing one progress bar over `units` (each unit's folder and step count).
/// Fails, naming the shards and their logs, when any child failed.
pub fn run(g: &Global, out: &Path, workers: &[Worker], units: &[(PathBuf, u64)]) -> Result<()> {
    let exe = std::env::current_exe().context("locating the noisescope binary")?;
    let base = child_args(std::env::args_os().skip(1));
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut children: Vec<(Worker, PathBuf, Child)> = Vec::new();
    for w in workers {
        let log = logs.join(format!("shard-{}-of-{}.log", w.shard.index, w.shard.count));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("--quiet").args(&base);
        cmd.arg("--out").arg(out);
        cmd.arg("--shard").arg(w.shard.to_string());
        if let Some(d) = w.device {
            cmd.arg("--device").arg(d.to_string());
        }
        if let Some(t) = w.threads {
            cmd.arg("--threads").arg(t.to_string());
        }
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        match cmd.spawn() {
            Ok(child) => children.push((w.clone(), log, child)),
            Err(e) => {
                stop(&mut children);
                bail!("starting shard {}: {e}", w.shard);
            }
        }
    }
    let total: u64 = units.iter().map(|(_, s)| s).sum();
    let bar = crate::output::steps_bar(g.quiet, total, 0, 24, "");
    let mut failed = Vec::new();
    let mut running = children.len();
    while running > 0 {
        running = 0;
        for (w, log, child) in &mut children {
            match child.try_wait() {
                Ok(Some(status)) if !status.success() => {
                    if !failed.iter().any(|(s, _)| s == &w.shard) {
                        failed.push((w.shard, log.clone()));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => running += 1,
                Err(e) => {
                    let shard = w.shard;
                    stop(&mut children);
                    bail!("waiting for shard {shard}: {e}");
                }
            }
        }
        let done: u64 = units.iter().map(|(d, s)| unit_progress(d, *s)).sum();
        let finished = units
            .iter()
            .filter(|(d, _)| matches!(UnitState::of(d), Ok(s) if s.finished()))
            .count();
        bar.set_position(done);
        bar.set_message(format!(
            "{finished}/{} units, {running} shards",
            units.len()
        ));
        if running > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    bar.finish_and_clear();
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|(s, log)| format!("shard {s} (log: {})", log.display()))
            .collect();
        bail!(
            "{} of {} shards failed: {}; a re-run continues where they stopped",
            failed.len(),
            workers.len(),
            list.join(", ")
        );
    }
    Ok(())
}

/// Kills the children started so far and reaps them, so that none outlives a parent that
/// gives up.
fn stop(children: &mut [(Worker, PathBuf, Child)]) {
    for (_, _, c) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn children_get_the_command_without_the_fan_out() {
        let args = strs(&[
            "--backend",
            "wgpu",
            "sweep",
            "--config",
            "c.toml",
            "--jobs",
            "4",
            "--set",
            "run.steps=3",
            "--devices=0,1",
            "--restart",
            "--json",
            "-q",
            "--out",
            "x",
            "--threads=2",
            "--data-dir",
            "d",
        ]);
        assert_eq!(
            child_args(args),
            strs(&[
                "--backend",
                "wgpu",
                "sweep",
                "--config",
                "c.toml",
                "--set",
                "run.steps=3",
                "--data-dir",
                "d",
            ])
        );
    }

    #[test]
    fn progress_from_the_tail_of_the_metrics() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert_eq!(unit_progress(d, 10), 0);
        std::fs::write(
            d.join("metrics.jsonl"),
            "{\"step\": 2}\n{\"step\": 4}\n{\"ste",
        )
        .unwrap();
        assert_eq!(unit_progress(d, 10), 4);
        std::fs::write(d.join("summary.json"), r#"{"status": "completed"}"#).unwrap();
        assert_eq!(unit_progress(d, 10), 10);
    }
}
