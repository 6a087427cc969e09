//! `noisescope train`, `escape` and `probe` as a user runs them: run directories, bit-identical
//! resume, divergence, config errors, the toy escape experiment and probes on checkpoints.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{failure, noisescope, noisescope_with, ok, sweep};

fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Metric lines without their wall-clock fields.
fn numbers(dir: &Path) -> Vec<Value> {
    metrics(dir)
        .into_iter()
        .map(|mut m| {
            let o = m.as_object_mut().unwrap();
            o.remove("time_s");
            o.remove("probe_time_s");
            m
        })
        .collect()
}

/// The quickstart config made small: a 784–16–10 MLP on 200 images, 100 steps.
fn small(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "model.widths=[784, 16, 10]",
        "data.train=200",
        "data.test=100",
        "steps=100",
        "log_every=10",
        "checkpoint_every=0",
        "probes.every=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn train(out: &Path, sets: &[String], more: &[&str]) -> Output {
    train_with(out, sets, more, &[])
}

/// [`train`] with these environment variables set.
fn train_with(out: &Path, sets: &[String], more: &[&str], env: &[(&str, &str)]) -> Output {
    let out = out.to_str().unwrap();
    let mut args = vec![
        "--quiet",
        "train",
        "--config",
        "configs/quickstart.toml",
        "--out",
        out,
    ];
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    args.extend(more);
    noisescope_with(&args, env)
}

#[test]
fn a_run_stopped_and_resumed_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, until, extra) in [
        ("sgd", "50", vec!["noise.dynamic=\"sgd\""]),
        // The low-rank covariance is refreshed every 7 steps: step 50 falls between refreshes,
        // so the cached eigenpairs must come back from the checkpoint; momentum's buffer too.
        (
            "lowrank",
            "50",
            vec![
                "noise.dynamic=\"lowrank-5\"",
                "noise.refresh=7",
                "optimizer.momentum=0.9",
                "optimizer.lr=0.02",
            ],
        ),
        // A warm-started Lanczos stopped by its tolerance, stopped at 45, between metric
        // lines: the line at 50 counts the Hessian-vector products of the refreshes at 42 and
        // 49 (the first from the checkpoint's tally).
        (
            "hessian",
            "45",
            vec![
                "noise.dynamic=\"hessian-3\"",
                "noise.refresh=7",
                "noise.eigensolver={method=\"lanczos\", steps=20, tol=1e-2, warm_start=true}",
                "optimizer.lr=0.02",
            ],
        ),
    ] {
        let sets = small(&extra);
        let whole = tmp.path().join(format!("{name}-whole"));
        ok(&train(&whole, &sets, &[]));
        let split = tmp.path().join(format!("{name}-split"));
        ok(&train(&split, &sets, &["--until", until]));
        let summary: Value =
            serde_json::from_slice(&std::fs::read(split.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["status"], "stopped");
        assert_eq!(summary["steps_done"].to_string(), until);
        ok(&noisescope(&[
            "--quiet",
            "train",
            "--resume",
            split.to_str().unwrap(),
        ]));
        let (a, b) = (numbers(&whole), numbers(&split));
        assert_eq!(a.len(), 11, "steps 0, 10, …, 100");
        assert_eq!(a, b, "{name}: resumed metrics differ");
        // Only the Hessian dynamics count their eigensolver's products: every line after
        // step 0 covers one or two refreshes (every 7 steps) of k = 3 to 20 products each.
        for line in &a[1..] {
            let hvps = line.get("refresh_hvps").and_then(Value::as_u64);
            if name == "hessian" {
                assert!(hvps.is_some_and(|h| (3..=40).contains(&h)), "{line}");
            } else {
                assert_eq!(hvps, None, "{line}");
            }
        }
        if name == "hessian" {
            // A checkpoint from before the count was kept, between lines: the line after it
            // leaves the count out rather than undercount it; the later lines have it again.
            let old = tmp.path().join("hessian-old-checkpoint");
            ok(&train(&old, &sets, &["--until", until]));
            let state = old.join("checkpoints/step-0000045/state.json");
            let mut v: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
            assert!(v["run"]["hvps_since_line"].as_u64().is_some_and(|h| h > 0));
            v["run"].as_object_mut().unwrap().remove("hvps_since_line");
            std::fs::write(&state, serde_json::to_vec(&v).unwrap()).unwrap();
            ok(&noisescope(&[
                "--quiet",
                "train",
                "--resume",
                old.to_str().unwrap(),
            ]));
            let c = numbers(&old);
            for (x, y) in a.iter().zip(&c) {
                let mut x = x.clone();
                if x["step"] == 50 {
                    x.as_object_mut().unwrap().remove("refresh_hvps");
                }
                assert_eq!(&x, y);
            }
            assert_eq!(c.len(), a.len());
        }
        let th =
            |d: &Path| std::fs::read(d.join("checkpoints/step-0000100/model.safetensors")).unwrap();
        assert_eq!(th(&whole), th(&split), "{name}: final θ differs");
    }
}

/// The allocator settings the binary makes at start (glibc keeps freed memory) change where
/// bytes live, not what is computed: a convyu run with glibc's defaults (any GLIBC_TUNABLES
/// leaves them alone) writes the same metrics and θ bit for bit.
#[test]
fn the_allocator_settings_change_no_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = small(&[
        "model={ model = \"convyu\" }",
        "steps=20",
        "log_every=5",
        "checkpoint_every=20",
    ]);
    let ours = tmp.path().join("ours");
    ok(&train(&ours, &sets, &[]));
    let glibc = tmp.path().join("glibc");
    ok(&train_with(&glibc, &sets, &[], &[("GLIBC_TUNABLES", "")]));
    assert_eq!(numbers(&ours), numbers(&glibc));
    let th =
        |d: &Path| std::fs::read(d.join("checkpoints/step-0000020/model.safetensors")).unwrap();
    assert_eq!(th(&ours), th(&glibc));
}

/// `--threads` and `--blas` reach the run's summary, the two matrix engines agree to rounding,
/// and a CBLAS that cannot be loaded is an error that names it.
#[test]
fn thread_count_and_matrix_engine_are_chosen_recorded_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = small(&[]);
    let device = |d: &Path| -> String {
        let s: Value =
            serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        s["device"].as_str().unwrap().to_string()
    };
    let loss = |d: &Path| metrics(d).last().unwrap()["train_loss"].as_f64().unwrap();
    let mm = tmp.path().join("mm");
    ok(&train(&mm, &sets, &["--threads", "1", "--blas", "none"]));
    assert_eq!(device(&mm), "ndarray (CPU, 1 thread, matrixmultiply)");
    let auto = tmp.path().join("auto");
    ok(&train(&auto, &sets, &["--threads", "2"]));
    assert!(
        device(&auto).starts_with("ndarray (CPU, 2 threads, "),
        "{}",
        device(&auto)
    );
    // Another engine rounds differently: 100 SGD steps later the loss agrees to rounding.
    let (a, b) = (loss(&mm), loss(&auto));
    assert!((a - b).abs() <= 1e-4 * a.abs(), "{a} against {b}");
    // matrixmultiply's own variable sets the count when --threads is absent.
    let env = tmp.path().join("env");
    ok(&train_with(
        &env,
        &sets,
        &["--blas", "none"],
        &[("MATMUL_NUM_THREADS", "1")],
    ));
    assert_eq!(device(&env), "ndarray (CPU, 1 thread, matrixmultiply)");
    let o = noisescope(&["--blas", "/nonexistent/libcblas.so", "data", "list"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/libcblas.so") && !err.contains("panicked"),
        "{err}"
    );
    let o = train(&tmp.path().join("zero"), &sets, &["--threads", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--threads"));
}

#[test]
fn divergence_names_the_step_and_keeps_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nan");
    let sets = small(&[
        "optimizer.lr=50",
        "model.loss={kind=\"mse\"}",
        "noise.dynamic=\"gd\"",
        "log_every=1",
        "checkpoint_every=1",
    ]);
    let err = failure(&train(&out, &sets, &[]));
    assert!(err.contains("diverged") && err.contains("step "), "{err}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "diverged");
    let step = summary["steps_done"].as_u64().unwrap();
    assert!(err.contains(&format!("step {step}")), "{err}");
    // Every metric line written before the failure is still there, and the latest checkpoint
    // is the step before, whose loss was finite.
    let lines = metrics(&out);
    assert_eq!(lines.len() as u64, step + 1);
    assert!(
        lines[step as usize - 1]["train_loss"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    let latest = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), format!("step-{:07}", step - 1));
}

#[test]
fn config_errors_name_the_key_and_runs_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let err = failure(&train(&out, &small(&["optimizer.lrr=0.1"]), &[]));
    assert!(err.contains("lrr"), "{err}");
    let err = failure(&train(&out, &small(&["noise.dynamic=\"lowrank-x\""]), &[]));
    assert!(err.contains("lowrank-x"), "{err}");
    let err = failure(&train(&out, &small(&["data.name=\"no-such-set\""]), &[]));
    assert!(err.contains("no-such-set"), "{err}");
    let run = tmp.path().join("run");
    ok(&train(&run, &small(&["steps=5"]), &[]));
    let err = failure(&train(&run, &small(&["steps=5"]), &[]));
    assert!(err.contains("already holds a run"), "{err}");
}

#[test]
fn toy_escape_reports_success_rates_and_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("toy");
    let o = noisescope(&[
        "--quiet",
        "escape",
        "--config",
        "configs/zhu2019/toy2d.toml",
        "--out",
        out.to_str().unwrap(),
        "--repeats",
        "3",
        "--steps",
        "60",
        "--dynamics",
        "gd,hessian-top1",
    ]);
    ok(&o);
    let s: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for d in ["gd", "hessian-top1"] {
        let rate = s["dynamics"][d]["success_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rate), "{d}: {rate}");
        assert_eq!(s["dynamics"][d]["repeats"], 3);
    }
    // GD without noise stays in the sharp minimum.
    assert_eq!(s["dynamics"]["gd"]["success_rate"], 0.0);
    assert_eq!(
        metrics(&out.join("gd")).len(),
        61,
        "the first repetition logs every step"
    );
    for f in ["figures/trajectories.svg", "figures/success.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("hessian-top1"),
            "{f}"
        );
        std::fs::remove_file(out.join(f)).unwrap();
    }
    // `plot` redraws them from the files the experiment wrote.
    ok(&noisescope(&["plot", out.to_str().unwrap()]));
    assert!(out.join("figures/trajectories.svg").exists());
    assert!(out.join("figures/success.svg").exists());
    let err = failure(&noisescope(&["plot", tmp.path().to_str().unwrap()]));
    assert!(err.contains("neither a run"), "{err}");
}

#[test]
fn probes_on_a_checkpoint_match_the_online_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let sets = small(&[
        "steps=20",
        "probes.every=20",
        "probes.list=[\"spectrum\", \"escape\", \"sharpness\"]",
        "probes.trace_h={method=\"exact\"}",
        "probes.sharpness.samples=20",
        "model.widths=[784, 4, 10]",
    ]);
    ok(&train(&run, &sets, &[]));
    let o = noisescope(&[
        "--quiet",
        "probe",
        "--run",
        run.to_str().unwrap(),
        "--probes",
        "spectrum,escape,sharpness,noise,alignment,density",
        "--set",
        "probes.frobenius={method=\"exact\"}",
    ]);
    ok(&o);
    let p: Value =
        serde_json::from_slice(&std::fs::read(run.join("probes-step-0000020.json")).unwrap())
            .unwrap();
    let lines = metrics(&run);
    let online = &lines.last().unwrap()["probes"];
    for key in [
        "lambda_max",
        "trace_h_sigma",
        "trace_h",
        "trace_sigma",
        "sharpness",
    ] {
        let (a, b) = (
            p["probes"][key].as_f64().unwrap(),
            online[key].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= 1e-9 * b.abs(), "{key}: {a} vs {b}");
    }
    for key in [
        "alignment_mu",
        "alignment_top",
        "alignment_random",
        "sigma_top",
        "density",
    ] {
        assert!(!p["probes"][key].is_null(), "{key}");
    }
    assert!(run.join("figures/spectrum-step-0000020.svg").exists());
    assert!(run.join("figures/density-step-0000020.svg").exists());
    // A second probe of the step keeps the first one's record.
    ok(&noisescope(&[
        "--quiet",
        "probe",
        "--run",
        run.to_str().unwrap(),
        "--probes",
        "spectrum",
    ]));
    let q: Value =
        serde_json::from_slice(&std::fs::read(run.join("probes-step-0000020.json")).unwrap())
            .unwrap();
    assert!(q["probes"]["alignment_mu"].is_null());
    assert_eq!(q["probes"]["lambda_max"], p["probes"]["lambda_max"]);
    assert_eq!(q["earlier"].as_array().unwrap().len(), 1);
    assert_eq!(q["earlier"][0]["probes"], p["probes"]);
}

/// SPEC §5.2's config runs end to end with every dynamic on a few bundled images (the full run
/// is `noisescope escape --config configs/zhu2019/fashionmnist-escape.toml`).
#[test]
fn fashion_mnist_escape_smoke() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fm");
    let sets = [
        "run.data.name=\"fashion-mnist-small\"",
        "run.data.train=60",
        "run.data.random_labels=20",
        "run.data.test=100",
        "run.log_every=2",
        "run.probes.every=0",
        "run.noise.refresh=2",
        "run.noise.eigensolver={method=\"lanczos\", steps=30}",
    ];
    let mut args = vec![
        "--quiet",
        "escape",
        "--config",
        "configs/zhu2019/fashionmnist-escape.toml",
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "3",
        "--phase1-steps",
        "2",
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    ok(&noisescope(&args));
    let s: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let names = [
        "gd",
        "sgd",
        "iso-const",
        "iso-dynamic",
        "diag",
        "lowrank-20",
        "hessian-20",
        "hessian-top1",
        "ggn",
    ];
    for d in names {
        let acc = s["dynamics"][d]["final"]["test_acc"].as_f64();
        assert!(
            acc.is_some_and(|a| (0.0..=1.0).contains(&a)),
            "{d}: {acc:?}"
        );
        assert!(out.join(d).join("checkpoints/latest").exists(), "{d}");
    }
    assert!(out.join("figures/escape.svg").exists());
}

/// A campaign as scripts/zhu2019-campaign.sh grows one: per seed, a chosen subset of the
/// dynamics run to an early step with --until, then on to the end; `plot` on the root combines
/// the seed folders into a table of mean ± s.e. and a figure.
#[test]
fn escape_campaign_grows_breadth_first_and_combines_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("campaign");
    let run = |seed: u64, extra: &[&str]| {
        let out = root.join(format!("seed-{seed}"));
        let seed_set = format!("run.seed={seed}");
        let mut args = vec![
            "--quiet",
            "escape",
            "--config",
            "configs/zhu2019/fashionmnist-escape.toml",
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "4",
            "--phase1-steps",
            "2",
            "--dynamics",
            "gd,ggn",
            "--set",
            &seed_set,
        ];
        for s in [
            "run.data.name=\"fashion-mnist-small\"",
            "run.data.train=40",
            "run.data.random_labels=10",
            "run.data.test=50",
            "run.log_every=2",
            "run.checkpoint_every=2",
            "run.probes.every=2",
            "run.probes.list=[\"sharpness\"]",
            "run.probes.sharpness.samples=8",
        ] {
            args.extend(["--set", s]);
        }
        args.extend(extra);
        noisescope(&args)
    };
    for seed in [0, 1] {
        ok(&run(seed, &["--until", "2"]));
    }
    let unit = root.join("seed-0/ggn");
    let s: Value =
        serde_json::from_slice(&std::fs::read(unit.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "stopped");
    assert_eq!(metrics(&unit).last().unwrap()["step"], 2);
    // One checkpoint kept (the config keeps 1).
    let kept = std::fs::read_dir(unit.join("checkpoints"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("step-")
        })
        .count();
    assert_eq!(kept, 1);
    for seed in [0, 1] {
        ok(&run(seed, &[]));
    }
    let s: Value =
        serde_json::from_slice(&std::fs::read(root.join("seed-1/summary.json")).unwrap()).unwrap();
    assert_eq!(s["dynamics"]["ggn"]["status"], "completed");
    assert_eq!(s["dynamics"]["ggn"]["step"], 4);
    assert!(s["dynamics"].get("sgd").is_none(), "sgd was not run");
    // A dynamic outside the experiment's list is refused, by name.
    let err = failure(&run(0, &["--dynamics", "hessian-7"]));
    assert!(err.contains("hessian-7"), "{err}");
    let o = noisescope(&["plot", root.to_str().unwrap()]);
    ok(&o);
    let table = std::fs::read_to_string(root.join("table.md")).unwrap();
    assert!(table.starts_with("Units completed: 4 of 18"), "{table}");
    assert!(table.contains("| `ggn` | 4 (2) |"), "{table}");
    assert!(table.contains("| `sgd` | not started |"), "{table}");
    let c: Value =
        serde_json::from_slice(&std::fs::read(root.join("summary.json")).unwrap()).unwrap();
    assert_eq!(c["seeds"], serde_json::json!([0, 1]));
    assert!(c["dynamics"]["gd"]["test_acc"]["se"].as_f64().is_some());
    let svg = std::fs::read_to_string(root.join("figures/escape-seeds.svg")).unwrap();
    assert!(svg.contains("ggn") && svg.contains("phase 1"));
}

/// scripts/zhu2019-campaign.sh's queue (`--every`, `--cores`): three seeds on two cores, round by
/// round and breadth first, reach the bits of one uninterrupted run per seed; a STOP file starts
/// no round; a seed whose round fails loses its later rounds while the others go on, and the
/// script fails. (Linux only: the script pins its processes with taskset.)
#[cfg(target_os = "linux")]
#[test]
fn campaign_script_runs_its_rounds_breadth_first() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_noisescope");
    let small = [
        "--steps",
        "4",
        "--phase1-steps",
        "2",
        "--dynamics",
        "gd,sgd",
        "--set",
        "run.data.name=\"fashion-mnist-small\"",
        "--set",
        "run.data.train=40",
        "--set",
        "run.data.random_labels=10",
        "--set",
        "run.data.test=50",
        "--set",
        "run.log_every=1",
        "--set",
        "run.checkpoint_every=1",
        "--set",
        "run.probes.every=2",
        "--set",
        "run.probes.list=[\"sharpness\"]",
        "--set",
        "run.probes.sharpness.samples=8",
    ];
    let script = |args: &[&str]| {
        let mut c = std::process::Command::new("bash");
        c.arg("scripts/zhu2019-campaign.sh")
            .args(args)
            .current_dir(common::repo())
            .env("NOISESCOPE_DATA", common::repo().join("datasets"));
        // The script fixes threads, engine and backend itself: a caller's environment that
        // would change them must not change the bits compared below.
        c.env("NOISESCOPE_THREADS", "2")
            .env("MATMUL_NUM_THREADS", "2")
            .env("NOISESCOPE_BACKEND", "wgpu")
            .env("NOISESCOPE_BLAS", "auto")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT");
        c.output().expect("bash runs")
    };
    // Two cores where the machine lets this process use two (CI), else one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let cores_s = cores.to_string();
    let queued = tmp.path().join("queued");
    let queued_s = queued.to_str().unwrap();
    let mut args = vec![
        "--until", "4", "--every", "2", "--cores", &cores_s, "--bin", exe, "--out", queued_s, "0",
        "1", "2", "--",
    ];
    args.extend(small);
    let o = script(&args);
    ok(&o);
    let log = String::from_utf8_lossy(&o.stdout);
    let starts: Vec<&str> = log.lines().filter(|l| l.contains(" on core ")).collect();
    assert_eq!(starts.len(), 6, "{log}");
    // Breadth first: the third start is seed 2's first round, before any seed's second.
    assert!(
        starts[2].contains("seed 2 on core ") && starts[2].contains("to step 2 "),
        "{log}"
    );
    let used: std::collections::BTreeSet<&str> = starts
        .iter()
        .filter_map(|l| l.split(" on core ").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(used.len(), cores, "{log}");
    for seed in 0..3 {
        let at = |step: u32| log.find(&format!("seed {seed} reached step {step}\n"));
        assert!(at(2).is_some() && at(2) < at(4), "seed {seed}: {log}");
        // Round by round on one core equals one uninterrupted run on one thread.
        let direct = tmp.path().join(format!("direct-{seed}"));
        let seed_set = format!("run.seed={seed}");
        let mut args = vec![
            "--quiet",
            "--threads",
            "1",
            "--blas",
            "none",
            "escape",
            "--config",
            "configs/zhu2019/fashionmnist-escape.toml",
            "--out",
            direct.to_str().unwrap(),
            "--set",
            &seed_set,
        ];
        args.extend(small);
        ok(&noisescope(&args));
        for d in ["gd", "sgd"] {
            let q = numbers(&queued.join(format!("seed-{seed}")).join(d));
            assert_eq!(q.last().unwrap()["step"], 4, "seed {seed} {d}");
            assert_eq!(q, numbers(&direct.join(d)), "seed {seed} {d}");
        }
    }
    // A STOP file lets nothing start; the units stay where they were.
    std::fs::write(queued.join("STOP"), "").unwrap();
    let mut args = vec![
        "--until", "8", "--every", "2", "--bin", exe, "--out", queued_s, "0", "1", "2", "--",
    ];
    args.extend(small);
    let o = script(&args);
    ok(&o);
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(log.contains("STOP exists: 12 rounds not started"), "{log}");
    assert_eq!(
        metrics(&queued.join("seed-0/gd")).last().unwrap()["step"],
        4
    );
    // Seed 1's binary fails: its later rounds are dropped, seed 0 goes on to the end.
    let wrapper = tmp.path().join("fails-for-seed-1.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env bash\nfor a in \"$@\"; do [[ \"$a\" != run.seed=1 ]] || exit 3; done\n\
             exec '{exe}' \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let failing = tmp.path().join("failing");
    let mut args = vec![
        "--until",
        "4",
        "--every",
        "2",
        "--cores",
        &cores_s,
        "--bin",
        wrapper.to_str().unwrap(),
        "--out",
        failing.to_str().unwrap(),
        "0",
        "1",
        "--",
    ];
    args.extend(small);
    let o = script(&args);
    let err = failure(&o);
    assert!(
        err.contains("seed 1 failed on its way to step 2 (exit 3)"),
        "{err}"
    );
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(log.contains("seed 0 reached step 4\n"), "{log}");
    assert_eq!(log.matches("seed 1 on core ").count(), 1, "{log}");
    assert_eq!(
        metrics(&failing.join("seed-0/sgd")).last().unwrap()["step"],
        4
    );
    // Bad arguments are named, with the usage error's exit code (with --bin and --out, so that
    // a check that stopped working runs nothing real).
    let nowhere = tmp.path().join("nowhere");
    let fenced = ["--bin", "false", "--out", nowhere.to_str().unwrap()];
    for (args, says) in [
        (&["--every", "2", "0"][..], "--every needs --until"),
        (&["--cores", "0", "0"][..], "--cores must be a whole number"),
        (
            &["--until", "08", "0"][..],
            "--until must be a whole number",
        ),
        (&["0", "0"][..], "seed 0 is given twice"),
        (
            &["0", "--", "--restart"][..],
            "'--restart' may not follow --",
        ),
    ] {
        let o = script(&[&fenced[..], args].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

/// The same run on wgpu (lavapipe in CI) and on ndarray: host-drawn random streams make the
/// runs the same up to f32 rounding, probes included. Without a Vulkan/Metal/DX12 adapter the
/// test says so and passes, unless NOISESCOPE_REQUIRE_WGPU is set.
#[test]
fn wgpu_and_ndarray_runs_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = small(&[
        "steps=6",
        "log_every=6",
        "probes.every=6",
        "probes.list=[\"spectrum\", \"escape\"]",
        "probes.samples=30",
        "probes.trace_h={method=\"hutchinson\", probes=4}",
        "probes.lanczos_steps=10",
        "noise.dynamic=\"lowrank-3\"",
        "noise.refresh=3",
    ]);
    let mut finals = Vec::new();
    for backend in ["ndarray", "wgpu"] {
        let out = tmp.path().join(backend);
        let o = {
            let mut args = vec![
                "--quiet",
                "--backend",
                backend,
                "train",
                "--config",
                "configs/quickstart.toml",
            ];
            let out = out.to_str().unwrap().to_string();
            let mut owned: Vec<String> = vec!["--out".into(), out];
            for s in &sets {
                owned.extend(["--set".into(), s.clone()]);
            }
            args.extend(owned.iter().map(String::as_str));
            noisescope(&args)
        };
        if backend == "wgpu" && !o.status.success() {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                std::env::var_os("NOISESCOPE_REQUIRE_WGPU").is_none(),
                "wgpu run failed: {err}"
            );
            eprintln!("NOT RUN: the wgpu run needs a GPU adapter: {err}");
            return;
        }
        ok(&o);
        finals.push(metrics(&out).last().unwrap().clone());
    }
    for key in ["train_loss", "test_loss"] {
        let (a, b) = (
            finals[0][key].as_f64().unwrap(),
            finals[1][key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-3 * a.abs(),
            "{key}: ndarray {a}, wgpu {b}"
        );
    }
    // f64 on wgpu gave wrong numbers in burn 0.22: refused with a message, never run.
    let out = tmp.path().join("wgpu-f64");
    let err = failure(&train(
        &out,
        &small(&["precision=\"f64\"", "steps=2"]),
        &["--backend", "wgpu"],
    ));
    assert!(err.contains("f64") && err.contains("wgpu"), "{err}");
    for key in ["lambda_max", "trace_h_sigma", "trace_sigma"] {
        let (a, b) = (
            finals[0]["probes"][key].as_f64().unwrap(),
            finals[1]["probes"][key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-2 * a.abs(),
            "{key}: ndarray {a}, wgpu {b}"
        );
    }
}

/// A sweep over the hidden width (an array element) in two series, one of which diverges:
/// the diverged runs are recorded and the sweep finishes, with the per-step loss variance in
/// its table and its summary figure.
#[test]
fn sweep_series_with_a_diverging_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(
        &cfg,
        r#"
key = "model.widths.1"
values = [4, 8]
summary = ["step_loss.variance"]
log_x = true

[[series]]
name = "calm"
set = { "optimizer.lr" = 0.05 }

[[series]]
name = "wild"
set = { "optimizer.lr" = 1e6, "model.loss" = { kind = "mse" } }

[run]
steps = 30
log_every = 10

[run.data]
kind = "images"
name = "fashion-mnist-small"
train = 200
test = 100

[run.model]
model = "mlp"
widths = [784, 16, 10]
activation = "tanh"
loss = { kind = "cross-entropy" }

[run.noise]
dynamic = "sgd"
batch = 20
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = sweep(&cfg, &out, &[]);
    ok(&o);
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for w in [4, 8] {
        let calm = &s["runs"][format!("calm/model.widths.1={w}")];
        assert_eq!(calm["status"], "completed", "{calm}");
        assert!(calm["summary"]["step_loss.variance"].as_f64().unwrap() > 0.0);
        assert_eq!(calm["dim"], 784 * w + w + w * 10 + 10);
        let wild = &s["runs"][format!("wild/model.widths.1={w}")];
        assert_eq!(wild["status"], "diverged", "{wild}");
    }
    assert!(out.join("figures/summary.svg").is_file());
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("diverged") && table.contains("step_loss.variance"),
        "{table}"
    );
    // `plot` redraws both figures from the files.
    std::fs::remove_file(out.join("figures/summary.svg")).unwrap();
    ok(&noisescope(&["plot", out.to_str().unwrap()]));
    assert!(out.join("figures/summary.svg").is_file());
}

/// Wang and Wu's escape-direction protocol on the synthetic problem, shortened: phase 2's
/// learning rate is 2.2/λ_max(θ*), every dynamic starts from the same perturbed θ*, and the
/// `direction` probe logs the sharp share of θ_t − θ_0, which GD's escape concentrates on.
#[test]
fn escape_direction_on_the_synthetic_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("esc");
    let o = noisescope(&[
        "--quiet",
        "escape",
        "--config",
        "configs/wangwu/escape-synthetic.toml",
        "--out",
        out.to_str().unwrap(),
        "--phase1-steps",
        "1000",
        "--steps",
        "80",
    ]);
    ok(&o);
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let lambda = s["lambda_max_star"].as_f64().unwrap();
    assert!(lambda > 0.0, "{s}");
    let cfg: toml::Table = std::fs::read_to_string(out.join("gd/config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let lr = cfg["optimizer"]["lr"].as_float().unwrap();
    assert!((lr * lambda - 2.2).abs() < 1e-9, "lr {lr}, λ_max {lambda}");
    let gd = metrics(&out.join("gd"));
    let sharp: Vec<f64> = gd
        .iter()
        .filter_map(|m| m["probes"]["direction_sharp_fraction"].as_f64())
        .collect();
    assert_eq!(sharp.len(), 41, "a direction probe every 2 steps, 0..=80");
    // GD's growing displacement lies along the sharp directions at some point of its escape.
    assert!(sharp.iter().cloned().fold(0.0, f64::max) > 0.5, "{sharp:?}");
    assert!(out.join("figures/direction.svg").is_file());
    // A run with the direction probe measures from its first θ, which a resumed run takes
    // again; resuming the finished run is a no-op that says so and changes no file.
    let before = std::fs::read(out.join("gd/summary.json")).unwrap();
    let o = noisescope(&["train", "--resume", out.join("gd").to_str().unwrap()]);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing to do"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(out.join("gd/summary.json")).unwrap(), before);
}
