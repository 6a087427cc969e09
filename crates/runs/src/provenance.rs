//! What made a result: the noisescope version and git commit (with a dirty flag, captured at
//! build time by `build.rs`), the command line, the host, the device with its thread count,
//! and when the process started and ended. Every `summary.json` records it under
//! `provenance`; a run continued by later processes keeps each earlier process's record.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

/// When this process started, on both clocks: the wall clock for the record, the monotonic
/// one for the elapsed time.
static START: OnceLock<(SystemTime, Instant)> = OnceLock::new();

/// Notes the process's start; called first thing in `main` (later calls keep the first).
pub fn mark_start() {
    START.get_or_init(|| (SystemTime::now(), Instant::now()));
}

/// The build: `{"version", "commit", "dirty", "gpu_fusion"}`; `dirty` is `true` when tracked
/// files differed from the commit at build time (`"unknown"` outside a git checkout);
/// `gpu_fusion` whether burn's fusion and autotune were compiled in for wgpu.
pub fn build() -> Value {
    let dirty = env!("NOISESCOPE_GIT_DIRTY");
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("NOISESCOPE_GIT_COMMIT"),
        "dirty": dirty.parse::<bool>().map(Value::from).unwrap_or_else(|_| dirty.into()),
        "gpu_fusion": noisescope_data::GPU_FUSION,
    })
}

/// This process's record, as of now: the build, the command line (each argument quoted for a
/// POSIX shell where it needs it), the host, `device` (the backend's description, with its
/// thread count on the CPU), and the start, end (now) and wall time.
pub fn this_process(device: &str) -> Value {
    let (started, clock) = *START.get_or_init(|| (SystemTime::now(), Instant::now()));
    json!({
        "noisescope": build(),
        "command": command_line(),
        "host": host_name(),
        "device": device,
        "threads": noisescope_models::host_threads(),
        "started": humantime::format_rfc3339_millis(started).to_string(),
        "ended": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "wall_s": clock.elapsed().as_secs_f64(),
    })
}

/// The record for a summary: this process's, with the records of the processes that ran the
/// same run before it (oldest first) under `earlier` when there were any.
pub fn with_earlier(device: &str, earlier: &[Value]) -> Value {
    let mut p = this_process(device);
    if !earlier.is_empty() {
        p["earlier"] = Value::from(earlier.to_vec());
    }
    p
}

/// The command line as one string a POSIX shell would split back into the same arguments.
fn command_line() -> String {
    std::env::args_os()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as one word for a POSIX shell: as it is when plain, else single-quoted.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// This machine's host name (`unknown` when the system will not say).
pub fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
        // when the name fits (and we stop at the first NUL, or the end, either way).
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_a_shell_split() {
        assert_eq!(shell_quote("--set"), "--set");
        assert_eq!(shell_quote("run.seed=2"), "run.seed=2");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_record_names_the_build_the_times_and_earlier_processes() {
        mark_start();
        let earlier = vec![json!({"host": "elsewhere"})];
        let p = with_earlier("ndarray (CPU)", &earlier);
        assert_eq!(p["noisescope"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(!p["noisescope"]["commit"].as_str().unwrap().is_empty());
        assert!(p["noisescope"]["dirty"].is_boolean() || p["noisescope"]["dirty"] == "unknown");
        assert_eq!(p["device"], "ndarray (CPU)");
        assert!(p["started"].as_str().unwrap() <= p["ended"].as_str().unwrap());
        assert!(p["wall_s"].as_f64().unwrap() >= 0.0);
        assert_eq!(p["earlier"][0]["host"], "elsewhere");
        assert!(with_earlier("x", &[]).get("earlier").is_none());
    }
}
