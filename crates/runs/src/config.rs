//! Run configs: one TOML file holds every setting that changes a number. Unknown keys are
//! errors that name the key; `--set key=value` overrides any key (dotted paths) before the
//! file is checked.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use noisescope_data::synthetic::{
    Spectrum, Teacher, TeacherStudent, effective_rank, toy2d, uniform_square,
};
use noisescope_data::{Features, ImageDataset, Normalization, Precision, SearchPath, Split};
use noisescope_models::{Init, ModelSpec};
use noisescope_noise::{NoiseConfig, OptimizerConfig};
pub use noisescope_probe::config::{AlignmentMethod, Probe, ProbeConfig};
use serde::{Deserialize, Serialize};

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seeds the initialization, the data tweaks, the batches and the noise.
    #[serde(default)]
    pub seed: u64,
    /// Optimization steps.
    pub steps: u64,
    /// Steps between metric lines (also the first and the last step are logged).
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Steps between checkpoints (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Checkpoints kept: the newest this many (0: all). A long run whose folder is committed
    /// keeps 1.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_checkpoints: usize,
    /// Element type on the device.
    #[serde(default)]
    pub precision: Precision,
    /// The backend that ran it (written into the run's resolved config; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Initial θ.
    #[serde(default)]
    pub init: InitConfig,
    /// Training and test data.
    pub data: DataConfig,
    /// The network.
    pub model: ModelSpec,
    /// The update rule.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// The dynamic and its noise.
    #[serde(default)]
    pub noise: NoiseConfig,
    /// Measurements during training.
    #[serde(default)]
    pub probes: ProbeConfig,
}

fn default_log_every() -> u64 {
    100
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl RunConfig {
    /// Checks every setting for finiteness, sign and size against the net (`dim` = D) and the
    /// training set (`n` samples) before anything is allocated; the error names the field.
    pub fn check(&self, dim: usize, n: usize) -> Result<()> {
        if n == 0 {
            bail!(
                "data: the training set is empty (data.train = 0 or data.n = 0?): expected at least 1 sample"
            );
        }
        self.optimizer.check().map_err(anyhow::Error::msg)?;
        self.noise.check(dim, n).map_err(anyhow::Error::msg)?;
        if let Some(v) = &self.init.values
            && let Some(i) = v.iter().position(|x| !x.is_finite())
        {
            bail!("init.values[{i}] = {}: expected a finite value", v[i]);
        }
        let p = &self.probes;
        if p.samples == Some(0) {
            bail!("probes.samples = 0: expected at least 1 sample (or leave it out for all)");
        }
        if p.every > 0 && !p.list.is_empty() {
            p.check(dim).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

/// Where θ₀ comes from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// The initialization scheme.
    #[serde(default)]
    pub scheme: Init,
    /// θ₀ given explicitly (small models: Zhu et al.'s toy starts at (1, 1)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f64>>,
    /// A run directory or checkpoint folder whose θ to start from instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
}

/// The data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataConfig {
    /// An IDX image dataset of the registry (mnist, fashion-mnist, their -small versions).
    Images {
        /// Registry name.
        name: String,
        /// Training images with their true labels: the first `train` (all when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train: Option<usize>,
        /// Further training images, following the first `train`, with uniformly random
        /// labels (Zhu et al.: 1000 + 200).
        #[serde(default)]
        random_labels: usize,
        /// The first `test` test images (all when absent, none for 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<usize>,
        /// Pixel scaling.
        #[serde(default = "centered")]
        normalization: Normalization,
        /// A binary task: label 1 for these classes and 0 for the others, in both splits
        /// (two outputs for a net trained on one-hot labels).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary: Option<Vec<u8>>,
    },
    /// Zhu et al.'s 2-D toy data (no targets).
    Toy2d {
        /// Points.
        n: usize,
    },
    /// Teacher-student regression: x ~ N(0, diag(spectrum)), y = teacher(x) + ε (Wang and
    /// Wu's over-parameterized linear models; Ziyin et al.'s linear regression).
    TeacherStudent {
        /// Training samples.
        n: usize,
        /// Test samples (same teacher).
        #[serde(default)]
        test: usize,
        /// Input dimension.
        dim: usize,
        /// Eigenvalues of the input covariance.
        spectrum: Spectrum,
        /// The labelling function.
        teacher: Teacher,
        /// Label-noise standard deviation σ.
        #[serde(default)]
        noise_std: f64,
    },
    /// x ~ U[−2, 2]², label 1[x₀ ≥ x₁] (Zhu et al. Fig. 4).
    UniformSquare {
        /// Training points.
        n: usize,
        /// Test points.
        #[serde(default)]
        test: usize,
    },
}

impl DataConfig {
    /// Loads or draws the training and test features; `seed` drives random labels and
    /// synthetic draws.
    ///
    /// # Returns
    /// The training features, the test features when the config has some, and one line
    /// naming the data (for logs).
    pub fn load(
        &self,
        seed: u64,
        search: &SearchPath,
    ) -> Result<(Features, Option<Features>, String)> {
        Ok(match self {
            Self::Images {
                name,
                train,
                random_labels,
                test,
                normalization,
                binary,
            } => {
                let relabel = |d: ImageDataset| -> Result<ImageDataset> {
                    Ok(match binary {
                        Some(positive) => d
                            .binary(positive)
                            .with_context(|| format!("data.binary of {name}"))?,
                        None => d,
                    })
                };
                let tr = relabel(
                    ImageDataset::open(name, search, Split::Train)
                        .with_context(|| format!("training split of {name}"))?,
                )?;
                let clean = train.unwrap_or(tr.len() - random_labels.min(&tr.len()));
                let tr = if *random_labels > 0 {
                    tr.clean_plus_random_labels(clean, *random_labels, seed)?
                } else {
                    tr.first(clean)?
                };
                let te = match test {
                    Some(0) => None,
                    t => {
                        let te = relabel(
                            ImageDataset::open(name, search, Split::Test)
                                .with_context(|| format!("test split of {name}"))?,
                        )?;
                        Some(match t {
                            Some(n) => te.first(*n)?,
                            None => te,
                        })
                    }
                };
                let describe = format!(
                    "{name}: {} training images ({clean} true labels + {random_labels} random), {} test{}",
                    tr.len(),
                    te.as_ref().map_or(0, ImageDataset::len),
                    binary.as_ref().map_or(String::new(), |p| format!(
                        ", binary: classes {p:?} against the rest"
                    ))
                );
                (
                    tr.to_features(*normalization),
                    te.map(|t| t.to_features(*normalization)),
                    describe,
                )
            }
            Self::Toy2d { n } => (toy2d(*n, seed), None, format!("toy2d: {n} points")),
            Self::TeacherStudent {
                n,
                test,
                dim,
                spectrum,
                teacher,
                noise_std,
            } => {
                let problem = TeacherStudent {
                    dim: *dim,
                    spectrum: spectrum.clone(),
                    teacher: teacher.clone(),
                    noise_std: *noise_std,
                };
                let rank = effective_rank(&spectrum.values(*dim)?);
                // One teacher (from the seed) for both sets; different sample streams.
                let train = problem.sample_with(*n, seed, seed.wrapping_add(1))?;
                let test_set = (*test > 0)
                    .then(|| problem.sample_with(*test, seed, seed.wrapping_add(2)))
                    .transpose()?;
                (
                    train,
                    test_set,
                    format!(
                        "teacher-student: {n} training samples, {test} test, D = {dim}, effective rank {rank:.1}"
                    ),
                )
            }
            Self::UniformSquare { n, test } => (
                uniform_square(*n, seed),
                (*test > 0).then(|| uniform_square(*test, seed ^ 0xFFFF_FFFF)),
                format!("uniform square: {n} training points, {test} test"),
            ),
        })
    }
}

fn centered() -> Normalization {
    Normalization::Centered
}

/// Sets `key` (a dotted path) to `value` in `table`. The value is read as a TOML value
/// (`0.1`, `true`, `[1, 2]`, `"text"`), and as a string when it is not one. A numeric segment
/// indexes an existing array: `model.widths.1=256` sets the hidden width of `[784, 64, 10]`.
pub fn set_key(table: &mut toml::Table, key: &str, value: &str) -> Result<()> {
    let parsed: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("just parsed"),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {key}={value}: empty key segment");
    }
    // Work on a copy so that an error leaves `table` as it was.
    let mut root = toml::Value::Table(table.clone());
    let mut slot = &mut root;
    for p in &parts {
        slot = match slot {
            toml::Value::Array(a) => {
                let i: usize = p.parse().with_context(|| {
                    format!("--set {key}: `{p}` indexes an array, so it must be a number")
                })?;
                let len = a.len();
                a.get_mut(i).with_context(|| {
                    format!("--set {key}: index {i} is past the end of the array (length {len})")
                })?
            }
            toml::Value::Table(t) => t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new())),
            _ => bail!("--set {key}: `{p}` is inside a value that is neither a table nor an array"),
        };
    }
    *slot = parsed;
    match root {
        toml::Value::Table(t) => *table = t,
        _ => unreachable!("the root is a table"),
    }
    Ok(())
}

/// The first dotted key, other than those in `allowed`, whose value differs between `a` and
/// `b`; `None` when they agree.
pub fn changed_key<T: Serialize>(a: &T, b: &T, allowed: &[&str]) -> Result<Option<String>> {
    fn walk(a: &toml::Value, b: &toml::Value, path: &str, allowed: &[&str]) -> Option<String> {
        if allowed.contains(&path) {
            return None;
        }
        match (a, b) {
            (toml::Value::Table(x), toml::Value::Table(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match (x.get(k), y.get(k)) {
                        (Some(u), Some(v)) => walk(u, v, &p, allowed),
                        _ => (!allowed.contains(&p.as_str())).then_some(p),
                    }
                })
            }
            _ => (a != b).then(|| path.to_string()),
        }
    }
    let a = toml::Value::try_from(a)?;
    let b = toml::Value::try_from(b)?;
    Ok(walk(&a, &b, "", allowed))
}

/// Parses `text` (from `origin`) with the `key=value` overrides applied.
pub fn parse_with_overrides<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &Path,
    sets: &[String],
) -> Result<T> {
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("{}: not valid TOML", origin.display()))?;
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s}: expected key=value"))?;
        set_key(&mut table, k.trim(), v.trim())?;
    }
    // Through text, so that an error carries the key and the line: `text` itself when nothing
    // was overridden (for a config file, its line numbers are the file's), else the table
    // written out.
    let text = if sets.is_empty() {
        text.to_string()
    } else {
        toml::to_string(&table).expect("a table serializes")
    };
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}{}: {e}",
            origin.display(),
            if sets.is_empty() { "" } else { " (with --set)" }
        )
    })
}

/// Reads a config file with overrides.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path, sets: &[String]) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_with_overrides(&text, path, sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_error_names_the_line_of_the_file() {
        let text = "# a comment\n# another\nsteps = 10\n\n[optimizer]\nlr = \"0.1\"\n";
        let e = parse_with_overrides::<toml::Table>(text, Path::new("c.toml"), &[]);
        assert!(e.is_ok(), "a table takes anything");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Opt {
            lr: f64,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Cfg {
            steps: u64,
            optimizer: Opt,
        }
        let e = parse_with_overrides::<Cfg>(text, Path::new("c.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6"), "{e}");
    }

    const MINIMAL: &str = r#"
steps = 10
[data]
kind = "toy2d"
n = 5
[model]
model = "toy2d"
"#;

    /// `binary` relabels both splits into two classes; an unknown class is an error that
    /// names the field.
    #[test]
    fn binary_image_tasks() {
        let data = |binary: &str| -> DataConfig {
            toml::from_str(&format!(
                "kind = \"images\"\nname = \"mnist-small\"\ntrain = 50\ntest = 20\n{binary}"
            ))
            .unwrap()
        };
        let search = SearchPath::default();
        let (tr, te, describe) = data("binary = [0, 2, 4, 6, 8]").load(0, &search).unwrap();
        let classes = |f: &Features| match &f.targets {
            noisescope_data::Targets::Classes { classes, labels } => (*classes, labels.clone()),
            other => panic!("{other:?}"),
        };
        let (k, labels) = classes(&tr);
        assert_eq!(k, 2);
        assert!(labels.iter().all(|&l| l < 2) && labels.contains(&0) && labels.contains(&1));
        assert_eq!(classes(&te.unwrap()).0, 2);
        assert!(describe.contains("binary"), "{describe}");
        let (plain, _, _) = data("").load(0, &search).unwrap();
        assert_eq!(classes(&plain).0, 10);
        let e = format!("{:#}", data("binary = [12]").load(0, &search).unwrap_err());
        assert!(e.contains("data.binary") && e.contains("12"), "{e}");
    }
    #[test]
    fn unknown_keys_are_named() {
        let p = Path::new("x.toml");
        let e =
            parse_with_overrides::<RunConfig>(&format!("{MINIMAL}\n[optimizer]\nlrr = 1"), p, &[])
                .unwrap_err();
        assert!(e.to_string().contains("lrr"), "{e}");
        let e = parse_with_overrides::<RunConfig>(MINIMAL, p, &["noise.dynamc=\"sgd\"".into()])
            .unwrap_err();
        assert!(e.to_string().contains("dynamc"), "{e}");
        let e = parse_with_overrides::<RunConfig>(MINIMAL, p, &["noise.dynamic=lowrank-x".into()])
            .unwrap_err();
        assert!(e.to_string().contains("lowrank-x"), "{e}");
    }

    #[test]
    fn overrides_reach_nested_keys() {
        let sets = vec![
            "optimizer.lr=0.5".to_string(),
            "noise.dynamic=hessian-3".into(),
            "seed=7".into(),
        ];
        let c: RunConfig = parse_with_overrides(MINIMAL, Path::new("x.toml"), &sets).unwrap();
        assert_eq!(c.optimizer.lr, 0.5);
        assert_eq!(c.noise.dynamic, noisescope_noise::Dynamic::Hessian(3));
        assert_eq!(c.seed, 7);
        // The resolved config reads back to the same value.
        let again: RunConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn numeric_segments_index_arrays() {
        let mut t: toml::Table = "[model]\nwidths = [784, 64, 10]\n".parse().unwrap();
        set_key(&mut t, "model.widths.1", "256").unwrap();
        assert_eq!(t["model"]["widths"][1].as_integer(), Some(256));
        let before = t.clone();
        let e = set_key(&mut t, "model.widths.3", "1").unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        let e = set_key(&mut t, "model.widths.x", "1").unwrap_err();
        assert!(e.to_string().contains("must be a number"), "{e}");
        assert_eq!(t, before, "a failed override changes nothing");
    }

    proptest::proptest! {
        /// Arbitrary text, and valid configs with one line replaced by arbitrary text or one
        /// arbitrary `--set`, give a config or a named error, never a panic; a config that
        /// loads can be checked against any D and N without a panic.
        #[test]
        fn arbitrary_configs_never_panic(
            text in "\\PC{0,80}",
            line in 0usize..12,
            key in "[a-z_.0-9]{1,20}",
            value in "\\PC{0,12}",
            dim in 0usize..100,
            n in 0usize..100,
        ) {
            let p = Path::new("fuzz.toml");
            let _ = parse_with_overrides::<RunConfig>(&text, p, &[]);
            let quick = include_str!("../../../configs/quickstart.toml");
            let mut lines: Vec<&str> = quick.lines().collect();
            let at = line % lines.len();
            lines[at] = &text;
            let _ = parse_with_overrides::<RunConfig>(&lines.join("\n"), p, &[]);
            if let Ok(c) = parse_with_overrides::<RunConfig>(quick, p, &[format!("{key}={value}")]) {
                let _ = c.check(dim, n);
                let _ = c.probes.check(dim);
            }
        }
    }
}
