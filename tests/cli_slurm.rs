//! A sweep through a real Slurm cluster (docs/scale-out.md): a one-node cluster on localhost
//! (scripts/slurm-local.sh, Debian's slurmctld, slurmd, slurm-client and munge), the array
//! script of `noisescope slurm`, `sbatch`, one task cancelled mid-run with `scancel`, the
//! array submitted again, and `noisescope collect`: the merged summary equals one local
//! process's, and the resubmission redid none of the finished units.
//!
//! Needs root and the packages; without them the test says so and passes, unless `CI` is
//! set (`.ci/run` installs them), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{noisescope, ok, read_json, repo, timeless};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A 4-unit sweep whose units each take a few seconds, checkpointing often (so that a
/// cancelled task leaves a checkpoint to continue from).
const SWEEP: &str = r#"
key = "model.widths.1"
values = [6, 12]
summary = ["step_loss.mean"]

[[series]]
name = "lr-a"
set = { "optimizer.lr" = 0.05 }

[[series]]
name = "lr-b"
set = { "optimizer.lr" = 0.1 }

[run]
steps = 5000
log_every = 250
checkpoint_every = 50

[run.data]
kind = "images"
name = "fashion-mnist-small"
train = 500
test = 100

[run.model]
model = "mlp"
widths = [784, 8, 10]
activation = "tanh"
loss = { kind = "cross-entropy" }

[run.noise]
dynamic = "sgd"
batch = 50
"#;

const UNITS: [&str; 4] = [
    "lr-a/model.widths.1=6",
    "lr-a/model.widths.1=12",
    "lr-b/model.widths.1=6",
    "lr-b/model.widths.1=12",
];

/// The cluster, stopped (its daemons, by their pids) when dropped.
struct Cluster {
    state: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(state: &Path) -> Cluster {
        let o = Command::new("bash")
            .arg(repo().join("scripts/slurm-local.sh"))
            .args(["start", s(state)])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "starting the cluster: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        let conf = out
            .lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .unwrap_or_else(|| panic!("no SLURM_CONF in {out}"))
            .trim()
            .to_string();
        Cluster {
            state: state.to_path_buf(),
            conf,
        }
    }

    /// Runs a Slurm client command; its stdout.
    fn client(&self, args: &[&str]) -> String {
        let o = Command::new(args[0])
            .args(&args[1..])
            .env("SLURM_CONF", &self.conf)
            .env("PATH", path_with_sbin())
            .current_dir(repo())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until no task of job `id` is queued or running.
    fn wait(&self, id: &str, limit: Duration) {
        let start = Instant::now();
        while !self.client(&["squeue", "-h", "-j", id]).trim().is_empty() {
            assert!(
                start.elapsed() < limit,
                "job {id} still queued after {limit:?}:\n{}",
                self.client(&["squeue"])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/slurm-local.sh"))
            .args(["stop", s(&self.state)])
            .status();
    }
}

fn path_with_sbin() -> String {
    format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Whether this machine can run the cluster: root, and Slurm's and munge's programs.
fn slurm_available() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err("not root".into());
    }
    for b in [
        "sbatch",
        "squeue",
        "scancel",
        "slurmctld",
        "slurmd",
        "munged",
    ] {
        let found = Command::new("bash")
            .args(["-c", &format!("command -v {b}")])
            .env("PATH", path_with_sbin())
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!("{b} is not installed"));
        }
    }
    Ok(())
}

/// A unit's metric lines without wall times: its trajectory.
fn lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| timeless(serde_json::from_str(l).unwrap()))
        .collect()
}

#[test]
fn a_sweep_through_a_slurm_array() {
    if let Err(why) = slurm_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Slurm test (.ci/run installs slurmctld, slurmd, slurm-client and munge): {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, SWEEP).unwrap();

    let local = tmp.path().join("local");
    ok(&noisescope(&[
        "--quiet",
        "--threads",
        "1",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&local),
    ]));
    let reference = timeless(read_json(&local.join("summary.json")));
    assert_eq!(reference["units"]["finished"], 4);
    eprintln!("local sweep: {:.1} s", t0.elapsed().as_secs_f64());

    let cluster = Cluster::start(&tmp.path().join("cluster"));
    let out = tmp.path().join("array");
    let o = noisescope(&[
        "slurm",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--cpus-per-task",
        "1",
        "--max-parallel",
        "2",
    ]);
    ok(&o);
    let script = out.join("slurm/array.sbatch");
    let t1 = Instant::now();
    let id = cluster.client(&["sbatch", "--parsable", s(&script)]);
    let id = id.trim().split(';').next().unwrap().to_string();

    // Cancel task 0 once its unit has a checkpoint and before it finishes.
    let unit0 = out.join(UNITS[0]);
    let start = Instant::now();
    while !unit0.join("checkpoints/latest").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "task 0 wrote no checkpoint:\n{}",
            cluster.client(&["squeue"])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.client(&["scancel", &format!("{id}_0")]);
    cluster.wait(&id, Duration::from_secs(90));
    eprintln!("first array: {:.1} s", t1.elapsed().as_secs_f64());
    assert!(
        !unit0.join("summary.json").exists(),
        "task 0 finished before it was cancelled; make its units longer"
    );
    // The collected summary lists the cancelled unit; the others are finished.
    let o = noisescope(&["collect", s(&out)]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("units finished: 3 of 4"), "{text}");
    assert!(
        text.contains(&format!("unfinished: {}", UNITS[0])),
        "{text}"
    );
    let finished: Vec<Vec<u8>> = UNITS[1..]
        .iter()
        .map(|u| std::fs::read(out.join(u).join("summary.json")).unwrap())
        .collect();

    // Submitted again: the cancelled unit continues from its checkpoint, the others are
    // skipped, and the merged result is the local one's.
    let t2 = Instant::now();
    let id = cluster.client(&["sbatch", "--parsable", s(&script)]);
    cluster.wait(
        id.trim().split(';').next().unwrap(),
        Duration::from_secs(90),
    );
    eprintln!("second array: {:.1} s", t2.elapsed().as_secs_f64());
    for (u, before) in UNITS[1..].iter().zip(&finished) {
        assert_eq!(
            &std::fs::read(out.join(u).join("summary.json")).unwrap(),
            before,
            "{u} was redone"
        );
    }
    let unit0_summary = read_json(&unit0.join("summary.json"));
    assert!(
        unit0_summary["provenance"]["earlier"].is_array(),
        "the cancelled unit continued from its checkpoint: {}",
        unit0_summary["provenance"]
    );
    ok(&noisescope(&["collect", s(&out)]));
    assert_eq!(timeless(read_json(&out.join("summary.json"))), reference);
    for u in UNITS {
        assert_eq!(lines(&out.join(u)), lines(&local.join(u)), "{u}");
    }
    drop(cluster);
    eprintln!("slurm test: {:.1} s", t0.elapsed().as_secs_f64());
}
