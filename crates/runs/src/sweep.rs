//! A sweep's folder (`noisescope sweep`): its config (`sweep.toml`), one unit folder per run
//! (`<series>/<key>=<value>`), each run's config (the base run with the series' overrides and
//! the key's value), and the combined summary built from the unit folders alone, with each
//! summary value's mean and standard error over seeds when the sweep repeats its runs over
//! `seeds` or its series are seeds.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::{self, RunConfig};
use crate::rundir::check_folder_name;
use crate::units::{self, Combined, UnitState};

/// A sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// The swept key (a dotted path into `run`, e.g. `model.width`).
    pub key: String,
    /// Its values.
    pub values: Vec<toml::Value>,
    /// Metrics to plot against step (`train_loss`, `probes.trace_h_sigma`, …); each value of
    /// the key gives one curve per metric.
    #[serde(default)]
    pub plot: Vec<String>,
    /// Plot on a log scale.
    #[serde(default)]
    pub log_y: bool,
    /// Summary values to plot against the key, one curve per series: dotted paths into a
    /// run's `summary.json` (`step_loss.variance`, `late_mean.test_loss`, `final.test_acc`).
    #[serde(default)]
    pub summary: Vec<String>,
    /// The key's axis on a log scale in the summary figure.
    #[serde(default)]
    pub log_x: bool,
    /// Named sets of overrides of the base run; every value of the key runs in each.
    #[serde(default)]
    pub series: Vec<SeriesSpec>,
    /// Seeds to repeat every run with: each series and value runs once per seed, in
    /// `<series>/<key>=<value>/seed=<s>`, and the summary gives each summary value's mean and
    /// standard error over them (no standard error with one seed). Empty: every run uses the
    /// base run's `seed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// The base run.
    pub run: toml::Table,
}

/// A named variant of the base run: `set` maps dotted keys (relative to `run`) to values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// The series' name (a folder name).
    pub name: String,
    /// Dotted keys of the base run and their values.
    #[serde(default)]
    pub set: toml::Table,
}

/// One run of a sweep: its series (if any), the key's value, its seed (when the sweep repeats
/// over `seeds`) and its folder name.
pub struct SweepRun {
    /// Its series, when the sweep has series.
    pub series: Option<String>,
    /// The key's value.
    pub value: toml::Value,
    /// Its seed, when the sweep has `seeds`.
    pub seed: Option<u64>,
    /// Its folder, relative to the sweep's.
    pub name: String,
}

/// The runs of a sweep in order: series by series, value by value, seed by seed. Every series
/// name and value label must be a plain folder name ([`check_folder_name`]).
pub fn runs(sweep: &SweepConfig) -> Result<Vec<SweepRun>> {
    if sweep.values.is_empty() {
        bail!(
            "values: empty, expected at least one value of `{}`",
            sweep.key
        );
    }
    for s in &sweep.series {
        check_folder_name("series name", &s.name)?;
    }
    if !sweep.seeds.is_empty() {
        // Two sources for one run's seed would leave it unclear which one ran.
        if sweep.key == "seed" {
            bail!("seeds: the swept key is `seed` already; drop `seeds` or sweep another key");
        }
        if let Some(s) = sweep.series.iter().find(|s| s.set.contains_key("seed")) {
            bail!(
                "seeds: series `{}` sets `seed` too; with `seeds` the series must not set it",
                s.name
            );
        }
    }
    let series: Vec<Option<&SeriesSpec>> = if sweep.series.is_empty() {
        vec![None]
    } else {
        sweep.series.iter().map(Some).collect()
    };
    let seeds: Vec<Option<u64>> = if sweep.seeds.is_empty() {
        vec![None]
    } else {
        sweep.seeds.iter().copied().map(Some).collect()
    };
    let mut runs = Vec::new();
    for s in series {
        for v in &sweep.values {
            let base = format!("{}={}", sweep.key, value_label(v));
            check_folder_name("sweep value", &base)?;
            let base = match s {
                Some(s) => format!("{}/{base}", s.name),
                None => base,
            };
            for &seed in &seeds {
                runs.push(SweepRun {
                    series: s.map(|s| s.name.clone()),
                    value: v.clone(),
                    seed,
                    name: match seed {
                        Some(seed) => format!("{base}/seed={seed}"),
                        None => base.clone(),
                    },
                });
            }
        }
    }
    // Each run is a unit with its own folder: twice would be two writers of one.
    for (i, r) in runs.iter().enumerate() {
        if runs[..i].iter().any(|q| q.name == r.name) {
            bail!(
                "the sweep has two runs named `{}`: values, seeds and series names must be distinct",
                r.name
            );
        }
    }
    Ok(runs)
}

/// A dotted path into a JSON value.
pub fn lookup<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// The run config of one unit: the base run with its series' overrides, the key's value and
/// its seed.
pub fn unit_config(sweep: &SweepConfig, r: &SweepRun, config: &Path) -> Result<RunConfig> {
    let mut table = sweep.run.clone();
    if let Some(sname) = &r.series {
        let spec = sweep
            .series
            .iter()
            .find(|s| &s.name == sname)
            .expect("runs() names a series of the sweep");
        for (k, v) in &spec.set {
            apply_series_value(&mut table, k, v)
                .with_context(|| format!("series {sname}: key {k}"))?;
        }
    }
    config::set_key(&mut table, &sweep.key, &r.value.to_string())?;
    if let Some(seed) = r.seed {
        config::set_key(&mut table, "seed", &seed.to_string())?;
    }
    config::parse_with_overrides(&toml::to_string(&table)?, config, &[])
        .with_context(|| r.name.clone())
}

/// The keys that name a tagged variant in a config table (serde's `tag`), in the order they
/// are looked for: `data`'s `kind` comes before its dataset `name`.
const VARIANT_TAGS: [&str; 4] = ["kind", "method", "model", "name"];

/// Sets `key` of the base run to a series' value. A table value over an existing table is
/// applied field by field, because TOML reads `set = { optimizer.lr = 0.5 }` (an unquoted
/// dotted key) as `{ optimizer = { lr = 0.5 } }`: replacing the run's whole `optimizer` table
/// would silently reset its momentum, schedule and algorithm to their defaults. A table that
/// names another variant (a different `kind`, `method`, `model` or `name` from the one the
/// base table has) replaces it, as `"optimizer.algorithm" = { name = "adam", … }` means to.
fn apply_series_value(table: &mut toml::Table, key: &str, value: &toml::Value) -> Result<()> {
    if let toml::Value::Table(fields) = value
        && let Some(toml::Value::Table(base)) = table_at(table, key)
    {
        let tag = VARIANT_TAGS.iter().find(|t| base.contains_key(**t));
        let switches = tag.is_some_and(|t| fields.get(*t).is_some_and(|v| Some(v) != base.get(*t)));
        if !switches {
            for (k, v) in fields {
                apply_series_value(table, &format!("{key}.{k}"), v)?;
            }
            return Ok(());
        }
    }
    config::set_key(table, key, &value.to_string())
}

/// The value at a dotted path of tables, if there is one.
fn table_at<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let (first, rest) = key
        .split_once('.')
        .map_or((key, None), |(a, b)| (a, Some(b)));
    let v = table.get(first)?;
    match (rest, v) {
        (None, v) => Some(v),
        (Some(rest), toml::Value::Table(t)) => table_at(t, rest),
        _ => None,
    }
}

/// The combined summary of the sweep in `out`, built from its unit folders alone (so it is
/// the same however many processes ran them), with the units' states in list order.
pub fn combined_summary(out: &Path) -> Result<Combined<SweepConfig>> {
    let sweep: SweepConfig = config::load(&out.join("sweep.toml"), &[])?;
    let mut finals = Map::new();
    let mut states = Vec::new();
    let mut devices: Vec<String> = Vec::new();
    for r in runs(&sweep)? {
        let state = UnitState::of(&out.join(&r.name))?;
        let mut entry = json!({"status": state.status()});
        match &state {
            UnitState::Summarized(summary) => {
                entry = json!({
                    "status": summary["status"], "final": summary["final"], "dim": summary["dim"],
                    "time": summary["time"], "effective_lr": summary["effective_lr"],
                });
                for m in &sweep.summary {
                    entry["summary"][m.as_str()] = lookup(summary, m).clone();
                }
                if let Some(d) = summary["device"].as_str()
                    && !devices.iter().any(|x| x == d)
                {
                    devices.push(d.to_string());
                }
            }
            UnitState::Failed(e) => entry["error"] = json!(e),
            _ => {}
        }
        finals.insert(r.name.clone(), entry);
        states.push((r.name, state));
    }
    let mut summary = json!({
        "key": sweep.key,
        "runs": finals,
        "units": units::tally(states.iter().map(|(n, s)| (n.as_str(), s))),
        "device": devices.join(", "),
    });
    if let Some(a) = across_seeds(&sweep, &summary["runs"])? {
        summary["across_seeds"] = a;
    }
    Ok(Combined {
        config: sweep,
        summary,
        states,
    })
}

/// Whether the sweep's series are repetitions: two or more, each setting `seed` alone.
pub fn seed_series(sweep: &SweepConfig) -> bool {
    sweep.series.len() >= 2
        && sweep
            .series
            .iter()
            .all(|s| s.set.len() == 1 && s.set.contains_key("seed"))
}

/// Each summary value's mean and standard error over seeds at every value of the key: over
/// the `seeds` within each series, or over the series when they are seeds
/// ([`seed_series`]). `{metric: [{"series", "value", "label", "mean", "se", "n"}]}` (`value`
/// the key's value as a number, null if it is none; `label` as in folder names), `series` null
/// when the series are the seeds or there are none; `se` is null with fewer than two finite
/// values; diverged or missing runs are left out and `n` says how many remain. `None` for
/// sweeps without repetitions.
pub fn across_seeds(sweep: &SweepConfig, runs_json: &Value) -> Result<Option<Value>> {
    let over_seeds = !sweep.seeds.is_empty();
    if !(over_seeds || seed_series(sweep)) || sweep.summary.is_empty() {
        return Ok(None);
    }
    let all = runs(sweep)?;
    // The groups of repetitions: (series, value) with `seeds`, else each value.
    let groups: Vec<(Option<&str>, &toml::Value)> = if over_seeds && !sweep.series.is_empty() {
        sweep
            .series
            .iter()
            .flat_map(|s| sweep.values.iter().map(move |v| (Some(s.name.as_str()), v)))
            .collect()
    } else {
        sweep.values.iter().map(|v| (None, v)).collect()
    };
    let mut out = Map::new();
    for m in &sweep.summary {
        let rows: Vec<Value> = groups
            .iter()
            .map(|&(series, v)| {
                let ys: Vec<f64> = all
                    .iter()
                    .filter(|r| {
                        &r.value == v && (series.is_none() || r.series.as_deref() == series)
                    })
                    .filter_map(|r| runs_json[&r.name]["summary"][m].as_f64())
                    .filter(|y| y.is_finite())
                    .collect();
                let (mean, se) = noisescope_probe::stats::mean_and_se(&ys);
                json!({
                    "series": series, "value": key_number(v), "label": value_label(v),
                    "mean": (!ys.is_empty()).then_some(mean), "se": se, "n": ys.len(),
                })
            })
            .collect();
        out.insert(m.clone(), Value::Array(rows));
    }
    Ok(Some(Value::Object(out)))
}

/// A key's value as it names a folder: a string as itself, anything else in TOML syntax.
pub fn value_label(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A key's value as a number for figures, when it is one.
pub fn key_number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(series: &[(&str, &str)]) -> SweepConfig {
        let text = format!(
            "key = \"optimizer.weight_decay\"\nvalues = [0.0, 0.001]\nsummary = [\"late_mean.test_acc\"]\n{}\n[run]\n",
            series
                .iter()
                .map(|(n, set)| format!("[[series]]\nname = \"{n}\"\nset = {{ {set} }}\n"))
                .collect::<String>()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn seed_series_give_mean_and_standard_error_per_value() {
        let s = sweep(&[
            ("seed0", "seed = 0"),
            ("seed1", "seed = 1"),
            ("seed2", "seed = 2"),
        ]);
        let mut runs_json = Map::new();
        let accs = [[0.8, 0.9], [0.82, f64::NAN], [0.84, 0.7]];
        for (r, acc) in runs(&s).unwrap().iter().zip(accs.iter().flatten()) {
            runs_json.insert(
                r.name.clone(),
                json!({"summary": {"late_mean.test_acc": acc}}),
            );
        }
        let a = across_seeds(&s, &Value::Object(runs_json))
            .unwrap()
            .unwrap();
        let rows = a["late_mean.test_acc"].as_array().unwrap();
        assert_eq!(rows[0]["value"], 0.0);
        assert!((rows[0]["mean"].as_f64().unwrap() - 0.82).abs() < 1e-12);
        // s.e. of (0.8, 0.82, 0.84): sd 0.02 over √3.
        assert!((rows[0]["se"].as_f64().unwrap() - 0.02 / 3f64.sqrt()).abs() < 1e-12);
        // The NaN (diverged) run is left out.
        assert_eq!(rows[1]["n"], 2);
        assert!((rows[1]["mean"].as_f64().unwrap() - 0.8).abs() < 1e-12);
        // Series that change more than the seed are not repetitions.
        let other = sweep(&[("a", "seed = 0"), ("b", "seed = 1, optimizer.lr = 0.1")]);
        assert!(across_seeds(&other, &json!({})).unwrap().is_none());
    }

    #[test]
    fn seeds_repeat_every_run_and_give_mean_and_standard_error_per_series() {
        let mut s = sweep(&[
            ("sgd", "optimizer.lr = 0.5"),
            ("adam", "optimizer.lr = 0.01"),
        ]);
        s.seeds = vec![0, 1];
        let all = runs(&s).unwrap();
        let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sgd/optimizer.weight_decay=0.0/seed=0",
                "sgd/optimizer.weight_decay=0.0/seed=1",
                "sgd/optimizer.weight_decay=0.001/seed=0",
                "sgd/optimizer.weight_decay=0.001/seed=1",
                "adam/optimizer.weight_decay=0.0/seed=0",
                "adam/optimizer.weight_decay=0.0/seed=1",
                "adam/optimizer.weight_decay=0.001/seed=0",
                "adam/optimizer.weight_decay=0.001/seed=1",
            ]
        );
        assert_eq!(all[3].seed, Some(1));
        let mut runs_json = Map::new();
        for (i, r) in all.iter().enumerate() {
            runs_json.insert(
                r.name.clone(),
                json!({"summary": {"late_mean.test_acc": i as f64}}),
            );
        }
        let a = across_seeds(&s, &Value::Object(runs_json))
            .unwrap()
            .unwrap();
        let rows = a["late_mean.test_acc"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[2]["series"], "adam");
        assert_eq!(rows[2]["value"], 0.0);
        assert_eq!(rows[2]["n"], 2);
        // adam at γ = 0: runs 4 and 5, mean 4.5, s.e. (sd 1/√2) / √2 = 0.5.
        assert!((rows[2]["mean"].as_f64().unwrap() - 4.5).abs() < 1e-12);
        assert!((rows[2]["se"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_series_table_value_sets_fields_unless_it_switches_the_variant() {
        let text = r#"
key = "seed"
values = [0]
[[series]]
name = "dotted"
set = { optimizer.lr = 0.5, noise.eigensolver = { steps = 60 } }
[[series]]
name = "adam"
set = { "optimizer.algorithm" = { name = "adam", beta1 = 0.9, beta2 = 0.999, eps = 1e-8 } }
[[series]]
name = "power"
set = { "noise.eigensolver" = { method = "power", iterations = 30 } }
[run]
steps = 10
optimizer = { lr = 0.1, momentum = 0.9, algorithm = { name = "sgd" } }
noise = { dynamic = "gd", eigensolver = { method = "lanczos", steps = 100 } }
[run.data]
kind = "toy2d"
n = 10
[run.model]
model = "toy2d"
"#;
        let sweep: SweepConfig = toml::from_str(text).unwrap();
        let all = runs(&sweep).unwrap();
        let unit = |i: usize| {
            let c = unit_config(&sweep, &all[i], Path::new("sweep.toml")).unwrap();
            toml::Table::try_from(&c).unwrap()
        };
        // An unquoted dotted key keeps the rest of the table.
        let dotted = unit(0);
        assert_eq!(dotted["optimizer"]["lr"].as_float(), Some(0.5));
        assert_eq!(dotted["optimizer"]["momentum"].as_float(), Some(0.9));
        assert_eq!(dotted["noise"]["dynamic"].as_str(), Some("gd"));
        assert_eq!(
            dotted["noise"]["eigensolver"]["method"].as_str(),
            Some("lanczos")
        );
        assert_eq!(
            dotted["noise"]["eigensolver"]["steps"].as_integer(),
            Some(60)
        );
        // Another variant replaces the table.
        assert_eq!(
            unit(1)["optimizer"]["algorithm"]["name"].as_str(),
            Some("adam")
        );
        assert_eq!(unit(1)["optimizer"]["momentum"].as_float(), Some(0.9));
        let power = unit(2);
        assert_eq!(
            power["noise"]["eigensolver"]["method"].as_str(),
            Some("power")
        );
        assert!(power["noise"]["eigensolver"].get("steps").is_none());
    }

    #[test]
    fn seeds_refuse_a_second_source_of_the_seed() {
        let mut s = sweep(&[("a", "seed = 3")]);
        s.seeds = vec![0, 1];
        let e = runs(&s).err().unwrap().to_string();
        assert!(e.contains("series `a` sets `seed`"), "{e}");
        let mut s = sweep(&[]);
        s.key = "seed".into();
        s.seeds = vec![0];
        assert!(runs(&s).is_err());
        // A seed listed twice would be two writers of one folder.
        let mut s = sweep(&[]);
        s.seeds = vec![1, 1];
        assert!(
            runs(&s)
                .err()
                .unwrap()
                .to_string()
                .contains("two runs named")
        );
    }
}
