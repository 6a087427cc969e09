//! Captures the git commit the binary is built from, and whether the work tree had changes,
//! for the provenance every `summary.json` records (src/provenance.rs). A build outside a git
//! checkout (a source archive, `cargo install` from crates.io) records `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Tracked files only: an untracked scratch file does not change what is built.
    let dirty = match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) => (!s.is_empty()).to_string(),
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=NOISESCOPE_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=NOISESCOPE_GIT_DIRTY={dirty}");

    // Run again when the commit moves (HEAD, the branch it names, the index) or any source of
    // the workspace changes (cargo scans a folder's files recursively), so the dirty flag
    // follows edits to every crate, not only this one.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        let head_ref = git(&["symbolic-ref", "-q", "HEAD"]);
        let watched = ["HEAD", "index", "packed-refs"]
            .into_iter()
            .chain(head_ref.as_deref())
            .map(|f| git_dir.join(f));
        // Only files that exist: cargo reruns a script every build for a missing one.
        for f in watched.filter(|f| f.exists()) {
            println!("cargo:rerun-if-changed={}", f.display());
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for p in ["crates", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
}
