//! A run directory (DESIGN.md): `config.toml` (resolved), `metrics.jsonl` with its
//! TensorBoard twin `events.out.tfevents.*`, `summary.json`, `checkpoints/step-NNNNNNN/` and
//! `figures/`. Every write survives a kill at any instant
//! (docs/reliability.md): files go through a synced temporary and a rename, each metric line is
//! one `write(2)` (a torn last line is dropped on resume, earlier lines are kept byte for
//! byte), checkpoints are written to a temporary folder and renamed, and `checkpoints/latest`
//! names the newest complete checkpoint. Everything loaded back is checked before use.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use burn::tensor::DType;
use noisescope_data::{Precision, SamplerState};
use noisescope_models::Layout;
use noisescope_noise::stored::NOISE_VECTORS;
use noisescope_noise::{
    Covariance, NoiseRecord, OptimizerState, StoredError, StoredNoiseError, StreamState,
    TrainerState,
};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

/// An open run directory.
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
    /// Its TensorBoard event file and start time, once looked up or created.
    events: OnceCell<(PathBuf, f64)>,
}

/// The non-tensor part of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    step: u64,
    optimizer_t: u64,
    stream: StreamState,
    sampler: Option<SamplerState>,
    noise: Option<NoiseRecord>,
    /// What the run loop accumulated up to this step (summary statistics, clocks), opaque here.
    #[serde(default)]
    run: serde_json::Value,
}

/// The tensors a checkpoint's `state.safetensors` may hold.
const STATE_TENSORS: [&str; 5] = [
    "optimizer.first",
    "optimizer.second",
    "noise.std",
    "noise.vectors",
    WARM_START,
];

/// The last probe's top Hessian eigenvectors ([k, D]), kept for `probes.warm_start`.
const WARM_START: &str = "probes.warm_start";

impl RunDir {
    /// The run directory at `path`, with nothing checked or created (for reading).
    pub fn at(path: &Path) -> Self {
        RunDir {
            path: path.to_path_buf(),
            events: OnceCell::new(),
        }
    }

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
        fs::create_dir_all(path.join("figures"))
            .with_context(|| format!("creating {}", path.join("figures").display()))?;
        let rd = RunDir::at(path);
        // A run killed before its config.toml landed may have left a temporary behind.
        rd.remove_leftovers()?;
        Ok(rd)
    }

    /// An existing run directory.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join("config.toml").is_file() {
            bail!("{} is not a run directory (no config.toml)", path.display());
        }
        Ok(RunDir::at(path))
    }

    /// Writes a file in the run directory atomically.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(name), contents)
    }

    /// Appends one JSON line to `metrics.jsonl` as a single `write(2)`, so that a kill leaves
    /// either the whole line or a torn tail without its newline (dropped on resume), then its
    /// scalars to the TensorBoard event file (rebuilt from the lines on resume, so a kill
    /// between the two, or within the second, loses nothing).
    pub fn append_metrics(&self, line: &serde_json::Value) -> Result<()> {
        let mut text = line.to_string();
        text.push('\n');
        append(&self.path.join("metrics.jsonl"), text.as_bytes())?;
        let (events, start) = self.events_file()?;
        match crate::tensorboard::metric_record(start, line) {
            Some(record) => append(&events, &record),
            None => Ok(()),
        }
    }

    /// Appends the provenance record to the TensorBoard event file at `step`, as a text
    /// (a JSON code block in TensorBoard's Markdown) tagged `provenance`.
    pub fn append_provenance(&self, step: u64, record: &serde_json::Value) -> Result<()> {
        let (events, start) = self.events_file()?;
        let text = format!("```json\n{}\n```", serde_json::to_string_pretty(record)?);
        append(
            &events,
            &crate::tensorboard::text_record(start, step, "provenance", &text),
        )
    }

    /// The run's TensorBoard event file and the unix time its name holds (the run's start,
    /// to which the lines' `time_s` are added). Created, holding its header, when the run
    /// has none; a run continued on another machine keeps its file.
    fn events_file(&self) -> Result<(PathBuf, f64)> {
        if let Some(found) = self.events.get() {
            return Ok(found.clone());
        }
        let found = self.find_or_create_events()?;
        Ok(self.events.get_or_init(|| found).clone())
    }

    fn find_or_create_events(&self) -> Result<(PathBuf, f64)> {
        let entries =
            fs::read_dir(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
        let mut found: Vec<(String, u64)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let start = crate::tensorboard::file_start(&name)?;
                (!name.ends_with(".tmp~")).then_some((name, start))
            })
            .collect();
        found.sort();
        if let Some((name, start)) = found.into_iter().next() {
            return Ok((self.path.join(name), start as f64));
        }
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = crate::tensorboard::file_name(start, &crate::provenance::host_name());
        let p = self.path.join(name);
        write_atomic(&p, &crate::tensorboard::file_header(start as f64))?;
        Ok((p, start as f64))
    }

    /// Rewrites the TensorBoard event file from `lines`, atomically.
    fn rewrite_events(&self, lines: &[serde_json::Value]) -> Result<()> {
        let (events, start) = self.events_file()?;
        let mut bytes = crate::tensorboard::file_header(start);
        for l in lines {
            bytes.extend(crate::tensorboard::metric_record(start, l).unwrap_or_default());
        }
        write_atomic(&events, &bytes)
    }

    /// Rebuilds the TensorBoard event file from `metrics.jsonl` and the provenance of
    /// `summary.json` when it has one (`noisescope export --tensorboard`), creating it for a
    /// run made before noisescope wrote one.
    pub fn rebuild_events(&self) -> Result<()> {
        self.rewrite_events(&self.metrics()?)?;
        let file = self.path.join("summary.json");
        let Ok(bytes) = fs::read(&file) else {
            return Ok(());
        };
        let summary: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not JSON", file.display()))?;
        match (&summary["provenance"], summary["steps_done"].as_u64()) {
            (serde_json::Value::Null, _) | (_, None) => Ok(()),
            (p, Some(step)) => self.append_provenance(step, p),
        }
    }

    /// Empties `metrics.jsonl` and the event file, for a run that starts over in its folder.
    pub fn clear_metrics(&self) -> Result<()> {
        self.write("metrics.jsonl", b"")?;
        self.rewrite_events(&[])
    }

    /// The complete metric lines as written (without their newline) and parsed. A last line
    /// without its newline was torn by a kill and is left out; any other line that is not JSON
    /// is an error naming it.
    pub fn metric_lines(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let p = self.path.join("metrics.jsonl");
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => &bytes[..i],
            None => return Ok(Vec::new()),
        };
        complete
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, raw)| {
                let text = std::str::from_utf8(raw)
                    .ok()
                    .with_context(|| format!("{} line {}: not UTF-8", p.display(), i + 1))?;
                let v = serde_json::from_str(text)
                    .with_context(|| format!("{} line {}: not JSON", p.display(), i + 1))?;
                Ok((text.to_string(), v))
            })
            .collect()
    }

    /// The metric lines, parsed.
    pub fn metrics(&self) -> Result<Vec<serde_json::Value>> {
        Ok(self.metric_lines()?.into_iter().map(|(_, v)| v).collect())
    }

    /// Drops the metric lines past `step` and a torn last line, keeping the others byte for
    /// byte (a resumed run writes the dropped ones again); returns the kept lines, parsed.
    pub fn truncate_metrics(&self, step: u64) -> Result<Vec<serde_json::Value>> {
        let (keep, values): (Vec<String>, Vec<serde_json::Value>) = self
            .metric_lines()?
            .into_iter()
            .filter(|(_, m)| {
                m["step"].as_u64().is_some_and(|s| s <= step) && m.get("final").is_none()
            })
            .unzip();
        let mut text = keep.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        self.write("metrics.jsonl", text.as_bytes())?;
        self.rewrite_events(&values)?;
        Ok(values)
    }

    /// The newest complete checkpoint's folder, or `None` when the run has none yet.
    ///
    /// `checkpoints/latest` must name a `step-N` folder of this run's `checkpoints/`. Without
    /// it (a kill between a checkpoint's rename and the pointer's write) the newest `step-N`
    /// folder is taken: folders are renamed into place only once complete.
    pub fn find_checkpoint(&self) -> Result<Option<PathBuf>> {
        let dir = self.path.join("checkpoints");
        let p = dir.join("latest");
        match fs::read_to_string(&p) {
            Ok(name) => {
                let name = name.trim();
                let ok = name
                    .strip_prefix("step-")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    bail!(
                        "{}: names `{name}`, not a step-N checkpoint folder of this run",
                        p.display()
                    );
                }
                let ck = dir.join(name);
                if !ck.is_dir() {
                    bail!(
                        "{}: names {}, which does not exist",
                        p.display(),
                        ck.display()
                    );
                }
                Ok(Some(ck))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(step_folders(&dir)
                .into_iter()
                .max_by_key(|(n, _)| *n)
                .map(|(_, p)| p)),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// The newest complete checkpoint's folder; an error when there is none.
    pub fn latest_checkpoint(&self) -> Result<PathBuf> {
        self.find_checkpoint()?.with_context(|| {
            format!(
                "{}: no checkpoint yet",
                self.path.join("checkpoints").display()
            )
        })
    }

    /// The checkpoint folder of step `step`; an error naming the steps this run keeps when
    /// there is none (runs keep their newest `keep_checkpoints` only).
    pub fn checkpoint_at(&self, step: u64) -> Result<PathBuf> {
        let dir = self.path.join("checkpoints");
        let mut kept = step_folders(&dir);
        if let Some((_, p)) = kept.iter().find(|(n, _)| *n == step) {
            return Ok(p.clone());
        }
        kept.sort_by_key(|(n, _)| *n);
        let why = match kept.last() {
            None => "the run has none yet".to_string(),
            Some((newest, _)) if step > *newest => {
                format!("the run's newest checkpoint is at step {newest}")
            }
            Some(_) => "`keep_checkpoints` in the run's config says how many are kept, \
                        `checkpoint_every` how often"
                .to_string(),
        };
        let kept: Vec<String> = kept.iter().map(|(n, _)| n.to_string()).collect();
        bail!(
            "{}: no checkpoint at step {step} (kept: {}; {why})",
            dir.display(),
            if kept.is_empty() {
                "none".to_string()
            } else {
                kept.join(", ")
            }
        )
    }

    /// Removes all but the newest `keep` checkpoint folders (`keep` = 0: keeps all), never the
    /// one `latest` names. Each is renamed to a `.tmp-` name before its removal, so that a
    /// kill mid-removal leaves no partial `step-N` folder behind (leftovers go with
    /// [`RunDir::remove_leftovers`]).
    pub fn prune_checkpoints(&self, keep: usize) -> Result<()> {
        if keep == 0 {
            return Ok(());
        }
        let dir = self.path.join("checkpoints");
        let latest = self.find_checkpoint()?;
        let mut steps = step_folders(&dir);
        steps.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        for (_, p) in steps.into_iter().skip(keep) {
            if latest.as_deref() == Some(p.as_path()) {
                continue;
            }
            let name = p.file_name().expect("a step folder").to_string_lossy();
            let doomed = dir.join(format!(".tmp-old-{name}"));
            fs::rename(&p, &doomed).with_context(|| format!("renaming {}", p.display()))?;
            fs::remove_dir_all(&doomed)
                .with_context(|| format!("removing {}", doomed.display()))?;
        }
        Ok(())
    }

    /// Removes the temporary folders and files that a killed checkpoint or write left.
    pub fn remove_leftovers(&self) -> Result<()> {
        // Figures too: their temporaries carry the writer's name, so a killed write's is not
        // overwritten by the next one.
        for dir in [
            self.path.clone(),
            self.path.join("checkpoints"),
            self.path.join("figures"),
        ] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().to_string();
                let p = e.path();
                if name.starts_with(".tmp-") && p.is_dir() {
                    fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
                } else if name.ends_with(".tmp~") && p.is_file() {
                    fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
                }
            }
        }
        Ok(())
    }

    /// Saves the trainer's state, with `run` (the run loop's tallies), as
    /// `checkpoints/step-NNNNNNN/` and points `latest` at it. The folder is written and synced
    /// under a temporary name and renamed; on any error the temporary is removed and the
    /// previous checkpoint stays the latest.
    pub fn save_checkpoint(
        &self,
        state: &TrainerState,
        layout: &Layout,
        run: &serde_json::Value,
        warm: Option<&Tensor<2>>,
    ) -> Result<PathBuf> {
        let name = format!("step-{:07}", state.step);
        let dir = self.path.join("checkpoints");
        let final_dir = dir.join(&name);
        // A resumed run reaches the step of its checkpoint again with the same state: the
        // complete folder is kept (replacing it would leave a moment with no checkpoint).
        if final_dir.join("state.json").is_file() {
            write_atomic(&dir.join("latest"), name.as_bytes())?;
            return Ok(final_dir);
        }
        let tmp = dir.join(format!(".tmp-{name}"));
        let result = write_checkpoint(&tmp, state, layout, run, warm).and_then(|()| {
            if final_dir.exists() {
                fs::remove_dir_all(&final_dir)
                    .with_context(|| format!("removing {}", final_dir.display()))?;
            }
            fs::rename(&tmp, &final_dir)
                .with_context(|| format!("renaming {} to {name}", tmp.display()))?;
            sync_dir(&dir)?;
            write_atomic(&dir.join("latest"), name.as_bytes())?;
            Ok(final_dir.clone())
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }
}

/// Writes a checkpoint's three files into `tmp` (made anew) and syncs them.
fn write_checkpoint(
    tmp: &Path,
    state: &TrainerState,
    layout: &Layout,
    run: &serde_json::Value,
    warm: Option<&Tensor<2>>,
) -> Result<()> {
    if tmp.exists() {
        fs::remove_dir_all(tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
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
    write_synced(&tmp.join("model.safetensors"), &serialize(&model)?)?;
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
    // The cached covariance: the noise crate says what is stored under which name.
    let noise = state.cached_noise.as_ref().map(|c| {
        let (record, named) = c.to_stored();
        for t in named {
            tensors.push((t.name.into(), t.shape, host(&t.values)));
        }
        record
    });
    if let Some(w) = warm {
        let [k, d] = w.dims();
        tensors.push((
            WARM_START.into(),
            vec![k, d],
            host(&w.clone().reshape([k * d])),
        ));
    }
    write_synced(&tmp.join("state.safetensors"), &serialize(&tensors)?)?;
    let meta = CheckpointMeta {
        step: state.step,
        optimizer_t: state.optimizer.t,
        stream: state.stream,
        sampler: state.sampler.clone(),
        noise,
        run: run.clone(),
    };
    write_synced(&tmp.join("state.json"), &serde_json::to_vec_pretty(&meta)?)?;
    sync_dir(tmp)
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

/// [`default_out`], created here and now: the first of `runs/<stem><suffix>-<secs>`,
/// `…-<secs>-2`, `…-<secs>-3`, … that this process creates itself. Runs started in the same
/// second (a shell loop of `train &`) each get their own folder instead of writing into one.
pub fn claim_default_out(config: &Path, suffix: &str) -> Result<PathBuf> {
    claim_folder(&default_out(config, suffix))
}

/// Creates and returns the first of `base`, `base-2`, `base-3`, … that did not exist.
fn claim_folder(base: &Path) -> Result<PathBuf> {
    let parent = base.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    for i in 1u32.. {
        let p = match i {
            1 => base.to_path_buf(),
            _ => PathBuf::from(format!("{}-{i}", base.display())),
        };
        match fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
        }
    }
    unreachable!("u32 runs out long after the disk does")
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

/// Opens the folder of a multi-run experiment (`escape`, `sweep`) whose resolved config is
/// `config` (written as `config_name`), with `figures/`. A folder that holds the same
/// experiment is continued (its finished runs are kept, unfinished ones resume); one that
/// holds another is refused unless `restart`, which deletes it first. `what` names the
/// experiment in messages. `shared`: other processes (the shards of the experiment) may be
/// opening and writing the folder at the same time, so the config is created only where
/// absent (one process wins, the others compare) and no one else's temporary is removed.
pub fn open_experiment_dir(
    out: &Path,
    what: &str,
    config_name: &str,
    config: &str,
    restart: bool,
    shared: bool,
) -> Result<()> {
    let saved = out.join(config_name);
    if restart && out.exists() {
        if !saved.is_file() {
            bail!(
                "--restart: {} does not hold {what} ({config_name} is missing); not deleting it",
                out.display()
            );
        }
        fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    let differs = || {
        anyhow!(
            "{} holds {what} with other settings ({} differs); pass --restart to start over, or choose another --out",
            out.display(),
            saved.display()
        )
    };
    match fs::read_to_string(&saved) {
        Ok(text) if text == config => {}
        // Nothing ran yet (the last attempt stopped at a config error, say): nothing to mix.
        Ok(_) if !shared && !holds_runs(out, 3) => write_atomic(&saved, config.as_bytes())?,
        Ok(_) => return Err(differs()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if out.join("summary.json").exists() {
                bail!(
                    "{} already holds results; choose another --out",
                    out.display()
                );
            }
            fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            // Another shard may have created it since: then it must be the same experiment.
            let theirs = || {
                fs::read_to_string(&saved).with_context(|| format!("reading {}", saved.display()))
            };
            if !write_new(&saved, config.as_bytes())? && theirs()? != config {
                return Err(differs());
            }
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", saved.display())),
    }
    fs::create_dir_all(out.join("figures"))
        .with_context(|| format!("creating {}", out.display()))?;
    if !shared {
        RunDir::at(out).remove_leftovers()?;
    }
    Ok(())
}

/// Creates `path` holding `contents` unless it exists, atomically: the file is written and
/// synced under a name of this process's own and hard-linked into place, which fails when
/// another process got there first. Returns whether this call created it.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<bool> {
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().to_string());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp~", unique_suffix()));
    write_synced(&tmp, contents)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The `step-N` folders of a `checkpoints/` folder with their N, in no order (none when it
/// cannot be read).
fn step_folders(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u64 = name.strip_prefix("step-")?.parse().ok()?;
            e.path().is_dir().then_some((n, e.path()))
        })
        .collect()
}

/// Whether `dir` or a folder below it (to `depth` levels) holds a run or results.
fn holds_runs(dir: &Path, depth: usize) -> bool {
    if dir.join("config.toml").is_file() || dir.join("summary.json").is_file() {
        return true;
    }
    depth > 0
        && fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| e.path().is_dir() && holds_runs(&e.path(), depth - 1))
        })
}

/// Checks that `name` (from a config: a sweep series or value) is one plain folder name, so
/// that no run is written outside the experiment's folder.
pub fn check_folder_name(what: &str, name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.starts_with('~');
    if bad {
        bail!(
            "{what} `{name}` cannot name a folder: it must be non-empty, without `/`, `\\` or NUL, and not `.`, `..` or start with `~`"
        );
    }
    Ok(())
}

/// θ of a checkpoint folder, or of a run directory's latest checkpoint, as [D] in
/// `precision` (converted when the checkpoint holds the other one).
pub fn load_theta(path: &Path, device: &Device, precision: Precision) -> Result<Tensor<1>> {
    let dir = if path.join("model.safetensors").is_file() {
        path.to_path_buf()
    } else if path.join("config.toml").is_file() {
        RunDir::open(path)?.latest_checkpoint()?
    } else {
        bail!(
            "{}: neither a checkpoint (no model.safetensors) nor a run directory (no config.toml)",
            path.display()
        );
    };
    let file = dir.join("model.safetensors");
    let bytes = read_file(&file)?;
    let st = parse_safetensors(&file, &bytes)?;
    let t = st
        .tensor("theta")
        .with_context(|| format!("{}: no tensor `theta`", file.display()))?;
    if t.shape().len() != 1 || t.shape()[0] == 0 {
        bail!(
            "{}: tensor `theta` has shape {:?}, expected [D] with D ≥ 1",
            file.display(),
            t.shape()
        );
    }
    to_tensor(&t, device, precision).with_context(|| format!("{}: tensor `theta`", file.display()))
}

/// A checkpoint as loaded: the trainer state, the run loop's tallies (`state.json`'s `run`)
/// and the last probe's Hessian eigenvectors for `probes.warm_start` ([k, D]), if kept.
pub struct Checkpoint {
    /// θ, the optimizer's moments, the noise streams, the sampler and the cached noise.
    pub state: TrainerState,
    /// The run loop's tallies.
    pub run: serde_json::Value,
    /// The warm-start eigenvectors [k, D].
    pub warm: Option<Tensor<2>>,
}

/// Loads checkpoint folder `dir`. Everything the files can get wrong on their own is
/// checked here (names, shapes, element types against the run's precision, the step against
/// the folder's name); whether the state fits the run's model, optimizer and dynamic is
/// [`noisescope_noise::Trainer::check`]'s part.
pub fn load_checkpoint(dir: &Path, device: &Device, precision: Precision) -> Result<Checkpoint> {
    let want = stored_dtype(precision);
    let model_file = dir.join("model.safetensors");
    let model_bytes = read_file(&model_file)?;
    let model = parse_safetensors(&model_file, &model_bytes)?;
    let theta_view = model
        .tensor("theta")
        .with_context(|| format!("{}: no tensor `theta`", model_file.display()))?;
    check_view(&model_file, "theta", &theta_view, 1, want)?;
    let theta = to_tensor(&theta_view, device, precision)?;
    let meta_file = dir.join("state.json");
    let meta = read_meta(&meta_file)?;
    let named = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("step-"))
        .and_then(|n| n.parse::<u64>().ok());
    if named.is_some_and(|n| n != meta.step) {
        bail!(
            "{}: step {} in a folder named for step {}",
            meta_file.display(),
            meta.step,
            named.unwrap_or_default()
        );
    }
    let file = dir.join("state.safetensors");
    let bytes = read_file(&file)?;
    let st = parse_safetensors(&file, &bytes)?;
    for name in st.names() {
        if !STATE_TENSORS.contains(&name) {
            bail!(
                "{}: unknown tensor `{name}` (expected some of {})",
                file.display(),
                STATE_TENSORS.join(", ")
            );
        }
    }
    let get = |name: &str, rank: usize| -> Result<Option<(Tensor<1>, Vec<usize>)>> {
        match st.tensor(name) {
            Ok(t) => {
                check_view(&file, name, &t, rank, want)?;
                Ok(Some((
                    to_tensor(&t, device, precision)?,
                    t.shape().to_vec(),
                )))
            }
            Err(_) => Ok(None),
        }
    };
    let cached_noise = Covariance::from_stored(
        meta.noise,
        |name| st.tensor(name).is_ok(),
        |name| get(name, if name == NOISE_VECTORS { 2 } else { 1 }),
    )
    .map_err(|e| match e {
        StoredError::Read(e) => e,
        StoredError::Noise(e @ StoredNoiseError::Value(_)) => {
            anyhow::anyhow!("{}: {e}", meta_file.display())
        }
        StoredError::Noise(e) => anyhow::anyhow!("{}: {e}", file.display()),
    })?;
    let state = TrainerState {
        step: meta.step,
        theta,
        optimizer: OptimizerState {
            first: get("optimizer.first", 1)?.map(|(t, _)| t),
            second: get("optimizer.second", 1)?.map(|(t, _)| t),
            t: meta.optimizer_t,
        },
        stream: meta.stream,
        sampler: meta.sampler,
        cached_noise,
    };
    let warm = get(WARM_START, 2)?.map(|(t, shape)| t.reshape([shape[0], shape[1]]));
    Ok(Checkpoint {
        state,
        run: meta.run,
        warm,
    })
}

/// The step a checkpoint folder holds (its `state.json`).
pub fn checkpoint_step(dir: &Path) -> Result<u64> {
    Ok(read_meta(&dir.join("state.json"))?.step)
}

/// A checkpoint's `state.json`.
fn read_meta(file: &Path) -> Result<CheckpointMeta> {
    serde_json::from_slice(&read_file(file)?)
        .with_context(|| format!("{}: not a checkpoint state", file.display()))
}

/// The tensors of a safetensors file's bytes; the error names the file.
fn parse_safetensors<'a>(file: &Path, bytes: &'a [u8]) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes)
        .with_context(|| format!("{}: not a safetensors file", file.display()))
}

/// The element type a run of `precision` stores.
fn stored_dtype(precision: Precision) -> Dtype {
    match precision.dtype() {
        DType::F64 => Dtype::F64,
        _ => Dtype::F32,
    }
}

/// Checks one stored tensor's rank and element type.
fn check_view(file: &Path, name: &str, t: &TensorView<'_>, rank: usize, want: Dtype) -> Result<()> {
    if t.shape().len() != rank {
        bail!(
            "{}: tensor `{name}` has shape {:?}, expected {rank} dimension(s)",
            file.display(),
            t.shape()
        );
    }
    if t.shape().contains(&0) {
        bail!(
            "{}: tensor `{name}` has shape {:?}, with an empty dimension",
            file.display(),
            t.shape()
        );
    }
    if t.dtype() != want {
        bail!(
            "{}: tensor `{name}` is {:?}, the run's precision is {want:?}",
            file.display(),
            t.dtype()
        );
    }
    Ok(())
}

/// A file's bytes; the error names the file.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
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

/// Writes `path` through a synced temporary file beside it and a rename, so that a kill or a
/// full disk leaves either the old or the new contents; errors name the file, and a failed
/// write removes its temporary.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    // A name of this process's own: two processes (a shard's report and `collect`, say) may
    // write one file at once, and neither may rename the other's half-written temporary.
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().to_string());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp~", unique_suffix()));
    let result = write_synced(&tmp, contents).and_then(|()| {
        fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if let Some(parent) = path.parent() {
        sync_dir(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })?;
    }
    Ok(())
}

/// A temporary file's suffix no other process or call uses: host, process id and a counter,
/// so that processes on several machines writing into one shared folder never collide.
fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let host: String = crate::provenance::host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{}-{n}", std::process::id())
}

/// Appends `bytes` to `path` in one `write(2)`.
fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("appending to {}", path.display()))
}

/// Writes and syncs one file.
fn write_synced(path: &Path, contents: &[u8]) -> Result<()> {
    File::create(path)
        .and_then(|mut f| {
            f.write_all(contents)?;
            f.sync_all()
        })
        .with_context(|| format!("writing {}", path.display()))
}

/// Syncs a folder, so that the renames inside it survive a power loss.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_folder_is_never_handed_out_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("runs/quickstart-sgd-s0-1796600000");
        let first = claim_folder(&base).unwrap();
        let second = claim_folder(&base).unwrap();
        let third = claim_folder(&base).unwrap();
        assert_eq!(first, base);
        assert_eq!(
            second,
            tmp.path().join("runs/quickstart-sgd-s0-1796600000-2")
        );
        assert_eq!(
            third,
            tmp.path().join("runs/quickstart-sgd-s0-1796600000-3")
        );
        assert!(first.is_dir() && second.is_dir() && third.is_dir());
    }

    #[allow(deprecated)]
    fn device() -> Device {
        Device::ndarray()
    }

    #[test]
    fn theta_from_a_folder_that_is_neither_checkpoint_nor_run_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let half = tmp.path().join("checkpoints/step-0000010");
        fs::create_dir_all(&half).unwrap();
        fs::write(half.join("state.json"), "{}").unwrap();
        let err = load_theta(&half, &device(), Precision::F32)
            .expect_err("no model.safetensors")
            .to_string();
        assert!(
            err.contains("neither a checkpoint (no model.safetensors) nor a run directory"),
            "{err}"
        );
    }

    #[test]
    fn a_checkpoint_by_step_is_found_or_the_kept_steps_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let rd = RunDir::at(tmp.path());
        let err = rd.checkpoint_at(5).unwrap_err().to_string();
        assert!(
            err.contains("no checkpoint at step 5 (kept: none; the run has none yet)"),
            "{err}"
        );
        for n in [20u64, 3] {
            fs::create_dir_all(tmp.path().join(format!("checkpoints/step-{n:07}"))).unwrap();
        }
        assert_eq!(
            rd.checkpoint_at(20).unwrap(),
            tmp.path().join("checkpoints/step-0000020")
        );
        let err = rd.checkpoint_at(10).unwrap_err().to_string();
        assert!(
            err.contains("no checkpoint at step 10 (kept: 3, 20; `keep_checkpoints`"),
            "{err}"
        );
        let err = rd.checkpoint_at(30).unwrap_err().to_string();
        assert!(
            err.contains("(kept: 3, 20; the run's newest checkpoint is at step 20)"),
            "{err}"
        );
    }

    proptest::proptest! {
        /// Checkpoint folders with arbitrary files, and with well-formed safetensors holding
        /// tensors of arbitrary names, ranks, sizes and element types beside an arbitrary
        /// state.json, load or give a named error, never a panic.
        #[test]
        fn arbitrary_checkpoints_never_panic(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            which in 0usize..3,
            tensors in proptest::collection::vec(
                (0usize..7, proptest::collection::vec(0usize..4, 0..3), proptest::bool::ANY),
                0..4,
            ),
            meta in 0usize..5,
        ) {
            let names = ["theta", "optimizer.first", "optimizer.second", "noise.std",
                "noise.vectors", "probes.warm_start", "other"];
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("step-0000003");
            fs::create_dir_all(&dir).unwrap();
            let mut stored: Vec<(String, Vec<usize>, HostVec)> = Vec::new();
            for (name, shape, f64s) in &tensors {
                let n: usize = shape.iter().product();
                let v = if *f64s { HostVec::F64(vec![0.5; n]) } else { HostVec::F32(vec![0.5; n]) };
                if !stored.iter().any(|(s, _, _)| s == names[*name]) {
                    stored.push((names[*name].to_string(), shape.clone(), v));
                }
            }
            let good = serialize(&stored).unwrap();
            let metas = [
                r#"{"step":3,"optimizer_t":3,"stream":{"seed":1,"word_pos":0},"sampler":null,"noise":null}"#,
                r#"{"step":3,"optimizer_t":3,"stream":{"seed":1,"word_pos":0},"sampler":null,"noise":{"kind":"low-rank","std":[1.0]}}"#,
                r#"{"step":3,"optimizer_t":3,"stream":{"seed":1,"word_pos":0},"sampler":null,"noise":{"kind":"diag"},"run":{"step_loss":1}}"#,
                r#"{"step":4,"optimizer_t":0,"stream":{"seed":1,"word_pos":0},"sampler":null,"noise":{"kind":"iso","std":-1.0,"dim":2}}"#,
                "{",
            ];
            for (i, f) in ["model.safetensors", "state.safetensors", "state.json"].iter().enumerate() {
                let bytes = if i == which { junk.clone() } else if i == 2 { metas[meta].as_bytes().to_vec() } else { good.clone() };
                fs::write(dir.join(f), bytes).unwrap();
            }
            for precision in [Precision::F32, Precision::F64] {
                let _ = load_checkpoint(&dir, &device(), precision);
                let _ = load_theta(&dir, &device(), precision);
                let _ = checkpoint_step(&dir);
            }
        }
    }
}
