//! burn's autotune on wgpu, in the `gpu-fusion` build: where the tuned kernels are kept between
//! runs, and a line saying so when a GPU opens. Without it the first call's tuning is a silent
//! pause (29.7 s on lavapipe), and cubecl keeps its cache under the `target/` folder of the
//! nearest Cargo project, which `cargo clean` deletes and which an installed binary run from
//! some project's folder would scatter there.

use std::path::PathBuf;
use std::sync::OnceLock;

use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The cache folder: `$NOISESCOPE_TUNE_CACHE`, else `$XDG_CACHE_HOME/noisescope/cubecl`, else
/// `~/.cache/noisescope/cubecl` (else `.noisescope-cubecl` in the working folder).
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("NOISESCOPE_TUNE_CACHE").unwrap_or_else(|| {
        env("XDG_CACHE_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".cache")))
            .map_or_else(
                || PathBuf::from(".noisescope-cubecl"),
                |c| c.join("noisescope/cubecl"),
            )
    })
}

/// Sets cubecl's configuration as cubecl itself would load it (a `cubecl.toml` found from the
/// working folder up, then its `CUBECL_*` variables, `--autotune` among them), with the cache
/// in [`cache_dir`] unless that file names a place of its own. Call before the first device
/// opens.
pub fn configure() {
    let mut c = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if matches!(c.environment.path, CacheConfig::Target) {
        c.environment.path = CacheConfig::Directory(cache_dir());
    }
    let root = c.environment.path.root();
    // A folder that cannot be made costs a re-tune, not the run: cubecl then keeps the cache
    // in memory.
    let _ = std::fs::create_dir_all(&root);
    let _ = CubeClRuntimeConfig::try_set(c);
    let _ = ROOT.set(root);
}

/// The cache folder [`configure`] chose.
static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// The line shown when a wgpu device opens in this build.
pub fn announcement() -> String {
    let root = ROOT.get_or_init(cache_dir);
    let cached = std::fs::read_dir(root).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "db")))
    });
    if cached {
        format!(
            "gpu-fusion build: kernel fusion and autotune on; tuned kernels from {}",
            root.display()
        )
    } else {
        format!(
            "gpu-fusion build: tuning GPU kernels on first use (the first steps may pause for up to a minute); cached under {} for next time",
            root.display()
        )
    }
}
