//! Repetitions over seeds (issue 22): a sweep with `seeds` runs every series and value once
//! per seed and reports mean ± s.e. per series and value; `noisescope plot` combines `seed-N`
//! folders of an escape experiment with the `direction` probe into a table by step.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{failure, noisescope, ok, read_json, sweep};

/// 2 series × 2 widths × 2 seeds of a small MLP on the bundled Fashion-MNIST subset.
const SWEEP: &str = r#"
key = "model.widths.1"
values = [4, 8]
summary = ["step_loss.mean"]
seeds = [3, 4]

series = [
    { name = "lr-a", set = { "optimizer.lr" = 0.05 } },
    { name = "lr-b", set = { "optimizer.lr" = 0.1 } },
]

[run]
steps = 12
log_every = 6
data = { kind = "images", name = "fashion-mnist-small", train = 100, test = 50 }
model = { model = "mlp", widths = [784, 8, 10], activation = "tanh", loss = { kind = "cross-entropy" } }
noise = { dynamic = "sgd", batch = 20 }
"#;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_sweep_over_seeds_gives_mean_and_standard_error_per_series_and_value() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, SWEEP).unwrap();
    let out = tmp.path().join("out");
    let o = sweep(&cfg, &out, &[]);
    ok(&o);
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("mean ± s.e. over seeds [3, 4]"),
        "{printed}"
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["units"]["finished"], 8, "{summary}");
    // Each run is its own seed: the seed is in its config, and the two seeds differ.
    let loss = |name: &str| {
        summary["runs"][name]["summary"]["step_loss.mean"]
            .as_f64()
            .unwrap()
    };
    let (a, b) = (
        loss("lr-b/model.widths.1=8/seed=3"),
        loss("lr-b/model.widths.1=8/seed=4"),
    );
    assert_ne!(a, b);
    let cfg4 =
        std::fs::read_to_string(out.join("lr-b/model.widths.1=8/seed=4/config.toml")).unwrap();
    assert!(cfg4.contains("seed = 4"), "{cfg4}");
    // The row for (lr-b, 8): the mean of the two and their standard error |a − b| / 2.
    let rows = summary["across_seeds"]["step_loss.mean"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), 4);
    let row = rows
        .iter()
        .find(|r| r["series"] == "lr-b" && r["value"] == 8.0)
        .unwrap();
    assert_eq!(row["n"], 2);
    assert!((row["mean"].as_f64().unwrap() - (a + b) / 2.0).abs() < 1e-12);
    assert!((row["se"].as_f64().unwrap() - (a - b).abs() / 2.0).abs() < 1e-9);
    assert!(out.join("figures/summary.svg").is_file());

    // A completed unit whose checkpoints were deleted is still a result: re-running the sweep
    // keeps it, its metrics and the combined summary.
    let unit = out.join("lr-b/model.widths.1=8/seed=4");
    std::fs::remove_dir_all(unit.join("checkpoints")).unwrap();
    let metrics = std::fs::read(unit.join("metrics.jsonl")).unwrap();
    ok(&sweep(&cfg, &out, &[]));
    assert_eq!(std::fs::read(unit.join("metrics.jsonl")).unwrap(), metrics);
    let again = read_json(&out.join("summary.json"));
    assert_eq!(again["units"]["finished"], 8, "{again}");
    assert_eq!(
        again["runs"]["lr-b/model.widths.1=8/seed=4"]["summary"]["step_loss.mean"],
        summary["runs"]["lr-b/model.widths.1=8/seed=4"]["summary"]["step_loss.mean"]
    );

    // A series that also sets the seed is refused, naming it.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        SWEEP.replace("set = { \"optimizer.lr\" = 0.1 }", "set = { seed = 9 }"),
    )
    .unwrap();
    let e = failure(&noisescope(&[
        "sweep",
        "--config",
        s(&bad),
        "--out",
        s(&tmp.path().join("bad")),
    ]));
    assert!(e.contains("series `lr-b` sets `seed`"), "{e}");
}

#[test]
fn seed_folders_of_a_direction_experiment_combine_into_a_table_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("escape");
    for seed in ["0", "1"] {
        ok(&noisescope(&[
            "--quiet",
            "--threads",
            "1",
            "escape",
            "--config",
            "configs/wangwu/escape-synthetic.toml",
            "--out",
            s(&root.join(format!("seed-{seed}"))),
            "--steps",
            "10",
            "--phase1-steps",
            "40",
            "--set",
            &format!("run.seed={seed}"),
            "--set",
            "run.probes.lanczos_steps=10",
        ]));
    }
    ok(&noisescope(&["plot", s(&root)]));
    let summary = read_json(&root.join("summary.json"));
    assert_eq!(summary["seeds"], serde_json::json!([0, 1]), "{summary}");
    // Rows at the table's steps that both seeds logged (2 … 10 of 10).
    let gd: &Vec<Value> = summary["dynamics"]["gd"].as_array().unwrap();
    let steps: Vec<u64> = gd.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [2, 4, 6, 8, 10]);
    for r in gd {
        assert_eq!(r["seeds"], 2);
        let share = r["direction_sharp_fraction"]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share), "{r}");
        assert!(r["direction_norm_sq"]["mean"].as_f64().unwrap() > 0.0);
    }
    let table = std::fs::read_to_string(root.join("table.md")).unwrap();
    assert!(
        table.contains("top-k share") && table.contains("| `sgd` | 10 (2) |"),
        "{table}"
    );
    assert!(root.join("figures/escape-seeds.svg").is_file());
}
