//! What a run gives the tools researchers already use: TensorBoard event files (read back by
//! our reader and, where `NOISESCOPE_PYTHON` names a Python with `tensorboard`, by
//! TensorBoard's own), a tidy CSV, the provenance record and PNG figures.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::{noisescope, ok, repo};

// The binary's event-file module, for its reader.
#[allow(dead_code)]
#[path = "../crates/runs/src/tensorboard.rs"]
mod tensorboard;

/// Runs `train` on the quickstart config into `out` with these `--set` overrides and `more`
/// arguments, and checks it succeeded.
fn quickstart(out: &Path, sets: &[&str], more: &[&str]) {
    let mut args = vec![
        "--quiet",
        "train",
        "--config",
        "configs/quickstart.toml",
        "--out",
        out.to_str().unwrap(),
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    args.extend(more);
    ok(&noisescope(&args));
}

/// A small quickstart run (784–16–10 MLP, 200 images, 40 steps, a probe every 20 steps)
/// stopped at step 20 and resumed, as runs of days are.
fn stopped_and_resumed_run(out: &Path) {
    let sets = [
        "model.widths=[784, 16, 10]",
        "data.train=200",
        "data.test=100",
        "steps=40",
        "log_every=10",
        "checkpoint_every=10",
        "probes.every=20",
        "probes.list=[\"spectrum\"]",
        "probes.lanczos_steps=10",
    ];
    quickstart(out, &sets, &["--until", "20"]);
    ok(&noisescope(&[
        "--quiet",
        "train",
        "--resume",
        out.to_str().unwrap(),
    ]));
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The numbers of a metric line under their '/'-joined paths, as the event file tags them.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, f64)>) {
    let join = |k: &str| match prefix {
        "" => k.to_string(),
        p => format!("{p}/{k}"),
    };
    match v {
        Value::Number(n) => out.push((prefix.to_string(), n.as_f64().unwrap())),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !(prefix.is_empty() && *k == "step"))
            .for_each(|(k, v)| flatten(&join(k), v, out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&join(&i.to_string()), v, out)),
        _ => {}
    }
}

#[test]
fn a_resumed_run_has_tensorboard_events_csv_provenance_and_png_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    stopped_and_resumed_run(&run);
    let lines: Vec<Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "steps 0, 10, …, 40");

    // TensorBoard: one file, its header, then one event per line holding every number of
    // the line at the line's step, as f32; the provenance text at the end.
    let files: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let events = tensorboard::read_events(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let scalar_events: Vec<_> = events.iter().filter(|e| !e.scalars.is_empty()).collect();
    assert_eq!(scalar_events.len(), lines.len());
    for (e, line) in scalar_events.iter().zip(&lines) {
        assert_eq!(e.step, line["step"].as_i64().unwrap());
        let mut want = Vec::new();
        flatten("", line, &mut want);
        let want: Vec<(String, f32)> = want.into_iter().map(|(k, v)| (k, v as f32)).collect();
        assert_eq!(e.scalars, want, "step {}", e.step);
    }
    assert!(
        want_tag(&lines, "probes/lambda_max"),
        "a probe value is among the scalars"
    );
    let text = &events.last().unwrap().texts;
    assert_eq!(text.len(), 1);
    assert_eq!(text[0].0, "provenance");
    assert!(text[0].1.contains("\"commit\""), "{}", text[0].1);

    // TensorBoard's own reader, where a Python with it is named.
    match std::env::var("NOISESCOPE_PYTHON") {
        Ok(py) => {
            let o = Command::new(py)
                .arg(repo().join("scripts/tensorboard_check.py"))
                .arg(&run)
                .output()
                .expect("NOISESCOPE_PYTHON runs");
            ok(&o);
            assert!(String::from_utf8_lossy(&o.stdout).contains("every one equals"));
        }
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must check the event files with TensorBoard: set NOISESCOPE_PYTHON")
        }
        Err(_) => eprintln!("NOISESCOPE_PYTHON unset: TensorBoard's own reader not run"),
    }

    // Provenance: this process's record, with the first process (stopped at 20) before it.
    let s = json(&run.join("summary.json"));
    let p = &s["provenance"];
    let commit = p["noisescope"]["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(
        p["command"].as_str().unwrap().contains("train --resume"),
        "{p}"
    );
    assert_eq!(p["device"], s["device"]);
    assert!(p["threads"].as_u64().unwrap() >= 1);
    assert!(p["wall_s"].as_f64().unwrap() > 0.0);
    let earlier = p["earlier"].as_array().unwrap();
    assert_eq!(earlier.len(), 1, "{p}");
    assert!(
        earlier[0]["command"]
            .as_str()
            .unwrap()
            .contains("--until 20")
    );
    assert!(earlier[0]["started"].as_str().unwrap() <= p["started"].as_str().unwrap());

    // CSV: a row per line, a column per number; every value reads back exactly.
    ok(&noisescope(&["export", run.to_str().unwrap(), "--csv"]));
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(&header[..2], ["run", "step"]);
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), lines.len());
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(row[0], ".");
        let mut want = Vec::new();
        flatten("", line, &mut want);
        for (k, v) in want {
            let col = header
                .iter()
                .position(|h| *h == k.replace('/', "."))
                .unwrap();
            assert_eq!(row[col].parse::<f64>().unwrap(), v, "{k}");
        }
    }

    // Figures: a PNG beside every SVG, at 300 dpi (3.125 pixels per SVG pixel).
    ok(&noisescope(&["plot", run.to_str().unwrap()]));
    let svgs: Vec<_> = std::fs::read_dir(run.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    assert!(!svgs.is_empty());
    for svg in svgs {
        let png = std::fs::read(svg.with_extension("png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let text = std::fs::read_to_string(&svg).unwrap();
        let svg_width: f64 = text
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            width,
            (svg_width * 300.0 / 96.0).ceil() as u32,
            "{}",
            svg.display()
        );
    }
}

fn want_tag(lines: &[Value], tag: &str) -> bool {
    lines.iter().any(|l| {
        let mut v = Vec::new();
        flatten("", l, &mut v);
        v.iter().any(|(k, _)| k == tag)
    })
}

#[test]
fn export_finds_every_run_of_an_experiment_and_rebuilds_event_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sweep");
    for name in ["a", "b"] {
        let sets = [
            "model.widths=[784, 8, 10]",
            "data.train=100",
            "data.test=50",
            "steps=10",
            "log_every=5",
            "probes.every=0",
        ];
        quickstart(&root.join(name), &sets, &[]);
    }
    // An event file deleted (a run from before noisescope wrote them) comes back equal.
    let events = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("events.out.")
            })
    };
    let a = root.join("a");
    let before = tensorboard::read_events(&std::fs::read(events(&a).unwrap()).unwrap()).unwrap();
    std::fs::remove_file(events(&a).unwrap()).unwrap();
    let out = root.join("all.csv");
    ok(&noisescope(&[
        "export",
        root.to_str().unwrap(),
        "--csv",
        "--tensorboard",
        "--out",
        out.to_str().unwrap(),
    ]));
    let after = tensorboard::read_events(&std::fs::read(events(&a).unwrap()).unwrap()).unwrap();
    let scalars = |e: &[tensorboard::ReadEvent]| {
        e.iter()
            .map(|e| (e.step, e.scalars.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(scalars(&after), scalars(&before));
    let csv = std::fs::read_to_string(&out).unwrap();
    let runs: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|r| r.split(',').next().unwrap())
        .collect();
    assert_eq!(runs, ["a", "a", "a", "b", "b", "b"]);
    // Nothing to export is an error naming the folder.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = noisescope(&["export", empty.to_str().unwrap(), "--csv"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run here"));
}

/// The numpy cross-check (`scripts/crosscheck_numpy.py`, the CI part of the PyTorch
/// interop): for a small MLP run and a small convyu run, the loss, the full-batch gradient,
/// Tr Σ₁ and Σ₁'s top eigenvalues recomputed in f64 with numpy from the checkpoint and the
/// rebuilt data agree with noisescope's within the script's f32 tolerances (1e-5 on loss and
/// gradient, 1e-4 on Σ₁); the script exits 1 otherwise.
#[test]
fn numpy_recomputes_a_checkpoints_loss_gradient_and_noise() {
    let py = match std::env::var("NOISESCOPE_PYTHON") {
        Ok(py) => py,
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the numpy cross-check: set NOISESCOPE_PYTHON")
        }
        Err(_) => {
            eprintln!("NOISESCOPE_PYTHON unset: the numpy cross-check not run");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        "data.train=120",
        "data.test=50",
        "steps=20",
        "log_every=10",
        "checkpoint_every=20",
        "probes.every=0",
        "probes.samples=60",
    ];
    for (name, model) in [
        ("mlp", "model.widths=[784, 16, 10]"),
        ("convyu", "model={ model = \"convyu\" }"),
    ] {
        let run = tmp.path().join(name);
        let sets: Vec<&str> = [model].into_iter().chain(base).collect();
        quickstart(&run, &sets, &[]);
        let o = Command::new(&py)
            .arg(repo().join("scripts/crosscheck_numpy.py"))
            .arg(&run)
            .args(["--noisescope", env!("CARGO_BIN_EXE_noisescope")])
            .arg("--data-dir")
            .arg(repo().join("datasets"))
            .current_dir(repo())
            .env_remove("NOISESCOPE_DATA")
            .output()
            .expect("NOISESCOPE_PYTHON runs");
        eprintln!("{name}:\n{}", String::from_utf8_lossy(&o.stdout));
        ok(&o);
    }
}
