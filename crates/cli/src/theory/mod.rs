//! `noisescope theory <experiment>`: Ziyin et al.'s closed forms (crate `theory`) against
//! SGD simulated on linear regression, many independent chains at once on the device
//! (SPEC §5.6–5.9). Each experiment writes `summary.json`, `table.md`,
//! `figures/<experiment>.svg` and the figure's data `figures/<experiment>.json` (for
//! `noisescope plot`) into its output folder and prints the table.
//!
//! The built-in settings of each experiment are the files `configs/ziyin2022/<name>.toml`,
//! compiled in; `--config` replaces them and `--set` overrides single keys.

pub mod experiment;
mod high_dim;
mod label_noise;
mod lr_sweep;
mod sim;
mod tail_index;
mod weight_decay;

use std::path::Path;

use anyhow::Result;
use noisescope_runs::config;
use noisescope_runs::rundir::{create_experiment_dir, default_out, write_atomic};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use self::experiment::TheoryExperiment;
use crate::args::{Global, TheoryArgs};
use crate::backend::{self, Opened};

/// What an experiment hands back: the JSON summary, a markdown table, the figure's panels.
pub struct Report {
    pub summary: Value,
    pub table: String,
    pub panels: Vec<crate::draw::Panel>,
}

/// Everything an experiment needs besides its settings.
pub struct Context<'a> {
    pub opened: &'a Opened,
    pub quiet: bool,
}

/// Settings that can say what is wrong with them before a chain runs: a zero count would
/// panic, hang or turn every row into NaN reported as divergence.
trait Checked {
    /// The first setting out of range, named by its key.
    fn check(&self) -> Result<()>;
}

/// `key` must be at least `min`.
fn at_least(key: &str, v: usize, min: usize) -> Result<()> {
    if v < min {
        anyhow::bail!("`{key}` = {v}: must be at least {min}");
    }
    Ok(())
}

fn settings<T: DeserializeOwned + Serialize + Checked>(
    e: TheoryExperiment,
    config: Option<&Path>,
    sets: &[String],
) -> Result<(T, String)> {
    let cfg: T = match config {
        Some(path) => config::load(path, sets)?,
        None => config::parse_with_overrides(
            e.defaults(),
            Path::new(&format!("configs/ziyin2022/{}.toml (built in)", e.name())),
            sets,
        )?,
    };
    cfg.check()?;
    let text = toml::to_string(&cfg)?;
    Ok((cfg, text))
}

/// Reads and checks the settings of `e` (its config or the built-in one, with `--set`s), so
/// that a job script is written only for settings that load.
pub fn check_settings(e: TheoryExperiment, config: Option<&Path>, sets: &[String]) -> Result<()> {
    match e {
        TheoryExperiment::LabelNoise => {
            settings::<label_noise::Settings>(e, config, sets).map(drop)
        }
        TheoryExperiment::LrSweep => settings::<lr_sweep::Settings>(e, config, sets).map(drop),
        TheoryExperiment::WeightDecay => {
            settings::<weight_decay::Settings>(e, config, sets).map(drop)
        }
        TheoryExperiment::HighDim => settings::<high_dim::Settings>(e, config, sets).map(drop),
        TheoryExperiment::TailIndex => settings::<tail_index::Settings>(e, config, sets).map(drop),
    }
}

pub fn run(g: &Global, a: &TheoryArgs) -> Result<()> {
    let opened = backend::open(g.backend, g.device)?;
    let ctx = Context {
        opened: &opened,
        quiet: g.quiet,
    };
    let e = a.experiment;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| default_out(Path::new(&format!("theory-{}", e.name())), ""));
    macro_rules! go {
        ($module:ident) => {{
            let (cfg, text) = settings::<$module::Settings>(e, a.config.as_deref(), &a.set)?;
            opened.check_precision(cfg.simulation.precision)?;
            create_experiment_dir(&out, "an experiment", "config.toml", &text)?;
            $module::run(&cfg, &ctx)?
        }};
    }
    let report = match e {
        TheoryExperiment::LabelNoise => go!(label_noise),
        TheoryExperiment::LrSweep => go!(lr_sweep),
        TheoryExperiment::WeightDecay => go!(weight_decay),
        TheoryExperiment::HighDim => go!(high_dim),
        TheoryExperiment::TailIndex => go!(tail_index),
    };
    let mut summary = report.summary;
    summary["experiment"] = Value::from(e.name());
    summary["device"] = Value::from(opened.description.clone());
    summary["provenance"] = noisescope_runs::provenance::this_process(&opened.description);
    write_atomic(&out.join("table.md"), report.table.as_bytes())?;
    let fig = out.join(format!("figures/{}.svg", e.name()));
    // The figure's data beside it, so that `noisescope plot` can redraw it.
    write_atomic(
        &out.join(format!("figures/{}.json", e.name())),
        serde_json::to_string(&report.panels)?.as_bytes(),
    )?;
    crate::draw::comparison(&fig, &report.panels)?;
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if g.json {
        crate::output::print_json(&summary);
    } else {
        print!("{}", report.table);
        println!("figure: {}", fig.display());
        println!("results: {}", out.display());
    }
    Ok(())
}

/// A markdown table.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        for (i, r) in self.rows.iter().enumerate() {
            s += &format!("| {} |\n", r.join(" | "));
            if i == 0 {
                s += &format!("|{}\n", "---|".repeat(r.len()));
            }
        }
        s
    }
}

/// A number for a table: 4 significant digits, or what stands in for a missing value.
pub fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            if x != 0.0 && (x.abs() >= 1e4 || x.abs() < 1e-3) {
                format!("{x:.3e}")
            } else {
                format!("{x:.4}")
            }
        }
        Some(x) if x.is_infinite() => "∞".into(),
        _ => "–".into(),
    }
}

/// `m ± se`.
pub fn pm(m: f64, se: f64) -> String {
    format!("{} ± {}", num(Some(m)), num(Some(se)))
}

/// The relative error (m − t)/t ± se/t as a percentage.
pub fn rel(m: f64, se: f64, t: Option<f64>) -> String {
    match t {
        Some(t) if t != 0.0 && t.is_finite() => {
            format!(
                "{:+.2}% ± {:.2}%",
                100.0 * (m - t) / t,
                100.0 * se / t.abs()
            )
        }
        _ => "–".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// The shipped files parse into their experiments' settings (they are the built-in
    /// defaults, so a typo would break the command for everyone).
    #[test]
    fn built_in_settings_parse() {
        for e in TheoryExperiment::value_variants() {
            let origin = Path::new(e.name());
            let ok = match e {
                TheoryExperiment::LabelNoise => {
                    config::parse_with_overrides::<label_noise::Settings>(e.defaults(), origin, &[])
                        .map(|_| ())
                }
                TheoryExperiment::LrSweep => {
                    config::parse_with_overrides::<lr_sweep::Settings>(e.defaults(), origin, &[])
                        .map(|_| ())
                }
                TheoryExperiment::WeightDecay => config::parse_with_overrides::<
                    weight_decay::Settings,
                >(e.defaults(), origin, &[])
                .map(|_| ()),
                TheoryExperiment::HighDim => {
                    config::parse_with_overrides::<high_dim::Settings>(e.defaults(), origin, &[])
                        .map(|_| ())
                }
                TheoryExperiment::TailIndex => {
                    config::parse_with_overrides::<tail_index::Settings>(e.defaults(), origin, &[])
                        .map(|_| ())
                }
            };
            ok.unwrap_or_else(|err| panic!("{}: {err:#}", e.name()));
        }
    }
}
