//! `noisescope export DIR`: a run's metric lines, or those of every run under an experiment's
//! folder, as one tidy CSV for pandas or R; or each run's TensorBoard event file rebuilt from
//! its `metrics.jsonl`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use noisescope_runs::rundir::{RunDir, write_atomic};
use serde_json::Value;

use crate::args::ExportArgs;

pub fn run(a: &ExportArgs) -> Result<()> {
    let runs = runs_under(&a.dir)?;
    if runs.is_empty() {
        bail!(
            "{}: no run here (no folder under it holds a config.toml and metrics.jsonl)",
            a.dir.display()
        );
    }
    if a.tensorboard {
        for r in &runs {
            let d = RunDir::open(&a.dir.join(r))?;
            d.rebuild_events()?;
        }
        eprintln!(
            "rebuilt the TensorBoard event files of {} run(s)",
            runs.len()
        );
    }
    if a.csv {
        let text = csv(&a.dir, &runs)?;
        match a.out.as_deref() {
            Some(p) if p == Path::new("-") => print!("{text}"),
            out => {
                let p = out.map_or_else(|| a.dir.join("metrics.csv"), Path::to_path_buf);
                write_atomic(&p, text.as_bytes())?;
                eprintln!("{} run(s) → {}", runs.len(), p.display());
            }
        }
    }
    Ok(())
}

/// The run folders under `dir` (itself included), relative to it, in path order: folders
/// holding a `config.toml` and a `metrics.jsonl`. Checkpoints are not descended into.
pub fn runs_under(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let here = root.join(rel);
        if here.join("config.toml").is_file() && here.join("metrics.jsonl").is_file() {
            out.push(rel.to_path_buf());
        }
        let entries =
            std::fs::read_dir(&here).with_context(|| format!("reading {}", here.display()))?;
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| rel.join(e.file_name()))
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                !matches!(name.as_deref(), Some("checkpoints" | "figures"))
            })
            .collect();
        subs.sort();
        for s in subs {
            walk(root, &s, out)?;
        }
        Ok(())
    }
    if !dir.is_dir() {
        bail!("{}: not a folder", dir.display());
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), &mut out)?;
    Ok(out)
}

/// A metric line as columns: (name, value), `None` for a value that was not finite.
type Columns = Vec<(String, Option<f64>)>;

/// One metric line's columns: every number under its JSON path joined with `.`
/// (`probes.lambda_max`, `probes.hessian_top.0`), and `null` (not finite) as an empty cell.
fn columns(line: &Value) -> Columns {
    noisescope_runs::tensorboard::leaves(line, '.')
        .into_iter()
        .filter_map(|(name, v)| match v {
            Value::Number(n) => Some((name, n.as_f64())),
            Value::Null => Some((name, None)),
            Value::Bool(b) => Some((name, Some(f64::from(u8::from(*b))))),
            _ => None,
        })
        .collect()
}

/// The CSV of the runs' metric lines: `run` (the folder relative to `root`, `.` for `root`
/// itself), `step`, then every metric any line has, in name order; floats are written in
/// their shortest form that reads back to the same f64.
fn csv(root: &Path, runs: &[PathBuf]) -> Result<String> {
    let mut rows: Vec<(String, Columns)> = Vec::new();
    for r in runs {
        let name = if r.as_os_str().is_empty() {
            ".".to_string()
        } else {
            r.to_string_lossy().replace('\\', "/")
        };
        for line in RunDir::open(&root.join(r))?.metrics()? {
            rows.push((name.clone(), columns(&line)));
        }
    }
    let names: BTreeSet<&str> = rows
        .iter()
        .flat_map(|(_, c)| c.iter().map(|(k, _)| k.as_str()))
        .filter(|k| *k != "step")
        .collect();
    let header: Vec<&str> = ["run", "step"]
        .into_iter()
        .chain(names.iter().copied())
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for (run, cols) in &rows {
        let get = |k: &str| cols.iter().find(|(n, _)| n == k).and_then(|(_, v)| *v);
        let mut record = vec![run.clone()];
        record.extend(
            header[1..]
                .iter()
                .map(|k| get(k).map_or(String::new(), fmt)),
        );
        w.write_record(&record)?;
    }
    let bytes = w.into_inner().context("writing the CSV")?;
    Ok(String::from_utf8(bytes).expect("the CSV is built from UTF-8 strings"))
}

/// A number as written: integers without a fraction, others in Rust's shortest round-trip
/// form (which pandas reads back to the same double).
fn fmt(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_flattens_to_dotted_columns() {
        let c = columns(&json!({
            "step": 10, "loss": 0.5, "probes": {"top": [3.0, 1.0], "gone": null}, "final": true,
            "name": "x",
        }));
        let c: Vec<(&str, Option<f64>)> = c.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            c,
            [
                ("final", Some(1.0)),
                ("loss", Some(0.5)),
                ("probes.gone", None),
                ("probes.top.0", Some(3.0)),
                ("probes.top.1", Some(1.0)),
                ("step", Some(10.0)),
            ]
        );
    }

    #[test]
    fn numbers_read_back_exactly() {
        for x in [0.1, 1.0 / 3.0, 1e-300, 2.5e20, 7.0, -3.0] {
            assert_eq!(fmt(x).parse::<f64>().unwrap(), x);
        }
        assert_eq!(fmt(7.0), "7");
    }

    #[test]
    fn runs_are_found_below_an_experiment_and_written_as_one_csv() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for (run, lines) in [
            ("b", vec![json!({"step": 0, "loss": 2.0})]),
            (
                "a/x",
                vec![
                    json!({"step": 0, "loss": 1.0}),
                    json!({"step": 5, "loss": 0.5, "acc": 0.9}),
                ],
            ),
        ] {
            let d = root.join(run);
            std::fs::create_dir_all(d.join("checkpoints/step-0000000")).unwrap();
            std::fs::write(d.join("config.toml"), "").unwrap();
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(d.join("metrics.jsonl"), text).unwrap();
        }
        let runs = runs_under(root).unwrap();
        assert_eq!(runs, [PathBuf::from("a/x"), PathBuf::from("b")]);
        assert_eq!(
            csv(root, &runs).unwrap(),
            "run,step,acc,loss\na/x,0,,1\na/x,5,0.9,0.5\nb,0,,2\n"
        );
        assert!(runs_under(&root.join("missing")).is_err());
    }
}
