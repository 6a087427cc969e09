//! The kill test (docs/reliability.md): `train`, `escape` and `sweep` are killed with SIGKILL
//! at seeded random instants, 20 times each (`NOISESCOPE_KILL_TRIALS` overrides), sometimes
//! again while they continue, then re-run to the end as a user would. Every output file must
//! equal the uninterrupted run's: byte for byte, except wall-clock fields and the provenance
//! record (which processes ran it, when) in the JSON and TensorBoard files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

mod common;
use common::repo;

// The binary's event-file module, for its reader.
#[allow(dead_code)]
#[path = "../crates/runs/src/tensorboard.rs"]
mod tensorboard;

/// The command that runs (or continues) the experiment into `out`.
type Cmd = fn(&Path) -> Vec<String>;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `args` followed by `--set s` for each of `sets`.
fn with_sets(args: &[&str], sets: &[&str]) -> Vec<String> {
    let mut v = strings(args);
    for s in sets {
        v.extend(["--set".into(), s.to_string()]);
    }
    v
}

fn train_cmd(out: &Path) -> Vec<String> {
    let o = out.to_str().unwrap();
    // A run killed before its config.toml exists is started again, as a user would.
    if out.join("config.toml").is_file() {
        return strings(&["--quiet", "train", "--resume", o]);
    }
    with_sets(
        &[
            "--quiet",
            "train",
            "--config",
            "configs/quickstart.toml",
            "--out",
            o,
        ],
        &[
            "model.widths=[784, 16, 10]",
            "data.train=200",
            "data.test=100",
            "steps=40",
            "log_every=5",
            "checkpoint_every=5",
            "optimizer.momentum=0.5",
            "probes.every=10",
            "probes.list=[\"spectrum\", \"escape\"]",
            "probes.samples=50",
            "probes.lanczos_steps=10",
            "probes.warm_start=true",
            "probes.trace_h={method = \"hutchinson\", probes = 5}",
        ],
    )
}

fn escape_cmd(out: &Path) -> Vec<String> {
    with_sets(
        &[
            "--quiet",
            "escape",
            "--config",
            "configs/wangwu/escape-synthetic.toml",
            "--phase1-steps",
            "100",
            "--steps",
            "30",
            "--out",
            out.to_str().unwrap(),
        ],
        &[
            "phase1.log_every=20",
            "run.checkpoint_every=5",
            "run.probes.every=5",
            "run.probes.lanczos_steps=20",
        ],
    )
}

fn sweep_cmd(out: &Path) -> Vec<String> {
    with_sets(
        &[
            "--quiet",
            "sweep",
            "--config",
            "configs/zhu2019/alignment-width.toml",
            "--out",
            out.to_str().unwrap(),
        ],
        &[
            "values=[8, 16]",
            "run.steps=40",
            "run.checkpoint_every=5",
            "run.optimizer.schedule.from=20",
            "run.data.n=200",
        ],
    )
}

/// Runs `args`; kills it after `kill_after` when given. Whether it ran to the end.
fn run(args: &[String], kill_after: Option<Duration>) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_noisescope"))
        .args(args)
        .current_dir(repo())
        .env_remove("NOISESCOPE_DATA")
        .env_remove("NOISESCOPE_BACKEND")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(status.success(), "{args:?} failed: {err}");
            return true;
        }
        if kill_after.is_some_and(|k| start.elapsed() >= k) {
            child.kill().unwrap();
            child.wait().unwrap();
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The keys that hold wall-clock times, or the record of the processes that ran a run.
const CLOCKS: [&str; 8] = [
    "time",
    "time_s",
    "probe_time_s",
    "elapsed_s",
    "probe_s",
    "eval_s",
    "provenance",
    "processes",
];

/// Drops the keys that hold wall-clock times.
fn without_clocks(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in CLOCKS {
                m.remove(k);
            }
            m.values_mut().for_each(without_clocks);
        }
        Value::Array(a) => a.iter_mut().for_each(without_clocks),
        _ => {}
    }
}

/// Every file under `root`, by relative path: JSON and JSONL without clocks, the rest as
/// bytes.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let name = p.to_string_lossy();
            let file = p.file_name().unwrap().to_string_lossy();
            if file.starts_with("events.out.tfevents.") {
                // Its name holds the run's start time and host: keyed without them, read
                // back, and compared without wall times, clock scalars and provenance texts.
                let events =
                    tensorboard::read_events(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                let kept: String = events
                    .into_iter()
                    .filter(|e| e.texts.is_empty())
                    .map(|e| {
                        let scalars: Vec<_> = e
                            .scalars
                            .into_iter()
                            .filter(|(tag, _)| {
                                !CLOCKS.contains(&tag.rsplit('/').next().unwrap_or(tag))
                            })
                            .map(|(tag, x)| (tag, x.to_bits()))
                            .collect();
                        format!("{} {:?} {scalars:?}\n", e.step, e.file_version)
                    })
                    .collect();
                let key = p.with_file_name("events.out.tfevents.*");
                out.insert(
                    key.strip_prefix(root).unwrap().to_path_buf(),
                    kept.into_bytes(),
                );
                continue;
            }
            let bytes = if name.ends_with(".jsonl") {
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.is_empty() || text.ends_with('\n'), "{name}: torn");
                text.lines()
                    .map(|l| {
                        let mut v: Value = serde_json::from_str(l).unwrap();
                        without_clocks(&mut v);
                        v.to_string() + "\n"
                    })
                    .collect::<String>()
                    .into_bytes()
            } else if name.ends_with(".json") {
                let mut v: Value = serde_json::from_slice(&bytes).unwrap();
                without_clocks(&mut v);
                v.to_string().into_bytes()
            } else {
                bytes
            };
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), bytes);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The uninterrupted run, then `trials` runs killed at random instants and continued.
fn killed_runs_equal_the_uninterrupted_one(name: &str, cmd: Cmd, seed: u64) {
    let trials: usize = std::env::var("NOISESCOPE_KILL_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let t0 = Instant::now();
    assert!(run(&cmd(&whole), None));
    let span = t0.elapsed();
    let reference = tree(&whole);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kills = 0;
    for trial in 0..trials {
        let out = tmp.path().join(format!("trial-{trial}"));
        let mut attempts = 0;
        loop {
            // The first attempt, and sometimes a continuation, is killed at a random instant
            // within the uninterrupted run's span.
            let kill = (attempts == 0 || rng.random_bool(0.3)) && attempts < 4;
            let after = kill.then(|| span.mul_f64(rng.random_range(0.0..1.0)));
            attempts += 1;
            if run(&cmd(&out), after) {
                break;
            }
            kills += 1;
        }
        let got = tree(&out);
        let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&got),
            names(&reference),
            "{name}, trial {trial}: files"
        );
        for (p, bytes) in &reference {
            assert!(
                &got[p] == bytes,
                "{name}, trial {trial}: {} differs from the uninterrupted run's",
                p.display()
            );
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
    eprintln!("{name}: {trials} trials, {kills} kills, all equal to the uninterrupted run");
}

#[test]
fn killed_train_runs_continue_to_the_same_files() {
    killed_runs_equal_the_uninterrupted_one("train", train_cmd, 1);
}

#[test]
fn killed_escapes_continue_to_the_same_files() {
    killed_runs_equal_the_uninterrupted_one("escape", escape_cmd, 2);
}

#[test]
fn killed_sweeps_continue_to_the_same_files() {
    killed_runs_equal_the_uninterrupted_one("sweep", sweep_cmd, 3);
}
