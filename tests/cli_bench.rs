//! `noisescope bench`: rows in the PyTorch anchor's layout, their checks, and the ratio table
//! that `scripts/bench_ratio.py` joins from the two JSON files.

mod common;

use std::process::Command;

use common::{failure, noisescope, ok, repo};
use serde_json::{Value, json};

fn rows<'a>(doc: &'a Value, workload: &str) -> Vec<&'a Value> {
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["workload"] == workload)
        .collect()
}

/// The quick HVP and GLD workloads on ndarray: every row passes its check, carries the anchor's
/// params_str byte for byte, and the ratio script joins it with a PyTorch row.
#[test]
fn quick_rows_check_themselves_and_join_with_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.json");
    let o = noisescope(&[
        "bench",
        "--quick",
        "--only",
        "W2,W6",
        "-q",
        "--json",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["meta"]["quick"], true);
    let w2 = rows(&doc, "W2");
    // Per model: the f64 finite-difference row, then three rows at each of N = 128 and 512.
    assert_eq!(w2.len(), 2 * (1 + 2 * 3), "{w2:#?}");
    let fd = w2
        .iter()
        .find(|r| r["params_str"] == "(a) tanh 784-16-10 mse N=32 eps=1e-06")
        .expect("the anchor's fd_check params_str");
    assert_eq!(fd["checks"]["pass"], true);
    assert!(fd["checks"]["f64_rop_vs_fd"].as_f64().unwrap() < 1e-6);
    let hvp = w2
        .iter()
        .find(|r| r["name"] == "hvp R-op" && r["params_str"] == "(b) relu 784-512-10 ce N=512")
        .expect("an HVP row of model b");
    assert_eq!(hvp["status"], "ok");
    assert!(hvp["median_ms"].as_f64().unwrap() > 0.0);
    assert!(hvp["checks"]["rel_err_vs_cpu_f64"].as_f64().unwrap() < 1e-3);
    assert_eq!(hvp["params"]["D"], 407_050);
    let w6 = rows(&doc, "W6");
    assert_eq!(w6.len(), 4);
    let gld = w6
        .iter()
        .find(|r| r["name"] == "gld_leading step (grad+lowrank noise)")
        .unwrap();
    // Without W3 in the run the factor is the anchor's synthetic one, its trace 3 Σλ.
    assert_eq!(gld["extra"]["factor_source"], "synthetic");
    assert!(gld["checks"]["factor_trace_rel_err"].as_f64().unwrap() < 1e-6);

    // A PyTorch file with the same problems at twice (HVP) and half (GLD) our medians.
    let (ours_hvp, ours_gld) = (
        hvp["median_ms"].as_f64().unwrap(),
        gld["median_ms"].as_f64().unwrap(),
    );
    let torch = json!({"meta": {"quick": true, "torch": "test"}, "rows": [
        {"workload": "W2", "name": "hvp autograd retained-graph", "params_str": "(b) relu 784-512-10 ce N=512",
         "status": "ok", "median_ms": 2.0 * ours_hvp},
        {"workload": "W2", "name": "hvp torch.func jvp(grad)", "params_str": "(b) relu 784-512-10 ce N=512",
         "status": "ok", "median_ms": 4.0 * ours_hvp},
        {"workload": "W6", "name": "gld_leading step (grad+lowrank noise)", "params_str": gld["params_str"],
         "status": "ok", "median_ms": 0.5 * ours_gld},
    ]});
    let torch_path = dir.path().join("torch.json");
    std::fs::write(&torch_path, torch.to_string()).unwrap();
    let md = dir.path().join("ratios.md");
    let o = Command::new("python3")
        .arg(repo().join("scripts/bench_ratio.py"))
        .args([&out, &torch_path])
        .arg("--markdown")
        .arg(&md)
        .output()
        .expect("python3 runs");
    ok(&o);
    let table = std::fs::read_to_string(&md).unwrap();
    let line = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{table}"))
            .to_string()
    };
    // The fastest PyTorch method is the one compared with: ratio 0.5, target 1 met.
    let l = line("| W2 | (b) relu 784-512-10 ce N=512 | hvp R-op |");
    assert!(
        l.contains("hvp autograd retained-graph") && l.contains("| 0.5 |") && l.contains("| yes |"),
        "{l}"
    );
    let l = line("gld_leading step (grad+lowrank noise) | ");
    assert!(l.contains("| 2.00 |") && l.contains("| **no** |"), "{l}");
    // A row PyTorch has no counterpart for gets no ratio.
    let l = line("| gradient (reference) |");
    assert!(l.contains("| – |"), "{l}");
}

#[test]
fn bad_bench_arguments_are_named() {
    let err = failure(&noisescope(&["bench", "--quick", "--only", "W2,W9"]));
    assert!(err.contains("W9") && err.contains("W1, W2"), "{err}");
    let err = failure(&noisescope(&["bench", "--quick", "out.json"]));
    assert!(err.contains("--json FILE"), "{err}");
}

/// On wgpu (lavapipe in CI, where burn 0.22.1's own `sum_dim` over 407 050 columns is wrong)
/// the chunked reductions every probe uses are right, and the bench says when the backend's
/// one-shot reduction is not. Without an adapter the bench fails cleanly, unless
/// NOISESCOPE_REQUIRE_WGPU asks for one.
#[test]
fn wgpu_reductions_over_parameter_length_axes_are_right() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hw.json");
    let o = noisescope(&[
        "--backend",
        "wgpu",
        "bench",
        "--quick",
        "--only",
        "HW",
        "-q",
        "--json",
        out.to_str().unwrap(),
    ]);
    if !o.status.success() && std::env::var_os("NOISESCOPE_REQUIRE_WGPU").is_none() {
        let err = failure(&o);
        assert!(err.contains("wgpu"), "{err}");
        return;
    }
    ok(&o);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let reductions: Vec<&Value> = rows(&doc, "HW")
        .into_iter()
        .filter(|r| r["name"] == "row reduction over D (chunked)")
        .collect();
    assert_eq!(reductions.len(), 2);
    for r in reductions {
        assert_eq!(r["status"], "ok", "{r:#}");
        assert!(r["checks"]["max_abs_err_over_sqrt_D"].as_f64().unwrap() < 1e-3);
        let raw = r["checks"]["backend_sum_dim_err_over_sqrt_D"]
            .as_f64()
            .unwrap();
        // The note is there exactly when the backend's own reduction is off.
        assert_eq!(r.get("table_note").is_some(), raw >= 1e-3, "{r:#}");
    }
}

/// The CNN rows (Zhu et al.'s convyu on 1200 images): a GD step whose loss stays finite and an
/// HVP whose uᵀHv and vᵀHu agree, both timed, with no PyTorch row to join.
#[test]
fn cnn_rows_time_a_convyu_step_and_a_symmetric_hvp() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnn.json");
    ok(&noisescope(&[
        "bench",
        "--quick",
        "--only",
        "CNN",
        "-q",
        "--json",
        out.to_str().unwrap(),
    ]));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let cnn = rows(&doc, "CNN");
    assert_eq!(cnn.len(), 2, "{cnn:#?}");
    for r in &cnn {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["params_str"], "convyu N=1200 ce");
        assert!(r["median_ms"].as_f64().unwrap() > 0.0);
    }
    let step = cnn
        .iter()
        .find(|r| r["name"] == "gd step (full batch)")
        .unwrap();
    let (first, after) = (
        step["checks"]["loss_first"].as_f64().unwrap(),
        step["checks"]["loss_after"].as_f64().unwrap(),
    );
    // Random labels on random images: the loss starts near ln 10 and GD lowers it.
    assert!(
        (first - 10f64.ln()).abs() < 0.2 && after < first,
        "{first} → {after}"
    );
    let hvp = cnn.iter().find(|r| r["name"] == "hvp R-op").unwrap();
    let uhv = hvp["checks"]["uHv"].as_f64().unwrap();
    assert!(uhv.is_finite() && uhv != 0.0);
    assert!(hvp["checks"]["asymmetry"].as_f64().unwrap() < 1e-3);
}
