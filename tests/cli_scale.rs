//! Scale-out (docs/scale-out.md): a sweep and an escape experiment split into shards — by
//! `--shard`, by the variables of a Slurm array task, by `--jobs` — combine with
//! `noisescope collect` into exactly the summary of one process; partial folders are
//! reported and drawn; failures are recorded; and `noisescope slurm` writes the array script.
//! The run against a real Slurm cluster is in tests/cli_slurm.rs.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::{failure, noisescope, noisescope_with, ok, read_json, repo, sweep, timeless};

/// A 4-unit sweep of small MLPs on the bundled Fashion-MNIST subset (2 widths × 2 series).
const SWEEP: &str = r#"
key = "model.widths.1"
values = [4, 8]
plot = ["train_loss"]
summary = ["step_loss.mean"]

[[series]]
name = "lr-a"
set = { "optimizer.lr" = 0.05 }

[[series]]
name = "lr-b"
set = { "optimizer.lr" = 0.1 }

[run]
steps = 24
log_every = 6
checkpoint_every = 6

[run.data]
kind = "images"
name = "fashion-mnist-small"
train = 200
test = 100

[run.model]
model = "mlp"
widths = [784, 8, 10]
activation = "tanh"
loss = { kind = "cross-entropy" }

[run.noise]
dynamic = "sgd"
batch = 20
"#;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every unit's metric lines, without wall times: the trajectories themselves.
fn unit_lines(out: &Path, units: &[&str]) -> Vec<Value> {
    units
        .iter()
        .map(|u| {
            let text = std::fs::read_to_string(out.join(u).join("metrics.jsonl")).unwrap();
            timeless(Value::Array(
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            ))
        })
        .collect()
}

const UNITS: [&str; 4] = [
    "lr-a/model.widths.1=4",
    "lr-a/model.widths.1=8",
    "lr-b/model.widths.1=4",
    "lr-b/model.widths.1=8",
];

/// Runs `args` in the background (as a concurrent shard would), from the repository root.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_noisescope"))
        .args(args)
        .current_dir(repo())
        .env_remove("NOISESCOPE_DATA")
        .env_remove("NOISESCOPE_BACKEND")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn shards_combine_into_the_one_process_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, SWEEP).unwrap();

    // One process.
    let local = tmp.path().join("local");
    ok(&sweep(&cfg, &local, &[]));
    let reference = timeless(read_json(&local.join("summary.json")));
    assert_eq!(reference["units"]["finished"], 4, "{reference}");

    // Two shards at once into one folder: shard 0 by flag, shard 1 as a Slurm array task.
    let sharded = tmp.path().join("sharded");
    let base = [
        "--quiet",
        "--threads",
        "1",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&sharded),
    ];
    let mut a: Vec<&str> = base.to_vec();
    a.extend(["--shard", "0/2"]);
    let first = spawn(&a, &[]);
    let second = spawn(
        &base,
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    for c in [first, second] {
        ok(&c.wait_with_output().unwrap());
    }
    // Shards write no combined summary: another may still be running.
    assert!(!sharded.join("summary.json").exists());
    // Shard 0 ran units 0 and 2, shard 1 units 1 and 3 (the provenance names the command).
    let cmd = |u: &str| {
        read_json(&sharded.join(u).join("summary.json"))["provenance"]["command"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(cmd(UNITS[0]).contains("--shard 0/2") && cmd(UNITS[2]).contains("--shard 0/2"));
    assert!(!cmd(UNITS[1]).contains("--shard") && !cmd(UNITS[3]).contains("--shard"));
    let o = noisescope(&["collect", s(&sharded)]);
    ok(&o);
    assert_eq!(
        timeless(read_json(&sharded.join("summary.json"))),
        reference
    );
    assert_eq!(unit_lines(&sharded, &UNITS), unit_lines(&local, &UNITS));
    assert!(sharded.join("figures/sweep.svg").is_file());
    assert!(sharded.join("figures/summary.svg").is_file());

    // --jobs 2: the same, with the children's logs kept.
    let jobs = tmp.path().join("jobs");
    let o = sweep(&cfg, &jobs, &["--jobs", "2"]);
    ok(&o);
    assert_eq!(timeless(read_json(&jobs.join("summary.json"))), reference);
    assert_eq!(unit_lines(&jobs, &UNITS), unit_lines(&local, &UNITS));
    assert!(jobs.join("logs/shard-1-of-2.log").is_file());
    // The table names every unit.
    let table = String::from_utf8_lossy(&o.stdout);
    for u in UNITS {
        assert!(table.contains(u), "{table}");
    }

    // A re-run has nothing left to do and leaves every file as it was.
    let before = std::fs::read(local.join(UNITS[3]).join("metrics.jsonl")).unwrap();
    ok(&sweep(&cfg, &local, &["--shard", "1/2"]));
    assert_eq!(
        std::fs::read(local.join(UNITS[3]).join("metrics.jsonl")).unwrap(),
        before
    );
}

#[test]
fn a_partial_experiment_is_reported_and_drawn() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, SWEEP).unwrap();
    let out = tmp.path().join("out");
    ok(&sweep(&cfg, &out, &["--shard", "1/3"]));
    // A unit that failed: recorded in its folder by the shard that ran it.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, SWEEP.replace("fashion-mnist-small", "no-such-set")).unwrap();
    // (Another experiment cannot write into this folder: its settings differ.)
    let e = failure(&sweep(&bad, &out, &["--shard", "0/3"]));
    assert!(e.contains("other settings"), "{e}");
    let failing = tmp.path().join("failing");
    let e = failure(&sweep(&bad, &failing, &["--shard", "0/3"]));
    assert!(e.contains("no-such-set"), "{e}");
    let o = noisescope(&["collect", s(&failing)]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("units finished: 0 of 4"), "{text}");
    assert!(text.contains(&format!("failed: {}", UNITS[0])), "{text}");
    assert!(text.contains(&format!("missing: {}", UNITS[1])), "{text}");

    // Plot draws what there is, without a summary.
    ok(&noisescope(&["plot", s(&out)]));
    assert!(out.join("figures/sweep.svg").is_file());
    assert!(!out.join("summary.json").exists());
    let o = noisescope(&["--json", "collect", s(&out)]);
    ok(&o);
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["units"]["finished"], 1);
    assert_eq!(
        summary["units"]["missing"],
        serde_json::json!([UNITS[0], UNITS[2], UNITS[3]])
    );
    assert_eq!(summary["runs"][UNITS[1]]["status"], "completed");
    assert_eq!(summary["runs"][UNITS[0]]["status"], "missing");
}

#[test]
fn sharding_refuses_what_it_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, SWEEP).unwrap();
    let out = tmp.path().join("out");
    let e = failure(&sweep(&cfg, &out, &["--shard", "0/2", "--restart"]));
    assert!(e.contains("--restart: not for a shard"), "{e}");
    let e = failure(&sweep(&cfg, &out, &["--devices", "0,1"]));
    assert!(e.contains("--backend wgpu"), "{e}");
    let o = sweep(&cfg, &out, &["--shard", "2/2"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = noisescope_with(
        &["--quiet", "sweep", "--config", s(&cfg), "--out", s(&out)],
        &[("SLURM_ARRAY_TASK_ID", "3")],
    );
    let e = failure(&o);
    assert!(e.contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
    let o = noisescope_with(
        &[
            "--quiet",
            "sweep",
            "--config",
            s(&cfg),
            "--out",
            s(&out),
            "--jobs",
            "2",
        ],
        &[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    let e = failure(&o);
    assert!(e.contains("inside a Slurm array task"), "{e}");
    let e = failure(&sweep(&cfg, &out, &["--set", "values=[4, 4]"]));
    assert!(e.contains("two runs named `lr-a/model.widths.1=4`"), "{e}");
    let e = failure(&noisescope(&[
        "slurm",
        "escape",
        "--config",
        "configs/wangwu/escape-synthetic.toml",
        "--out",
        s(&out),
        "--set",
        "dynamics=[\"gd\", \"gd\"]",
    ]));
    assert!(e.contains("gd appears twice"), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = failure(&noisescope(&["collect", s(&empty)]));
    assert!(e.contains("no sweep"), "{e}");
}

/// Wang and Wu's synthetic escape, shortened, as two shards started together: shard 1 needs
/// θ* before shard 0 has written phase 1, so it runs phase 1 in memory; the combined summary
/// (λ_max(θ*) included) and every trajectory equal one process's.
#[test]
fn escape_shards_share_phase_one() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "--quiet",
            "--threads",
            "1",
            "escape",
            "--config",
            "configs/wangwu/escape-synthetic.toml",
            "--out",
            s(out),
            "--steps",
            "30",
            "--phase1-steps",
            "40",
            "--set",
            "run.probes.every=10",
            "--set",
            "run.probes.lanczos_steps=10",
        ]
        .map(String::from)
        .to_vec()
    };
    let local = tmp.path().join("local");
    let a = args(&local);
    ok(&noisescope(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let reference = timeless(read_json(&local.join("summary.json")));
    let dynamics: Vec<String> = reference["dynamics"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(dynamics.len() >= 2, "{reference}");
    assert!(reference["lambda_max_star"].as_f64().unwrap() > 0.0);

    let sharded = tmp.path().join("sharded");
    let mut children = Vec::new();
    for shard in ["0/2", "1/2"] {
        let mut a = args(&sharded);
        a.extend(["--shard".into(), shard.into()]);
        children.push(spawn(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        ));
    }
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    ok(&noisescope(&["collect", s(&sharded)]));
    assert_eq!(
        timeless(read_json(&sharded.join("summary.json"))),
        reference
    );
    let mut units: Vec<&str> = dynamics.iter().map(String::as_str).collect();
    units.push("phase1");
    assert_eq!(unit_lines(&sharded, &units), unit_lines(&local, &units));
}

#[test]
fn slurm_writes_an_array_script() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, SWEEP).unwrap();
    let out = tmp.path().join("out");
    let o = noisescope(&[
        "slurm",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--set",
        "run.steps=12",
        "--max-parallel",
        "2",
        "--cpus-per-task",
        "1",
        "--partition",
        "debug",
        "--time",
        "0:10:00",
    ]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("sbatch ") && text.contains("noisescope collect"),
        "{text}"
    );
    let script = std::fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-3%2",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --partition=debug",
        "#SBATCH --time=0:10:00",
        "--threads 1",
        "--shard \"${SLURM_ARRAY_TASK_ID}/4\"",
    ] {
        assert!(script.contains(line), "{line}\n{script}");
    }
    // The experiment is fixed in the folder, overrides included.
    let fixed = std::fs::read_to_string(out.join("sweep.toml")).unwrap();
    assert!(fixed.contains("steps = 12"), "{fixed}");
    // Fewer tasks than units: each runs several.
    let o = noisescope(&[
        "slurm",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--set",
        "run.steps=12",
        "--tasks",
        "3",
    ]);
    ok(&o);
    let script = std::fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    assert!(
        script.contains("--array=0-2\n") && script.contains("/3\""),
        "{script}"
    );
    // Before any unit ran, the experiment may still be changed; after, not.
    ok(&noisescope(&[
        "slurm",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--set",
        "run.steps=13",
    ]));
    let fixed = std::fs::read_to_string(out.join("sweep.toml")).unwrap();
    assert!(fixed.contains("steps = 13"), "{fixed}");
    ok(&sweep(
        &cfg,
        &out,
        &["--set", "run.steps=13", "--shard", "0/4"],
    ));
    let e = failure(&noisescope(&[
        "slurm",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--set",
        "run.steps=12",
    ]));
    assert!(e.contains("other settings"), "{e}");
    let e = failure(&noisescope(&[
        "slurm",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&tmp.path().join("o2")),
        "--time",
        "1 day",
    ]));
    assert!(e.contains("--time"), "{e}");
}

/// `--devices 0` on wgpu (lavapipe in CI): the children take their device from the list, and
/// the combined summary names it. Without a Vulkan/Metal/DX12 adapter the test says so and
/// passes, unless NOISESCOPE_REQUIRE_WGPU is set.
#[test]
fn devices_run_one_shard_per_wgpu_device() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, SWEEP).unwrap();
    let out = tmp.path().join("out");
    let o = noisescope(&[
        "--quiet",
        "--backend",
        "wgpu",
        "sweep",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--set",
        "values=[4]",
        "--set",
        "run.steps=6",
        "--devices",
        "0",
    ]);
    if !o.status.success() {
        let log = std::fs::read_to_string(out.join("logs/shard-0-of-1.log")).unwrap_or_default();
        assert!(
            std::env::var_os("NOISESCOPE_REQUIRE_WGPU").is_none(),
            "wgpu run failed: {}\n{log}",
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("NOT RUN: --devices needs a GPU adapter: {log}");
        return;
    }
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["units"]["finished"], 2, "{summary}");
    assert!(
        summary["device"].as_str().unwrap().starts_with("wgpu 0"),
        "{summary}"
    );
    let unit = read_json(&out.join("lr-a/model.widths.1=4/summary.json"));
    let command = unit["provenance"]["command"].as_str().unwrap();
    assert!(
        command.contains("--device 0") && command.contains("--shard 0/1"),
        "{command}"
    );
}

/// `slurm escape --seeds`: one array over the seeds' units (a campaign). The array script is
/// plain bash, so its tasks run here one after another with SLURM_ARRAY_TASK_ID set; then
/// `collect` combines the seeds.
#[test]
fn a_campaign_of_seeds_as_one_array() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("campaign");
    let o = noisescope(&[
        "slurm",
        "escape",
        "--config",
        "configs/wangwu/escape-synthetic.toml",
        "--out",
        s(&root),
        "--seeds",
        "0,1",
        "--steps",
        "20",
        "--cpus-per-task",
        "1",
        "--set",
        "dynamics=[\"gd\", \"sgd\"]",
        "--set",
        "phase1.steps=30",
        "--set",
        "run.probes.every=10",
        "--set",
        "run.probes.lanczos_steps=10",
    ]);
    ok(&o);
    let script = root.join("slurm/array.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("#SBATCH --array=0-3\n") && text.contains("seeds=(0 1)"),
        "{text}"
    );
    for seed in [0, 1] {
        let fixed = std::fs::read_to_string(root.join(format!("seed-{seed}/escape.toml"))).unwrap();
        assert!(fixed.contains(&format!("seed = {seed}")), "{fixed}");
    }
    for task in 0..4 {
        let o = Command::new("bash")
            .arg(&script)
            .current_dir(tmp.path())
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "4")
            .output()
            .unwrap();
        ok(&o);
    }
    for seed in [0, 1] {
        for d in ["gd", "sgd", "phase1"] {
            let unit = read_json(&root.join(format!("seed-{seed}/{d}/summary.json")));
            assert_eq!(unit["status"], "completed", "seed {seed}, {d}");
        }
    }
    let o = noisescope(&["collect", s(&root)]);
    ok(&o);
    let summary = read_json(&root.join("summary.json"));
    assert_eq!(summary["seeds"], serde_json::json!([0, 1]));
    assert_eq!(summary["units"]["completed"], 4, "{summary}");
    assert!(root.join("figures/escape-seeds.svg").is_file());
}

/// `slurm theory <experiment>`: one task (the parts of a theory experiment are chains of one
/// simulation, drawn from one stream), its settings checked when the script is written.
#[test]
fn a_theory_experiment_as_one_slurm_task() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("theory");
    let sets = [
        "--set",
        "simulation.chains=20",
        "--set",
        "simulation.burn_in=100",
        "--set",
        "simulation.steps=400",
        "--set",
        "lrs=[0.1, 0.5]",
    ];
    let mut args = vec!["slurm", "theory", "lr-sweep", "--out", s(&out)];
    args.extend(sets);
    ok(&noisescope(&args));
    let script = out.join("slurm/array.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("#SBATCH --array=0-0\n") && text.contains("theory lr-sweep --set"),
        "{text}"
    );
    let o = Command::new("bash")
        .arg(&script)
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "1")
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(
        read_json(&out.join("summary.json"))["experiment"],
        "lr-sweep"
    );
    let e = failure(&noisescope(&["slurm", "theory", "--out", s(&out)]));
    assert!(e.contains("name the experiment"), "{e}");
    let e = failure(&noisescope(&[
        "slurm",
        "theory",
        "lr-sweep",
        "--out",
        s(&tmp.path().join("t2")),
        "--set",
        "lrz=[1]",
    ]));
    assert!(e.contains("lrz"), "{e}");
    let e = failure(&noisescope(&["slurm", "sweep", "--out", s(&out)]));
    assert!(e.contains("--config"), "{e}");
}
