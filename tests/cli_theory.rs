//! `noisescope theory` as a user runs it: each experiment on small settings, its closed forms
//! against the simulated chains, and its errors.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{failure, noisescope, ok};

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Runs one experiment into a fresh folder with the given overrides; its summary.
fn theory(experiment: &str, sets: &[&str]) -> (tempfile::TempDir, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut args = vec![
        "--quiet",
        "theory",
        experiment,
        "--out",
        out.to_str().unwrap(),
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = noisescope(&args);
    ok(&o);
    assert!(out.join("table.md").is_file());
    assert!(out.join(format!("figures/{experiment}.svg")).is_file());
    let s = summary(&out);
    assert_eq!(s["experiment"], experiment);
    (tmp, s)
}

/// Thms. 2 and 3 against 300 chains, in light-tailed settings (Kesten index > 10, so the
/// standard errors are honest): every Σ_ii and C_ii within 5 s.e.; at S = 2 the discrete
/// Hessian approximation misses Σ by many s.e.
#[test]
fn label_noise_matches_theorems_2_and_3() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("ln.toml");
    std::fs::write(
        &cfg,
        r#"
label_std = 1.0
[simulation]
chains = 300
burn_in = 500
steps = 3000
seed = 11
[[cases]]
name = "2-d, S = 50"
hessian = [1.0, 0.5]
lr = 1.5
batch = 50
[[cases]]
name = "1-d, S = 2"
hessian = [1.0]
lr = 0.3
batch = 2
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = noisescope(&[
        "--quiet",
        "theory",
        "label-noise",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let s = summary(&out);
    for case in s["cases"].as_array().unwrap() {
        assert_eq!(case["diverged_chains"], 0);
        for e in case["entries"].as_array().unwrap() {
            let (m, se, t) = (
                e["measured"].as_f64().unwrap(),
                e["se"].as_f64().unwrap(),
                e["theory"].as_f64().unwrap(),
            );
            assert!((m - t).abs() < 5.0 * se, "{}: {e}", case["name"]);
        }
    }
    let small = &s["cases"][1]["entries"][0];
    let (m, se) = (
        small["measured"].as_f64().unwrap(),
        small["se"].as_f64().unwrap(),
    );
    let hess = small["hessian_approximation"].as_f64().unwrap();
    assert!((m - hess).abs() > 10.0 * se, "{small}");
    // The table is printed too.
    assert!(String::from_utf8_lossy(&o.stdout).contains("Σ_11"));
}

/// At λ = 1.9, S = 16 Thm. 4 is finite only for γ ∈ (−0.863, −0.084): the optimal weight
/// decay is negative, SGD diverges at γ > 0, and the simulation agrees inside the window.
#[test]
fn weight_decay_optimum_is_negative_at_large_learning_rate() {
    let (_tmp, s) = theory(
        "weight-decay",
        &[
            "simulation.chains=50",
            "simulation.burn_in=500",
            "simulation.steps=1500",
            "panels=[{lr = 1.9, gammas = [-0.9, -0.4, 0.1]}]",
            "lr_panels=[]",
        ],
    );
    let p = &s["panels"][0];
    assert!(p["optimal_gamma"].as_f64().unwrap() < -0.1, "{p}");
    let edges = boundaries(p);
    assert_eq!(edges.len(), 2, "{p}");
    assert!(
        (edges[0] + 0.863).abs() < 0.01 && (edges[1] + 0.085).abs() < 0.01,
        "{edges:?}"
    );
    let inside = &p["rows"][1];
    let (m, se, t) = (
        inside["measured"].as_f64().unwrap(),
        inside["se"].as_f64().unwrap(),
        inside["thm4"].as_f64().unwrap(),
    );
    assert!((m - t).abs() < 5.0 * se, "{inside}");
    assert!(p["rows"][2]["thm4"].is_null(), "γ = 0.1 diverges");
}

/// A weight-decay panel's divergence boundaries.
fn boundaries(panel: &serde_json::Value) -> Vec<f64> {
    panel["divergence_boundaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// Fig. 5's other panel: at fixed γ = −0.125 the loss grows with λ and Thm. 4 diverges past
/// λ ≈ 1.96 (without decay already past 1.775); the simulation agrees below the edge.
#[test]
fn weight_decay_learning_rate_panel() {
    let (_tmp, s) = theory(
        "weight-decay",
        &[
            "simulation.chains=50",
            "simulation.burn_in=500",
            "simulation.steps=1500",
            "panels=[]",
            "lr_panels=[{gamma = -0.125, lrs = [0.5, 1.5, 2.2]}]",
        ],
    );
    let p = &s["panels"][0];
    assert_eq!(p["gamma"].as_f64(), Some(-0.125), "{p}");
    let edges = boundaries(p);
    assert_eq!(edges.len(), 1, "{p}");
    assert!((edges[0] - 1.96).abs() < 0.01, "{edges:?}");
    let rows = p["rows"].as_array().unwrap();
    let thm4: Vec<Option<f64>> = rows.iter().map(|r| r["thm4"].as_f64()).collect();
    assert!(
        thm4[0].unwrap() < thm4[1].unwrap() && thm4[2].is_none(),
        "{thm4:?}"
    );
    for r in &rows[..2] {
        let (m, se, t) = (
            r["measured"].as_f64().unwrap(),
            r["se"].as_f64().unwrap(),
            r["thm4"].as_f64().unwrap(),
        );
        assert!((m - t).abs() < 5.0 * se, "{r}");
    }
}

/// Thm. 6: no fluctuation when over-parameterized (α < 1); under-parameterized, the measured
/// Tr[ÂΣ] is positive and near the closed form.
#[test]
fn high_dim_transition() {
    let (_tmp, s) = theory(
        "high-dim",
        &[
            "dim=10",
            "alphas=[0.5, 4.0]",
            "datasets=2",
            "simulation.chains=16",
            "simulation.burn_in=500",
            "simulation.steps=1000",
            "max_burn_in=3000",
        ],
    );
    let rows = s["rows"].as_array().unwrap();
    assert!(rows[0]["measured"].as_f64().unwrap() < 1e-6, "{}", rows[0]);
    assert_eq!(rows[0]["thm6"].as_f64(), Some(0.0));
    let (m, t) = (
        rows[1]["measured"].as_f64().unwrap(),
        rows[1]["thm6"].as_f64().unwrap(),
    );
    assert!(m > 0.0 && (m - t).abs() < 0.5 * t, "{}", rows[1]);
    // The exact value for the sets: nothing when over-parameterized, near the measured one
    // otherwise (a short run: loose).
    assert_eq!(rows[0]["exact"].as_f64(), Some(0.0));
    let x = rows[1]["exact"].as_f64().unwrap();
    assert!((m - x).abs() < 0.5 * x, "{}", rows[1]);
}

/// The λ sweep finds Thm. 2's stability edge at λ = 1/(0.5 + 1/S) (a = 1, S = 10), and the
/// tail-index experiment measures a finite index next to the exact one.
#[test]
fn lr_sweep_and_tail_index_run() {
    let (tmp, s) = theory(
        "lr-sweep",
        &[
            "lrs=[0.5, 1.6]",
            "simulation.chains=50",
            "simulation.burn_in=200",
            "simulation.steps=1000",
        ],
    );
    let edge = s["thm2_boundary"].as_f64().unwrap();
    assert!((edge - 1.0 / 0.6).abs() < 0.01, "{edge}");
    // `plot` redraws the figure from the data written beside it.
    let out = tmp.path().join("out");
    std::fs::remove_file(out.join("figures/lr-sweep.svg")).unwrap();
    ok(&noisescope(&["plot", out.to_str().unwrap()]));
    assert!(out.join("figures/lr-sweep.svg").is_file());
    let (_tmp2, t) = theory(
        "tail-index",
        &[
            "batches=[{batch = 1, lrs = [0.5]}]",
            "simulation.chains=100",
            "simulation.burn_in=200",
            "simulation.steps=2000",
            "thin=5",
            "tail_fraction=0.01",
        ],
    );
    let row = &t["batches"][0]["rows"][0];
    let (m, k) = (
        row["measured"].as_f64().unwrap(),
        row["kesten"].as_f64().unwrap(),
    );
    assert!((k - 2.904).abs() < 0.01, "{row}");
    assert!(m > 1.0 && m < 6.0, "{row}");
}

#[test]
fn theory_errors_name_the_setting() {
    let err = failure(&noisescope(&[
        "theory",
        "lr-sweep",
        "--set",
        "simulation.chainz=3",
    ]));
    assert!(err.contains("chainz"), "{err}");
    let err = failure(&noisescope(&[
        "theory",
        "high-dim",
        "--config",
        "no/such.toml",
    ]));
    assert!(err.contains("no/such.toml"), "{err}");
    let err = failure(&noisescope(&[
        "theory",
        "label-noise",
        "--set",
        "simulation.precision=\"f16\"",
    ]));
    assert!(err.contains("f16"), "{err}");
}
