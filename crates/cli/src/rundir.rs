//! A run directory (DESIGN.md): `config.toml` (resolved), `metrics.jsonl`, `summary.json`,
//! `checkpoints/step-NNNNNNN/` and `figures/`. Checkpoints are written to a temporary folder
//! and renamed, so a crash never leaves a half-written one, and `checkpoints/latest` names the
//! newest complete checkpoint.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::DType;
use noisescope_data::{Precision, SamplerState};
use noisescope_models::Layout;
use noisescope_noise::{NoiseShape, OptimizerState, StreamState, TrainerState};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

/// An open run directory.
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
}

/// The non-tensor part of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    step: u64,
    optimizer_t: u64,
    stream: StreamState,
    sampler: Option<SamplerState>,
    noise: Option<NoiseMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum NoiseMeta {
    Iso { std: f64, dim: usize },
    Diag,
    LowRank { std: Vec<f64> },
}

impl RunDir {
    /// Creates `path` (and `checkpoints/`, `figures/`); refuses a folder that already holds a
    /// run, so results are never overwritten.
    pub fn create(path: &Path) -> Result<Self> {
        if path.join("metrics.jsonl").exists() || path.join("config.toml").exists() {
            bail!(
                "{} already holds a run; choose another --out, or continue it with --resume",
                path.display()
            );
        }
        fs::create_dir_all(path.join("checkpoints"))
            .with_context(|| format!("creating {}", path.display()))?;
        fs::create_dir_all(path.join("figures"))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// An existing run directory.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join("config.toml").is_file() {
            bail!("{} is not a run directory (no config.toml)", path.display());
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// Writes a file in the run directory atomically.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(name), contents)
    }

    /// Appends one JSON line to `metrics.jsonl` and flushes it.
    pub fn append_metrics(&self, line: &serde_json::Value) -> Result<()> {
        let p = self.path.join("metrics.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        writeln!(f, "{line}")?;
        f.flush()?;
        Ok(())
    }

    /// The metric lines, parsed.
    pub fn metrics(&self) -> Result<Vec<serde_json::Value>> {
        let p = self.path.join("metrics.jsonl");
        if !p.exists() {
            return Ok(Vec::new());
        }
        BufReader::new(File::open(&p)?)
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let l = l?;
                serde_json::from_str(&l)
                    .with_context(|| format!("{} line {}: not JSON", p.display(), i + 1))
            })
            .collect()
    }

    /// Drops the metric lines past `step` (a resumed run writes them again).
    pub fn truncate_metrics(&self, step: u64) -> Result<()> {
        let keep: Vec<String> = self
            .metrics()?
            .into_iter()
            .filter(|m| m["step"].as_u64().is_some_and(|s| s <= step) && m.get("final").is_none())
            .map(|m| m.to_string())
            .collect();
        let mut text = keep.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        self.write("metrics.jsonl", text.as_bytes())
    }

    /// The newest complete checkpoint's folder.
    pub fn latest_checkpoint(&self) -> Result<PathBuf> {
        let p = self.path.join("checkpoints/latest");
        let name = fs::read_to_string(&p)
            .with_context(|| format!("{}: no checkpoint to resume from", p.display()))?;
        Ok(self.path.join("checkpoints").join(name.trim()))
    }

    /// Saves the trainer's state as `checkpoints/step-NNNNNNN/` and points `latest` at it.
    pub fn save_checkpoint(&self, state: &TrainerState, layout: &Layout) -> Result<PathBuf> {
        let name = format!("step-{:07}", state.step);
        let dir = self.path.join("checkpoints");
        let tmp = dir.join(format!(".tmp-{name}"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        // θ and its per-layer blocks.
        let theta = host(&state.theta);
        let mut model: Vec<(String, Vec<usize>, HostVec)> =
            vec![("theta".into(), vec![theta.len()], theta.clone())];
        for b in &layout.blocks {
            model.push((
                b.name.clone(),
                b.shape.clone(),
                theta.slice(b.offset, b.len),
            ));
        }
        fs::write(tmp.join("model.safetensors"), serialize(&model)?)?;
        let mut tensors: Vec<(String, Vec<usize>, HostVec)> = Vec::new();
        for (key, t) in [
            ("optimizer.first", &state.optimizer.first),
            ("optimizer.second", &state.optimizer.second),
        ] {
            if let Some(t) = t {
                let v = host(t);
                tensors.push((key.into(), vec![v.len()], v));
            }
        }
        let noise = match &state.cached_noise {
            None => None,
            Some(NoiseShape::Iso { std, dim }) => Some(NoiseMeta::Iso {
                std: *std,
                dim: *dim,
            }),
            Some(NoiseShape::Diag { std }) => {
                let v = host(std);
                tensors.push(("noise.std".into(), vec![v.len()], v));
                Some(NoiseMeta::Diag)
            }
            Some(NoiseShape::LowRank { vectors, std }) => {
                let [k, d] = vectors.dims();
                tensors.push((
                    "noise.vectors".into(),
                    vec![k, d],
                    host(&vectors.clone().reshape([k * d])),
                ));
                Some(NoiseMeta::LowRank { std: std.clone() })
            }
        };
        fs::write(tmp.join("state.safetensors"), serialize(&tensors)?)?;
        let meta = CheckpointMeta {
            step: state.step,
            optimizer_t: state.optimizer.t,
            stream: state.stream,
            sampler: state.sampler.clone(),
            noise,
        };
        fs::write(tmp.join("state.json"), serde_json::to_vec_pretty(&meta)?)?;
        let final_dir = dir.join(&name);
        let _ = fs::remove_dir_all(&final_dir);
        fs::rename(&tmp, &final_dir)?;
        write_atomic(&dir.join("latest"), name.as_bytes())?;
        Ok(final_dir)
    }
}

/// `runs/<config stem><suffix>-<unix seconds>`: where results go without `--out`.
pub fn default_out(config: &Path, suffix: &str) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or("run".into(), |s| s.to_string_lossy().to_string());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("runs").join(format!("{stem}{suffix}-{secs}"))
}

/// Creates the folder of a multi-run experiment (`escape`, `sweep`) with `figures/`, and writes
/// its resolved config as `config_name`; refuses a folder that already holds one (`what`
/// names it in the message), so results are never overwritten.
pub fn create_experiment_dir(
    out: &Path,
    what: &str,
    config_name: &str,
    config: &str,
) -> Result<()> {
    if out.join("summary.json").exists() {
        bail!(
            "{} already holds {what}; choose another --out",
            out.display()
        );
    }
    fs::create_dir_all(out.join("figures"))
        .with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join(config_name), config.as_bytes())
}

/// θ of a checkpoint folder, or of a run directory's latest checkpoint, as [D].
pub fn load_theta(path: &Path, device: &Device, precision: Precision) -> Result<Tensor<1>> {
    let dir = if path.join("model.safetensors").is_file() {
        path.to_path_buf()
    } else {
        RunDir::open(path)?.latest_checkpoint()?
    };
    let file = dir.join("model.safetensors");
    let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", file.display()))?;
    let t = st
        .tensor("theta")
        .with_context(|| format!("{}: no tensor `theta`", file.display()))?;
    to_tensor(&t, device, precision).with_context(|| format!("{}: tensor `theta`", file.display()))
}

/// Loads the trainer state of checkpoint folder `dir`.
pub fn load_checkpoint(dir: &Path, device: &Device, precision: Precision) -> Result<TrainerState> {
    let theta = load_theta(dir, device, precision)?;
    let meta: CheckpointMeta = serde_json::from_slice(
        &fs::read(dir.join("state.json"))
            .with_context(|| format!("reading {}/state.json", dir.display()))?,
    )
    .with_context(|| format!("{}/state.json: not a checkpoint state", dir.display()))?;
    let file = dir.join("state.safetensors");
    let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", file.display()))?;
    let get = |name: &str| -> Result<Option<Tensor<1>>> {
        match st.tensor(name) {
            Ok(t) => Ok(Some(to_tensor(&t, device, precision)?)),
            Err(_) => Ok(None),
        }
    };
    let cached_noise = match meta.noise {
        None => None,
        Some(NoiseMeta::Iso { std, dim }) => Some(NoiseShape::Iso { std, dim }),
        Some(NoiseMeta::Diag) => Some(NoiseShape::Diag {
            std: get("noise.std")?.context("checkpoint lacks noise.std")?,
        }),
        Some(NoiseMeta::LowRank { std }) => {
            let v = st
                .tensor("noise.vectors")
                .context("checkpoint lacks noise.vectors")?;
            let [k, d] = [v.shape()[0], v.shape()[1]];
            let flat = to_tensor(&v, device, precision)?;
            Some(NoiseShape::LowRank {
                vectors: flat.reshape([k, d]),
                std,
            })
        }
    };
    Ok(TrainerState {
        step: meta.step,
        theta,
        optimizer: OptimizerState {
            first: get("optimizer.first")?,
            second: get("optimizer.second")?,
            t: meta.optimizer_t,
        },
        stream: meta.stream,
        sampler: meta.sampler,
        cached_noise,
    })
}

/// Host copy of a tensor in its own precision.
#[derive(Debug, Clone)]
enum HostVec {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl HostVec {
    fn len(&self) -> usize {
        match self {
            HostVec::F32(v) => v.len(),
            HostVec::F64(v) => v.len(),
        }
    }

    fn slice(&self, at: usize, len: usize) -> HostVec {
        match self {
            HostVec::F32(v) => HostVec::F32(v[at..at + len].to_vec()),
            HostVec::F64(v) => HostVec::F64(v[at..at + len].to_vec()),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            HostVec::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostVec::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    fn dtype(&self) -> Dtype {
        match self {
            HostVec::F32(_) => Dtype::F32,
            HostVec::F64(_) => Dtype::F64,
        }
    }
}

fn host(t: &Tensor<1>) -> HostVec {
    let data = t.clone().into_data();
    if t.dtype() == DType::F64 {
        HostVec::F64(data.convert::<f64>().try_into_vec::<f64>().expect("f64"))
    } else {
        HostVec::F32(data.convert::<f32>().try_into_vec::<f32>().expect("f32"))
    }
}

fn serialize(tensors: &[(String, Vec<usize>, HostVec)]) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.bytes()).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, v), b)| {
            Ok((name.clone(), TensorView::new(v.dtype(), shape.clone(), b)?))
        })
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let mut info = HashMap::new();
    info.insert("format".to_string(), "noisescope".to_string());
    Ok(safetensors::serialize(views, Some(info))?)
}

fn to_tensor(t: &TensorView<'_>, device: &Device, precision: Precision) -> Result<Tensor<1>> {
    let n: usize = t.shape().iter().product();
    let values: Vec<f64> = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        other => bail!("dtype {other:?}: expected F32 or F64"),
    };
    if values.len() != n {
        bail!("{} values for shape {:?}", values.len(), t.shape());
    }
    // Restore in the checkpoint's own precision when it matches, so a resumed run is
    // bit-identical; convert otherwise.
    let dtype = precision.dtype();
    Ok(Tensor::from_data(
        TensorData::new(values, [n]),
        (device, dtype),
    ))
}

/// Writes `path` through a temporary file beside it and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
