//! What the command-line tests share: running the binary from the repository root with a
//! clean environment, and checking its outcome.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root, from the package directory cargo gives the test at run time (a
/// compile-time path can name another checkout when the target directory is shared).
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

/// Runs `noisescope args` in the repository root, without the user's data folder or backend.
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
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
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
