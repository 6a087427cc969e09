//! noisescope's run folder on disk (DESIGN.md): the resolved `config.toml`, `metrics.jsonl`
//! with its TensorBoard twin, `summary.json` with the provenance of every process that ran it,
//! and `checkpoints/step-NNNNNNN/`. Written so that a kill at any instant loses nothing
//! already written, and read back with named errors, never a panic.
//!
//! - [`campaign`]: one escape experiment over several seeds (`seed-N/` folders), combined.
//! - [`config`]: the run config (`config.toml`), its checks and `--set` overrides.
//! - [`rundir`]: the folder, atomic writes, metric lines, checkpoints (θ, optimizer, noise
//!   state and the probes' warm start as safetensors) and experiment folders of units.
//! - [`sweep`]: a sweep's folder: its runs as units and their combined summary.
//! - [`theory_seeds`]: one theory experiment over several seeds (`seed-N/` folders), combined.
//! - [`tensorboard`]: TensorBoard event files (the Event protobuf and CRC-32C framing).
//! - [`provenance`]: what made a result (build, command line, host, device, times).
//! - [`units`]: the units of a multi-run experiment, each a folder whose state is read from
//!   the folder alone (missing, started, failed, finished), and their combined summary.
#![warn(missing_docs)]

pub mod campaign;
pub mod config;
pub mod provenance;
pub mod rundir;
pub mod sweep;
pub mod tensorboard;
pub mod theory_seeds;
pub mod units;
