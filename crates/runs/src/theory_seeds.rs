//! One theory experiment run on several seeds, in `seed-N/` folders under one root
//! (`noisescope theory NAME --set simulation.seed=N --out ROOT/seed-N`), combined: every number
//! of the seeds' summaries that differs between them becomes its mean and standard error over
//! the seeds, and every relative error (`rel_err`, `paired_rel_err…`) and measured value gets a
//! row of the combined table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// The seed folders of a root that hold one theory experiment's summary each, by seed.
pub fn seed_folders(dir: &Path) -> Vec<(u64, PathBuf)> {
    crate::units::seed_dirs(dir, |p| {
        std::fs::read_to_string(p.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["experiment"].is_string())
    })
}

/// The seeds' summaries merged: numbers that differ between seeds, and every tabulated value
/// ([`tabulated`]), become `{"mean", "se", "values"}` (`se` null for one finite value; seeds
/// without a value left out of the mean), numbers that agree stay as they are, objects and
/// lists are merged entry by entry (lists of one length only), anything else keeps the first
/// seed's value.
pub fn merge(values: &[&Value]) -> Value {
    merge_key("", values)
}

/// [`merge`] of the values under `key`: a tabulated key ([`tabulated`]) becomes
/// `{"mean", "se", "values"}` even where the seeds agree, and a number where some seeds have
/// none (null: diverged, unsettled) keeps those seeds as `null` in `values`.
fn merge_key(key: &str, values: &[&Value]) -> Value {
    let first = values[0];
    if values.iter().any(|v| v.is_number()) && values.iter().all(|v| v.is_number() || v.is_null()) {
        let xs: Vec<Option<f64>> = values.iter().map(|v| v.as_f64()).collect();
        if !tabulated(key) && xs.iter().all(|x| *x == xs[0]) {
            return first.clone();
        }
        let finite: Vec<f64> = xs
            .iter()
            .flatten()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        let (mean, se) = if finite.is_empty() {
            (None, None)
        } else {
            let (m, se) = noisescope_probe::stats::mean_and_se(&finite);
            (Some(m), se)
        };
        return json!({"mean": mean, "se": se, "values": xs});
    }
    match first {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, v0) in o {
                let vs: Vec<&Value> = values
                    .iter()
                    .map(|v| v.get(k).unwrap_or(&Value::Null))
                    .collect();
                let merged = if vs.iter().all(|v| !v.is_null()) || vs.iter().any(|v| v.is_number())
                {
                    merge_key(k, &vs)
                } else {
                    v0.clone()
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            let arrays: Option<Vec<&Vec<Value>>> = values.iter().map(|v| v.as_array()).collect();
            match arrays {
                Some(arrays) if arrays.iter().all(|b| b.len() == a.len()) => Value::Array(
                    (0..a.len())
                        .map(|i| merge_key(key, &arrays.iter().map(|b| &b[i]).collect::<Vec<_>>()))
                        .collect(),
                ),
                _ => first.clone(),
            }
        }
        _ => first.clone(),
    }
}

/// Keys that name a row of a theory table (a case, a quantity, a setting).
const LABELS: [&str; 8] = [
    "name", "quantity", "batch", "alpha", "lr", "gamma", "momentum", "panel",
];

/// Keys whose values get a row of the combined table.
fn tabulated(key: &str) -> bool {
    key == "measured" || key.contains("rel_err")
}

/// One row of the combined table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row is: the case, quantity and settings named along its path.
    pub label: String,
    /// The value's key (`measured`, `rel_err`, …).
    pub key: String,
    /// Each seed's value (none where it is not a number).
    pub values: Vec<Option<f64>>,
    /// Mean over the seeds' finite values.
    pub mean: Option<f64>,
    /// Its standard error (none with one value).
    pub se: Option<f64>,
}

/// The rows of the combined table, in the summaries' order.
pub fn rows(merged: &Value) -> Vec<Row> {
    fn walk(v: &Value, label: &str, out: &mut Vec<Row>) {
        match v {
            Value::Object(o) => {
                // This object's own labels, after its parents'.
                let own: Vec<String> = LABELS
                    .iter()
                    .filter_map(|k| {
                        let x = o.get(*k)?;
                        let text = match x {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some(if *k == "name" || *k == "quantity" {
                            text
                        } else {
                            format!("{k} {text}")
                        })
                    })
                    .collect();
                // A setting the parent's label already names (a panel's λ on each row) once.
                let own: Vec<String> = own
                    .into_iter()
                    .filter(|p| !label.split(", ").any(|q| q == p))
                    .collect();
                let label = [label.to_string(), own.join(", ")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ");
                for (k, x) in o {
                    if tabulated(k) && x.get("values").is_some() {
                        let values = x["values"]
                            .as_array()
                            .map(|a| a.iter().map(Value::as_f64).collect())
                            .unwrap_or_default();
                        out.push(Row {
                            label: label.clone(),
                            key: k.clone(),
                            values,
                            mean: x["mean"].as_f64(),
                            se: x["se"].as_f64(),
                        });
                    } else if x.is_object() || x.is_array() {
                        walk(x, &label, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, label, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(merged, "", &mut out);
    out
}

/// Writes `summary.json` (the merged summaries, with `seeds`) and `table.md` under `dir` from
/// its seed folders, and returns the table.
pub fn report(dir: &Path, seeds: &[(u64, PathBuf)]) -> Result<String> {
    let summaries: Vec<Value> = seeds
        .iter()
        .map(|(_, p)| {
            let f = p.join("summary.json");
            serde_json::from_slice(
                &std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?,
            )
            .with_context(|| format!("{}: not JSON", f.display()))
        })
        .collect::<Result<_>>()?;
    let names: Vec<&str> = summaries
        .iter()
        .filter_map(|s| s["experiment"].as_str())
        .collect();
    if names.iter().any(|n| *n != names[0]) {
        bail!(
            "{}: the seed folders hold different experiments ({})",
            dir.display(),
            names.join(", ")
        );
    }
    let refs: Vec<&Value> = summaries.iter().collect();
    let mut merged = merge(&refs);
    merged["seeds"] = json!(seeds.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    let seed_list = seeds
        .iter()
        .map(|(s, _)| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut table = format!(
        "{} on seeds {seed_list}: mean ± s.e. over the seeds (rel. errors in %).\n\n| row | value | seeds {seed_list} | mean ± s.e. |\n|---|---|---|---|\n",
        names[0]
    );
    for Row {
        label,
        key,
        values,
        mean,
        se,
    } in rows(&merged)
    {
        let pct = key.contains("rel_err");
        let f = |x: f64| {
            if pct {
                format!("{:+.2}", 100.0 * x)
            } else {
                format!("{x:.4e}")
            }
        };
        let vals = values
            .iter()
            .map(|v| v.map_or("–".into(), f))
            .collect::<Vec<_>>()
            .join(", ");
        let m = match (mean, se) {
            (Some(m), Some(se)) => format!(
                "{} ± {}",
                f(m),
                if pct {
                    format!("{:.2}", 100.0 * se)
                } else {
                    format!("{se:.1e}")
                }
            ),
            (Some(m), None) => f(m),
            _ => "–".into(),
        };
        table.push_str(&format!("| {label} | {key} | {vals} | {m} |\n"));
    }
    crate::rundir::write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&merged)?.as_bytes(),
    )?;
    crate::rundir::write_atomic(&dir.join("table.md"), table.as_bytes())?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_differ_become_mean_and_standard_error() {
        let a =
            json!({"experiment": "x", "cases": [{"name": "c1", "rel_err": 0.01, "theory": 1.0}]});
        let b =
            json!({"experiment": "x", "cases": [{"name": "c1", "rel_err": 0.03, "theory": 1.0}]});
        let m = merge(&[&a, &b]);
        assert_eq!(m["cases"][0]["theory"], 1.0);
        assert!((m["cases"][0]["rel_err"]["mean"].as_f64().unwrap() - 0.02).abs() < 1e-12);
        // s.e. of (0.01, 0.03): sd √2·0.01 over √2.
        assert!((m["cases"][0]["rel_err"]["se"].as_f64().unwrap() - 0.01).abs() < 1e-12);
        let r = rows(&m);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].label, "c1");
        assert_eq!(r[0].key, "rel_err");
        assert_eq!(r[0].values, vec![Some(0.01), Some(0.03)]);
    }

    #[test]
    fn a_seed_without_a_value_is_left_out_and_agreeing_values_still_get_a_row() {
        let a = json!({"rows": [{"lr": 0.5, "measured": 2.0, "rel_err": null}]});
        let b = json!({"rows": [{"lr": 0.5, "measured": 2.0, "rel_err": 0.04}]});
        let m = merge(&[&a, &b]);
        assert_eq!(m["rows"][0]["lr"], 0.5);
        assert_eq!(m["rows"][0]["rel_err"]["values"], json!([null, 0.04]));
        assert!((m["rows"][0]["rel_err"]["mean"].as_f64().unwrap() - 0.04).abs() < 1e-12);
        let r = rows(&m);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].key, "measured");
        assert_eq!(r[0].values, vec![Some(2.0), Some(2.0)]);
        assert_eq!(r[0].label, "lr 0.5");
    }

    #[test]
    fn the_report_refuses_different_experiments_and_names_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        for (s, e) in [(1, "label-noise"), (2, "tail-index")] {
            let d = tmp.path().join(format!("seed-{s}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("summary.json"), json!({"experiment": e}).to_string()).unwrap();
        }
        let seeds = seed_folders(tmp.path());
        assert_eq!(seeds.len(), 2);
        let e = report(tmp.path(), &seeds).unwrap_err().to_string();
        assert!(e.contains("different experiments"), "{e}");
    }
}
