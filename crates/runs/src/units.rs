//! The units of a multi-run experiment: one folder each (a sweep's run, an escape
//! experiment's dynamic), run by whichever process owns it (a shard of the experiment) and read back
//! by whoever combines them. A unit's state is read from its folder alone, so that the
//! combined summary is the same whichever processes ran the units and in what order.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};

use crate::rundir::write_atomic;

/// The file a unit's failure is recorded in, for `collect` to report.
pub const ERROR_FILE: &str = "error.txt";

/// Where a unit stands, as its folder says.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitState {
    /// No folder: no process has started it.
    Missing,
    /// Started, neither finished nor failed (running now, or stopped by a kill).
    Started,
    /// Its last attempt failed with this error.
    Failed(String),
    /// Its summary: completed, diverged (a result too), or stopped at `--until`.
    Summarized(Value),
}

impl UnitState {
    /// The unit's state from its folder `dir`.
    pub fn of(dir: &Path) -> Result<UnitState> {
        if !dir.is_dir() {
            return Ok(UnitState::Missing);
        }
        if let Ok(text) = std::fs::read_to_string(dir.join(ERROR_FILE)) {
            return Ok(UnitState::Failed(text.trim().to_string()));
        }
        let file = dir.join("summary.json");
        match std::fs::read(&file) {
            Ok(bytes) => Ok(UnitState::Summarized(
                serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: not JSON ({e})", file.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UnitState::Started),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading {}", file.display()))),
        }
    }

    /// `missing`, `started`, `failed`, or the summary's status (`completed`, `diverged`,
    /// `stopped`).
    pub fn status(&self) -> String {
        match self {
            UnitState::Missing => "missing".into(),
            UnitState::Started => "started".into(),
            UnitState::Failed(_) => "failed".into(),
            UnitState::Summarized(s) => s["status"].as_str().unwrap_or("unknown").into(),
        }
    }

    /// Whether the unit has its final result (completed or diverged).
    pub fn finished(&self) -> bool {
        matches!(self.status().as_str(), "completed" | "diverged")
    }
}

/// The units' tally for a combined summary: how many there are and finished, and the names
/// of those missing, failed and unfinished (started, or stopped at `--until`).
pub fn tally<'a>(states: impl IntoIterator<Item = (&'a str, &'a UnitState)>) -> Value {
    let (mut total, mut finished) = (0, 0);
    let (mut missing, mut failed, mut unfinished) = (vec![], vec![], vec![]);
    for (name, s) in states {
        total += 1;
        match s {
            UnitState::Missing => missing.push(name),
            UnitState::Failed(_) => failed.push(name),
            s if s.finished() => finished += 1,
            _ => unfinished.push(name),
        }
    }
    json!({
        "total": total, "finished": finished, "missing": missing, "failed": failed,
        "unfinished": unfinished,
    })
}

/// An experiment combined from its unit folders: its config, its summary, and each unit's
/// name and state in the experiment's order.
pub struct Combined<C> {
    /// The experiment's config.
    pub config: C,
    /// The combined summary.
    pub summary: Value,
    /// Each unit's name and state.
    pub states: Vec<(String, UnitState)>,
}

/// Writes an experiment's combined `summary` as `out/summary.json`, stamped with this
/// (combining) process's provenance, and makes sure `out/figures/` exists for its figures.
pub fn write_summary(out: &Path, summary: &mut Value) -> Result<()> {
    std::fs::create_dir_all(out.join("figures"))
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", out.join("figures").display()))?;
    summary["provenance"] =
        crate::provenance::this_process(summary["device"].as_str().unwrap_or(""));
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(summary)?.as_bytes(),
    )
}

/// Forgets the unit's recorded failure: it is about to run again.
pub fn clear_failure(dir: &Path) -> Result<()> {
    let file = dir.join(ERROR_FILE);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("removing {}", file.display()))),
    }
}

/// Records the error that ended the unit's attempt in `dir/error.txt` for `collect` (a
/// failure to record it is printed, not raised: the error itself matters more).
pub fn record_failure(dir: &Path, error: &anyhow::Error) {
    let file = dir.join(ERROR_FILE);
    let recorded = std::fs::create_dir_all(dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| write_atomic(&file, format!("{error:#}\n").as_bytes()));
    if let Err(w) = recorded {
        eprintln!("could not record the failure in {}: {w:#}", file.display());
    }
}

/// The `seed-N/` folders under `dir` that `accept` takes, by seed (none when `dir` cannot be
/// read): the seeds of a campaign or of a theory experiment run once per seed.
pub fn seed_dirs(dir: &Path, accept: impl Fn(&Path) -> bool) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut seeds: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let seed: u64 = name.strip_prefix("seed-")?.parse().ok()?;
            accept(&e.path()).then_some((seed, e.path()))
        })
        .collect();
    seeds.sort_by_key(|(s, _)| *s);
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert_eq!(UnitState::of(&d.join("a")).unwrap(), UnitState::Missing);
        std::fs::create_dir(d.join("b")).unwrap();
        assert_eq!(UnitState::of(&d.join("b")).unwrap(), UnitState::Started);
        std::fs::create_dir(d.join("c")).unwrap();
        std::fs::write(d.join("c/summary.json"), r#"{"status": "completed"}"#).unwrap();
        let c = UnitState::of(&d.join("c")).unwrap();
        assert!(c.finished());
        std::fs::create_dir(d.join("e")).unwrap();
        std::fs::write(d.join("e/summary.json"), r#"{"status": "stopped"}"#).unwrap();
        let e = UnitState::of(&d.join("e")).unwrap();
        std::fs::create_dir(d.join("f")).unwrap();
        std::fs::write(d.join("f/error.txt"), "no data\n").unwrap();
        let f = UnitState::of(&d.join("f")).unwrap();
        assert_eq!(f, UnitState::Failed("no data".into()));
        std::fs::write(d.join("b/summary.json"), "{").unwrap();
        assert!(UnitState::of(&d.join("b")).is_err());
        let states = [("a", &UnitState::Missing), ("c", &c), ("e", &e), ("f", &f)];
        let t = tally(states);
        assert_eq!(
            t,
            json!({"total": 4, "finished": 1, "missing": ["a"], "failed": ["f"], "unfinished": ["e"]})
        );
    }
}
