//! What the command-line tests share: running the binary from the repository root with a
//! clean environment, and checking its outcome.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, from the package directory cargo gives the test at run time (a
/// compile-time path can name another checkout when the target directory is shared).
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

/// Runs `noisescope args` in the repository root, without the user's data folder or backend,
/// and outside any Slurm array task (whose variables would shard a sweep).
pub fn noisescope(args: &[&str]) -> Output {
    noisescope_with(args, &[])
}

/// [`noisescope`] with these environment variables set.
pub fn noisescope_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_noisescope"))
        .args(args)
        .current_dir(repo())
        .env_remove("NOISESCOPE_DATA")
        .env_remove("NOISESCOPE_BACKEND")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("SLURM_ARRAY_TASK_MIN")
        .env_remove("SLURM_ARRAY_TASK_MAX")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// `noisescope --quiet --threads 1 sweep --config CFG --out OUT EXTRA…`: one thread, so the
/// units' bits do not depend on the machine.
pub fn sweep(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--quiet",
        "--threads",
        "1",
        "sweep",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    noisescope(&args)
}

/// Asserts success, showing both streams otherwise.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Exit 1 with an error message, never a panic; the message.
pub fn failure(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The JSON document in file `p`.
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `v` without what depends on the clock or the process: wall times and provenance.
pub fn timeless(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                for k in ["time", "time_s", "probe_time_s", "provenance"] {
                    o.remove(k);
                }
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}
